package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

const (
	ownerEmail    = "ada@example.com"
	ownerPassword = "correct horse battery staple"
	newPassword   = "tr0ub4dor&3-but-longer"
)

// fakeEngine stands in for Docker: the API only relays its status.
type fakeEngine struct{}

var _ orchestrator.Engine = fakeEngine{}

func (fakeEngine) Ping(context.Context) error { return nil }
func (fakeEngine) Status(context.Context) orchestrator.EngineStatus {
	return orchestrator.EngineStatus{Reachable: true, ServerVersion: "28.5.2", APIVersion: "1.51", OS: "linux", Arch: "amd64",
		Swarm: orchestrator.SwarmStatus{State: orchestrator.SwarmActive, IsManager: true, NodeID: "node1"}}
}
func (fakeEngine) Bootstrap(context.Context, orchestrator.BootstrapOptions) (orchestrator.BootstrapResult, error) {
	return orchestrator.BootstrapResult{}, nil
}
func (fakeEngine) Close() error { return nil }

// clock is an injectable, manually advanced time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lockedBuffer collects log output written from handler goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	t     *testing.T
	srv   *httptest.Server
	clock *clock
	logs  *lockedBuffer
	// secrets are the passwords sent and tokens issued: they must never reach the logs.
	secrets *secretSet
}

type secretSet struct {
	mu   sync.Mutex
	list []string
}

type envOptions struct {
	setupDenied bool
}

// newEnv runs the API on a real SQLite store and auth service behind real HTTP.
// At cleanup it checks that no secret the test used reached the logs.
func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &lockedBuffer{}, secrets: &secretSet{}}
	key, _ := secrets.GenerateKey()
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	svc := auth.New(db, auth.Options{Now: e.clock.Now, Keys: keys})
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth:            svc,
		Engine:          fakeEngine{},
		Log:             slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SessionLifetime: time.Hour,
		SetupAllowed:    func(*http.Request) bool { return !opts.setupDenied },
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.remember(ownerPassword, newPassword)
	t.Cleanup(func() {
		logs := e.logs.String()
		e.secrets.mu.Lock()
		defer e.secrets.mu.Unlock()
		for _, s := range e.secrets.list {
			if strings.Contains(logs, s) {
				t.Errorf("a secret (%.8s…) appears in the logs:\n%s", s, logs)
			}
		}
	})
	return e
}

func (e *env) remember(secrets ...string) {
	e.secrets.mu.Lock()
	defer e.secrets.mu.Unlock()
	e.secrets.list = append(e.secrets.list, secrets...)
}

// request describes one API call.
type request struct {
	method, path string
	body         any    // marshalled as JSON
	raw          string // sent verbatim when body is nil
	bearer       string
	session      *session
	csrf         bool              // send the session's CSRF token
	header       map[string]string // extra headers
}

type session struct {
	cookie *http.Cookie
	csrf   string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

type problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
		Value    any    `json:"value"`
	} `json:"errors"`
}

func (r response) problem(t *testing.T) problem {
	t.Helper()
	var p problem
	r.json(t, &p)
	return p
}

// do makes the call. Every error answer must be a problem document without
// internals.
func (e *env) do(req request) response {
	t := e.t
	t.Helper()
	var body io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	} else if req.raw != "" {
		body = strings.NewReader(req.raw)
	}
	hr, err := http.NewRequest(req.method, e.srv.URL+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+req.bearer)
	}
	if req.session != nil {
		hr.AddCookie(req.session.cookie)
		if req.csrf {
			hr.Header.Set(auth.CSRFHeader, req.session.csrf)
		}
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header, body: b}
	if res.StatusCode >= 400 {
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: %d answered with Content-Type %q, want application/problem+json: %s", req.method, req.path, res.StatusCode, ct, b)
		}
		for _, leak := range []string{"goroutine", ".go:", "runtime.", "sql", "SQL"} {
			if bytes.Contains(b, []byte(leak)) {
				t.Errorf("%s %s: error body contains %q: %s", req.method, req.path, leak, b)
			}
		}
		var p problem
		if err := json.Unmarshal(b, &p); err != nil || p.Status != res.StatusCode {
			t.Errorf("%s %s: not a problem document for %d: %s", req.method, req.path, res.StatusCode, b)
		}
		for _, d := range p.Errors {
			if d.Value != nil {
				t.Errorf("%s %s: problem echoes a value: %s", req.method, req.path, b)
			}
		}
	}
	return out
}

func (e *env) expect(want int, req request) response {
	e.t.Helper()
	res := e.do(req)
	if res.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", req.method, req.path, res.status, want, res.body)
	}
	return res
}

func (e *env) setup() {
	e.t.Helper()
	e.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/setup",
		body: map[string]string{"email": ownerEmail, "password": ownerPassword, "name": "Ada", "organization": "Acme"}})
}

func (e *env) login(password string) *session {
	e.t.Helper()
	res := e.expect(http.StatusOK, request{method: "POST", path: "/api/v1/auth/login",
		body: map[string]string{"email": ownerEmail, "password": password}})
	var out api.LoginResult
	res.json(e.t, &out)
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if c.Name == auth.SessionCookie {
			e.remember(c.Value, out.CSRFToken)
			return &session{cookie: c, csrf: out.CSRFToken}
		}
	}
	e.t.Fatalf("login set no %s cookie: %v", auth.SessionCookie, res.header)
	return nil
}

func (e *env) tokenLogin(name, expiresIn string) api.IssuedToken {
	e.t.Helper()
	res := e.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/auth/tokens",
		body: map[string]string{"email": ownerEmail, "password": ownerPassword, "name": name, "expires_in": expiresIn}})
	var tok api.IssuedToken
	res.json(e.t, &tok)
	e.remember(tok.Token)
	return tok
}

func TestSetupRunsOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	var st api.SetupStatus
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/setup"}).json(t, &st)
	if !st.Needed {
		t.Fatal("fresh install: setup not needed")
	}

	res := e.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/setup",
		body: map[string]string{"email": "Ada@Example.com", "password": ownerPassword, "name": "Ada"}})
	var created api.SetupResult
	res.json(t, &created)
	if created.User.Email != ownerEmail || created.User.Name != "Ada" || !strings.HasPrefix(created.User.ID, "usr_") {
		t.Errorf("setup created %+v", created.User)
	}
	if bytes.Contains(res.body, []byte("password")) {
		t.Errorf("setup response mentions the password: %s", res.body)
	}

	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/setup"}).json(t, &st)
	if st.Needed {
		t.Error("setup still needed after it completed")
	}
	p := e.expect(http.StatusConflict, request{method: "POST", path: "/api/v1/setup",
		body: map[string]string{"email": "mallory@example.com", "password": "another fine password"}}).problem(t)
	if !strings.Contains(p.Detail, "already") {
		t.Errorf("second setup: %q", p.Detail)
	}
	// The first owner is untouched: the second attempt's account does not exist.
	e.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login",
		body: map[string]string{"email": "mallory@example.com", "password": "another fine password"}})
}

func TestSetupRefusedWhenNotAllowed(t *testing.T) {
	e := newEnv(t, envOptions{setupDenied: true})
	p := e.expect(http.StatusForbidden, request{method: "POST", path: "/api/v1/setup",
		body: map[string]string{"email": ownerEmail, "password": ownerPassword}}).problem(t)
	if !strings.Contains(p.Detail, "server itself") || !strings.Contains(p.Detail, "public URL") {
		t.Errorf("detail does not explain where setup is allowed: %q", p.Detail)
	}
	var st api.SetupStatus
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/setup"}).json(t, &st)
	if !st.Needed {
		t.Error("refused setup completed anyway")
	}
}

func TestSetupRefusesCrossSiteBrowsers(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.expect(http.StatusForbidden, request{method: "POST", path: "/api/v1/setup",
		body:   map[string]string{"email": ownerEmail, "password": ownerPassword},
		header: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}})
}

func TestLoginSetsSessionCookie(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	s := e.login(ownerPassword)
	c := s.cookie
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 3600 || c.Secure {
		t.Errorf("cookie attributes: HttpOnly=%v SameSite=%v Path=%q MaxAge=%d Secure=%v", c.HttpOnly, c.SameSite, c.Path, c.MaxAge, c.Secure)
	}
	if s.csrf == "" {
		t.Error("login returned no CSRF token")
	}

	var me api.Me
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", session: s}).json(t, &me)
	if me.User.Email != ownerEmail || me.Organization.Name != "Acme" || me.Role != "owner" || me.Auth != "session" || me.CSRFToken != s.csrf {
		t.Errorf("me = %+v", me)
	}
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me"})
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me",
		session: &session{cookie: &http.Cookie{Name: auth.SessionCookie, Value: "forged"}}})
}

func TestChangePasswordNeedsCSRFAndEndsOtherSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	other := e.login(ownerPassword)
	s := e.login(ownerPassword)
	change := map[string]string{"current_password": ownerPassword, "new_password": newPassword}

	p := e.expect(http.StatusForbidden, request{method: "PUT", path: "/api/v1/me/password", session: s, body: change}).problem(t)
	if p.Detail != "missing or invalid CSRF token" {
		t.Errorf("detail %q", p.Detail)
	}
	// Another session's token is not this session's.
	e.expect(http.StatusForbidden, request{method: "PUT", path: "/api/v1/me/password", body: change,
		session: &session{cookie: s.cookie, csrf: other.csrf}, csrf: true})
	// A page on another site cannot use the token even if it had it.
	e.expect(http.StatusForbidden, request{method: "PUT", path: "/api/v1/me/password", session: s, csrf: true, body: change,
		header: map[string]string{"Origin": "https://evil.example"}})

	bad := e.expect(http.StatusUnprocessableEntity, request{method: "PUT", path: "/api/v1/me/password", session: s, csrf: true,
		body: map[string]string{"current_password": "not my password at all", "new_password": newPassword}}).problem(t)
	if len(bad.Errors) != 1 || bad.Errors[0].Location != "body.current_password" {
		t.Errorf("wrong current password: %+v", bad)
	}

	var changed api.CredentialsChanged
	e.expect(http.StatusOK, request{method: "PUT", path: "/api/v1/me/password", session: s, csrf: true, body: change}).json(t, &changed)
	if changed.EndedSessions != 1 || changed.RevokedTokens != 0 {
		t.Errorf("password change answered %+v", changed)
	}
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", session: other})
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", session: s})
	e.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login",
		body: map[string]string{"email": ownerEmail, "password": ownerPassword}})
	e.login(newPassword)
}

func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	tok := e.tokenLogin("cli@laptop", "")
	if !strings.HasPrefix(tok.Token, "berth_") || !strings.HasPrefix(tok.ID, "tok_") || tok.Name != "cli@laptop" || tok.ExpiresAt != nil {
		t.Fatalf("issued %+v", tok)
	}
	if !strings.HasPrefix(tok.Token, tok.Prefix) {
		t.Errorf("prefix %q is not the start of the token", tok.Prefix)
	}

	var me api.Me
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", bearer: tok.Token}).json(t, &me)
	if me.Auth != "token" || me.User.Email != ownerEmail || me.CSRFToken != "" {
		t.Errorf("me with token = %+v", me)
	}
	var st orchestrator.EngineStatus
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/system/engine", bearer: tok.Token}).json(t, &st)
	if !st.Reachable || st.ServerVersion != "28.5.2" || st.Swarm.State != "active" {
		t.Errorf("engine status %+v", st)
	}
	var v struct {
		Version string `json:"version"`
	}
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/system/version", bearer: tok.Token}).json(t, &v)
	if v.Version == "" {
		t.Error("no version")
	}

	// A token needs no CSRF token: it is not an ambient credential.
	res := e.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/tokens", bearer: tok.Token,
		body: map[string]string{"name": "ci", "expires_in": "7d"}})
	var ci api.IssuedToken
	res.json(t, &ci)
	e.remember(ci.Token)
	if ci.ExpiresAt == nil || ci.ExpiresAt.Sub(e.clock.Now()) != 7*24*time.Hour {
		t.Errorf("7d token expires at %v (now %v)", ci.ExpiresAt, e.clock.Now())
	}

	res = e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/tokens", bearer: ci.Token})
	var list api.TokenList
	res.json(t, &list)
	if len(list.Tokens) != 2 || list.Tokens[0].Name != "ci" && list.Tokens[1].Name != "ci" {
		t.Errorf("tokens %+v", list.Tokens)
	}
	for _, secret := range []string{tok.Token, ci.Token} {
		if bytes.Contains(res.body, []byte(secret)) || bytes.Contains(res.body, []byte(secret[len(secret)-20:])) {
			t.Errorf("token list contains a secret: %s", res.body)
		}
	}
	if bytes.Contains(res.body, []byte("hash")) {
		t.Errorf("token list mentions a hash: %s", res.body)
	}

	e.expect(http.StatusNoContent, request{method: "DELETE", path: "/api/v1/tokens/" + ci.ID, bearer: tok.Token})
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", bearer: ci.Token})
	e.expect(http.StatusNotFound, request{method: "DELETE", path: "/api/v1/tokens/" + ci.ID, bearer: tok.Token})
	e.expect(http.StatusNotFound, request{method: "DELETE", path: "/api/v1/tokens/tok_doesnotexist", bearer: tok.Token})
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/tokens", bearer: tok.Token}).json(t, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != tok.ID {
		t.Errorf("after revoke: %+v", list.Tokens)
	}

	// A session can manage tokens too, with its CSRF token.
	s := e.login(ownerPassword)
	e.expect(http.StatusForbidden, request{method: "DELETE", path: "/api/v1/tokens/" + tok.ID, session: s})
	e.expect(http.StatusNoContent, request{method: "DELETE", path: "/api/v1/tokens/" + tok.ID, session: s, csrf: true})
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/system/engine", bearer: tok.Token})

	// Malformed credentials are simply unauthenticated.
	for _, h := range []string{"Bearer berth_nope", "Bearer ", "Basic YWRhOnB3", "berth_x"} {
		e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", header: map[string]string{"Authorization": h}})
	}
}

func TestTokenExpires(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	tok := e.tokenLogin("short", "1m")
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", bearer: tok.Token})
	e.clock.Advance(59 * time.Second)
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", bearer: tok.Token})
	e.clock.Advance(time.Second)
	res := e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", bearer: tok.Token})
	if res.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()

	tok := e.tokenLogin("cli", "")
	e.expect(http.StatusNoContent, request{method: "POST", path: "/api/v1/auth/logout", bearer: tok.Token})
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", bearer: tok.Token})

	s := e.login(ownerPassword)
	e.expect(http.StatusForbidden, request{method: "POST", path: "/api/v1/auth/logout", session: s})
	res := e.expect(http.StatusNoContent, request{method: "POST", path: "/api/v1/auth/logout", session: s, csrf: true})
	cleared := false
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		cleared = cleared || c.Name == auth.SessionCookie && c.MaxAge < 0 && c.Value == ""
	}
	if !cleared {
		t.Errorf("logout did not clear the cookie: %v", res.header.Values("Set-Cookie"))
	}
	e.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1/me", session: s})
	e.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/logout"})
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	big := `{"email":"ada@example.com","password":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name     string
		path     string
		body     any
		raw      string
		status   int
		location string // the error detail expected, when status is 422
		mention  string // a word the detail must contain
	}{
		{name: "malformed json", path: "/api/v1/auth/login", raw: `{"email": "ada@example.com", "password": `, status: 400, mention: "JSON"},
		{name: "not an object", path: "/api/v1/auth/login", raw: `["ada@example.com"]`, status: 422},
		{name: "unknown field", path: "/api/v1/auth/login", body: map[string]any{"email": ownerEmail, "password": ownerPassword, "admin": true}, status: 422, location: "body.admin", mention: "admin"},
		{name: "mass assignment on setup", path: "/api/v1/setup", body: map[string]any{"email": ownerEmail, "password": ownerPassword, "role": "owner"}, status: 422, location: "body.role", mention: "role"},
		{name: "oversize body", path: "/api/v1/auth/login", raw: big, status: 413},
		{name: "missing email", path: "/api/v1/auth/login", body: map[string]any{"password": ownerPassword}, status: 422, location: "body.email", mention: "email"},
		{name: "wrong type", path: "/api/v1/auth/login", body: map[string]any{"email": 42, "password": ownerPassword}, status: 422, location: "body.email"},
		{name: "invalid email", path: "/api/v1/setup", body: map[string]any{"email": "ada-at-example", "password": ownerPassword}, status: 422, location: "body.email", mention: "email"},
		{name: "weak password", path: "/api/v1/setup", body: map[string]any{"email": ownerEmail, "password": "short"}, status: 422, location: "body.password", mention: "password"},
		{name: "common password", path: "/api/v1/setup", body: map[string]any{"email": ownerEmail, "password": "password123"}, status: 422, location: "body.password", mention: "password"},
		{name: "empty password", path: "/api/v1/auth/login", body: map[string]any{"email": ownerEmail, "password": ""}, status: 422, location: "body.password", mention: "password"},
		{name: "bad expires_in", path: "/api/v1/auth/tokens", body: map[string]any{"email": ownerEmail, "password": ownerPassword, "name": "x", "expires_in": "soon"}, status: 422, location: "body.expires_in", mention: "expires_in"},
		{name: "negative expires_in", path: "/api/v1/auth/tokens", body: map[string]any{"email": ownerEmail, "password": ownerPassword, "name": "x", "expires_in": "-1h"}, status: 422, location: "body.expires_in", mention: "expires_in"},
		{name: "too long expires_in", path: "/api/v1/auth/tokens", body: map[string]any{"email": ownerEmail, "password": ownerPassword, "name": "x", "expires_in": "400d"}, status: 422, location: "body.expires_in", mention: "expires_in"},
		{name: "wrong content type", path: "/api/v1/auth/login", raw: `email=a`, status: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request{method: "POST", path: tt.path, body: tt.body, raw: tt.raw}
			if tt.status == 415 {
				req.header = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			}
			te := *e
			te.t = t
			res := te.expect(tt.status, req)
			p := res.problem(t)
			if tt.mention != "" && !strings.Contains(p.Detail, tt.mention) {
				t.Errorf("detail %q does not mention %q", p.Detail, tt.mention)
			}
			if tt.location != "" {
				found := false
				for _, d := range p.Errors {
					if d.Location == tt.location && (tt.mention == "" || strings.Contains(d.Message, tt.mention)) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error at %s naming %q: %s", tt.location, tt.mention, res.body)
				}
			}
			if bytes.Contains(res.body, []byte(ownerPassword)) {
				t.Errorf("problem echoes the password: %s", res.body)
			}
		})
	}
	var st api.SetupStatus
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/setup"}).json(t, &st)
	if !st.Needed {
		t.Error("an invalid setup request completed setup")
	}
}

func TestWrongPasswordAndUnknownEmailLookAlike(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	wrong := e.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login",
		body: map[string]string{"email": ownerEmail, "password": "not the password"}})
	unknown := e.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login",
		body: map[string]string{"email": "nobody@example.com", "password": "not the password"}})
	if !bytes.Equal(wrong.body, unknown.body) {
		t.Errorf("bodies differ:\n%s\n%s", wrong.body, unknown.body)
	}
	if p := wrong.problem(t); p.Detail != "invalid email or password" {
		t.Errorf("detail %q", p.Detail)
	}
	tokWrong := e.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/tokens",
		body: map[string]string{"email": ownerEmail, "password": "not the password", "name": "x"}})
	if !bytes.Equal(wrong.body, tokWrong.body) {
		t.Errorf("token login answers differently:\n%s\n%s", wrong.body, tokWrong.body)
	}
}

func TestLoginThrottled(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	var res response
	for i := 0; i < 10; i++ {
		res = e.do(request{method: "POST", path: "/api/v1/auth/login",
			body: map[string]string{"email": ownerEmail, "password": "guess number " + strconv.Itoa(i)}})
		if res.status != http.StatusUnauthorized {
			break
		}
	}
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("after repeated failures: %d %s", res.status, res.body)
	}
	secs, err := strconv.Atoi(res.header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Errorf("Retry-After %q", res.header.Get("Retry-After"))
	}
	// Even the right password waits.
	e.expect(http.StatusTooManyRequests, request{method: "POST", path: "/api/v1/auth/login",
		body: map[string]string{"email": ownerEmail, "password": ownerPassword}})
	e.clock.Advance(time.Duration(secs) * time.Second)
	e.login(ownerPassword)
	if !strings.Contains(e.logs.String(), "sign-in throttled") {
		t.Error("throttling was not logged")
	}
}

func TestEveryProtectedOperationNeedsAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                 `json:"operationId"`
			Security    *[]map[string][]string `json:"security"`
		} `json:"paths"`
	}
	e.expect(http.StatusOK, request{method: "GET", path: "/api/openapi.json"}).json(t, &doc)
	publicOps := map[string]bool{"get-setup": true, "complete-setup": true, "login": true, "create-token-with-password": true,
		"lookup-invitation": true, "accept-invitation": true}
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			declaredPublic := op.Security != nil && len(*op.Security) == 0
			if declaredPublic != publicOps[op.OperationID] {
				t.Errorf("%s: documented public=%v", op.OperationID, declaredPublic)
			}
			if publicOps[op.OperationID] {
				continue
			}
			n++
			p := strings.ReplaceAll(path, "{id}", "tok_x")
			res := e.do(request{method: strings.ToUpper(method), path: p, raw: "{}"})
			if res.status != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d", method, path, res.status)
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d protected operations found", n)
	}
}

func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, envOptions{})
	res := e.expect(http.StatusOK, request{method: "GET", path: "/api/openapi.json"})
	var doc map[string]any
	res.json(t, &doc)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] != "Berth API" {
		t.Errorf("title = %v", info["title"])
	}
	paths, _ := doc["paths"].(map[string]any)
	want := map[string][]string{
		"/api/v1/setup":                             {"get", "post"},
		"/api/v1/auth/login":                        {"post"},
		"/api/v1/auth/tokens":                       {"post"},
		"/api/v1/auth/logout":                       {"post"},
		"/api/v1/me":                                {"get"},
		"/api/v1/me/password":                       {"put"},
		"/api/v1/me/two-factor":                     {"get", "post"},
		"/api/v1/me/two-factor/confirm":             {"post"},
		"/api/v1/me/two-factor/disable":             {"post"},
		"/api/v1/me/two-factor/recovery-codes":      {"post"},
		"/api/v1/tokens":                            {"get", "post"},
		"/api/v1/tokens/{id}":                       {"delete"},
		"/api/v1/system/engine":                     {"get"},
		"/api/v1/system/version":                    {"get"},
		"/api/v1/organizations":                     {"get", "post"},
		"/api/v1/organizations/{id}/token":          {"post"},
		"/api/v1/organizations/{id}/switch":         {"post"},
		"/api/v1/organization":                      {"get", "put"},
		"/api/v1/organization/leave":                {"post"},
		"/api/v1/members":                           {"get"},
		"/api/v1/members/{user}":                    {"put", "delete"},
		"/api/v1/members/{user}/transfer-ownership": {"post"},
		"/api/v1/invitations":                       {"get", "post"},
		"/api/v1/invitations/{id}":                  {"delete"},
		"/api/v1/invitations/lookup":                {"get"},
		"/api/v1/invitations/accept":                {"post"},
	}
	for path, methods := range want {
		ops, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("path %s missing", path)
			continue
		}
		for _, m := range methods {
			op, ok := ops[m].(map[string]any)
			if !ok {
				t.Errorf("%s %s missing", m, path)
				continue
			}
			if op["summary"] == "" || op["description"] == "" || op["tags"] == nil {
				t.Errorf("%s %s undocumented", m, path)
			}
		}
	}
	if len(paths) != len(want) {
		t.Errorf("%d paths, want %d", len(paths), len(want))
	}
	schemes, _ := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)
	for _, name := range []string{"bearerToken", "sessionCookie", "csrfHeader"} {
		if schemes[name] == nil {
			t.Errorf("security scheme %s missing", name)
		}
	}
	// huma's other spec formats and its docs page are not mounted (paths
	// outside /api/v1 belong to other handlers, so no problem document here).
	for _, gone := range []string{"/api/openapi.yaml", "/api/openapi-3.0.json", "/api/docs", "/docs", "/openapi.json", "/schemas/User.json"} {
		res, err := e.srv.Client().Get(e.srv.URL + gone)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d", gone, res.StatusCode)
		}
	}
}

func TestUnknownRoutesAnswerProblems(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.expect(http.StatusNotFound, request{method: "GET", path: "/api/v1/nope"})
	res := e.expect(http.StatusMethodNotAllowed, request{method: "DELETE", path: "/api/v1/setup"})
	if allow := res.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow: %q", allow)
	}
}

// TestLogsHoldNoSecrets runs every flow against one server and checks the
// log it wrote: it must record what happened, and no password or token.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.setup()
	s := e.login(ownerPassword)
	tok := e.tokenLogin("cli", "24h")
	e.do(request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": ownerEmail, "password": "wrong password here"}})
	e.do(request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "guess-password-in-email-field", "password": "x"}})
	e.do(request{method: "POST", path: "/api/v1/auth/login", raw: `{"email":"ada@example.com","password":"` + ownerPassword + `"`})
	e.do(request{method: "POST", path: "/api/v1/auth/login", body: map[string]any{"email": ownerEmail, "password": ownerPassword, "extra": ownerPassword}})
	res := e.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/tokens", session: s, csrf: true, body: map[string]string{"name": "ci"}})
	var ci api.IssuedToken
	res.json(t, &ci)
	e.remember(ci.Token, "wrong password here", "guess-password-in-email-field")
	e.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", bearer: ci.Token})
	e.expect(http.StatusNoContent, request{method: "DELETE", path: "/api/v1/tokens/" + ci.ID, bearer: tok.Token})
	e.expect(http.StatusNoContent, request{method: "POST", path: "/api/v1/auth/logout", bearer: tok.Token})
	// Last: a password change revokes the user's tokens.
	e.expect(http.StatusOK, request{method: "PUT", path: "/api/v1/me/password", session: s, csrf: true,
		body: map[string]string{"current_password": ownerPassword, "new_password": newPassword}})

	logs := e.logs.String()
	for _, want := range []string{"setup completed", "signed in", "sign-in failed", "api token created", "password changed", "api token revoked", "signed out"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	// newEnv's cleanup checks every remembered secret against the log.
}
