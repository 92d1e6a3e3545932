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
