package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// newBuildServer is newAppServer whose Manager queues builds on a real job
// queue that never runs them: the tests play the builder through the store.
func newBuildServer(t *testing.T) *appServer {
	t.Helper()
	return newBuildServerWith(t, deploy.BuildConfig{})
}

// newBuildServerWith is newBuildServer with cfg's build settings (a git CA
// file, say); the queue and PrivateHosts are newBuildServer's.
func newBuildServerWith(t *testing.T, cfg deploy.BuildConfig) *appServer {
	t.Helper()
	isolate(t)
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	rel := &fakeReleases{}
	log := slog.New(slog.DiscardHandler)
	mgr := deploy.NewManager(db, keys, rel, deploy.NewEngine(db, rel, keys, log, deploy.Options{}))
	workers := jobs.NewWorkers()
	if err := jobs.Register(workers, jobs.BuildKind(time.Minute), mgr.RunBuild); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.Open(ctx, db.SQL(), db.Dialect(), jobs.Options{Workers: workers}) // never started
	if err != nil {
		t.Fatal(err)
	}
	cfg.Queue, cfg.PrivateHosts = q, true // the test hosts do not resolve here
	mgr.WithBuilds(cfg)
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth: auth.New(db, auth.Options{}), Engine: fakeEngine{}, Apps: mgr, Log: log,
		SetupAllowed: func(*http.Request) bool { return true },
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mustRun(t, password+"\n", "setup", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, password+"\n", "login", "--server", srv.URL, "--email", email, "--password-stdin")
	return &appServer{url: srv.URL, db: db, releases: rel}
}

func TestGitAppCommands(t *testing.T) {
	srv := newBuildServer(t)
	mustRun(t, "", "project", "create", "shop")
	const token = "glpat-planted-token-never-shown"
	const repo = "https://git.example.com/shop/api.git"

	for _, b := range []struct {
		want string
		args []string
	}{
		{"--git and --image", []string{"--git", repo, "--image", "nginx:1.27"}},
		{"--image is required", []string{"--port", "80"}},
		{"--branch is for apps built from git", []string{"--image", "nginx:1.27", "--branch", "main"}},
		{"--build-arg", []string{"--git", repo, "--build-arg", "NOVALUE"}},
		{"--build-secret is for apps built from git", []string{"--image", "nginx:1.27", "--build-secret", "NPM_TOKEN"}},
		{`git.build_secrets "NPM-TOKEN" is not a valid variable name`, []string{"--git", repo, "--build-secret", "NPM-TOKEN"}},
		{"git.url", []string{"--git", "file:///srv/git/api.git"}},
		{"git.url", []string{"--git", "--upload-pack=touch /tmp/x"}},
		{"git.branch", []string{"--git", repo, "--branch", "-x"}},
		{"git.dockerfile", []string{"--git", repo, "--dockerfile", "../Dockerfile"}},
		{"git.context", []string{"--git", repo, "--context", "/srv"}},
		{"--git-token-stdin", []string{"--git", repo, "--git-token-stdin"}}, // stdin is empty
	} {
		mustFail(t, b.want, "", append([]string{"app", "create", "shop/bad"}, b.args...)...)
	}

	r := mustRun(t, token+"\n", "app", "create", "shop/api", "--git", repo, "--branch", "main", "--dockerfile", "Dockerfile", "--context", ".",
		"--target", "runtime", "--build-arg", "GO_VERSION=1.26", "--build-arg", "CGO_ENABLED=0", "--git-token-stdin",
		"--build-secret", "SENTRY_AUTH_TOKEN", "--build-secret", "NPM_TOKEN", "--watch-path", "api/**", "--deploy-tags", "--port", "8080", "--replicas", "2")
	for _, want := range []string{"Created app shop/api", "built from " + repo + " (branch main)", "Webhook URL: " + srv.url + "/hooks/", "berth app deploy shop/api --follow"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("create lacks %q:\n%s", want, r.stdout)
		}
	}
	st := appStatus(t, "shop/api")
	s := st.App.Source
	if s == nil || !s.HasToken || s.Target != "runtime" || s.BuildArgs["CGO_ENABLED"] != "0" || !s.Filter.Tags || s.Filter.WatchPaths[0] != "api/**" ||
		s.Filter.Branches[0] != "main" || st.App.Spec.Port != 8080 || *st.App.Spec.Replicas != 2 ||
		!slices.Equal(s.BuildSecrets, []string{"SENTRY_AUTH_TOKEN", "NPM_TOKEN"}) {
		t.Fatalf("created %+v / %+v", s, st.App.Spec)
	}
	r = mustRun(t, "", "app", "status", "shop/api", "-o", "json")
	if strings.Contains(r.stdout, token) {
		t.Error("the token is shown")
	}

	r = mustRun(t, "", "app", "webhook", "shop/api")
	for _, want := range []string{s.WebhookURL, "secret", "application/json", "X-Hub-Signature-256", "X-Gitlab-Token", "push"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("webhook lacks %q:\n%s", want, r.stdout)
		}
	}
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1.27")
	mustFail(t, "only apps built from git have a webhook", "", "app", "webhook", "shop/web")
	mustFail(t, "--commit is for apps built from git", "", "app", "deploy", "shop/web", "--commit", strings.Repeat("a", 40))
	mustFail(t, "--image is for apps deployed from an image", "", "app", "deploy", "shop/api", "--image", "nginx:1.27")
	mustFail(t, "commit", "", "app", "deploy", "shop/api", "--commit", "HEAD")

	r = mustRun(t, "", "app", "deploy", "shop/api")
	if !strings.Contains(r.stdout, "Build #1 queued") || !strings.Contains(r.stdout, "berth build logs bld_") {
		t.Errorf("deploy: %q", r.stdout)
	}
	r = mustRun(t, "", "build", "list", "shop/api")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "queued") || !strings.Contains(lines[1], "manual") {
		t.Errorf("build list:\n%s", r.stdout)
	}
	var list api.BuildList
	json.Unmarshal([]byte(mustRun(t, "", "build", "list", "shop/api", "-o", "json").stdout), &list)
	if len(list.Builds) != 1 {
		t.Fatalf("build list -o json: %+v", list)
	}
	id := list.Builds[0].ID
	r = mustRun(t, "", "build", "queue")
	if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "shop/api") {
		t.Errorf("queue:\n%s", r.stdout)
	}
	r = mustRun(t, "", "build", "show", id)
	if !strings.Contains(r.stdout, "#1 ("+id+") of shop/api") || !strings.Contains(r.stdout, "queued") {
		t.Errorf("show:\n%s", r.stdout)
	}
	ctx := context.Background()
	srv.db.AppendBuildLog(ctx, time.Now(), id, []string{"Fetching main", "Step 1/2 : FROM golang"})
	if r = mustRun(t, "", "build", "logs", id); r.stdout != "Fetching main\nStep 1/2 : FROM golang\n" {
		t.Errorf("logs %q", r.stdout)
	}
	r = mustRun(t, "", "build", "cancel", id)
	if !strings.Contains(r.stdout, "Build #1 ("+id+") cancelled") {
		t.Errorf("cancel: %q", r.stdout)
	}
	mustFail(t, "only queued or running builds", "", "build", "cancel", id)
	mustFail(t, "build bld_nope not found", "", "build", "show", "bld_nope")
	r = mustRun(t, "", "build", "logs", id, "-f")
	if r.stdout != "Fetching main\nStep 1/2 : FROM golang\n" || !strings.Contains(r.stderr, "cancelled") {
		t.Errorf("logs -f of an ended build %q %q", r.stdout, r.stderr)
	}

	// --follow streams the build and fails with the build's error.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			active, err := srv.db.ActiveBuilds(ctx)
			if err != nil || len(active) == 0 {
				continue
			}
			b := active[0]
			srv.db.StartBuild(ctx, time.Now(), b.OrganizationID, b.ID)
			srv.db.AppendBuildLog(ctx, time.Now(), b.ID, []string{"Step 2/2 : RUN go build", "compile error: undefined: x"})
			time.Sleep(400 * time.Millisecond)
			b.Error = "Dockerfile step 2/2 (RUN go build) failed"
			srv.db.FinishBuild(ctx, time.Now(), b, store.BuildFailed)
			return
		}
	})
	r = run(t, "", "app", "deploy", "shop/api", "--commit", strings.Repeat("b", 40), "--follow")
	close(done)
	wg.Wait()
	if r.err == nil || !strings.Contains(r.err.Error(), "build #2 failed: Dockerfile step 2/2 (RUN go build) failed") {
		t.Errorf("deploy --follow of a failing build: %v\n%s", r.err, r.stdout)
	}
	for _, want := range []string{"Build #2 queued", "@ bbbbbbbbbbbb", "] Build #2 running", "| compile error: undefined: x", "] Build #2 failed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("deploy --follow lacks %q:\n%s", want, r.stdout)
		}
	}
}

// berth app source shows and changes a git app's source, field by field;
// berth app webhook --rotate replaces the secret.
func TestGitSourceCommand(t *testing.T) {
	newBuildServer(t)
	mustRun(t, "", "project", "create", "shop")
	const token = "glpat-planted-token-for-the-edit"
	mustRun(t, token+"\n", "app", "create", "shop/api", "--git", "https://git.example.com/shop/api.git", "--git-token-stdin",
		"--build-arg", "A=1", "--build-secret", "NPM_TOKEN", "--watch-path", "api/**", "--port", "8080")
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1.27")

	r := mustRun(t, "", "app", "source", "shop/api")
	for _, want := range []string{"https://git.example.com/shop/api.git", "branch              main", "A=1", "build secrets       NPM_TOKEN\n", "api/**", "stored (never shown)", "/hooks/"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("source lacks %q:\n%s", want, r.stdout)
		}
	}
	mustFail(t, "only apps built from git have a source", "", "app", "source", "shop/web")
	mustFail(t, "git.branch", "", "app", "source", "shop/api", "--branch", "-x")
	mustFail(t, "git.dockerfile", "", "app", "source", "shop/api", "--dockerfile", "../x")
	mustFail(t, "git.build_secrets names NPM_TOKEN twice", "", "app", "source", "shop/api", "--build-secret", "NPM_TOKEN", "--build-secret", "NPM_TOKEN")
	mustFail(t, "--git-token-stdin and --remove-token", "t\n", "app", "source", "shop/api", "--git-token-stdin", "--remove-token")

	r = mustRun(t, "", "app", "source", "shop/api", "--branch", "release", "--dockerfile", "ops/Dockerfile", "--deploy-tags")
	if !strings.Contains(r.stdout, "Source of shop/api changed") {
		t.Errorf("update: %s", r.stdout)
	}
	s := appStatus(t, "shop/api").App.Source
	if s.Branch != "release" || s.Dockerfile != "ops/Dockerfile" || !s.Filter.Tags || strings.Join(s.Filter.Branches, ",") != "release" ||
		s.BuildArgs["A"] != "1" || s.Filter.WatchPaths[0] != "api/**" || !s.HasToken || !slices.Equal(s.BuildSecrets, []string{"NPM_TOKEN"}) {
		t.Errorf("after --branch/--dockerfile/--deploy-tags: %+v", s)
	}
	r = mustRun(t, "", "app", "source", "shop/api", "--build-secret", "B_TOKEN", "--build-secret", "A_TOKEN")
	if !strings.Contains(r.stdout, "build secrets       B_TOKEN, A_TOKEN\n") {
		t.Errorf("after replacing the build secrets:\n%s", r.stdout)
	}
	mustRun(t, "", "app", "source", "shop/api", "--build-arg=", "--watch-path=", "--remove-token", "--git", "git@git.example.com:shop/api.git")
	s = appStatus(t, "shop/api").App.Source
	if len(s.BuildArgs) != 0 || len(s.Filter.WatchPaths) != 0 || s.HasToken || s.Kind != "git" || !strings.HasPrefix(s.DeployKey, "ssh-ed25519 ") || s.Branch != "release" ||
		!slices.Equal(s.BuildSecrets, []string{"B_TOKEN", "A_TOKEN"}) {
		t.Errorf("after clearing and moving to SSH: %+v", s)
	}
	r = mustRun(t, "", "app", "source", "shop/api", "--build-secret=")
	if s = appStatus(t, "shop/api").App.Source; len(s.BuildSecrets) != 0 || !strings.Contains(r.stdout, "build secrets       none\n") {
		t.Errorf("after --build-secret=: %v\n%s", s.BuildSecrets, r.stdout)
	}

	before := mustRun(t, "", "app", "webhook", "shop/api", "-o", "json").stdout
	r = mustRun(t, "", "app", "webhook", "shop/api", "--rotate")
	var old api.WebhookSecret
	json.Unmarshal([]byte(before), &old)
	if !strings.Contains(r.stdout, "New secret") || strings.Contains(r.stdout, old.Secret) || old.Secret == "" {
		t.Errorf("rotate:\n%s\n(old secret %q)", r.stdout, old.Secret)
	}
}
