package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/store"
)

// newAuditServer is newServer with the audit log wired; it returns the data
// directory too, so a test can tamper with the database.
func newAuditServer(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth:         auth.New(db, auth.Options{}),
		Engine:       fakeEngine{},
		Log:          slog.New(slog.DiscardHandler),
		SetupAllowed: func(r *http.Request) bool { return auth.SetupAllowed(r, "") },
		Audit:        audit.NewRecorder(db, nil, nil),
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, dir
}

func TestAuditCommands(t *testing.T) {
	isolate(t)
	srv, dir := newAuditServer(t)
	mustRun(t, password+"\n", "setup", "--server", srv.URL, "--email", email, "--password-stdin", "--name", "Ada", "--organization", "Acme")
	mustFail(t, "invalid email or password", "wrong password\n", "login", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, password+"\n", "login", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, "", "token", "create", "ci")

	r := mustRun(t, "", "audit", "verify")
	if !strings.HasPrefix(r.stdout, "chain intact: 4 entries") { // setup, failed and good login, token
		t.Errorf("verify: %q", r.stdout)
	}
	r = mustRun(t, "", "audit", "list", "--action", "auth.login", "--since", "1h")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "ok 201") || !strings.Contains(lines[2], "denied 401") || !strings.Contains(lines[2], email) {
		t.Errorf("list:\n%s", r.stdout)
	}
	r = mustRun(t, "", "audit", "list", "--actor", email, "--action", "token.", "-o", "json")
	var page api.AuditPage
	if err := json.Unmarshal([]byte(r.stdout), &page); err != nil || len(page.Entries) != 1 || page.Entries[0].Action != "token.create" {
		t.Errorf("list -o json: %v %s", err, r.stdout)
	}
	out := filepath.Join(t.TempDir(), "audit.csv")
	mustRun(t, "", "audit", "export", "--format", "csv", "-o", out)
	b, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(b), "seq,at,actor_kind") || strings.Count(string(b), "\n") != 6 { // 4 entries, the verify, the header
		t.Errorf("csv export (%v):\n%s", err, b)
	}
	r = mustRun(t, "", "audit", "export", "--action", "setup.complete")
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"action":"setup.complete"`) {
		t.Errorf("jsonl export:\n%s", r.stdout)
	}
	mustFail(t, `--format "xml"`, "", "audit", "export", "--format", "xml")

	if r := mustRun(t, "", "audit", "retention"); r.stdout != "audit entries are kept 365 days (the installation's default)\n" {
		t.Errorf("retention: %q", r.stdout)
	}
	if r := mustRun(t, "", "audit", "retention", "30"); r.stdout != "audit entries are kept 30 days (set for this organization)\n" {
		t.Errorf("retention 30: %q", r.stdout)
	}
	mustFail(t, "from 1 to 36500", "", "audit", "retention", "0")
	mustRun(t, "", "audit", "retention", "default")

	// Someone edits the failed sign-in into a success behind Berth's back.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "berth.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE audit_entries SET result = 'ok', status = 200 WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	r = mustFail(t, "audit chain broken: entry #2 (auth.login by "+email, "", "audit", "verify")
	if !strings.Contains(r.err.Error(), "1 entries checked before it") {
		t.Errorf("verify error: %v", r.err)
	}
}
