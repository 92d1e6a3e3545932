package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits enforced by Validate. Everything that reaches the HAProxy
// configuration or the route map is checked against these first.
const (
	// MaxPrefixSegments is the deepest path prefix a route may have: the
	// frontend looks up host+prefix for each depth up to this one.
	MaxPrefixSegments = 4
	MaxHostLen        = 253
	MaxPathLen        = 256
	MaxNameLen        = 200
	MinTimeout        = time.Second
	MaxTimeout        = time.Hour
	MinMaxBody        = 1024
	MaxWeight         = 256
	MaxRedirectLen    = 512
	MaxHeaders        = 10
	MaxHeaderNameLen  = 64
	MaxHeaderValueLen = 512
	MaxAuthUserLen    = 64
)

// FieldError is a validation failure of one field of a Table. Field is a path
// such as "routes[2].host"; Message says what is allowed.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

var (
	appIDRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	serviceRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	labelRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// pathRe is the whole alphabet of path prefixes and health check paths:
	// RFC 3986 unreserved characters and '/'. It leaves out everything HAProxy
	// or a map file would interpret: whitespace, quotes, '#', '%', '$', '\'.
	pathRe = regexp.MustCompile(`^[A-Za-z0-9._~/-]+$`)
)

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate reports the first problem of t as a *FieldError, or nil.
func (t Table) Validate() error {
	apps := make(map[string]bool, len(t.Apps))
	for i, a := range t.Apps {
		if err := validateApp(fmt.Sprintf("apps[%d]", i), a); err != nil {
			return err
		}
		if apps[a.ID] {
			return fieldErr(fmt.Sprintf("apps[%d].id", i), "duplicate app id %q", a.ID)
		}
		apps[a.ID] = true
	}
	seen := make(map[string]bool, len(t.Routes))
	for i, r := range t.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if err := validateRoute(f, r, apps); err != nil {
			return err
		}
		k := MapKey(r)
		if seen[k] {
			return fieldErr(f+".path_prefix", "another route already serves host %q with path prefix %q", r.Host, canonicalPrefix(r.PathPrefix))
		}
		seen[k] = true
	}
	return nil
}

// ValidRoutes returns t without the routes and apps that fail validation, and
// one error per dropped item, so that one bad route never takes the others
// down: the controller applies what is left. An app is dropped when any of its
// releases is invalid; routes to a dropped app are dropped too. Of duplicate
// apps or (host, path prefix) pairs the first one wins.
func ValidRoutes(t Table) (Table, []error) {
	var errs []error
	out := Table{Version: t.Version}
	apps := make(map[string]bool, len(t.Apps))
	for i, a := range t.Apps {
		f := fmt.Sprintf("apps[%d]", i)
		if err := validateApp(f, a); err != nil {
			errs = append(errs, err)
			continue
		}
		if apps[a.ID] {
			errs = append(errs, fieldErr(f+".id", "duplicate app id %q", a.ID))
			continue
		}
		apps[a.ID] = true
		out.Apps = append(out.Apps, a)
	}
	seen := make(map[string]bool, len(t.Routes))
	for i, r := range t.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if err := validateRoute(f, r, apps); err != nil {
			errs = append(errs, err)
			continue
		}
		k := MapKey(r)
		if seen[k] {
			errs = append(errs, fieldErr(f+".path_prefix", "another route already serves host %q with path prefix %q", r.Host, canonicalPrefix(r.PathPrefix)))
			continue
		}
		seen[k] = true
		out.Routes = append(out.Routes, r)
	}
	return out, errs
}

func validateApp(f string, a App) error {
	if !appIDRe.MatchString(a.ID) {
		return fieldErr(f+".id", "must match %s", appIDRe)
	}
	if err := validateName(a.Name); err != nil {
		return fieldErr(f+".name", "%s", err)
	}
	if a.Address != "" {
		if ap, err := netip.ParseAddrPort(a.Address); err != nil || ap.Port() == 0 {
			return fieldErr(f+".address", "must be IP:port, got %q", a.Address)
		}
		if len(a.Releases) > 0 {
			return fieldErr(f+".address", "an app has a fixed address or releases, not both")
		}
	}
	services := make(map[string]bool, len(a.Releases))
	var health *HealthCheck
	for i, rel := range a.Releases {
		rf := fmt.Sprintf("%s.releases[%d]", f, i)
		if !serviceRe.MatchString(rel.Service) {
			return fieldErr(rf+".service", "must match %s", serviceRe)
		}
		if services[rel.Service] {
			return fieldErr(rf+".service", "duplicate service %q in app", rel.Service)
		}
		services[rel.Service] = true
		if rel.Port < 1 || rel.Port > 65535 {
			return fieldErr(rf+".port", "must be 1–65535, got %d", rel.Port)
		}
		if rel.Weight < 0 || rel.Weight > MaxWeight {
			return fieldErr(rf+".weight", "must be 0–%d, got %d", MaxWeight, rel.Weight)
		}
		// HAProxy 2.6 has one HTTP check per backend, so the releases of an app
		// may differ in check interval only.
		if i > 0 && (rel.Health != nil) != (a.Releases[0].Health != nil) {
			return fieldErr(rf+".health", "all releases of an app must have a health check, or none")
		}
		if rel.Health == nil {
			continue
		}
		h := rel.Health
		if err := validatePath(h.Path); err != nil {
			return fieldErr(rf+".health.path", "%s", err)
		}
		if h.Interval != 0 && (h.Interval < MinTimeout || h.Interval > MaxTimeout) {
			return fieldErr(rf+".health.interval", "must be 0 (default %s) or %s–%s, got %s", DefaultHealthInterval, MinTimeout, MaxTimeout, h.Interval)
		}
		if h.ExpectStatus != 0 && (h.ExpectStatus < 100 || h.ExpectStatus > 599) {
			return fieldErr(rf+".health.expect_status", "must be 0 (any 2xx/3xx) or 100–599, got %d", h.ExpectStatus)
		}
		if health == nil {
			health = h
		} else if h.Path != health.Path || h.ExpectStatus != health.ExpectStatus {
			return fieldErr(rf+".health", "all releases of an app must check the same path and status (HAProxy checks per backend)")
		}
	}
	return nil
}

func validateRoute(f string, r Route, apps map[string]bool) error {
	if err := validateRouteHost(r.Host); err != nil {
		return fieldErr(f+".host", "%s", err)
	}
	if r.PathPrefix != "" {
		if err := validatePath(r.PathPrefix); err != nil {
			return fieldErr(f+".path_prefix", "%s", err)
		}
		if r.PathPrefix != "/" && strings.HasSuffix(r.PathPrefix, "/") {
			return fieldErr(f+".path_prefix", "must not end with '/' (prefixes match whole segments)")
		}
		if n := segments(r.PathPrefix); n > MaxPrefixSegments {
			return fieldErr(f+".path_prefix", "at most %d segments, got %d", MaxPrefixSegments, n)
		}
	}
	if r.Redirect != nil {
		if err := CheckRedirectURL(r.Redirect.To, r.Redirect.KeepPath); err != nil {
			return fieldErr(f+".redirect.to", "%s", err)
		}
		if !validRedirectCode(r.Redirect.Code) {
			return fieldErr(f+".redirect.code", "must be 301, 302, 307 or 308, got %d", r.Redirect.Code)
		}
	}
	if (r.Redirect == nil || r.AppID != "") && !apps[r.AppID] {
		return fieldErr(f+".app_id", "no app with id %q in the table", r.AppID)
	}
	if a := r.BasicAuth; a != nil {
		if err := CheckAuthUser(a.User); err != nil {
			return fieldErr(f+".basic_auth.user", "%s", err)
		}
		if !cryptHashRe.MatchString(a.PasswordHash) {
			return fieldErr(f+".basic_auth.password_hash", "must be a bcrypt ($2a$, $2b$, $2y$) or SHA-crypt ($5$, $6$) hash")
		}
	}
	if err := CheckHeaders(r.Headers); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return fieldErr(f+"."+fe.Field, "%s", fe.Message)
		}
		return err
	}
	if r.Timeout != 0 && (r.Timeout < MinTimeout || r.Timeout > MaxTimeout) {
		return fieldErr(f+".timeout", "must be 0 (default) or %s–%s, got %s", MinTimeout, MaxTimeout, r.Timeout)
	}
	if r.Timeout%time.Millisecond != 0 {
		return fieldErr(f+".timeout", "must be a whole number of milliseconds")
	}
	if r.MaxBody != 0 && r.MaxBody < MinMaxBody {
		return fieldErr(f+".max_body", "must be 0 (unlimited) or at least %d bytes, got %d", MinMaxBody, r.MaxBody)
	}
	return nil
}

// validateRouteHost accepts what validateHost does plus wildcard hosts: one
// leading "*." label before a valid host ("*.example.com"), matching one label
// as TLS wildcards do.
func validateRouteHost(h string) error {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		if len(h) > MaxHostLen {
			return fmt.Errorf("at most %d characters, got %d", MaxHostLen, len(h))
		}
		if err := validateHost(rest); err != nil {
			return fmt.Errorf("wildcard: %s", err)
		}
		return nil
	}
	return validateHost(h)
}

// validateHost accepts lowercase RFC 1123 host names only: no IP literals, no
// wildcards, no trailing dot.
func validateHost(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("required")
	case len(h) > MaxHostLen:
		return fmt.Errorf("at most %d characters, got %d", MaxHostLen, len(h))
	case strings.HasSuffix(h, "."):
		return fmt.Errorf("must not end with a dot")
	case strings.Contains(h, "*"):
		return fmt.Errorf("'*' is allowed only as a whole leading label of a route's host (*.example.com)")
	case strings.ToLower(h) != h:
		return fmt.Errorf("must be lowercase")
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return fmt.Errorf("must be a DNS name, not an IP address")
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if len(l) > 63 {
			return fmt.Errorf("label %.20q… longer than 63 characters", l)
		}
		if !labelRe.MatchString(l) {
			return fmt.Errorf("label %q: letters a–z, digits and inner hyphens only (RFC 1123)", l)
		}
	}
	// An all-numeric top label is how IPv4-looking names ("1.2.3", "10") end.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("top-level label must not be numeric")
	}
	return nil
}

// validatePath checks a path prefix or health check path: absolute, from the
// pathRe alphabet, no empty, "." or ".." segments.
func validatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("required")
	case len(p) > MaxPathLen:
		return fmt.Errorf("at most %d characters, got %d", MaxPathLen, len(p))
	case p[0] != '/':
		return fmt.Errorf("must start with '/'")
	case !pathRe.MatchString(p):
		return fmt.Errorf("only the characters A–Z a–z 0–9 . _ ~ / - are allowed")
	}
	if p == "/" {
		return nil
	}
	for i, s := range strings.Split(strings.TrimSuffix(p[1:], "/"), "/") {
		switch s {
		case "":
			return fmt.Errorf("empty segment %d", i+1)
		case ".", "..":
			return fmt.Errorf("%q segments are not allowed", s)
		}
	}
	return nil
}

func validateName(n string) error {
	if len(n) > MaxNameLen {
		return fmt.Errorf("at most %d bytes, got %d", MaxNameLen, len(n))
	}
	if !utf8.ValidString(n) {
		return fmt.Errorf("must be valid UTF-8")
	}
	for _, r := range n {
		if unicode.IsControl(r) {
			return fmt.Errorf("must not contain control characters")
		}
	}
	return nil
}

// canonicalPrefix maps the two spellings of "every path" to "/".
func canonicalPrefix(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// segments counts the segments of a canonical path prefix ("/" has none).
func segments(p string) int {
	p = strings.Trim(p, "/")
	if p == "" {
		return 0
	}
	return strings.Count(p, "/") + 1
}

var (
	// redirectRe is the whole alphabet of redirect targets: they travel in
	// a map value (no spaces, no '|', which separates its fields) and end up
	// in a Location header, so no quotes, '%', '#', '\', '$' or '?'.
	redirectRe  = regexp.MustCompile(`^https?://[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$`)
	authUserRe  = regexp.MustCompile(`^[A-Za-z0-9._@+-]+$`)
	cryptHashRe = regexp.MustCompile(`^(\$2[aby]\$[0-3][0-9]\$[./A-Za-z0-9]{53}|\$[56]\$(rounds=[0-9]{1,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43,86})$`)
	// headerNameRe is a subset of the RFC 9110 token: the characters real
	// header names use, none of which HAProxy or a shell would interpret.
	headerNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)
)

// refusedHeaders may not be set by a route: hop-by-hop and framing headers
// would break the connection or the body, Set-Cookie would hand every
// visitor the same cookie, and the rest belong to Berth's redirects and
// basic auth.
var refusedHeaders = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true, "te": true,
	"trailer": true, "upgrade": true, "content-length": true, "content-encoding": true, "set-cookie": true,
	"location": true, "www-authenticate": true, "proxy-authenticate": true, "date": true,
}

func validRedirectCode(c int) bool { return c == 301 || c == 302 || c == 307 || c == 308 }

// CheckRedirectURL reports why u cannot be a redirect target, or nil: an
// absolute http or https URL to a DNS name (optionally with a port), its
// path from the path alphabet, no user info, query or fragment. With
// keepPath the request's path is appended, so u must not end with '/'.
func CheckRedirectURL(u string, keepPath bool) error {
	switch {
	case u == "":
		return fmt.Errorf("required, e.g. https://www.example.com")
	case len(u) > MaxRedirectLen:
		return fmt.Errorf("at most %d characters, got %d", MaxRedirectLen, len(u))
	case !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://"):
		return fmt.Errorf("must start with http:// or https://")
	case !redirectRe.MatchString(u):
		return fmt.Errorf("must be scheme://host[:port][/path] with a lowercase host and a path of A–Z a–z 0–9 . _ ~ / - only (no query, fragment, spaces or quotes)")
	case keepPath && strings.HasSuffix(u, "/"):
		return fmt.Errorf("must not end with '/' when the path is kept (the request path starts with one)")
	}
	rest := u[strings.Index(u, "://")+3:]
	hostPort, path, _ := strings.Cut(rest, "/")
	host, port, hasPort := strings.Cut(hostPort, ":")
	if err := validateHost(host); err != nil {
		return fmt.Errorf("host: %s", err)
	}
	if hasPort {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port must be 1–65535")
		}
	}
	if path != "" {
		if err := validatePath("/" + path); err != nil {
			return fmt.Errorf("path: %s", err)
		}
	}
	return nil
}

// CheckAuthUser reports why u cannot be a basic auth user name, or nil.
func CheckAuthUser(u string) error {
	switch {
	case u == "":
		return fmt.Errorf("required")
	case len(u) > MaxAuthUserLen:
		return fmt.Errorf("at most %d characters, got %d", MaxAuthUserLen, len(u))
	case !authUserRe.MatchString(u):
		return fmt.Errorf("only the characters A–Z a–z 0–9 . _ @ + - are allowed")
	}
	return nil
}

// CheckHeaders reports the first header that may not be set on a route's
// responses as a *FieldError ("headers[1].value"), or nil. Values are
// printable ASCII without '%' (HAProxy would read "%[" as an expression).
func CheckHeaders(hs []Header) error {
	if len(hs) > MaxHeaders {
		return fieldErr("headers", "at most %d headers, got %d", MaxHeaders, len(hs))
	}
	seen := map[string]bool{}
	for i, h := range hs {
		f := fmt.Sprintf("headers[%d]", i)
		name := strings.ToLower(h.Name)
		switch {
		case h.Name == "":
			return fieldErr(f+".name", "required")
		case len(h.Name) > MaxHeaderNameLen:
			return fieldErr(f+".name", "at most %d characters, got %d", MaxHeaderNameLen, len(h.Name))
		case !headerNameRe.MatchString(h.Name):
			return fieldErr(f+".name", "letters, digits and inner hyphens only, e.g. X-Frame-Options")
		case refusedHeaders[name]:
			return fieldErr(f+".name", "%s cannot be set by a domain (hop-by-hop, framing, cookies, redirects and authentication belong to the app or to Berth)", h.Name)
		case seen[name]:
			return fieldErr(f+".name", "%s is set twice", h.Name)
		case h.Value == "":
			return fieldErr(f+".value", "required")
		case len(h.Value) > MaxHeaderValueLen:
			return fieldErr(f+".value", "at most %d characters, got %d", MaxHeaderValueLen, len(h.Value))
		case strings.TrimSpace(h.Value) != h.Value:
			return fieldErr(f+".value", "must not start or end with a space")
		}
		seen[name] = true
		for j := 0; j < len(h.Value); j++ {
			if c := h.Value[j]; c < 0x20 || c > 0x7e {
				return fieldErr(f+".value", "printable ASCII only (no line breaks or control characters)")
			} else if c == '%' {
				return fieldErr(f+".value", "must not contain '%%'")
			}
		}
	}
	return nil
}

// CheckHost reports why h cannot be a route's host (lowercase RFC 1123 name,
// no IP literal, no wildcard), or nil.
func CheckHost(h string) error { return validateHost(h) }

// CheckPathPrefix reports why p cannot be a route's path prefix, or nil.
func CheckPathPrefix(p string) error {
	if p == "/" {
		return nil
	}
	if err := validateRoute("route", Route{Host: "example.com", PathPrefix: p, AppID: "x"}, map[string]bool{"x": true}); err != nil {
		return fmt.Errorf("%s", err.(*FieldError).Message)
	}
	return nil
}
