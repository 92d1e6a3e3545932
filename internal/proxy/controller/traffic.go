package controller

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/berthpaas/berth/internal/proxy"
)

// accessRecord is the part of an access log line (proxy's accessLog format)
// the traffic counters read.
type accessRecord struct {
	Time       time.Time `json:"time"`
	Host       string    `json:"host"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	DurationMs int64     `json:"duration_ms"`
	Backend    string    `json:"backend"`
	Server     string    `json:"server"`
}

// trafficKey is one counted (routing target, release) pair.
type trafficKey struct{ app, release string }

// traffic counts the requests of the access log per app and release, and
// keeps each app's latest requests until a status report carried them. The
// access log handler feeds it; the status loop reads it.
type traffic struct {
	mu    sync.Mutex
	apps  map[string]string  // backend → routing target
	slots map[slotKey]string // backend + server prefix → release service
	// lastApps and lastSlots map the table set last alone; apps and slots
	// also map the one before.
	lastApps  map[string]string
	lastSlots map[slotKey]string
	counts    map[trafficKey]*proxy.ReleaseTraffic
	recent    map[string][]recorded // routing target → latest requests, oldest first
	seq       uint64
}

type slotKey struct{ backend, prefix string }

type recorded struct {
	seq uint64
	req proxy.Request
}

func newTraffic() *traffic {
	return &traffic{apps: map[string]string{}, slots: map[slotKey]string{},
		counts: map[trafficKey]*proxy.ReleaseTraffic{}, recent: map[string][]recorded{}}
}

// setTable maps backends and servers to the apps and releases of t, and
// forgets what was counted for apps and releases gone from t and from the
// table set before it (HAProxy may still log a request routed by that one).
func (tr *traffic) setTable(t proxy.Table) {
	apps := make(map[string]string, len(t.Apps))
	slots := make(map[slotKey]string)
	for _, a := range t.Apps {
		be := proxy.BackendName(a.ID)
		apps[be] = a.ID
		for _, r := range a.Releases {
			slots[slotKey{be, proxy.ServerPrefix(r.Service)}] = r.Service
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.apps, tr.slots = maps.Clone(apps), maps.Clone(slots)
	maps.Copy(tr.apps, tr.lastApps)
	maps.Copy(tr.slots, tr.lastSlots)
	tr.lastApps, tr.lastSlots = apps, slots
	keep := make(map[trafficKey]bool)
	for k, svc := range tr.slots {
		keep[trafficKey{tr.apps[k.backend], svc}] = true
	}
	for k := range tr.counts {
		if !keep[k] && (k.release != "" || tr.apps[proxy.BackendName(k.app)] == "") {
			delete(tr.counts, k)
		}
	}
	for app := range tr.recent {
		if tr.apps[proxy.BackendName(app)] == "" {
			delete(tr.recent, app)
		}
	}
}

// record counts one access log line. Requests no app's backend answered
// (unrouted hosts, ACME challenges) belong to no app and are not counted.
func (tr *traffic) record(r accessRecord) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	app, ok := tr.apps[r.Backend]
	if !ok {
		return
	}
	release := ""
	// A slot is <prefix><n>; the prefix ends at the last '-'.
	if i := strings.LastIndexByte(r.Server, '-'); i >= 0 {
		release = tr.slots[slotKey{r.Backend, r.Server[:i+1]}]
	}
	d := max(r.DurationMs, 0)
	if class := r.Status / 100; r.Status >= 100 && class <= 5 {
		k := trafficKey{app, release}
		c := tr.counts[k]
		if c == nil {
			c = &proxy.ReleaseTraffic{App: app, Release: release}
			tr.counts[k] = c
		}
		c.Codes[class-1]++
		i, _ := slices.BinarySearch(proxy.LatencyBucketsMs[:], d)
		c.Latency[i]++
		c.DurationMs += d
	}
	tr.seq++
	ring := append(tr.recent[app], recorded{seq: tr.seq, req: proxy.Request{
		Time: r.Time, App: app, Release: release, Method: r.Method, Host: r.Host,
		Path: truncate(r.Path, proxy.MaxRecentPath), Status: r.Status, DurationMs: d,
	}})
	if len(ring) > proxy.RecentPerApp {
		ring = slices.Delete(ring, 0, len(ring)-proxy.RecentPerApp)
	}
	tr.recent[app] = ring
}

// snapshot returns the counts and the recent requests not reported yet
// (newest first, at most proxy.RecentPerApp per app and proxy.MaxRecent in
// all: when there are more, each app gets its newest in turn), and the mark
// to pass to reported once the control plane accepted them.
func (tr *traffic) snapshot() ([]proxy.ReleaseTraffic, []proxy.Request, map[string]uint64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	counts := make([]proxy.ReleaseTraffic, 0, len(tr.counts))
	for _, c := range tr.counts {
		counts = append(counts, *c)
	}
	slices.SortFunc(counts, func(a, b proxy.ReleaseTraffic) int {
		return cmp.Or(strings.Compare(a.App, b.App), strings.Compare(a.Release, b.Release))
	})
	apps := make([]string, 0, len(tr.recent))
	for app, ring := range tr.recent {
		if len(ring) > 0 {
			apps = append(apps, app)
		}
	}
	slices.Sort(apps)
	var picked []recorded
	marks := make(map[string]uint64)
	for i := 0; i < proxy.RecentPerApp && len(picked) < proxy.MaxRecent; i++ {
		took := false
		for _, app := range apps {
			ring := tr.recent[app]
			if i >= len(ring) || len(picked) == proxy.MaxRecent {
				continue
			}
			r := ring[len(ring)-1-i]
			picked = append(picked, r)
			marks[app] = max(marks[app], r.seq)
			took = true
		}
		if !took {
			break
		}
	}
	slices.SortFunc(picked, func(a, b recorded) int { return cmp.Compare(b.seq, a.seq) })
	recent := make([]proxy.Request, len(picked))
	for i, r := range picked {
		recent[i] = r.req
	}
	return counts, recent, marks
}

// reported drops the recent requests a report carried (and the older ones
// of the same apps it had no room for).
func (tr *traffic) reported(marks map[string]uint64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for app, seq := range marks {
		tr.recent[app] = slices.DeleteFunc(tr.recent[app], func(r recorded) bool { return r.seq <= seq })
	}
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
