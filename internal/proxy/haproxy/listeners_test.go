package haproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/proxy/listeners"
)

// fdProxy starts an HAProxy that accepts on the listening socket f (as
// fd@3) and routes everything to backend, marking answers with X-Gen: gen.
func fdProxy(t *testing.T, f *os.File, backend, gen string) *Process {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{
		Binary:     haproxyBin,
		ConfigPath: filepath.Join(dir, "haproxy.cfg"),
		Socket:     filepath.Join(dir, "master.sock"),
		ExtraFiles: []*os.File{f},
	}
	conf := fmt.Sprintf(`global
  stats socket %s mode 600 level admin expose-fd listeners
  hard-stop-after 10s

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 10s
  option idle-close-on-response

frontend fe
  bind fd@3
  http-response set-header X-Gen %s
  default_backend be

backend be
  server app %s
`, filepath.Join(dir, "stats.sock"), gen, backend)
	if err := os.WriteFile(cfg.ConfigPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := NewProcess(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := p.Start(ctxT(t, 10*time.Second), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	return p
}

// A proxy replaced by another on the same listening socket, handed over by
// a holder (the proxy upgrade of internal/proxy/listeners), through a reload
// of the first, its soft stop and the holder closing its own copy: not one
// request of 20 clients (GETs and POSTs, keep-alive) fails, and both served.
func TestHandOverListeningSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; skipped with -short")
	}
	requireHAProxy(t)
	held, err := listeners.Bind(map[string]string{"http": "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := held[0].Addr()
	if err != nil {
		t.Fatal(err)
	}
	backend := backendServer(t, "app")
	e := &env{port: addr.(*net.TCPAddr).Port, http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	t.Cleanup(e.http.CloseIdleConnections)

	first := fdProxy(t, held[0].File, hostPort(t, backend), "first")
	ctx := ctxT(t, 30*time.Second)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := runLoad(loadCtx, e, 20)
	time.Sleep(500 * time.Millisecond)
	if err := first.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	fdProxy(t, held[0].File, hostPort(t, backend), "second")
	time.Sleep(500 * time.Millisecond)
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	listeners.Close(held) // the second proxy's copy keeps the socket
	time.Sleep(time.Second)
	stopLoad()
	l.report(t)

	gens := map[string]int{}
	for _, r := range l.results {
		gens[r.gen]++
	}
	t.Logf("answers by proxy: %v", gens)
	if gens["first"] == 0 || gens["second"] == 0 {
		t.Errorf("answers by proxy %v, want both to have served", gens)
	}
	last := l.results[len(l.results)-1]
	if last.gen != "second" {
		t.Errorf("the last answer came from %q, want the second proxy", last.gen)
	}
}
