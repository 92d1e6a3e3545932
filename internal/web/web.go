// Package web owns Berth's browser UI: server-rendered pages (html/template
// with htmx where it helps), their handlers, and the embedded static assets.
// Every page works without JavaScript; nothing inline, so the strict CSP the
// server sets (script-src 'self', style-src 'self') holds.
package web

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/orchestrator"
)

// Deps is what the UI needs from the rest of the server.
type Deps struct {
	Auth            *auth.Service
	Engine          orchestrator.Engine
	Apps            *deploy.Manager // projects, apps and deployments; nil hides them
	Log             *slog.Logger
	SecureCookies   bool
	SessionLifetime time.Duration
	SetupAllowed    func(*http.Request) bool
	OpenAPI         func() []byte // the OpenAPI 3.1 JSON document, for the API reference page
	// ProxyStatus describes the edge proxy for an organization; nil hides the proxy page.
	ProxyStatus func(ctx context.Context, orgID string) (edge.ProxyStatus, error)
	// Requests is an app's traffic through the edge over a window; nil
	// leaves the Requests tab with a note.
	Requests func(appID string, window time.Duration) edge.AppRequests
	// Audit records the UI's form posts and reveals and backs the audit
	// log page; nil records nothing and hides the page.
	Audit *audit.Recorder
	// PublicURL is the address the server is reached at from outside
	// (https://berth.example.com); webhook URLs are built on it. Empty: the
	// address of the request that shows them.
	PublicURL string
}

// Register mounts the UI on mux: /, /setup, /login, /logout, /account (+ token
// and password actions), /settings (+ organization, registries, git
// connections and their repositories and branches under /connections), /members (+
// invitations, roles, grants), /organizations (switch, create), the public
// /invitations/accept, /projects (+ projects, environments, apps
// and their deployments, logs, variables and domains), /system, /proxy (with
// Deps.ProxyStatus), /audit (with Deps.Audit), /api/docs, /static/.
func Register(mux *http.ServeMux, d Deps) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.SetupAllowed == nil {
		d.SetupAllowed = func(r *http.Request) bool { return auth.SetupAllowed(r, "") }
	}
	if d.SessionLifetime == 0 {
		d.SessionLifetime = 7 * 24 * time.Hour
	}
	u := &ui{d: d, assets: loadAssets()}
	u.pages = mustParsePages(u.assets)

	mux.Handle("GET /static/", u.assets.handler())

	mux.HandleFunc("GET /setup", u.setupForm)
	mux.HandleFunc("POST /setup", u.recordSignIn(u.setupSubmit))
	mux.HandleFunc("GET /login", u.loginForm)
	mux.HandleFunc("POST /login", u.recordSignIn(u.loginSubmit))
	mux.HandleFunc("POST /login/two-factor", u.recordSecondStep(u.loginSecondStep))
	mux.HandleFunc("POST /logout", u.signedIn(u.logout))

	mux.HandleFunc("GET /{$}", u.signedIn(u.dashboard))
	mux.HandleFunc("GET /system", u.signedIn(u.system))
	u.registerProjects(mux)
	u.registerSource(mux)
	u.registerSettings(mux)
	u.registerConnections(mux)
	u.registerProxy(mux)
	u.registerAudit(mux)
	u.registerOrganizations(mux)
	u.registerMembers(mux)
	u.registerInvitations(mux)
	mux.HandleFunc("GET /account", u.signedIn(u.account))
	mux.HandleFunc("POST /account/password", u.signedIn(u.changePassword))
	mux.HandleFunc("POST /account/tokens", u.signedIn(u.createToken))
	mux.HandleFunc("POST /account/two-factor", u.signedIn(u.startTwoFactor))
	mux.HandleFunc("POST /account/two-factor/confirm", u.signedIn(u.confirmTwoFactor))
	mux.HandleFunc("POST /account/two-factor/disable", u.signedIn(u.disableTwoFactor))
	mux.HandleFunc("POST /account/two-factor/recovery-codes", u.signedIn(u.regenerateRecoveryCodes))
	mux.HandleFunc("POST /account/tokens/{id}/revoke", u.signedIn(u.revokeToken))
	mux.HandleFunc("GET /api/docs", u.signedIn(u.apiDocs))

	// Everything else that reaches the UI is a page that does not exist. More
	// specific patterns (the API under /api/, /healthz, …) win over this one.
	mux.HandleFunc("/", u.notFound)
}

type ui struct {
	d      Deps
	assets *assets
	pages  map[string]*template.Template
}

// signedIn resolves the browser session and hands the principal to h. Without
// one, the visitor goes to /setup while no owner exists, else to /login with a
// way back. Every state-changing request must carry the session's CSRF token.
func (u *ui) signedIn(h func(http.ResponseWriter, *http.Request, auth.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		p, err := u.session(r)
		if errors.Is(err, auth.ErrUnauthenticated) {
			u.toSignIn(w, r)
			return
		} else if err != nil {
			u.serverError(w, r, "resolve session", err)
			return
		}
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		checked := func(w http.ResponseWriter, r *http.Request) {
			if !auth.CSRFValid(r, p) {
				u.forbidden(w, r, &p)
				return
			}
			if p.TwoFactorMissing && !twoFactorSetupRoute[r.Pattern] {
				// The organization requires two-factor login and this
				// user has none: setting it up is all they may do.
				seeOther(w, r, "/account?notice=two-factor-required#two-factor")
				return
			}
			h(w, r, p)
		}
		if r.Method == http.MethodPost {
			// Every form post is recorded in the audit log, refused ones too.
			u.recordPost(w, r, p, checked)
			return
		}
		checked(w, r)
	}
}

// twoFactorSetupRoute are the routes open to a member of an organization
// that requires two-factor login before they have set it up: the account
// page, enrolment, signing out, and leaving for another organization.
var twoFactorSetupRoute = map[string]bool{
	"GET /account":                     true,
	"POST /account/two-factor":         true,
	"POST /account/two-factor/confirm": true,
	"POST /logout":                     true,
	"POST /organizations/switch":       true,
}

// session resolves the session cookie only: the UI does not accept API tokens,
// so a page never acts with a token's authority.
func (u *ui) session(r *http.Request) (auth.Principal, error) {
	c, err := r.Cookie(auth.SessionCookie)
	if err != nil {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	return u.d.Auth.Session(r.Context(), c.Value)
}

func (u *ui) toSignIn(w http.ResponseWriter, r *http.Request) {
	target := "/login"
	if needed, err := u.d.Auth.SetupNeeded(r.Context()); err != nil {
		u.serverError(w, r, "check setup", err)
		return
	} else if needed {
		target = "/setup"
	} else if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") != "" {
		// htmx would follow a redirect and swap the login page into a fragment.
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// localPath returns next when it is a path on this site, else "/". Browsers
// treat "//host" and "/\host" as other sites, so both are refused.
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// render executes a page into a buffer first, so a template error becomes a
// proper 500 page rather than half a page.
func (u *ui) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	u.renderTemplate(w, r, status, page, "layout", data)
}

func (u *ui) renderTemplate(w http.ResponseWriter, r *http.Request, status int, page, name string, data any) {
	t, ok := u.pages[page]
	if !ok {
		u.serverError(w, r, "render", errors.New("no page "+page))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		if page == "error" {
			// The error page itself failed: plain text is all that is left.
			http.Error(w, "Internal error", http.StatusInternalServerError)
			return
		}
		u.serverError(w, r, "render "+page, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Cookie, HX-Request")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// serverError logs err once and shows a page carrying the request id, so a
// report from a user can be matched to the log line.
func (u *ui) serverError(w http.ResponseWriter, r *http.Request, op string, err error) {
	if u.refused(w, r, err) {
		return
	}
	u.d.Log.ErrorContext(r.Context(), "web: "+op, "err", err, "path", r.URL.Path)
	u.errorPage(w, r, nil, http.StatusInternalServerError, "Something went wrong",
		"Berth hit an internal error while handling this request. It has been logged; if it keeps happening, include the request id below when you report it.")
}

// refused answers a service's refusal (the caller's role does not allow
// it) with a 403 page or notice carrying the service's explanation, which
// is written to be shown. Every error on its way to a 500 passes here, so
// a forbidden action is never reported as Berth's fault.
func (u *ui) refused(w http.ResponseWriter, r *http.Request, err error) bool {
	var msg string
	var af *auth.ForbiddenError
	var df *deploy.ForbiddenError
	switch {
	case errors.As(err, &af):
		msg = af.Message
	case errors.As(err, &df):
		msg = df.Message
	case errors.Is(err, deploy.ErrForbidden):
		// A bare refusal, without a message of its own.
		msg = "your role does not allow this here"
	default:
		return false
	}
	var pp *auth.Principal
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		pp = &p
	}
	u.errorPage(w, r, pp, http.StatusForbidden, "Not allowed", titleCase(sentence(msg))+" Ask an owner or admin of your organization if you need it.")
	return true
}

func (u *ui) forbidden(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	u.errorPage(w, r, p, http.StatusForbidden, "This request could not be verified",
		"The form was sent without a valid security token, or from another site. Go back, reload the page and try again.")
}

func (u *ui) notFound(w http.ResponseWriter, r *http.Request) {
	var pp *auth.Principal
	if p, err := u.session(r); err == nil {
		pp = &p
	}
	u.errorPage(w, r, pp, http.StatusNotFound, "Page not found", "There is nothing at this address. It may have moved, or the link may be mistyped.")
}

func (u *ui) errorPage(w http.ResponseWriter, r *http.Request, p *auth.Principal, status int, heading, msg string) {
	v := errorView{Layout: u.layout(r, p, heading, ""), Status: status, Heading: heading, Message: msg, RequestID: logging.RequestID(r.Context())}
	if r.Header.Get("HX-Request") != "" {
		// A fragment request: show the error in the page's notice area
		// rather than in place of the fragment it asked for.
		w.Header().Set("HX-Retarget", "#flash")
		w.Header().Set("HX-Reswap", "innerHTML")
		u.renderTemplate(w, r, status, "error", "flash-error", v)
		return
	}
	u.render(w, r, status, "error", v)
}
