package controller

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/berthpaas/berth/internal/proxy"
)

// accessRecord is the part of an access log line (proxy's access log
// format) a recent request shows, decoded only for the requests a status
// report carries.
type accessRecord struct {
	Time   json.Number `json:"time"` // seconds since the epoch, with milliseconds
	Host   string      `json:"host"`
	Method string      `json:"method"`
	Path   string      `json:"path"`
}

// accessFields are what the counters read of every access log line.
type accessFields struct {
	backend, server []byte
	status          int
	durationMs      int64
}

// scanAccess finds the counted fields in an access log line without decoding
// it: HAProxy writes them as plain numbers and as backend and server names,
// which need no escaping. A key cannot match inside a string value, where
// every '"' is escaped. It reports false for a line without them (cut short,
// or not an access log line).
func scanAccess(line []byte) (f accessFields, ok bool) {
	status, ok1 := scanInt(line, `"status":`)
	d, ok2 := scanInt(line, `"duration_ms":`)
	be, ok3 := scanString(line, `"backend":"`)
	srv, ok4 := scanString(line, `"server":"`)
	return accessFields{backend: be, server: srv, status: int(status), durationMs: d}, ok1 && ok2 && ok3 && ok4
}

// scanInt reads the integer (HAProxy writes -1 for a missing one) after key.
func scanInt(line []byte, key string) (int64, bool) {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(key):]
	neg := len(rest) > 0 && rest[0] == '-'
	if neg {
		rest = rest[1:]
	}
	var n int64
	digits := 0
	for ; digits < len(rest) && digits < 18 && rest[digits] >= '0' && rest[digits] <= '9'; digits++ {
		n = n*10 + int64(rest[digits]-'0')
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// scanString returns the bytes between key (which ends with the opening
// quote) and the next '"'.
func scanString(line []byte, key string) ([]byte, bool) {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return nil, false
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

// backendInfo is what the counters know of one HAProxy backend.
type backendInfo struct {
	app      string            // routing target
	releases map[string]string // server prefix → release service
}

// trafficKey is one counted (routing target, release) pair.
type trafficKey struct{ app, release string }

// traffic counts the requests of the access log per app and release, and
// keeps each app's latest requests until a status report carried them. The
// access log feeds it; the status loop reads it.
type traffic struct {
	mu sync.Mutex
	// backends maps the table set last and the one before it (HAProxy may
	// still log a request routed by that one); last maps the last alone.
	backends map[string]*backendInfo
	last     map[string]*backendInfo
	counts   map[trafficKey]*proxy.ReleaseTraffic
	recent   map[string]*recentRing // routing target → latest requests
	seq      uint64
}

// recentRing holds an app's latest proxy.RecentPerApp access log lines. Its
// slots, and their line buffers, are reused: recording a request allocates
// nothing once the ring is full.
type recentRing struct {
	slots []recorded // oldest at head
	head  int
	n     int
}

// recorded is one request as logged, decoded when a report carries it.
type recorded struct {
	seq        uint64
	release    string
	status     int
	durationMs int64
	line       []byte
}

// push adds a request, dropping the oldest when the ring is full.
func (r *recentRing) push(seq uint64, release string, f accessFields, line []byte) {
	if r.slots == nil {
		r.slots = make([]recorded, proxy.RecentPerApp)
	}
	i := (r.head + r.n) % len(r.slots)
	if r.n == len(r.slots) {
		r.head = (r.head + 1) % len(r.slots)
	} else {
		r.n++
	}
	s := &r.slots[i]
	s.seq, s.release, s.status, s.durationMs = seq, release, f.status, max(f.durationMs, 0)
	s.line = append(s.line[:0], line...)
}

// newest returns the i-th newest request (0 is the newest).
func (r *recentRing) newest(i int) *recorded {
	return &r.slots[(r.head+r.n-1-i)%len(r.slots)]
}

// dropThrough forgets the requests up to sequence number seq.
func (r *recentRing) dropThrough(seq uint64) {
	for r.n > 0 && r.slots[r.head].seq <= seq {
		r.head = (r.head + 1) % len(r.slots)
		r.n--
	}
}

func newTraffic() *traffic {
	return &traffic{backends: map[string]*backendInfo{}, counts: map[trafficKey]*proxy.ReleaseTraffic{},
		recent: map[string]*recentRing{}}
}

// setTable maps backends and servers to the apps and releases of t, and
// forgets what was counted for apps and releases gone from t and from the
// table set before it (HAProxy may still log a request routed by that one).
func (tr *traffic) setTable(t proxy.Table) {
	cur := make(map[string]*backendInfo, len(t.Apps))
	for _, a := range t.Apps {
		bi := &backendInfo{app: a.ID, releases: make(map[string]string, len(a.Releases))}
		for _, r := range a.Releases {
			bi.releases[proxy.ServerPrefix(r.Service)] = r.Service
		}
		cur[proxy.BackendName(a.ID)] = bi
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	both := make(map[string]*backendInfo, len(cur)+len(tr.last))
	for _, m := range []map[string]*backendInfo{cur, tr.last} {
		for be, bi := range m {
			if b, ok := both[be]; ok {
				maps.Copy(b.releases, bi.releases)
				continue
			}
			both[be] = &backendInfo{app: bi.app, releases: maps.Clone(bi.releases)}
		}
	}
	tr.backends, tr.last = both, cur
	keep := make(map[trafficKey]bool)
	apps := make(map[string]bool)
	for _, bi := range both {
		apps[bi.app] = true
		for _, svc := range bi.releases {
			keep[trafficKey{bi.app, svc}] = true
		}
	}
	for k := range tr.counts {
		if !keep[k] && (k.release != "" || !apps[k.app]) {
			delete(tr.counts, k)
		}
	}
	for app := range tr.recent {
		if !apps[app] {
			delete(tr.recent, app)
		}
	}
}

// record counts one access log line; it reports false for a line that is
// not one. Requests no app's backend answered (unrouted hosts, ACME
// challenges) belong to no app and are not counted.
func (tr *traffic) record(line []byte) bool {
	f, ok := scanAccess(line)
	if !ok {
		return false
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	bi := tr.backends[string(f.backend)]
	if bi == nil {
		return true
	}
	release := ""
	// A slot is <prefix><n>; the prefix ends at the last '-'.
	if i := bytes.LastIndexByte(f.server, '-'); i >= 0 {
		release = bi.releases[string(f.server[:i+1])]
	}
	d := max(f.durationMs, 0)
	if class := f.status / 100; f.status >= 100 && class <= 5 {
		k := trafficKey{bi.app, release}
		c := tr.counts[k]
		if c == nil {
			c = &proxy.ReleaseTraffic{App: bi.app, Release: release}
			tr.counts[k] = c
		}
		c.Codes[class-1]++
		i, _ := slices.BinarySearch(proxy.LatencyBucketsMs[:], d)
		c.Latency[i]++
		c.DurationMs += d
	}
	tr.seq++
	ring := tr.recent[bi.app]
	if ring == nil {
		ring = &recentRing{}
		tr.recent[bi.app] = ring
	}
	ring.push(tr.seq, release, f, line)
	return true
}

// snapshot returns the counts and the recent requests not reported yet
// (newest first, at most proxy.RecentPerApp per app and proxy.MaxRecent in
// all: when there are more, each app gets its newest in turn), and the mark
// to pass to reported once the control plane accepted them.
func (tr *traffic) snapshot() ([]proxy.ReleaseTraffic, []proxy.Request, map[string]uint64) {
	tr.mu.Lock()
	locked := true
	defer func() {
		if locked {
			tr.mu.Unlock()
		}
	}()
	counts := make([]proxy.ReleaseTraffic, 0, len(tr.counts))
	for _, c := range tr.counts {
		counts = append(counts, *c)
	}
	slices.SortFunc(counts, func(a, b proxy.ReleaseTraffic) int {
		return cmp.Or(strings.Compare(a.App, b.App), strings.Compare(a.Release, b.Release))
	})
	apps := make([]string, 0, len(tr.recent))
	for app, ring := range tr.recent {
		if ring.n > 0 {
			apps = append(apps, app)
		}
	}
	slices.Sort(apps)
	type pick struct {
		app string
		r   *recorded
	}
	var picked []pick
	marks := make(map[string]uint64)
	for i := 0; i < proxy.RecentPerApp && len(picked) < proxy.MaxRecent; i++ {
		took := false
		for _, app := range apps {
			ring := tr.recent[app]
			if i >= ring.n || len(picked) == proxy.MaxRecent {
				continue
			}
			r := ring.newest(i)
			picked = append(picked, pick{app, r})
			marks[app] = max(marks[app], r.seq)
			took = true
		}
		if !took {
			break
		}
	}
	slices.SortFunc(picked, func(a, b pick) int { return cmp.Compare(b.r.seq, a.r.seq) })
	recent := make([]proxy.Request, len(picked))
	lines := make([][]byte, len(picked))
	for i, p := range picked {
		recent[i] = proxy.Request{App: p.app, Release: p.r.release, Status: p.r.status, DurationMs: p.r.durationMs}
		lines[i] = bytes.Clone(p.r.line) // the slot is reused once unlocked
	}
	tr.mu.Unlock()
	locked = false
	// Only here are lines decoded: at most proxy.MaxRecent per report.
	for i, line := range lines {
		var rec accessRecord
		_ = json.Unmarshal(line, &rec)
		r := &recent[i]
		r.Time, r.Method, r.Host, r.Path = epochTime(rec.Time), rec.Method, rec.Host, truncate(rec.Path, proxy.MaxRecentPath)
	}
	return counts, recent, marks
}

// epochTime is HAProxy's log time, seconds since the epoch with
// milliseconds, as a time in UTC (zero if it is not a number).
func epochTime(n json.Number) time.Time {
	f, err := n.Float64()
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(int64(math.Round(f * 1000))).UTC()
}

// reported drops the recent requests a report carried (and the older ones
// of the same apps it had no room for).
func (tr *traffic) reported(marks map[string]uint64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for app, seq := range marks {
		if ring := tr.recent[app]; ring != nil {
			ring.dropThrough(seq)
		}
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
