package proxy

import "time"

// The control plane's internal listener serves the proxies on these paths;
// both require "Authorization: Bearer <proxy token>".
const (
	// TablePath answers GET ?after=<version> with the current Table once its
	// version is greater than after (waiting up to about 25 s), or 204 No
	// Content when nothing changed in that time.
	TablePath = "/internal/v1/proxy/table"
	// StatusPath accepts POST of a Status, answered 204.
	StatusPath = "/internal/v1/proxy/status"
)

// Status is what a proxy replica reports to the control plane, about every
// second: which table it serves and how busy each release is. The deploy
// engine reads it to know when a switch is live everywhere and when an old
// release has drained.
type Status struct {
	// ID names the replica (its container host name).
	ID string `json:"id"`
	// Node is the Swarm node the replica runs on, when known.
	Node string `json:"node,omitempty"`
	// Version is the table version HAProxy serves now.
	Version int64 `json:"version"`
	// HAProxyVersion is what `haproxy -v` printed, e.g. "2.6.12".
	HAProxyVersion string `json:"haproxy_version"`
	// StartedAt is when the controller started.
	StartedAt time.Time `json:"started_at"`
	// Errors say, in plain words, what of the current table was not applied
	// (a route dropped by validation, a certificate refused …).
	Errors []string `json:"errors,omitempty"`
	// Releases are per release service: requests in flight and servers up.
	Releases map[string]ReleaseStatus `json:"releases,omitempty"`
	// OldWorkers counts HAProxy processes a reload left behind. They still
	// hold connections accepted under an earlier table, on which they route
	// one more request by that table, so a release they may send it to must
	// not go away before they do.
	OldWorkers int `json:"old_workers"`
	// Traffic counts the requests this replica routed since StartedAt, per
	// app and release. The counts only grow while the controller runs; a
	// new StartedAt means they started again from zero. An entry leaves when
	// its release leaves the table.
	Traffic []ReleaseTraffic `json:"traffic,omitempty"`
	// Recent are requests logged since the last report the control plane
	// accepted, newest first: at most RecentPerApp per app and MaxRecent in
	// all, so a report stays small whatever the load.
	Recent []Request `json:"recent,omitempty"`
}

// ReleaseStatus is one release's load on one proxy replica.
type ReleaseStatus struct {
	// Sessions is the number of requests in flight to the release's tasks.
	Sessions int `json:"sessions"`
	// Up counts the release's servers passing their health check.
	Up int `json:"up"`
	// Servers counts the release's resolved servers (tasks found in DNS).
	Servers int `json:"servers"`
}

// LatencyBucketsMs are the upper bounds, in milliseconds, of the latency
// histogram of ReleaseTraffic.
var LatencyBucketsMs = [...]int64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// Bounds of the recent requests in a status report.
const (
	RecentPerApp = 50
	MaxRecent    = 200
	// MaxRecentPath is where a recent request's path is cut (in bytes,
	// on a character boundary).
	MaxRecentPath = 120
)

// ReleaseTraffic is the requests one replica routed to one release of an
// app since it started. Only responses with a status (100–599) count;
// requests the client gave up on before one are left out.
type ReleaseTraffic struct {
	// App is the routing target (App.ID): the app's id, with "-<port>" for
	// another container port than the app's own.
	App string `json:"app"`
	// Release is the release service; "" counts the app's requests no
	// release took (HAProxy answered itself, e.g. 503 with no server up).
	Release string `json:"release,omitempty"`
	// Codes counts responses by status class: Codes[0] 1xx … Codes[4] 5xx.
	Codes [5]int64 `json:"codes"`
	// Latency counts requests by total time: Latency[i] those that took at
	// most LatencyBucketsMs[i] and more than the bound before; the last
	// counts those slower than every bound.
	Latency [len(LatencyBucketsMs) + 1]int64 `json:"latency"`
	// DurationMs is the requests' total time added up, in milliseconds.
	DurationMs int64 `json:"duration_ms"`
}

// Request is one logged request, as the recent requests show it.
type Request struct {
	Time time.Time `json:"time"`
	// App and Release as in ReleaseTraffic.
	App     string `json:"app"`
	Release string `json:"release,omitempty"`
	Method  string `json:"method"`
	Host    string `json:"host"`
	// Path is cut at MaxRecentPath bytes (the query string is never logged).
	Path string `json:"path"`
	// Status is the response status, -1 when there was none.
	Status     int   `json:"status"`
	DurationMs int64 `json:"duration_ms"`
}
