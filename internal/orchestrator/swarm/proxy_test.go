package swarm

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/testenv"
)

// The proxy tests run a stand-in for `berth proxy` (testdata/proxystub) in
// an image built by BuildProxyImage from berth-fixture/haproxy:2.6, on the
// real swarm, and look at it from the host through its host-mode port.

const proxyTestBase = "berth-fixture/haproxy:2.6"

// stubReport is what testdata/proxystub answers.
type stubReport struct {
	Args          []string `json:"args"`
	ControlURL    string   `json:"control_url"`
	Node          string   `json:"node"`
	Hostname      string   `json:"hostname"`
	UID           int      `json:"uid"`
	TokenSHA256   string   `json:"token_sha256"`
	TokenError    string   `json:"token_error"`
	StateWritable bool     `json:"state_writable"`
	StateError    string   `json:"state_error"`
	Boots         int      `json:"boots"`
	ControlStatus int      `json:"control_status"`
	ControlBody   string   `json:"control_body"`
	ControlError  string   `json:"control_error"`
}

// proxyEnv is an engine whose edge network is a network of the test's own,
// and a raw client to look behind the engine's back.
type proxyEnv struct {
	e       *Engine
	docker  *client.Client
	network string
	id      string
}

func newProxyEnv(t *testing.T) *proxyEnv {
	t.Helper()
	host := testenv.Docker(t)
	fixtures(t)
	id := randomSuffix(t)
	netName := "berth-test-edge-" + id
	e, err := New(host, WithEdgeNetwork(netName))
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
	if err := e.EnsureNetwork(ctx(t), netName, nil); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the proxy's cleanup: the network
	// is in use until the proxy's containers are gone.
	t.Cleanup(func() {
		defer c.Close()
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for {
			err := e.RemoveNetwork(cctx, netName)
			if err == nil {
				return
			}
			if cctx.Err() != nil {
				t.Errorf("remove network %s: %v", netName, err)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	return &proxyEnv{e: e, docker: c, network: netName, id: id}
}

// buildStub compiles testdata/proxystub statically into dir as "berth".
func buildStub(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "berth")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/proxystub")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the proxy stub: %v\n%s", err, out)
	}
	return bin
}

func randomToken(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte(hex.EncodeToString(b))
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// waitReport polls the proxy on the host port until cond holds.
func waitReport(t *testing.T, port int, timeout time.Duration, cond func(stubReport) bool) stubReport {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
		if err != nil {
			last = err.Error()
		} else {
			var rep stubReport
			err = json.NewDecoder(resp.Body).Decode(&rep)
			resp.Body.Close()
			switch {
			case err != nil:
				last = "decoding: " + err.Error()
			case resp.StatusCode != http.StatusOK:
				last = resp.Status
			case cond(rep):
				return rep
			default:
				last = fmt.Sprintf("%+v", rep)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("proxy on port %d: condition not met within %s; last: %s", port, timeout, last)
	return stubReport{}
}

// pingLoad sends GET /ping to the proxy stub from 8 clients, each on new
// connections (a refused connection is what a stop-first update causes),
// until stop is called.
func pingLoad(port int) (l struct{ stop func() (int64, []string) }) {
	var ok atomic.Int64
	var mu sync.Mutex
	var failed []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/ping"
	for range 8 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(b) != "pong" {
						err = fmt.Errorf("%s %q", resp.Status, b)
					}
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, time.Now().Format("15:04:05.000 ")+err.Error())
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		})
	}
	l.stop = func() (int64, []string) {
		close(done)
		wg.Wait()
		return ok.Load(), failed
	}
	return l
}

// awaitTasks waits until the service runs one task, of image.
func awaitTasks(t *testing.T, e *Engine, name, image string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		tasks, err := e.api.TaskList(ctx(t), swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", name))})
		if err != nil {
			t.Fatal(err)
		}
		var running []string
		for _, task := range tasks {
			if task.Status.State == swarm.TaskStateRunning {
				running = append(running, task.Spec.ContainerSpec.Image)
			}
		}
		if slices.Equal(running, []string{image}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s runs tasks of %q after a minute, want one of %s", name, running, image)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretNames lists the names of the proxy's secrets, sorted.
func (env *proxyEnv) secretNames(t *testing.T, name string) []string {
	t.Helper()
	list, err := env.docker.SecretList(ctx(t), swarm.SecretListOptions{Filters: filters.NewArgs(filters.Arg("label", orchestrator.LabelProxy+"="+name))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Spec.Name)
	}
	slices.Sort(names)
	return names
}

func (env *proxyEnv) service(t *testing.T, name string) (swarm.Service, bool) {
	t.Helper()
	svc, _, err := env.docker.ServiceInspectWithRaw(ctx(t), name, swarm.ServiceInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return swarm.Service{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return svc, true
}

func (env *proxyEnv) volumeExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := env.docker.VolumeInspect(ctx(t), name)
	if cerrdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// expectedProxyTag is the tag BuildProxyImage gives base + bin.
func (env *proxyEnv) expectedProxyTag(t *testing.T, base, bin string) string {
	t.Helper()
	img, err := env.docker.ImageInspect(ctx(t), base)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return proxyImageTag(proxyImageSource(img.ID, sha256Hex(b)))
}

// removeImage removes the image and its now unused parent layers, waiting
// while a container still uses it.
func (env *proxyEnv) removeImage(t *testing.T, ref string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		_, err := env.docker.ImageRemove(cctx, ref, image.RemoveOptions{PruneChildren: true})
		if err == nil || cerrdefs.IsNotFound(err) {
			return
		}
		if cctx.Err() != nil {
			t.Errorf("remove image %s: %v", ref, err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// controlServer is the control plane's internal listener as a proxy task
// reaches it: on the docker_gwbridge gateway. It answers 200 to the current
// token, 401 otherwise.
func controlServer(t *testing.T, gw netip.Addr, token *atomic.Pointer[string]) string {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(gw, 0).String())
	if err != nil {
		t.Fatalf("listening on the gateway address %s: %v", gw, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+*token.Load() {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "table")
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/internal/proxy/table"
}

// TestProxyLifecycle builds the proxy image, runs it as a global service,
// checks from the host what the container got, then rotates the token and
// removes the proxy.
func TestProxyLifecycle(t *testing.T) {
	env := newProxyEnv(t)
	e := env.e
	bin := buildStub(t, t.TempDir())

	// --- image: built once, then reused --------------------------------
	tag := env.expectedProxyTag(t, proxyTestBase, bin)
	// A leftover of an interrupted run: remove it so the first build is
	// cold (best effort: a concurrent run may be using it).
	if _, err := env.docker.ImageRemove(ctx(t), tag, image.RemoveOptions{PruneChildren: true}); err == nil {
		t.Logf("removed %s, left by an earlier run", tag)
	}
	t.Cleanup(func() { env.removeImage(t, tag) })

	start := time.Now()
	got, err := e.BuildProxyImage(ctx(t), proxyTestBase, bin)
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(start)
	if got != tag {
		t.Fatalf("BuildProxyImage = %q, want %q", got, tag)
	}
	img, err := env.docker.ImageInspect(ctx(t), tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg := img.Config
	if cfg.User != "haproxy" {
		t.Errorf("image user = %q, want haproxy", cfg.User)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/usr/local/bin/berth", "proxy"}) || len(cfg.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/usr/local/bin/berth proxy] and no cmd", cfg.Entrypoint, cfg.Cmd)
	}
	if cfg.StopSignal != "SIGTERM" {
		t.Errorf("stop signal = %q, want SIGTERM", cfg.StopSignal)
	}
	for _, p := range []string{"8080/tcp", "8443/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("exposed ports %v lack %s", cfg.ExposedPorts, p)
		}
	}
	if cfg.Labels[orchestrator.LabelManaged] != "true" || cfg.Labels[orchestrator.LabelRole] != orchestrator.RoleProxy ||
		!strings.HasPrefix(cfg.Labels[orchestrator.LabelProxySource], strings.TrimPrefix(tag, ProxyImageRepo+":")) {
		t.Errorf("image labels = %v, want managed, role proxy and the source hash", cfg.Labels)
	}

	start = time.Now()
	again, err := e.BuildProxyImage(ctx(t), proxyTestBase, bin)
	if err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	img2, err := env.docker.ImageInspect(ctx(t), tag)
	if err != nil {
		t.Fatal(err)
	}
	// A rebuild, even from the builder's cache, would tag the image anew.
	if again != tag || img2.ID != img.ID || !img2.Metadata.LastTagTime.Equal(img.Metadata.LastTagTime) {
		t.Errorf("second build: %q id %s tagged %s; want %q id %s tagged %s (no rebuild)",
			again, img2.ID, img2.Metadata.LastTagTime, tag, img.ID, img.Metadata.LastTagTime)
	}
	t.Logf("proxy image %s: cold build %s, warm %s", tag, cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	// --- service: the container gets what the spec says ------------------
	gw, err := e.GatewayAddr(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[string]
	token := randomToken(t)
	tok := string(token)
	current.Store(&tok)
	controlURL := controlServer(t, gw, &current)

	st := e.Status(ctx(t))
	var hostname string
	for _, n := range st.Swarm.Nodes {
		if n.ID == st.Swarm.NodeID {
			hostname = n.Hostname
		}
	}
	if hostname == "" {
		t.Fatalf("this node %s is not in the node list %+v", st.Swarm.NodeID, st.Swarm.Nodes)
	}

	spec := orchestrator.ProxySpec{
		Name:       "berth-test-proxy-" + env.id,
		Image:      tag,
		HTTPPort:   testenv.FreePort(t),
		HTTPSPort:  testenv.FreePort(t),
		ControlURL: controlURL,
		Token:      token,
		InstallID:  "inst_" + env.id,
		StopGrace:  5 * time.Second,
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.RemoveProxy(c, spec.Name, false); err != nil {
			t.Errorf("cleanup: RemoveProxy: %v", err)
		}
	})

	start = time.Now()
	if err := e.EnsureProxy(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	rep := waitReport(t, spec.HTTPPort, 2*time.Minute, func(r stubReport) bool { return r.ControlStatus == http.StatusOK })
	t.Logf("proxy service answering on the host port %s after EnsureProxy", time.Since(start).Round(time.Millisecond))
	t.Logf("report: %+v", rep)
	if !slices.Equal(rep.Args, []string{"proxy"}) {
		t.Errorf("args = %q, want [proxy]", rep.Args)
	}
	if rep.ControlURL != controlURL {
		t.Errorf("BERTH_PROXY_CONTROL_URL = %q, want %q", rep.ControlURL, controlURL)
	}
	if rep.Node != hostname {
		t.Errorf("BERTH_PROXY_NODE = %q, want the node's hostname %q (template expanded)", rep.Node, hostname)
	}
	if rep.TokenSHA256 != sha256Hex(token) {
		t.Errorf("token sha256 = %q (%s), want %q", rep.TokenSHA256, rep.TokenError, sha256Hex(token))
	}
	if !rep.StateWritable {
		t.Errorf("state volume not writable: %s", rep.StateError)
	}
	if rep.UID == 0 {
		t.Errorf("the proxy runs as root; want the haproxy user")
	}
	if rep.Boots != 1 {
		t.Errorf("boots = %d, want 1 (a fresh state volume)", rep.Boots)
	}
	if rep.ControlBody != "table" {
		t.Errorf("control plane answered %q (status %d, %s), want \"table\"", rep.ControlBody, rep.ControlStatus, rep.ControlError)
	}

	svc, ok := env.service(t, spec.Name)
	if !ok {
		t.Fatal("proxy service missing")
	}
	if svc.Spec.Mode.Global == nil {
		t.Errorf("mode = %+v, want global", svc.Spec.Mode)
	}
	// The access log has a line per request: on this engine (json-file by
	// default) it is rotated.
	if d := svc.Spec.TaskTemplate.LogDriver; d == nil || d.Name != "json-file" || d.Options["max-size"] != "20m" || d.Options["max-file"] != "5" {
		t.Errorf("log driver = %+v, want json-file rotated at 5 files of 20m", d)
	}
	if _, ok := env.service(t, listenerServiceName(spec.Name)); !ok {
		t.Errorf("listener holder service %s missing", listenerServiceName(spec.Name))
	}
	if l := svc.Spec.Labels; l[orchestrator.LabelInstall] != spec.InstallID || l[orchestrator.LabelRole] != orchestrator.RoleProxy || l[orchestrator.LabelManaged] != "true" {
		t.Errorf("service labels = %v", l)
	}

	// --- the same spec again changes nothing ------------------------------
	if err := e.EnsureProxy(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	same, _ := env.service(t, spec.Name)
	if same.Version.Index != svc.Version.Index {
		t.Errorf("EnsureProxy with an unchanged spec updated the service: version %d → %d", svc.Version.Index, same.Version.Index)
	}

	// --- replicas ---------------------------------------------------------
	var replicas []orchestrator.ProxyReplica
	deadline := time.Now().Add(time.Minute)
	for {
		if replicas, err = e.ProxyReplicas(ctx(t), spec.Name); err != nil {
			t.Fatal(err)
		}
		if len(replicas) == 1 && replicas[0].State == "running" || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("replicas: %+v", replicas)
	if len(replicas) != 1 {
		t.Fatalf("ProxyReplicas = %+v, want one replica", replicas)
	}
	r := replicas[0]
	if r.State != "running" || r.Desired != "running" || r.Node != hostname || r.NodeID != st.Swarm.NodeID ||
		r.Hostname != rep.Hostname || !strings.HasPrefix(r.ContainerID, r.Hostname) || r.Image != tag ||
		r.StartedAt.IsZero() || r.Error != "" {
		t.Errorf("replica = %+v, want running on %s with the container hostname %q the proxy reports", r, hostname, rep.Hostname)
	}

	// --- token rotation: a new secret, the state volume kept, and not one
	// connection refused or request failed while the proxy is replaced ----
	oldToken := token
	rotate := func(boots int) []byte {
		t.Helper()
		tok := randomToken(t)
		s := string(tok)
		current.Store(&s)
		spec.Token = tok
		start := time.Now()
		l := pingLoad(spec.HTTPPort)
		if err := e.EnsureProxy(ctx(t), spec); err != nil {
			t.Fatal(err)
		}
		rep := waitReport(t, spec.HTTPPort, 2*time.Minute, func(r stubReport) bool {
			return r.TokenSHA256 == sha256Hex(tok) && r.ControlStatus == http.StatusOK
		})
		t.Logf("rotated token served after %s", time.Since(start).Round(time.Millisecond))
		// The old task stops once the new one runs: load until it is gone.
		awaitTasks(t, e, spec.Name, spec.Image)
		ok, failed := l.stop()
		t.Logf("during the update: %d requests, %d failed %v", ok, len(failed), failed)
		if len(failed) > 0 || ok == 0 {
			t.Errorf("%d of %d requests failed while the proxy was replaced: %v", len(failed), ok+int64(len(failed)), failed)
		}
		if rep.Boots != boots {
			t.Errorf("boots = %d after the update, want %d (the state volume kept)", rep.Boots, boots)
		}
		return tok
	}
	secondToken := rotate(2)
	want := []string{proxySecretName(spec.Name, oldToken), proxySecretName(spec.Name, secondToken)}
	slices.Sort(want)
	if got := env.secretNames(t, spec.Name); !slices.Equal(got, want) {
		t.Errorf("secrets after one rotation = %v, want %v (the new one and the previous one, kept for a rollback)", got, want)
	}
	rotated, _ := env.service(t, spec.Name)
	if rotated.Version.Index == svc.Version.Index {
		t.Errorf("rotation did not update the service")
	}
	thirdToken := rotate(3)
	want = []string{proxySecretName(spec.Name, secondToken), proxySecretName(spec.Name, thirdToken)}
	slices.Sort(want)
	if got := env.secretNames(t, spec.Name); !slices.Equal(got, want) {
		t.Errorf("secrets after two rotations = %v, want %v (the first one removed)", got, want)
	}

	// --- upgrade: a new image for the proxy and its listener holder, which
	// takes the sockets from its predecessor: nothing refused or failed ---
	newer := filepath.Join(t.TempDir(), "berth")
	if err := os.WriteFile(newer, append(readFile(t, bin), "upgraded"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if spec.Image, err = e.BuildProxyImage(ctx(t), proxyTestBase, newer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.removeImage(t, spec.Image) })
	l := pingLoad(spec.HTTPPort)
	start = time.Now()
	if err := e.EnsureProxy(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	awaitTasks(t, e, listenerServiceName(spec.Name), spec.Image)
	awaitTasks(t, e, spec.Name, spec.Image)
	n, failed := l.stop()
	t.Logf("upgrade to %s done in %s: %d requests, %d failed %v", spec.Image, time.Since(start).Round(time.Millisecond), n, len(failed), failed)
	if len(failed) > 0 || n == 0 {
		t.Errorf("%d of %d requests failed while the proxy and its holder were upgraded: %v", len(failed), n+int64(len(failed)), failed)
	}

	// --- removal ----------------------------------------------------------
	if err := e.RemoveProxy(ctx(t), spec.Name, true); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{spec.Name, listenerServiceName(spec.Name)} {
		if _, ok := env.service(t, name); ok {
			t.Errorf("service %s still exists after RemoveProxy", name)
		}
	}
	if env.volumeExists(t, listenerVolumeName(spec.Name)) {
		t.Errorf("RemoveProxy left the sockets volume")
	}
	if got := env.secretNames(t, spec.Name); len(got) != 0 {
		t.Errorf("secrets left after RemoveProxy: %v", got)
	}
	if !env.volumeExists(t, proxyVolumeName(spec.Name)) {
		t.Errorf("RemoveProxy with keepState removed the state volume")
	}
	if replicas, err := e.ProxyReplicas(ctx(t), spec.Name); err != nil || replicas == nil || len(replicas) != 0 {
		t.Errorf("ProxyReplicas of a removed proxy = %v, %v; want an empty list", replicas, err)
	}
	start = time.Now()
	if err := e.RemoveProxy(ctx(t), spec.Name, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("state volume removed %s after the service", time.Since(start).Round(time.Millisecond))
	if env.volumeExists(t, proxyVolumeName(spec.Name)) {
		t.Errorf("state volume left after RemoveProxy without keepState")
	}
	if err := e.RemoveProxy(ctx(t), spec.Name, false); err != nil {
		t.Errorf("RemoveProxy of a missing proxy: %v", err)
	}
}

func TestProxyImageBuildMissingBase(t *testing.T) {
	env := newProxyEnv(t)
	bin := filepath.Join(t.TempDir(), "berth")
	if err := os.WriteFile(bin, []byte("not really berth"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := "berth-fixture/missing-" + env.id + ":none"
	_, err := env.e.BuildProxyImage(ctx(t), base, bin)
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), base) {
		t.Fatalf("err = %v, want an error naming %s", err, base)
	}
	if !errors.Is(err, orchestrator.ErrRegistryUnreachable) && !errors.Is(err, orchestrator.ErrImageNotFound) {
		t.Errorf("err = %v, want ErrRegistryUnreachable or ErrImageNotFound", err)
	}

	_, err = env.e.BuildProxyImage(ctx(t), proxyTestBase, filepath.Join(t.TempDir(), "nothing"))
	if err == nil || !strings.Contains(err.Error(), "binary") {
		t.Errorf("missing binary: err = %v, want one about the berth binary", err)
	}
}

// A base image without the haproxy user fails at the first build step: the
// builder's message reaches the caller, and no image is left.
func TestProxyImageBuildSurfacesBuildError(t *testing.T) {
	env := newProxyEnv(t)
	bin := filepath.Join(t.TempDir(), "berth")
	if err := os.WriteFile(bin, []byte("not really berth "+env.id), 0o755); err != nil {
		t.Fatal(err)
	}
	const base = "berth-fixture/debian:bookworm"
	tag := env.expectedProxyTag(t, base, bin)
	_, err := env.e.BuildProxyImage(ctx(t), base, bin)
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), base) || !strings.Contains(err.Error(), "no such user: haproxy") {
		t.Fatalf("err = %v, want the builder's complaint about the missing haproxy user, naming %s", err, base)
	}
	if _, err := env.docker.ImageInspect(ctx(t), tag); !cerrdefs.IsNotFound(err) {
		t.Errorf("image %s exists after a failed build (err %v)", tag, err)
		env.removeImage(t, tag)
	}
}

func TestProxyGatewayAddr(t *testing.T) {
	env := newProxyEnv(t)
	gw, err := env.e.GatewayAddr(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := env.docker.NetworkInspect(ctx(t), "docker_gwbridge", network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inside := false
	for _, c := range n.IPAM.Config {
		if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Contains(gw) {
			inside = true
		}
	}
	if !gw.Is4() || !inside {
		t.Errorf("GatewayAddr = %s, want an IPv4 address inside docker_gwbridge's subnets %+v", gw, n.IPAM.Config)
	}
}

func validProxySpec() orchestrator.ProxySpec {
	return orchestrator.ProxySpec{
		Name:       "berth-proxy",
		Image:      "berth/proxy:0123456789ab",
		HTTPPort:   80,
		HTTPSPort:  443,
		ControlURL: "http://172.18.0.1:3001/internal",
		Token:      []byte("secret"),
		InstallID:  "inst_1",
	}
}

func TestProxySpecRejected(t *testing.T) {
	e, _ := newEngine(t)
	tests := []struct {
		name  string
		edit  func(s *orchestrator.ProxySpec)
		field string // what the error must name
	}{
		{"empty name", func(s *orchestrator.ProxySpec) { s.Name = "" }, "name"},
		{"name not a DNS label", func(s *orchestrator.ProxySpec) { s.Name = "Berth_Proxy" }, "name"},
		{"name with a trailing hyphen", func(s *orchestrator.ProxySpec) { s.Name = "proxy-" }, "name"},
		{"name too long", func(s *orchestrator.ProxySpec) { s.Name = strings.Repeat("p", maxProxyName+1) }, "name"},
		{"no image", func(s *orchestrator.ProxySpec) { s.Image = "" }, "image"},
		{"HTTP port 0", func(s *orchestrator.ProxySpec) { s.HTTPPort = 0 }, "HTTP port"},
		{"HTTPS port too high", func(s *orchestrator.ProxySpec) { s.HTTPSPort = 65536 }, "HTTPS port"},
		{"same ports", func(s *orchestrator.ProxySpec) { s.HTTPSPort = s.HTTPPort }, "ports"},
		{"relative control URL", func(s *orchestrator.ProxySpec) { s.ControlURL = "/internal" }, "control URL"},
		{"control URL not http", func(s *orchestrator.ProxySpec) { s.ControlURL = "ftp://10.0.0.1/" }, "control URL"},
		{"no token", func(s *orchestrator.ProxySpec) { s.Token = nil }, "token"},
		{"negative stop grace", func(s *orchestrator.ProxySpec) { s.StopGrace = -time.Second }, "stop grace"},
		{"empty constraint", func(s *orchestrator.ProxySpec) { s.Constraints = []string{" "} }, "constraint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validProxySpec()
			s.Name = "berth-test-invalid-" + randomSuffix(t)
			tt.edit(&s)
			err := e.EnsureProxy(ctx(t), s)
			if !errors.Is(err, orchestrator.ErrInvalidProxySpec) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want ErrInvalidProxySpec naming %q", err, tt.field)
			}
			if s.Name != "" {
				if _, _, err := e.api.ServiceInspectWithRaw(ctx(t), s.Name, swarm.ServiceInspectOptions{}); !cerrdefs.IsNotFound(err) {
					t.Errorf("a refused spec left service %s (err %v)", s.Name, err)
				}
			}
		})
	}
	if err := ValidateProxySpec(validProxySpec()); err != nil {
		t.Errorf("valid spec refused: %v", err)
	}
}

// TestProxyServiceSpec checks the translation, without an engine.
func TestProxyServiceSpec(t *testing.T) {
	s := validProxySpec()
	spec, err := ProxyServiceSpec(s, SpecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts := spec.TaskTemplate
	cs := ts.ContainerSpec
	if spec.Mode.Global == nil || spec.Mode.Replicated != nil {
		t.Errorf("mode = %+v, want global", spec.Mode)
	}
	if len(ts.Networks) != 1 || ts.Networks[0].Target != orchestrator.EdgeNetwork {
		t.Errorf("networks = %+v, want %s", ts.Networks, orchestrator.EdgeNetwork)
	}
	if ts.Placement == nil || !slices.Equal(ts.Placement.Constraints, []string{"node.role==manager"}) {
		t.Errorf("placement = %+v, want managers by default", ts.Placement)
	}
	checkStartFirst(t, spec)
	if hc := cs.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/usr/local/bin/berth", "probe", "tcp", "127.0.0.1:8404"}) || hc.StartPeriod == 0 {
		t.Errorf("health check = %+v, want berth probe tcp on HAProxy's stats port, with a start period", hc)
	}
	if rp := ts.RestartPolicy; rp == nil || rp.Condition != swarm.RestartPolicyConditionAny || rp.Delay == nil || *rp.Delay <= 0 {
		t.Errorf("restart policy = %+v, want any with a delay", rp)
	}
	if ep := spec.EndpointSpec; ep == nil || ep.Mode != swarm.ResolutionModeDNSRR || len(ep.Ports) != 0 {
		t.Errorf("endpoint = %+v, want dnsrr and no published port (the holder has them)", ep)
	}
	if cs.StopSignal != "SIGTERM" || cs.StopGracePeriod == nil || *cs.StopGracePeriod != orchestrator.DefaultProxyStopGrace {
		t.Errorf("stop signal %q grace %v, want SIGTERM and the default grace", cs.StopSignal, cs.StopGracePeriod)
	}
	wantEnv := []string{"BERTH_PROXY_CONTROL_URL=" + s.ControlURL, "BERTH_PROXY_LISTENERS=" + orchestrator.ProxyListenersSocket,
		"BERTH_PROXY_NODE={{.Node.Hostname}}", "BERTH_PROXY_RUN_DIR=/run/berth"}
	if !slices.Equal(cs.Env, wantEnv) {
		t.Errorf("env = %q, want %q", cs.Env, wantEnv)
	}
	if len(cs.Secrets) != 1 || cs.Secrets[0].SecretName != proxySecretName(s.Name, s.Token) || cs.Secrets[0].SecretID != "" ||
		cs.Secrets[0].File == nil || cs.Secrets[0].File.Name != "berth-proxy-token" || cs.Secrets[0].File.Mode != 0o444 {
		t.Errorf("secrets = %+v, want the token by name, readable by all at /run/secrets/berth-proxy-token", cs.Secrets)
	}
	sockets := mount.Mount{Type: mount.TypeVolume, Source: "berth-proxy-sockets", Target: "/run/berth-proxy"}
	if len(cs.Mounts) != 2 || cs.Mounts[0].Source != "berth-proxy-state" || cs.Mounts[0].Target != orchestrator.ProxyStateDir ||
		!sameMount(cs.Mounts[1], sockets) {
		t.Errorf("mounts = %+v, want the state volume and the sockets volume", cs.Mounts)
	}

	// The listener holder: on the host's network, binding the host ports,
	// sharing the sockets volume.
	holder, err := ListenerServiceSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	hts, hcs := holder.TaskTemplate, holder.TaskTemplate.ContainerSpec
	wantArgs := []string{"listen", "--socket", "/run/berth-proxy/listeners.sock", "--owner", "haproxy", "--http", ":80", "--https", ":443"}
	if holder.Name != "berth-proxy-listen" || holder.Mode.Global == nil || len(hts.Networks) != 1 || hts.Networks[0].Target != "host" ||
		!slices.Equal(hcs.Args, wantArgs) || hcs.Image != s.Image || hcs.User != "root" || len(hcs.Mounts) != 1 || !sameMount(hcs.Mounts[0], sockets) ||
		!slices.Equal(hts.Placement.Constraints, ts.Placement.Constraints) || holder.EndpointSpec != nil {
		t.Errorf("holder = %+v %+v, want a global service named berth-proxy-listen on the host network running %q as root with the sockets volume", holder, hcs, wantArgs)
	}
	checkStartFirst(t, holder)

	for _, l := range []map[string]string{spec.Labels, cs.Labels, cs.Mounts[0].VolumeOptions.Labels, cs.Mounts[1].VolumeOptions.Labels, holder.Labels} {
		if l[orchestrator.LabelManaged] != "true" || l[orchestrator.LabelRole] != "proxy" || l[orchestrator.LabelProxy] != s.Name || l[orchestrator.LabelInstall] != "inst_1" {
			t.Errorf("labels = %v, want managed, role, proxy and install", l)
		}
	}

	// The hash follows the token and the settings, and nothing else.
	again, _ := ProxyServiceSpec(s, SpecOptions{})
	hash := spec.Labels[orchestrator.LabelSpecHash]
	if hash == "" || again.Labels[orchestrator.LabelSpecHash] != hash {
		t.Errorf("spec hash %q is not stable (%q)", hash, again.Labels[orchestrator.LabelSpecHash])
	}
	rotated := s
	rotated.Token = []byte("another")
	other, _ := ProxyServiceSpec(rotated, SpecOptions{})
	if other.Labels[orchestrator.LabelSpecHash] == hash || other.TaskTemplate.ContainerSpec.Secrets[0].SecretName == cs.Secrets[0].SecretName {
		t.Errorf("a new token changes neither the hash nor the secret name")
	}
	placed := s
	placed.Constraints = []string{"node.labels.edge==true"}
	placed.StopGrace = 30 * time.Second
	custom, _ := ProxyServiceSpec(placed, SpecOptions{EdgeNetwork: "my-edge", LogDriver: &rotatedLog})
	if !slices.Equal(custom.TaskTemplate.Placement.Constraints, placed.Constraints) || custom.TaskTemplate.Networks[0].Target != "my-edge" ||
		*custom.TaskTemplate.ContainerSpec.StopGracePeriod != 30*time.Second || custom.TaskTemplate.LogDriver != &rotatedLog {
		t.Errorf("custom spec = %+v, want the given constraints, network, grace and log driver", custom.TaskTemplate)
	}
	if ts.LogDriver != nil {
		t.Errorf("log driver %+v without one in the options, want the engine's default", ts.LogDriver)
	}
	quiet := s
	quiet.NoAccessLog = true
	q, _ := ProxyServiceSpec(quiet, SpecOptions{})
	if env := q.TaskTemplate.ContainerSpec.Env; !slices.Contains(env, "BERTH_PROXY_ACCESS_LOG=false") || q.Labels[orchestrator.LabelSpecHash] == hash {
		t.Errorf("env %q and hash %q without access log, want BERTH_PROXY_ACCESS_LOG=false and another hash", env, q.Labels[orchestrator.LabelSpecHash])
	}
}

func checkStartFirst(t *testing.T, spec swarm.ServiceSpec) {
	t.Helper()
	if u := spec.UpdateConfig; u == nil || u.Order != swarm.UpdateOrderStartFirst || u.FailureAction != swarm.UpdateFailureActionRollback {
		t.Errorf("%s: update config = %+v, want start-first with rollback", spec.Name, u)
	}
	if rb := spec.RollbackConfig; rb == nil || rb.Order != swarm.UpdateOrderStartFirst {
		t.Errorf("%s: rollback config = %+v, want start-first", spec.Name, rb)
	}
}

func sameMount(got, want mount.Mount) bool {
	return got.Type == want.Type && got.Source == want.Source && got.Target == want.Target && !got.ReadOnly
}

// EnsureProxy and RemoveProxy never take over or remove a service that is
// not a Berth proxy of this installation.
func TestProxyRefusesForeignService(t *testing.T) {
	env := newProxyEnv(t)
	name := "berth-test-foreign-" + env.id
	zero := uint64(0)
	_, err := env.docker.ServiceCreate(ctx(t), swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: name},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "berth-fixture/hello:v1"}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}},
	}, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.docker.ServiceRemove(context.Background(), name); err != nil {
			t.Errorf("remove service %s: %v", name, err)
		}
	})
	before, _ := env.service(t, name)

	s := validProxySpec()
	s.Name = name
	if err := env.e.EnsureProxy(ctx(t), s); !errors.Is(err, orchestrator.ErrServiceConflict) || !strings.Contains(err.Error(), name) {
		t.Errorf("EnsureProxy over a foreign service: err = %v, want ErrServiceConflict naming it", err)
	}
	if err := env.e.RemoveProxy(ctx(t), name, false); !errors.Is(err, orchestrator.ErrServiceConflict) {
		t.Errorf("RemoveProxy of a foreign service: err = %v, want ErrServiceConflict", err)
	}
	after, ok := env.service(t, name)
	if !ok || after.Version.Index != before.Version.Index {
		t.Errorf("the foreign service was changed or removed")
	}
	if got := env.secretNames(t, name); len(got) != 0 {
		t.Errorf("secrets created for a refused proxy: %v", got)
	}
	if _, ok := env.service(t, listenerServiceName(name)); ok {
		env.docker.ServiceRemove(context.Background(), listenerServiceName(name))
		t.Errorf("a listener holder was created for a refused proxy")
	}
}

// Without the edge network, EnsureProxy says so and creates nothing.
func TestProxyRequiresEdgeNetwork(t *testing.T) {
	env := newProxyEnv(t)
	e, err := New(os.Getenv("DOCKER_HOST"), WithEdgeNetwork("berth-test-missing-"+env.id))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s := validProxySpec()
	s.Name = "berth-test-nonet-" + env.id
	err = e.EnsureProxy(ctx(t), s)
	if err == nil || !strings.Contains(err.Error(), "berth-test-missing-"+env.id) {
		t.Errorf("err = %v, want one naming the missing network", err)
	}
	for _, name := range []string{s.Name, listenerServiceName(s.Name)} {
		if _, ok := env.service(t, name); ok {
			t.Errorf("service %s created without its network", name)
			env.e.RemoveProxy(ctx(t), s.Name, false)
		}
	}
	if got := env.secretNames(t, s.Name); len(got) != 0 {
		t.Errorf("secrets created without the network: %v", got)
	}
}

// Old proxy images are removed once no spec names them, except those a
// container uses and those younger than an hour.
func TestProxyImagesPruned(t *testing.T) {
	env := newProxyEnv(t)
	old := time.Now().Add(-2 * time.Hour)
	named := env.loadProxyImage(t, "named", old)
	unused := env.loadProxyImage(t, "unused", old)
	used := env.loadProxyImage(t, "used", old)
	fresh := env.loadProxyImage(t, "fresh", time.Now())
	c, err := env.docker.ContainerCreate(ctx(t), &container.Config{Image: used, Cmd: []string{"/marker"}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })

	svc := &swarm.Service{Spec: swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: named}}}}
	if err := env.e.pruneProxyImages(ctx(t), svc); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]bool{named: true, unused: false, used: true, fresh: true} {
		_, err := env.docker.ImageInspect(ctx(t), ref)
		if got := err == nil; got != want {
			t.Errorf("%s present = %v (%v), want %v", ref, got, err, want)
		}
	}
}

// loadProxyImage loads a one-file image labelled as a proxy image, created
// at the given time (an image build would say now), and removes it at the end.
func (env *proxyEnv) loadProxyImage(t *testing.T, name string, created time.Time) string {
	t.Helper()
	ref := fmt.Sprintf("%s:prune-test-%s-%s", ProxyImageRepo, name, env.id)
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	content := []byte(ref)
	lw.WriteHeader(&tar.Header{Name: "marker", Mode: 0o644, Size: int64(len(content)), ModTime: created})
	lw.Write(content)
	lw.Close()
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": created.UTC(),
		"config": map[string]any{"Labels": map[string]string{orchestrator.LabelManaged: "true", orchestrator.LabelRole: orchestrator.RoleProxy}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{fmt.Sprintf("sha256:%x", sha256.Sum256(layer.Bytes()))}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{ref}, "Layers": []string{"layer.tar"}}})
	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		data []byte
	}{{"layer.tar", layer.Bytes()}, {"config.json", config}, {"manifest.json", manifest}} {
		aw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))})
		aw.Write(f.data)
	}
	aw.Close()
	resp, err := env.docker.ImageLoad(ctx(t), &archive)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	t.Cleanup(func() { env.docker.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true}) })
	return ref
}

// The build context carries the binary the tag was computed from, or fails:
// bytes written over the binary between the hash and the build never ship
// under the old hash.
func TestProxyContextRefusesChangedBinary(t *testing.T) {
	bin := strings.NewReader("berth v1")
	sum, size, err := hashFrom(bin)
	if err != nil {
		t.Fatal(err)
	}
	var ok bytes.Buffer
	if err := writeProxyContext(&ok, "FROM x\n", bin, size, sum); err != nil {
		t.Fatalf("unchanged binary: %v", err)
	}
	if !bytes.Contains(ok.Bytes(), []byte("berth v1")) {
		t.Error("the context lacks the binary's bytes")
	}
	err = writeProxyContext(io.Discard, "FROM x\n", strings.NewReader("berth v2"), size, sum)
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("changed binary: err = %v, want one saying it changed", err)
	}
	err = writeProxyContext(io.Discard, "FROM x\n", strings.NewReader("berth"), size, sum)
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("shorter binary: err = %v, want one saying it changed", err)
	}
}
