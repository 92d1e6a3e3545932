package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/orchestrator/swarm"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

var probeOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "berth-probe")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-o", bin, "../probe/cmd/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build probe: %v\n%s", err, out)
	}
	return bin, nil
})

type harness struct {
	t       *testing.T
	dir     string
	db      *store.DB
	cluster *swarm.Engine
	docker  *client.Client
	keys    *secrets.Keyring
	mgr     *Manager
	p       auth.Principal
	stop    func()
	engine  *Engine
	install string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	host := testenv.Docker(t)
	probe, err := probeOnce()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: t.TempDir(), install: store.NewID("test")}
	h.db, err = store.Open(context.Background(), "", h.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.db.Close() })
	key, _ := secrets.GenerateKey()
	h.keys, _ = secrets.New(key)
	h.cluster, err = swarm.New(host, swarm.WithProbe(swarm.ProbeMount{HostPath: probe}))
	if err != nil {
		t.Fatal(err)
	}
	h.docker, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	org, u := store.Organization{Name: "Acme"}, store.User{Email: "dev@example.com", PasswordHash: "x"}
	if err := h.db.CompleteSetup(context.Background(), time.Now(), &org, &u); err != nil {
		t.Fatal(err)
	}
	h.p = auth.Principal{User: u, Organization: org, Role: store.RoleOwner}
	// Last to run: whatever a test left, its services, volumes and
	// environment networks go, so runs do not pile up networks in the Swarm.
	t.Cleanup(func() { h.removeAll() })
	h.start()
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) removeAll() {
	ctx := context.Background()
	projects, _ := h.mgr.Projects(ctx, h.p)
	for _, proj := range projects {
		apps, _ := h.mgr.Apps(ctx, h.p, proj.Name)
		for _, a := range apps {
			env, _ := h.db.Environment(ctx, h.p.Organization.ID, a.EnvironmentID)
			h.mgr.DeleteApp(ctx, h.p, AppRef{Project: proj.Name, Environment: env.Name, Name: a.Name}, true)
		}
		if err := h.mgr.DeleteProject(ctx, h.p, proj.Name); err != nil {
			h.t.Logf("clean up project %s: %v", proj.Name, err)
		}
	}
}

// start runs a fresh engine, as a restarted berth server would.
func (h *harness) start() {
	h.engine = NewEngine(h.db, h.cluster, h.keys, slog.New(slog.NewTextHandler(io.Discard, nil)),
		Options{HealthTimeout: 90 * time.Second, ProblemGrace: 3 * time.Second, PollInterval: 200 * time.Millisecond, InstallID: h.install})
	h.mgr = NewManager(h.db, h.keys, h.cluster, h.engine)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.engine.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done }
}

func (h *harness) wait(d store.Deployment, want ...string) store.Deployment {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		cur, err := h.db.Deployment(context.Background(), d.OrganizationID, d.ID)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, w := range want {
			if cur.Status == w {
				return cur
			}
		}
		if store.DeploymentTerminal(cur.Status) {
			steps, _ := h.db.Steps(context.Background(), d.OrganizationID, d.ID)
			h.t.Fatalf("deployment #%d ended %s (%s), want %v; steps: %+v", cur.Seq, cur.Status, cur.Error, want, steps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Fatalf("deployment #%d not %v within 2 minutes", d.Seq, want)
	return store.Deployment{}
}

func (h *harness) services(appID string) []string {
	h.t.Helper()
	list, err := h.cluster.Services(context.Background(), map[string]string{orchestrator.LabelApp: appID})
	if err != nil {
		h.t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	return names
}

// poller runs a client container on the environment network that requests
// the app by its alias every 50 ms, as another service of the project would.
func (h *harness) poller(networkName, url string) (stop func() string) {
	h.t.Helper()
	ctx := context.Background()
	c, err := h.docker.ContainerCreate(ctx, &container.Config{Image: "berth-fixture/hello:v1", Entrypoint: []string{"/hello", "-poll", url}},
		&container.HostConfig{}, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{networkName: {}}}, nil, "")
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		h.t.Fatal(err)
	}
	return func() string {
		defer h.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		rc, err := h.docker.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			h.t.Fatal(err)
		}
		defer rc.Close()
		var out bytes.Buffer
		stdcopy.StdCopy(&out, &out, rc)
		return out.String()
	}
}

func webSpec(image string) app.Spec {
	s := app.DefaultSpec()
	s.Image = image
	s.Port = 8080
	s.Replicas = 2
	s.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second)}
	s.Volumes = []app.Volume{{Name: "data", Target: "/data"}}
	return s
}

func TestDeployUpdateFailRollback(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	project := fmt.Sprintf("shop%d", time.Now().UnixNano()%1e6)
	if _, err := h.mgr.CreateProject(ctx, h.p, project); err != nil {
		t.Fatal(err)
	}
	ref := AppRef{Project: project, Environment: Production, Name: "web"}
	const secret = "s3cr3t-VALUE-never-on-disk"
	a, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: ref, Spec: webSpec("berth-fixture/hello:v1"), Env: map[string]string{"API_KEY": secret}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.mgr.DeleteApp(context.Background(), h.p, ref, true) })

	// v1
	d1 := h.wait(must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{}))(t), store.DeployLive)
	if !strings.HasPrefix(d1.ImageDigest, "sha256:") && !strings.Contains(d1.ImageDigest, "@sha256:") {
		t.Errorf("image not pinned: %q", d1.ImageDigest)
	}
	st, err := h.mgr.AppStatus(ctx, h.p, ref)
	if err != nil || st.Release.Running != 2 || st.Current == nil || st.Current.ID != d1.ID {
		t.Fatalf("status after v1: %+v %v", st, err)
	}

	// The secret is encrypted at rest: not in the database files.
	for _, f := range []string{"berth.db", "berth.db-wal"} {
		if b, err := os.ReadFile(filepath.Join(h.dir, f)); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("the plaintext secret is in %s", f)
		}
	}

	env, _ := h.db.Environment(ctx, h.p.Organization.ID, a.EnvironmentID)
	stopPoll := h.poller(env.Network, "http://web:8080/")
	time.Sleep(time.Second)

	// v2: started next to v1, v1 removed only once v2 is healthy.
	d2 := h.wait(must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{Image: "berth-fixture/hello:v2"}))(t), store.DeployLive)
	if svcs := h.services(a.ID); len(svcs) != 1 || svcs[0] != d2.Service {
		t.Errorf("after v2 the services are %v, want only %s", svcs, d2.Service)
	}
	if d1, _ = h.db.Deployment(ctx, d1.OrganizationID, d1.ID); d1.Status != store.DeployRetired {
		t.Errorf("v1 deployment is %s, want retired", d1.Status)
	}

	// v3 fails its health check: removed, never current, v2 keeps serving.
	d3 := h.wait(must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{Image: "berth-fixture/hello:v3"}))(t), store.DeployFailed)
	if !strings.Contains(d3.Error, "health check failing") || !strings.Contains(d3.Error, "500") {
		t.Errorf("v3 failure reason: %q", d3.Error)
	}
	if svcs := h.services(a.ID); len(svcs) != 1 || svcs[0] != d2.Service {
		t.Errorf("after failed v3 the services are %v, want only %s", svcs, d2.Service)
	}
	time.Sleep(time.Second)
	log := stopPoll()
	if strings.Contains(log, "err ") || !strings.Contains(log, "hello from v1") || !strings.Contains(log, "hello from v2") || strings.Contains(log, "hello from v3") {
		t.Errorf("requests to web:8080 through the deployments must all succeed, v1 then v2, never v3:\n%s", tail(log, 30))
	}

	// Roll back to #1: same digest, same config.
	d4 := h.wait(must(h.mgr.Rollback(ctx, h.p, ref, "#1"))(t), store.DeployLive)
	if d4.ImageDigest != d1.ImageDigest || d4.RollbackOf != d1.ID {
		t.Errorf("rollback pinned %s (of %s), want %s", d4.ImageDigest, d4.RollbackOf, d1.ImageDigest)
	}
	if _, err := h.mgr.Rollback(ctx, h.p, ref, "#3"); err == nil {
		t.Error("rolling back to a failed deployment must be refused")
	}
}

// A control plane stopped in the middle of a deployment (no cleanup: the
// process is gone) finishes it after a restart, without duplicate releases.
func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	project := fmt.Sprintf("resume%d", time.Now().UnixNano()%1e6)
	h.mgr.CreateProject(ctx, h.p, project)
	ref := AppRef{Project: project, Environment: Production, Name: "api"}
	spec := webSpec("berth-fixture/hello:v1")
	spec.Volumes = nil
	a, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: ref, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.mgr.DeleteApp(context.Background(), h.p, ref, false) })
	d := must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{}))(t)
	h.wait(d, store.DeployStarting)
	h.stop() // "kill": the worker stops wherever it is
	h.start()
	d = h.wait(d, store.DeployLive)
	if svcs := h.services(a.ID); len(svcs) != 1 || svcs[0] != d.Service {
		t.Fatalf("services after resume: %v, want only %s", svcs, d.Service)
	}

	// Drift: the live release deleted by hand is recreated by the reconciler.
	if err := h.cluster.RemoveRelease(ctx, d.Service); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := h.engine.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if svcs := h.services(a.ID); len(svcs) != 1 || svcs[0] != d.Service {
		t.Fatalf("services after reconcile: %v, want %s recreated", svcs, d.Service)
	}

	// Changing variables is a deployment; saving the same values is none.
	scope := EnvScope{Scope: ScopeApp, Ref: ref}
	ds, err := h.mgr.SetEnv(ctx, h.p, scope, map[string]string{"MODE": "fast"})
	if err != nil || len(ds) != 1 {
		t.Fatalf("SetEnv with a change queued %d deployments (%v), want 1", len(ds), err)
	}
	h.wait(ds[0], store.DeployLive)
	if ds, err := h.mgr.SetEnv(ctx, h.p, scope, map[string]string{"MODE": "fast"}); err != nil || len(ds) != 0 {
		t.Fatalf("SetEnv with the same values queued %d deployments (%v), want none", len(ds), err)
	}
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Resources no node has are refused up front, naming the field; nothing is created.
func TestCapacityChecked(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	project := fmt.Sprintf("cap%d", time.Now().UnixNano()%1e6)
	h.mgr.CreateProject(ctx, h.p, project)
	spec := webSpec("berth-fixture/hello:v1")
	spec.Resources.CPULimit = 500
	ref := AppRef{Project: project, Environment: Production, Name: "big"}
	_, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: ref, Spec: spec})
	var fe *app.FieldError
	if !errors.As(err, &fe) || fe.Field != "resources.cpu_limit" || !strings.Contains(fe.Message, "largest node") {
		t.Fatalf("CPU beyond every node: %v", err)
	}
	if _, err := h.mgr.App(ctx, h.p, ref); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused app was stored: %v", err)
	}
	spec.Resources.CPULimit = 0.5
	if _, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: ref, Spec: spec}); err != nil {
		t.Fatalf("half a core: %v", err)
	}
}
