package proxy

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Render to zero Options fields.
const (
	DefaultHTTPPort        = 80
	DefaultStatsPort       = 8404
	DefaultRuntimeSocket   = "/run/berth/haproxy.sock"
	DefaultLogSocket       = "/run/berth/access.sock"
	DefaultMapPath         = "/etc/berth/proxy/routes.map"
	DefaultPathMapPath     = "/etc/berth/proxy/paths.map"
	DefaultSlotsPerRelease = 10
	DefaultMaxConn         = 4096
	DefaultHealthInterval  = 2 * time.Second
	DefaultCertPath        = "/etc/berth/proxy/default.pem"
	DefaultCertDir         = "/etc/berth/proxy/certs"
	DefaultCrtListPath     = "/etc/berth/proxy/certs.list"
	DefaultServerStatePath = "/etc/berth/proxy/server-state"
	DefaultChallengeAddr   = "127.0.0.1:8405"
	DefaultNameserver      = "127.0.0.11:53"
)

// DefaultBackend is the backend answering requests no route matches.
const DefaultBackend = "berth_default"

// ACMEBackend is the backend that sends ACME HTTP-01 challenge requests to the
// controller's responder (Options.ChallengeAddr).
const ACMEBackend = "berth_acme"

// ACMEPathPrefix is the path under which ACME HTTP-01 challenges are asked.
const ACMEPathPrefix = "/.well-known/acme-challenge/"

// Options are the operator's (not the users') settings of the rendered
// configuration. Zero fields take the Default* values.
type Options struct {
	// HTTPPort is the plain-HTTP listener of the edge.
	HTTPPort int
	// HTTPFD and HTTPSFD, when not 0, are inherited listening sockets
	// (fd@N) HAProxy accepts on instead of binding HTTPPort and HTTPSPort:
	// the sockets a listener holder hands over (internal/proxy/listeners).
	HTTPFD, HTTPSFD int
	// StatsPort serves the Prometheus exporter at /metrics.
	StatsPort int
	// RuntimeSocket is the Runtime API socket (admin level) the controller
	// drives HAProxy through.
	RuntimeSocket string
	// LogSocket is the unix socket HAProxy forwards its log to (from a
	// ring buffer, see renderGlobal): the controller listens on it.
	LogSocket string
	// MapPath is the route map file (see RenderMap); the Runtime API's map
	// commands name it by this path.
	MapPath string
	// PathMapPath is the map of hosts with path routes (see RenderPathMap);
	// the Runtime API's map commands name it by this path.
	PathMapPath string
	// SlotsPerRelease is how many server slots each release gets: the most
	// tasks of one release that receive traffic.
	SlotsPerRelease int
	// MaxConn is the process-wide connection limit.
	MaxConn int
	// Threads is HAProxy's nbthread (0: HAProxy's default, a thread per
	// core). See DefaultThreads.
	Threads int
	// HTTPSPort, when not 0, adds a TLS listener to the same frontend.
	HTTPSPort int
	// DefaultCertPath is the PEM file (chain and key) served when no
	// certificate of the crt-list covers the SNI name. It is named before the
	// crt-list, so an empty crt-list is still a valid TLS listener.
	DefaultCertPath string
	// CertDir holds one PEM file per table certificate (see CertFile).
	CertDir string
	// CrtListPath is the crt-list file naming the table's certificates (see
	// RenderCrtList); the Runtime API's crt-list commands name it by this path.
	CrtListPath string
	// ServerStatePath is where the controller saves `show servers state`
	// before a reload, so the new worker starts with the task addresses the
	// old one had resolved instead of none.
	ServerStatePath string
	// ChallengeAddr is the controller's ACME HTTP-01 responder.
	ChallengeAddr string
	// Nameserver is the DNS server that resolves tasks.<service>: Docker's
	// embedded DNS in production.
	Nameserver string
}

// optPathRe is deliberately narrower than what HAProxy accepts: file paths are
// also used inside sample expressions (map_str(<path>)), where ',' and ')'
// would end the argument.
var optPathRe = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)

func (o Options) withDefaults() (Options, error) {
	o.HTTPPort = cmp.Or(o.HTTPPort, DefaultHTTPPort)
	o.StatsPort = cmp.Or(o.StatsPort, DefaultStatsPort)
	o.RuntimeSocket = cmp.Or(o.RuntimeSocket, DefaultRuntimeSocket)
	o.LogSocket = cmp.Or(o.LogSocket, DefaultLogSocket)
	o.MapPath = cmp.Or(o.MapPath, DefaultMapPath)
	o.PathMapPath = cmp.Or(o.PathMapPath, DefaultPathMapPath)
	o.SlotsPerRelease = cmp.Or(o.SlotsPerRelease, DefaultSlotsPerRelease)
	o.MaxConn = cmp.Or(o.MaxConn, DefaultMaxConn)
	o.DefaultCertPath = cmp.Or(o.DefaultCertPath, DefaultCertPath)
	o.CertDir = cmp.Or(o.CertDir, DefaultCertDir)
	o.CrtListPath = cmp.Or(o.CrtListPath, DefaultCrtListPath)
	o.ServerStatePath = cmp.Or(o.ServerStatePath, DefaultServerStatePath)
	o.ChallengeAddr = cmp.Or(o.ChallengeAddr, DefaultChallengeAddr)
	o.Nameserver = cmp.Or(o.Nameserver, DefaultNameserver)
	var errs []error
	type namedPort struct {
		name string
		port int
	}
	ports := []namedPort{{"http_port", o.HTTPPort}, {"stats_port", o.StatsPort}}
	if o.HTTPSPort != 0 {
		ports = append(ports, namedPort{"https_port", o.HTTPSPort})
	}
	seen := make(map[int]string)
	for _, p := range ports {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fieldErr("options."+p.name, "must be 1–65535, got %d", p.port))
		}
		if other, dup := seen[p.port]; dup {
			errs = append(errs, fieldErr("options."+p.name, "must differ from %s", other))
		}
		seen[p.port] = p.name
	}
	for _, p := range []struct{ name, path string }{
		{"runtime_socket", o.RuntimeSocket},
		{"log_socket", o.LogSocket},
		{"map_path", o.MapPath},
		{"path_map_path", o.PathMapPath},
		{"default_cert_path", o.DefaultCertPath},
		{"cert_dir", o.CertDir},
		{"crt_list_path", o.CrtListPath},
		{"server_state_path", o.ServerStatePath},
	} {
		if !optPathRe.MatchString(p.path) {
			errs = append(errs, fieldErr("options."+p.name, "must be an absolute path matching %s", optPathRe))
		}
	}
	for _, a := range []struct{ name, addr string }{{"challenge_addr", o.ChallengeAddr}, {"nameserver", o.Nameserver}} {
		if ap, err := netip.ParseAddrPort(a.addr); err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
			errs = append(errs, fieldErr("options."+a.name, "must be an IP address and port, got %q", a.addr))
		}
	}
	if o.SlotsPerRelease < 1 || o.SlotsPerRelease > 1000 {
		errs = append(errs, fieldErr("options.slots_per_release", "must be 1–1000, got %d", o.SlotsPerRelease))
	}
	if o.MaxConn < 1 {
		errs = append(errs, fieldErr("options.max_conn", "must be positive, got %d", o.MaxConn))
	}
	if o.Threads < 0 || o.Threads > 64 {
		errs = append(errs, fieldErr("options.threads", "must be 0–64, got %d", o.Threads))
	}
	return o, errors.Join(errs...)
}

// DefaultThreads is how many threads HAProxy runs on a node with cores
// CPUs: half of them, at least one. The proxy shares its node with the apps
// it forwards to, and on a busy node a thread per core spends more time
// sleeping and waking than forwarding: on 2 cores (wrk, a Go upstream and
// HAProxy sharing them) one thread served the same load with 0.1–0.3
// context switches and 4.3 system calls per request instead of 0.5–0.8 and
// 5.4–6.7 for two threads, and 12–20% less CPU (bench/proxy, -variants).
func DefaultThreads(cores int) int { return max(1, cores/2) }

// BackendName is the HAProxy backend of an app.
func BackendName(appID string) string { return "be_" + appID }

// ServerPrefix is the server-template prefix of a release: its slots are
// named <prefix>1 … <prefix>N. Names derive from the service, not the
// release's position, so they stay stable while releases come and go.
func ServerPrefix(service string) string { return service + "-" }

// MapKey is the route map key of a route: the host, followed by the path
// prefix unless the route serves every path ("a.example" or "a.example/api").
func MapKey(r Route) string {
	if p := canonicalPrefix(r.PathPrefix); p != "/" {
		return r.Host + p
	}
	return r.Host
}

// MapValue is the route map value of a route, nine fields joined by '|':
//
//	<backend>|<segments to strip>|<https redirect 0/1>|<max body bytes, 0 = unlimited>|<timeout ms, 0 = default>|
//	<route tag>|<redirect code, 0 = none>|<redirect keeps path 0/1>|<redirect URL, - = none>
//
// Everything per route lives in the value, so adding or changing a route of an
// existing app, redirects included, is one Runtime API map command, with no
// reload. The value has no spaces (the redirect URL's alphabet has neither
// spaces nor '|'), so it passes through "add map"/"set map" unquoted. The
// route tag (RouteTag) names the route in the few rules that cannot be data:
// basic auth and response headers.
func MapValue(r Route) string {
	strip := 0
	if r.StripPrefix {
		strip = segments(canonicalPrefix(r.PathPrefix))
	}
	backend, code, keep, to := DefaultBackend, 0, false, "-"
	if r.AppID != "" {
		backend = BackendName(r.AppID)
	}
	if r.Redirect != nil {
		code, keep, to = r.Redirect.Code, r.Redirect.KeepPath, r.Redirect.To
	}
	return fmt.Sprintf("%s|%d|%s|%d|%d|%s|%d|%s|%s", backend, strip, b01(r.HTTPSRedirect), r.MaxBody, r.Timeout.Milliseconds(),
		RouteTag(r), code, b01(keep), to)
}

// RouteTag names a route in the configuration (its basic auth and header
// rules) and in its map value: derived from the map key, so it is stable for
// the life of the route and safe to write anywhere.
func RouteTag(r Route) string {
	sum := sha256.Sum256([]byte(MapKey(r)))
	return "r" + hex.EncodeToString(sum[:8])
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// RenderMap returns the route map file for t, sorted by key. Routes that fail
// validation are left out (a map line cannot be escaped, so nothing
// unvalidated is ever written).
func RenderMap(t Table) []byte {
	t, _ = ValidRoutes(t)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Berth route map, table version %d. Generated; edit through the Runtime API or the control plane.\n", t.Version)
	fmt.Fprintf(&b, "# <host>[<path prefix>] <backend>|<strip segments>|<https redirect>|<max body>|<timeout ms>|<tag>|<redirect code>|<keep path>|<redirect URL>\n")
	routes := slices.Clone(t.Routes)
	slices.SortFunc(routes, func(a, b Route) int { return strings.Compare(MapKey(a), MapKey(b)) })
	for _, r := range routes {
		fmt.Fprintf(&b, "%s %s\n", MapKey(r), MapValue(r))
	}
	return b.Bytes()
}

// PathHosts returns the hosts (wildcards included) that have at least one
// route with a path prefix, sorted: the keys of the path map. The frontend
// looks a request's path prefixes up only for these, so a host without path
// routes costs one map lookup instead of one per prefix depth.
func PathHosts(routes []Route) []string {
	var hosts []string
	for _, r := range routes {
		if canonicalPrefix(r.PathPrefix) != "/" {
			hosts = append(hosts, r.Host)
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// PathMapValue is the value of every path map entry: the map is a set.
const PathMapValue = "1"

// RenderPathMap returns the path map file for t: one line per host of
// PathHosts. Like RenderMap, it leaves out routes that fail validation.
func RenderPathMap(t Table) []byte {
	t, _ = ValidRoutes(t)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Berth path map, table version %d. Generated; edit through the Runtime API or the control plane.\n", t.Version)
	fmt.Fprintf(&b, "# <host> %s: the host has routes with a path prefix.\n", PathMapValue)
	for _, h := range PathHosts(t.Routes) {
		fmt.Fprintf(&b, "%s %s\n", h, PathMapValue)
	}
	return b.Bytes()
}

// certNameRe is the alphabet of Certificate.Name: it becomes a file name.
var certNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,99}$`)

// ValidCertName reports whether name may name a certificate (see CertFile).
func ValidCertName(name string) bool { return certNameRe.MatchString(name) }

// CertFile is the PEM file of the certificate named name in dir
// (Options.CertDir): its chain followed by its key.
func CertFile(dir, name string) string { return dir + "/" + name + ".pem" }

// RenderCrtList returns the crt-list file for t's certificates: one
// certificate file per line, sorted, with no SNI filters, so HAProxy serves
// each certificate for the names it covers. Certificates whose name is not
// allowed (or repeated) are refused, since the name becomes a file name.
func RenderCrtList(t Table, o Options) ([]byte, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("proxy: render crt-list: %w", err)
	}
	names := make([]string, 0, len(t.Certificates))
	seen := make(map[string]bool, len(t.Certificates))
	for i, c := range t.Certificates {
		if !certNameRe.MatchString(c.Name) {
			return nil, fmt.Errorf("proxy: render crt-list: %w", fieldErr(fmt.Sprintf("certificates[%d].name", i), "must match %s", certNameRe))
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("proxy: render crt-list: %w", fieldErr(fmt.Sprintf("certificates[%d].name", i), "duplicate certificate name %q", c.Name))
		}
		seen[c.Name] = true
		names = append(names, c.Name)
	}
	slices.Sort(names)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Berth crt-list, table version %d. Generated; edit through the Runtime API or the control plane.\n", t.Version)
	for _, n := range names {
		fmt.Fprintf(&b, "%s\n", CertFile(o.CertDir, n))
	}
	return b.Bytes(), nil
}

// Render returns the complete HAProxy 2.6 configuration for t. It is pure and
// deterministic: the same table and options give the same bytes. Routing
// itself is data in the map file (RenderMap), so the configuration depends on
// the apps and their releases only; an invalid table is refused whole (use
// ValidRoutes first to apply what is valid).
func Render(t Table, o Options) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("proxy: render: %w", err)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("proxy: render: %w", err)
	}
	w := &cfgWriter{}
	w.line("# Generated by Berth from routing table version %d. Do not edit: changes are lost.", t.Version)
	w.line("")
	renderGlobal(w, o)
	routes := slices.Clone(t.Routes)
	slices.SortFunc(routes, func(a, b Route) int { return strings.Compare(MapKey(a), MapKey(b)) })
	u := usesOf(routes)
	renderFrontends(w, o, routes, u)
	renderUserlists(w, routes)
	renderDefaultBackend(w)
	renderACMEBackend(w, o)
	apps := slices.Clone(t.Apps)
	slices.SortFunc(apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) })
	for _, a := range apps {
		renderApp(w, a, o, u)
	}
	return w.b.Bytes(), nil
}

type cfgWriter struct{ b bytes.Buffer }

func (w *cfgWriter) line(format string, args ...any) {
	fmt.Fprintf(&w.b, format, args...)
	w.b.WriteByte('\n')
}

// in writes one indented directive line.
func (w *cfgWriter) in(format string, args ...any) { w.line("    "+format, args...) }

func renderGlobal(w *cfgWriter, o Options) {
	w.line("global")
	w.in("master-worker")
	if o.Threads > 0 {
		w.in("nbthread %d", o.Threads)
	}
	w.in("maxconn %d", o.MaxConn)
	// The log goes to a ring buffer in memory that forwards it to the
	// controller: unlike `log stdout`, which writes each line with a system
	// call of its own and drops those that meet another thread's write, the
	// ring takes every line and sends what gathered in few writes.
	w.in("log ring@%s len %d format raw local0", logRing, MaxLogLine)
	w.in("stats socket %s mode 600 level admin expose-fd listeners", quote(o.RuntimeSocket))
	// Old workers keep serving in-flight requests after a reload; bound how
	// long, at the longest route timeout allowed.
	w.in("hard-stop-after %s", dur(MaxTimeout))
	w.in("server-state-file %s", quote(o.ServerStatePath))
	w.line("")
	w.line("ring %s", logRing)
	w.in("description %s", quote("access log, forwarded to the controller"))
	w.in("format raw")
	w.in("maxlen %d", MaxLogLine)
	// About 3,000 lines: what the controller reads, it reads every few
	// milliseconds. A full ring drops new lines.
	w.in("size %d", logRingSize)
	w.in("timeout connect 1s")
	w.in("timeout server 10s")
	// HAProxy 2.6 retries a refused connection at once, in a loop: the
	// controller listens before HAProxy starts and until it has stopped.
	w.in("server controller %s", quote("unix@"+o.LogSocket))
	w.line("")
	w.line("defaults")
	w.in("mode http")
	w.in("log global")
	w.in("option forwardfor")
	w.in("option redispatch")
	// A server connection serves one client connection only. A task that dies
	// closes its idle connections; one shared between clients could still be
	// handed a request (a POST, which is not replayed) before HAProxy sees the
	// close, so one death could fail several requests of the same client.
	w.in("http-reuse never")
	// During a reload the old worker answers the next request of an idle
	// keep-alive connection with "Connection: close" rather than closing it
	// under the client, which would fail that request.
	w.in("option idle-close-on-response")
	// A new worker starts with the server addresses (and health) the old one
	// had, instead of none until the first DNS answer.
	w.in("load-server-state-from-file global")
	w.in("retries 3")
	// L7 retries replay the request; the frontend disables them for methods
	// that are not safe to repeat (connection failures are still retried).
	// Not on response-timeout: a GET that ran into the route's timeout would
	// wait it out up to 3 more times on a slow app before the 504.
	w.in("retry-on conn-failure empty-response")
	w.in("timeout connect 5s")
	w.in("timeout client 30s")
	w.in("timeout http-request 10s")
	w.in("timeout http-keep-alive 10s")
	w.in("timeout queue 30s")
	w.in("timeout server 60s")
	w.in("timeout tunnel 1h")
	w.in("timeout check 5s")
	w.line("")
	// Docker's embedded DNS; a 1s hold keeps server-template slots within about
	// a second of the tasks Swarm runs.
	w.line("resolvers docker")
	w.in("nameserver dns %s", netip.MustParseAddrPort(o.Nameserver))
	w.in("accepted_payload_size 8192")
	w.in("resolve_retries 3")
	w.in("timeout resolve 1s")
	w.in("timeout retry 1s")
	w.in("hold valid 1s")
	w.in("hold obsolete 1s")
	w.in("hold nx 1s")
	w.in("hold other 1s")
	w.in("hold refused 1s")
	w.in("hold timeout 1s")
	w.line("")
}

// The log ring (see renderGlobal).
const (
	logRing     = "berth_log"
	logRingSize = 1 << 20
)

// MaxLogLine is the longest log line HAProxy writes; a longer one is cut.
const MaxLogLine = 8192

// accessLog is the access log format: one JSON object per request, which
// the controller passes on unchanged (and scans for the fields it counts:
// status, duration_ms, backend and server, left as plain numbers and names).
// Values the client chose (host, path) pass through HAProxy's json
// converter, which escapes them; the others are HAProxy's own names, words
// and numbers. The time is when the request was accepted, in seconds since
// the epoch with milliseconds: the controller writes it as an RFC 3339
// string when it passes the line on (formatting it here, with strftime per
// request, cost HAProxy ~1.3 µs of its ~20 µs per request); level and msg
// match the controller's own records.
var accessLog = strings.Join([]string{
	`{"time":%Ts.%ms`,
	`"level":"INFO"`,
	`"msg":"access"`,
	`"client":"%ci"`,
	`"host":"%[var(txn.berth_host),json(utf8s)]"`,
	`"method":"%HM"`,
	`"path":"%[var(txn.berth_path),json(utf8s)]"`,
	`"status":%ST`,
	`"bytes":%B`,
	`"duration_ms":%Ta`,
	`"backend":"%b"`,
	`"server":"%s"`,
	`"termination":"%tsc"}`,
}, ",")

// bindAddr is where a listener binds: an inherited socket, else the port.
func bindAddr(fd, port int) string {
	if fd != 0 {
		return fmt.Sprintf("fd@%d", fd)
	}
	return fmt.Sprintf(":%d", port)
}

// uses is what of the routing rules the routes need. The frontend carries
// only those: every rule costs every request (about 0.1–0.2 µs each, on
// the bench/proxy machine), and a table of plain host routes, the common
// case, needs 9 of the fifty the full set has. The first route to use an
// option changes the configuration, so it is applied by a (seamless)
// reload instead of a map update, and a client's open connection gets one
// more answer by the old rules. The HTTP → HTTPS redirect is therefore not
// among the options: its rules are always there, since an HTTPS domain
// starts redirecting the moment its certificate is issued.
type uses struct {
	prefixDepth     int  // the deepest path prefix of an exact host's route, in segments
	wildcards       bool // a route's host is a wildcard
	wildPrefixDepth int  // the deepest path prefix of a wildcard's route
	strip           int  // the most segments a route strips
	maxBody         bool // a route limits the body size
	timeout         bool // a route sets its own timeout
	tags            bool // a route has basic auth or response headers
	redirects       bool // a route redirects elsewhere (all four codes' rules: a code change is a map update)
}

func usesOf(routes []Route) uses {
	var u uses
	for _, r := range routes {
		depth := segments(canonicalPrefix(r.PathPrefix))
		if strings.HasPrefix(r.Host, "*.") {
			u.wildcards = true
			u.wildPrefixDepth = max(u.wildPrefixDepth, depth)
		} else {
			u.prefixDepth = max(u.prefixDepth, depth)
		}
		if r.StripPrefix {
			u.strip = max(u.strip, depth)
		}
		u.maxBody = u.maxBody || r.MaxBody > 0
		u.timeout = u.timeout || r.Timeout > 0
		u.tags = u.tags || r.BasicAuth != nil || len(r.Headers) > 0
		u.redirects = u.redirects || r.Redirect != nil
	}
	return u
}

// redirectCodes are the status codes a redirect may have, if any route has one.
func redirectCodes(used bool) []int {
	if !used {
		return nil
	}
	return []int{301, 302, 307, 308}
}

// renderFrontends writes the HTTP(S) frontend and the metrics frontend.
//
// ACME HTTP-01 challenges are answered before any route applies: no redirect,
// body limit or prefix strip touches them, on HTTP and HTTPS alike.
//
// Routing is a longest-prefix match done with exact lookups (map_str, a tree,
// so order in the map does not matter and "add map" may append anywhere):
// first the bare host, then host + the first 1, 2, … MaxPrefixSegments path
// segments; every hit overwrites the previous one, so the deepest wins, and
// prefixes only ever match whole segments. The prefixes are looked up only
// for a host in the path map (one with path routes): most hosts have none,
// and the lookups are most of a request's routing work. A host none of whose
// keys match is looked up again as the wildcard of its parent domain, so an
// exact host always wins over a wildcard.
//
// Redirects are data too: the target URL comes from the map value and is
// appended to by the request's path and query (after a prefix strip), one
// rule per status code since the code is a keyword. Basic auth and response
// headers are the only per-route rules, named by the route's tag: a userlist
// and a header are configuration, so changing them reloads.
func renderFrontends(w *cfgWriter, o Options, routes []Route, u uses) {
	m, pm := o.MapPath, o.PathMapPath
	w.line("frontend http")
	w.in("bind %s", bindAddr(o.HTTPFD, o.HTTPPort))
	if o.HTTPSPort != 0 {
		// The first certificate is the default one, served when no crt-list
		// entry covers the SNI name.
		w.in("bind %s ssl crt %s crt-list %s alpn h2,http/1.1", bindAddr(o.HTTPSFD, o.HTTPSPort), quote(o.DefaultCertPath), quote(o.CrtListPath))
	}
	w.in("option dontlognull")
	w.in("log-format %s", quote(accessLog))
	w.in("acl berth_acme path_beg %s", ACMEPathPrefix)
	if o.HTTPSPort != 0 {
		w.in("http-request set-header X-Forwarded-Proto %%[ssl_fc,iif(https,http)]")
	} else {
		w.in("http-request set-header X-Forwarded-Proto http")
	}
	w.in("http-request disable-l7-retry if !METH_GET")
	w.in("http-request set-var(txn.berth_path) path")
	w.in("http-request set-var(txn.berth_host) req.hdr(host),field(1,:),lower")
	w.in("http-request set-var(txn.berth_route) var(txn.berth_host),map_str(%s)", m)
	if u.prefixDepth > 0 {
		w.in("http-request set-var(txn.berth_paths) var(txn.berth_host),map_str(%s)", pm)
	}
	for d := 1; d <= u.prefixDepth; d++ {
		w.in("http-request set-var(txn.berth_prefix) path,field(1,/,%d) if { var(txn.berth_paths) -m found }", d+1)
		w.in("http-request set-var(txn.berth_route) var(txn.berth_host),concat(,txn.berth_prefix,),map_str(%s) if { var(txn.berth_paths) -m found }", m)
	}
	// Only a host with no route of its own falls back to the wildcard of its
	// parent ("*.example.com" for a.example.com), one label deep like a TLS
	// wildcard, looked up the same way.
	if u.wildcards {
		w.in("http-request set-var(txn.berth_wild) var(txn.berth_host),field(2,.,0) if !{ var(txn.berth_route) -m found }")
		w.in("http-request set-var(txn.berth_wild) str(*.),concat(,txn.berth_wild,) if { var(txn.berth_wild) -m found }")
		w.in("http-request set-var(txn.berth_route) var(txn.berth_wild),map_str(%s) if { var(txn.berth_wild) -m found }", m)
	}
	if u.wildPrefixDepth > 0 {
		w.in("http-request set-var(txn.berth_wild_paths) var(txn.berth_wild),map_str(%s) if { var(txn.berth_wild) -m found }", pm)
	}
	for d := 1; d <= u.wildPrefixDepth; d++ {
		w.in("http-request set-var(txn.berth_prefix) path,field(1,/,%d) if { var(txn.berth_wild_paths) -m found }", d+1)
		w.in("http-request set-var(txn.berth_route) var(txn.berth_wild),concat(,txn.berth_prefix,),map_str(%s) if { var(txn.berth_wild_paths) -m found }", m)
	}
	// The route's options, split out of its map value: only those some
	// route uses.
	for _, v := range []struct {
		used  bool
		name  string
		field int
		conv  string
	}{
		{u.strip > 0, "strip", 2, ",add(0)"},
		{true, "redirect", 3, ",add(0)"},
		{u.maxBody, "maxbody", 4, ",add(0)"},
		{u.timeout, "timeout", 5, ",add(0)"},
		{u.tags, "tag", 6, ""},
		{u.redirects, "to_code", 7, ",add(0)"},
		{u.redirects, "to_keep", 8, ",add(0)"},
		{u.redirects, "to", 9, ""},
	} {
		if v.used {
			w.in("http-request set-var(txn.berth_%s) var(txn.berth_route),field(%d,|)%s", v.name, v.field, v.conv)
		}
	}
	// Without a TLS bind ssl_fc is always false.
	w.in("http-request redirect scheme https code 308 if { var(txn.berth_redirect) -m int 1 } !{ ssl_fc } !berth_acme")
	for _, r := range routes {
		if r.BasicAuth == nil {
			continue
		}
		tag := RouteTag(r)
		w.in("http-request auth realm %s if { var(txn.berth_tag) -m str %s } !{ http_auth(%s) } !berth_acme", quote(r.Host), tag, userlistName(r))
		// The app never sees the password.
		w.in("http-request del-header authorization if { var(txn.berth_tag) -m str %s } !berth_acme", tag)
	}
	if u.maxBody {
		// Judged by Content-Length: chunked bodies without one are not limited.
		w.in("http-request deny deny_status 413 if { var(txn.berth_maxbody) -m int gt 0 } { req.hdr_val(content-length),sub(txn.berth_maxbody) gt 0 } !berth_acme")
	}
	for d := 1; d <= u.strip; d++ {
		w.in("http-request set-path /%%[path,field(%d,/,0)] if { var(txn.berth_strip) -m int %d } !berth_acme", d+2, d)
	}
	for _, code := range redirectCodes(u.redirects) {
		w.in("http-request redirect location %%[var(txn.berth_to)]%%[pathq] code %d if { var(txn.berth_to_code) -m int %d } { var(txn.berth_to_keep) -m int 1 } !berth_acme", code, code)
		w.in("http-request redirect location %%[var(txn.berth_to)] code %d if { var(txn.berth_to_code) -m int %d } !{ var(txn.berth_to_keep) -m int 1 } !berth_acme", code, code)
	}
	// After-response rules also reach the responses HAProxy makes itself
	// (redirects, 401, 413), so a security header is never missing.
	for _, r := range routes {
		for _, h := range r.Headers {
			w.in("http-after-response set-header %s %s if { var(txn.berth_tag) -m str %s }", quote(h.Name), quote(h.Value), RouteTag(r))
		}
	}
	w.in("use_backend %s if berth_acme", ACMEBackend)
	w.in("use_backend %%[var(txn.berth_route),field(1,|)] if { var(txn.berth_route) -m found }")
	w.in("default_backend %s", DefaultBackend)
	w.line("")
	w.line("frontend stats")
	w.in("bind :%d", o.StatsPort)
	w.in("no log")
	w.in("http-request use-service prometheus-exporter if { path /metrics }")
	w.in("http-request return status 404")
	w.line("")
}

func userlistName(r Route) string { return "auth_" + RouteTag(r) }

// renderUserlists writes one userlist per route with basic auth.
func renderUserlists(w *cfgWriter, routes []Route) {
	for _, r := range routes {
		if r.BasicAuth == nil {
			continue
		}
		w.line("userlist %s", userlistName(r))
		w.in("user %s password %s", quote(r.BasicAuth.User), quote(r.BasicAuth.PasswordHash))
		w.line("")
	}
}

// compressTypes are the response types a compressing backend gzips: text
// formats that shrink, not images or archives that already are compressed.
const compressTypes = "text/html text/plain text/css text/javascript application/javascript application/json application/xml image/svg+xml"

const unroutedPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>503 No app here</title></head>` +
	`<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>No app here yet</h1>` +
	`<p>This domain is not routed to a running app. If you just added it, it can take a few seconds.</p>` +
	`<p><small>Served by Berth</small></p></body></html>`

func renderDefaultBackend(w *cfgWriter) {
	w.line("backend %s", DefaultBackend)
	w.in("http-request return status 503 content-type %s string %s", quote("text/html; charset=utf-8"), quote(unroutedPage))
	w.line("")
}

func renderACMEBackend(w *cfgWriter, o Options) {
	w.line("backend %s", ACMEBackend)
	w.in("server controller %s", netip.MustParseAddrPort(o.ChallengeAddr))
	w.line("")
}

func renderApp(w *cfgWriter, a App, o Options, u uses) {
	w.line("backend %s", quote(BackendName(a.ID)))
	if a.Name != "" {
		w.in("description %s", quote(a.Name))
	}
	w.in("balance roundrobin")
	if a.Compress {
		w.in("compression algo gzip")
		w.in("compression type %s", compressTypes)
	}
	rels := slices.Clone(a.Releases)
	slices.SortFunc(rels, func(x, y Release) int { return strings.Compare(x.Service, y.Service) })
	if len(rels) > 0 && rels[0].Health != nil {
		h := rels[0].Health
		w.in("option httpchk GET %s", quote(h.Path))
		if h.ExpectStatus != 0 {
			w.in("http-check expect status %d", h.ExpectStatus)
		}
	}
	// set-timeout needs backend capabilities, so the route's timeout (a
	// transaction variable set by the frontend) is applied here.
	if u.timeout {
		w.in("http-request set-timeout server var(txn.berth_timeout) if { var(txn.berth_timeout) -m int gt 0 }")
	}
	if a.Address != "" {
		// Validated as IP:port: nothing to quote.
		w.in("option httpchk GET /healthz")
		w.in("server control %s check inter 2s", a.Address)
	}
	for _, r := range rels {
		check := ""
		if r.Health != nil {
			check = " inter " + dur(cmp.Or(r.Health.Interval, DefaultHealthInterval))
		}
		// init-addr last: after a reload, start from the address the old
		// worker had (server-state-file), not unresolved until DNS answers.
		w.in("server-template %s %d %s resolvers docker resolve-prefer ipv4 init-addr last,none check%s weight %d",
			quote(ServerPrefix(r.Service)), o.SlotsPerRelease, quote("tasks."+r.Service+":"+strconv.Itoa(r.Port)), check, r.Weight)
	}
	w.line("")
}

// dur formats d for HAProxy in the largest unit that represents it exactly.
func dur(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
}

// quote makes s one word of an HAProxy configuration line that reads back as
// exactly s. It uses weak (double) quoting, where HAProxy still interprets
// '\' and '$' (environment variables), so those and '"' are backslash-escaped;
// every control or non-ASCII byte, line breaks included, becomes \xNN, so the
// word can never end the line, the quoted string or start a comment. It is the
// only way user-controlled text reaches the configuration, always after
// validation. NUL is the one byte it cannot carry (HAProxy 2.6 truncates the
// word there); validation rejects control characters before quote sees them.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c == '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
