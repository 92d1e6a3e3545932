package api_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

type auditEnv struct {
	*appEnv
	rec *audit.Recorder
}

// newAuditEnv is newAppEnv with the audit recorder wired, as the server does.
func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	rel := &fakeReleases{states: map[string]orchestrator.ReleaseState{}}
	engine := deploy.NewEngine(db, rel, keys, slog.New(slog.DiscardHandler), deploy.Options{})
	e := &env{t: t, clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &lockedBuffer{}, secrets: &secretSet{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := audit.NewRecorder(db, logger, e.clock.Now)
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth:         auth.New(db, auth.Options{Now: e.clock.Now, Keys: keys}),
		Engine:       fakeEngine{},
		Apps:         deploy.NewManager(db, keys, rel, engine),
		Log:          logger,
		SetupAllowed: func(*http.Request) bool { return true },
		Audit:        rec,
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.remember(ownerPassword)
	e.setup()
	a := &appEnv{env: e, db: db, dataDir: dir, releases: rel, token: e.tokenLogin("ci", "").Token}
	return &auditEnv{appEnv: a, rec: rec}
}

// entries reads the organization's log from the store, oldest first.
func (a *auditEnv) entries() []store.AuditEntry {
	a.t.Helper()
	orgs, err := a.db.AuditOrganizations(context.Background())
	if err != nil || len(orgs) != 1 {
		a.t.Fatalf("audit organizations %v %v", orgs, err)
	}
	var out []store.AuditEntry
	if err := a.db.EachAudit(context.Background(), orgs[0], store.AuditFilter{}, func(e store.AuditEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		a.t.Fatal(err)
	}
	return out
}

func (a *auditEnv) last(action string) store.AuditEntry {
	a.t.Helper()
	es := a.entries()
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Action == action {
			return es[i]
		}
	}
	a.t.Fatalf("no %s entry in %+v", action, es)
	return store.AuditEntry{}
}

// member adds a user with role to the owner's organization, straight in
// the database (invitations do not exist yet), and returns a token of theirs.
func (a *auditEnv) member(email, role string) string {
	a.t.Helper()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(a.dataDir, "berth.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		a.t.Fatal(err)
	}
	defer raw.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte(ownerPassword), bcrypt.MinCost)
	id := store.NewID("usr")
	if _, err := raw.Exec(`INSERT INTO users (id, email, name, password_hash, created_at, password_changed_at) VALUES (?, ?, 'M', ?, 0, 0)`, id, email, string(hash)); err != nil {
		a.t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO memberships (organization_id, user_id, role, created_at) SELECT id, ?, ?, 1 FROM organizations`, id, role); err != nil {
		a.t.Fatal(err)
	}
	var tok api.IssuedToken
	a.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/auth/tokens",
		body: map[string]string{"email": email, "password": ownerPassword, "name": role}}).json(a.t, &tok)
	a.remember(tok.Token)
	return tok.Token
}

func TestAuditRecordsStateChanges(t *testing.T) {
	a := newAuditEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", nil)
	a.call(http.StatusAccepted, "POST", "/projects/shop/apps/web/deploy", map[string]string{"image": "nginx:1.28"})

	d := a.last("app.deploy")
	if d.ActorKind != store.ActorToken || d.ActorLabel != ownerEmail || !strings.HasPrefix(d.ActorID, "tok_") {
		t.Errorf("deploy actor: %s %s %s", d.ActorKind, d.ActorID, d.ActorLabel)
	}
	if d.Target != "project=shop app=web" || d.Status != http.StatusAccepted || d.Result != store.ResultOK || d.SourceIP != "127.0.0.1" {
		t.Errorf("deploy entry: %+v", d)
	}
	if !strings.Contains(d.Summary, `"image":"nginx:1.28"`) {
		t.Errorf("deploy summary %s: want the reason", d.Summary)
	}
	c := a.last("app.create")
	if c.Target != "project=shop app=web" || c.Status != http.StatusCreated || !strings.Contains(c.Summary, `"image":"nginx:1.27"`) {
		t.Errorf("create entry: %+v", c)
	}
	// Reads are not recorded.
	n := len(a.entries())
	a.call(http.StatusOK, "GET", "/projects/shop", nil)
	if len(a.entries()) != n {
		t.Error("a GET was recorded")
	}
	// Invalid input is recorded as failed.
	a.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps/web/deploy", map[string]string{"image": "-oops"})
	if f := a.last("app.deploy"); f.Status != http.StatusUnprocessableEntity || f.Result != store.ResultFailed {
		t.Errorf("422 entry: %+v", f)
	}
	// A session without its CSRF token is refused and recorded as denied.
	s := a.login(ownerPassword)
	a.expect(http.StatusForbidden, request{method: "POST", path: "/api/v1/projects", body: map[string]string{"name": "x"}, session: s})
	if f := a.last("project.create"); f.Status != http.StatusForbidden || f.Result != store.ResultDenied || f.ActorKind != store.ActorUser {
		t.Errorf("CSRF refusal entry: %+v", f)
	}
	var v api.AuditVerification
	a.call(http.StatusOK, "POST", "/audit/verify", nil).json(t, &v)
	if !v.OK || v.Checked < 6 || v.FirstProblem != "" {
		t.Errorf("verify: %+v", v)
	}
}

func TestAuditRecordsSignIns(t *testing.T) {
	a := newAuditEnv(t)
	const wrong = "not-the-password-at-all"
	a.remember(wrong)
	a.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": ownerEmail, "password": wrong}})
	f := a.last("auth.login")
	if f.Result != store.ResultDenied || f.Status != http.StatusUnauthorized || f.ActorLabel != ownerEmail || f.ActorKind != store.ActorUser || !strings.HasPrefix(f.ActorID, "usr_") {
		t.Errorf("failed login entry: %+v", f)
	}
	// An unknown email lands in the installation's organization, by the email typed.
	a.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": "Mallory@Example.com", "password": wrong}})
	if f := a.last("auth.login"); f.ActorLabel != "mallory@example.com" || f.ActorID != "" || f.Result != store.ResultDenied {
		t.Errorf("unknown email entry: %+v", f)
	}
	// A password typed into the email field is not recorded.
	a.expect(http.StatusUnauthorized, request{method: "POST", path: "/api/v1/auth/login", body: map[string]string{"email": wrong, "password": wrong}})
	if f := a.last("auth.login"); f.ActorLabel != "(not an email address)" {
		t.Errorf("password as email: %+v", f)
	}
	a.login(ownerPassword)
	if f := a.last("auth.login"); f.Result != store.ResultOK || f.ActorLabel != ownerEmail {
		t.Errorf("login entry: %+v", f)
	}
	assertNoSecret(t, a, wrong, ownerPassword)
}

// assertNoSecret greps every stored column of every entry for the secrets.
func assertNoSecret(t *testing.T, a *auditEnv, secrets ...string) {
	t.Helper()
	for _, e := range a.entries() {
		row, _ := json.Marshal(e)
		for _, s := range secrets {
			if bytes.Contains(row, []byte(s)) {
				t.Errorf("a secret (%.6s…) is stored in audit entry #%d: %s", s, e.Seq, row)
			}
		}
	}
}

func TestAuditKeepsSecretsOut(t *testing.T) {
	a := newAuditEnv(t)
	const planted = "s3cr3t-planted-value-9f2c"
	a.remember(planted)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", map[string]any{"env": map[string]string{"API_KEY": planted}})
	a.call(http.StatusOK, "PUT", "/projects/shop/env?scope=project", map[string]any{"vars": map[string]string{"DATABASE_URL": planted}})
	a.call(http.StatusOK, "PATCH", "/projects/shop/env?app=web", map[string]any{"dotenv": "TOKEN=" + planted + "\n"})
	a.call(http.StatusCreated, "POST", "/registries", map[string]string{"name": "priv", "server": "registry.example.com", "username": "bot", "password": planted})
	if res := a.do(request{method: "POST", path: "/api/v1/me/password", bearer: a.token,
		body: map[string]string{"current_password": planted, "new_password": planted}}); res.status < 400 {
		t.Fatalf("password change with a wrong current password: %d", res.status)
	}

	var list api.EnvVarList
	a.call(http.StatusOK, "GET", "/projects/shop/env?scope=project&reveal=true", nil).json(t, &list)
	if len(list.Vars) != 1 || list.Vars[0].Value != planted {
		t.Fatalf("reveal: %+v", list)
	}
	r := a.last("env.reveal")
	if r.Target != "project=shop" || r.Summary != `{"scope":"project","variables":["DATABASE_URL"]}` || r.Status != http.StatusOK {
		t.Errorf("reveal entry: %+v", r)
	}
	// Listing masked values is not a reveal.
	n := len(a.entries())
	a.call(http.StatusOK, "GET", "/projects/shop/env?scope=project", nil)
	if len(a.entries()) != n {
		t.Error("a masked listing was recorded as a reveal")
	}
	if s := a.last("env.replace").Summary; !strings.Contains(s, "DATABASE_URL") {
		t.Errorf("env.replace summary %s: want the variable's name", s)
	}
	assertNoSecret(t, a, planted)
}

func TestAuditRevealFailsClosed(t *testing.T) {
	a := newAuditEnv(t)
	const planted = "another-planted-secret-77"
	a.remember(planted)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.call(http.StatusOK, "PUT", "/projects/shop/env", map[string]any{"vars": map[string]string{"K": planted}})
	a.rec.FailAppendsForTest(errors.New("disk full"))
	res := a.call(http.StatusInternalServerError, "GET", "/projects/shop/env?reveal=true", nil)
	if bytes.Contains(res.body, []byte(planted)) {
		t.Fatalf("values sent without a record: %s", res.body)
	}
	if !strings.Contains(a.logs.String(), `"msg":"audit: entry not recorded"`) || !strings.Contains(a.logs.String(), `"level":"ERROR"`) {
		t.Errorf("the failure was not logged at error level:\n%s", a.logs.String())
	}
	// State changes still answer (they already happened); the failure is logged.
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "blog"})
	if strings.Count(a.logs.String(), "audit: entry not recorded") < 2 {
		t.Errorf("failed record of a state change not logged:\n%s", a.logs.String())
	}
}

func TestAuditReadNeedsOwnerOrAdmin(t *testing.T) {
	a := newAuditEnv(t)
	admin := a.member("admin@example.com", "admin")
	for _, role := range []string{"viewer", "developer"} {
		tok := a.member(role+"@example.com", role)
		for _, req := range []request{
			{method: "GET", path: "/api/v1/audit"},
			{method: "GET", path: "/api/v1/audit/export?format=csv"},
			{method: "POST", path: "/api/v1/audit/verify"},
			{method: "GET", path: "/api/v1/audit/retention"},
			{method: "PUT", path: "/api/v1/audit/retention", body: map[string]int{"days": 1}},
		} {
			req.bearer = tok
			a.expect(http.StatusForbidden, req)
		}
	}
	a.expect(http.StatusOK, request{method: "GET", path: "/api/v1/audit", bearer: admin})
	a.expect(http.StatusOK, request{method: "GET", path: "/api/v1/audit", bearer: a.token})

	// Shortening the retention erases history: the owner only.
	var r api.AuditRetention
	a.expect(http.StatusOK, request{method: "GET", path: "/api/v1/audit/retention", bearer: admin}).json(t, &r)
	if r.Days != 365 || !r.Default {
		t.Errorf("retention: %+v", r)
	}
	a.expect(http.StatusForbidden, request{method: "PUT", path: "/api/v1/audit/retention", bearer: admin, body: map[string]int{"days": 1}})
	if d := a.last("audit.set-retention"); d.Result != store.ResultDenied || d.ActorLabel != "admin@example.com" {
		t.Errorf("refused retention change: %+v", d)
	}
	a.call(http.StatusOK, "PUT", "/audit/retention", map[string]int{"days": 730}).json(t, &r)
	if r.Days != 730 || r.Default {
		t.Errorf("retention after PUT: %+v", r)
	}
	if d := a.last("audit.set-retention"); d.Result != store.ResultOK || d.Summary != `{"fields":{"days":730}}` {
		t.Errorf("retention change entry: %+v", d)
	}
	a.call(http.StatusUnprocessableEntity, "PUT", "/audit/retention", map[string]int{"days": 36501})
}

func TestAuditListFiltersAndExport(t *testing.T) {
	a := newAuditEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "blog"})
	a.call(http.StatusCreated, "POST", "/projects/blog/environments", map[string]string{"name": "staging"})

	var page api.AuditPage
	a.call(http.StatusOK, "GET", "/audit?action=project.create&limit=1", nil).json(t, &page)
	if len(page.Entries) != 1 || page.Entries[0].Action != "project.create" || page.NextCursor == 0 {
		t.Fatalf("first page: %+v", page)
	}
	if !strings.Contains(string(page.Entries[0].Summary), `"name":"blog"`) {
		t.Errorf("newest first: %s", page.Entries[0].Summary)
	}
	var next api.AuditPage
	a.call(http.StatusOK, "GET", "/audit?action=project.create&limit=1&cursor="+itoa(page.NextCursor), nil).json(t, &next)
	if len(next.Entries) != 1 || !strings.Contains(string(next.Entries[0].Summary), `"name":"shop"`) || next.NextCursor != 0 {
		t.Fatalf("second page: %+v", next)
	}
	a.call(http.StatusOK, "GET", "/audit?target=project%3Dblog&actor=ADA@example.com&since=1h", nil).json(t, &page)
	if len(page.Entries) != 2 || page.Entries[0].Action != "environment.create" || page.Entries[1].Action != "project.create" {
		t.Errorf("target filter: %+v", page.Entries)
	}
	a.call(http.StatusOK, "GET", "/audit?until=2000-01-01", nil).json(t, &page)
	if len(page.Entries) != 0 {
		t.Errorf("until filter: %+v", page.Entries)
	}
	fieldError(t, a.call(http.StatusUnprocessableEntity, "GET", "/audit?since=yesterday", nil), "query.since", "not a time")

	res := a.call(http.StatusOK, "GET", "/audit/export?format=jsonl&action=project.", nil)
	if ct := res.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("jsonl content type %q", ct)
	}
	var seqs []int64
	sc := bufio.NewScanner(bytes.NewReader(res.body))
	for sc.Scan() {
		var e api.AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("jsonl line %q: %v", sc.Text(), err)
		}
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) != 2 || seqs[0] > seqs[1] {
		t.Errorf("jsonl export: seqs %v, want two, oldest first", seqs)
	}
	res = a.call(http.StatusOK, "GET", "/audit/export?format=csv", nil)
	rows, err := csv.NewReader(bytes.NewReader(res.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 5 || rows[0][0] != "seq" || rows[0][5] != "action" || rows[1][0] != "1" {
		t.Errorf("csv export: %q", rows)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestEveryChangeHasAnActionName reads the operations from the OpenAPI
// document, so a new operation cannot slip by with an unreadable action.
func TestEveryChangeHasAnActionName(t *testing.T) {
	a := newAuditEnv(t)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	a.expect(http.StatusOK, request{method: "GET", path: api.SpecPath}).json(t, &doc)
	valid := regexp.MustCompile(`^[a-z]+(-[a-z]+)*\.[a-z]+(-[a-z]+)*$`)
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "get" {
				continue
			}
			n++
			if action := audit.ActionForOperation(op.OperationID); !valid.MatchString(action) {
				t.Errorf("%s %s (%s): action %q is not resource.verb", strings.ToUpper(method), path, op.OperationID, action)
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d state-changing operations found", n)
	}
}

func TestAuditNeedsCredentialsAndRecordsNothingWithout(t *testing.T) {
	a := newAuditEnv(t)
	n := len(a.entries())
	for _, req := range []request{
		{method: "GET", path: "/api/v1/audit"},
		{method: "GET", path: "/api/v1/audit/export"},
		{method: "POST", path: "/api/v1/audit/verify"},
		{method: "PUT", path: "/api/v1/audit/retention", body: map[string]int{"days": 1}},
		{method: "POST", path: "/api/v1/projects", body: map[string]string{"name": "x"}},
	} {
		a.expect(http.StatusUnauthorized, req)
	}
	if got := len(a.entries()); got != n {
		t.Errorf("requests without credentials added %d entries; they have no actor or organization", got-n)
	}
}
