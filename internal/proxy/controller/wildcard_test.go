package controller

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/testenv"
)

// TestWildcardRoutes: a wildcard host serves every name one label under it,
// not its apex nor deeper names, with path prefixes; an exact host added later
// wins over it, as a runtime map change. The wildcard certificate is served
// for the names it covers.
func TestWildcardRoutes(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	wild, api, exact := newUpstream(t, "wild-r1"), newUpstream(t, "api-r1"), newUpstream(t, "exact-r1")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))
	cert := testCert(t, "wild", "*.example.com", 7)
	table := func(version int64, routes ...proxy.Route) proxy.Table {
		return proxy.Table{
			Version: version,
			Apps: []proxy.App{
				{ID: "app_wild", Name: "Wild", Releases: []proxy.Release{wild.rel(100)}},
				{ID: "app_api", Name: "API", Releases: []proxy.Release{api.rel(100)}},
				{ID: "app_exact", Name: "Exact", Releases: []proxy.Release{exact.rel(100)}},
			},
			Routes: append([]proxy.Route{
				{Host: "*.example.com", AppID: "app_wild"},
				{Host: "*.example.com", PathPrefix: "/api", AppID: "app_api"},
			}, routes...),
			Certificates: []proxy.Certificate{cert},
		}
	}
	cp.SetTable(table(1))
	cp.waitStatus(t, "version 1 applied", versionIs(1))
	testenv.Eventually(t, 20*time.Second, "a.example.com served by the wildcard", h.served("a.example.com", "/", "wild-r1"))
	before := h.workers()
	for _, c := range []struct{ host, path, want string }{
		{"b.example.com", "/x", "wild-r1"},
		{"b.example.com", "/api/v1", "api-r1"},
		{"B.Example.com:80", "/", "wild-r1"},
	} {
		if err := h.served(c.host, c.path, c.want)(); err != nil {
			t.Error(err)
		}
	}
	for _, host := range []string{"example.com", "x.y.example.com", "a.example.org", "localhost"} {
		code, body, err := h.get(host, "/")
		if err != nil || code == http.StatusOK || body == "wild-r1" {
			t.Errorf("GET %s/ = %d %.60q %v, want no route", host, code, body, err)
		}
	}

	leaf, err := h.tlsLeaf("a.example.com")
	if err != nil || leaf.SerialNumber.Int64() != 7 {
		t.Errorf("TLS a.example.com: %v %v, want the wildcard certificate", leaf, err)
	}
	if leaf, err := h.tlsLeaf("x.y.example.com"); err != nil || leaf.Subject.CommonName != FallbackCertName {
		t.Errorf("TLS x.y.example.com: %v %v, want the fallback", leaf, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cert.CertPEM))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "c.example.com"}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/", h.cfg.HTTPSPort), nil)
	req.Host = "c.example.com"
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "wild-r1" {
		t.Errorf("HTTPS GET c.example.com: %s %q, want 200 wild-r1", resp.Status, body)
	}

	// An exact host wins over the wildcard, on every path, and leaves the
	// wildcard's other names alone.
	cp.SetTable(table(2, proxy.Route{Host: "a.example.com", AppID: "app_exact"}))
	cp.waitStatus(t, "version 2 applied", versionIs(2))
	for _, c := range []struct{ host, path, want string }{
		{"a.example.com", "/", "exact-r1"},
		{"a.example.com", "/api", "exact-r1"},
		{"b.example.com", "/", "wild-r1"},
		{"b.example.com", "/api", "api-r1"},
	} {
		if err := h.served(c.host, c.path, c.want)(); err != nil {
			t.Error(err)
		}
	}
	if after := h.workers(); !slices.Equal(before, after) {
		t.Errorf("workers %v → %v: an exact route added next to a wildcard reloaded HAProxy", before, after)
	}

	// A path route added to a host that had none, then removed again. The
	// first path route of an exact host brings the prefix lookups into the
	// configuration (a reload: an open connection gets one more answer from
	// the old worker), and the last one takes them out.
	deep := proxy.Route{Host: "a.example.com", PathPrefix: "/deep", AppID: "app_api"}
	cp.SetTable(table(3, proxy.Route{Host: "a.example.com", AppID: "app_exact"}, deep))
	cp.waitStatus(t, "version 3 applied", versionIs(3))
	for _, c := range []struct{ host, path, want string }{
		{"a.example.com", "/deep/x", "api-r1"},
		{"a.example.com", "/deeper", "exact-r1"},
		{"b.example.com", "/deep", "wild-r1"},
	} {
		testenv.Eventually(t, 10*time.Second, c.host+c.path, h.served(c.host, c.path, c.want))
	}
	cp.SetTable(table(4, proxy.Route{Host: "a.example.com", AppID: "app_exact"}))
	cp.waitStatus(t, "version 4 applied", versionIs(4))
	testenv.Eventually(t, 10*time.Second, "a.example.com/deep/x by the exact route", h.served("a.example.com", "/deep/x", "exact-r1"))
}
