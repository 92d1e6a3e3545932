package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/testenv"
)

func trafficTable() proxy.Table {
	return proxy.Table{Version: 1, Apps: []proxy.App{
		{ID: "app_web", Releases: []proxy.Release{{Service: "berth-web-1", Port: 80}, {Service: "berth-web-2", Port: 80}}},
		{ID: "app_web-9090", Releases: []proxy.Release{{Service: "berth-web-1", Port: 9090}}},
		{ID: "app_api", Releases: []proxy.Release{{Service: "berth-api-1", Port: 80}}},
	}}
}

func TestTrafficCountsPerRelease(t *testing.T) {
	tr := newTraffic()
	tr.setTable(trafficTable())
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, r := range []testRequest{
		{Backend: "be_app_web", Server: "berth-web-1-1", Status: 200, DurationMs: 3},
		{Backend: "be_app_web", Server: "berth-web-1-2", Status: 204, DurationMs: 5},
		{Backend: "be_app_web", Server: "berth-web-2-1", Status: 502, DurationMs: 12000},
		{Backend: "be_app_web", Server: "<NOSRV>", Status: 503, DurationMs: 0},
		{Backend: "be_app_web-9090", Server: "berth-web-1-1", Status: 301, DurationMs: 6},
		{Backend: "be_app_api", Server: "berth-api-1-1", Status: 404, DurationMs: 100},
		{Backend: "be_app_api", Server: "berth-api-1-1", Status: -1, DurationMs: -1}, // client gave up
		{Backend: proxy.DefaultBackend, Server: "<NOSRV>", Status: 503},              // unrouted host
		{Backend: proxy.ACMEBackend, Server: "acme", Status: 200},
	} {
		r.Time, r.Method, r.Host, r.Path = float64(at.UnixMilli())/1000, "GET", "web.test", "/"
		if !tr.record(r.line()) {
			t.Fatalf("line of %+v not taken", r)
		}
	}
	counts, recent, marks := tr.snapshot()
	type row struct {
		app, release string
		codes        [5]int64
		sum          int64
	}
	var got []row
	for _, c := range counts {
		got = append(got, row{c.App, c.Release, c.Codes, c.DurationMs})
	}
	want := []row{
		{"app_api", "berth-api-1", [5]int64{0, 0, 0, 1, 0}, 100},
		{"app_web", "", [5]int64{0, 0, 0, 0, 1}, 0},
		{"app_web", "berth-web-1", [5]int64{0, 2, 0, 0, 0}, 8},
		{"app_web", "berth-web-2", [5]int64{0, 0, 0, 0, 1}, 12000},
		{"app_web-9090", "berth-web-1", [5]int64{0, 0, 1, 0, 0}, 6},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts\n got %v\nwant %v", got, want)
	}
	// 3 ms and 5 ms in the first bucket (≤5), 12 s in the last (>10 s).
	for _, c := range counts {
		switch c.Release {
		case "berth-web-1":
			if c.App == "app_web" && (c.Latency[0] != 2 || sum(c.Latency[:]) != 2) {
				t.Errorf("latency of berth-web-1: %v", c.Latency)
			}
		case "berth-web-2":
			if c.Latency[len(c.Latency)-1] != 1 || sum(c.Latency[:]) != 1 {
				t.Errorf("latency of berth-web-2: %v", c.Latency)
			}
		}
	}
	// Recent: every routed request, the aborted one too; newest first.
	if len(recent) != 7 || recent[0].Status != -1 || recent[0].App != "app_api" || recent[6].Release != "berth-web-1" {
		t.Errorf("recent %+v", recent)
	}
	tr.reported(marks)
	if _, recent, _ := tr.snapshot(); len(recent) != 0 {
		t.Errorf("reported requests sent again: %+v", recent)
	}

	// A release that leaves the table leaves the counts once the table
	// after it is set too (an apply sets it before the reload and at commit);
	// the others stay.
	tb := trafficTable()
	tb.Apps[0].Releases = tb.Apps[0].Releases[1:]
	tr.setTable(tb)
	tr.record(testRequest{Backend: "be_app_web", Server: "berth-web-1-1", Status: 200}.line()) // logged late
	if counts, _, _ := tr.snapshot(); len(counts) != 5 || counts[2].Codes[1] != 3 {
		t.Errorf("a request routed by the table before was not counted: %+v", counts)
	}
	tr.setTable(tb)
	counts, _, _ = tr.snapshot()
	for _, c := range counts {
		if c.App == "app_web" && c.Release == "berth-web-1" {
			t.Errorf("removed release still counted: %+v", c)
		}
	}
	if len(counts) != 4 {
		t.Errorf("%d counts left, want 4: %+v", len(counts), counts)
	}
}

func sum(xs []int64) (n int64) {
	for _, x := range xs {
		n += x
	}
	return n
}

func TestTrafficRecentIsBounded(t *testing.T) {
	tr := newTraffic()
	tb := proxy.Table{Version: 1}
	for i := range 10 {
		tb.Apps = append(tb.Apps, proxy.App{ID: fmt.Sprintf("app_%d", i), Releases: []proxy.Release{{Service: fmt.Sprintf("svc%d", i), Port: 80}}})
	}
	tr.setTable(tb)
	long := "/" + strings.Repeat("é", 200)
	for n := range 100 {
		for i := range 10 {
			tr.record(testRequest{Backend: fmt.Sprintf("be_app_%d", i), Server: fmt.Sprintf("svc%d-1", i),
				Status: 200, Path: long, Method: fmt.Sprint(n)}.line())
		}
	}
	_, recent, marks := tr.snapshot()
	if len(recent) != proxy.MaxRecent {
		t.Fatalf("%d recent requests, want %d", len(recent), proxy.MaxRecent)
	}
	per := map[string]int{}
	for _, r := range recent {
		per[r.App]++
		if len(r.Path) > proxy.MaxRecentPath+len("…") || !strings.HasSuffix(r.Path, "…") || !strings.HasPrefix(r.Path, "/é") {
			t.Fatalf("path not cut on a character: %q", r.Path)
		}
	}
	for app, n := range per {
		if n != proxy.MaxRecent/10 {
			t.Errorf("app %s got %d of the recent requests, want a fair %d", app, n, proxy.MaxRecent/10)
		}
	}
	if recent[0].Method != "99" {
		t.Errorf("newest first: got %+v", recent[0])
	}
	// Reporting drops what was sent and what had no room (older).
	tr.reported(marks)
	tr.record(testRequest{Backend: "be_app_3", Server: "svc3-1", Status: 500, Method: "new"}.line())
	if _, recent, _ := tr.snapshot(); len(recent) != 1 || recent[0].Method != "new" {
		t.Errorf("after a report: %+v", recent)
	}
}

// testRequest is an access log line's fields, in the log's order.
type testRequest struct {
	Time       float64 `json:"time"` // seconds since the epoch, as HAProxy writes it
	Client     string  `json:"client"`
	Host       string  `json:"host"`
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	Bytes      int     `json:"bytes"`
	DurationMs int64   `json:"duration_ms"`
	Backend    string  `json:"backend"`
	Server     string  `json:"server"`
}

func (r testRequest) line() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

// The access log counts each access log line and passes it on unchanged
// (once flushed); HAProxy's other lines and lines cut short are logged.
func TestAccessLogCountsAndPassesLinesOn(t *testing.T) {
	tr := newTraffic()
	tr.setTable(trafficTable())
	var logs, out bytes.Buffer
	a := newAccessLog(slog.New(slog.NewTextHandler(&logs, nil)), tr, &out)
	const fields = `"level":"INFO","msg":"access","client":"10.0.0.1","host":"web.test","method":"POST","path":"/a\"status\":1","status":201,"bytes":2,"duration_ms":7,"backend":"be_app_web","server":"berth-web-2-3","termination":"----"}`
	line := `{"time":1893553445.678,` + fields
	wantOut := `{"time":"2030-01-02T03:04:05.678Z",` + fields + "\n" + `{"time":"2030-01-02T03:04:06.009Z",` + fields + "\n"
	cut := `{"time":"2030-01-02T03:04:05.678Z","level":"INFO","msg":"access","client":"10.0.0.1","host":"web.test","method":"GET","path":"/very-long`
	a.Write([]byte(line + "\n[WARNING] not json\n" + cut + "\n" + `{"time":1893553446.009,` + fields + "\n"))
	if out.Len() != 0 {
		t.Errorf("written before a flush: %q", out.String())
	}
	a.Flush()
	if out.String() != wantOut {
		t.Errorf("output %q, want the access lines with their time in RFC 3339 and otherwise unchanged", out.String())
	}
	if !strings.Contains(logs.String(), `level=WARN msg=haproxy output="[WARNING] not json"`) || !strings.Contains(logs.String(), "very-long") {
		t.Errorf("HAProxy's message or the cut line not logged:\n%s", logs.String())
	}
	counts, recent, _ := tr.snapshot()
	if len(counts) != 1 || counts[0].Release != "berth-web-2" || counts[0].Codes[1] != 2 || counts[0].Latency[1] != 2 {
		t.Fatalf("counts %+v", counts)
	}
	want := proxy.Request{Time: time.Date(2030, 1, 2, 3, 4, 6, 9e6, time.UTC), App: "app_web", Release: "berth-web-2",
		Method: "POST", Host: "web.test", Path: `/a"status":1`, Status: 201, DurationMs: 7}
	if len(recent) != 2 || recent[0] != want {
		t.Errorf("recent %+v, want %+v", recent, want)
	}
}

// Requests through HAProxy show up, counted per release, in the next
// status reports; unrouted hosts count for no app.
func TestTrafficReportedThroughHAProxy(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	r1 := newUpstream(t, "web-r1")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))
	cp.SetTable(webTable(1, r1.rel(100)))
	testenv.Eventually(t, 20*time.Second, "web.test served by r1", h.served("web.test", "/", "web-r1"))
	for range 5 {
		if code, _, err := h.get("web.test", "/"); err != nil || code != 200 {
			t.Fatalf("GET /: %d %v", code, err)
		}
	}
	for range 2 {
		if code, _, err := h.get("web.test", "/boom"); err != nil || code != 500 {
			t.Fatalf("GET /boom: %d %v", code, err)
		}
	}
	if code, _, err := h.get("unrouted.test", "/x"); err != nil || code != 503 {
		t.Fatalf("GET unrouted: %d %v", code, err)
	}
	s := cp.waitStatus(t, "traffic of web-r1 reported", func(s proxy.Status) error {
		for _, c := range s.Traffic {
			if c.App == "app_web" && c.Release == "web-r1" && c.Codes[1] >= 6 && c.Codes[4] == 2 {
				return nil
			}
		}
		return fmt.Errorf("traffic %+v (log %q)", s.Traffic, h.logs.find("^access"))
	})
	for _, c := range s.Traffic {
		if c.App != "app_web" {
			t.Errorf("counted for another app than app_web: %+v", c)
		}
		if c.Release == "web-r1" && sum(c.Latency[:]) != sum(c.Codes[:]) {
			t.Errorf("latency histogram counts %d requests, codes %d", sum(c.Latency[:]), sum(c.Codes[:]))
		}
	}
	testenv.Eventually(t, 5*time.Second, "recent requests reported", func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		booms := 0
		for _, r := range cp.recent {
			if r.Host == "unrouted.test" {
				return fmt.Errorf("unrouted request reported as an app's: %+v", r)
			}
			if r.Path == "/boom" && r.Status == 500 && r.Release == "web-r1" && r.Method == "GET" && r.App == "app_web" && !r.Time.IsZero() {
				booms++
			}
		}
		if booms != 2 {
			return fmt.Errorf("%d /boom requests among %+v", booms, cp.recent)
		}
		return nil
	})
}

// With the access log off, requests are still counted and reported, and no
// line is written.
func TestNoAccessLogStillCounts(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	r1 := newUpstream(t, "web-r1")
	cfg := newConfig(t, cp, startDNS(t), "s3cret")
	cfg.NoAccessLog = true
	h := start(t, cfg)
	cp.SetTable(webTable(1, r1.rel(100)))
	testenv.Eventually(t, 20*time.Second, "web.test served by r1", h.served("web.test", "/", "web-r1"))
	for range 3 {
		if code, _, err := h.get("web.test", "/counted"); err != nil || code != 200 {
			t.Fatalf("GET /counted: %d %v", code, err)
		}
	}
	testenv.Eventually(t, 5*time.Second, "the requests reported", func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		n := 0
		for _, r := range cp.recent {
			if r.Path == "/counted" {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d of 3 requests to /counted reported", n)
		}
		return nil
	})
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if lines := h.logs.find("^access "); len(lines) > 0 {
		t.Errorf("access log written although off: %q", lines)
	}
}
