package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/orchestrator"
)

func TestUnauthenticatedGoesToSetupThenLogin(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	for _, path := range []string{"/", "/account", "/system", "/api/docs", "/login"} {
		if p := b.get(path); p.status != http.StatusSeeOther || p.location() != "/setup" {
			t.Errorf("before setup, GET %s = %d → %q, want 303 → /setup", path, p.status, p.location())
		}
	}
	b.setupOwner()

	anon := e.browser()
	if p := anon.get("/setup"); p.status != http.StatusSeeOther || p.location() != "/login" {
		t.Errorf("after setup, GET /setup = %d → %q, want 303 → /login", p.status, p.location())
	}
	for path, want := range map[string]string{
		"/":           "/login",
		"/account":    "/login?next=%2Faccount",
		"/system?x=1": "/login?next=%2Fsystem%3Fx%3D1",
		"/api/docs":   "/login?next=%2Fapi%2Fdocs",
		"/settings":   "/login?next=%2Fsettings",
		"/projects":   "/login?next=%2Fprojects",
	} {
		if p := anon.get(path); p.status != http.StatusSeeOther || p.location() != want {
			t.Errorf("signed out, GET %s = %d → %q, want 303 → %q", path, p.status, p.location(), want)
		}
	}
	// htmx gets told to navigate instead of a redirect it would swap in.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/account", nil)
	req.Header.Set("HX-Request", "true")
	if p := anon.do(req); p.status != http.StatusUnauthorized || p.header.Get("HX-Redirect") == "" {
		t.Errorf("htmx signed out: status %d, HX-Redirect %q", p.status, p.header.Get("HX-Redirect"))
	}
}

func TestSetupCreatesOwnerAndLandsOnDashboard(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	p := b.get("/setup")
	if p.status != http.StatusOK {
		t.Fatalf("GET /setup: %d", p.status)
	}
	mustContain(t, "setup form", p.body, `name="email"`, `name="password_confirm"`, `name="organization"`)
	tok := csrfRE.FindStringSubmatch(p.body)[1]
	p = b.post("/setup", url.Values{
		"csrf_token": {tok}, "email": {ownerEmail}, "name": {"Ada Lovelace"}, "organization": {"Analytical Engines"},
		"password": {ownerPassword}, "password_confirm": {ownerPassword},
	})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/") || strings.HasPrefix(p.location(), "/login") {
		t.Fatalf("POST /setup: %d → %q", p.status, p.location())
	}
	p = b.get(p.location())
	if p.status != http.StatusOK {
		t.Fatalf("dashboard after setup: %d\n%s", p.status, p.body)
	}
	mustContain(t, "dashboard", p.body,
		"Ada", "Analytical Engines", "Berth is ready", // greeting, organization, welcome
		"20.10.24&#43;dfsg1", "1.41", "Reachable", // engine card
		"berth-1", "worker-eu-2", "Leader", "Drain", // nodes table
		"No projects yet", `href="/projects"`,
		"berth login --server "+e.srv.URL+" --email "+ownerEmail+" --password-stdin",
		`href="/api/docs"`, `href="/system"`,
	)
	if p := b.get("/system"); p.status != http.StatusOK {
		t.Errorf("GET /system: %d", p.status)
	} else {
		mustContain(t, "system", p.body, "6.1.0-28-amd64", "10.0.0.12", "a8f7d6s5g4h3", "linux/amd64", "Commit")
	}
}

func TestSetupShowsInlineErrorsAndKeepsInput(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := b.csrf("/setup")
	p := b.post("/setup", url.Values{
		"csrf_token": {tok}, "email": {"not-an-email"}, "name": {"Grace Hopper"}, "organization": {"Navy & <Co>"},
		"password": {"short1"}, "password_confirm": {"short2"},
	})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", p.status)
	}
	mustContain(t, "setup errors", p.body,
		"Email must be an address like name@example.com",
		"Password must be at least 10 characters long",
		"Confirm password does not match the password",
		`value="not-an-email"`, `value="Grace Hopper"`, `value="Navy &amp; &lt;Co&gt;"`,
		`aria-invalid="true"`, `aria-describedby="email-error`, `id="email-error"`, `id="password-error"`,
	)
	mustNotContain(t, "setup errors", p.body, "short1", "short2")

	// A common password fails on its own, with the email kept.
	p = b.post("/setup", url.Values{"csrf_token": {tok}, "email": {ownerEmail}, "password": {"password123"}, "password_confirm": {"password123"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("weak password: status %d, want 422", p.status)
	}
	mustContain(t, "weak password", p.body, "commonly used password", `value="`+ownerEmail+`"`)
	mustNotContain(t, "weak password", p.body, "password123")
	if needed, _ := e.auth.SetupNeeded(t.Context()); !needed {
		t.Fatal("invalid setup created an owner")
	}
}

func TestSetupRefusedWhereNotAllowed(t *testing.T) {
	e := newTestEnv(t)
	e.setup.Store(false)
	b := e.browser()
	p := b.get("/setup")
	if p.status != http.StatusForbidden {
		t.Fatalf("status %d, want 403", p.status)
	}
	mustContain(t, "setup refused", p.body, "Setup isn't available from here", "--public-url")
	mustNotContain(t, "setup refused", p.body, `name="password"`)
	tok := csrfRE.FindStringSubmatch(p.body)
	form := url.Values{"email": {ownerEmail}, "password": {ownerPassword}, "password_confirm": {ownerPassword}}
	if tok != nil {
		form.Set("csrf_token", tok[1])
	}
	if p := b.post("/setup", form); p.status != http.StatusForbidden {
		t.Errorf("POST refused setup: %d, want 403", p.status)
	}
	if needed, _ := e.auth.SetupNeeded(t.Context()); !needed {
		t.Fatal("refused setup created an owner")
	}
}

func TestLoginLogout(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()

	tok := b.csrf("/")
	p := b.post("/logout", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/login") {
		t.Fatalf("logout: %d → %q", p.status, p.location())
	}
	if p := b.get("/"); p.status != http.StatusSeeOther {
		t.Fatalf("after logout GET / = %d, want redirect", p.status)
	}
	p = b.get("/login?signed_out=1")
	mustContain(t, "login page", p.body, "You have signed out")

	// Wrong password and unknown user read the same.
	tok = b.csrf("/login")
	wrong := b.post("/login", url.Values{"csrf_token": {tok}, "email": {ownerEmail}, "password": {"not the password"}})
	unknown := b.post("/login", url.Values{"csrf_token": {tok}, "email": {"nobody@example.com"}, "password": {"not the password"}})
	for name, p := range map[string]reply{"wrong password": wrong, "unknown user": unknown} {
		if p.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, p.status)
		}
		mustContain(t, name, p.body, "The email or password is not right")
		mustNotContain(t, name, p.body, "not the password")
	}
	mustContain(t, "wrong password", wrong.body, `value="`+ownerEmail+`"`)

	p = b.post("/login", url.Values{"csrf_token": {tok}, "email": {"ADA@example.com"}, "password": {ownerPassword}, "next": {"/account"}})
	if p.status != http.StatusSeeOther || p.location() != "/account" {
		t.Fatalf("login: %d → %q, want 303 → /account", p.status, p.location())
	}
	if p := b.get("/account"); p.status != http.StatusOK {
		t.Fatalf("account after login: %d", p.status)
	}
	// Signed in, /login goes straight on.
	if p := b.get("/login?next=/system"); p.status != http.StatusSeeOther || p.location() != "/system" {
		t.Errorf("GET /login signed in: %d → %q", p.status, p.location())
	}
}

func TestLoginThrottled(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	// Freeze the clock: bcrypt under -race takes longer than the first
	// lockouts last, which would let them expire between attempts.
	now := time.Now()
	e.frozen.Store(&now)
	anon := e.browser()
	tok := anon.csrf("/login")
	var p reply
	for range 7 {
		p = anon.post("/login", url.Values{"csrf_token": {tok}, "email": {ownerEmail}, "password": {"guess guess guess"}})
	}
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Fatalf("7th failure: status %d, Retry-After %q", p.status, p.header.Get("Retry-After"))
	}
	mustContain(t, "throttled", p.body, "Too many failed sign-in attempts")
}

func TestLoginRefusesOpenRedirect(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	for next, want := range map[string]string{
		"//evil.com":          "/",
		"https://evil.com":    "/",
		"/\\evil.com":         "/",
		"http:/evil.com":      "/",
		"javascript:alert(1)": "/",
		"/system?tab=nodes#n": "/system?tab=nodes#n",
		"":                    "/",
	} {
		anon := e.browser()
		tok := anon.csrf("/login")
		p := anon.post("/login", url.Values{"csrf_token": {tok}, "email": {ownerEmail}, "password": {ownerPassword}, "next": {next}})
		if p.status != http.StatusSeeOther || p.location() != want {
			t.Errorf("next=%q: %d → %q, want 303 → %q", next, p.status, p.location(), want)
		}
		// The form never carries a foreign next either.
		if lp := e.browser().get("/login?next=" + url.QueryEscape(next)); strings.Contains(lp.body, "evil.com") {
			t.Errorf("login form with next=%q echoes it", next)
		}
	}
}

func TestPostWithoutCSRFIsForbidden(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	tok := b.csrf("/account")

	cases := []struct {
		name    string
		path    string
		form    url.Values
		headers []string
	}{
		{"logout without token", "/logout", url.Values{}, nil},
		{"token create without token", "/account/tokens", url.Values{"name": {"x"}, "expires_in": {"1d"}}, nil},
		{"password with wrong token", "/account/password", url.Values{"csrf_token": {"nope"}, "current_password": {ownerPassword}}, nil},
		{"htmx without header", "/account/tokens", url.Values{"name": {"x"}, "expires_in": {"1d"}}, []string{"HX-Request: true"}},
		{"cross-site with token", "/account/tokens", url.Values{"csrf_token": {tok}, "name": {"x"}, "expires_in": {"1d"}}, []string{"Sec-Fetch-Site: cross-site"}},
		{"foreign origin with token", "/logout", url.Values{"csrf_token": {tok}}, []string{"Origin: https://evil.com"}},
	}
	for _, c := range cases {
		p := b.post(c.path, c.form, c.headers...)
		if p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.name, p.status)
		}
	}
	if p := b.get("/account"); p.status != http.StatusOK || strings.Contains(p.body, "<code>berth_") {
		t.Errorf("a forbidden request changed something: %d", p.status)
	}

	// htmx may send the token as a header instead of a field.
	p := b.post("/account/tokens", url.Values{"name": {"via header"}, "expires_in": {"1d"}}, "HX-Request: true", "X-CSRF-Token: "+tok)
	if p.status != http.StatusOK {
		t.Errorf("htmx with X-CSRF-Token header: %d, want 200", p.status)
	}

	// Pre-session forms: no cookie, cross-site, or a token that isn't the cookie's.
	anon := e.browser()
	if p := anon.post("/login", url.Values{"csrf_token": {"made-up-token-made-up-token-made-up"}, "email": {ownerEmail}, "password": {ownerPassword}}); p.status != http.StatusForbidden {
		t.Errorf("login without pre-session cookie: %d, want 403", p.status)
	}
	ltok := anon.csrf("/login")
	if p := anon.post("/login", url.Values{"csrf_token": {ltok}, "email": {ownerEmail}, "password": {ownerPassword}}, "Sec-Fetch-Site: cross-site"); p.status != http.StatusForbidden {
		t.Errorf("cross-site login: %d, want 403", p.status)
	}
	if p := anon.post("/login", url.Values{"csrf_token": {ltok + "x"}, "email": {ownerEmail}, "password": {ownerPassword}}); p.status != http.StatusForbidden {
		t.Errorf("login with mismatched token: %d, want 403", p.status)
	}
}

func TestSetupCSRF(t *testing.T) {
	e := newTestEnv(t)
	form := url.Values{"email": {ownerEmail}, "password": {ownerPassword}, "password_confirm": {ownerPassword}}
	// A cross-site page posting to a fresh install on localhost.
	if p := e.browser().post("/setup", form); p.status != http.StatusForbidden {
		t.Errorf("setup without token: %d, want 403", p.status)
	}
	b := e.browser()
	form.Set("csrf_token", b.csrf("/setup"))
	if p := b.post("/setup", form, "Origin: https://evil.example"); p.status != http.StatusForbidden {
		t.Errorf("setup from another origin: %d, want 403", p.status)
	}
	if needed, _ := e.auth.SetupNeeded(t.Context()); !needed {
		t.Fatal("a forged setup post created the owner")
	}
}

var tokenSecretRE = regexp.MustCompile(`berth_[A-Za-z0-9_-]{40,}`)

func TestTokenCreateShowsSecretOnceAndRevoke(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	tok := b.csrf("/account")

	// Plain form post (no JavaScript): the whole page, with the secret.
	p := b.post("/account/tokens", url.Values{"csrf_token": {tok}, "name": {"laptop"}, "expires_in": {"30d"}})
	if p.status != http.StatusOK {
		t.Fatalf("create: %d\n%s", p.status, p.body)
	}
	secret := tokenSecretRE.FindString(p.body)
	if secret == "" {
		t.Fatalf("created token page shows no secret:\n%s", p.body)
	}
	mustContain(t, "created", p.body, "<html", "won't be shown again", `data-copy="new-token-secret"`)
	if p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("page with a secret: Cache-Control %q, want no-store", p.header.Get("Cache-Control"))
	}
	// The secret works against the auth service.
	if _, err := e.auth.Token(t.Context(), secret); err != nil {
		t.Fatalf("shown secret does not authenticate: %v", err)
	}

	// htmx: only the tokens section comes back.
	p = b.post("/account/tokens", url.Values{"csrf_token": {tok}, "name": {"ci"}, "expires_in": {"never"}}, "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("htmx create: %d", p.status)
	}
	secret2 := tokenSecretRE.FindString(p.body)
	if secret2 == "" || secret2 == secret {
		t.Fatalf("htmx create: secret %q", secret2)
	}
	mustNotContain(t, "htmx fragment", p.body, "<html", "<body")
	mustContain(t, "htmx fragment", p.body, `id="tokens"`, "laptop", "ci")

	list := b.get("/account")
	mustNotContain(t, "account page", list.body, secret, secret2)
	mustContain(t, "account page", list.body, secret[:12]+"…", secret2[:12]+"…", "laptop", "Never")

	// Validation errors stay inline.
	p = b.post("/account/tokens", url.Values{"csrf_token": {tok}, "name": {"  "}, "expires_in": {"7d"}}, "HX-Request: true")
	if p.status != http.StatusUnprocessableEntity {
		t.Errorf("empty name: %d, want 422", p.status)
	}
	mustContain(t, "empty name", p.body, "Name is required", `aria-invalid="true"`)
	p = b.post("/account/tokens", url.Values{"csrf_token": {tok}, "name": {"x"}, "expires_in": {"5y"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Errorf("bad expiry: %d, want 422", p.status)
	}
	mustContain(t, "bad expiry", p.body, "Expires must be one of the listed choices")

	// Revoke through htmx, then through a plain form.
	id := regexp.MustCompile(`action="/account/tokens/(tok[^/"]+)/revoke"`).FindAllStringSubmatch(list.body, -1)
	if len(id) != 2 {
		t.Fatalf("want 2 revoke forms, got %d", len(id))
	}
	p = b.post("/account/tokens/"+id[0][1]+"/revoke", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("htmx revoke: %d", p.status)
	}
	mustContain(t, "revoked", p.body, "Token revoked")
	p = b.post("/account/tokens/"+id[1][1]+"/revoke", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("form revoke: %d", p.status)
	}
	p = b.get(p.location())
	mustContain(t, "after revoke", p.body, "No API tokens yet", "Token revoked")
	for _, s := range []string{secret, secret2} {
		if _, err := e.auth.Token(t.Context(), s); err == nil {
			t.Error("revoked token still authenticates")
		}
	}
	// Revoking again is not an error page.
	if p := b.post("/account/tokens/"+id[0][1]+"/revoke", url.Values{"csrf_token": {tok}}, "HX-Request: true"); p.status != http.StatusOK || !strings.Contains(p.body, "already revoked") {
		t.Errorf("revoke twice: %d", p.status)
	}
}

func TestChangePassword(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	other := e.browser()
	ltok := other.csrf("/login")
	if p := other.post("/login", url.Values{"csrf_token": {ltok}, "email": {ownerEmail}, "password": {ownerPassword}}); p.status != http.StatusSeeOther {
		t.Fatalf("second session: %d", p.status)
	}
	tok := b.csrf("/account")
	p := b.post("/account/password", url.Values{"csrf_token": {tok}, "current_password": {"wrong wrong wrong"}, "new_password": {"a new passphrase"}, "new_password_confirm": {"a new passphrase"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong current: %d", p.status)
	}
	mustContain(t, "wrong current", p.body, "Current password is not your current password", `id="current_password-error"`)
	mustNotContain(t, "wrong current", p.body, "wrong wrong wrong", "a new passphrase")

	p = b.post("/account/password", url.Values{"csrf_token": {tok}, "current_password": {ownerPassword}, "new_password": {"a new passphrase"}, "new_password_confirm": {"a different one"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("mismatch: %d", p.status)
	}
	mustContain(t, "mismatch", p.body, "Confirm new password does not match")

	p = b.post("/account/password", url.Values{"csrf_token": {tok}, "current_password": {ownerPassword}, "new_password": {"a new passphrase"}, "new_password_confirm": {"a new passphrase"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("change: %d\n%s", p.status, p.body)
	}
	mustContain(t, "after change", b.get(p.location()).body, "Password changed", "other sessions have been signed out")

	// Guessing the current password through a session is throttled.
	now := time.Now()
	e.frozen.Store(&now)
	for range 7 {
		p = b.post("/account/password", url.Values{"csrf_token": {tok}, "current_password": {"guess guess guess"}, "new_password": {"another passphrase"}, "new_password_confirm": {"another passphrase"}})
	}
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("7th wrong current password: %d, want 429", p.status)
	}
	mustContain(t, "throttled change", p.body, "Too many wrong current passwords")
	if p := other.get("/account"); p.status != http.StatusSeeOther {
		t.Errorf("other session after password change: %d, want redirect to login", p.status)
	}
}

func TestEngineUnreachable(t *testing.T) {
	e := newTestEnv(t)
	e.engine.status = orchestrator.EngineStatus{Reachable: false, Error: "cannot connect to the Docker daemon at unix:///var/run/docker.sock"}
	b := e.browser()
	b.setupOwner()
	p := b.get("/")
	if p.status != http.StatusOK {
		t.Fatalf("dashboard: %d", p.status)
	}
	mustContain(t, "dashboard", p.body, "Unreachable", "cannot connect to the Docker daemon", "dockerd is running")
	e.engine.status = orchestrator.EngineStatus{Reachable: true, ServerVersion: "28.0.1", APIVersion: "1.48", Swarm: orchestrator.SwarmStatus{State: "inactive"}}
	mustContain(t, "inactive swarm", b.get("/").body, "Inactive", "docker swarm init")
}

func TestAPIDocsListsOperations(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	p := b.get("/api/docs")
	if p.status != http.StatusOK {
		t.Fatalf("api docs: %d", p.status)
	}
	mustContain(t, "api docs", p.body,
		"Berth API", "v0.1.0", `href="/api/openapi.json"`, "4 operations",
		"Create an API token", "List API tokens", "Revoke an API token", "Engine and swarm status",
		`href="#op-create-token"`, `id="op-create-token"`, `href="#tag-Auth"`,
		"/api/v1/tokens/{id}", `method-delete`, `method-post`,
		"<code>Authorization: Bearer &lt;token&gt;</code>", // inline code in a description
		"What the token is for", "1–64 characters", "integer | null", "≥ 60", `one of &#34;dev&#34;, &#34;prod&#34;`,
		"Page size", "default 20", "≤ 100",
		"Unprocessable Entity", "ErrorModel", "array of Token",
	)
	// Read-only fields are not part of a request body.
	body := p.body[strings.Index(p.body, `id="op-create-token"`):]
	body = body[:strings.Index(body, "Responses")]
	mustNotContain(t, "request body", body, "$schema")
	// Order: operations in the order of their paths, then methods get before post.
	if strings.Index(p.body, "List API tokens") > strings.Index(p.body, "Create an API token") {
		t.Error("GET should come before POST on the same path")
	}

	// A broken document does not break the page.
	e2 := newTestEnv(t, func(d *Deps) { d.OpenAPI = func() []byte { return []byte("{not json") } })
	b2 := e2.browser()
	b2.setupOwner()
	if p := b2.get("/api/docs"); p.status != http.StatusOK || !strings.Contains(p.body, "could not be read") {
		t.Errorf("broken OpenAPI: %d", p.status)
	}
}

// TestNoInlineScriptOrStyle renders every page in its interesting states and
// checks nothing in it needs 'unsafe-inline'.
func TestNoInlineScriptOrStyle(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	pages := map[string]string{"setup": b.get("/setup").body}
	tok := b.csrf("/setup")
	pages["setup with errors"] = b.post("/setup", url.Values{"csrf_token": {tok}, "email": {"x"}, "password": {"y"}}).body
	b.setupOwner()
	anon := e.browser()
	pages["login"] = anon.get("/login").body
	ltok := anon.csrf("/login")
	pages["login failed"] = anon.post("/login", url.Values{"csrf_token": {ltok}, "email": {ownerEmail}, "password": {"nope nope nope"}}).body
	for _, path := range []string{"/", "/system", "/projects", "/settings", "/account", "/api/docs", "/no/such/page"} {
		pages[path] = b.get(path).body
	}
	ctok := b.csrf("/account")
	pages["token created"] = b.post("/account/tokens", url.Values{"csrf_token": {ctok}, "name": {"n"}, "expires_in": {"1d"}}).body
	pages["token fragment"] = b.post("/account/tokens", url.Values{"csrf_token": {ctok}, "name": {"m"}, "expires_in": {"1d"}}, "HX-Request: true").body
	pages["password errors"] = b.post("/account/password", url.Values{"csrf_token": {ctok}}).body
	pages["forbidden"] = b.post("/account/tokens", url.Values{}).body
	pages["account with tokens"] = b.get("/account").body

	assertNoInline(t, pages)
}

// assertNoInline fails for anything in the pages that the strict CSP would
// block: inline scripts, style elements and attributes, event handlers,
// javascript: URLs and hx-on (which needs eval).
func assertNoInline(t *testing.T, pages map[string]string) {
	t.Helper()
	tagRE := regexp.MustCompile(`(?is)<[a-z][a-z0-9-]*\b[^>]*>`)
	for name, body := range pages {
		if len(body) < 100 {
			t.Errorf("%s: suspiciously short page: %q", name, body)
		}
		for _, tag := range tagRE.FindAllString(body, -1) {
			lower := strings.ToLower(tag)
			switch {
			case strings.HasPrefix(lower, "<script") && !strings.Contains(lower, " src="):
				t.Errorf("%s: inline script: %s", name, tag)
			case strings.HasPrefix(lower, "<style"):
				t.Errorf("%s: style element: %s", name, tag)
			case regexp.MustCompile(`\sstyle\s*=`).MatchString(lower):
				t.Errorf("%s: style attribute: %s", name, tag)
			case regexp.MustCompile(`\son[a-z]+\s*=`).MatchString(lower):
				t.Errorf("%s: event handler attribute: %s", name, tag)
			case strings.Contains(lower, "javascript:"):
				t.Errorf("%s: javascript: URL: %s", name, tag)
			case regexp.MustCompile(`\shx-on`).MatchString(lower):
				t.Errorf("%s: hx-on needs eval: %s", name, tag)
			}
		}
	}
}

func TestStaticAssets(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	for _, name := range []string{"berth.css", "berth.js", "favicon.svg"} {
		u, err := loadAssets().url(name)
		if err != nil {
			t.Fatal(err)
		}
		p := b.get(u)
		if p.status != http.StatusOK || !strings.Contains(p.header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: %d, Cache-Control %q", u, p.status, p.header.Get("Cache-Control"))
		}
	}
	if p := b.get("/static/nope.css"); p.status != http.StatusNotFound {
		t.Errorf("missing asset: %d", p.status)
	}
	if p := b.get("/static/../web.go"); p.status == http.StatusOK {
		t.Error("static handler escaped its directory")
	}
}

func TestNotFoundPage(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	p := b.get("/nope")
	if p.status != http.StatusNotFound {
		t.Fatalf("status %d", p.status)
	}
	mustContain(t, "404", p.body, "Page not found", "Back to the dashboard")
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/account": "/account", "/a?b=c": "/a?b=c", "": "/", "//x": "/", "/\\x": "/", "https://x": "/",
		"x": "/", "/a\nb": "/", "///x": "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		-10 * time.Second: "just now", -5 * time.Minute: "5 minutes ago", -1 * time.Hour: "1 hour ago",
		-72 * time.Hour: "3 days ago", 30 * 24 * time.Hour: "in 30 days", 90*24*time.Hour - time.Minute: "in 3 months",
	} {
		if got := relativeTo(now.Add(d), now); got != want {
			t.Errorf("relativeTo(%v) = %q, want %q", d, got, want)
		}
	}
}
