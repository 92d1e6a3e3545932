package edge

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthpaas/berth/internal/proxy"
)

// The proxies count requests per app and release since they started
// (proxy.Status.Traffic). The router adds up what each report adds to the
// one before from the same proxy, so its sums only grow: a proxy that
// restarts (a new StartedAt, or counts that went down) adds its new counts
// whole. A proxy first heard of after the control plane started adds
// nothing for what it counted before (it started before the control plane),
// so a restarted control plane counts from zero rather than jumping by
// whatever the proxies counted all along. Prometheus sees a counter reset
// when the control plane restarts, as for any counter.
//
// For the windows of the Requests view each sum keeps one point per
// seriesStep for the last seriesHorizon, in memory.
const (
	seriesStep    = 10 * time.Second
	seriesHorizon = time.Hour
	// MaxWindow is the longest window AppRequests looks back over.
	MaxWindow = seriesHorizon
	// ratePoints is how many steps AppRequests.Rates has.
	ratePoints = 30
	// forgetProxy is how long a silent proxy's last counts are kept.
	forgetProxy = 24 * time.Hour
)

// counts is what is counted for a release: responses by status class, by
// latency bucket, and the total time.
type counts struct {
	codes      [5]int64
	latency    [len(proxy.LatencyBucketsMs) + 1]int64
	durationMs int64
}

func countsOf(t proxy.ReleaseTraffic) counts {
	return counts{codes: t.Codes, latency: t.Latency, durationMs: t.DurationMs}
}

func (c counts) total() (n int64) {
	for _, x := range c.codes {
		n += x
	}
	return n
}

func (c *counts) add(o counts, sign int64) {
	for i := range c.codes {
		c.codes[i] += sign * o.codes[i]
	}
	for i := range c.latency {
		c.latency[i] += sign * o.latency[i]
	}
	c.durationMs += sign * o.durationMs
}

// minus is c - o; ok is false when a count went down (c is not o plus more).
func (c counts) minus(o counts) (d counts, ok bool) {
	d = c
	d.add(o, -1)
	for _, x := range d.codes {
		if x < 0 {
			return d, false
		}
	}
	for _, x := range d.latency {
		if x < 0 {
			return d, false
		}
	}
	return d, d.durationMs >= 0
}

// quantile estimates the q-quantile of the latency in milliseconds, by
// linear interpolation inside the bucket it falls in (as PromQL's
// histogram_quantile); 0 without requests.
func (c counts) quantile(q float64) float64 {
	var n int64
	for _, x := range c.latency {
		n += x
	}
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var below int64
	for i, x := range c.latency {
		if x == 0 || float64(below+x) < rank {
			below += x
			continue
		}
		if i == len(proxy.LatencyBucketsMs) { // slower than every bound
			return float64(proxy.LatencyBucketsMs[i-1])
		}
		lo := 0.0
		if i > 0 {
			lo = float64(proxy.LatencyBucketsMs[i-1])
		}
		hi := float64(proxy.LatencyBucketsMs[i])
		return lo + (hi-lo)*(rank-float64(below))/float64(x)
	}
	return float64(proxy.LatencyBucketsMs[len(proxy.LatencyBucketsMs)-1])
}

// AppOfTarget is the app id of a routing target (the inverse of TargetID):
// "app_x-9090" → "app_x". App ids have no '-'.
func AppOfTarget(target string) string {
	i := strings.LastIndexByte(target, '-')
	if i < 0 {
		return target
	}
	if _, err := strconv.Atoi(target[i+1:]); err != nil {
		return target
	}
	return target[:i]
}

type releaseKey struct{ app, release string }

// series is one app release's sums across the proxies.
type series struct {
	cur     counts
	points  []point // cumulative, oldest first, at most one per seriesStep
	updated time.Time
}

type point struct {
	at time.Time
	c  counts
}

// at is the sum at time t: the last point at or before t (zero before the
// first: every sum starts at zero).
func (s *series) at(t time.Time) counts {
	i, _ := slices.BinarySearchFunc(s.points, t, func(p point, t time.Time) int {
		if p.at.After(t) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return counts{}
	}
	return s.points[i-1].c
}

func (s *series) add(d counts, now time.Time) {
	s.cur.add(d, 1)
	s.updated = now
	if n := len(s.points); n > 0 && s.points[n-1].at.Truncate(seriesStep).Equal(now.Truncate(seriesStep)) {
		s.points[n-1] = point{now, s.cur}
		return
	}
	s.points = append(s.points, point{now, s.cur})
}

// rawKey is one entry of a proxy's report.
type rawKey struct{ target, release string }

// proxyCounts is the last report's counts of one proxy.
type proxyCounts struct {
	startedAt time.Time
	seen      time.Time
	counts    map[rawKey]counts
}

// trafficStats adds up the proxies' traffic reports. The router's mutex
// guards it; time is passed in.
type trafficStats struct {
	started time.Time
	proxies map[string]proxyCounts
	series  map[releaseKey]*series
	recent  map[string][]proxy.Request // app id → newest first
}

func newTrafficStats(now time.Time) *trafficStats {
	return &trafficStats{started: now, proxies: map[string]proxyCounts{},
		series: map[releaseKey]*series{}, recent: map[string][]proxy.Request{}}
}

// observe adds what a report adds to the proxy's report before it.
func (ts *trafficStats) observe(st proxy.Status, now time.Time) {
	prev, seen := ts.proxies[st.ID]
	restarted := !seen || !prev.startedAt.Equal(st.StartedAt)
	// What a proxy counted before the control plane started was counted
	// (or lost) by the control plane before this one.
	baseline := !seen && st.StartedAt.Before(ts.started)
	next := proxyCounts{startedAt: st.StartedAt, seen: now, counts: make(map[rawKey]counts, len(st.Traffic))}
	for _, t := range st.Traffic {
		k := rawKey{t.App, t.Release}
		c := countsOf(t)
		next.counts[k] = c
		if baseline {
			continue
		}
		d := c
		if !restarted {
			if diff, ok := c.minus(prev.counts[k]); ok {
				d = diff
			}
		}
		if d.total() == 0 && d.durationMs == 0 {
			continue
		}
		rk := releaseKey{AppOfTarget(t.App), t.Release}
		s := ts.series[rk]
		if s == nil {
			s = &series{}
			ts.series[rk] = s
		}
		s.add(d, now)
	}
	ts.proxies[st.ID] = next
	for _, r := range st.Recent {
		if len(r.Path) > proxy.MaxRecentPath+len("…") { // bounded by the proxy; a report is not trusted
			r.Path = r.Path[:proxy.MaxRecentPath]
		}
		app := AppOfTarget(r.App)
		list := append(ts.recent[app], r)
		slices.SortStableFunc(list, func(a, b proxy.Request) int { return b.Time.Compare(a.Time) })
		ts.recent[app] = list[:min(len(list), proxy.RecentPerApp)]
	}
}

// prune forgets points older than the horizon (but the one a window
// starting then needs), sums that did not change for longer unless live
// says their release still serves, and long silent proxies.
func (ts *trafficStats) prune(now time.Time, live func(release string) bool) {
	horizon := now.Add(-seriesHorizon - seriesStep)
	for k, s := range ts.series {
		if s.updated.Before(horizon) && !live(k.release) {
			delete(ts.series, k)
			continue
		}
		i := 0
		for i+1 < len(s.points) && !s.points[i+1].at.After(horizon) {
			i++
		}
		s.points = s.points[i:]
	}
	for app, list := range ts.recent {
		if len(list) == 0 || list[0].Time.Before(horizon) {
			delete(ts.recent, app)
		}
	}
	for id, p := range ts.proxies {
		if now.Sub(p.seen) > forgetProxy {
			delete(ts.proxies, id)
		}
	}
}

// AppRequests is an app's traffic over a window, summed over the proxies.
type AppRequests struct {
	Window time.Duration
	// Since is when the control plane started counting; a window reaching
	// further back counts from then (and Rate divides by the shorter time).
	Since time.Time
	Totals
	// Releases break the totals down by release service, busiest first;
	// "" is requests the proxy answered itself (no server up, timeouts).
	Releases []ReleaseRequests
	// Rates is the request rate in ratePoints equal steps over the window,
	// oldest first.
	Rates []RatePoint
	// Recent are the app's latest requests across the proxies, newest first.
	Recent []proxy.Request
}

// Totals are the figures of a window.
type Totals struct {
	// Requests answered in the window, by status class (Codes[0] 1xx …).
	Requests int64
	Codes    [5]int64
	// Rate is requests per second; ErrorRate the share of 5xx (0–1).
	Rate, ErrorRate float64
	// P50Ms and P95Ms are latency percentiles estimated from the histogram
	// buckets, in milliseconds; 0 without requests.
	P50Ms, P95Ms float64
}

// ReleaseRequests are one release's figures of a window.
type ReleaseRequests struct {
	Release string
	Totals
}

// RatePoint is the request rate in the step ending At.
type RatePoint struct {
	At   time.Time
	Rate float64
}

func totalsOf(c counts, seconds float64) Totals {
	t := Totals{Requests: c.total(), Codes: c.codes, P50Ms: c.quantile(.5), P95Ms: c.quantile(.95)}
	if t.Requests > 0 {
		t.Rate = float64(t.Requests) / seconds
		t.ErrorRate = float64(c.codes[4]) / float64(t.Requests)
	}
	return t
}

// window computes an app's figures over the window ending now.
func (ts *trafficStats) window(appID string, window time.Duration, now time.Time) AppRequests {
	window = min(max(window, seriesStep), MaxWindow)
	start := now.Add(-window)
	from := start
	if ts.started.After(from) {
		from = ts.started
	}
	seconds := math.Max(now.Sub(from).Seconds(), 1)
	out := AppRequests{Window: window, Since: ts.started, Recent: slices.Clone(ts.recent[appID]),
		Releases: []ReleaseRequests{}, Rates: make([]RatePoint, ratePoints)}
	var sum counts
	var mine []*series
	for k, s := range ts.series {
		if k.app != appID {
			continue
		}
		mine = append(mine, s)
		d, _ := s.cur.minus(s.at(start))
		if d.total() == 0 {
			continue
		}
		sum.add(d, 1)
		out.Releases = append(out.Releases, ReleaseRequests{Release: k.release, Totals: totalsOf(d, seconds)})
	}
	out.Totals = totalsOf(sum, seconds)
	slices.SortFunc(out.Releases, func(a, b ReleaseRequests) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), strings.Compare(a.Release, b.Release))
	})
	step := window / ratePoints
	for i := range out.Rates {
		from, to := start.Add(time.Duration(i)*step), start.Add(time.Duration(i+1)*step)
		var n int64
		for _, s := range mine {
			d, _ := s.at(to).minus(s.at(from))
			n += d.total()
		}
		out.Rates[i] = RatePoint{At: to, Rate: float64(n) / step.Seconds()}
	}
	if out.Recent == nil {
		out.Recent = []proxy.Request{}
	}
	return out
}

// AppRequests returns an app's traffic over the window ending now
// (clamped to 10 s – MaxWindow).
func (r *Router) AppRequests(appID string, window time.Duration) AppRequests {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.traffic.window(appID, window, time.Now())
}

// observeTraffic is called with r.mu held, for every report.
func (r *Router) observeTraffic(st proxy.Status, now time.Time) {
	r.traffic.observe(st, now)
	if now.Sub(r.pruned) < seriesStep {
		return
	}
	r.pruned = now
	live := map[string]bool{}
	for _, a := range r.table.Apps {
		for _, rel := range a.Releases {
			live[rel.Service] = true
		}
	}
	r.traffic.prune(now, func(release string) bool { return live[release] })
}

// Collector exposes the edge on the control plane's /metrics:
// berth_edge_requests_total{app,release,code} and
// berth_edge_request_duration_seconds{app,release} summed over the proxies
// (app is the app id, release the release service; join
// berth_edge_app_info{app,app_name} for names), and per proxy
// berth_edge_proxy_up and berth_edge_proxy_table_version.
func (r *Router) Collector() prometheus.Collector { return collector{r} }

var (
	descRequests = prometheus.NewDesc("berth_edge_requests_total",
		"Requests the edge proxies answered for an app, by release service and status class (1xx–5xx), summed over the proxies.",
		[]string{"app", "release", "code"}, nil)
	descDuration = prometheus.NewDesc("berth_edge_request_duration_seconds",
		"Total time of the requests the edge proxies answered for an app, by release service.",
		[]string{"app", "release"}, nil)
	descAppInfo = prometheus.NewDesc("berth_edge_app_info",
		"The name of each app the routing table routes to (always 1).",
		[]string{"app", "app_name"}, nil)
	descProxyUp = prometheus.NewDesc("berth_edge_proxy_up",
		"1 when the proxy reported in the last seconds, 0 when it went silent (forgotten after an hour).",
		[]string{"proxy"}, nil)
	descProxyVersion = prometheus.NewDesc("berth_edge_proxy_table_version",
		"The routing table version the proxy serves.",
		[]string{"proxy"}, nil)
	codeLabels = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
)

type collector struct{ r *Router }

var _ prometheus.Collector = collector{}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descAppInfo, descProxyUp, descProxyVersion} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.Lock()
	type row struct {
		k releaseKey
		c counts
	}
	rows := make([]row, 0, len(r.traffic.series))
	for k, s := range r.traffic.series {
		rows = append(rows, row{k, s.cur})
	}
	names := map[string]string{}
	for _, a := range r.table.Apps {
		names[AppOfTarget(a.ID)] = a.Name
	}
	r.mu.Unlock()

	for _, row := range rows {
		for i, n := range row.c.codes {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), row.k.app, row.k.release, codeLabels[i])
		}
		buckets := make(map[float64]uint64, len(proxy.LatencyBucketsMs))
		var cum uint64
		for i, le := range proxy.LatencyBucketsMs {
			cum += uint64(row.c.latency[i])
			buckets[float64(le)/1000] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, uint64(row.c.total()), float64(row.c.durationMs)/1000, buckets, row.k.app, row.k.release)
	}
	for id, name := range names {
		ch <- prometheus.MustNewConstMetric(descAppInfo, prometheus.GaugeValue, 1, id, name)
	}
	for _, rep := range r.Replicas() {
		up := 0.0
		if rep.Fresh {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descProxyUp, prometheus.GaugeValue, up, rep.ID)
		ch <- prometheus.MustNewConstMetric(descProxyVersion, prometheus.GaugeValue, float64(rep.Version), rep.ID)
	}
}
