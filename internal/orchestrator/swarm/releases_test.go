package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/probe"
	"github.com/berthpaas/berth/internal/testenv"
)

// The integration tests below run releases on the real swarm, from the
// fixture images of test/fixtures/build.sh (built once per machine).

var (
	probeOnce sync.Once
	probeBin  string
	probeErr  error
)

// probeBinary builds internal/probe/cmd/probe statically, once per test run.
func probeBinary(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-probe-")
		if err != nil {
			probeErr = err
			return
		}
		probeBin = filepath.Join(dir, "probe")
		cmd := exec.Command("go", "build", "-trimpath", "-o", probeBin, "github.com/berthpaas/berth/internal/probe/cmd/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = errors.New(string(out))
		}
	})
	if probeErr != nil {
		t.Fatalf("building the probe: %v", probeErr)
	}
	return probeBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if probeBin != "" {
		os.RemoveAll(filepath.Dir(probeBin))
	}
	os.Exit(code)
}

// fixtures builds the fixture images unless they exist (build.sh is cached).
var fixturesOnce sync.Once

func fixtures(t *testing.T) {
	t.Helper()
	var err error
	var out []byte
	fixturesOnce.Do(func() {
		out, err = exec.Command("../../../test/fixtures/build.sh").CombinedOutput()
	})
	if err != nil {
		t.Fatalf("test/fixtures/build.sh: %v\n%s", err, out)
	}
}

// releaseEnv is an engine with the probe, a test network and a raw client.
type releaseEnv struct {
	e       *Engine
	docker  *client.Client
	network string
	id      string
}

// newReleaseEnv makes the environment; extra options come after the
// probe's, so a WithProbe among them replaces it.
func newReleaseEnv(t *testing.T, extra ...Option) *releaseEnv {
	t.Helper()
	host := testenv.Docker(t)
	fixtures(t)
	e, err := New(host, append([]Option{WithProbe(ProbeMount{HostPath: probeBinary(t)})}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		t.Fatal(err)
	}
	env := &releaseEnv{e: e, docker: c, id: randomSuffix(t), network: "berth-test-env-" + randomSuffix(t)}
	if err := e.EnsureNetwork(ctx(t), env.network, map[string]string{orchestrator.LabelNetwork: "env_" + env.id}); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: services (registered later) go first.
	t.Cleanup(func() {
		defer c.Close()
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The network is in use until the services' tasks are gone.
		for {
			err := e.RemoveNetwork(cctx, env.network)
			if err == nil {
				return
			}
			if cctx.Err() != nil {
				t.Errorf("remove network %s: %v", env.network, err)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	return env
}

// release is a hello:v1 release on the env network, cleaned up by the test.
func (env *releaseEnv) release(t *testing.T, name, image string, edit func(r *orchestrator.Release)) orchestrator.Release {
	t.Helper()
	img, err := env.e.ResolveImage(ctx(t), image, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := orchestrator.Release{
		Service:             "berth-test-" + name + "-" + env.id,
		Alias:               "app-" + env.id,
		Network:             env.network,
		Image:               img.Ref,
		ImageHasHealthcheck: img.HasHealthcheck,
		Spec:                app.Spec{Image: image, Replicas: 1, Port: 8080},
		Labels: map[string]string{
			orchestrator.LabelApp:        "app_" + env.id,
			orchestrator.LabelDeployment: "dep_" + name,
			orchestrator.LabelRelease:    "1",
		},
	}
	if edit != nil {
		edit(&r)
	}
	if err := env.e.CreateRelease(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.e.RemoveRelease(c, r.Service); err != nil {
			t.Errorf("remove release %s: %v", r.Service, err)
		}
		env.waitContainersGone(t, c, r.Service)
		if r.VolumePrefix != "" {
			for _, v := range r.Spec.Volumes {
				if err := env.e.RemoveVolume(c, orchestrator.VolumeName(r.VolumePrefix, v.Name)); err != nil {
					t.Errorf("remove volume: %v", err)
				}
			}
		}
	})
	return r
}

// waitContainersGone waits until no container of the service is left (their
// removal follows the service's asynchronously).
func (env *releaseEnv) waitContainersGone(t *testing.T, ctx context.Context, service string) {
	t.Helper()
	for ctx.Err() == nil {
		list, err := env.docker.ContainerList(ctx, container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.name="+service))})
		if err == nil && len(list) == 0 {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitState polls ReleaseState until cond holds or the timeout passes.
func (env *releaseEnv) waitState(t *testing.T, service string, timeout time.Duration, cond func(orchestrator.ReleaseState) bool) (orchestrator.ReleaseState, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st orchestrator.ReleaseState
	for time.Now().Before(deadline) {
		var err error
		st, err = env.e.ReleaseState(ctx(t), service)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st, true
		}
		time.Sleep(250 * time.Millisecond)
	}
	return st, false
}

func stateJSON(st orchestrator.ReleaseState) string {
	b, _ := json.MarshalIndent(st, "", "  ")
	return string(b)
}

func TestReleaseRunsWithLimitsVolumesAndLogs(t *testing.T) {
	env := newReleaseEnv(t)
	start := time.Now()
	r := env.release(t, "a", "berth-fixture/hello:v1", func(r *orchestrator.Release) {
		r.Spec.Replicas = 2
		r.Spec.Resources = app.Resources{CPULimit: 0.5, MemoryLimit: 64 << 20}
		// Type "" is the default TCP probe of the port, here with a 1 s interval.
		r.Spec.Health = &app.HealthCheck{Interval: app.Duration(time.Second)}
		r.VolumePrefix = "berth-test-" + env.id
		r.Spec.Volumes = []app.Volume{{Name: "data", Target: "/data"}}
		r.Spec.ReadOnly = true
	})
	st, ok := env.waitState(t, r.Service, 60*time.Second, func(s orchestrator.ReleaseState) bool { return s.Running == 2 })
	if !ok {
		t.Fatalf("release never ran 2 replicas:\n%s", stateJSON(st))
	}
	t.Logf("create → 2 replicas running (TCP probe, 1 s interval): %v", time.Since(start).Round(10*time.Millisecond))
	if st.Desired != 2 || st.Problem != "" || st.Failures != 0 {
		t.Errorf("state:\n%s", stateJSON(st))
	}

	// Limits are enforced on the containers.
	for _, task := range st.Tasks {
		c, err := env.docker.ContainerInspect(ctx(t), task.Container)
		if err != nil {
			t.Fatal(err)
		}
		if c.HostConfig.Memory != 64<<20 || c.HostConfig.NanoCPUs != 5e8 {
			t.Errorf("container %s: memory %d, nano cpus %d; want %d, %d", task.Container, c.HostConfig.Memory, c.HostConfig.NanoCPUs, 64<<20, int64(5e8))
		}
		if c.Config.Labels[orchestrator.LabelApp] != "app_"+env.id {
			t.Errorf("container labels %v", c.Config.Labels)
		}
		// The test engine's default log driver is json-file, which keeps
		// every line unless told otherwise.
		if lc := c.HostConfig.LogConfig; lc.Type != "json-file" || lc.Config["max-size"] != "20m" || lc.Config["max-file"] != "5" {
			t.Errorf("container %s logs with %+v, want json-file rotated at 5 files of 20m", task.Container, lc)
		}
		if task.Slot < 1 || task.Node == "" || task.State != orchestrator.TaskRunning {
			t.Errorf("task %+v", task)
		}
	}
	vol, err := env.docker.VolumeInspect(ctx(t), orchestrator.VolumeName(r.VolumePrefix, "data"))
	if err != nil {
		t.Fatalf("volume: %v", err)
	}
	if vol.Labels[orchestrator.LabelManaged] != "true" {
		t.Errorf("volume labels %v", vol.Labels)
	}

	// Logs: the startup line, with its task and slot.
	var lines []orchestrator.LogLine
	err = env.e.Logs(ctx(t), r.Service, orchestrator.LogOptions{Tail: 10}, func(l orchestrator.LogLine) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, l := range lines {
		if l.Text == "listening on :8080 version v1" {
			found++
			if l.Task == "" || l.Slot < 1 || l.Stream != "stdout" || time.Since(l.Time) > time.Minute {
				t.Errorf("log line %+v", l)
			}
		}
	}
	if found != 2 {
		t.Errorf("want the startup line of both replicas, got %+v", lines)
	}

	// Services, the spec hash, idempotent create and remove.
	infos, err := env.e.Services(ctx(t), map[string]string{orchestrator.LabelApp: "app_" + env.id})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Name != r.Service || len(infos[0].SpecHash) != 64 || infos[0].Replicas != 2 || infos[0].Drifted {
		t.Fatalf("services: %+v", infos)
	}
	if err := env.e.CreateRelease(ctx(t), r); err != nil {
		t.Errorf("creating the same release again: %v", err)
	}
	other := r
	other.Labels = map[string]string{orchestrator.LabelDeployment: "dep_other"}
	if err := env.e.CreateRelease(ctx(t), other); !errors.Is(err, orchestrator.ErrServiceConflict) {
		t.Errorf("creating another deployment under the name: %v, want ErrServiceConflict", err)
	}

	// Scaling in place is not drift; a change by hand is.
	if err := env.e.ScaleRelease(ctx(t), r.Service, 1); err != nil {
		t.Fatal(err)
	}
	svc, _, err := env.docker.ServiceInspectWithRaw(ctx(t), r.Service, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	infos, _ = env.e.Services(ctx(t), map[string]string{orchestrator.LabelApp: "app_" + env.id})
	if len(infos) != 1 || infos[0].Replicas != 1 || infos[0].Drifted {
		t.Errorf("after scaling: %+v", infos)
	}
	spec := svc.Spec
	spec.TaskTemplate.ContainerSpec.Env = append(spec.TaskTemplate.ContainerSpec.Env, "BY_HAND=1")
	if _, err := env.docker.ServiceUpdate(ctx(t), svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	infos, _ = env.e.Services(ctx(t), map[string]string{orchestrator.LabelApp: "app_" + env.id})
	if len(infos) != 1 || !infos[0].Drifted {
		t.Errorf("after a change by hand: %+v, want Drifted", infos)
	}

	if err := env.e.RemoveRelease(ctx(t), r.Service); err != nil {
		t.Fatal(err)
	}
	if err := env.e.RemoveRelease(ctx(t), r.Service); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if st, err := env.e.ReleaseState(ctx(t), r.Service); err != nil || st.Exists {
		t.Errorf("after removal: %+v, %v", st, err)
	}
}

// resolve runs getent in a throwaway container on the network and returns the
// addresses name resolves to.
func (env *releaseEnv) resolve(t *testing.T, name string) []string {
	t.Helper()
	c := ctx(t)
	created, err := env.docker.ContainerCreate(c,
		&container.Config{Image: "berth-fixture/debian:bookworm", Cmd: []string{"getent", "ahostsv4", name}},
		&container.HostConfig{},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{env.network: {}}},
		nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer env.docker.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	if err := env.docker.ContainerStart(c, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitc, errc := env.docker.ContainerWait(c, created.ID, container.WaitConditionNotRunning)
	select {
	case <-waitc:
	case err := <-errc:
		t.Fatal(err)
	}
	rc, err := env.docker.ContainerLogs(c, created.ID, container.LogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out strings.Builder
	if err := readFrames(rc, func(_, l string) error { out.WriteString(l + "\n"); return nil }); err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && !slices.Contains(ips, f[0]) {
			ips = append(ips, f[0])
		}
	}
	slices.Sort(ips)
	return ips
}

// taskIPs are the addresses of the service's running tasks on the network.
func (env *releaseEnv) taskIPs(t *testing.T, service string) []string {
	t.Helper()
	tasks, err := env.docker.TaskList(ctx(t), swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", service), filters.Arg("desired-state", "running"))})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, task := range tasks {
		for _, na := range task.NetworksAttachments {
			if na.Network.Spec.Name != env.network {
				continue
			}
			for _, a := range na.Addresses {
				ips = append(ips, strings.Split(a, "/")[0])
			}
		}
	}
	slices.Sort(ips)
	return ips
}

func TestAliasSpansReleases(t *testing.T) {
	env := newReleaseEnv(t)
	fast := func(r *orchestrator.Release) {
		r.Spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second)}
	}
	a := env.release(t, "a", "berth-fixture/hello:v1", fast)
	b := env.release(t, "b", "berth-fixture/hello:v2", fast)
	for _, r := range []orchestrator.Release{a, b} {
		if st, ok := env.waitState(t, r.Service, 60*time.Second, func(s orchestrator.ReleaseState) bool { return s.Running == 1 }); !ok {
			t.Fatalf("%s never ran:\n%s", r.Service, stateJSON(st))
		}
	}
	ipsA, ipsB := env.taskIPs(t, a.Service), env.taskIPs(t, b.Service)
	both := slices.Sorted(slices.Values(append(slices.Clone(ipsA), ipsB...)))
	if got := env.resolve(t, a.Alias); !slices.Equal(got, both) {
		t.Errorf("alias %s resolves to %v, want both releases' tasks %v", a.Alias, got, both)
	}
	if err := env.e.RemoveRelease(ctx(t), a.Service); err != nil {
		t.Fatal(err)
	}
	env.waitContainersGone(t, ctx(t), a.Service)
	if got := env.resolve(t, a.Alias); !slices.Equal(got, ipsB) {
		t.Errorf("after removing A, alias resolves to %v, want B's tasks %v", got, ipsB)
	}
}

func TestFailingHealthCheckNeverRuns(t *testing.T) {
	env := newReleaseEnv(t)
	r := env.release(t, "v3", "berth-fixture/hello:v3", func(r *orchestrator.Release) {
		r.Spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second), Retries: 3, StartPeriod: app.Duration(time.Second)}
	})
	ran, start := false, time.Now()
	st, ok := env.waitState(t, r.Service, 40*time.Second, func(s orchestrator.ReleaseState) bool {
		ran = ran || s.Running > 0
		return s.Problem != ""
	})
	if ran {
		t.Error("a release failing its health check counted as running")
	}
	if !ok || !strings.Contains(st.Problem, "health check failing: ") || !strings.Contains(st.Problem, "status 500") {
		t.Fatalf("problem %q, want a failing health check with status 500:\n%s", st.Problem, stateJSON(st))
	}
	t.Logf("problem after %v: %s", time.Since(start).Round(100*time.Millisecond), st.Problem)
}

// A dynamically linked probe cannot start in an image FROM scratch, which
// has no loader: the problem says so and how to fix it, not only "no such
// file or directory".
func TestDynamicProbeExplained(t *testing.T) {
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	interp, err := probe.Interpreter(bin)
	if err != nil || interp == "" {
		t.Fatalf("%s: interpreter %q, %v; want a dynamic executable", bin, interp, err)
	}
	env := newReleaseEnv(t, WithProbe(ProbeMount{HostPath: bin, Interpreter: interp}))
	// A start period and retries that would take a minute: the verdict
	// comes at the first failed probe, since no retry can succeed.
	r := env.release(t, "dyn", "berth-fixture/hello:v1", func(r *orchestrator.Release) {
		r.Spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second), Retries: 10, StartPeriod: app.Duration(30 * time.Second)}
	})
	st, ok := env.waitState(t, r.Service, 25*time.Second, func(s orchestrator.ReleaseState) bool { return s.Problem != "" })
	if !ok || !strings.Contains(st.Problem, "health check cannot run: the probe /.berth/probe is dynamically linked") ||
		!strings.Contains(st.Problem, "no "+interp+" to load it") || !strings.Contains(st.Problem, "CGO_ENABLED=0") {
		t.Fatalf("problem %q, want the dynamic probe explained:\n%s", st.Problem, stateJSON(st))
	}
	t.Logf("problem: %s", st.Problem)
}

func TestCrashLoopAndOOM(t *testing.T) {
	env := newReleaseEnv(t)
	crash := env.release(t, "crash", "berth-fixture/crash:v1", func(r *orchestrator.Release) { r.Spec.Port = 0 })
	oom := env.release(t, "oom", "berth-fixture/oom:v1", func(r *orchestrator.Release) {
		r.Spec.Port = 0
		r.Spec.Resources.MemoryLimit = 16 << 20
	})
	tests := []struct {
		r    orchestrator.Release
		want string
	}{
		{crash, "crash looping (exit code 1)"},
		{oom, "out of memory (OOM-killed; memory limit 16 MiB)"},
	}
	for _, tt := range tests {
		st, ok := env.waitState(t, tt.r.Service, 45*time.Second, func(s orchestrator.ReleaseState) bool { return s.Problem != "" })
		if !ok || !strings.Contains(st.Problem, tt.want) {
			t.Errorf("%s: problem %q, want %q:\n%s", tt.r.Service, st.Problem, tt.want, stateJSON(st))
			continue
		}
		if st.Failures < 1 || st.Running != 0 {
			t.Errorf("%s: %+v", tt.r.Service, st)
		}
		t.Logf("%s: %s", tt.r.Service, st.Problem)
	}
}

func TestResolveImage(t *testing.T) {
	env := newReleaseEnv(t)
	_, err := env.e.ResolveImage(ctx(t), "berth-fixture/nope:v1", nil)
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "berth-fixture/nope:v1") {
		t.Errorf("missing image: %v", err)
	}
	if !errors.Is(err, orchestrator.ErrImageNotFound) && !errors.Is(err, orchestrator.ErrRegistryUnreachable) {
		t.Errorf("missing image: %v, want ErrImageNotFound or ErrRegistryUnreachable", err)
	}
	img, err := env.e.ResolveImage(ctx(t), "berth-fixture/hello:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := env.docker.ImageInspect(ctx(t), "berth-fixture/hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	// A fixture is built here and never pushed: no repo digest, so the id.
	if img.Ref != id.ID || img.HasHealthcheck {
		t.Errorf("resolved %+v, want ref %s without a healthcheck", img, id.ID)
	}
	again, err := env.e.ResolveImage(ctx(t), img.Ref, nil)
	if err != nil || again.Ref != img.Ref {
		t.Errorf("resolving the pinned ref: %+v, %v", again, err)
	}
	// The pinned ref runs (the default TCP probe of the port gates it).
	r := env.release(t, "pinned", img.Ref, func(r *orchestrator.Release) {
		// Type "" is the default TCP probe of the port, here with a 1 s interval.
		r.Spec.Health = &app.HealthCheck{Interval: app.Duration(time.Second)}
	})
	svc, _, err := env.docker.ServiceInspectWithRaw(ctx(t), r.Service, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Spec.TaskTemplate.ContainerSpec.Image; got != img.Ref {
		t.Errorf("service image %s, want %s", got, img.Ref)
	}
	if st, ok := env.waitState(t, r.Service, 60*time.Second, func(s orchestrator.ReleaseState) bool { return s.Running == 1 }); !ok {
		t.Fatalf("pinned release never ran:\n%s", stateJSON(st))
	}
}

func TestRemoveMissing(t *testing.T) {
	env := newReleaseEnv(t)
	for name, err := range map[string]error{
		"release": env.e.RemoveRelease(ctx(t), "berth-test-missing-"+env.id),
		"network": env.e.RemoveNetwork(ctx(t), "berth-test-missing-"+env.id),
		"volume":  env.e.RemoveVolume(ctx(t), "berth-test-missing-"+env.id),
	} {
		if err != nil {
			t.Errorf("removing a missing %s: %v", name, err)
		}
	}
	if err := env.e.ScaleRelease(ctx(t), "berth-test-missing-"+env.id, 1); !errors.Is(err, orchestrator.ErrServiceNotFound) {
		t.Errorf("scaling a missing release: %v", err)
	}
	st, err := env.e.ReleaseState(ctx(t), "berth-test-missing-"+env.id)
	if err != nil || st.Exists {
		t.Errorf("state of a missing release: %+v, %v", st, err)
	}
	if err := env.e.EnsureNetwork(ctx(t), env.network, nil); err != nil {
		t.Errorf("ensuring an existing network: %v", err)
	}
}
