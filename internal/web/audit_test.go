package web

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

type auditTestEnv struct {
	*testEnv
	dir string
	rec *audit.Recorder
}

// newAuditTestEnv is newTestEnv with the audit recorder wired, as the server does.
func newAuditTestEnv(t *testing.T) *auditTestEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &testEnv{t: t, db: db, engine: &fakeEngine{status: healthyStatus()}, releases: newFakeReleases(), logs: &strings.Builder{}}
	e.auth = auth.New(db, auth.Options{Now: e.now})
	e.setup.Store(true)
	key, _ := secrets.GenerateKey()
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	e.deploys = deploy.NewEngine(db, e.releases, keys, slog.New(slog.DiscardHandler), deploy.Options{PollInterval: 10 * time.Millisecond})
	e.apps = deploy.NewManager(db, keys, e.releases, e.deploys)
	logger := slog.New(slog.NewTextHandler(e.logs, nil))
	rec := audit.NewRecorder(db, logger, nil)
	mux := http.NewServeMux()
	Register(mux, Deps{
		Auth: e.auth, Engine: e.engine, Apps: e.apps, Log: logger, SessionLifetime: time.Hour,
		SetupAllowed: func(*http.Request) bool { return e.setup.Load() },
		OpenAPI:      func() []byte { return []byte(sampleOpenAPI) },
		Audit:        rec,
	})
	e.srv = httptest.NewServer(serverWrapper(mux))
	t.Cleanup(e.srv.Close)
	return &auditTestEnv{testEnv: e, dir: dir, rec: rec}
}

func (e *auditTestEnv) entries() []store.AuditEntry {
	e.t.Helper()
	org, err := e.db.OldestOrganization(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []store.AuditEntry
	if err := e.db.EachAudit(context.Background(), org.ID, store.AuditFilter{}, func(a store.AuditEntry) error {
		out = append(out, a)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *auditTestEnv) last(action string) store.AuditEntry {
	e.t.Helper()
	es := e.entries()
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Action == action {
			return es[i]
		}
	}
	e.t.Fatalf("no %s entry among %d", action, len(es))
	return store.AuditEntry{}
}

// sql opens the database file directly, for what the UI cannot do yet
// (add members) and what it must never do (edit the log).
func (e *auditTestEnv) sql() *sql.DB {
	e.t.Helper()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "berth.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { raw.Close() })
	return raw
}

// memberBrowser adds a member with role and returns a browser signed in as them.
func (e *auditTestEnv) memberBrowser(email, role string) *browser {
	e.t.Helper()
	raw := e.sql()
	hash, _ := bcrypt.GenerateFromPassword([]byte(ownerPassword), bcrypt.MinCost)
	id := store.NewID("usr")
	if _, err := raw.Exec(`INSERT INTO users (id, email, name, password_hash, created_at, password_changed_at) VALUES (?, ?, 'M', ?, 0, 0)`, id, email, string(hash)); err != nil {
		e.t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO memberships (organization_id, user_id, role, created_at) SELECT id, ?, ?, 1 FROM organizations`, id, role); err != nil {
		e.t.Fatal(err)
	}
	b := e.browser()
	tok := b.csrf("/login")
	if p := b.post("/login", url.Values{"csrf_token": {tok}, "email": {email}, "password": {ownerPassword}}); p.status != http.StatusSeeOther {
		e.t.Fatalf("sign in as %s: %d", email, p.status)
	}
	return b
}

func TestAuditRecordsFormPosts(t *testing.T) {
	e := newAuditTestEnv(t)
	b := e.browser()
	b.setupOwner()
	if s := e.last("setup.complete"); s.ActorLabel != ownerEmail || s.Result != store.ResultOK || strings.Contains(s.Summary, ownerPassword) {
		t.Errorf("setup entry: %+v", s)
	}
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	b.createApp("shop", appFormValues(tok, "web"))

	c := e.last("app.create")
	if c.Target != "project=shop app=web" || c.Status != http.StatusSeeOther || c.Result != store.ResultOK || c.ActorKind != store.ActorUser || c.ActorLabel != ownerEmail {
		t.Errorf("app.create entry: %+v", c)
	}
	if !strings.Contains(c.Summary, `"image":"nginx:1.27"`) || !strings.Contains(c.Summary, `"vars":"[redacted]"`) {
		t.Errorf("app.create summary: %s", c.Summary)
	}
	if p := b.post("/projects/shop/apps/web/scale", url.Values{"csrf_token": {tok}, "replicas": {"3"}}); p.status >= 400 {
		t.Fatalf("scale: %d", p.status)
	}
	if s := e.last("app.scale"); s.Target != "project=shop app=web" || !strings.Contains(s.Summary, `"replicas":"3"`) {
		t.Errorf("app.scale entry: %+v", s)
	}
	// A post without the CSRF token is refused and recorded as denied.
	b.post("/projects/shop/apps/web/stop", url.Values{})
	if s := e.last("app.stop"); s.Status != http.StatusForbidden || s.Result != store.ResultDenied {
		t.Errorf("refused stop: %+v", s)
	}
	// The reveal names the variables, never the values.
	if p := b.post("/projects/shop/apps/web/env/reveal", url.Values{"csrf_token": {tok}}); !strings.Contains(p.body, "hunter2-value") {
		t.Fatalf("reveal did not show the value: %d", p.status)
	}
	r := e.last("env.reveal")
	if r.Target != "project=shop environment=production app=web" || r.Summary != `{"scope":"app","variables":["LOG_LEVEL","SECRET_KEY"]}` {
		t.Errorf("reveal entry: %+v", r)
	}
	if n := len(e.entries()); e.entries()[n-1].Action != "env.reveal" {
		t.Error("the reveal was recorded twice (by the handler and by the form-post recorder)")
	}
	// A failed sign-in, by the email typed.
	other := e.browser()
	other.post("/login", url.Values{"csrf_token": {other.csrf("/login")}, "email": {ownerEmail}, "password": {"wrong wrong wrong"}})
	if f := e.last("auth.login"); f.Result != store.ResultDenied || f.Status != http.StatusUnauthorized || f.ActorLabel != ownerEmail {
		t.Errorf("failed sign-in: %+v", f)
	}
	for _, a := range e.entries() {
		row, _ := json.Marshal(a)
		for _, secret := range []string{"hunter2-value", ownerPassword, "wrong wrong wrong", tok} {
			if strings.Contains(string(row), secret) {
				t.Errorf("entry #%d holds a secret (%.6s…): %s", a.Seq, secret, row)
			}
		}
	}
}

func TestAuditRevealFailsClosedInUI(t *testing.T) {
	e := newAuditTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	b.createApp("shop", appFormValues(tok, "web"))
	e.rec.FailAppendsForTest(errors.New("disk full"))
	p := b.post("/projects/shop/apps/web/env/reveal", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusInternalServerError || strings.Contains(p.body, "hunter2-value") {
		t.Fatalf("reveal without a record: %d, values shown: %v", p.status, strings.Contains(p.body, "hunter2-value"))
	}
	if !strings.Contains(e.logs.String(), "level=ERROR") || !strings.Contains(e.logs.String(), "audit: entry not recorded") {
		t.Errorf("not logged at error level:\n%s", e.logs.String())
	}
}

func TestAuditPageFiltersExportsAndVerifies(t *testing.T) {
	e := newAuditTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	b.createProject("blog")

	p := b.get("/audit")
	if p.status != http.StatusOK {
		t.Fatalf("audit page: %d", p.status)
	}
	mustContain(t, "audit page", p.body, `href="/audit" aria-current="page"`, "<code>project.create</code>", "<code>project=shop</code>", "<code>setup.complete</code>", ownerEmail, "Verify chain")

	p = b.get("/audit?action=project.create&target=BLOG")
	mustContain(t, "filtered", p.body, `value="project.create"`, "<code>project=blog</code>", "1 entry matching")
	mustNotContain(t, "filtered", p.body, "<code>project=shop</code>", "<code>setup.complete</code>")
	mustContain(t, "export links keep the filters", p.body, `href="/audit/export?action=project.create&amp;format=csv&amp;target=BLOG"`)

	p = b.get("/audit?since=yesterday")
	mustContain(t, "bad time", p.body, "Since is not a time", "Nothing is shown until the times are fixed.")
	mustNotContain(t, "bad time", p.body, "<code>project.create</code>")

	p = b.get("/audit/export?format=csv&action=project.")
	if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || strings.Count(p.body, "\n") != 3 || !strings.HasPrefix(p.body, "seq,at,") {
		t.Errorf("csv export (%s):\n%s", ct, p.body)
	}

	tok := b.csrf("/audit")
	p = b.post("/audit/verify", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	mustContain(t, "verify", p.body, `id="audit-verify"`, "Chain intact", "entries checked.")

	// Someone deletes the creation of blog behind Berth's back.
	if _, err := e.sql().Exec(`DELETE FROM audit_entries WHERE action = 'project.create' AND target = 'project=blog'`); err != nil {
		t.Fatal(err)
	}
	p = b.post("/audit/verify", url.Values{"csrf_token": {tok}})
	mustContain(t, "broken", p.body, "Chain broken", "is missing: it was deleted", "<code>project=shop</code>")
}

func TestAuditPageOnlyForOwnersAndAdmins(t *testing.T) {
	e := newAuditTestEnv(t)
	e.browser().setupOwner()
	for _, role := range []string{"viewer", "developer"} {
		b := e.memberBrowser(role+"@example.com", role)
		if p := b.get("/"); strings.Contains(p.body, `href="/audit"`) {
			t.Errorf("%s sees the audit log link", role)
		}
		if p := b.get("/audit"); p.status != http.StatusForbidden || strings.Contains(p.body, "setup.complete") {
			t.Errorf("%s: GET /audit answered %d", role, p.status)
		}
		if p := b.get("/audit/export?format=jsonl"); p.status != http.StatusForbidden || strings.Contains(p.body, "setup.complete") {
			t.Errorf("%s: export answered %d", role, p.status)
		}
		if p := b.post("/audit/verify", url.Values{"csrf_token": {b.csrf("/account")}}); p.status != http.StatusForbidden {
			t.Errorf("%s: verify answered %d", role, p.status)
		}
	}
	admin := e.memberBrowser("admin@example.com", "admin")
	p := admin.get("/audit")
	if p.status != http.StatusOK || !strings.Contains(p.body, `href="/audit"`) {
		t.Errorf("admin: %d", p.status)
	}
	mustContain(t, "admin's page", p.body, "Entries are kept 365 days (the installation's default).", "Only the owner can change this.")
	mustNotContain(t, "admin's page", p.body, `action="/audit/retention"`)
	if p := admin.post("/audit/retention", url.Values{"csrf_token": {admin.csrf("/audit")}, "days": {"1"}}); p.status != http.StatusForbidden {
		t.Errorf("admin changed the retention: %d", p.status)
	}
	if r := e.last("audit.set-retention"); r.Result != store.ResultDenied || r.ActorLabel != "admin@example.com" {
		t.Errorf("refused retention change: %+v", r)
	}
}

func TestAuditRetentionForm(t *testing.T) {
	e := newAuditTestEnv(t)
	b := e.browser()
	b.setupOwner()
	p := b.get("/audit")
	mustContain(t, "owner's page", p.body, `action="/audit/retention"`, `name="days"`, `value="365"`)
	tok := b.csrf("/audit")
	if p := b.post("/audit/retention", url.Values{"csrf_token": {tok}, "days": {"0"}}); p.status != http.StatusUnprocessableEntity {
		t.Errorf("0 days: %d", p.status)
	}
	p = b.post("/audit/retention", url.Values{"csrf_token": {tok}, "days": {"730"}})
	if p.status != http.StatusSeeOther || p.location() != "/audit?saved=retention" {
		t.Fatalf("save: %d %s", p.status, p.location())
	}
	mustContain(t, "saved", b.get(p.location()).body, "Entries are kept 730 days.", "Saved")
	if r := e.last("audit.set-retention"); r.Result != store.ResultOK || r.Summary != `{"fields":{"days":"730"}}` {
		t.Errorf("retention entry: %+v", r)
	}
}

// TestAuditBrowser shows the audit log page in a real Chromium under the
// production CSP, runs "Verify chain" with htmx, and saves a screenshot to
// $BERTH_SCREENSHOT_DIR.
func TestAuditBrowser(t *testing.T) {
	chromium, shots := browserPrereqs(t)
	e := newAuditTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	b.createApp("shop", appFormValues(tok, "web"))
	b.post("/projects/shop/apps/web/deploy", url.Values{"csrf_token": {tok}})
	b.post("/projects/shop/apps/web/env/reveal", url.Values{"csrf_token": {tok}})
	b.post("/projects/shop/apps/web/stop", url.Values{})
	e.browser().post("/login", url.Values{"csrf_token": {tok}, "email": {"mallory@example.com"}, "password": {"guess guess guess"}})

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 900),
	)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	problems := &consoleProblems{}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(problems.listen))
	defer cancelTab()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: reportCSP}); err != nil {
		t.Fatal(err)
	}
	base := e.srv.URL
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), ownerEmail),
		chromedp.SendKeys(chromedp.ID("password"), ownerPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("engine-title")),
		chromedp.Click(chromedp.CSS(`.nav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.ID("audit-entries-title")),
		chromedp.Click(chromedp.CSS(`#audit-verify button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-verify .notice-ok`)),
	); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems.take() {
		t.Error(p)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#audit-verify").innerText`))
	if err != nil || !strings.Contains(text, "Chain intact") {
		t.Errorf("verify result %q (%v)", text, err)
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shots, "audit-light.png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
