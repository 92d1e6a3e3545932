package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/edge"
)

// requestsView is an app's Requests tab: what the edge proxies counted over
// a window, refreshed every 5 s by polling the same URL with htmx.
type requestsView struct {
	RefreshURL  string
	Windows     []tabLink
	Window      string // "5 minutes"
	Unavailable bool   // the server runs without the edge
	Requests    int64
	Rate        string // "12.4/s"
	ErrorRate   string // "0.8%"
	Erroring    bool   // 5xx above 1%
	P50, P95    string // "12 ms", "—" without requests
	Since       string // set when the window reaches back before counting began
	Spark       sparkline
	Releases    []releaseRequestsRow
	Recent      []recentRequestRow
}

// sparkline is the rate over the window as SVG coordinates, in a
// sparkW × sparkH view box.
type sparkline struct {
	Line, Area string
	Peak       string // the highest rate, "3.2/s"
	Label      string // the chart in words, for screen readers
	Start, End string // the axis ends: "5 minutes ago", "now"
}

const sparkW, sparkH = 600, 80

type releaseRequestsRow struct {
	Release            string // "" for the proxy's own answers
	Requests           int64
	Rate, ErrorRate    string
	Erroring           bool
	P50, P95           string
	TwoXX, FourXX, Bad int64
}

type recentRequestRow struct {
	Time, ISO, Ago string
	Method, Host   string
	Path           string
	Status         string
	Class          string // badge kind: ok, warn, fail, muted
	Duration       string
	Release        string
}

var requestWindows = []struct {
	param, label string
	d            time.Duration
}{{"5m", "5 minutes", 5 * time.Minute}, {"15m", "15 minutes", 15 * time.Minute}, {"1h", "hour", time.Hour}}

// appRequests is the Requests tab; an htmx request (the 5 s refresh) gets
// the section alone.
func (u *ui) appRequests(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	win := requestWindows[0]
	for _, rw := range requestWindows {
		if r.URL.Query().Get("window") == rw.param {
			win = rw
		}
	}
	base := appURL(ref, "/requests")
	withWindow := func(param string) string {
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		return base + sep + "window=" + url.QueryEscape(param)
	}
	view := func(appID string) *requestsView {
		v := &requestsView{RefreshURL: withWindow(win.param), Window: win.label}
		for _, rw := range requestWindows {
			v.Windows = append(v.Windows, tabLink{Label: rw.param, URL: withWindow(rw.param), Current: rw == win})
		}
		if u.d.Requests == nil {
			v.Unavailable = true
			return v
		}
		fillRequests(v, u.d.Requests(appID, win.d), time.Now())
		return v
	}
	if isHTMX(r) {
		a, err := u.d.Apps.App(r.Context(), p, ref)
		if err != nil {
			u.failed(w, r, p, "show app", err)
			return
		}
		u.renderTemplate(w, r, http.StatusOK, "app", "requests", view(a.ID))
		return
	}
	v, st, err := u.appPage(r, p, "requests")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	v.Requests = view(st.App.ID)
	v.Title = "Requests · " + v.Head.Name
	u.render(w, r, http.StatusOK, "app", v)
}

func fillRequests(v *requestsView, w edge.AppRequests, now time.Time) {
	v.Requests = w.Requests
	v.Rate, v.ErrorRate, v.Erroring = perSecond(w.Rate), percent(w.ErrorRate), w.ErrorRate > 0.01
	v.P50, v.P95 = millis(w.P50Ms, w.Requests), millis(w.P95Ms, w.Requests)
	if w.Since.After(now.Add(-w.Window)) {
		v.Since = relativeTo(w.Since, now)
	}
	v.Spark = sparkOf(w.Rates, v.Window)
	for _, r := range w.Releases {
		v.Releases = append(v.Releases, releaseRequestsRow{
			Release: r.Release, Requests: r.Requests, Rate: perSecond(r.Rate), ErrorRate: percent(r.ErrorRate),
			Erroring: r.ErrorRate > 0.01, P50: millis(r.P50Ms, r.Requests), P95: millis(r.P95Ms, r.Requests),
			TwoXX: r.Codes[1], FourXX: r.Codes[3], Bad: r.Codes[4],
		})
	}
	for _, q := range w.Recent {
		row := recentRequestRow{
			Time: q.Time.Local().Format("15:04:05"), ISO: q.Time.UTC().Format(time.RFC3339Nano), Ago: relativeTo(q.Time, now),
			Method: q.Method, Host: q.Host, Path: q.Path, Status: strconv.Itoa(q.Status),
			Duration: fmt.Sprintf("%d ms", q.DurationMs), Release: q.Release,
		}
		switch {
		case q.Status >= 500:
			row.Class = "fail"
		case q.Status >= 400:
			row.Class = "warn"
		case q.Status >= 100:
			row.Class = "ok"
		default:
			row.Status, row.Class = "—", "muted"
		}
		v.Recent = append(v.Recent, row)
	}
}

// sparkOf draws the rates as a line and the area under it.
func sparkOf(rates []edge.RatePoint, window string) sparkline {
	s := sparkline{Start: window + " ago", End: "now"}
	if len(rates) < 2 {
		return s
	}
	peak := 0.0
	for _, p := range rates {
		peak = max(peak, p.Rate)
	}
	s.Peak = perSecond(peak)
	const pad = 4.0
	var pts []string
	for i, p := range rates {
		x := float64(i) * sparkW / float64(len(rates)-1)
		y := float64(sparkH) - pad
		if peak > 0 {
			y -= p.Rate / peak * (sparkH - 2*pad)
		}
		pts = append(pts, strconv.FormatFloat(x, 'f', 1, 64)+","+strconv.FormatFloat(y, 'f', 1, 64))
	}
	s.Line = strings.Join(pts, " ")
	s.Area = fmt.Sprintf("0,%d %s %d,%d", sparkH, s.Line, sparkW, sparkH)
	s.Label = fmt.Sprintf("Requests per second over the last %s, peaking at %s", window, s.Peak)
	return s
}

func perSecond(r float64) string {
	switch {
	case r == 0:
		return "0/s"
	case r < 0.1:
		return strconv.FormatFloat(r*60, 'f', 1, 64) + "/min"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 2, 64) + "/s"
	case r < 1000:
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	}
	return strconv.FormatFloat(r, 'f', 0, 64) + "/s"
}

func percent(f float64) string {
	switch {
	case f == 0:
		return "0%"
	case f < 0.001:
		return "<0.1%"
	case f < 0.1:
		return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(f*100, 'f', 0, 64) + "%"
}

func millis(ms float64, n int64) string {
	switch {
	case n == 0:
		return "—"
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
}
