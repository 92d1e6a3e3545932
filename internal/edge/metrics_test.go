package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

var t0 = time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)

// traffic is a report entry: n2 2xx and n5 5xx responses, all taking ms.
func traffic(target, release string, n2, n5 int64, ms int64) proxy.ReleaseTraffic {
	t := proxy.ReleaseTraffic{App: target, Release: release, Codes: [5]int64{0, n2, 0, 0, n5}, DurationMs: (n2 + n5) * ms}
	for i, le := range proxy.LatencyBucketsMs {
		if ms <= le {
			t.Latency[i] = n2 + n5
			return t
		}
	}
	t.Latency[len(t.Latency)-1] = n2 + n5
	return t
}

func statusOf(id string, started time.Time, entries ...proxy.ReleaseTraffic) proxy.Status {
	return proxy.Status{ID: id, StartedAt: started, Traffic: entries}
}

func TestTrafficSumsStayMonotonicAcrossProxyRestarts(t *testing.T) {
	ts := newTrafficStats(t0)
	// A proxy that ran before the control plane: its counts so far are a
	// baseline, not new requests.
	ts.observe(statusOf("p1", t0.Add(-time.Hour), traffic("app_web", "r1", 1000, 0, 3)), t0.Add(time.Second))
	if got := ts.series[releaseKey{"app_web", "r1"}]; got != nil {
		t.Fatalf("counts from before the control plane were added: %+v", got.cur)
	}
	ts.observe(statusOf("p1", t0.Add(-time.Hour), traffic("app_web", "r1", 1010, 2, 3)), t0.Add(2*time.Second))
	// A second proxy started after the control plane: everything is new.
	ts.observe(statusOf("p2", t0.Add(time.Second), traffic("app_web", "r1", 5, 0, 3), traffic("app_web-9090", "r1", 1, 0, 3)), t0.Add(2*time.Second))
	want := func(n2, n5 int64, at time.Duration) {
		t.Helper()
		c := ts.series[releaseKey{"app_web", "r1"}].cur
		if c.codes[1] != n2 || c.codes[4] != n5 {
			t.Errorf("at +%s: 2xx %d 5xx %d, want %d %d", at, c.codes[1], c.codes[4], n2, n5)
		}
	}
	want(10+5+1, 2, 2*time.Second) // both ports of the app are one app
	// p1 restarts: counts from zero again, with a new StartedAt.
	ts.observe(statusOf("p1", t0.Add(3*time.Second), traffic("app_web", "r1", 4, 0, 3)), t0.Add(4*time.Second))
	want(16+4, 2, 4*time.Second)
	// p2's counts go down without a new StartedAt (a lost state): taken whole.
	ts.observe(statusOf("p2", t0.Add(time.Second), traffic("app_web", "r1", 2, 0, 3)), t0.Add(5*time.Second))
	want(20+2, 2, 5*time.Second)
	// The same report twice adds nothing.
	ts.observe(statusOf("p2", t0.Add(time.Second), traffic("app_web", "r1", 2, 0, 3)), t0.Add(6*time.Second))
	want(22, 2, 6*time.Second)
}

func TestTrafficWindow(t *testing.T) {
	ts := newTrafficStats(t0)
	start := t0.Add(time.Second)
	// p1 answers 10 requests per second for 10 minutes: 9 of 10 2xx in
	// 20 ms from r1, 1 of 10 5xx in 300 ms from r2 (before the last
	// 5 minutes r2 answered only 2xx).
	var n1, n2, e2 int64
	for s := 1; s <= 600; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		n1 += 9
		if s > 300 {
			e2++
		} else {
			n2++
		}
		r2 := traffic("app_web", "r2", n2, 0, 300)
		bad := traffic("app_web", "r2", 0, e2, 300)
		r2.Codes[4] = bad.Codes[4]
		for i := range r2.Latency {
			r2.Latency[i] += bad.Latency[i]
		}
		ts.observe(statusOf("p1", start, traffic("app_web", "r1", n1, 0, 20), r2, traffic("app_other", "o1", int64(s), 0, 1)), now)
		ts.prune(now, func(string) bool { return true })
	}
	now := t0.Add(600 * time.Second)
	// The sums have a point per 10 s: a window's start is that exact.
	near := func(got, want int64) bool { return math.Abs(float64(got-want)) <= float64(want)/100 }
	w := ts.window("app_web", 5*time.Minute, now)
	if !near(w.Requests, 3000) || math.Abs(w.Rate-10) > 0.1 || math.Abs(w.ErrorRate-0.1) > 0.005 {
		t.Errorf("5m window: %d requests, rate %.2f, error rate %.3f; want 3000, 10, 0.1", w.Requests, w.Rate, w.ErrorRate)
	}
	// 90% in (10,25] ms, 10% in (250,500]: p50 inside the first, p95 the second.
	if w.P50Ms <= 10 || w.P50Ms > 25 || w.P95Ms <= 250 || w.P95Ms > 500 {
		t.Errorf("p50 %.1f ms, p95 %.1f ms", w.P50Ms, w.P95Ms)
	}
	if len(w.Releases) != 2 || w.Releases[0].Release != "r1" || w.Releases[0].ErrorRate != 0 ||
		w.Releases[1].Release != "r2" || w.Releases[1].ErrorRate < 0.99 || !near(w.Releases[1].Requests, 300) {
		t.Errorf("releases %+v", w.Releases)
	}
	if len(w.Rates) != ratePoints || !w.Rates[len(w.Rates)-1].At.Equal(now) {
		t.Fatalf("rates %+v", w.Rates)
	}
	for _, p := range w.Rates[1:] { // the first step may straddle a 10 s point
		if math.Abs(p.Rate-10) > 1.5 {
			t.Errorf("rate at %s: %.2f, want about 10", p.At.Sub(t0), p.Rate)
		}
	}
	// A window longer than the control plane has counted divides by the
	// time counted.
	w = ts.window("app_web", time.Hour, now)
	if w.Requests != 6000 || math.Abs(w.Rate-10) > 0.1 || math.Abs(w.ErrorRate-0.05) > 0.001 {
		t.Errorf("1h window: %d requests, rate %.2f, error rate %.3f", w.Requests, w.Rate, w.ErrorRate)
	}
	// No traffic: zeroes, not NaN.
	w = ts.window("app_idle", 5*time.Minute, now)
	if w.Requests != 0 || w.Rate != 0 || w.ErrorRate != 0 || w.P95Ms != 0 || len(w.Releases) != 0 {
		t.Errorf("idle app: %+v", w)
	}
	// After an idle while the window shows nothing; the last hour has the
	// last 5 minutes of traffic.
	later := now.Add(55 * time.Minute)
	ts.observe(statusOf("p1", start), later)
	ts.prune(later, func(string) bool { return true })
	if w := ts.window("app_web", 5*time.Minute, later); w.Requests != 0 {
		t.Errorf("idle for 50 minutes, window counts %d", w.Requests)
	}
	if w := ts.window("app_web", time.Hour, later); !near(w.Requests, 3000) {
		t.Errorf("last hour counts %d, want the last 5 minutes' 3000", w.Requests)
	}
	// A release gone from the table and idle for over an hour is forgotten.
	ts.prune(later.Add(time.Hour), func(r string) bool { return r == "r1" })
	if ts.series[releaseKey{"app_web", "r2"}] != nil || ts.series[releaseKey{"app_web", "r1"}] == nil {
		t.Errorf("pruned: %v", ts.series)
	}
}

func TestRecentRequestsMergedAcrossProxies(t *testing.T) {
	ts := newTrafficStats(t0)
	req := func(target, path string, sec int) proxy.Request {
		return proxy.Request{Time: t0.Add(time.Duration(sec) * time.Second), App: target, Path: path, Status: 200}
	}
	ts.observe(proxy.Status{ID: "p1", Recent: []proxy.Request{req("app_web", "/c", 5), req("app_web", "/a", 1)}}, t0)
	ts.observe(proxy.Status{ID: "p2", Recent: []proxy.Request{req("app_web-9090", "/b", 3), req("app_api", "/x", 2)}}, t0)
	var paths []string
	for _, r := range ts.window("app_web", time.Minute, t0.Add(10*time.Second)).Recent {
		paths = append(paths, r.Path)
	}
	if strings.Join(paths, " ") != "/c /b /a" {
		t.Errorf("recent of app_web: %v, want newest first across proxies and ports", paths)
	}
	for i := range 2 * proxy.RecentPerApp {
		ts.observe(proxy.Status{ID: "p1", Recent: []proxy.Request{req("app_web", "/n", 10+i)}}, t0)
	}
	if r := ts.window("app_web", time.Minute, t0).Recent; len(r) != proxy.RecentPerApp || r[0].Time.Sub(t0) != time.Duration(9+2*proxy.RecentPerApp)*time.Second {
		t.Errorf("%d recent kept, newest %v", len(r), r[0].Time)
	}
}

func TestQuantile(t *testing.T) {
	var c counts
	c.latency[0] = 50 // ≤ 5 ms
	c.latency[2] = 50 // 10–25 ms
	for _, tt := range []struct{ q, want float64 }{{.25, 2.5}, {.5, 5}, {.75, 17.5}, {1, 25}} {
		if got := c.quantile(tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", tt.q, got, tt.want)
		}
	}
	c = counts{}
	c.latency[len(c.latency)-1] = 1
	if got := c.quantile(.5); got != 10000 {
		t.Errorf("slower than every bound: %v, want the last bound", got)
	}
}

func TestAppOfTarget(t *testing.T) {
	for in, want := range map[string]string{"app_x": "app_x", "app_x-9090": "app_x", "app_x-y": "app_x-y"} {
		if got := AppOfTarget(in); got != want {
			t.Errorf("AppOfTarget(%q) = %q, want %q", in, got, want)
		}
	}
	a := store.App{ID: store.NewID("app"), Spec: app.Spec{Port: 8080}}
	for _, port := range []int{8080, 9090} {
		if got := AppOfTarget(TargetID(a, port)); got != a.ID {
			t.Errorf("AppOfTarget(TargetID(%s, %d)) = %q", a.ID, port, got)
		}
	}
}

// Reports posted to the internal listener show on the collector: summed
// over the proxies, proxies up or not.
func TestRouterCollector(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(ctx, db, keys, slog.New(slog.DiscardHandler), Options{StaleAfter: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	post := func(st proxy.Status) {
		t.Helper()
		b, _ := json.Marshal(st)
		req, _ := http.NewRequest("POST", srv.URL+proxy.StatusPath, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+string(r.Token()))
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusNoContent {
			t.Fatalf("POST status: %v %v", res, err)
		}
		res.Body.Close()
	}
	started := time.Now()
	post(proxy.Status{ID: "p1", Version: 7, StartedAt: started, Traffic: []proxy.ReleaseTraffic{traffic("app_web", "r1", 3, 1, 40)},
		Recent: []proxy.Request{{Time: started, App: "app_web", Path: "/", Status: 200}}})
	post(proxy.Status{ID: "p2", Version: 7, StartedAt: started, Traffic: []proxy.ReleaseTraffic{traffic("app_web", "r1", 2, 0, 40)}})

	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	gather := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				if h := m.Histogram; h != nil {
					out[mf.GetName()+"_count"+labels(m)] = float64(h.GetSampleCount())
					out[mf.GetName()+"_sum"+labels(m)] = h.GetSampleSum()
					for _, b := range h.Bucket {
						le := fmt.Sprint(b.GetUpperBound())
						m := &dto.Metric{Label: append(slices.Clone(m.Label), &dto.LabelPair{Name: ptr("le"), Value: &le})}
						out[mf.GetName()+"_bucket"+labels(m)] = float64(b.GetCumulativeCount())
					}
					continue
				}
				out[mf.GetName()+labels(m)] = value(m)
			}
		}
		return out
	}
	got := gather()
	for k, want := range map[string]float64{
		`berth_edge_requests_total{app="app_web",code="2xx",release="r1"}`:                  5,
		`berth_edge_requests_total{app="app_web",code="5xx",release="r1"}`:                  1,
		`berth_edge_request_duration_seconds_count{app="app_web",release="r1"}`:             6,
		`berth_edge_request_duration_seconds_sum{app="app_web",release="r1"}`:               0.24,
		`berth_edge_request_duration_seconds_bucket{app="app_web",le="0.05",release="r1"}`:  6,
		`berth_edge_request_duration_seconds_bucket{app="app_web",le="0.025",release="r1"}`: 0,
		`berth_edge_proxy_up{proxy="p1"}`:                                                   1,
		`berth_edge_proxy_table_version{proxy="p2"}`:                                        7,
	} {
		if v, ok := got[k]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v (found %v), want %v", k, v, ok, want)
		}
	}
	if w := r.AppRequests("app_web", 5*time.Minute); w.Requests != 6 || len(w.Recent) != 1 {
		t.Errorf("AppRequests: %+v", w)
	}
	for _, rep := range r.Replicas() {
		if rep.Traffic != nil || rep.Recent != nil {
			t.Errorf("replica %s keeps its traffic report", rep.ID)
		}
	}
	// p2 goes silent: down, and what it counted stays counted.
	time.Sleep(400 * time.Millisecond)
	post(proxy.Status{ID: "p1", Version: 8, StartedAt: started, Traffic: []proxy.ReleaseTraffic{traffic("app_web", "r1", 4, 1, 40)}})
	got = gather()
	if got[`berth_edge_proxy_up{proxy="p2"}`] != 0 || got[`berth_edge_proxy_up{proxy="p1"}`] != 1 ||
		got[`berth_edge_requests_total{app="app_web",code="2xx",release="r1"}`] != 6 {
		t.Errorf("after p2 went silent: %v", got)
	}
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.Label {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func ptr[T any](v T) *T { return &v }

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return math.NaN()
}
