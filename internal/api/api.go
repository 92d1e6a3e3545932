// Package api owns Berth's REST API under /api/v1: its operations, their
// authentication, the mapping of domain errors to RFC 9457 problems, and the
// OpenAPI 3.1 document served at /api/openapi.json. Handlers stay thin: they
// translate wire types and call the auth service or the orchestrator.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/version"
)

// Deps is what the API needs from the rest of the control plane.
type Deps struct {
	Auth   *auth.Service
	Engine orchestrator.Engine
	Apps   *deploy.Manager // projects, apps, variables, deployments, logs: mounted only when set
	// ProxyStatus describes the edge proxy for an organization.
	ProxyStatus     func(ctx context.Context, orgID string) (edge.ProxyStatus, error)
	Log             *slog.Logger
	SecureCookies   bool                     // Secure flag on the session cookie
	SessionLifetime time.Duration            // Max-Age of the session cookie
	SetupAllowed    func(*http.Request) bool // auth.SetupAllowed bound to the public URL
	// Requests is an app's traffic through the edge over a window
	// (edge.Router.AppRequests); the requests operation needs it.
	Requests func(appID string, window time.Duration) edge.AppRequests
	// Audit records every state-changing request and every reveal, and
	// serves the audit log operations; nil records nothing.
	Audit *audit.Recorder
	// PublicURL is where clients reach the server (--public-url), for the
	// absolute URLs the API hands out (webhooks); "" uses the request's
	// scheme and host.
	PublicURL string
}

const (
	// SpecPath is where the OpenAPI document is served.
	SpecPath = "/api/openapi.json"
	// Prefix starts every API operation's path.
	Prefix = "/api/v1"

	// maxBodyBytes bounds every request body; the API only takes small JSON documents.
	maxBodyBytes = 64 << 10

	// Security scheme names in the OpenAPI document.
	schemeBearer = "bearerToken"
	schemeCookie = "sessionCookie"
	schemeCSRF   = "csrfHeader"

	metaPublic = "berth.public"
)

// server carries the dependencies the handlers share.
type server struct {
	api  huma.API
	deps Deps
	log  *slog.Logger
}

// Register mounts every /api/v1 operation plus GET /api/openapi.json (OpenAPI
// 3.1) on mux and returns the huma API.
func Register(mux *http.ServeMux, d Deps) huma.API {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.SessionLifetime <= 0 {
		d.SessionLifetime = 7 * 24 * time.Hour
	}
	if d.SetupAllowed == nil {
		// Without a public URL, setup is possible only from the machine itself.
		d.SetupAllowed = func(r *http.Request) bool { return auth.SetupAllowed(r, "") }
	}
	s := &server{deps: d, log: d.Log}

	cfg := huma.DefaultConfig("Berth API", version.Get().Version)
	// The spec is served by specHandler below, at exactly one path; the UI
	// renders the reference page at /api/docs from it.
	cfg.OpenAPIPath = ""
	cfg.DocsPath = ""
	// No $schema links in bodies: responses are plain documents.
	cfg.SchemasPath = ""
	cfg.CreateHooks = nil
	cfg.Info.Description = apiDescription
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		schemeBearer: {
			Type: "http", Scheme: "bearer", BearerFormat: "berth_…",
			Description: "An API token: `Authorization: Bearer berth_…`. Create one with `POST /api/v1/auth/tokens` (what `berth login` does) or `POST /api/v1/tokens`.",
		},
		schemeCookie: {
			Type: "apiKey", In: "cookie", Name: auth.SessionCookie,
			Description: "The browser session set by `POST /api/v1/auth/login`. State-changing requests made with it must also send the session's CSRF token.",
		},
		schemeCSRF: {
			Type: "apiKey", In: "header", Name: auth.CSRFHeader,
			Description: "The session's CSRF token (`csrf_token` in the login and `/me` responses), required with the session cookie on POST, PUT, PATCH and DELETE.",
		},
	}
	cfg.Transformers = append(cfg.Transformers, s.scrubProblem)

	s.api = humago.New(mux, cfg)
	s.api.UseMiddleware(s.record, s.recoverPanics, s.authenticate)

	s.registerSetup()
	s.registerSessions()
	s.registerAccount()
	s.registerTokens()
	s.registerSystem()
	s.registerTeams()
	if d.Apps != nil {
		s.registerProjects()
		s.registerApps()
		s.registerDeployments()
		s.registerEnvVars()
		s.registerLogs()
		s.registerRegistries()
		s.registerConnections()
		s.registerDomains()
		s.registerRequests()
		s.registerBuilds()
		s.registerHooks(mux)
	}
	if d.Audit != nil {
		s.registerAudit()
	}

	mux.Handle("GET "+SpecPath, s.specHandler())
	mux.Handle(Prefix+"/", s.unmatched(mux))
	return s.api
}

const apiDescription = `The REST API of Berth, a self-hosted platform-as-a-service.

**Authentication.** Scripts and the CLI send an API token: ` + "`Authorization: Bearer berth_…`" + `.
Browsers use the session cookie set by ` + "`POST /api/v1/auth/login`" + `; requests that change
state with it must send the session's CSRF token in the ` + "`X-CSRF-Token`" + ` header.
Every operation needs one of the two unless it says otherwise.

**Errors** are RFC 9457 problem documents (` + "`application/problem+json`" + `). Invalid input
answers 422 with one entry per field in ` + "`errors`" + `, whose ` + "`location`" + ` names the field
(` + "`body.email`" + `). Request bodies are JSON, at most 64 KiB (8 MiB for app specs, which carry files), and unknown fields are rejected.`

// register adds an operation. It is the only way operations are added, so
// every one gets the body limit and the error mapping of problem.
func register[I, O any](s *server, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	if op.MaxBodyBytes == 0 { // operations taking app specs, which hold files, set more
		op.MaxBodyBytes = maxBodyBytes
	}
	if !isPublic(&op) {
		declarePermission(&op)
		op.Security = []map[string][]string{{schemeBearer: {}}, {schemeCookie: {}}}
		if !safeMethod(op.Method) {
			op.Security[1] = map[string][]string{schemeCookie: {}, schemeCSRF: {}}
		}
		op.Errors = append(op.Errors, http.StatusUnauthorized, http.StatusForbidden)
	}
	if _, ok := reflect.TypeFor[I]().FieldByName("Body"); ok {
		op.Errors = append(op.Errors, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
	}
	slices.Sort(op.Errors)
	op.Errors = slices.Compact(op.Errors)
	huma.Register(s.api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.problem(ctx, err)
		}
		return out, nil
	})
}

// public marks an operation as callable without credentials. Operations are
// authenticated unless marked: deny by default.
func public(op huma.Operation) huma.Operation {
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata[metaPublic] = true
	op.Security = []map[string][]string{} // documented as "no authentication"
	return op
}

func isPublic(op *huma.Operation) bool {
	v, _ := op.Metadata[metaPublic].(bool)
	return v
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

type exchangeKey struct{}

// exchange is the HTTP request and response behind an operation, for the few
// handlers that need more than their typed input: the client address, the
// host the request came through, the session cookie.
type exchange struct {
	r *http.Request
	w http.ResponseWriter
}

func exchangeFrom(ctx context.Context) exchange {
	x, _ := ctx.Value(exchangeKey{}).(exchange)
	return x
}

// authenticate resolves the caller of every operation not marked public,
// enforces CSRF protection for cookie sessions, checks the operation's
// permission (authorize) and puts the principal in the context. It answers
// 401 or 403 itself.
func (s *server) authenticate(hctx huma.Context, next func(huma.Context)) {
	r, w := humago.Unwrap(hctx)
	ctx := context.WithValue(hctx.Context(), exchangeKey{}, exchange{r: r, w: w})
	op := hctx.Operation()
	if isPublic(op) {
		// Public operations take no credentials, but a browser on another
		// site must not sign someone in (login CSRF) or run setup.
		if !safeMethod(r.Method) && !auth.SameOrigin(r) {
			s.writeProblem(hctx, huma.Error403Forbidden("cross-origin request refused"))
			return
		}
		next(huma.WithContext(hctx, ctx))
		return
	}
	p, err := s.deps.Auth.FromRequest(r.WithContext(ctx))
	if err != nil {
		s.writeProblem(hctx, err)
		return
	}
	if n := audit.NoteFrom(ctx); n != nil {
		n.Principal = &p // from here on, even a refusal is recorded
	}
	if !csrfValid(r, p) {
		s.writeProblem(hctx, huma.Error403Forbidden("missing or invalid CSRF token"))
		return
	}
	if err := authorize(op, p); err != nil {
		s.writeProblem(hctx, err)
		return
	}
	next(huma.WithContext(hctx, auth.WithPrincipal(ctx, p)))
}

// csrfValid applies auth.CSRFValid to a copy of r without its body: the API
// takes the token from the header only, and parsing a form here would read
// the body before the body limit applies.
func csrfValid(r *http.Request, p auth.Principal) bool {
	r2 := r.WithContext(r.Context())
	r2.Body = http.NoBody
	r2.Form, r2.PostForm, r2.MultipartForm = nil, nil, nil
	return auth.CSRFValid(r2, p)
}

// recoverPanics turns a handler panic into a logged 500 problem, so the
// client never sees a dropped connection and nothing leaks.
func (s *server) recoverPanics(hctx huma.Context, next func(huma.Context)) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			op := hctx.Operation()
			s.log.ErrorContext(hctx.Context(), "api handler panicked", "operation", op.OperationID, "panic", v)
			huma.WriteErr(s.api, hctx, http.StatusInternalServerError, internalErrorMessage)
		}
	}()
	next(hctx)
}

// principal returns the caller put in ctx by authenticate.
func principal(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	return p, nil
}

// specHandler serves the OpenAPI document, marshalled once on first use (after
// every operation has been registered).
func (s *server) specHandler() http.Handler {
	spec := sync.OnceValues(func() ([]byte, error) { return json.Marshal(s.api.OpenAPI()) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := spec()
		if err != nil {
			s.log.ErrorContext(r.Context(), "marshal openapi document", "err", err)
			writeRawProblem(w, http.StatusInternalServerError, internalErrorMessage)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}

// unmatched answers requests under /api/v1/ that no operation takes, as a
// problem: 405 with Allow when the path exists with other methods, else 404.
func (s *server) unmatched(mux *http.ServeMux) http.Handler {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != Prefix+"/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeRawProblem(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here; use "+strings.Join(allow, ", "))
			return
		}
		writeRawProblem(w, http.StatusNotFound, "no API operation at "+r.URL.Path+"; see "+SpecPath)
	})
}

// writeRawProblem writes a problem outside huma's operations.
func writeRawProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(&huma.ErrorModel{Title: http.StatusText(status), Status: status, Detail: detail})
}
