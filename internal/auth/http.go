package auth

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SessionCookie is the name of the browser session cookie.
const SessionCookie = "berth_session"

// CSRFHeader carries the session's CSRF token on state-changing requests made
// by scripts (htmx, fetch); forms send the csrf_token field instead.
const CSRFHeader = "X-CSRF-Token"

// FromRequest resolves the caller from an "Authorization: Bearer" token or,
// failing that, the session cookie.
func (s *Service) FromRequest(r *http.Request) (Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, secret, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return Principal{}, ErrUnauthenticated
		}
		return s.Token(r.Context(), strings.TrimSpace(secret))
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	return s.Session(r.Context(), c.Value)
}

// CSRFValid reports whether a state-changing request may proceed for p.
// Token-authenticated requests carry no ambient credentials and always pass;
// cookie-authenticated ones must present the session's CSRF token (header or
// form field) and must not come from another origin.
func CSRFValid(r *http.Request, p Principal) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	if p.TokenID != "" {
		return true
	}
	if !SameOrigin(r) {
		return false
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRFToken)) == 1
}

// SameOrigin rejects requests a browser marks as cross-site or whose Origin
// names another host. Requests without either header (non-browser clients) pass.
func SameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// SetSessionCookie stores the session secret in the browser.
func SetSessionCookie(w http.ResponseWriter, secret string, secure bool, lifetime time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: secret, Path: "/", MaxAge: int(lifetime.Seconds()),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	})
}

// ClearSessionCookie removes the session cookie.
func ClearSessionCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// ClientIP is the address of the direct peer.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// SetupAllowed reports whether first-run setup may be done through r: from the
// machine itself, or through the configured public URL's host, so a setup page
// is never open to whoever finds the raw port first. A loopback peer that
// forwards for someone else (a reverse proxy on the same host) is not "the
// machine itself".
func SetupAllowed(r *http.Request, publicURL string) bool {
	forwarded := r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" || r.Header.Get("X-Real-Ip") != ""
	if ip := net.ParseIP(ClientIP(r)); ip != nil && ip.IsLoopback() && !forwarded {
		return true
	}
	u, err := url.Parse(publicURL)
	return publicURL != "" && err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal stored by WithPrincipal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
