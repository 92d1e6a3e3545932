package proxy

import (
	"fmt"
	"net/netip"
	"regexp"
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
	if err := validateHost(r.Host); err != nil {
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
	if !apps[r.AppID] {
		return fieldErr(f+".app_id", "no app with id %q in the table", r.AppID)
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
		return fmt.Errorf("wildcard hosts are not supported")
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
