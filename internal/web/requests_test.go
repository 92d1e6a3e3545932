package web

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/proxy"
)

// sampleRequests is a busy app in the middle of a switch: the new release
// answers most requests, the old one some 5xx, the proxy a few itself.
func sampleRequests(now time.Time) edge.AppRequests {
	w := edge.AppRequests{Window: 5 * time.Minute, Since: now.Add(-3 * time.Hour),
		Totals: edge.Totals{Requests: 3712, Codes: [5]int64{0, 3601, 12, 80, 19}, Rate: 12.37, ErrorRate: 0.0051, P50Ms: 14.2, P95Ms: 187}}
	for i := range 30 {
		r := 10 + 4*float64(i%7)/7 + float64(i)/10
		if i == 21 {
			r = 25
		}
		w.Rates = append(w.Rates, edge.RatePoint{At: now.Add(time.Duration(i-29) * 10 * time.Second), Rate: r})
	}
	w.Releases = []edge.ReleaseRequests{
		{Release: "berth-shop-web-7", Totals: edge.Totals{Requests: 3400, Codes: [5]int64{0, 3320, 10, 70, 0}, Rate: 11.3, P50Ms: 13.9, P95Ms: 160}},
		{Release: "berth-shop-web-6", Totals: edge.Totals{Requests: 300, Codes: [5]int64{0, 281, 2, 10, 7}, Rate: 1, ErrorRate: 0.023, P50Ms: 22, P95Ms: 480}},
		{Release: "", Totals: edge.Totals{Requests: 12, Codes: [5]int64{0, 0, 0, 0, 12}, Rate: 0.04, ErrorRate: 1, P50Ms: 0.5, P95Ms: 0.9}},
	}
	for i, r := range []struct {
		method, path string
		status       int
		ms           int64
		release      string
	}{
		{"GET", "/", 200, 12, "berth-shop-web-7"},
		{"POST", "/api/cart/items", 201, 48, "berth-shop-web-7"},
		{"GET", "/api/products", 200, 31, "berth-shop-web-7"},
		{"GET", "/static/app.3f9c2a1d.js", 304, 2, "berth-shop-web-7"},
		{"GET", "/api/checkout", 502, 1203, "berth-shop-web-6"},
		{"GET", "/favicon.ico", 404, 3, "berth-shop-web-7"},
		{"GET", "/api/orders/" + strings.Repeat("8f3c", 20) + "…", 200, 95, "berth-shop-web-7"},
		{"GET", "/healthz", 503, 0, ""},
	} {
		w.Recent = append(w.Recent, proxy.Request{Time: now.Add(-time.Duration(i*700) * time.Millisecond), App: "app_x", Release: r.release,
			Method: r.method, Host: "shop.example.com", Path: r.path, Status: r.status, DurationMs: r.ms})
	}
	return w
}

// stubRequests answers Deps.Requests and remembers what it was asked.
type stubRequests struct {
	mu     sync.Mutex
	appID  string
	window time.Duration
}

func (s *stubRequests) requests(appID string, window time.Duration) edge.AppRequests {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appID, s.window = appID, window
	return sampleRequests(time.Now())
}

func TestRequestsTab(t *testing.T) {
	stub := &stubRequests{}
	e := newTestEnv(t, func(d *Deps) { d.Requests = stub.requests })
	b := e.browser()
	shopWithWeb(e, b)
	a, err := e.apps.App(t.Context(), e.owner(), webRef)
	if err != nil {
		t.Fatal(err)
	}

	p := b.get("/projects/shop/apps/web/requests")
	if p.status != http.StatusOK {
		t.Fatalf("requests tab: %d\n%s", p.status, p.body)
	}
	if stub.appID != a.ID || stub.window != 5*time.Minute {
		t.Errorf("asked for %q over %s, want %q over 5m", stub.appID, stub.window, a.ID)
	}
	mustContain(t, "requests tab", p.body,
		`<a href="/projects/shop/apps/web/requests" aria-current="page">Requests</a>`,
		`hx-get="/projects/shop/apps/web/requests?window=5m" hx-trigger="every 5s"`,
		`<a href="/projects/shop/apps/web/requests?window=15m">15m</a>`,
		"12.4/s", "0.5%", "14 ms", "187 ms",
		`<polyline class="spark-line" points="0.0,`, `aria-label="Requests per second over the last 5 minutes, peaking at 25.0/s"`,
		"<code>berth-shop-web-7</code>", "answered by the proxy", `<td class="num requests-bad" data-label="Errors">2.3%</td>`,
		`<span class="badge badge-fail status-code">502</span>`, "/api/checkout", "1203 ms")
	mustNotContain(t, "requests tab", p.body, "counted since", "style=")

	// The 5 s refresh gets the section alone, for the window asked.
	p = b.get("/projects/shop/apps/web/requests?window=1h", "HX-Request: true")
	if p.status != http.StatusOK || !strings.HasPrefix(p.body, `<div id="requests"`) || strings.Contains(p.body, "<html") {
		t.Errorf("fragment: %d %.200s", p.status, p.body)
	}
	if stub.window != time.Hour {
		t.Errorf("window asked %s, want 1h", stub.window)
	}
	// An unknown window is the default one.
	b.get("/projects/shop/apps/web/requests?window=1y")
	if stub.window != 5*time.Minute {
		t.Errorf("window asked %s for 1y, want 5m", stub.window)
	}

	if p := b.get("/projects/shop/apps/nope/requests"); p.status != http.StatusNotFound {
		t.Errorf("unknown app: %d", p.status)
	}
	if p := e.browser().get("/projects/shop/apps/web/requests"); p.status != http.StatusSeeOther {
		t.Errorf("signed out: %d, want a redirect to sign in", p.status)
	}
}

func TestRequestsTabWithoutEdge(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	shopWithWeb(e, b)
	p := b.get("/projects/shop/apps/web/requests")
	if p.status != http.StatusOK {
		t.Fatalf("requests tab: %d", p.status)
	}
	mustContain(t, "without the edge", p.body, "No request figures", "without the edge proxy")
}

func TestRequestFigures(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{perSecond(0), "0/s"}, {perSecond(0.05), "3.0/min"}, {perSecond(2.345), "2.35/s"}, {perSecond(1234.4), "1234/s"},
		{percent(0), "0%"}, {percent(0.0004), "<0.1%"}, {percent(0.0123), "1.2%"}, {percent(1), "100%"},
		{millis(0, 0), "—"}, {millis(4.25, 1), "4.2 ms"}, {millis(187.4, 1), "187 ms"}, {millis(2500, 1), "2.50 s"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
