// Package git_test measures push-to-live of a git-sourced app: from the
// webhook delivery received to the new version's release live (healthy and
// current), with the build's phases, beside a plain `git clone` + classic
// `docker build` of the same commit in the same run:
//
//	bash test/fixtures/build.sh
//	go test -run '^$' -bench . -benchtime 3x ./bench/git
//
// Cold: each push changes the Dockerfile's first step, so no layer of the
// app is cached (the base images are local fixtures in both cases: nothing
// is pulled). Warm: each push changes only version.txt, so the steps before
// its COPY come from the cache.
//
// Reported per push: push-live-s (webhook → live), queue-s (build queued →
// started), fetch-s and build-s (as the build's log states them), deploy-s
// (build finished → deployment live), raw-s (git clone + docker build of the
// same commit) and build/raw ((fetch+build) ÷ raw).
package git_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/jobs"
	bswarm "github.com/berthpaas/berth/internal/orchestrator/swarm"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
	"github.com/berthpaas/berth/internal/testenv/gitserver"
)

type rig struct {
	db       *store.DB
	mgr      *deploy.Manager
	p        auth.Principal
	docker   *client.Client
	git      *gitserver.Server
	repo     *gitserver.Repo
	ref      deploy.AppRef
	appID    string
	hookID   string
	secret   string
	head     string
	files    map[string]string
	delivery int
}

func newRig(b *testing.B) *rig {
	host := testenv.Docker(b)
	dir := b.TempDir()
	probe := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", probe, "../../internal/probe/cmd/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build probe: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db, err := store.Open(ctx, "", dir)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := secrets.GenerateKey()
	keys, _ := secrets.New(key)
	cluster, err := bswarm.New(host, bswarm.WithProbe(bswarm.ProbeMount{HostPath: probe}))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine := deploy.NewEngine(db, cluster, keys, log,
		deploy.Options{PollInterval: 100 * time.Millisecond, ProblemGrace: 2 * time.Second, InstallID: store.NewID("bench")})
	mgr := deploy.NewManager(db, keys, cluster, engine)
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	workers := jobs.NewWorkers()
	if err := jobs.Register(workers, jobs.BuildKind(10*time.Minute), mgr.RunBuild); err != nil {
		b.Fatal(err)
	}
	queue, err := jobs.Open(ctx, db.SQL(), db.Dialect(), jobs.Options{Workers: workers, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	git := gitserver.Start(b, gitserver.Options{})
	workDir := filepath.Join(dir, "builds")
	os.Mkdir(workDir, 0o700)
	mgr.WithBuilds(deploy.BuildConfig{Queue: queue, Docker: docker, WorkDir: workDir, KeepImages: 3, GitCAFile: git.CAFile, PrivateHosts: true, Log: log})
	if err := queue.Start(ctx); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	b.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		queue.Close(cctx)
		cancel()
		<-done
		db.Close()
	})
	org, u := store.Organization{Name: "bench"}, store.User{Email: "bench@example.com", PasswordHash: "x"}
	if err := db.CompleteSetup(ctx, time.Now(), &org, &u); err != nil {
		b.Fatal(err)
	}
	r := &rig{db: db, mgr: mgr, p: auth.Principal{User: u, Organization: org, Role: store.RoleOwner}, docker: docker, git: git}
	r.files = map[string]string{}
	for _, name := range []string{"Dockerfile", "version.txt"} {
		c, err := os.ReadFile(filepath.Join("../../test/fixtures/gitapp", name))
		if err != nil {
			b.Fatal(err)
		}
		r.files[name] = string(c)
	}
	return r
}

// app creates the git-sourced app and deploys its first commit.
func (r *rig) app(b *testing.B) {
	ctx := context.Background()
	project := fmt.Sprintf("bench%d", time.Now().UnixNano()%1e6)
	if _, err := r.mgr.CreateProject(ctx, r.p, project); err != nil {
		b.Fatal(err)
	}
	r.ref = deploy.AppRef{Project: project, Environment: deploy.Production, Name: "api"}
	r.repo = r.git.NewRepo(b, project+"/api")
	spec := app.DefaultSpec()
	spec.Port, spec.Replicas = 8080, 1
	spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second)}
	a, src, err := r.mgr.CreateGitApp(ctx, r.p, deploy.CreateAppInput{Ref: r.ref, Spec: spec}, deploy.GitInput{
		Source: gitsrc.Source{Variant: &gitsrc.URL{URL: r.repo.CloneURL()}}, Branch: "main", Build: store.BuildSettings{Dockerfile: "Dockerfile"},
	})
	if err != nil {
		b.Fatal(err)
	}
	r.appID, r.hookID = a.ID, src.WebhookID
	if r.secret, err = r.mgr.WebhookSecret(ctx, r.p, r.ref); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		r.mgr.DeleteApp(context.Background(), r.p, r.ref, false)
		r.mgr.DeleteProject(context.Background(), r.p, project)
		r.removeImages()
	})
	r.push(b, "first", true)
}

// removeImages removes the app's images (and with them its cached layers)
// once no container of the deleted app uses them.
func (r *rig) removeImages() {
	ctx := context.Background()
	byApp := filters.NewArgs(filters.Arg("label", "berth.app="+r.appID))
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cs, err := r.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: byApp}); err != nil || len(cs) == 0 {
			break
		}
	}
	list, _ := r.docker.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.app="+r.appID))})
	for _, img := range list {
		r.docker.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
	}
}

// phases of one push, as the build and the deployment recorded them.
type phases struct {
	total, queue, fetch, build, deploy, raw time.Duration
}

var (
	checkedOut = regexp.MustCompile(`^Checked out .* in (\S+)$`)
	builtIn    = regexp.MustCompile(`^Built .* in (\S+)$`)
)

// push commits a new version (cold: a Dockerfile whose first step changes
// too), delivers its webhook and waits until its deployment is live.
func (r *rig) push(b *testing.B, version string, cold bool) phases {
	ctx := context.Background()
	files := map[string]string{"version.txt": version + "\n", "Dockerfile": r.files["Dockerfile"]}
	if cold {
		files["Dockerfile"] = strings.Replace(files["Dockerfile"], "echo prepared >/out/prepared",
			fmt.Sprintf("echo prepared %d >/out/prepared", time.Now().UnixNano()), 1)
	}
	before := r.head
	if before == "" {
		before = strings.Repeat("0", 40)
	}
	r.head = r.repo.Commit(b, files, "release "+version)
	h, body := r.payload(before, r.head, "release "+version)

	start := time.Now()
	res, err := r.mgr.Webhook(ctx, r.hookID, h, body)
	if err != nil || res.Build == nil {
		b.Fatalf("webhook: %v %d %s", err, res.Status, res.Message)
	}
	var bl store.Build
	for {
		if bl, err = r.db.Build(ctx, r.p.Organization.ID, res.Build.ID); err != nil {
			b.Fatal(err)
		}
		if store.BuildTerminal(bl.Status) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bl.Status != store.BuildSucceeded {
		b.Fatalf("build #%d %s: %s", bl.Seq, bl.Status, bl.Error)
	}
	var d store.Deployment
	for {
		d, err = r.db.Deployment(ctx, r.p.Organization.ID, bl.DeploymentID)
		if err == nil && store.DeploymentTerminal(d.Status) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	total := time.Since(start)
	if d.Status != store.DeployLive {
		b.Fatalf("deployment #%d %s: %s", d.Seq, d.Status, d.Error)
	}
	ph := phases{total: total, queue: bl.StartedAt.Sub(bl.CreatedAt), deploy: d.FinishedAt.Sub(*bl.FinishedAt)}
	lines, err := r.db.BuildLog(ctx, bl.ID, 0, 1000)
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range lines {
		if m := checkedOut.FindStringSubmatch(l.Line); m != nil {
			ph.fetch, _ = time.ParseDuration(m[1])
		}
		if m := builtIn.FindStringSubmatch(l.Line); m != nil {
			ph.build, _ = time.ParseDuration(m[1])
		}
	}
	if ph.fetch == 0 || ph.build == 0 {
		b.Fatalf("build log states no fetch or build time:\n%v", lines)
	}
	ph.raw = r.raw(b, version, cold)
	return ph
}

// raw is the baseline: git clone and a classic docker build of the head (the
// docker CLI builds with BuildKit only through its buildx plugin, which no
// package here brings), with version.txt changed again (as the push changed it: else every step
// would come from the cache Berth's build just filled).
func (r *rig) raw(b *testing.B, version string, cold bool) time.Duration {
	dir := b.TempDir()
	start := time.Now()
	gitserver.Git(b, dir, "-c", "http.sslCAInfo="+r.git.CAFile, "clone", "-q", "--depth", "1", "--branch", "main", r.repo.CloneURL(), "co")
	if err := os.WriteFile(filepath.Join(dir, "co", "version.txt"), []byte(version+"-raw\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	tag := fmt.Sprintf("berth-bench-raw:%d", time.Now().UnixNano())
	args := []string{"build", "-q", "-t", tag, "--label", "berth.bench=raw"}
	if cold {
		args = append(args, "--no-cache")
	}
	cmd := exec.Command("docker", append(args, filepath.Join(dir, "co"))...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("raw docker build: %v\n%s", err, out)
	}
	took := time.Since(start)
	exec.Command("docker", "image", "rm", tag).Run()
	return took
}

func (r *rig) payload(before, after, message string) (http.Header, []byte) {
	author := map[string]string{"name": gitserver.AuthorName, "email": gitserver.AuthorEmail}
	commit := map[string]any{"id": after, "message": message, "timestamp": "2026-01-02T03:04:05Z", "author": author,
		"added": []string{}, "removed": []string{}, "modified": []string{"version.txt", "Dockerfile"}}
	body, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": before, "after": after, "commits": []any{commit}, "head_commit": commit,
		"repository": map[string]any{"full_name": strings.TrimSuffix(r.repo.Name, ".git"), "clone_url": r.repo.CloneURL()},
	})
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write(body)
	r.delivery++
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-GitHub-Event", "push")
	h.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), r.delivery))
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return h, body
}

func bench(b *testing.B, cold bool) {
	r := newRig(b)
	r.app(b)
	var sum phases
	for i := 0; b.Loop(); i++ {
		p := r.push(b, fmt.Sprintf("v%d-%d", i, time.Now().UnixNano()), cold)
		sum.total += p.total
		sum.queue += p.queue
		sum.fetch += p.fetch
		sum.build += p.build
		sum.deploy += p.deploy
		sum.raw += p.raw
	}
	n := float64(b.N)
	b.ReportMetric(sum.total.Seconds()/n, "push-live-s")
	b.ReportMetric(sum.queue.Seconds()/n, "queue-s")
	b.ReportMetric(sum.fetch.Seconds()/n, "fetch-s")
	b.ReportMetric(sum.build.Seconds()/n, "build-s")
	b.ReportMetric(sum.deploy.Seconds()/n, "deploy-s")
	b.ReportMetric(sum.raw.Seconds()/n, "raw-s")
	b.ReportMetric((sum.fetch+sum.build).Seconds()/sum.raw.Seconds(), "build/raw")
}

func BenchmarkPushToLiveCold(b *testing.B) { bench(b, true) }
func BenchmarkPushToLiveWarm(b *testing.B) { bench(b, false) }
