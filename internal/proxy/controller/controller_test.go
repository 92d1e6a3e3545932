package controller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/proxy/listeners"
	"github.com/berthpaas/berth/internal/proxy/proxytest"
	"github.com/berthpaas/berth/internal/testenv"
)

func haproxyBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy not found and CI=true")
		}
		t.Skip("haproxy not installed")
	}
	return bin
}

// controlPlane is the fake control plane (2 s long poll instead of 25 s)
// with the latest status and every reported request kept.
type controlPlane struct {
	*proxytest.ControlPlane

	mu     sync.Mutex
	status *proxy.Status
	recent []proxy.Request // of every report, newest first
}

func newControlPlane(t *testing.T, token string) *controlPlane {
	t.Helper()
	cp := &controlPlane{}
	cp.ControlPlane = proxytest.NewControlPlane(t, token, 2*time.Second, func(s proxy.Status) {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		cp.status = &s
		cp.recent = append(s.Recent, cp.recent...)
	})
	return cp
}

// waitStatus waits for a reported status that satisfies ok.
func (cp *controlPlane) waitStatus(t *testing.T, what string, ok func(proxy.Status) error) proxy.Status {
	t.Helper()
	var last proxy.Status
	testenv.Eventually(t, 20*time.Second, what, func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		if cp.status == nil {
			return errors.New("no status reported yet")
		}
		last = *cp.status
		return ok(last)
	})
	return last
}

// versionIs is a waitStatus condition.
func versionIs(v int64) func(proxy.Status) error {
	return func(s proxy.Status) error {
		if s.Version != v {
			return fmt.Errorf("status version %d, want %d (errors %q)", s.Version, v, s.Errors)
		}
		return nil
	}
}

// releasesUp is a waitStatus condition: version v, every service resolved
// and up.
func releasesUp(v int64, services ...string) func(proxy.Status) error {
	return func(s proxy.Status) error {
		if err := versionIs(v)(s); err != nil {
			return err
		}
		for _, svc := range services {
			if r := s.Releases[svc]; r.Up != 1 || r.Servers != 1 {
				return fmt.Errorf("release %s: %+v, want 1 server up", svc, r)
			}
		}
		return nil
	}
}

// startDNS serves A records for tasks.<anything>: 127.0.0.1, so each release
// reaches the upstream listening on its Port.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			for _, q := range r.Question {
				switch {
				case !strings.HasPrefix(q.Name, "tasks."):
					m.Rcode = dns.RcodeNameError
				case q.Qtype == dns.TypeA:
					m.Answer = append(m.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
						A:   net.IPv4(127, 0, 0, 1),
					})
				}
			}
			w.WriteMsg(m)
		})}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// upstream is an app task: it answers its name; /slow waits for release.
type upstream struct {
	name     string
	port     int
	inFlight chan struct{} // a /slow request arrived
	release  chan struct{} // closed to let /slow requests answer
}

func newUpstream(t *testing.T, name string) *upstream {
	t.Helper()
	u := &upstream{name: name, inFlight: make(chan struct{}, 16), release: make(chan struct{})}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/slow" {
			u.inFlight <- struct{}{}
			<-u.release
		}
		if r.URL.Path == "/boom" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	u.port = s.Listener.Addr().(*net.TCPAddr).Port
	return u
}

func (u *upstream) rel(weight int) proxy.Release {
	return proxy.Release{Service: u.name, Port: u.port, Weight: weight}
}

// webTable routes web.test to app_web, served by rels.
func webTable(version int64, rels ...proxy.Release) proxy.Table {
	return proxy.Table{
		Version: version,
		Apps:    []proxy.App{{ID: "app_web", Name: "Web", Releases: rels}},
		Routes:  []proxy.Route{{Host: "web.test", AppID: "app_web"}},
	}
}

// logRecorder keeps every log record and shows the non-access ones in the
// test log while the test runs.
type logRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	records []string
	closed  bool
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if raw, ok := a.Value.Any().(json.RawMessage); ok {
			fmt.Fprintf(&b, " %s=%s", a.Key, raw)
		} else {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, b.String())
	if !l.closed && r.Message != "access" && r.Level >= slog.LevelInfo {
		l.t.Log(b.String())
	}
	return nil
}

// Write records access log lines as "access <line>" (see Config.AccessLog).
func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(string(p)) {
		l.records = append(l.records, "access "+strings.TrimSuffix(line, "\n"))
	}
	return len(p), nil
}

// find returns the records that match re.
func (l *logRecorder) find(re string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if regexp.MustCompile(re).MatchString(r) {
			out = append(out, r)
		}
	}
	return out
}

// harness runs one controller.
type harness struct {
	t      *testing.T
	cfg    Config
	c      *controller
	logs   *logRecorder
	cancel context.CancelFunc
	done   chan error
	client *http.Client
}

// newConfig returns a Config for cp with its own ports and state dir, the
// token file holding token.
func newConfig(t *testing.T, cp *controlPlane, dnsAddr, token string) Config {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("\n  "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		ControlURL:    cp.URL,
		TokenFile:     tokenFile,
		StateDir:      filepath.Join(dir, "state"),
		HTTPPort:      testenv.FreePort(t),
		HTTPSPort:     testenv.FreePort(t),
		StatsPort:     testenv.FreePort(t),
		ChallengeAddr: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)),
		Nameserver:    dnsAddr,
		HAProxyBinary: haproxyBinary(t),
		ID:            "proxy-test",
		Node:          "node-1",
		StopTimeout:   10 * time.Second,
	}
}

// start runs a controller on cfg and returns once HAProxy answers HTTP.
func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	logs := &logRecorder{t: t}
	t.Cleanup(func() { logs.mu.Lock(); logs.closed = true; logs.mu.Unlock() })
	cfg.Log = slog.New(logs)
	cfg.AccessLog = logs
	c, err := newController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, cfg: cfg, c: c, logs: logs, cancel: cancel, done: make(chan error, 1),
		client: &http.Client{
			Timeout:       10 * time.Second,
			Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	go func() { h.done <- c.run(ctx) }()
	t.Cleanup(func() { h.stop() })
	testenv.Eventually(t, 20*time.Second, "HAProxy answers", func() error {
		select {
		case err := <-h.done:
			h.done <- err
			t.Fatalf("Run returned during startup: %v", err)
		default:
		}
		if _, _, err := h.get("nothing.test", "/"); err != nil {
			return err
		}
		if len(logs.find(`^INFO proxy started`)) == 0 {
			return errors.New("controller not started yet")
		}
		return nil
	})
	// After a reload the old worker answers the next request of each idle
	// keep-alive connection (then closes it): keep none from before the
	// first table, or that request would get the empty table's 503.
	h.client.CloseIdleConnections()
	return h
}

// stop ends Run and returns its result (once; later calls return nil).
func (h *harness) stop() error {
	h.t.Helper()
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	h.client.CloseIdleConnections()
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return 30s after ctx ended")
		return nil
	}
}

func (h *harness) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", h.cfg.HTTPPort, path)
}

// do sends one request with Host host and returns status and body.
func (h *harness) do(method, host, path string) (int, string, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"hello":"world"}`)
	}
	req, err := http.NewRequest(method, h.url(path), body)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (h *harness) get(host, path string) (int, string, error) {
	return h.do(http.MethodGet, host, path)
}

// served is a condition: GET host/path answers 200 with body want.
func (h *harness) served(host, path, want string) func() error {
	return func() error {
		code, body, err := h.get(host, path)
		if err != nil {
			return err
		}
		if code != http.StatusOK || body != want {
			return fmt.Errorf("GET %s%s = %d %.60q, want 200 %q", host, path, code, body, want)
		}
		return nil
	}
}

func (h *harness) workers() []int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := h.c.proc.Workers(ctx)
	if err != nil || len(w) != 1 {
		h.t.Fatalf("workers = %v, %v; want one", w, err)
	}
	return w
}

// tlsLeaf returns the leaf certificate HAProxy presents for sni.
func (h *harness) tlsLeaf(sni string) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp",
		fmt.Sprintf("127.0.0.1:%d", h.cfg.HTTPSPort), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// testCert returns a self-signed certificate for name, as the table carries it.
func testCert(t *testing.T, certName, dnsName string, serial int64) proxy.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return proxy.Certificate{
		Name:    certName,
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
	}
}

func TestServesRouteEndToEnd(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	r1 := newUpstream(t, "web-r1")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))

	cp.SetTable(webTable(1, r1.rel(100)))
	testenv.Eventually(t, 20*time.Second, "web.test served by r1", h.served("web.test", "/", "web-r1"))
	s := cp.waitStatus(t, "status reports r1 up", releasesUp(1, "web-r1"))
	if s.ID != "proxy-test" || s.Node != "node-1" || !regexp.MustCompile(`^2\.\d+\.\d+$`).MatchString(s.HAProxyVersion) ||
		s.StartedAt.IsZero() || len(s.Errors) != 0 {
		t.Errorf("status = %+v", s)
	}
	if code, body, err := h.get("unrouted.test", "/"); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "No app here") {
		t.Errorf("unrouted host: %d %.40q %v, want 503 page", code, body, err)
	}
	fi, err := os.Stat(filepath.Join(h.cfg.StateDir, "table.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("table.json: %v, mode %v; want 0600", err, fi.Mode())
	}
	testenv.Eventually(t, 5*time.Second, "JSON access log record", func() error {
		if len(h.logs.find(`^access \{.*"msg":"access".*"host":"web.test".*"status":200.*"server":"web-r1-1"`)) == 0 {
			return errors.New("none for web.test")
		}
		return nil
	})

	// A stop lets the request in flight finish.
	result := make(chan string, 1)
	go func() {
		code, body, err := h.get("web.test", "/slow")
		result <- fmt.Sprintf("%d %s %v", code, body, err)
	}()
	select {
	case <-r1.inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("slow request did not reach the upstream")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	// The listener closes at once (soft stop) while the request is held.
	testenv.Eventually(t, 10*time.Second, "listener closed by the soft stop", func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.cfg.HTTPPort), time.Second)
		if err == nil {
			c.Close()
			return errors.New("still accepting connections")
		}
		return nil
	})
	close(r1.release)
	if got := <-result; got != "200 web-r1 <nil>" {
		t.Errorf("request in flight during stop: %s, want 200 web-r1", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestRestartServesFromDiskWithControlPlaneDown(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	r1 := newUpstream(t, "web-r1")
	dnsAddr := startDNS(t)
	cfg := newConfig(t, cp, dnsAddr, "s3cret")
	h := start(t, cfg)
	cp.SetTable(webTable(3, r1.rel(100)))
	cp.waitStatus(t, "version 3 applied", versionIs(3))
	testenv.Eventually(t, 20*time.Second, "web.test served", h.served("web.test", "/", "web-r1"))
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}

	fallback, err := os.ReadFile(filepath.Join(cfg.StateDir, "default.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cp.Close()
	h = start(t, cfg)
	if again, _ := os.ReadFile(filepath.Join(cfg.StateDir, "default.pem")); string(again) != string(fallback) {
		t.Error("the fallback certificate changed across a restart")
	}
	if v := h.c.appliedVersion(); v != 3 {
		t.Errorf("applied version after restart = %d, want 3 from table.json", v)
	}
	testenv.Eventually(t, 20*time.Second, "web.test served after restart", h.served("web.test", "/", "web-r1"))
	testenv.Eventually(t, 10*time.Second, "pull failure logged", func() error {
		if len(h.logs.find(`^WARN pulling the routing table failed`)) == 0 {
			return errors.New("not logged")
		}
		return nil
	})
}

func TestBadItemsAreDroppedAndReported(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	r1 := newUpstream(t, "web-r1")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))

	good := testCert(t, "web", "web.test", 7)
	mismatched := testCert(t, "broken", "broken.test", 8)
	mismatched.KeyPEM = testCert(t, "other", "broken.test", 9).KeyPEM
	tb := webTable(1, r1.rel(100))
	tb.Apps = append(tb.Apps, proxy.App{ID: "app_bad", Releases: []proxy.Release{{Service: "bad-r1", Port: 0, Weight: 1}}})
	tb.Routes = append(tb.Routes,
		proxy.Route{Host: "Bad_Host.test", AppID: "app_web"},
		proxy.Route{Host: "bad.test", AppID: "app_bad"},
		proxy.Route{Host: "api.web.test", AppID: "app_web"},
	)
	tb.Certificates = []proxy.Certificate{good, mismatched, {Name: "Bad Name", CertPEM: good.CertPEM, KeyPEM: good.KeyPEM},
		{Name: "junk", CertPEM: "hello", KeyPEM: good.KeyPEM}}
	tb.Challenges = []proxy.Challenge{{Token: "tok", KeyAuth: "tok.thumb"}, {Token: "../etc", KeyAuth: "x.y"}}
	cp.SetTable(tb)

	s := cp.waitStatus(t, "version 1 applied", versionIs(1))
	t.Logf("errors: %q", s.Errors)
	for _, want := range []string{
		`route "Bad_Host.test" → app "app_web" not applied: host: must be lowercase`,
		`app "app_bad" not applied, nor its routes: releases[0].port: must be 1–65535, got 0`,
		`route "bad.test" → app "app_bad" not applied: app_id: no app with id "app_bad" in the table`,
		`certificate "broken" not applied: key does not fit the certificate`,
		`certificate "Bad Name" not applied: name must be`,
		`certificate "junk" not applied: certificate chain: not PEM`,
		`ACME challenge "../etc" not answered`,
	} {
		if !slices.ContainsFunc(s.Errors, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("status errors lack %q", want)
		}
	}
	if len(s.Errors) != 7 {
		t.Errorf("got %d errors, want 7", len(s.Errors))
	}
	testenv.Eventually(t, 20*time.Second, "good route served", h.served("web.test", "/", "web-r1"))
	testenv.Eventually(t, 5*time.Second, "other good route served", h.served("api.web.test", "/", "web-r1"))
	if code, _, _ := h.get("bad.test", "/"); code != http.StatusServiceUnavailable {
		t.Errorf("dropped route: %d, want 503", code)
	}
	if leaf, err := h.tlsLeaf("web.test"); err != nil || leaf.SerialNumber.Int64() != 7 {
		t.Errorf("good certificate not served: %v %v", leaf, err)
	}
	if leaf, err := h.tlsLeaf("broken.test"); err != nil || leaf.Subject.CommonName != FallbackCertName {
		t.Errorf("refused certificate: served %v %v, want the fallback", leaf, err)
	}
}

func TestWeightSwitchWithoutReload(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	a, b := newUpstream(t, "web-a"), newUpstream(t, "web-b")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))

	cp.SetTable(webTable(1, a.rel(100), b.rel(0)))
	cp.waitStatus(t, "both releases up", releasesUp(1, "web-a", "web-b"))
	for range 10 {
		if err := h.served("web.test", "/", "web-a")(); err != nil {
			t.Fatal(err)
		}
	}
	before := h.workers()

	switched := time.Now()
	cp.SetTable(webTable(2, a.rel(0), b.rel(100)))
	testenv.Eventually(t, 10*time.Second, "traffic on web-b", h.served("web.test", "/", "web-b"))
	t.Logf("table published → first request served by web-b: %v", time.Since(switched))
	for range 20 {
		if err := h.served("web.test", "/", "web-b")(); err != nil {
			t.Fatal(err)
		}
	}
	if after := h.workers(); !slices.Equal(before, after) {
		t.Errorf("workers %v → %v: the weight switch reloaded HAProxy", before, after)
	}
	// Weight 0 takes web-a out of load balancing, not out of service.
	cp.waitStatus(t, "status reports version 2", releasesUp(2, "web-a", "web-b"))
	if got := h.logs.find(`routing table applied version=2 how=runtime`); len(got) != 1 {
		t.Errorf("apply log: %q", got)
	}

	// A crash restart loads the active configuration: it has the new weights.
	master := h.c.proc.PID()
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.client.CloseIdleConnections()
	testenv.Eventually(t, 20*time.Second, "restarted after kill -9", func() error {
		if pid := h.c.proc.PID(); pid == 0 || pid == master {
			return fmt.Errorf("master pid %d", pid)
		}
		return h.served("web.test", "/", "web-b")()
	})
	for range 20 {
		if err := h.served("web.test", "/", "web-b")(); err != nil {
			t.Fatalf("after the crash restart: %v", err)
		}
	}
}

func TestCertificateChangesWithoutReload(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	r1 := newUpstream(t, "web-r1")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))
	cp.SetTable(webTable(1, r1.rel(100)))
	cp.waitStatus(t, "version 1 applied", versionIs(1))
	testenv.Eventually(t, 20*time.Second, "web.test served", h.served("web.test", "/", "web-r1"))
	before := h.workers()
	leaf, err := h.tlsLeaf("web.test")
	if err != nil || leaf.Subject.CommonName != FallbackCertName {
		t.Fatalf("before any certificate: %v %v, want the fallback", leaf, err)
	}

	certFile := filepath.Join(h.cfg.StateDir, "run", "certs", "web.pem")
	for i, step := range []struct {
		name   string
		serial int64 // 0: no certificate
	}{{"added", 1}, {"renewed", 2}, {"removed", 0}} {
		tb := webTable(int64(i+2), r1.rel(100))
		var cert proxy.Certificate
		if step.serial != 0 {
			cert = testCert(t, "web", "web.test", step.serial)
			tb.Certificates = []proxy.Certificate{cert}
		}
		published := time.Now()
		cp.SetTable(tb)
		cp.waitStatus(t, step.name, versionIs(tb.Version))
		t.Logf("certificate %s: table published → status reports it %v", step.name, time.Since(published))
		leaf, err := h.tlsLeaf("web.test")
		if err != nil {
			t.Fatal(err)
		}
		if step.serial == 0 {
			if leaf.Subject.CommonName != FallbackCertName {
				t.Errorf("after removal: served %q, want the fallback", leaf.Subject.CommonName)
			}
			if _, err := os.Stat(certFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("certificate file after removal: %v, want gone", err)
			}
			continue
		}
		if leaf.SerialNumber.Int64() != step.serial {
			t.Errorf("%s: served serial %v, want %d", step.name, leaf.SerialNumber, step.serial)
		}
		if other, err := h.tlsLeaf("unknown.test"); err != nil || other.Subject.CommonName != FallbackCertName {
			t.Errorf("%s: unknown name served %v %v, want the fallback", step.name, other, err)
		}
		if fi, err := os.Stat(certFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("certificate file: %v, want mode 0600", err)
		}
		// HTTPS end to end, verified against the certificate itself.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(cert.CertPEM))
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "web.test"}, ForceAttemptHTTP2: true}
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/", h.cfg.HTTPSPort), nil)
		req.Host = "web.test"
		resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 || string(body) != "web-r1" || resp.ProtoMajor != 2 {
			t.Errorf("HTTPS GET web.test: %s %s %q, want HTTP/2 200 web-r1", resp.Proto, resp.Status, body)
		}
	}
	if after := h.workers(); !slices.Equal(before, after) {
		t.Errorf("workers %v → %v: certificate changes reloaded HAProxy", before, after)
	}
}

func TestChallengesAndRoutesWithoutReload(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	r1 := newUpstream(t, "web-r1")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))
	tb := webTable(1, r1.rel(100))
	tb.Routes[0].HTTPSRedirect = true
	tb.Challenges = []proxy.Challenge{{Token: "tok1", KeyAuth: "tok1.thumb"}}
	cp.SetTable(tb)
	cp.waitStatus(t, "version 1", versionIs(1))

	challenge := func(token string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.url(proxy.ACMEPathPrefix+token), nil)
		req.Host = "web.test"
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, ct, body := challenge("tok1"); code != 200 || ct != "text/plain" || body != "tok1.thumb" {
		t.Errorf("challenge tok1 over HTTP: %d %q %q", code, ct, body)
	}
	if code, _, _ := challenge("nope"); code != http.StatusNotFound {
		t.Errorf("unknown token: %d, want 404", code)
	}
	if code, _, _ := h.get("web.test", "/page"); code != http.StatusPermanentRedirect {
		t.Errorf("GET /page on the redirected route: %d, want 308", code)
	}
	before := h.workers()

	tb = webTable(2, r1.rel(100))
	tb.Routes[0].HTTPSRedirect = true
	tb.Routes = append(tb.Routes, proxy.Route{Host: "api.test", AppID: "app_web"})
	tb.Challenges = []proxy.Challenge{{Token: "tok2", KeyAuth: "tok2.thumb"}}
	cp.SetTable(tb)
	cp.waitStatus(t, "version 2", versionIs(2))
	if code, _, body := challenge("tok2"); code != 200 || body != "tok2.thumb" {
		t.Errorf("challenge tok2: %d %q", code, body)
	}
	if code, _, _ := challenge("tok1"); code != http.StatusNotFound {
		t.Errorf("withdrawn challenge tok1: %d, want 404", code)
	}
	testenv.Eventually(t, 10*time.Second, "new route api.test", h.served("api.test", "/", "web-r1"))
	if after := h.workers(); !slices.Equal(before, after) {
		t.Errorf("workers %v → %v: a challenge and route change reloaded HAProxy", before, after)
	}
}

// load runs clients concurrent GET/POST loops against web.test until ctx
// ends, recording which release answered each request and when it started.
type load struct {
	mu      sync.Mutex
	results []loadResult
	errs    []error
	wg      sync.WaitGroup
}

type loadResult struct {
	start time.Time
	body  string
}

func runLoad(ctx context.Context, h *harness, clients int) *load {
	l := &load{}
	for c := range clients {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				method := http.MethodGet
				if (i+c)%2 == 1 {
					method = http.MethodPost
				}
				start := time.Now()
				code, body, err := h.do(method, "web.test", "/")
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("status %d: %.80q", code, body)
				}
				l.mu.Lock()
				if err != nil {
					l.errs = append(l.errs, fmt.Errorf("%s at %s: %w", method, start.Format("15:04:05.000"), err))
				} else {
					l.results = append(l.results, loadResult{start, body})
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// since counts the answers of each release to requests started after t.
func (l *load) since(t time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := map[string]int{}
	for _, r := range l.results {
		if r.start.After(t) {
			n[r.body]++
		}
	}
	return n
}

func TestZeroFailedRequestsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; skipped with -short")
	}
	cp := newControlPlane(t, "s3cret")
	a, b, c := newUpstream(t, "web-a"), newUpstream(t, "web-b"), newUpstream(t, "web-c")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))
	cp.SetTable(webTable(1, a.rel(100), b.rel(0)))
	cp.waitStatus(t, "both releases up", releasesUp(1, "web-a", "web-b"))

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	l := runLoad(ctx, h, 20)
	started := time.Now()
	testenv.Eventually(t, 10*time.Second, "load running", func() error {
		if n := l.since(started)["web-a"]; n < 200 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})

	// Switch A → B at runtime.
	workers := h.workers()
	published := time.Now()
	cp.SetTable(webTable(2, a.rel(0), b.rel(100)))
	cp.waitStatus(t, "switch applied", versionIs(2))
	switched := time.Now()
	t.Logf("switch: table published → status reports it %v", switched.Sub(published))
	testenv.Eventually(t, 10*time.Second, "traffic after the switch", func() error {
		if n := l.since(switched)["web-b"]; n < 200 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})
	if w := h.workers(); !slices.Equal(w, workers) {
		t.Errorf("workers %v → %v: the switch reloaded", workers, w)
	}

	// Add release C: a new server-template, so a reload.
	published = time.Now()
	cp.SetTable(webTable(3, a.rel(0), b.rel(100), c.rel(100)))
	cp.waitStatus(t, "release C added and up", releasesUp(3, "web-b", "web-c"))
	reloaded := time.Now()
	t.Logf("reload: table published → status reports C up %v", reloaded.Sub(published))
	if w := h.workers(); slices.Equal(w, workers) {
		t.Errorf("workers %v unchanged: adding a release should reload", w)
	}
	testenv.Eventually(t, 10*time.Second, "C serves after the reload", func() error {
		if n := l.since(reloaded)["web-c"]; n < 100 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})

	// Remove the drained release A: another reload.
	workers = h.workers()
	cp.SetTable(webTable(4, b.rel(100), c.rel(100)))
	cp.waitStatus(t, "release A removed", releasesUp(4, "web-b", "web-c"))
	removed := time.Now()
	if w := h.workers(); slices.Equal(w, workers) {
		t.Errorf("workers %v unchanged: removing a release should reload", w)
	}
	testenv.Eventually(t, 10*time.Second, "traffic after the second reload", func() error {
		if n := l.since(removed); n["web-b"] < 100 || n["web-c"] < 100 {
			return fmt.Errorf("%v so far", n)
		}
		return nil
	})
	stopLoad()
	l.wg.Wait()

	total := len(l.results) + len(l.errs)
	afterSwitch, afterReload := l.since(switched), l.since(reloaded)
	t.Logf("%d requests, %d failed; after the switch %v; after the reload %v", total, len(l.errs), afterSwitch, afterReload)
	for i, err := range l.errs {
		if i == 5 {
			break
		}
		t.Log(err)
	}
	if len(l.errs) != 0 {
		t.Errorf("%d of %d requests failed", len(l.errs), total)
	}
	if n := l.since(started); len(n) != 3 || n["web-a"] == 0 {
		t.Errorf("answers %v, want from web-a, web-b and web-c only", n)
	}
	if afterSwitch["web-a"] != 0 {
		t.Errorf("%d requests started after the switch reached web-a", afterSwitch["web-a"])
	}
}

func TestUnauthorizedIsRetried(t *testing.T) {
	cp := newControlPlane(t, "right")
	r1 := newUpstream(t, "web-r1")
	cfg := newConfig(t, cp, startDNS(t), "wrong")
	h := start(t, cfg) // serving without the control plane's consent
	cp.SetTable(webTable(1, r1.rel(100)))

	testenv.Eventually(t, 10*time.Second, "401s retried and logged", func() error {
		logged := h.logs.find(`^WARN pulling the routing table failed, serving the last one err=GET /internal/v1/proxy/table: 401 Unauthorized: the control plane refused the proxy token`)
		if len(logged) < 2 || cp.Unauthorized() < 2 {
			return fmt.Errorf("%d logged, %d refused", len(logged), cp.Unauthorized())
		}
		return nil
	})
	if code, _, err := h.get("web.test", "/"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("while refused: %d %v, want HAProxy's 503", code, err)
	}

	if err := os.WriteFile(cfg.TokenFile, []byte("right\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "served once the token is right", h.served("web.test", "/", "web-r1"))
	select {
	case err := <-h.done:
		t.Fatalf("Run returned: %v", err)
	default:
	}
}

func TestConfigWeightsWin(t *testing.T) {
	in := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change\n" +
		"3 be_app_web 1 web-a-1 127.0.0.1 2 0 0 100 5\n" +
		"3 be_app_web 2 web-b-1 127.0.0.1 2 0 100 0 5\n\n"
	want := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change\n" +
		"3 be_app_web 1 web-a-1 127.0.0.1 2 0 100 100 5\n" +
		"3 be_app_web 2 web-b-1 127.0.0.1 2 0 0 0 5\n\n"
	if got := string(configWeightsWin([]byte(in))); got != want {
		t.Errorf("configWeightsWin:\n%s\nwant\n%s", got, want)
	}
}

// TestRefusedConfigurationKeepsServing injects a refusal: a wrapper around
// haproxy fails `haproxy -c` while a marker file exists.
func TestRefusedConfigurationKeepsServing(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	web, api := newUpstream(t, "web-r1"), newUpstream(t, "api-r1")
	cfg := newConfig(t, cp, startDNS(t), "s3cret")
	wrapper := filepath.Join(t.TempDir(), "haproxy")
	script := "#!/bin/sh\nif [ \"$1\" = -c ] && [ -e \"$0.refuse\" ]; then echo '[ALERT] injected refusal' >&2; exit 1; fi\nexec " +
		cfg.HAProxyBinary + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.HAProxyBinary = wrapper
	h := start(t, cfg)
	cp.SetTable(webTable(1, web.rel(100)))
	cp.waitStatus(t, "version 1 applied", versionIs(1))
	testenv.Eventually(t, 20*time.Second, "web.test served", h.served("web.test", "/", "web-r1"))

	if err := os.WriteFile(wrapper+".refuse", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tb := webTable(2, web.rel(100))
	tb.Apps = append(tb.Apps, proxy.App{ID: "app_api", Releases: []proxy.Release{api.rel(100)}})
	tb.Routes = append(tb.Routes, proxy.Route{Host: "api.test", AppID: "app_api"})
	cp.SetTable(tb)
	cp.waitStatus(t, "refusal reported", func(s proxy.Status) error {
		if err := versionIs(1)(s); err != nil {
			return err
		}
		if len(s.Errors) != 1 || !strings.HasPrefix(s.Errors[0], "table version 2 not applied, still serving version 1: ") ||
			!strings.Contains(s.Errors[0], "injected refusal") {
			return fmt.Errorf("errors %q", s.Errors)
		}
		return nil
	})
	if err := h.served("web.test", "/", "web-r1")(); err != nil {
		t.Errorf("after the refusal: %v", err)
	}
	if code, _, err := h.get("api.test", "/"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("api.test after the refusal: %d %v, want 503", code, err)
	}
	routes, err := os.ReadFile(filepath.Join(cfg.StateDir, "run", "routes.map"))
	if err != nil || strings.Contains(string(routes), "api.test") {
		t.Errorf("route map after the refusal (%v), want the running table's:\n%s", err, routes)
	}

	if err := os.Remove(wrapper + ".refuse"); err != nil {
		t.Fatal(err)
	}
	cp.waitStatus(t, "applied once accepted", func(s proxy.Status) error {
		if err := versionIs(2)(s); err != nil {
			return err
		}
		if len(s.Errors) != 0 {
			return fmt.Errorf("errors %q", s.Errors)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "api.test served", h.served("api.test", "/", "api-r1"))
}

// With a listener holder, HAProxy accepts on the sockets it hands over: a
// second proxy starts on them next to the first, the first stops, and not
// one request under load fails (the proxy upgrade).
func TestHeldListenersHandOver(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; skipped with -short")
	}
	cp := newControlPlane(t, "s3cret")
	up := newUpstream(t, "web-a")
	dns := startDNS(t)
	first := newConfig(t, cp, dns, "s3cret")
	first.Listeners = filepath.Join(t.TempDir(), "listeners.sock")
	holdCtx, stopHolder := context.WithCancel(context.Background())
	held := make(chan error, 1)
	go func() {
		held <- listeners.Hold(holdCtx, first.Listeners, map[string]string{
			"http":  "127.0.0.1:" + strconv.Itoa(first.HTTPPort),
			"https": "127.0.0.1:" + strconv.Itoa(first.HTTPSPort),
		}, nil)
	}()
	t.Cleanup(func() { stopHolder(); <-held })
	cp.SetTable(webTable(1, up.rel(100)))
	h1 := start(t, first)
	testenv.Eventually(t, 20*time.Second, "web.test served", h1.served("web.test", "/", "web-a"))
	if _, err := h1.tlsLeaf("web.test"); err != nil {
		t.Errorf("TLS on the held HTTPS socket: %v", err)
	}

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	l := runLoad(ctx, h1, 20)
	time.Sleep(300 * time.Millisecond)
	// The second shares the first's state (one volume per node) and starts
	// from its last good table, with its own run directory.
	second := first
	second.RunDir = filepath.Join(t.TempDir(), "run")
	second.StatsPort, second.ChallengeAddr = testenv.FreePort(t), "127.0.0.1:"+strconv.Itoa(testenv.FreePort(t))
	second.ID = "proxy-test-2"
	start(t, second)
	if err := h1.stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	l.wg.Wait()
	if len(l.errs) > 0 || len(l.results) == 0 {
		t.Fatalf("%d of %d requests failed during the hand-over: %v", len(l.errs), len(l.errs)+len(l.results), l.errs[:min(len(l.errs), 5)])
	}
	t.Logf("%d requests, 0 failed", len(l.results))
}
