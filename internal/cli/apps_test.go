package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// fakeReleases stands in for Swarm; the engine never runs in these tests.
type fakeReleases struct {
	mu      sync.Mutex
	logs    []orchestrator.LogLine
	volumes []string
}

var _ orchestrator.Releases = (*fakeReleases)(nil)

func (*fakeReleases) EnsureNetwork(context.Context, string, map[string]string) error { return nil }
func (*fakeReleases) RemoveNetwork(context.Context, string) error                    { return nil }
func (*fakeReleases) ResolveImage(_ context.Context, ref string, _ *orchestrator.RegistryAuth) (orchestrator.ResolvedImage, error) {
	return orchestrator.ResolvedImage{Ref: ref}, nil
}
func (*fakeReleases) CreateRelease(context.Context, orchestrator.Release) error { return nil }
func (*fakeReleases) ReleaseState(context.Context, string) (orchestrator.ReleaseState, error) {
	return orchestrator.ReleaseState{Exists: true, Desired: 1, Running: 1,
		Tasks: []orchestrator.Task{{ID: "t1", Slot: 1, Node: "node-a", State: orchestrator.TaskRunning}}}, nil
}
func (*fakeReleases) ScaleRelease(context.Context, string, int) error { return nil }
func (*fakeReleases) RemoveRelease(context.Context, string) error     { return nil }
func (*fakeReleases) Services(context.Context, map[string]string) ([]orchestrator.ServiceInfo, error) {
	return nil, nil
}
func (f *fakeReleases) Logs(_ context.Context, _ string, opts orchestrator.LogOptions, out func(orchestrator.LogLine) error) error {
	f.mu.Lock()
	lines := f.logs
	f.mu.Unlock()
	for _, l := range lines {
		if !opts.Timestamps {
			l.Time = time.Time{}
		}
		if err := out(l); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeReleases) PruneFiles(context.Context, string) error { return nil }

func (f *fakeReleases) RemoveVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.volumes = append(f.volumes, name)
	return nil
}

type appServer struct {
	url      string
	db       *store.DB
	releases *fakeReleases
}

// newAppServer runs the real API with a real deploy.Manager on SQLite, and
// logs the CLI in to it.
func newAppServer(t *testing.T) *appServer {
	t.Helper()
	isolate(t)
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	rel := &fakeReleases{}
	log := slog.New(slog.DiscardHandler)
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth:         auth.New(db, auth.Options{}),
		Engine:       fakeEngine{},
		Apps:         deploy.NewManager(db, keys, rel, deploy.NewEngine(db, rel, keys, log, deploy.Options{})),
		Log:          log,
		SetupAllowed: func(*http.Request) bool { return true },
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mustRun(t, password+"\n", "setup", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, password+"\n", "login", "--server", srv.URL, "--email", email, "--password-stdin")
	return &appServer{url: srv.URL, db: db, releases: rel}
}

func appStatus(t *testing.T, ref string) api.AppStatus {
	t.Helper()
	var st api.AppStatus
	r := mustRun(t, "", "app", "status", ref, "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status json %q: %v", r.stdout, err)
	}
	return st
}

func TestProjectCommands(t *testing.T) {
	newAppServer(t)
	r := mustRun(t, "", "project", "create", "shop")
	if !strings.Contains(r.stdout, "Created project shop") {
		t.Errorf("create: %q", r.stdout)
	}
	mustFail(t, `a project named "shop" already exists`, "", "project", "create", "shop")
	mustFail(t, "lowercase", "", "project", "create", "Shop")
	mustRun(t, "", "project", "create", "blog")
	r = mustRun(t, "", "project", "list")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "blog") || !strings.HasPrefix(lines[2], "shop") {
		t.Errorf("list:\n%s", r.stdout)
	}
	mustRun(t, "", "project", "rename", "blog", "journal")
	mustFail(t, "project blog not found", "", "project", "rename", "blog", "x")

	mustRun(t, "", "env", "create", "shop", "staging")
	r = mustRun(t, "", "env", "list", "shop")
	if !strings.Contains(r.stdout, "production") || !strings.Contains(r.stdout, "staging") {
		t.Errorf("env list:\n%s", r.stdout)
	}

	mustRun(t, "", "app", "create", "shop/staging/web", "--image", "nginx:1.27")
	mustFail(t, "still has apps", "", "project", "delete", "shop")
	mustRun(t, "", "project", "delete", "journal")
	mustFail(t, "project journal not found", "", "project", "delete", "journal")
}

func TestAppCreateFlags(t *testing.T) {
	newAppServer(t)
	mustRun(t, "", "project", "create", "shop")
	envFile := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(envFile, []byte("# db\nDB_URL=\"postgres://db/shop\"\nMODE=file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "", "app", "create", "shop/web", "--image", "registry.example.com/shop/web:1.2", "--port", "8080", "--replicas", "2",
		"--cpu", "0.5", "--memory", "256m", "--publish", "5000:5001/udp", "--publish", "7000",
		"--volume", "data:/var/lib/data:single-writer", "--volume", "cache:/cache:ro",
		"--health-cmd", `pg_isready -h 'local host' -d "shop \"db\""`, "--command", "/bin/server --verbose", "--arg", "serve", "--arg", "a b",
		"--env", "MODE=flag", "--env", "EMPTY=", "--env-file", envFile)
	if !strings.Contains(r.stdout, "Created app shop/web") || !strings.Contains(r.stdout, "berth app deploy shop/web") {
		t.Errorf("create: %q", r.stdout)
	}
	s := appStatus(t, "shop/web").App.Spec
	if s.Resources.MemoryLimit != 268435456 || s.Resources.CPULimit != 0.5 || *s.Replicas != 2 || s.Port != 8080 {
		t.Errorf("resources/replicas/port: %+v", s)
	}
	wantPorts := []api.PublishedPort{{Target: 5001, Published: 5000, Protocol: "udp"}, {Target: 7000, Published: 7000, Protocol: "tcp"}}
	if !reflect.DeepEqual(s.Ports, wantPorts) {
		t.Errorf("ports %+v", s.Ports)
	}
	wantVolumes := []api.Volume{{Name: "data", Target: "/var/lib/data", SingleWriter: true}, {Name: "cache", Target: "/cache", ReadOnly: true}}
	if !reflect.DeepEqual(s.Volumes, wantVolumes) {
		t.Errorf("volumes %+v", s.Volumes)
	}
	if s.Health == nil || s.Health.Type != "command" || !reflect.DeepEqual(s.Health.Command, []string{"pg_isready", "-h", "local host", "-d", `shop "db"`}) {
		t.Errorf("health %+v", s.Health)
	}
	if !reflect.DeepEqual(s.Command, []string{"/bin/server", "--verbose"}) || !reflect.DeepEqual(s.Args, []string{"serve", "a b"}) {
		t.Errorf("command %q args %q", s.Command, s.Args)
	}
	r = mustRun(t, "", "env", "get", "shop/web", "--reveal", "-o", "json")
	var vars api.EnvVarList
	if err := json.Unmarshal([]byte(r.stdout), &vars); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vars.Vars {
		got[v.Key] = v.Value
	}
	if !reflect.DeepEqual(got, map[string]string{"DB_URL": "postgres://db/shop", "MODE": "flag", "EMPTY": ""}) {
		t.Errorf("variables %v", got)
	}
	r = mustRun(t, "", "env", "get", "shop/web")
	if strings.Contains(r.stdout, "postgres://") || !strings.Contains(r.stdout, "••••••") {
		t.Errorf("env get without --reveal:\n%s", r.stdout)
	}

	mustRun(t, "", "app", "create", "shop/api", "--image", "nginx:1.27", "--health-path", "/healthz", "--port", "80")
	if h := appStatus(t, "shop/api").App.Spec.Health; h == nil || h.Type != "http" || h.Path != "/healthz" {
		t.Errorf("http health %+v", h)
	}

	bad := []struct {
		want string
		args []string
	}{
		{"--image is required", nil},
		{"--image", []string{"--image", "Nginx"}},
		{"--memory", []string{"--image", "nginx", "--memory", "lots"}},
		{"--memory", []string{"--image", "nginx", "--memory", "256x"}},
		{"--publish", []string{"--image", "nginx", "--publish", "80:http"}},
		{"--publish", []string{"--image", "nginx", "--publish", "53:53/sctp"}},
		{"--volume", []string{"--image", "nginx", "--volume", "data"}},
		{"--volume", []string{"--image", "nginx", "--volume", "data:/x:rw"}},
		{"--health-cmd: unbalanced", []string{"--image", "nginx", "--health-cmd", `pg_isready "-q`}},
		{"--health-path and --health-cmd", []string{"--image", "nginx", "--health-cmd", "true", "--health-path", "/"}},
		{"--command: unbalanced", []string{"--image", "nginx", "--command", `sh -c 'x`}},
		{"--env", []string{"--image", "nginx", "--env", "1X=y"}},
		{"--env", []string{"--image", "nginx", "--env", "NOVALUE"}},
		{"--env-file", []string{"--image", "nginx", "--env-file", filepath.Join(t.TempDir(), "missing")}},
		{"--cpu", []string{"--image", "nginx", "--cpu", "-1"}},
		{"--port", []string{"--image", "nginx", "--port", "70000"}},
		{"not an app", []string{"--image", "nginx"}}, // shop alone is a project
	}
	for _, b := range bad {
		ref := "shop/bad"
		if b.want == "not an app" {
			ref = "shop"
		}
		mustFail(t, b.want, "", append([]string{"app", "create", ref}, b.args...)...)
	}
	badEnv := filepath.Join(t.TempDir(), "bad.env")
	os.WriteFile(badEnv, []byte("A=1\nB\n"), 0o600)
	mustFail(t, "line 2", "", "app", "create", "shop/bad", "--image", "nginx", "--env-file", badEnv)
	// The server's own checks reach the user, naming the field.
	mustFail(t, "resources.memory_limit", "", "app", "create", "shop/bad", "--image", "nginx", "--memory", "1k")
	r = mustRun(t, "", "app", "list", "shop")
	if strings.Contains(r.stdout, "bad") || !strings.Contains(r.stdout, "web") || !strings.Contains(r.stdout, "not deployed") {
		t.Errorf("app list:\n%s", r.stdout)
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		`a b  c`:                {"a", "b", "c"},
		`'a b' "c d"`:           {"a b", "c d"},
		`a\ b`:                  {"a b"},
		`"a\"b" 'c\d'`:          {`a"b`, `c\d`},
		`x'y'"z"`:               {"xyz"},
		`'' b`:                  {"", "b"},
		`sh -c "echo $HOME; x"`: {"sh", "-c", "echo $HOME; x"},
	} {
		got, err := splitWords(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`'a`, `"a`, `a\`, ``, `   `} {
		if got, err := splitWords(in); err == nil {
			t.Errorf("splitWords(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"268435456": 268435456, "256m": 256 << 20, "256M": 256 << 20, "1g": 1 << 30, "1.5g": 3 << 29, "512MiB": 512 << 20, "64k": 64 << 10, "2GB": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "-1m", "1.2345", "1x", "1 gigabyte"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestDeployAndDeployments(t *testing.T) {
	srv := newAppServer(t)
	mustRun(t, "", "project", "create", "shop")
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1.27", "--env", "SECRET=very-secret-value")
	mustFail(t, "not been deployed", "", "logs", "shop/web")
	mustFail(t, "app shop/nope not found", "", "app", "deploy", "shop/nope")

	r := mustRun(t, "", "app", "deploy", "shop/web")
	if !strings.Contains(r.stdout, "Deployment #1 queued") {
		t.Errorf("deploy: %q", r.stdout)
	}
	r = mustRun(t, "", "app", "deploy", "shop/web", "--image", "nginx:1.28")
	if !strings.Contains(r.stdout, "Deployment #2 queued") || !strings.Contains(r.stdout, "image nginx:1.28") {
		t.Errorf("deploy --image: %q", r.stdout)
	}
	mustFail(t, "--image", "", "app", "deploy", "shop/web", "--image", "bad image")

	r = mustRun(t, "", "app", "deployments", "shop/web")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "#") || !strings.Contains(lines[0], "DURATION") ||
		!strings.HasPrefix(lines[1], "2 ") || !strings.Contains(lines[1], "nginx:1.28") || !strings.Contains(lines[2], email) {
		t.Errorf("deployments:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "very-secret-value") {
		t.Error("deployments show a variable's value")
	}
	mustFail(t, "never became healthy", "", "app", "rollback", "shop/web", "--to", "1")
	mustFail(t, "--to is required", "", "app", "rollback", "shop/web")
	mustFail(t, "no deployment 9", "", "app", "deployment", "shop/web", "9")

	mustFail(t, "has not been deployed yet", "", "app", "restart", "shop/web")

	// --wait follows the deployment while the test plays the engine.
	r = deployWaiting(t, srv, 3, store.DeployLive, "", "app", "deploy", "shop/web", "--wait")
	for _, want := range []string{"Deployment #3 queued", "] Resolving image nginx:1.28", "] 1 of 1 replicas healthy", "Deployment #3 of shop/web is live"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("deploy --wait lacks %q:\n%s", want, r.stdout)
		}
	}
	r = deployWaiting(t, srv, 4, store.DeployFailed, "image not found", "app", "restart", "shop/web", "--wait")
	if r.err == nil || !strings.Contains(r.err.Error(), "deployment #4 failed: image not found") {
		t.Errorf("a failed deployment: %v\n%s", r.err, r.stdout)
	}

	st := appStatus(t, "shop/web")
	if st.Current == nil || st.Current.Seq != 3 || len(st.Release.Tasks) != 1 {
		t.Errorf("status %+v", st)
	}
	r = mustRun(t, "", "app", "status", "shop/web")
	for _, want := range []string{"current", "#3 nginx:1.28", "SLOT", "node-a", "running"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, "", "app", "deployment", "shop/web", "#3")
	if !strings.Contains(r.stdout, "live") || !strings.Contains(r.stdout, "1 of 1 replicas healthy") {
		t.Errorf("deployment:\n%s", r.stdout)
	}

	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	srv.releases.logs = []orchestrator.LogLine{{Time: at, Slot: 1, Stream: "stdout", Text: "hello"}, {Time: at, Slot: 2, Stream: "stderr", Text: "world"}}
	r = mustRun(t, "", "logs", "shop/web")
	if r.stdout != "1| hello\n2| world\n" {
		t.Errorf("logs %q", r.stdout)
	}
	r = mustRun(t, "", "logs", "shop/web", "--timestamps", "--since", "10m", "--tail", "5")
	if !strings.HasPrefix(r.stdout, "2030-01-02T03:04:05Z 1| hello\n") {
		t.Errorf("logs --timestamps %q", r.stdout)
	}
	mustFail(t, "--since", "", "logs", "shop/web", "--since", "yesterday")

	mustFail(t, "Pass --yes", "", "app", "delete", "shop/web")
	mustFail(t, "does not match", "wrong\n", "app", "delete", "shop/web", "--yes", "--remove-volumes")
	mustFail(t, "does not match", "", "app", "delete", "shop/web", "--yes", "--remove-volumes")
	mustRun(t, "", "app", "status", "shop/web") // still there
	r = mustRun(t, "web\n", "app", "delete", "shop/web", "--yes", "--remove-volumes")
	if !strings.Contains(r.stdout, "Deleted shop/web and its volumes") {
		t.Errorf("delete: %q", r.stdout)
	}
	mustFail(t, "app shop/web not found", "", "app", "status", "shop/web")
}

// deployWaiting runs a command that queues deployment seq and follows it,
// while playing the engine: it records steps and moves the deployment to
// status (with errMsg) once it appears.
func deployWaiting(t *testing.T, srv *appServer, seq int, status, errMsg string, args ...string) result {
	t.Helper()
	ctx := context.Background()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			active, err := srv.db.ActiveDeployments(ctx)
			if err != nil || len(active) == 0 || active[0].Seq != seq {
				continue
			}
			d := active[0]
			now := time.Now()
			srv.db.AddStep(ctx, now, d.ID, "Resolving image "+d.Image)
			svc := fmt.Sprintf("web-x-%d", seq)
			srv.db.TransitionDeployment(ctx, d.ID, []string{store.DeployQueued}, store.DeployStarting, store.DeploymentUpdate{Service: &svc, StartedAt: &now})
			time.Sleep(50 * time.Millisecond)
			srv.db.AddStep(ctx, time.Now(), d.ID, "1 of 1 replicas healthy")
			end := time.Now()
			upd := store.DeploymentUpdate{FinishedAt: &end}
			if errMsg != "" {
				upd.Error = &errMsg
			}
			if err := srv.db.TransitionDeployment(ctx, d.ID, []string{store.DeployStarting}, status, upd); err != nil {
				t.Error(err)
			}
			if status == store.DeployLive {
				srv.db.SetCurrentDeployment(ctx, end, d.AppID, d.ID)
			}
			return
		}
	})
	r := run(t, "", args...)
	close(done)
	wg.Wait()
	return r
}

func TestAppCreateFilesAndBinds(t *testing.T) {
	newAppServer(t)
	mustRun(t, "", "project", "create", "shop")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, key := write("config.yml", "listen: 80\n"), write("key.pem", "-----BEGIN KEY-----\n")
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1.27",
		"--file", "/etc/app/config.yml=@"+cfg, "--secret-file", "/run/secrets/key=@"+key,
		"--bind", "/srv/shared:/shared:ro", "--bind", "/srv/uploads:/uploads")
	s := appStatus(t, "shop/web").App.Spec
	wantFiles := []api.FileMount{
		{Target: "/etc/app/config.yml", Content: "listen: 80\n", Mode: 0o444},
		{Target: "/run/secrets/key", Content: "(secret, stored encrypted)", Secret: true, Mode: 0o444},
	}
	if !reflect.DeepEqual(s.Files, wantFiles) {
		t.Errorf("files %+v", s.Files)
	}
	wantBinds := []api.BindMount{{Source: "/srv/shared", Target: "/shared", ReadOnly: true}, {Source: "/srv/uploads", Target: "/uploads"}}
	if !reflect.DeepEqual(s.Binds, wantBinds) {
		t.Errorf("binds %+v", s.Binds)
	}

	for _, b := range []struct{ want, flag, value string }{
		{"--file", "--file", "/etc/x=" + cfg}, // no @
		{"--file", "--file", "etc/x=@" + cfg},
		{"no such file", "--file", "/etc/x=@" + filepath.Join(dir, "missing")},
		{"not a regular file", "--secret-file", "/etc/x=@" + dir},
		{"empty", "--file", "/etc/x=@" + write("empty", "")},
		{"not UTF-8", "--file", "/etc/x=@" + write("bin", "\xff\xfe\x00")},
		{"500 KiB", "--file", "/etc/x=@" + write("big", strings.Repeat("x", app.MaxFileSize))},
		{"--bind", "--bind", "/srv"},
		{"--bind", "--bind", "/srv:/x:rw"},
		{"binds[0].source", "--bind", "/var/run/docker.sock:/var/run/docker.sock"}, // the server's check
	} {
		mustFail(t, b.want, "", "app", "create", "shop/bad", "--image", "nginx", b.flag, b.value)
	}
}

func TestAppUpdate(t *testing.T) {
	srv := newAppServer(t)
	mustRun(t, "", "project", "create", "shop")
	key := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(key, []byte("-----BEGIN KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1.27", "--port", "80", "--memory", "256m",
		"--volume", "data:/data", "--health-path", "/healthz", "--arg", "serve", "--secret-file", "/run/secrets/key=@"+key)

	r := mustRun(t, "", "app", "update", "shop/web", "--image", "nginx:1.28", "--memory", "1g", "--replicas", "3",
		"--volume", "cache:/cache:ro", "--volume", "data:/data", "--command", "/bin/sh -c 'exec nginx'")
	for _, want := range []string{"Updated shop/web", "image: nginx:1.27 → nginx:1.28", "memory: 256m → 1g", "replicas: 1 → 3",
		"volumes: data:/data → cache:/cache:ro, data:/data", "command: image default → /bin/sh -c 'exec nginx'", "Deploy it: berth app deploy shop/web"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("update lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, unchanged := range []string{"port", "health", "args", "files"} {
		if strings.Contains(r.stdout, unchanged+":") {
			t.Errorf("update reports %s, which no flag changed:\n%s", unchanged, r.stdout)
		}
	}
	st := appStatus(t, "shop/web")
	s := st.App.Spec
	if s.Image != "nginx:1.28" || s.Resources.MemoryLimit != 1<<30 || *s.Replicas != 3 || s.Port != 80 ||
		!reflect.DeepEqual(s.Command, []string{"/bin/sh", "-c", "exec nginx"}) || !reflect.DeepEqual(s.Args, []string{"serve"}) ||
		s.Health == nil || s.Health.Path != "/healthz" || len(s.Volumes) != 2 || s.Volumes[0].Name != "cache" {
		t.Errorf("spec after update %+v", s)
	}
	if st.Current != nil || st.InFlight != nil {
		t.Errorf("update deployed without --deploy: %+v", st)
	}
	// The secret file went back as its placeholder, which the server keeps
	// the stored content for (internal/api tests that); it is still there.
	if len(s.Files) != 1 || !s.Files[0].Secret || s.Files[0].Content != "(secret, stored encrypted)" {
		t.Errorf("files after update %+v", s.Files)
	}

	r = mustRun(t, "", "app", "update", "shop/web", "--clear", "health", "--clear", "arg", "--clear", "secret-file", "--memory", "0")
	for _, want := range []string{"health: http /healthz → image default", "args: serve → image default", "files: /run/secrets/key (secret) → none", "memory: 1g → no limit"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("update --clear lacks %q:\n%s", want, r.stdout)
		}
	}
	s = appStatus(t, "shop/web").App.Spec
	if s.Health != nil || s.Args != nil || s.Files != nil || s.Resources.MemoryLimit != 0 {
		t.Errorf("spec after --clear %+v", s)
	}
	r = mustRun(t, "", "app", "update", "shop/web", "--image", "nginx:1.28")
	if !strings.Contains(r.stdout, "nothing changed") || strings.Contains(r.stdout, "Deploy it") {
		t.Errorf("update without a change: %q", r.stdout)
	}

	r = deployWaiting(t, srv, 1, store.DeployLive, "", "app", "update", "shop/web", "--port", "8080", "--deploy", "--wait")
	for _, want := range []string{"port: 80 → 8080", "Deployment #1 queued", "Deployment #1 of shop/web is live"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("update --deploy --wait lacks %q:\n%s", want, r.stdout)
		}
	}

	before := appStatus(t, "shop/web").App.Spec
	for _, b := range []struct {
		want string
		args []string
	}{
		{"nothing to change", nil},
		{"--image", []string{"--image", "Nginx"}},
		{"--memory", []string{"--memory", "lots"}},
		{"--port", []string{"--port", "70000"}},
		{"--volume", []string{"--volume", "data"}},
		{"--publish", []string{"--publish", "80:http"}},
		{"--bind", []string{"--bind", "/srv"}},
		{"--clear \"env\"", []string{"--clear", "env"}},
		{"--clear volume and --volume", []string{"--clear", "volume", "--volume", "x:/x"}},
		{"--clear health and --health-path", []string{"--clear", "health", "--health-path", "/up"}},
		{"--wait follows a deployment", []string{"--image", "nginx:2", "--wait"}},
		{"resources.memory_limit", []string{"--memory", "1k"}}, // the server's check
		{"app shop/nope not found", nil},
	} {
		ref := "shop/web"
		if strings.Contains(b.want, "not found") {
			ref, b.args = "shop/nope", []string{"--image", "nginx:2"}
		}
		mustFail(t, b.want, "", append([]string{"app", "update", ref}, b.args...)...)
	}
	if after := appStatus(t, "shop/web").App.Spec; !reflect.DeepEqual(after, before) {
		t.Errorf("a failed update changed the spec:\n%+v\n%+v", before, after)
	}
}
