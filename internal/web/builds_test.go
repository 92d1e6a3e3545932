package web

import (
	"errors"
	"html"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/webhook"
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
	f.Set("git_build_secrets", "NPM_TOKEN, SENTRY_AUTH_TOKEN\n")
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
		`id="git-dockerfile"`, `id="git-context"`, `id="git-target"`, `id="git-build-args"`, `id="git-watch-paths"`, `id="git-tags"`,
		`id="git-build-secrets" name="git_build_secrets"`, "the build reads with RUN --mount=type=secret,id=NAME; they never reach the image.")

	for _, tc := range []struct {
		name, field, value, errID, want string
	}{
		{"no repository", "git_url", "", "git-url-error", "Repository is required"},
		{"plain http", "git_url", "http://git.example.com/acme/shop.git", "git-url-error", "Repository "},
		{"bad branch", "git_branch", "feature..x", "git-branch-error", "Branch must not contain"},
		{"absolute dockerfile", "git_dockerfile", "/etc/passwd", "git-dockerfile-error", "Dockerfile must be relative"},
		{"build arg without =", "git_build_args", "JUSTANAME", "git-build-args-error", "line 1: write KEY=VALUE"},
		{"bad build secret", "git_build_secrets", "NPM_TOKEN NPM-TOKEN", "git-build-secrets-error", `"NPM-TOKEN" is not a valid variable name`},
		{"build secret twice", "git_build_secrets", "NPM_TOKEN,NPM_TOKEN", "git-build-secrets-error", "names NPM_TOKEN twice"},
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
	if src.Build.Dockerfile != "docker/Dockerfile" || src.Build.Args["NODE_ENV"] != "production" || !src.Filter.Tags || len(src.Filter.WatchPaths) != 1 ||
		!slices.Equal(src.Build.Secrets, []string{"NPM_TOKEN", "SENTRY_AUTH_TOKEN"}) {
		t.Errorf("stored source: %+v", src)
	}

	p := b.get("/projects/shop/apps/api/source?notice=git-app-created")
	if p.status != http.StatusOK {
		t.Fatalf("source tab: %d\n%s", p.status, p.body)
	}
	hook := e.srv.URL + "/hooks/" + src.WebhookID
	mustContain(t, "source tab", p.body, gitRepoURL, hook, "Reveal secret", "docker/Dockerfile", "NODE_ENV=production",
		"<dt>Build secrets</dt><dd><code>NPM_TOKEN</code> <code>SENTRY_AUTH_TOKEN</code> </dd>",
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

// sourceFormValues is the Source tab's form as the browser sends it when
// nothing was touched but the fields set here.
func sourceFormValues(tok string) url.Values {
	return url.Values{
		"csrf_token": {tok}, "git_provider": {"git"}, "git_url": {gitRepoURL}, "git_branch": {"main"},
		"git_dockerfile": {"docker/Dockerfile"}, "git_build_args": {"NODE_ENV=production"}, "git_build_secrets": {"NPM_TOKEN\nSENTRY_AUTH_TOKEN"},
		"git_watch_paths": {"src/**"}, "git_tags": {"on"},
	}
}

func TestGitAppSourceChange(t *testing.T) {
	e := newAuditTestEnv(t)
	e.withBuilds()
	b := e.browser()
	tok := shopWithGitApp(e.testEnv, b)
	const token = "ghp_stored-token-value"
	source := func() deploy.GitSource {
		t.Helper()
		src, err := e.apps.GitSource(t.Context(), e.owner(), apiRef)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}

	// The tab offers the form; opened, it holds what is stored.
	p := b.get("/projects/shop/apps/api/source")
	mustContain(t, "source tab", p.body, `href="/projects/shop/apps/api/source?edit=1#change-source"`)
	mustNotContain(t, "source tab", p.body, `id="change-source"`)
	p = b.get("/projects/shop/apps/api/source?edit=1")
	if p.status != http.StatusOK {
		t.Fatalf("edit form: %d\n%s", p.status, p.body)
	}
	mustContain(t, "edit form", p.body, `id="change-source"`, `action="/projects/shop/apps/api/source"`,
		`<option value="git" selected>`, `id="git-url" name="git_url" type="text" value="`+gitRepoURL+`"`,
		`id="git-branch" name="git_branch" type="text" value="main"`, `id="git-dockerfile" name="git_dockerfile" type="text" value="docker/Dockerfile"`,
		`>NODE_ENV=production</textarea>`, `>src/**</textarea>`, ">NPM_TOKEN\nSENTRY_AUTH_TOKEN</textarea>", `id="git-tags" name="git_tags" type="checkbox" value="on" checked`,
		`id="git-token" name="git_token" type="password"`)
	mustNotContain(t, "edit form without a token", p.body, `id="git-remove-token"`)

	// A valid change is stored and said so, a token with it.
	f := sourceFormValues(tok)
	f.Set("git_url", "https://git.example.com/acme/shop-v2.git")
	f.Set("git_branch", "release")
	f.Set("git_dockerfile", "")
	f.Set("git_context", "services/api")
	f.Set("git_target", "production")
	f.Set("git_build_args", "A=1\nB=2")
	f.Set("git_build_secrets", "B_TOKEN A_TOKEN")
	f.Set("git_watch_paths", "")
	f.Del("git_tags")
	f.Set("git_token", token)
	p = b.post("/projects/shop/apps/api/source", f)
	if p.status != http.StatusSeeOther || p.location() != "/projects/shop/apps/api/source?notice=source-changed" {
		t.Fatalf("change source: %d → %q\n%s", p.status, p.location(), p.body)
	}
	src := source()
	if src.CloneURL != "https://git.example.com/acme/shop-v2.git" || src.Branch != "release" || src.Build.Context != "services/api" ||
		src.Build.Target != "production" || src.Build.Dockerfile != "" || len(src.Build.Args) != 2 || src.Filter.Tags ||
		len(src.Filter.WatchPaths) != 0 || !slices.Equal(src.Filter.Branches, []string{"release"}) || !src.HasToken ||
		!slices.Equal(src.Build.Secrets, []string{"B_TOKEN", "A_TOKEN"}) {
		t.Errorf("after the change: %+v", src)
	}
	p = b.get(p.location())
	mustContain(t, "after the change", p.body, "Source changed; the next build uses it.", "shop-v2.git", "services/api", "<code>B_TOKEN</code> <code>A_TOKEN</code>")
	mustNotContain(t, "after the change", p.body, token)
	if entry := e.last("app.source"); strings.Contains(entry.Summary, token) {
		t.Errorf("the audit log holds the token: %s", entry.Summary)
	}

	// With a token stored, the form offers to remove it and never shows it.
	p = b.get("/projects/shop/apps/api/source?edit=1")
	mustContain(t, "edit form with a token", p.body, `id="git-remove-token"`, "Leave this empty to keep it")
	mustNotContain(t, "edit form with a token", p.body, token)

	// A bad branch is refused next to its input; nothing changes, and
	// what was typed stays (but the token).
	bad := sourceFormValues(tok)
	bad.Set("git_branch", "-x")
	bad.Set("git_dockerfile", "other/Dockerfile")
	bad.Set("git_token", "ghp_typed-on-a-bad-form")
	p = b.post("/projects/shop/apps/api/source", bad)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad branch: %d\n%s", p.status, p.body)
	}
	mustContain(t, "bad branch", p.body, `id="change-source"`, "Nothing was changed.", `value="-x"`, `value="other/Dockerfile"`, `id="git-remove-token"`)
	if i := strings.Index(p.body, `id="git-branch"`); i < 0 || !strings.Contains(p.body[i:min(i+800, len(p.body))], `id="git-branch-error"`) {
		t.Error("the branch's error is not next to the branch input")
	}
	mustNotContain(t, "bad branch", p.body, "ghp_typed-on-a-bad-form", token)
	if got := source(); got.Branch != "release" || got.Build.Dockerfile != "" || !got.HasToken {
		t.Errorf("a refused form changed the source: %+v", got)
	}

	// So is a bad build secret, next to its input.
	bad = sourceFormValues(tok)
	bad.Set("git_build_secrets", "NPM_TOKEN\n1PASSWORD")
	p = b.post("/projects/shop/apps/api/source", bad)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad build secret: %d\n%s", p.status, p.body)
	}
	if i := strings.Index(p.body, `id="git-build-secrets"`); i < 0 || !strings.Contains(p.body[i:min(i+800, len(p.body))], `id="git-build-secrets-error"`) ||
		!strings.Contains(html.UnescapeString(p.body[i:min(i+1200, len(p.body))]), `Build secrets "1PASSWORD" is not a valid variable name`) {
		t.Errorf("the build secret's error is not next to its input:\n%s", p.body)
	}
	if got := source(); !slices.Equal(got.Build.Secrets, []string{"B_TOKEN", "A_TOKEN"}) {
		t.Errorf("a refused form changed the build secrets: %v", got.Build.Secrets)
	}

	// An empty token keeps the stored one; the box removes it.
	keep := sourceFormValues(tok)
	if p := b.post("/projects/shop/apps/api/source", keep); p.status != http.StatusSeeOther {
		t.Fatalf("change without a token: %d\n%s", p.status, p.body)
	}
	if got := source(); !got.HasToken || got.Branch != "main" {
		t.Errorf("an empty token input dropped the stored token: %+v", got)
	}
	keep.Set("git_remove_token", "on")
	if p := b.post("/projects/shop/apps/api/source", keep); p.status != http.StatusSeeOther {
		t.Fatalf("remove the token: %d\n%s", p.status, p.body)
	}
	if source().HasToken {
		t.Error("the token is still stored after removing it")
	}
	mustNotContain(t, "after removing the token", b.get("/projects/shop/apps/api/source?edit=1").body, `id="git-remove-token"`)
}

func TestGitAppSourceRotateSecret(t *testing.T) {
	e := newAuditTestEnv(t)
	e.withBuilds()
	b := e.browser()
	tok := shopWithGitApp(e.testEnv, b)
	old, err := e.apps.WebhookSecret(t.Context(), e.owner(), apiRef)
	if err != nil {
		t.Fatal(err)
	}
	const rotate = "/projects/shop/apps/api/source/webhook-secret/rotate"

	p := b.get("/projects/shop/apps/api/source")
	mustContain(t, "source tab", p.body, `action="`+rotate+`"`, "Rotate secret")
	if p := b.post(rotate, url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("rotate without CSRF: %d", p.status)
	}
	if now, _ := e.apps.WebhookSecret(t.Context(), e.owner(), apiRef); now != old {
		t.Fatal("a refused rotation changed the secret")
	}

	for _, htmx := range []bool{true, false} {
		var headers []string
		if htmx {
			headers = append(headers, "HX-Request: true")
		}
		p = b.post(rotate, url.Values{"csrf_token": {tok}}, headers...)
		if p.status != http.StatusOK {
			t.Fatalf("rotate (htmx %v): %d\n%s", htmx, p.status, p.body)
		}
		secret, err := e.apps.WebhookSecret(t.Context(), e.owner(), apiRef)
		if err != nil || secret == old || secret == "" {
			t.Fatalf("after rotating: %q (was %q), %v", secret, old, err)
		}
		mustContain(t, "rotated", html.UnescapeString(p.body), `id="webhook-secret"`, secret,
			"deliveries signed with the old one are refused from now on. Enter it in the provider's webhook settings.")
		mustNotContain(t, "rotated", p.body, old)
		if htmx {
			mustNotContain(t, "rotated fragment", p.body, "<html")
		} else {
			mustContain(t, "rotated page", p.body, "<html", `id="webhook"`)
		}
		entry := e.last("webhook-secret.rotate")
		if !strings.Contains(entry.Target, "app=api") || entry.ActorLabel != ownerEmail || strings.Contains(entry.Summary, secret) {
			t.Errorf("audit entry: %+v", entry)
		}
		old = secret
	}
	// Each rotation is recorded once; the refused one as refused.
	var statuses []int
	for _, a := range e.entries() {
		if a.Action == "webhook-secret.rotate" {
			statuses = append(statuses, a.Status)
		}
	}
	if !slices.Equal(statuses, []int{http.StatusForbidden, http.StatusOK, http.StatusOK}) {
		t.Errorf("rotations recorded with statuses %v, want [403 200 200]", statuses)
	}
}

func TestGitAppSourceViewer(t *testing.T) {
	e := newAuditTestEnv(t)
	e.withBuilds()
	owner := e.browser()
	shopWithGitApp(e.testEnv, owner)
	before, err := e.apps.GitSource(t.Context(), e.owner(), apiRef)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := e.apps.WebhookSecret(t.Context(), e.owner(), apiRef)

	v := e.memberBrowser("vic@example.com", "viewer")
	p := v.get("/projects/shop/apps/api/source?edit=1")
	if p.status != http.StatusOK {
		t.Fatalf("viewer's source tab: %d", p.status)
	}
	mustNotContain(t, "viewer's source tab", p.body, "Change source", `id="change-source"`, "Rotate secret", "/webhook-secret/rotate", `name="git_url"`)
	tok := csrfRE.FindStringSubmatch(p.body)[1]

	f := sourceFormValues(tok)
	f.Set("git_branch", "hijack")
	if p := v.post("/projects/shop/apps/api/source", f); p.status != http.StatusForbidden {
		t.Errorf("viewer's change: %d", p.status)
	}
	f.Set("git_build_args", "NOEQUALS") // refused by the form itself: still 403
	if p := v.post("/projects/shop/apps/api/source", f); p.status != http.StatusForbidden {
		t.Errorf("viewer's unparsable change: %d", p.status)
	}
	if p := v.post("/projects/shop/apps/api/source/webhook-secret/rotate", url.Values{"csrf_token": {tok}}); p.status != http.StatusForbidden || strings.Contains(p.body, secret) {
		t.Errorf("viewer's rotation: %d", p.status)
	}
	after, _ := e.apps.GitSource(t.Context(), e.owner(), apiRef)
	if after.Branch != before.Branch {
		t.Errorf("the viewer changed the branch to %s", after.Branch)
	}
	if now, _ := e.apps.WebhookSecret(t.Context(), e.owner(), apiRef); now != secret {
		t.Error("the viewer rotated the secret")
	}

	// The owner's forms need the CSRF token too.
	if p := owner.post("/projects/shop/apps/api/source", sourceFormValues("")); p.status != http.StatusForbidden {
		t.Errorf("change without CSRF: %d", p.status)
	}
	if after, _ := e.apps.GitSource(t.Context(), e.owner(), apiRef); after.Branch != before.Branch {
		t.Error("a change without CSRF went through")
	}
}

// TestSourceFormRoundTrip: the form filled from a stored source, sent back
// untouched, parses to that source again (the SSH port, which has no
// input, is carried over by keepSSHPort).
func TestSourceFormRoundTrip(t *testing.T) {
	for _, v := range []gitsrc.Variant{
		&gitsrc.URL{URL: gitRepoURL},
		&gitsrc.URL{URL: "git@git.example.com:acme/shop.git"},
		&gitsrc.GitHub{Repo: "acme/shop"},
		&gitsrc.GitHub{Repo: "acme/shop", BaseURL: "https://github.example.com", Protocol: gitsrc.TransportSSH},
		&gitsrc.GitLab{Repo: "acme/team/shop", BaseURL: "https://gitlab.example.com", Protocol: gitsrc.TransportSSH, SSHPort: 2222},
		&gitsrc.Gitea{Repo: "acme/shop", BaseURL: "https://gitea.example.com"},
		&gitsrc.Bitbucket{Repo: "acme/shop", Protocol: gitsrc.TransportSSH},
	} {
		t.Run(string(v.Kind())+" "+v.CloneURL(), func(t *testing.T) {
			src := deploy.GitSource{Source: gitsrc.Source{Variant: v}, Branch: "release",
				Build:  store.BuildSettings{Dockerfile: "Dockerfile.prod", Args: map[string]string{"B": "2", "A": "1"}, Secrets: []string{"Z_TOKEN", "A_TOKEN"}},
				Filter: webhook.Filter{Branches: []string{"release"}, Tags: true, WatchPaths: []string{"src/**", "go.mod"}}}
			f := newSourceForm("tok", "/a", "/a", src)
			form := url.Values{}
			for _, fl := range f.fields() {
				switch {
				case fl.Type == "select":
					for _, o := range fl.Options {
						if o.Selected {
							form.Set(fl.Name, o.Value)
						}
					}
				case fl.Type == "checkbox" && fl.Checked:
					form.Set(fl.Name, "on")
				case fl.Type != "checkbox" && fl.Name != "":
					form.Set(fl.Name, fl.Value)
				}
			}
			errs := fieldErrors{}
			in := parseGitForm(form.Get, errs)
			keepSSHPort(src.Source, &in.Source)
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if !reflect.DeepEqual(in.Source, src.Source) || in.Branch != src.Branch || !reflect.DeepEqual(in.Build, src.Build) || !reflect.DeepEqual(*in.Filter, src.Filter) {
				t.Errorf("round trip:\n got %#v %q %+v %+v\nwant %#v %q %+v %+v", in.Source.Variant, in.Branch, in.Build, *in.Filter, v, src.Branch, src.Build, src.Filter)
			}
		})
	}
}
