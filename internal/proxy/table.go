// Package proxy owns Berth's edge routing model: the routing table the control
// plane hands to `berth proxy`, its validation, and its pure translation into an
// HAProxy configuration and route map. Talking to a running HAProxy lives in
// the haproxy subpackage.
package proxy

import "time"

// Table is the complete routing state of the edge: every route and every app
// (with its live releases) that routes may point at. The control plane produces
// it; the proxy controller renders it and keeps the last good one on disk.
type Table struct {
	// Version increases with every change; the controller uses it to skip
	// tables it has already applied.
	Version int64 `json:"version"`
	// Routes map a host (and optionally a path prefix) to an app.
	Routes []Route `json:"routes"`
	// Apps are the routing targets, each with the releases serving it.
	Apps []App `json:"apps"`
	// Certificates are served on the HTTPS listener; HAProxy picks one by SNI
	// from the names the certificate covers.
	Certificates []Certificate `json:"certificates,omitempty"`
	// Challenges are the pending ACME HTTP-01 challenges: every proxy replica
	// answers GET /.well-known/acme-challenge/<token> with the key
	// authorization, so the CA may ask any of them.
	Challenges []Challenge `json:"challenges,omitempty"`
}

// Certificate is a PEM certificate chain (leaf first) and its private key.
type Certificate struct {
	// Name identifies the certificate in the proxy (file name, crt-list
	// entry); it matches [a-z0-9][a-z0-9_-]*.
	Name    string `json:"name"`
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
}

// Challenge is one ACME HTTP-01 challenge.
type Challenge struct {
	Token   string `json:"token"`
	KeyAuth string `json:"key_auth"`
}

// App is a routing target: one HAProxy backend whose servers are the tasks of
// the app's releases.
type App struct {
	// ID is the app's stable identifier (store ID, e.g. "app_…"); it names the
	// backend, so it never changes for the life of the app.
	ID string `json:"id"`
	// Name is the human-readable app name, shown as the backend description.
	Name string `json:"name"`
	// Releases are the Swarm services currently serving the app (decision 3b):
	// usually one, two while a deployment switches or a canary runs.
	Releases []Release `json:"releases"`
	// Address, instead of releases, is one fixed server (IP:port): the
	// control plane itself, which runs outside the Swarm.
	Address string `json:"address,omitempty"`
	// Compress gzips the backend's text responses for clients that accept
	// it (unless the app already compressed them).
	Compress bool `json:"compress,omitempty"`
}

// Release is one deployed version of an app, running as its own Swarm service.
type Release struct {
	// Service is the Swarm service name; its tasks are resolved through Docker
	// DNS as tasks.<service> (endpoint_mode dnsrr, decision 3).
	Service string `json:"service"`
	// Port is the container port the app listens on.
	Port int `json:"port"`
	// Weight is the release's share of traffic relative to the app's other
	// releases, 0–256 per task; 0 sends it no new requests.
	Weight int `json:"weight"`
	// Health, when set, is the active HTTP health check; without it tasks are
	// checked by TCP connect only.
	Health *HealthCheck `json:"health,omitempty"`
}

// HealthCheck is an active HTTP health check against each task of a release.
type HealthCheck struct {
	// Path is the request path checked with GET, e.g. "/healthz".
	Path string `json:"path"`
	// Interval between two checks of one task; 0 means DefaultHealthInterval.
	Interval time.Duration `json:"interval"`
	// ExpectStatus is the exact status that means healthy; 0 accepts any 2xx
	// or 3xx.
	ExpectStatus int `json:"expect_status"`
}

// Route sends requests for a host, and optionally a path prefix under it, to
// an app.
type Route struct {
	// Host is the lowercase DNS name matched against the Host header (port
	// ignored).
	Host string `json:"host"`
	// PathPrefix is matched on whole path segments: "/api" matches "/api",
	// "/api/" and "/api/x" but not "/apix". "" and "/" match every path. The
	// longest matching prefix of a host wins.
	PathPrefix string `json:"path_prefix"`
	// StripPrefix removes PathPrefix from the path before the request reaches
	// the app ("/api/x" → "/x").
	StripPrefix bool `json:"strip_prefix"`
	// AppID names the App that serves the route; "" for a redirect.
	AppID string `json:"app_id"`
	// HTTPSRedirect answers plain-HTTP requests with a 308 to https.
	HTTPSRedirect bool `json:"https_redirect"`
	// Timeout is how long the app may take to answer; 0 means the default
	// server timeout of the configuration.
	Timeout time.Duration `json:"timeout"`
	// MaxBody is the largest request body accepted, in bytes, judged by
	// Content-Length; 0 means unlimited.
	MaxBody int64 `json:"max_body"`
	// Redirect, when set, answers the route's requests with a redirect
	// instead of sending them to an app.
	Redirect *Redirect `json:"redirect,omitempty"`
	// BasicAuth, when set, answers requests without its credentials with 401.
	// ACME challenges stay open.
	BasicAuth *BasicAuth `json:"basic_auth,omitempty"`
	// Headers are set on every response of the route, replacing the app's.
	Headers []Header `json:"headers,omitempty"`
}

// Redirect sends a route's requests elsewhere: www ↔ apex, an old domain to
// a new one, a path to another site.
type Redirect struct {
	// To is an absolute http(s) URL without query or fragment, from a narrow
	// alphabet (see CheckRedirectURL): it travels in the route map.
	To string `json:"to"`
	// Code is 301, 302, 307 or 308.
	Code int `json:"code"`
	// KeepPath appends the request's path and query to To (after
	// StripPrefix); To then does not end with '/'.
	KeepPath bool `json:"keep_path"`
}

// BasicAuth is one user allowed to pass a route.
type BasicAuth struct {
	User string `json:"user"`
	// PasswordHash is a crypt(3) hash HAProxy verifies: bcrypt ($2a$, $2b$,
	// $2y$) or SHA-crypt ($5$, $6$). Never the password.
	PasswordHash string `json:"password_hash"`
}

// Header is a response header a route sets.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
