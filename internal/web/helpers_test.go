package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// testCSP is the policy the server wrapper sets; the tests set the same one
// so a page that depends on anything inline breaks here first.
const testCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// fakeEngine returns a fixed status; the UI only reads it.
type fakeEngine struct{ status orchestrator.EngineStatus }

var _ orchestrator.Engine = (*fakeEngine)(nil)

func (f *fakeEngine) Ping(context.Context) error                       { return nil }
func (f *fakeEngine) Status(context.Context) orchestrator.EngineStatus { return f.status }
func (f *fakeEngine) Close() error                                     { return nil }
func (f *fakeEngine) Bootstrap(context.Context, orchestrator.BootstrapOptions) (orchestrator.BootstrapResult, error) {
	return orchestrator.BootstrapResult{}, nil
}

func healthyStatus() orchestrator.EngineStatus {
	return orchestrator.EngineStatus{
		Reachable: true, ServerVersion: "20.10.24+dfsg1", APIVersion: "1.41", OS: "linux", Arch: "amd64",
		KernelVersion: "6.1.0-28-amd64", NCPU: 4, MemoryBytes: 8 << 30,
		Swarm: orchestrator.SwarmStatus{
			State: orchestrator.SwarmActive, NodeID: "k3x9q2m7w1v8r5t0y4u6i2o9p", IsManager: true,
			Nodes: []orchestrator.Node{
				{ID: "k3x9q2m7w1v8r5t0y4u6i2o9p", Hostname: "berth-1", Role: "manager", State: "ready", Availability: "active", Address: "10.0.0.11", EngineVersion: "20.10.24", NCPU: 4, MemoryBytes: 8 << 30, Leader: true},
				{ID: "a8f7d6s5g4h3j2k1l0z9x8c7v", Hostname: "worker-eu-2", Role: "worker", State: "ready", Availability: "active", Address: "10.0.0.12", EngineVersion: "20.10.24", NCPU: 8, MemoryBytes: 16 << 30},
				{ID: "q1w2e3r4t5y6u7i8o9p0a1s2d", Hostname: "worker-eu-3", Role: "worker", State: "down", Availability: "drain", Address: "10.0.0.13", EngineVersion: "20.10.21", NCPU: 2, MemoryBytes: 4 << 30},
			},
		},
	}
}

const sampleOpenAPI = `{
  "openapi": "3.1.0",
  "info": {"title": "Berth API", "version": "0.1.0", "description": "Manage Berth over HTTP.\n\nAll requests use JSON."},
  "tags": [{"name": "Auth", "description": "Tokens for the CLI."}, {"name": "System"}],
  "paths": {
    "/api/v1/tokens": {
      "post": {
        "operationId": "create-token", "summary": "Create an API token", "tags": ["Auth"],
        "description": "Returns the secret once; store it. Send it as ` + "`Authorization: Bearer <token>`" + `.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateTokenBody"}}}},
        "responses": {
          "201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}},
          "422": {"description": "Unprocessable Entity", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ErrorModel"}}}}
        }
      },
      "get": {"operationId": "list-tokens", "summary": "List API tokens", "tags": ["Auth"],
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "description": "Page size"}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}}}}}}
    },
    "/api/v1/tokens/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "delete": {"operationId": "revoke-token", "summary": "Revoke an API token", "tags": ["Auth"], "responses": {"204": {"description": "No Content"}}}
    },
    "/api/v1/system": {
      "get": {"operationId": "get-system", "summary": "Engine and swarm status", "tags": ["System"], "responses": {"200": {"description": "OK"}}}
    }
  },
  "components": {"schemas": {
    "CreateTokenBody": {"type": "object", "required": ["name"], "properties": {
      "$schema": {"type": "string", "format": "uri", "readOnly": true},
      "name": {"type": "string", "minLength": 1, "maxLength": 64, "description": "What the token is for"},
      "expires_in": {"type": ["integer", "null"], "description": "Lifetime in seconds", "minimum": 60},
      "labels": {"type": "object", "properties": {"env": {"type": "string", "enum": ["dev", "prod"]}}}
    }},
    "Token": {"type": "object", "properties": {"id": {"type": "string"}, "secret": {"type": "string", "writeOnly": false}}},
    "ErrorModel": {"type": "object", "properties": {"title": {"type": "string"}, "status": {"type": "integer", "format": "int64"}}}
  }}
}`

type testEnv struct {
	t        *testing.T
	srv      *httptest.Server
	db       *store.DB
	auth     *auth.Service
	engine   *fakeEngine
	releases *fakeReleases
	deploys  *deploy.Engine
	apps     *deploy.Manager
	logs     *strings.Builder
	setup    atomic.Bool               // what SetupAllowed answers
	frozen   atomic.Pointer[time.Time] // when set, the auth service's clock stands still
}

func (e *testEnv) now() time.Time {
	if t := e.frozen.Load(); t != nil {
		return *t
	}
	return time.Now()
}

type envOption func(*Deps)

func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	e := &testEnv{t: t, db: db, engine: &fakeEngine{status: healthyStatus()}, releases: newFakeReleases(), logs: &strings.Builder{}}
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	e.auth = auth.New(db, auth.Options{Now: e.now, Keys: keys})
	e.setup.Store(true)
	e.deploys = deploy.NewEngine(db, e.releases, keys, slog.New(slog.DiscardHandler), deploy.Options{PollInterval: 10 * time.Millisecond, ProblemGrace: 200 * time.Millisecond, HealthTimeout: 10 * time.Second})
	e.apps = deploy.NewManager(db, keys, e.releases, e.deploys)
	d := Deps{
		Auth: e.auth, Engine: e.engine, Apps: e.apps,
		Log:             slog.New(slog.NewTextHandler(e.logs, nil)),
		SessionLifetime: time.Hour,
		SetupAllowed:    func(*http.Request) bool { return e.setup.Load() },
		OpenAPI:         func() []byte { return []byte(sampleOpenAPI) },
	}
	for _, o := range opts {
		o(&d)
	}
	mux := http.NewServeMux()
	Register(mux, d)
	e.srv = httptest.NewServer(serverWrapper(mux))
	t.Cleanup(e.srv.Close)
	return e
}

// runDeployments starts the deployment engine against the fake releases
// until the test ends. Tests that only look at queued deployments leave it off.
func (e *testEnv) runDeployments() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.deploys.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// serverWrapper stands in for the server's own middleware: a request id and
// the security headers.
func serverWrapper(h http.Handler) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := "req-" + strconv.FormatInt(n.Add(1), 10)
		w.Header().Set("Content-Security-Policy", testCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}

// browser is an HTTP client with its own cookies that does not follow
// redirects, so tests can assert on them.
type browser struct {
	e *testEnv
	c *http.Client
}

func (e *testEnv) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (p reply) location() string { return p.header.Get("Location") }

func (b *browser) do(req *http.Request) reply {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// get fetches path; headers are given as "Name: value" strings.
func (b *browser) get(path string, headers ...string) reply {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return b.do(req)
}

// post sends a form; headers are given as "Name: value" strings.
func (b *browser) post(path string, form url.Values, headers ...string) reply {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf returns the CSRF token of the first form on the page at path.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	p := b.get(path)
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("GET %s: no csrf_token in page (status %d)", path, p.status)
	}
	return m[1]
}

const (
	ownerEmail    = "ada@example.com"
	ownerPassword = "correct horse battery"
)

// setupOwner runs first-run setup through the form and leaves b signed in.
func (b *browser) setupOwner() {
	b.e.t.Helper()
	tok := b.csrf("/setup")
	p := b.post("/setup", url.Values{
		"csrf_token": {tok}, "email": {ownerEmail}, "name": {"Ada Lovelace"}, "organization": {"Analytical Engines"},
		"password": {ownerPassword}, "password_confirm": {ownerPassword},
	})
	if p.status != http.StatusSeeOther {
		b.e.t.Fatalf("setup: status %d, want 303; body:\n%s", p.status, p.body)
	}
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s: missing %q", what, w)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(body, w) {
			t.Errorf("%s: unexpectedly contains %q", what, w)
		}
	}
}
