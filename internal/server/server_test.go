package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/config"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/orchestrator/swarm"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

func newTestServer(t *testing.T, dockerHost string) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	engine, err := swarm.New(dockerHost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	var logs bytes.Buffer
	log, _ := logging.New(&logs, "json", "debug")
	keys, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	router, err := edge.NewRouter(t.Context(), db, keys, log, edge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(config.Config{}, log, db, keys, engine, router, "ins_test", nil).Handler())
	t.Cleanup(srv.Close)
	return srv, &logs
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestReadyz(t *testing.T) {
	t.Run("engine up", func(t *testing.T) {
		srv, _ := newTestServer(t, testenv.Docker(t))
		if resp, body := get(t, srv.URL+"/readyz"); resp.StatusCode != 200 {
			t.Fatalf("readyz = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("engine down", func(t *testing.T) {
		srv, _ := newTestServer(t, "unix:///nonexistent/docker.sock")
		resp, body := get(t, srv.URL+"/readyz")
		if resp.StatusCode != 503 || !strings.Contains(body, `"engine":"unreachable"`) || !strings.Contains(body, `"database":"ok"`) {
			t.Fatalf("readyz = %d %s", resp.StatusCode, body)
		}
		if resp, _ := get(t, srv.URL+"/healthz"); resp.StatusCode != 200 {
			t.Fatalf("healthz must answer while the engine is down: %d", resp.StatusCode)
		}
	})
}

func TestHeadersAndRequestID(t *testing.T) {
	srv, logs := newTestServer(t, "unix:///nonexistent/docker.sock")
	resp, _ := get(t, srv.URL+"/login", "X-Request-Id", "req-abc_123")
	want := map[string]string{
		"X-Request-Id":            "req-abc_123",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "same-origin",
		"Content-Security-Policy": contentSecurityPolicy,
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, directive := range []string{"script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(contentSecurityPolicy, directive) || strings.Contains(contentSecurityPolicy, "unsafe-inline") {
			t.Errorf("CSP must contain %q and never unsafe-inline", directive)
		}
	}
	if !strings.Contains(logs.String(), `"request_id":"req-abc_123"`) {
		t.Errorf("access log lacks the request id:\n%s", logs)
	}
	// A malformed incoming id is replaced, not echoed into logs and headers.
	resp, _ = get(t, srv.URL+"/healthz", "X-Request-Id", "bad id <script>")
	if id := resp.Header.Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " <") {
		t.Errorf("malformed request id echoed as %q", id)
	}
}

func TestMetricsByRoute(t *testing.T) {
	srv, _ := newTestServer(t, "unix:///nonexistent/docker.sock")
	get(t, srv.URL+"/api/v1/setup")
	get(t, srv.URL+"/api/v1/tokens/tok_whatever")
	_, body := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`berth_http_requests_total{method="GET",route="GET /api/v1/setup",status="200"} 1`,
		`berth_http_requests_total{method="GET",route="/api/v1/",status="405"}`,
		`berth_http_request_duration_seconds_bucket{method="GET",route="GET /api/v1/setup",le="0.005"}`,
		"go_memstats_heap_alloc_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestPanicIsAProblemWithoutStack(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := requestID(observe(log, newHTTPMetrics(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom: secret internals")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/anything", nil))
	body := rec.Body.String()
	if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("panic answered %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if strings.Contains(body, "boom") || strings.Contains(body, "goroutine") || !strings.Contains(body, rec.Header().Get("X-Request-Id")) {
		t.Errorf("500 body must hide internals and quote the request id: %s", body)
	}
	if !strings.Contains(logs.String(), "boom: secret internals") {
		t.Errorf("the panic must be logged for operators")
	}
}

func TestACMEConfigDNSProvider(t *testing.T) {
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	base := config.Config{ACMEDirectory: "https://ca.example/dir", ACMEDNSProvider: "rfc2136"}

	cfg := base
	cfg.ACMEDNSSettings = "nameserver=127.0.0.1:53, tsig_key=berth.,tsig_secret=" + secret + ",resolvers=127.0.0.1:53,127.0.0.2:53,ttl=60"
	c, err := acmeConfig(cfg)
	if err != nil || c.DNS == nil {
		t.Fatalf("acmeConfig = %+v, %v; want a DNS provider", c, err)
	}
	got, err := dnsSettings(cfg.ACMEDNSSettings)
	if err != nil || got["resolvers"] != "127.0.0.1:53,127.0.0.2:53" || got["tsig_secret"] != secret || got["ttl"] != "60" || len(got) != 5 {
		t.Errorf("dnsSettings = %v, %v", got, err)
	}
	if c, err := acmeConfig(config.Config{ACMEDirectory: "https://ca.example/dir"}); err != nil || c.DNS != nil {
		t.Errorf("without a provider: %+v, %v; want no DNS provider", c, err)
	}

	for _, tc := range []struct{ name, provider, settings, want string }{
		{"missing setting", "rfc2136", "nameserver=127.0.0.1:53,tsig_secret=" + secret, "tsig_key"},
		{"bad secret", "rfc2136", "nameserver=127.0.0.1:53,tsig_key=k,tsig_secret=not base64!", "tsig_secret"},
		{"unknown setting", "cloudflare", "api_token=" + secret + ",nameserver=x", "nameserver"},
		{"unknown kind", "route53", "a=b", "kind"},
		{"not key=value", "rfc2136", secret + "x", "item 1"},
		{"twice", "rfc2136", "tsig_key=a,tsig_key=b", "set twice"},
		{"settings without provider", "", "tsig_secret=" + secret, "--acme-dns-provider"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.ACMEDNSProvider, cfg.ACMEDNSSettings = tc.provider, tc.settings
			_, err := acmeConfig(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "not base64!") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}
