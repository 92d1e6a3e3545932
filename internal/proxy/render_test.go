package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.cfg from the current output")

// goldenOptions are fixed so golden files do not depend on the machine.
var goldenOptions = Options{RuntimeSocket: "/run/berth/haproxy.sock", MapPath: "/etc/berth/proxy/routes.map",
	PathMapPath: "/etc/berth/proxy/paths.map", Threads: 2}

func app(id string, rels ...Release) App {
	return App{ID: id, Name: "App " + id, Releases: rels}
}

func rel(service string, weight int) Release {
	return Release{Service: service, Port: 8080, Weight: weight}
}

// goldenCases are the tables whose rendering is pinned in testdata; https
// cases render with an HTTPS listener on 443.
var goldenCases = []struct {
	name  string
	table Table
	https bool
}{
	{"empty", Table{Version: 1}, false},
	{"control_plane", Table{
		Version: 9,
		Apps:    []App{{ID: "berth-control-plane", Name: "Berth control plane", Address: "172.18.0.1:7381"}},
		Routes:  []Route{{Host: "berth.example.com", AppID: "berth-control-plane", HTTPSRedirect: true}},
	}, true},
	{"one_app_one_route", Table{
		Version: 2,
		Apps: []App{{ID: "app_web", Name: "Web", Releases: []Release{{
			Service: "web-r1", Port: 3000, Weight: 100,
			Health: &HealthCheck{Path: "/healthz", Interval: 3 * time.Second, ExpectStatus: 200},
		}}}},
		Routes: []Route{{Host: "www.example.com", AppID: "app_web"}},
	}, false},
	{"canary_80_20", Table{
		Version: 3,
		Apps:    []App{app("app_shop", rel("shop-r8", 20), rel("shop-r7", 80))},
		Routes:  []Route{{Host: "shop.example.com", PathPrefix: "/", AppID: "app_shop", Timeout: 2 * time.Minute, MaxBody: 10 << 20}},
	}, false},
	{"path_prefix_strip", Table{
		Version: 4,
		Apps:    []App{app("app_site", rel("site-r1", 100)), app("app_api", rel("api-r3", 100))},
		Routes: []Route{
			{Host: "example.com", PathPrefix: "/api/v1", StripPrefix: true, AppID: "app_api", Timeout: 1500 * time.Millisecond},
			{Host: "example.com", AppID: "app_site"},
		},
	}, false},
	{"https_redirect", Table{
		Version: 5,
		Apps:    []App{app("app_secure", rel("secure-r2", 256))},
		Routes:  []Route{{Host: "secure.example.org", AppID: "app_secure", HTTPSRedirect: true}},
	}, false},
	{"https_certs", Table{
		Version: 6,
		Apps:    []App{app("app_secure", rel("secure-r2", 100))},
		Routes: []Route{
			{Host: "secure.example.org", AppID: "app_secure", HTTPSRedirect: true},
			{Host: "www.example.org", AppID: "app_secure", HTTPSRedirect: true},
		},
		Certificates: []Certificate{
			{Name: "www-example-org", CertPEM: "(not rendered)", KeyPEM: "(not rendered)"},
			{Name: "secure-example-org", CertPEM: "(not rendered)", KeyPEM: "(not rendered)"},
		},
	}, true},
	{"acme_challenge", Table{
		// The challenge path under a redirected, prefix-stripped route:
		// the rendering answers it before any of that applies.
		Version: 7,
		Apps:    []App{app("app_site", rel("site-r1", 100))},
		Routes: []Route{
			{Host: "example.net", AppID: "app_site", HTTPSRedirect: true},
			{Host: "example.net", PathPrefix: "/.well-known", StripPrefix: true, AppID: "app_site", HTTPSRedirect: true, MaxBody: 2048},
		},
		Challenges: []Challenge{{Token: "tok_1", KeyAuth: "tok_1.thumb"}},
	}, true},
	{"domain_options", Table{
		// Redirects (apex to www, a path to another site), basic auth,
		// response headers and a compressing target.
		Version: 8,
		Apps: []App{app("app_web", rel("web-r1", 100)),
			{ID: "app_web-gz", Name: "Web", Compress: true, Releases: []Release{rel("web-r1", 100)}}},
		Routes: []Route{
			{Host: "example.com", HTTPSRedirect: true, Redirect: &Redirect{To: "https://www.example.com", Code: 308, KeepPath: true}},
			{Host: "www.example.com", PathPrefix: "/old", StripPrefix: true, Redirect: &Redirect{To: "http://docs.example.org:8080/v2/", Code: 302}},
			{Host: "www.example.com", AppID: "app_web-gz", Timeout: 90 * time.Second, MaxBody: 1 << 20,
				Headers: []Header{{Name: "Strict-Transport-Security", Value: "max-age=63072000; includeSubDomains"}, {Name: "X-Note", Value: `say "hi" \ $HOME #not-a-comment`}}},
			{Host: "staging.example.com", AppID: "app_web",
				BasicAuth: &BasicAuth{User: "alice", PasswordHash: "$2a$05$abcdefghijklmnopqrstuuE7ZfIHTCaDIGdV1wSlEwN1Y.RO6WKVO"}},
		},
	}, false},
	{"wildcard", Table{
		// A wildcard host with a path prefix, and an exact host under it
		// that wins over the wildcard.
		Version: 9,
		Apps:    []App{app("app_any", rel("any-r1", 100)), app("app_www", rel("www-r1", 100))},
		Routes: []Route{
			{Host: "*.example.com", AppID: "app_any", HTTPSRedirect: true},
			{Host: "*.example.com", PathPrefix: "/api", StripPrefix: true, AppID: "app_www", HTTPSRedirect: true},
			{Host: "www.example.com", AppID: "app_www", HTTPSRedirect: true},
		},
		Certificates: []Certificate{{Name: "wildcard-example-com", CertPEM: "(not rendered)", KeyPEM: "(not rendered)"}},
	}, true},
}

func goldenCase(t *testing.T, name string) Table {
	t.Helper()
	for _, tc := range goldenCases {
		if tc.name == name {
			return tc.table
		}
	}
	t.Fatalf("no golden case %q", name)
	return Table{}
}

func goldenOpts(https bool) Options {
	o := goldenOptions
	if https {
		o.HTTPSPort = 443
	}
	return o
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			o := goldenOpts(tc.https)
			cfg, err := Render(tc.table, o)
			if err != nil {
				t.Fatal(err)
			}
			crtList, err := RenderCrtList(tc.table, o)
			if err != nil {
				t.Fatal(err)
			}
			got := append(cfg, "\n# ---- route map ----\n"...)
			got = append(got, RenderMap(tc.table)...)
			got = append(got, "\n# ---- path map ----\n"...)
			got = append(got, RenderPathMap(tc.table)...)
			got = append(got, "\n# ---- crt-list ----\n"...)
			got = append(got, crtList...)
			path := filepath.Join("testdata", tc.name+".golden.cfg")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendering differs from %s (go test -update to accept):\n%s", path, got)
			}
			// Determinism: shuffled input, same output.
			again, _ := Render(reversed(tc.table), o)
			againList, _ := RenderCrtList(reversed(tc.table), o)
			if !bytes.Equal(again, cfg) || !bytes.Equal(RenderMap(reversed(tc.table)), RenderMap(tc.table)) ||
				!bytes.Equal(RenderPathMap(reversed(tc.table)), RenderPathMap(tc.table)) || !bytes.Equal(againList, crtList) {
				t.Error("output depends on the order of apps, releases or routes")
			}
		})
	}
}

func reversed(t Table) Table {
	out := Table{Version: t.Version, Challenges: t.Challenges}
	for i := len(t.Certificates) - 1; i >= 0; i-- {
		out.Certificates = append(out.Certificates, t.Certificates[i])
	}
	for i := len(t.Routes) - 1; i >= 0; i-- {
		out.Routes = append(out.Routes, t.Routes[i])
	}
	for i := len(t.Apps) - 1; i >= 0; i-- {
		a := t.Apps[i]
		a.Releases = nil
		for j := len(t.Apps[i].Releases) - 1; j >= 0; j-- {
			a.Releases = append(a.Releases, t.Apps[i].Releases[j])
		}
		out.Apps = append(out.Apps, a)
	}
	return out
}

// checkFiles renders tb with every file the configuration names in a
// temporary directory (map, crt-list, default certificate, one file per
// certificate, server state) and returns the configuration's path. The log
// socket is access.sock next to it.
func checkFiles(t *testing.T, tb Table, o Options) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	o.RuntimeSocket = filepath.Join(dir, "admin.sock")
	o.LogSocket = filepath.Join(dir, "access.sock")
	o.MapPath = filepath.Join(dir, "routes.map")
	o.PathMapPath = filepath.Join(dir, "paths.map")
	o.DefaultCertPath = filepath.Join(dir, "default.pem")
	o.CertDir = filepath.Join(dir, "certs")
	o.CrtListPath = filepath.Join(dir, "certs.list")
	o.ServerStatePath = filepath.Join(dir, "server-state")
	cfg, err := Render(tb, o)
	if err != nil {
		t.Fatal(err)
	}
	crtList, err := RenderCrtList(tb, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(o.CertDir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		o.MapPath:         RenderMap(tb),
		o.PathMapPath:     RenderPathMap(tb),
		o.CrtListPath:     crtList,
		o.DefaultCertPath: selfSigned(t, "Berth fallback certificate"),
		// What "show servers state" prints when there are no servers.
		o.ServerStatePath: []byte("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"),
	}
	for _, c := range tb.Certificates {
		files[CertFile(o.CertDir, c.Name)] = selfSigned(t, c.Name+".example")
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, cfg
}

// selfSigned returns a PEM certificate for dnsName followed by its key.
func selfSigned(t *testing.T, dnsName string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
}

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

// haproxyCheck runs the real "haproxy -c" on a configuration rendered with
// all its files in a temporary directory, failing on any error or warning.
func haproxyCheck(t *testing.T, tb Table, o Options) {
	t.Helper()
	bin := haproxyBinary(t)
	cfgPath, cfg := checkFiles(t, tb, o)
	// -dW turns warnings into errors.
	out, err := exec.Command(bin, "-dW", "-c", "-f", cfgPath).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("WARNING")) || bytes.Contains(out, []byte("ALERT")) {
		t.Fatalf("haproxy -c: %v\n%s\n--- config ---\n%s", err, out, cfg)
	}
	if !strings.Contains(string(out), "Configuration file is valid") {
		t.Fatalf("haproxy -c did not confirm the configuration:\n%s", out)
	}
}

func TestRenderHAProxyAccepts(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) { haproxyCheck(t, tc.table, goldenOpts(tc.https)) })
	}
}

// TestRenderedFrontend runs HAProxy on a rendered configuration: challenge
// requests reach ChallengeAddr untouched by the route's redirect, body limit
// and prefix strip, on HTTP and HTTPS; the access log is one JSON object per
// request with the client's host and path escaped.
func TestRenderedFrontend(t *testing.T) {
	bin := haproxyBinary(t)
	var mu sync.Mutex
	var gotPaths []string
	acme := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		gotPaths = append(gotPaths, r.URL.Path)
		io.WriteString(w, "key-auth")
	}))
	t.Cleanup(acme.Close)
	o := Options{
		HTTPPort: testenv.FreePort(t), HTTPSPort: testenv.FreePort(t), StatsPort: testenv.FreePort(t),
		ChallengeAddr: strings.TrimPrefix(acme.URL, "http://"),
	}
	tb := goldenCase(t, "acme_challenge")
	cfgPath, _ := checkFiles(t, tb, o)
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The log ring's forwarder connects here; its lines join HAProxy's output.
	logs, err := net.Listen("unix", filepath.Join(filepath.Dir(cfgPath), "access.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	go func() {
		for {
			conn, err := logs.Accept()
			if err != nil {
				return
			}
			go io.Copy(&out, conn)
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	client := &http.Client{
		Timeout:       2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	get := func(url, body string) (int, string) {
		t.Helper()
		for try := 0; ; try++ {
			req, _ := http.NewRequest(http.MethodGet, url, strings.NewReader(body))
			req.Host = "example.net"
			resp, err := client.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			if try == 100 {
				t.Fatalf("GET %s: %v\n%s", url, err, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", o.HTTPPort)
	httpsURL := fmt.Sprintf("https://127.0.0.1:%d", o.HTTPSPort)
	const challenge = "/.well-known/acme-challenge/tok_1"
	for _, base := range []string{httpURL, httpsURL} {
		// The body is over the route's 2048-byte limit.
		if code, body := get(base+challenge, strings.Repeat("x", 4096)); code != 200 || body != "key-auth" {
			t.Errorf("GET %s%s = %d %q, want 200 from the challenge responder", base, challenge, code, body)
		}
	}
	mu.Lock()
	if len(gotPaths) != 2 || gotPaths[0] != challenge || gotPaths[1] != challenge {
		t.Errorf("challenge responder saw paths %q, want %q twice (not stripped)", gotPaths, challenge)
	}
	mu.Unlock()
	if code, _ := get(httpURL+"/other", ""); code != http.StatusPermanentRedirect {
		t.Errorf("GET /other on the redirected route = %d, want 308", code)
	}

	// Sent raw: Go's client would percent-encode the path.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", o.HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /a\\c{} HTTP/1.1\r\nHost: Ex\"am\\ple\xc3\xa9.NET\r\nConnection: close\r\n\r\n")
	io.Copy(io.Discard, conn)
	conn.Close()
	// Log lines come in the order requests end; find each by its path.
	hostilePath := `/a\c{}`
	var entries []map[string]any
	byPath := func(p string) []map[string]any {
		var out []map[string]any
		for _, e := range entries {
			if e["path"] == p {
				out = append(out, e)
			}
		}
		return out
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		entries = entries[:0]
		for line := range strings.Lines(out.String()) {
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("access log line is not JSON: %v\n%s", err, line)
			}
			entries = append(entries, e)
		}
		if len(byPath(challenge)) == 2 && len(byPath(hostilePath)) == 1 {
			break
		}
	}
	if len(byPath(challenge)) != 2 || len(byPath(hostilePath)) != 1 {
		t.Fatalf("access log lacks the requests:\n%s", out.String())
	}
	first := byPath(challenge)[0]
	t.Logf("access log: %v", first)
	if first["backend"] != ACMEBackend || first["status"] != 200.0 || first["host"] != "example.net" || first["method"] != "GET" {
		t.Errorf("challenge log entry = %v", first)
	}
	// Seconds since the epoch, with milliseconds: the controller makes it RFC 3339.
	if at, ok := first["time"].(float64); !ok || time.Since(time.UnixMilli(int64(at*1000))).Abs() > time.Minute {
		t.Errorf("time %v, want the epoch seconds of the request", first["time"])
	}
	for _, k := range []string{"client", "bytes", "duration_ms", "server", "termination"} {
		if _, ok := first[k]; !ok {
			t.Errorf("log entry has no %q: %v", k, first)
		}
	}
	hostile := byPath(hostilePath)[0]
	t.Logf("hostile request logged as %v", hostile)
	if hostile["host"] != "ex\"am\\ple\u00e9.net" {
		t.Errorf("hostile request logged with host %q", hostile["host"])
	}
}

// syncBuffer is a bytes.Buffer safe for HAProxy's output goroutines and the
// test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRenderRefusesBadOptionsAndCertNames(t *testing.T) {
	for name, o := range map[string]Options{
		"https on the http port": {HTTPPort: 8080, HTTPSPort: 8080},
		"https port range":       {HTTPSPort: 70000},
		"relative crt-list":      {CrtListPath: "certs.list"},
		"cert dir with a space":  {CertDir: "/etc/berth/my certs"},
		"nameserver hostname":    {Nameserver: "dns.local:53"},
		"challenge without port": {ChallengeAddr: "127.0.0.1"},
		"negative threads":       {Threads: -1},
		"too many threads":       {Threads: 65},
	} {
		var fe *FieldError
		if _, err := Render(Table{}, o); !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want *FieldError", name, err)
		}
	}
	for _, n := range []string{"", "Upper", "a b", "../x", "a/b", "-lead", strings.Repeat("a", 101)} {
		var fe *FieldError
		if _, err := RenderCrtList(Table{Certificates: []Certificate{{Name: n}}}, Options{}); !errors.As(err, &fe) {
			t.Errorf("certificate name %q: err = %v, want *FieldError", n, err)
		}
	}
	dup := Table{Certificates: []Certificate{{Name: "a"}, {Name: "a"}}}
	if _, err := RenderCrtList(dup, Options{}); err == nil {
		t.Error("duplicate certificate names accepted")
	}
}
