package deploy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/build"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
	"github.com/berthpaas/berth/internal/testenv/gitserver"
)

// gitApp is a harness with a git server, a job queue working builds, and
// one git-sourced app.
type gitApp struct {
	*harness
	repo  *gitserver.Repo
	ref   AppRef
	app   store.App
	queue *jobs.Queue
}

// dockerfile builds the hello fixture in two stages: the first writes a
// file (a RUN step, cached when unchanged), the second serves VERSION.
func dockerfile(version, extra string) string {
	return "FROM berth-fixture/debian:bookworm AS gen\nRUN echo generated > /generated.txt\n" + extra +
		"FROM berth-fixture/hello:v1\nCOPY --from=gen /generated.txt /generated.txt\nENV VERSION=" + version + "\n"
}

func newGitApp(t *testing.T, registry string) *gitApp {
	t.Helper()
	h := newHarness(t)
	srv := gitserver.Start(t, gitserver.Options{})
	g := &gitApp{harness: h, repo: srv.NewRepo(t, "shop/api")}
	g.repo.Commit(t, map[string]string{"Dockerfile": dockerfile("one", "")}, "first")

	workers := jobs.NewWorkers()
	if err := jobs.Register(workers, jobs.BuildKind(2*time.Minute), func(ctx context.Context, j *jobs.Job[BuildJob]) error {
		return h.mgr.RunBuild(ctx, j) // the harness's current Manager
	}); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.Open(context.Background(), h.db.SQL(), h.db.Dialect(), jobs.Options{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		q.Close(cctx)
		cancel()
	})
	g.queue = q
	h.mgr.WithBuilds(BuildConfig{Queue: q, Docker: h.docker, WorkDir: t.TempDir(), KeepImages: 2, GitCAFile: srv.CAFile, Registry: registry, PrivateHosts: true})

	project := fmt.Sprintf("git%d", time.Now().UnixNano()%1e6)
	if _, err := h.mgr.CreateProject(context.Background(), h.p, project); err != nil {
		t.Fatal(err)
	}
	g.ref = AppRef{Project: project, Name: "api"}
	spec := app.DefaultSpec()
	spec.Port = 8080
	spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second)}
	a, src, err := h.mgr.CreateGitApp(context.Background(), h.p, CreateAppInput{Ref: g.ref, Spec: spec},
		GitInput{Source: gitsrc.Source{Variant: &gitsrc.URL{URL: g.repo.CloneURL()}}, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if src.WebhookID == "" || src.DeployKey != "" || src.Provider != "" {
		t.Fatalf("source view of an HTTPS URL: %+v", src)
	}
	g.app = a
	return g
}

// Without --git-private-hosts a repository on a private address is refused
// when the app is created and again when a build fetches.
func TestGitPrivateHostsRefused(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	ctx := context.Background()
	g.mgr.builds.PrivateHosts = false
	spec := app.DefaultSpec()
	for _, url := range []string{"https://127.0.0.1:8443/shop/api.git", "ssh://git@10.1.2.3/shop/api.git", "git@192.168.1.5:shop/api.git", "https://169.254.169.254/latest.git"} {
		_, _, err := g.mgr.CreateGitApp(ctx, g.p, CreateAppInput{Ref: AppRef{Project: g.ref.Project, Name: "private"}, Spec: spec},
			GitInput{Source: gitsrc.Source{Variant: &gitsrc.URL{URL: url}}})
		var fe *app.FieldError
		if !errors.As(err, &fe) || fe.Field != "git.url" || !strings.Contains(fe.Message, "private address") {
			t.Errorf("%s: %v, want a git.url error about a private address", url, err)
		}
	}
	if apps, _ := g.mgr.Apps(ctx, g.p, g.ref.Project); len(apps) != 1 {
		t.Errorf("%d apps after refused creations, want only the first", len(apps))
	}
	b := g.waitBuild(g.start(), store.BuildFailed)
	if !strings.Contains(b.Error, "private address") {
		t.Errorf("a build of an app whose host became private failed with %q", b.Error)
	}
}

// waitBuild waits until the build has one of the statuses.
func (g *gitApp) waitBuild(b store.Build, want ...string) store.Build {
	g.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		cur, err := g.db.Build(context.Background(), b.OrganizationID, b.ID)
		if err != nil {
			g.t.Fatal(err)
		}
		for _, w := range want {
			if cur.Status == w {
				return cur
			}
		}
		if store.BuildTerminal(cur.Status) {
			g.t.Fatalf("build #%d ended %s (%s), want %v; log:\n%s", cur.Seq, cur.Status, cur.Error, want, g.log(cur))
		}
		time.Sleep(200 * time.Millisecond)
	}
	g.t.Fatalf("build #%d not %v within 2 minutes; log:\n%s", b.Seq, want, g.log(b))
	return store.Build{}
}

func (g *gitApp) log(b store.Build) string {
	lines, err := g.mgr.BuildLog(context.Background(), g.p, b, 0, 10000)
	if err != nil {
		g.t.Fatal(err)
	}
	var out []string
	for _, l := range lines {
		out = append(out, l.Line)
	}
	return strings.Join(out, "\n")
}

// serviceImage is the image the app's current release runs.
func (g *gitApp) serviceImage() string {
	g.t.Helper()
	a, err := g.db.App(context.Background(), g.p.Organization.ID, g.app.ID)
	if err != nil {
		g.t.Fatal(err)
	}
	d, err := g.db.Deployment(context.Background(), a.OrganizationID, a.CurrentDeploymentID)
	if err != nil {
		g.t.Fatal(err)
	}
	svc, _, err := g.docker.ServiceInspectWithRaw(context.Background(), d.Service, swarm.ServiceInspectOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	return svc.Spec.TaskTemplate.ContainerSpec.Image
}

// push delivers a GitHub push webhook of commit, signed with the app's secret.
func (g *gitApp) push(commit, deliveryID string) WebhookResult {
	g.t.Helper()
	var payload map[string]any
	raw, err := os.ReadFile("../webhook/testdata/github/push.json")
	if err != nil {
		g.t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &payload); err != nil {
		g.t.Fatal(err)
	}
	payload["after"] = commit
	hc := payload["head_commit"].(map[string]any)
	hc["id"], hc["message"] = commit, "second\n\nwith a body"
	body, _ := json.Marshal(payload)
	secret, err := g.mgr.WebhookSecret(context.Background(), g.p, g.ref)
	if err != nil {
		g.t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	h := http.Header{}
	h.Set("X-GitHub-Event", "push")
	h.Set("X-GitHub-Delivery", deliveryID)
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	src, err := g.mgr.GitSource(context.Background(), g.p, g.ref)
	if err != nil {
		g.t.Fatal(err)
	}
	res, err := g.mgr.Webhook(context.Background(), src.WebhookID, h, body)
	if err != nil {
		g.t.Fatal(err)
	}
	return res
}

func TestGitBuildDeployAndPush(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	ctx := context.Background()

	// An image deploy of a git app is refused: it would skip the build.
	if _, err := g.mgr.Deploy(ctx, g.p, g.ref, DeployInput{}); err == nil || !strings.Contains(err.Error(), "deploys from git") {
		t.Fatalf("Deploy of a git app: %v", err)
	}

	first := g.repo.Head(t)
	b, err := g.mgr.StartBuild(ctx, g.p, g.ref, "")
	if err != nil {
		t.Fatal(err)
	}
	b = g.waitBuild(b, store.BuildSucceeded)
	if b.Commit != first || b.Author != gitserver.AuthorName || b.Message != "first" || b.ImageID == "" {
		t.Errorf("build record: %+v, want commit %s by %s", b, first, gitserver.AuthorName)
	}
	d, err := g.db.Deployment(ctx, b.OrganizationID, b.DeploymentID)
	if err != nil {
		t.Fatalf("the build's deployment %s: %v", b.DeploymentID, err)
	}
	g.wait(d, store.DeployLive)
	if img := g.serviceImage(); !strings.Contains(img, b.DeploymentID) && !strings.Contains(img, b.ImageID) {
		t.Errorf("release runs %s, want the build's image %s (%s)", img, b.Image, b.ImageID)
	}
	log1 := g.log(b)
	for _, want := range []string{"Resolving main", "Checked out " + first[:12], "Built berth/"} {
		if !strings.Contains(log1, want) {
			t.Errorf("build log lacks %q:\n%s", want, log1)
		}
	}

	// A push of a new commit builds and deploys it; the unchanged first
	// stage comes from the cache; a redelivery builds nothing.
	second := g.repo.Commit(t, map[string]string{"Dockerfile": dockerfile("two", "")}, "second")
	res := g.push(second, "delivery-1")
	if res.Status != http.StatusAccepted || res.Build == nil {
		t.Fatalf("push: %+v", res)
	}
	if again := g.push(second, "delivery-1"); again.Status != http.StatusOK || again.Build != nil || !strings.Contains(again.Message, "received before") {
		t.Errorf("redelivery: %+v", again)
	}
	b2 := g.waitBuild(*res.Build, store.BuildSucceeded)
	if b2.Commit != second || b2.Trigger != "push" || b2.Message != "second" {
		t.Errorf("pushed build: %+v", b2)
	}
	d2, err := g.db.Deployment(ctx, b2.OrganizationID, b2.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	g.wait(d2, store.DeployLive)
	if log2 := g.log(b2); !testenv.BuildStepCached(log2, "RUN echo generated") {
		t.Errorf("second build did not reuse the cache:\n%s", log2)
	}
	// The image is the builds' to set: a spec may leave it out, not change it.
	spec := g.app.Spec
	spec.Image, spec.Replicas = "", 2
	if a, err := g.mgr.UpdateSpec(ctx, g.p, g.ref, spec); err != nil || a.Spec.Image != b2.Image || a.Spec.Replicas != 2 {
		t.Errorf("spec update without an image: %+v, %v", a.Spec, err)
	}
	spec.Image = "nginx:1.27"
	var fe *app.FieldError
	if _, err := g.mgr.UpdateSpec(ctx, g.p, g.ref, spec); !errors.As(err, &fe) || fe.Field != "image" {
		t.Errorf("setting a git app's image by hand: %v", err)
	}
	builds, err := g.mgr.Builds(ctx, g.p, g.ref, 10)
	if err != nil || len(builds) != 2 {
		t.Fatalf("builds: %d, %v; want 2 (the redelivery queued nothing)", len(builds), err)
	}

	// Deleting the app removes its built images once its containers stop.
	if err := g.mgr.DeleteApp(ctx, g.p, g.ref, false); err != nil {
		t.Fatal(err)
	}
	f := filters.NewArgs(filters.Arg("label", build.LabelApp+"="+g.app.ID))
	for deadline := time.Now().Add(90 * time.Second); ; {
		imgs, err := g.docker.ImageList(ctx, image.ListOptions{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(imgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d images of the deleted app remain 90 s after it went, e.g. %v", len(imgs), imgs[0].RepoTags)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestGitBuildCancelAndFailureKeepServing(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	ctx := context.Background()
	b := g.waitBuild(g.start(), store.BuildSucceeded)
	d, _ := g.db.Deployment(ctx, b.OrganizationID, b.DeploymentID)
	g.wait(d, store.DeployLive)
	serving := g.serviceImage()

	// A running build is stopped in the engine when cancelled.
	g.repo.Commit(t, map[string]string{"Dockerfile": dockerfile("slow", "RUN sleep 300\n")}, "slow")
	slow := g.start()
	g.waitBuild(slow, store.BuildRunning)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(g.log(slow), "sleep 300") {
		if time.Now().After(deadline) {
			t.Fatalf("the sleep step never started:\n%s", g.log(slow))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancelled, err := g.mgr.CancelBuild(ctx, g.p, slow)
	if err != nil || cancelled.Status != store.BuildCancelled {
		t.Fatalf("cancel: %+v, %v", cancelled, err)
	}
	if _, err := g.mgr.CancelBuild(ctx, g.p, cancelled); err == nil {
		t.Error("cancelling a cancelled build again was accepted")
	}
	deadline = time.Now().Add(30 * time.Second)
	for sleeping(t, g) {
		if time.Now().After(deadline) {
			t.Fatal("the build's `sleep 300` container still runs 30 s after the cancel")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, err := g.db.Deployment(ctx, slow.OrganizationID, slow.DeploymentID); err == nil {
		t.Error("a cancelled build created its deployment")
	}

	// A failing step fails the build in plain words and deploys nothing.
	g.repo.Commit(t, map[string]string{"Dockerfile": dockerfile("broken", "RUN false\n")}, "broken")
	failed := g.waitBuild(g.start(), store.BuildFailed)
	if !strings.Contains(failed.Error, "RUN false") {
		t.Errorf("failed build's error does not name the step: %q", failed.Error)
	}
	if _, err := g.db.Deployment(ctx, failed.OrganizationID, failed.DeploymentID); err == nil {
		t.Error("a failed build created its deployment")
	}
	if img := g.serviceImage(); img != serving {
		t.Errorf("after a cancelled and a failed build the app runs %s, want %s still", img, serving)
	}

	// A build whose job is gone (a server died before queuing it) is ended
	// by the sweep, never left queued.
	orphan := store.Build{OrganizationID: g.app.OrganizationID, AppID: g.app.ID, Trigger: "manual", Ref: "refs/heads/main", CreatedBy: "test"}
	if err := g.db.CreateBuild(ctx, time.Now().Add(-2*time.Minute), &orphan); err != nil {
		t.Fatal(err)
	}
	if err := g.mgr.SweepBuilds(ctx); err != nil {
		t.Fatal(err)
	}
	if o, _ := g.db.Build(ctx, orphan.OrganizationID, orphan.ID); o.Status != store.BuildFailed {
		t.Errorf("orphan build after the sweep: %s", o.Status)
	}
}

// sleeping reports whether a build container of the test still runs `sleep 300`.
func sleeping(t *testing.T, g *gitApp) bool {
	list, err := g.docker.ContainerList(context.Background(), container.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if strings.Contains(c.Command, "sleep 300") {
			return true
		}
	}
	return false
}

// start queues a build of the branch head.
func (g *gitApp) start() store.Build {
	g.t.Helper()
	b, err := g.mgr.StartBuild(context.Background(), g.p, g.ref, "")
	if err != nil {
		g.t.Fatal(err)
	}
	return b
}

// With a build registry, images are pushed with the organization's
// credential and deployed from the registry; without the credential the
// build fails in the registry's words and deploys nothing.
func TestGitBuildPushesToRegistry(t *testing.T) {
	t.Parallel()
	reg := testenv.Registry(t)
	g := newGitApp(t, reg.Server+"/builds")
	ctx := context.Background()

	refused := g.waitBuild(g.start(), store.BuildFailed)
	if !strings.Contains(refused.Error, "push") || !strings.Contains(strings.ToLower(refused.Error), "auth") {
		t.Errorf("push without credentials failed with %q, want the registry's refusal", refused.Error)
	}
	if _, err := g.db.Deployment(ctx, refused.OrganizationID, refused.DeploymentID); err == nil {
		t.Error("a build whose push failed created its deployment")
	}

	if _, err := g.mgr.CreateRegistry(ctx, g.p, RegistryInput{Name: "local", Server: reg.Server, Username: reg.Username, Password: reg.Password}); err != nil {
		t.Fatal(err)
	}
	b := g.waitBuild(g.start(), store.BuildSucceeded)
	if !strings.HasPrefix(b.Image, reg.Server+"/builds/") {
		t.Errorf("built image %s, want it in %s/builds", b.Image, reg.Server)
	}
	log := g.log(b)
	if !strings.Contains(log, "Pushed sha256:") || strings.Contains(log, reg.Password) {
		t.Errorf("build log of a push (no password allowed):\n%s", log)
	}
	d, err := g.db.Deployment(ctx, b.OrganizationID, b.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	d = g.wait(d, store.DeployLive)
	if !strings.HasPrefix(d.Image, reg.Server+"/builds/") || !strings.HasPrefix(d.ImageDigest, reg.Server+"/builds/") || !strings.Contains(d.ImageDigest, "@sha256:") {
		t.Errorf("deployment image %s pinned to %q, want the registry image and its digest", d.Image, d.ImageDigest)
	}
}

// A git app's source is edited after creation: bad input changes nothing,
// the next build follows the new branch and Dockerfile, the token is kept,
// replaced or removed, an SSH repository gets a deploy key and forgets the
// old host's keys, and a rotated webhook secret refuses the old one.
func TestGitSourceUpdate(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	ctx := context.Background()
	before, err := g.mgr.GitSource(ctx, g.p, g.ref)
	if err != nil {
		t.Fatal(err)
	}
	change := func(mod func(*GitChange)) GitChange {
		c := GitChange{GitInput: GitInput{Source: before.Source, Branch: before.Branch, Build: before.Build}}
		mod(&c)
		return c
	}
	for field, c := range map[string]GitChange{
		"git.branch":       change(func(c *GitChange) { c.Branch = "-dev" }),
		"git.dockerfile":   change(func(c *GitChange) { c.Build.Dockerfile = "../Dockerfile" }),
		"git.remove_token": change(func(c *GitChange) { c.Token, c.RemoveToken = "t0ken", true }),
		"git.url":          change(func(c *GitChange) { c.Source = gitsrc.Source{Variant: &gitsrc.URL{URL: "file:///etc"}} }),
	} {
		_, err := g.mgr.UpdateGitSource(ctx, g.p, g.ref, c)
		var fe *app.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: err = %v, want a FieldError on %s", field, err, field)
		}
	}
	if now, _ := g.mgr.GitSource(ctx, g.p, g.ref); now.Branch != "main" || now.Build.Dockerfile != "" || now.HasToken {
		t.Fatalf("refused changes changed the source: %+v", now)
	}

	g.repo.Commit(t, map[string]string{"deploy/Dockerfile": dockerfile("dev", "")}, "dev build")
	gitserver.Git(t, g.repo.Dir, "branch", "dev", "main")
	src, err := g.mgr.UpdateGitSource(ctx, g.p, g.ref, change(func(c *GitChange) {
		c.Branch, c.Build.Dockerfile, c.Token = "dev", "deploy/Dockerfile", "t0ken"
	}))
	if err != nil {
		t.Fatal(err)
	}
	if src.Branch != "dev" || !src.HasToken || strings.Join(src.Filter.Branches, ",") != "dev" || src.WebhookID != before.WebhookID {
		t.Errorf("after the update: branch %q, token %v, filter %v, webhook %q (was %q)", src.Branch, src.HasToken, src.Filter.Branches, src.WebhookID, before.WebhookID)
	}
	b := g.waitBuild(g.start(), store.BuildSucceeded)
	if b.Ref != "refs/heads/dev" || b.Commit != g.repo.Head(t) {
		t.Errorf("build of %s at %s, want refs/heads/dev at %s", b.Ref, b.Commit, g.repo.Head(t))
	}

	src, err = g.mgr.UpdateGitSource(ctx, g.p, g.ref, change(func(c *GitChange) { c.Branch = "dev" }))
	if err != nil || !src.HasToken {
		t.Errorf("an update without a token: has_token %v (err %v), want the stored token kept", src.HasToken, err)
	}
	if src, err = g.mgr.UpdateGitSource(ctx, g.p, g.ref, change(func(c *GitChange) { c.RemoveToken = true })); err != nil || src.HasToken {
		t.Errorf("remove_token: has_token %v (err %v)", src.HasToken, err)
	}

	if err := g.db.AddKnownHosts(ctx, g.p.Organization.ID, g.app.ID, "old.example.com ssh-ed25519 AAAA\n"); err != nil {
		t.Fatal(err)
	}
	src, err = g.mgr.UpdateGitSource(ctx, g.p, g.ref, change(func(c *GitChange) {
		c.Source = gitsrc.Source{Variant: &gitsrc.URL{URL: "git@git.example.com:shop/api.git"}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(src.DeployKey, "ssh-ed25519 ") || src.KnownHosts != "" {
		t.Errorf("moved to SSH on another host: deploy key %q, known hosts %q; want a key and no old host keys", src.DeployKey, src.KnownHosts)
	}

	old, err := g.mgr.WebhookSecret(ctx, g.p, g.ref)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := g.mgr.RotateWebhookSecret(ctx, g.p, g.ref)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old || len(fresh) < 32 {
		t.Fatalf("rotated secret %q (old %q)", fresh, old)
	}
	ping := func(secret string) int {
		body := []byte(`{"zen":"hi","hook_id":1}`)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		h := http.Header{}
		h.Set("X-GitHub-Event", "ping")
		h.Set("X-GitHub-Delivery", fmt.Sprint(time.Now().UnixNano()))
		h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		res, err := g.mgr.Webhook(ctx, src.WebhookID, h, body)
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}
	if got := ping(old); got != http.StatusUnauthorized {
		t.Errorf("a delivery signed with the old secret: %d, want 401", got)
	}
	if got := ping(fresh); got != http.StatusOK {
		t.Errorf("a delivery signed with the new secret: %d, want 200", got)
	}
}
