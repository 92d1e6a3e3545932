package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

const haproxyBin = "/usr/sbin/haproxy"

func requireHAProxy(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(haproxyBin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("haproxy is required in CI: %v", err)
		}
		t.Skipf("haproxy not installed: %v", err)
	}
}

// env is one supervised HAProxy routing to two httptest servers.
type env struct {
	dir                string
	cfg                Config
	mapPath, statsSock string
	port               int
	v1, v2             *httptest.Server
	proc               *Process
	client             *Client
	http               *http.Client
}

func backendServer(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func hostPort(t *testing.T, s *httptest.Server) string {
	t.Helper()
	return strings.TrimPrefix(s.URL, "http://")
}

// renderConfig is this test's own small configuration; gen shows up as a
// response header so a test can tell which configuration served a request.
func (e *env) renderConfig(t *testing.T, gen int) string {
	t.Helper()
	return fmt.Sprintf(`global
  stats socket %s mode 600 level admin expose-fd listeners
  hard-stop-after 10s

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 10s
  # during a soft stop, keep idle client connections until their next
  # request and answer it with "Connection: close" instead of closing under
  # the client's feet
  option idle-close-on-response
  retries 3
  option redispatch

frontend fe
  bind 127.0.0.1:%d
  http-response set-header X-Gen %d
  use_backend %%[req.hdr(host),lower,map(%s,be_default)]

backend be_default
  http-request return status 404 content-type text/plain string "no route"

backend be_app
  balance roundrobin
  server v1 %s
  server v2 %s

backend be_v2
  server v2 %s
`, e.statsSock, e.port, gen, e.mapPath, hostPort(t, e.v1), hostPort(t, e.v2), hostPort(t, e.v2))
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireHAProxy(t)
	dir := t.TempDir()
	e := &env{
		dir:       dir,
		mapPath:   filepath.Join(dir, "hosts.map"),
		statsSock: filepath.Join(dir, "stats.sock"),
		port:      testenv.FreePort(t),
		v1:        backendServer(t, "v1"),
		v2:        backendServer(t, "v2"),
	}
	e.cfg = Config{
		Binary:     haproxyBin,
		ConfigPath: filepath.Join(dir, "haproxy.cfg"),
		PIDFile:    filepath.Join(dir, "haproxy.pid"),
		Socket:     filepath.Join(dir, "master.sock"),
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second,
	}
	if err := os.WriteFile(e.mapPath, []byte("app.test be_app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(t, e.renderConfig(t, 1))
	e.proc = NewProcess(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.proc.Start(ctx, e.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.proc.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	e.client = NewClient(e.statsSock)
	e.http = &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}
	t.Cleanup(e.http.CloseIdleConnections)
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (e *env) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(e.cfg.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// get sends one request with the given Host and returns the body.
func (e *env) do(method, host string) (body string, gen string, err error) {
	var rd io.Reader
	if method == http.MethodPost {
		rd = strings.NewReader(`{"hello":"world"}`)
	}
	req, err := http.NewRequest(method, "http://127.0.0.1:"+strconv.Itoa(e.port)+"/", rd)
	if err != nil {
		return "", "", err
	}
	req.Host = host
	resp, err := e.http.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), resp.Header.Get("X-Gen"), fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), resp.Header.Get("X-Gen"), nil
}

func (e *env) mustGet(t *testing.T, host string) string {
	t.Helper()
	body, _, err := e.do(http.MethodGet, host)
	if err != nil {
		t.Fatalf("GET Host %s: %v", host, err)
	}
	return body
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestHostRoutingAndMaps(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 10*time.Second)

	seen := map[string]int{}
	for range 4 {
		seen[e.mustGet(t, "app.test")]++
	}
	if seen["v1"] != 2 || seen["v2"] != 2 {
		t.Fatalf("round robin over be_app: got %v, want v1:2 v2:2", seen)
	}
	if body, _, err := e.do(http.MethodGet, "new.test"); err == nil || !strings.Contains(body, "no route") {
		t.Fatalf("unknown host: body %q err %v, want 404 no route", body, err)
	}

	if err := e.client.AddMapEntry(ctx, e.mapPath, "new.test", "be_v2"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := e.mustGet(t, "NEW.test"); got != "v2" {
			t.Fatalf("new.test after add map: got %q, want v2", got)
		}
	}
	m, err := e.client.ShowMap(ctx, e.mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if m["app.test"] != "be_app" || m["new.test"] != "be_v2" || len(m) != 2 {
		t.Fatalf("show map = %v", m)
	}

	if err := e.client.SetMapEntry(ctx, e.mapPath, "app.test", "be_v2"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := e.mustGet(t, "app.test"); got != "v2" {
			t.Fatalf("app.test after set map: got %q, want v2", got)
		}
	}
	if err := e.client.DelMapEntry(ctx, e.mapPath, "new.test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.do(http.MethodGet, "new.test"); err == nil {
		t.Fatal("new.test still routed after del map")
	}

	// HAProxy's refusals come back typed, with its reply text.
	for name, call := range map[string]func() error{
		"set missing key": func() error { return e.client.SetMapEntry(ctx, e.mapPath, "nope.test", "be_app") },
		"del missing key": func() error { return e.client.DelMapEntry(ctx, e.mapPath, "nope.test") },
		"unknown map":     func() error { return e.client.AddMapEntry(ctx, "/nonexistent.map", "a", "b") },
		"unknown server":  func() error { return e.client.SetServerWeight(ctx, "be_app", "nope", 1) },
		"unknown backend": func() error { _, err := e.client.Servers(ctx, "be_nope"); return err },
	} {
		var ce *CommandError
		if err := call(); !errors.As(err, &ce) || ce.Reply == "" {
			t.Errorf("%s: err = %v, want *CommandError with reply", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestServersAndWeights(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 10*time.Second)

	servers, err := e.client.Servers(ctx, "be_app")
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 || servers[0].Name != "v1" || servers[1].Name != "v2" {
		t.Fatalf("servers = %+v", servers)
	}
	for i, s := range []*httptest.Server{e.v1, e.v2} {
		want := hostPort(t, s)
		got := net.JoinHostPort(servers[i].Addr.String(), strconv.Itoa(servers[i].Port))
		if got != want || servers[i].Weight != 1 || servers[i].OpState != 2 || servers[i].Maint() {
			t.Errorf("server %d = %+v, want %s weight 1 running", i, servers[i], want)
		}
	}

	start := time.Now()
	if err := e.client.SetServerWeight(ctx, "be_app", "v1", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.client.SetServerWeight(ctx, "be_app", "v2", 100); err != nil {
		t.Fatal(err)
	}
	commands := time.Since(start)
	if got := e.mustGet(t, "app.test"); got != "v2" {
		t.Fatalf("first request after weight switch went to %q", got)
	}
	t.Logf("weight switch: commands %v, command→first request on v2 %v", commands, time.Since(start))
	for range 20 {
		if got := e.mustGet(t, "app.test"); got != "v2" {
			t.Fatalf("request after weight switch went to %q", got)
		}
	}
	servers, err = e.client.Servers(ctx, "be_app")
	if err != nil {
		t.Fatal(err)
	}
	if servers[0].Weight != 0 || servers[1].Weight != 100 {
		t.Fatalf("weights = %d/%d, want 0/100", servers[0].Weight, servers[1].Weight)
	}

	// Address change: point v1 at v2's listener.
	ap := strings.Split(hostPort(t, e.v2), ":")
	port, _ := strconv.Atoi(ap[1])
	if err := e.client.SetServerAddr(ctx, "be_app", "v1", ap[0], port); err != nil {
		t.Fatal(err)
	}
	servers, _ = e.client.Servers(ctx, "be_app")
	if servers[0].Port != port {
		t.Fatalf("v1 port after set addr = %d, want %d", servers[0].Port, port)
	}
}

func TestDynamicServer(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 10*time.Second)
	v3 := backendServer(t, "v3")
	ap := strings.Split(hostPort(t, v3), ":")
	port, _ := strconv.Atoi(ap[1])

	if err := e.client.AddServer(ctx, "be_app", "v3", ap[0], port, ServerOptions{Weight: 100}); err != nil {
		t.Fatal(err)
	}
	servers, err := e.client.Servers(ctx, "be_app")
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 || servers[2].Name != "v3" || !servers[2].Maint() || servers[2].Weight != 100 {
		t.Fatalf("after add server: %+v", servers)
	}
	for _, s := range []string{"v1", "v2"} {
		if err := e.client.SetServerState(ctx, "be_app", s, StateMaint); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.client.SetServerState(ctx, "be_app", "v3", StateReady); err != nil {
		t.Fatal(err)
	}
	if got := e.mustGet(t, "app.test"); got != "v3" {
		t.Fatalf("request went to %q, want v3", got)
	}
	// A server in service cannot be deleted.
	var ce *CommandError
	if err := e.client.DelServer(ctx, "be_app", "v3"); !errors.As(err, &ce) {
		t.Fatalf("del server in service: err = %v, want *CommandError", err)
	} else {
		t.Logf("del server in service: %v", err)
	}
	if err := e.client.SetServerState(ctx, "be_app", "v2", StateReady); err != nil {
		t.Fatal(err)
	}
	if err := e.client.SetServerState(ctx, "be_app", "v3", StateDrain); err != nil {
		t.Fatal(err)
	}
	if err := e.client.WaitDrained(ctx, "be_app", "v3", 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := e.client.SetServerState(ctx, "be_app", "v3", StateMaint); err != nil {
		t.Fatal(err)
	}
	e.http.CloseIdleConnections()
	if err := e.client.DelServer(ctx, "be_app", "v3"); err != nil {
		t.Fatal(err)
	}
	if got := e.mustGet(t, "app.test"); got != "v2" {
		t.Fatalf("request went to %q, want v2", got)
	}
	if err := e.client.WaitDrained(ctx, "be_app", "v3", 10*time.Millisecond); !errors.Is(err, ErrNoSuchServer) {
		t.Fatalf("WaitDrained on deleted server: %v", err)
	}
}

// load runs clients concurrent GET/POST loops against app.test until ctx
// ends and records what answered when.
type load struct {
	mu      sync.Mutex
	results []result
	failed  atomic.Int64
	errs    []error
	wait    func()
}

type result struct {
	start time.Time
	body  string
	gen   string
}

func runLoad(ctx context.Context, e *env, clients int) *load {
	l := &load{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				method := http.MethodGet
				if (i+c)%2 == 1 {
					method = http.MethodPost
				}
				start := time.Now()
				body, gen, err := e.do(method, "app.test")
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					l.errs = append(l.errs, fmt.Errorf("%s at %s: %w", method, start.Format("15:04:05.000"), err))
				} else {
					l.results = append(l.results, result{start: start, body: body, gen: gen})
				}
				l.mu.Unlock()
			}
		})
	}
	l.wait = wg.Wait
	return l
}

func (l *load) report(t *testing.T) {
	t.Helper()
	l.wait()
	if n := l.failed.Load(); n != 0 {
		for i, err := range l.errs {
			if i == 5 {
				break
			}
			t.Log(err)
		}
		t.Errorf("%d of %d requests failed", n, int64(len(l.results))+n)
	}
}

func TestZeroFailedRequestsDuringSwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; skipped with -short")
	}
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)

	loadCtx, stopLoad := context.WithTimeout(ctx, 3*time.Second)
	defer stopLoad()
	l := runLoad(loadCtx, e, 20)

	time.Sleep(500 * time.Millisecond)
	switchStart := time.Now()
	if err := e.client.SetServerWeight(ctx, "be_app", "v1", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.client.SetServerWeight(ctx, "be_app", "v2", 100); err != nil {
		t.Fatal(err)
	}
	switched := time.Now()
	if err := e.client.SetServerState(ctx, "be_app", "v1", StateDrain); err != nil {
		t.Fatal(err)
	}
	drainStart := time.Now()
	if err := e.client.WaitDrained(ctx, "be_app", "v1", 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	drained := time.Since(drainStart)
	if err := e.client.SetServerState(ctx, "be_app", "v1", StateMaint); err != nil {
		t.Fatal(err)
	}
	maint := time.Now()
	<-loadCtx.Done()
	l.report(t)

	var before, afterSwitch, afterMaint [3]int // v1, v2, other
	firstV2 := time.Duration(-1)
	idx := map[string]int{"v1": 0, "v2": 1}
	for _, r := range l.results {
		i, ok := idx[r.body]
		if !ok {
			i = 2
		}
		switch {
		case r.start.After(maint):
			afterMaint[i]++
		case r.start.After(switched):
			afterSwitch[i]++
		default:
			before[i]++
		}
	}
	for _, r := range l.results {
		if r.start.After(switched) && r.body == "v2" {
			if d := r.start.Sub(switchStart); firstV2 < 0 || d < firstV2 {
				firstV2 = d
			}
		}
	}
	t.Logf("requests v1/v2/other: before switch %v, switch→maint %v, after maint %v", before, afterSwitch, afterMaint)
	t.Logf("weight commands %v; first request sent after them reached v2 %v after the first command; drain wait %v",
		switched.Sub(switchStart), firstV2, drained)
	if before[0] == 0 || before[1] == 0 {
		t.Errorf("before the switch both releases should serve: %v", before)
	}
	if afterSwitch[0] != 0 || afterMaint[0] != 0 {
		t.Errorf("requests sent after the weight switch reached v1: %v %v", afterSwitch, afterMaint)
	}
	if afterMaint[1] == 0 || afterMaint[2] != 0 {
		t.Errorf("after maint all requests should reach v2: %v", afterMaint)
	}
}

func TestReload(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; skipped with -short")
	}
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	good, err := os.ReadFile(e.cfg.ActivePath())
	if err != nil {
		t.Fatal(err)
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, 2*time.Second)
	defer stopLoad()
	l := runLoad(loadCtx, e, 20)
	time.Sleep(300 * time.Millisecond)

	// A bad configuration is refused; the running one keeps serving and stays
	// the one a restart would use.
	e.writeConfig(t, e.renderConfig(t, 2)+"\nbackend be_broken\n  server x 127.0.0.1:notaport\n")
	var cfgErr *ConfigError
	if err := e.proc.Reload(ctx); !errors.As(err, &cfgErr) {
		t.Fatalf("reload of bad config: err = %v, want *ConfigError", err)
	} else {
		t.Logf("bad config refused: %v", err)
	}
	if active, _ := os.ReadFile(e.cfg.ActivePath()); string(active) != string(good) {
		t.Fatal("active config changed after a refused reload")
	}
	time.Sleep(300 * time.Millisecond)

	e.writeConfig(t, e.renderConfig(t, 2))
	start := time.Now()
	if err := e.proc.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	reloaded := time.Now()
	t.Logf("reload took %v", reloaded.Sub(start))
	<-loadCtx.Done()
	l.report(t)

	gens := map[string]int{}
	for _, r := range l.results {
		if r.start.After(reloaded.Add(200 * time.Millisecond)) {
			gens[r.gen]++
		}
	}
	t.Logf("X-Gen of requests started 200ms after the reload: %v (total %d)", gens, len(l.results))
	if gens["2"] == 0 || gens["1"] != 0 {
		t.Errorf("after reload requests should be served by the new config: %v", gens)
	}
}

func TestRestartAfterKill(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)

	waitServing := func(what string, changed func() bool) {
		t.Helper()
		start := time.Now()
		for {
			if changed() {
				if _, _, err := e.do(http.MethodGet, "app.test"); err == nil {
					t.Logf("%s: serving again after %v", what, time.Since(start))
					return
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: not serving again: %v", what, ctx.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	master := e.proc.PID()
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitServing("kill -9 master", func() bool {
		p := e.proc.PID()
		w, err := e.proc.Workers(ctx)
		return p != 0 && p != master && err == nil && len(w) == 1
	})

	workers, err := e.proc.Workers(ctx)
	if err != nil || len(workers) != 1 {
		t.Fatalf("workers = %v, %v", workers, err)
	}
	if err := syscall.Kill(workers[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitServing("kill -9 worker", func() bool {
		w, err := e.proc.Workers(ctx)
		return err == nil && len(w) == 1 && w[0] != workers[0]
	})
}

// TestInjectionRefused checks that no argument can smuggle a second command:
// every one is rejected before a connection is made.
func TestInjectionRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "fake.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })

	c := NewClient(sock)
	ctx := ctxT(t, 5*time.Second)
	const m = "/etc/haproxy/hosts.map"
	bad := []string{
		"a.test\nset weight be_app/v1 0",
		"a.test;shutdown sessions server be_app/v1",
		"a.test\rclear map " + m,
		"a b",
		"a\tb",
		"",
		"a\\;b",
		"a\"b",
		"a#b",
		"ä.test",
		"a\x00b",
	}
	for _, v := range bad {
		calls := map[string]error{
			"add map key":   c.AddMapEntry(ctx, m, v, "be_app"),
			"add map value": c.AddMapEntry(ctx, m, "a.test", v),
			"set map":       c.SetMapEntry(ctx, m, v, "be_app"),
			"del map":       c.DelMapEntry(ctx, m, v),
			"weight":        c.SetServerWeight(ctx, "be_app", v, 1),
			"state":         c.SetServerState(ctx, v, "v1", StateReady),
			"addr backend":  c.SetServerAddr(ctx, v, "v1", "127.0.0.1", 80),
			"add server":    c.AddServer(ctx, "be_app", v, "127.0.0.1", 80, ServerOptions{}),
			"del server":    c.DelServer(ctx, "be_app", v),
			"wait drained":  c.WaitDrained(ctx, v, "v1", time.Millisecond),
		}
		if v != "" { // appending nothing would leave these valid
			calls["add map path"] = c.AddMapEntry(ctx, m+v, "a.test", "be_app")
			calls["addr"] = c.SetServerAddr(ctx, "be_app", "v1", "127.0.0.1"+v, 80)
			_, calls["show map"] = c.ShowMap(ctx, m+v)
		}
		var err error
		_, err = c.Servers(ctx, v)
		calls["servers"] = err
		for name, err := range calls {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("%s with %q: err = %v, want *ValidationError", name, v, err)
			}
		}
	}
	for name, err := range map[string]error{
		"state value":  c.SetServerState(ctx, "be_app", "v1", "ready\nshutdown"),
		"weight range": c.SetServerWeight(ctx, "be_app", "v1", 257),
		"port range":   c.SetServerAddr(ctx, "be_app", "v1", "127.0.0.1", 70000),
		"hostname":     c.SetServerAddr(ctx, "be_app", "v1", "localhost", 80),
		"ipv6 zone":    c.AddServer(ctx, "be_app", "v9", "fe80::1%eth0", 80, ServerOptions{}),
	} {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: err = %v, want *ValidationError", name, err)
		}
	}
	if _, err := socketCommand(ctx, sock, "show info;shutdown frontend fe"); err == nil {
		t.Error("transport accepted a command with ';'")
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("%d connections reached the socket", n)
	}

	// Sanity: a valid command does reach it (the test can fail).
	_ = c.SetServerWeight(ctx, "be_app", "v1", 1)
	if accepted.Load() != 1 {
		t.Fatal("valid command did not reach the fake socket")
	}
}

func TestParseShowProc(t *testing.T) {
	out := `#<PID>          <type>          <reloads>       <uptime>        <version>
1603            master          1 [failed: 0]   0d00h10m13s     2.6.12-1+deb12u4
# workers
10469           worker          0               0d00h00m08s     2.6.12-1+deb12u4
# old workers
1606            worker          1               0d00h10m00s     2.6.12-1+deb12u4
# programs
`
	got, old := parseShowProc(out)
	if len(got) != 1 || got[0] != 10469 || len(old) != 1 || old[0] != 1606 {
		t.Fatalf("parseShowProc = %v, %v; want [10469], [1606]", got, old)
	}
}

// Lines split across pipe reads are logged whole, once.
func TestLogWriterJoinsSplitLines(t *testing.T) {
	var buf bytes.Buffer
	w := &logWriter{log: slog.New(slog.NewTextHandler(&buf, nil)), level: slog.LevelInfo}
	for _, chunk := range []string{`{"status":2`, `00,"path":"/a"}` + "\n" + `{"status":`, "404}\n", "[WARNING] tail without newline"} {
		w.Write([]byte(chunk))
	}
	out := buf.String()
	for _, want := range []string{`{\"status\":200,\"path\":\"/a\"}`, `{\"status\":404}`} {
		if strings.Count(out, want) != 1 {
			t.Errorf("line %s not logged exactly once:\n%s", want, out)
		}
	}
	if strings.Count(out, "msg=haproxy") != 2 || strings.Contains(out, "tail without newline") {
		t.Errorf("want two lines and the unfinished one held back:\n%s", out)
	}
}
