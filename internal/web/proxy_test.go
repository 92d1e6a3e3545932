package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/proxy"
)

// stubProxy answers Deps.ProxyStatus with whatever the test set last.
type stubProxy struct {
	mu    sync.Mutex
	st    edge.ProxyStatus
	err   error
	orgID string // the organization it was last asked about
}

func (s *stubProxy) set(st edge.ProxyStatus, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st, s.err = st, err
}

func (s *stubProxy) status(_ context.Context, orgID string) (edge.ProxyStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orgID = orgID
	return s.st, s.err
}

// sampleProxyStatus is a three-node edge: one replica current, one behind
// and silent, one task Swarm cannot place.
func sampleProxyStatus(now time.Time) edge.ProxyStatus {
	return edge.ProxyStatus{
		Enabled: true, Service: "berth-proxy", Image: "berth-proxy:0.4.0-3f9c2a1d", TableVersion: 14, HTTPPort: 80, HTTPSPort: 443, AccessLog: true,
		Replicas: []edge.ReplicaStatus{
			{
				ProxyReplica: orchestrator.ProxyReplica{TaskID: "t1", Node: "berth-1", Hostname: "a1b2c3d4e5f6", State: "running", Desired: "running", StartedAt: now.Add(-time.Hour)},
				Report: &edge.Replica{Status: proxy.Status{ID: "a1b2c3d4e5f6", Node: "berth-1", Version: 14, HAProxyVersion: "2.8.5",
					Releases: map[string]proxy.ReleaseStatus{"berth-web-7": {Sessions: 3, Up: 2, Servers: 2}}}, LastReport: now.Add(-2 * time.Second), Fresh: true},
			},
			{
				ProxyReplica: orchestrator.ProxyReplica{TaskID: "t2", Node: "worker-eu-2", Hostname: "0f9e8d7c6b5a", State: "running", Desired: "running"},
				Report: &edge.Replica{Status: proxy.Status{ID: "0f9e8d7c6b5a", Version: 12, HAProxyVersion: "2.8.5",
					Errors: []string{"route shop.example.com/api dropped: app web has no healthy servers"}}, LastReport: now.Add(-95 * time.Second)},
			},
			{
				ProxyReplica: orchestrator.ProxyReplica{TaskID: "t3", Node: "worker-eu-3", State: "pending", Desired: "running",
					Error: "no suitable node (host-mode port already in use on 1 node)"},
			},
		},
		Listeners: []orchestrator.ProxyReplica{{TaskID: "l1", Node: "berth-1", State: "running", Desired: "running"}},
		Certificates: []edge.CertificateRow{
			{Host: "shop.example.com", Source: "acme", Issuer: "Let's Encrypt R11", NotAfter: now.Add(61*24*time.Hour + time.Hour)},
			{Host: "api.example.com", Source: "acme", LastError: "certificate for api.example.com: DNS problem: NXDOMAIN looking up A for api.example.com"},
			{Host: "new.example.com", Source: "acme"},
		},
	}
}

func TestProxyPage(t *testing.T) {
	stub := &stubProxy{}
	stub.set(sampleProxyStatus(time.Now()), nil)
	e := newTestEnv(t, func(d *Deps) { d.ProxyStatus = stub.status })
	b := e.browser()
	b.setupOwner()

	mustContain(t, "nav", b.get("/").body, `<a href="/proxy">`)
	stub.set(sampleProxyStatus(time.Now()), nil) // "2s ago" from now
	p := b.get("/proxy")
	if p.status != http.StatusOK {
		t.Fatalf("GET /proxy: %d\n%s", p.status, p.body)
	}
	if stub.orgID == "" || stub.orgID != e.owner().Organization.ID {
		t.Errorf("ProxyStatus asked about organization %q", stub.orgID)
	}
	mustContain(t, "proxy page", p.body,
		`<a href="/proxy" aria-current="page">`, "Edge proxy",
		`hx-get="/proxy/status" hx-trigger="every 5s" hx-swap="outerHTML"`,
		"<code>berth-proxy</code>", "<code>berth-proxy:0.4.0-3f9c2a1d</code>", `<dd>80<span class="of"> · </span>443</dd>`, "v14",
		"1 of 3 replicas serve the current table", "Degraded", "<code>docker service logs berth-proxy</code>",
		// replicas
		"berth-1", "<code>a1b2c3d4e5f6</code>", "v14 ", "Current", "<code>2.8.5</code>", "2s ago",
		"worker-eu-2", "v12 ", "Behind", "route shop.example.com/api dropped: app web has no healthy servers.", "No report for 1m 35s: it stopped",
		"worker-eu-3", "Pending", "No report", "no suitable node (host-mode port already in use on 1 node).",
		// certificates
		"shop.example.com", "Let&#39;s Encrypt R11", "in 61 days", "Issued",
		"api.example.com", "Failed", "DNS problem: NXDOMAIN looking up A for api.example.com.",
		"new.example.com", "requesting…",
	)
	mustNotContain(t, "proxy page", p.body, "could not be deployed", "turned off")

	// The refresh is the status alone.
	f := b.get("/proxy/status", "HX-Request: true")
	if f.status != http.StatusOK || !strings.HasPrefix(f.body, `<div id="proxy-status"`) {
		t.Fatalf("fragment: %d\n%s", f.status, f.body)
	}
	mustNotContain(t, "fragment", f.body, "<html", "<h1>")
	if p := b.get("/proxy/status"); p.status != http.StatusSeeOther || p.location() != "/proxy" {
		t.Errorf("fragment without htmx: %d → %q", p.status, p.location())
	}

	// Every replica current and fresh: serving.
	st := sampleProxyStatus(time.Now())
	st.Replicas = st.Replicas[:1]
	stub.set(st, nil)
	mustContain(t, "healthy", b.get("/proxy/status", "HX-Request: true").body, "badge-ok\"><span class=\"badge-dot\" aria-hidden=\"true\"></span>Serving", "1 of 1 replica serves the current table",
		"<code>berth-proxy-listen</code>", "Holds the host ports on berth-1.")

	// The access log turned off says so, and how it was.
	st.AccessLog = false
	stub.set(st, nil)
	mustContain(t, "access log off", b.get("/proxy/status", "HX-Request: true").body, "<dd>Off <span", "<code>--proxy-access-log=false</code>", "still counted")

	// A holder that cannot bind the ports: degraded, and why.
	st.Listeners = []orchestrator.ProxyReplica{{TaskID: "l2", Node: "berth-1", State: "failed", Desired: "running", Error: "listening for http on :80: address already in use"}}
	stub.set(st, nil)
	mustContain(t, "holder failing", b.get("/proxy/status", "HX-Request: true").body, "Degraded", "Failing", "berth-1: listening for http on :80: address already in use.")

	// A service that could not be deployed says why, prominently.
	st.Error = "build proxy image: pull haproxy:lts: dial tcp: lookup registry-1.docker.io: no such host"
	st.Replicas, st.Certificates = []edge.ReplicaStatus{}, []edge.CertificateRow{}
	stub.set(st, nil)
	p = b.get("/proxy")
	mustContain(t, "deploy error", p.body, `class="callout callout-fail proxy-error" role="alert"`, "The proxy service could not be deployed",
		"lookup registry-1.docker.io: no such host", "Not deployed", "No replicas yet", "No certificates yet")
	if i, j := strings.Index(p.body, "could not be deployed"), strings.Index(p.body, "proxy-service-title"); i < 0 || i > j {
		t.Error("the deploy error is not above the service card")
	}
}

func TestProxyPageStatusErrors(t *testing.T) {
	stub := &stubProxy{}
	e := newTestEnv(t, func(d *Deps) { d.ProxyStatus = stub.status })
	b := e.browser()
	b.setupOwner()

	st := sampleProxyStatus(time.Now())
	st.Replicas = nil
	stub.set(st, fmt.Errorf("list proxy tasks: %w", orchestrator.ErrEngineUnreachable))
	p := b.get("/proxy")
	if p.status != http.StatusOK {
		t.Fatalf("engine down: %d", p.status)
	}
	mustContain(t, "engine down", p.body, "The container engine did not answer, so the proxy&#39;s replicas are not known.",
		"shop.example.com") // what was known still shows

	stub.set(st, errors.New("certificates: database is locked"))
	p = b.get("/proxy")
	mustContain(t, "internal error", p.body, "because of an internal error", "request id req-")
	mustNotContain(t, "internal error", p.body, "database is locked")
	mustContain(t, "log", e.logs.String(), "proxy status", "database is locked")
}

func TestProxyPageDisabled(t *testing.T) {
	stub := &stubProxy{}
	stub.set(edge.ProxyStatus{Replicas: []edge.ReplicaStatus{}, Certificates: []edge.CertificateRow{}}, nil)
	e := newTestEnv(t, func(d *Deps) { d.ProxyStatus = stub.status })
	b := e.browser()
	b.setupOwner()
	p := b.get("/proxy")
	if p.status != http.StatusOK {
		t.Fatalf("GET /proxy: %d", p.status)
	}
	mustContain(t, "disabled", p.body, "The edge proxy is turned off", "<code>berth server --proxy=false</code>", "<code>BERTH_PROXY=false</code>",
		"domains are not routed")
	mustNotContain(t, "disabled", p.body, "hx-trigger", "Replicas", "could not be deployed")
}

func TestProxyPageHiddenWithoutStatus(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	mustNotContain(t, "nav", b.get("/").body, `href="/proxy"`)
	if p := b.get("/proxy"); p.status != http.StatusNotFound {
		t.Errorf("GET /proxy without ProxyStatus: %d, want 404", p.status)
	}
	// Signed out, the page asks for a sign-in like every other.
	stub := &stubProxy{}
	e = newTestEnv(t, func(d *Deps) { d.ProxyStatus = stub.status })
	e.browser().setupOwner()
	if p := e.browser().get("/proxy"); p.status != http.StatusSeeOther || p.location() != "/login?next=%2Fproxy" {
		t.Errorf("signed out: %d → %q", p.status, p.location())
	}
}

func TestProxyNoInlineScriptOrStyle(t *testing.T) {
	stub := &stubProxy{}
	stub.set(sampleProxyStatus(time.Now()), nil)
	e := newTestEnv(t, func(d *Deps) { d.ProxyStatus = stub.status })
	b := e.browser()
	b.setupOwner()
	pages := map[string]string{"proxy": b.get("/proxy").body, "proxy fragment": b.get("/proxy/status", "HX-Request: true").body}
	stub.set(edge.ProxyStatus{}, nil)
	pages["proxy off"] = b.get("/proxy").body
	assertNoInline(t, pages)
}
