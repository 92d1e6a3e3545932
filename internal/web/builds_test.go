package web

import (
	"errors"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/store"
)

// withBuilds gives the manager a job queue that nobody works: builds stay
// queued, so the pages can be looked at in each state the test sets.
func (e *testEnv) withBuilds() {
	e.t.Helper()
	workers := jobs.NewWorkers()
	if err := jobs.Register(workers, jobs.BuildKind(time.Minute), e.apps.RunBuild); err != nil {
		e.t.Fatal(err)
	}
	q, err := jobs.Open(e.t.Context(), e.db.SQL(), e.db.Dialect(), jobs.Options{Workers: workers})
	if err != nil {
		e.t.Fatalf("open job queue: %v", err)
	}
	e.apps.WithBuilds(deploy.BuildConfig{Queue: q, PrivateHosts: true}) // example.com hosts need no DNS
}

const gitRepoURL = "https://git.example.com/acme/shop.git"

// gitAppFormValues is a valid new-app form for an app built from git.
func gitAppFormValues(tok, name string) url.Values {
	f := appFormValues(tok, name)
	f.Set("image", "")
	f.Set("source", "git")
	f.Set("git_provider", "git")
	f.Set("git_url", gitRepoURL)
	f.Set("git_branch", "main")
	f.Set("git_dockerfile", "docker/Dockerfile")
	f.Set("git_build_args", "NODE_ENV=production\n")
	f.Set("git_watch_paths", "src/**\n")
	f.Set("git_tags", "on")
	f.Set("then", "create")
	return f
}

var apiRef = deploy.AppRef{Project: "shop", Environment: deploy.Production, Name: "api"}

// shopWithGitApp sets up the owner, project shop and its git app api, and
// returns the CSRF token.
func shopWithGitApp(e *testEnv, b *browser) string {
	e.t.Helper()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	if loc := b.createApp("shop", gitAppFormValues(tok, "api")); loc != "/projects/shop/apps/api/source?notice=git-app-created" {
		e.t.Fatalf("after creating a git app: redirected to %s", loc)
	}
	return tok
}

func TestGitAppCreateFormErrors(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")

	page := b.get("/projects/shop/apps/new")
	mustContain(t, "new app form", page.body, `id="source-image" type="radio" name="source" value="image" checked`, `id="source-git"`,
		`id="git-url"`, `id="git-branch" name="git_branch" type="text" value="main"`, `id="git-token" name="git_token" type="password"`,
		`id="git-dockerfile"`, `id="git-context"`, `id="git-target"`, `id="git-build-args"`, `id="git-watch-paths"`, `id="git-tags"`)

	for _, tc := range []struct {
		name, field, value, errID, want string
	}{
		{"no repository", "git_url", "", "git-url-error", "Repository is required"},
		{"plain http", "git_url", "http://git.example.com/acme/shop.git", "git-url-error", "Repository "},
		{"bad branch", "git_branch", "feature..x", "git-branch-error", "Branch must not contain"},
		{"absolute dockerfile", "git_dockerfile", "/etc/passwd", "git-dockerfile-error", "Dockerfile must be relative"},
		{"build arg without =", "git_build_args", "JUSTANAME", "git-build-args-error", "line 1: write KEY=VALUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := gitAppFormValues(tok, "api")
			f.Set(tc.field, tc.value)
			f.Set("git_token", "ghp_secret-token-value")
			p := b.post("/projects/shop/apps", f)
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", p.status, p.body)
			}
			mustContain(t, tc.name, p.body, `id="`+tc.errID+`"`, `id="source-git" type="radio" name="source" value="git" checked`)
			if i := strings.Index(p.body, `id="`+tc.errID+`"`); i < 0 || !strings.Contains(html.UnescapeString(p.body[i:min(i+400, len(p.body))]), tc.want) {
				t.Errorf("error of %s does not say %q", tc.field, tc.want)
			}
			mustNotContain(t, tc.name, p.body, "ghp_secret-token-value")
		})
	}
	if as, err := e.apps.Apps(t.Context(), e.owner(), "shop"); err != nil || len(as) != 0 {
		t.Errorf("refused forms created %d apps (%v)", len(as), err)
	}
}

func TestGitAppSourceWebhookReveal(t *testing.T) {
	e := newAuditTestEnv(t)
	e.withBuilds()
	b := e.browser()
	tok := shopWithGitApp(e.testEnv, b)

	secret, err := e.apps.WebhookSecret(t.Context(), e.owner(), apiRef)
	if err != nil || secret == "" {
		t.Fatalf("webhook secret: %q, %v", secret, err)
	}
	src, err := e.apps.GitSource(t.Context(), e.owner(), apiRef)
	if err != nil {
		t.Fatal(err)
	}
	if src.Build.Dockerfile != "docker/Dockerfile" || src.Build.Args["NODE_ENV"] != "production" || !src.Filter.Tags || len(src.Filter.WatchPaths) != 1 {
		t.Errorf("stored source: %+v", src)
	}

	p := b.get("/projects/shop/apps/api/source?notice=git-app-created")
	if p.status != http.StatusOK {
		t.Fatalf("source tab: %d\n%s", p.status, p.body)
	}
	hook := e.srv.URL + "/hooks/" + src.WebhookID
	mustContain(t, "source tab", p.body, gitRepoURL, hook, "Reveal secret", "docker/Dockerfile", "NODE_ENV=production",
		"Payload URL", "application/json", "Secret token", "Tag push events", "Repository push", `data-copy="webhook-url"`,
		`>Source</a>`, `>Builds</a>`, "Deploy latest commit")
	mustNotContain(t, "source tab", p.body, secret)
	// The Settings tab offers no image: each build sets it.
	settings := b.get("/projects/shop/apps/api/settings")
	mustContain(t, "git app settings", settings.body, "The image comes from this app's builds")
	mustNotContain(t, "git app settings", settings.body, `name="image"`)

	// A reveal is a POST with the CSRF token, and audited.
	if p := b.get("/projects/shop/apps/api/source/reveal"); p.status == http.StatusOK && strings.Contains(p.body, secret) {
		t.Error("a GET revealed the secret")
	}
	if p := b.post("/projects/shop/apps/api/source/reveal", url.Values{}); p.status != http.StatusForbidden || strings.Contains(p.body, secret) {
		t.Errorf("reveal without CSRF: %d", p.status)
	}
	p = b.post("/projects/shop/apps/api/source/reveal", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("reveal: %d\n%s", p.status, p.body)
	}
	mustContain(t, "revealed secret", p.body, `id="webhook-secret"`, secret, `data-copy="webhook-secret-value"`)
	entry := e.last("webhook-secret.reveal")
	if !strings.Contains(entry.Target, "app=api") || strings.Contains(entry.Summary, secret) || entry.ActorLabel != ownerEmail {
		t.Errorf("audit entry: %+v", entry)
	}
	for _, a := range e.entries() {
		if strings.Contains(a.Summary, secret) || strings.Contains(a.Summary, "ghp_") {
			t.Errorf("audit entry %s holds a secret: %s", a.Action, a.Summary)
		}
	}

	// An image app has no Source tab.
	b.createApp("shop", appFormValues(tok, "web"))
	if p := b.get("/projects/shop/apps/web/source"); p.status != http.StatusNotFound {
		t.Errorf("source tab of an image app: %d", p.status)
	}
	mustNotContain(t, "image app", b.get("/projects/shop/apps/web").body, `>Builds</a>`)
}

func TestGitDeployBuildLogAndCancel(t *testing.T) {
	e := newTestEnv(t)
	e.withBuilds()
	b := e.browser()
	tok := shopWithGitApp(e, b)

	p := b.get("/projects/shop/apps/api/builds")
	mustContain(t, "empty builds tab", p.body, "No builds yet")

	// A commit id that is not one is refused on its field; nothing is queued.
	p = b.post("/projects/shop/apps/api/deploy", url.Values{"csrf_token": {tok}, "commit": {"abc123"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("deploy of a short commit: %d\n%s", p.status, p.body)
	}
	mustContain(t, "refused commit", p.body, `id="deploy-commit-error"`, "full commit id")
	if bs, _ := e.apps.Builds(t.Context(), e.owner(), apiRef, 10); len(bs) != 0 {
		t.Errorf("a refused commit queued %d builds", len(bs))
	}

	p = b.post("/projects/shop/apps/api/deploy", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther || p.location() != "/projects/shop/apps/api/builds/1" {
		t.Fatalf("deploy latest commit: %d → %s\n%s", p.status, p.location(), p.body)
	}
	bs, err := e.apps.Builds(t.Context(), e.owner(), apiRef, 10)
	if err != nil || len(bs) != 1 || bs[0].Status != store.BuildQueued || bs[0].Commit != "" || bs[0].Trigger != "manual" {
		t.Fatalf("builds after deploy: %+v, %v", bs, err)
	}
	build := bs[0]

	p = b.get("/projects/shop/apps/api/builds")
	mustContain(t, "builds tab", p.body, `href="/projects/shop/apps/api/builds/1"`, "Queued", "Manual", ownerEmail, `hx-trigger="every 2s"`)

	lines := []string{"Resolving main of " + gitRepoURL, "Step 1/4 : FROM golang:1.26 AS build", "<script>alert(1)</script>"}
	if err := e.db.AppendBuildLog(t.Context(), time.Now(), build.ID, lines[:2]); err != nil {
		t.Fatal(err)
	}
	p = b.get("/projects/shop/apps/api/builds/1")
	if p.status != http.StatusOK {
		t.Fatalf("build page: %d\n%s", p.status, p.body)
	}
	mustContain(t, "build page", p.body, "Build #1", "Step 1/4 : FROM golang:1.26 AS build", `id="cancel-build"`,
		`hx-get="/projects/shop/apps/api/builds/1/log?after=2"`, `hx-trigger="every 1s"`)

	// The poll appends only what is new, and keeps polling while queued.
	if err := e.db.AppendBuildLog(t.Context(), time.Now(), build.ID, lines[2:]); err != nil {
		t.Fatal(err)
	}
	p = b.get("/projects/shop/apps/api/builds/1/log?after=2", "HX-Request: true")
	mustContain(t, "log poll", p.body, `hx-swap-oob="beforeend:#build-log"`, "&lt;script&gt;alert(1)&lt;/script&gt;", `hx-get="/projects/shop/apps/api/builds/1/log?after=3"`,
		`id="build-summary"`, `hx-swap-oob="true"`)
	mustNotContain(t, "log poll", p.body, "Step 1/4", "<script>alert")

	// Cancel ends it: the page says so and stops polling.
	p = b.post("/projects/shop/apps/api/builds/1/cancel", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d\n%s", p.status, p.body)
	}
	got, err := e.apps.Build(t.Context(), e.owner(), build.ID)
	if err != nil || got.Status != store.BuildCancelled {
		t.Fatalf("after cancel: %+v, %v", got, err)
	}
	p = b.get("/projects/shop/apps/api/builds/1/log?after=3", "HX-Request: true")
	mustContain(t, "last poll", p.body, "Cancelled", "cancelled by "+ownerEmail)
	mustNotContain(t, "last poll", p.body, `hx-trigger`, `id="cancel-build"`)
	if p := b.post("/projects/shop/apps/api/builds/1/cancel", url.Values{"csrf_token": {tok}}); p.status != http.StatusConflict {
		t.Errorf("cancelling a cancelled build: %d", p.status)
	}
}

func TestBuildQueuePage(t *testing.T) {
	e := newTestEnv(t)
	e.withBuilds()
	b := e.browser()
	tok := shopWithGitApp(e, b)

	p := b.get("/builds")
	if p.status != http.StatusOK {
		t.Fatalf("queue page: %d %s\n%.600s", p.status, p.location(), p.body)
	}
	mustContain(t, "empty queue", p.body, "Nothing is building", `href="/builds" aria-current="page"`)

	b.post("/projects/shop/apps/api/deploy", url.Values{"csrf_token": {tok}})
	p = b.get("/builds")
	mustContain(t, "queue", p.body, `href="/projects/shop/apps/api"`, `href="/projects/shop/apps/api/builds/1"`, "Queued",
		"waiting for a worker", "0 running · 1 waiting", `hx-get="/builds/list"`)
	p = b.get("/builds/list", "HX-Request: true")
	mustContain(t, "queue refresh", p.body, `id="build-queue"`, "waiting for a worker")
	mustNotContain(t, "queue refresh", p.body, "<html")
}

func TestBuildOfAnotherOrganizationIsNotFound(t *testing.T) {
	e := newTestEnv(t)
	e.withBuilds()
	b := e.browser()
	tok := shopWithGitApp(e, b)
	b.post("/projects/shop/apps/api/deploy", url.Values{"csrf_token": {tok}})
	bs, err := e.apps.Builds(t.Context(), e.owner(), apiRef, 1)
	if err != nil || len(bs) != 1 {
		t.Fatalf("builds: %v %v", bs, err)
	}
	victim := bs[0].ID

	// A second organization, with an app of the same names.
	if _, err := e.db.SQL().Exec(`DELETE FROM settings WHERE key = 'setup.completed_at'`); err != nil {
		t.Fatal(err)
	}
	rival := e.browser()
	rtok := rival.csrf("/setup")
	if p := rival.post("/setup", url.Values{"csrf_token": {rtok}, "email": {"eve@example.com"}, "name": {"Eve"}, "organization": {"Rival"},
		"password": {ownerPassword}, "password_confirm": {ownerPassword}}); p.status != http.StatusSeeOther {
		t.Fatalf("rival setup: %d", p.status)
	}
	rival.createProject("shop")
	rival.createApp("shop", gitAppFormValues(rival.csrf("/projects/shop/apps/new"), "api"))
	rtok = rival.csrf("/projects/shop/apps/api/builds")

	for _, path := range []string{"/projects/shop/apps/api/builds/" + victim, "/projects/shop/apps/api/builds/" + victim + "/log?after=0"} {
		if p := rival.get(path, "HX-Request: true"); p.status != http.StatusNotFound {
			t.Errorf("rival GET %s: %d", path, p.status)
		}
	}
	if p := rival.post("/projects/shop/apps/api/builds/"+victim+"/cancel", url.Values{"csrf_token": {rtok}}); p.status != http.StatusNotFound {
		t.Errorf("rival cancel: %d", p.status)
	}
	if p := rival.get("/builds"); strings.Contains(p.body, "/builds/1") {
		t.Error("the rival's queue lists the other organization's build")
	}
	if got, err := e.apps.Build(t.Context(), e.owner(), victim); err != nil || got.Status != store.BuildQueued {
		t.Errorf("victim build after the rival's attempts: %+v, %v", got.Status, err)
	}
}

func TestSystemDiskUse(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	// Without a builder the owner sees why there are no figures.
	p := b.get("/system")
	mustContain(t, "system without builder", p.body, `id="disk-title"`, "does not build images")
	if _, err := e.apps.DiskUsage(t.Context(), e.owner()); !errors.Is(err, deploy.ErrBusy) {
		t.Errorf("disk use without builder: %v", err)
	}
}
