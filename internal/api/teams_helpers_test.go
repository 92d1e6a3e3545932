package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// newTeamEnv is newAPIEnv on SQLite.
func newTeamEnv(t *testing.T, publicURL string) *auditEnv { return newAPIEnv(t, "", publicURL) }

// newAPIEnv is the API with everything mounted that the server mounts
// (projects, apps, builds on a real job queue whose workers never start, so
// builds stay queued, audit, the edge proxy's status and request counts),
// on the database at databaseURL ("" is SQLite), after setup, with the
// owner signed in by token. publicURL is Deps.PublicURL.
func newAPIEnv(t *testing.T, databaseURL, publicURL string) *auditEnv {
	t.Helper()
	return newAPIEnvWith(t, databaseURL, publicURL, deploy.BuildConfig{})
}

// newAPIEnvWith is newAPIEnv with builds configured as bc says (its queue
// and PrivateHosts are the env's).
func newAPIEnvWith(t *testing.T, databaseURL, publicURL string, bc deploy.BuildConfig) *auditEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, databaseURL, dir)
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
	mgr := deploy.NewManager(db, keys, rel, engine).WithCertRoots(testCA.Pool)
	workers := jobs.NewWorkers()
	if err := jobs.Register(workers, jobs.BuildKind(time.Minute), mgr.RunBuild); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.Open(ctx, db.SQL(), db.Dialect(), jobs.Options{Workers: workers}) // never started
	if err != nil {
		t.Fatal(err)
	}
	bc.Queue, bc.PrivateHosts = q, true
	mgr.WithBuilds(bc)

	e := &env{t: t, clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &lockedBuffer{}, secrets: &secretSet{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := audit.NewRecorder(db, logger, e.clock.Now)
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth:         auth.New(db, auth.Options{Now: e.clock.Now, Keys: keys}),
		Engine:       fakeEngine{},
		Apps:         mgr,
		Log:          logger,
		SetupAllowed: func(*http.Request) bool { return true },
		Audit:        rec,
		PublicURL:    publicURL,
		ProxyStatus: func(context.Context, string) (edge.ProxyStatus, error) {
			return edge.ProxyStatus{}, nil
		},
		Requests: func(string, time.Duration) edge.AppRequests { return edge.AppRequests{} },
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.remember(ownerPassword)
	t.Cleanup(func() {
		logs := e.logs.String()
		e.secrets.mu.Lock()
		defer e.secrets.mu.Unlock()
		for _, s := range e.secrets.list {
			if strings.Contains(logs, s) {
				t.Errorf("a secret (%.8s…) appears in the logs", s)
			}
		}
	})
	e.setup()
	a := &appEnv{env: e, db: db, dataDir: dir, releases: rel, token: e.tokenLogin("ci", "").Token}
	return &auditEnv{appEnv: a, rec: rec}
}

// as makes a call with another bearer token.
func (a *auditEnv) as(token string, want int, method, path string, body any) response {
	a.t.Helper()
	return a.expect(want, request{method: method, path: "/api/v1" + path, body: body, bearer: token})
}

// invite invites email with role as the owner and returns the invitation
// with its link's token (remembered as a secret).
func (a *auditEnv) invite(email, role string) (api.CreatedInvitation, string) {
	a.t.Helper()
	var inv api.CreatedInvitation
	a.call(http.StatusCreated, "POST", "/invitations", map[string]string{"email": email, "role": role}).json(a.t, &inv)
	token := linkToken(a.t, inv.Link)
	a.remember(token, inv.Link)
	return inv, token
}

func linkToken(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("invitation link %q has no token", link)
	}
	return u.Query().Get("token")
}

// join invites email with role and accepts as a new account; it returns the
// API token the acceptance issued.
func (a *auditEnv) join(email, role string) string {
	a.t.Helper()
	_, token := a.invite(email, role)
	var acc api.AcceptedInvitation
	a.expect(http.StatusOK, request{method: "POST", path: "/api/v1/invitations/accept",
		body: map[string]string{"token": token, "name": role, "password": ownerPassword}}).json(a.t, &acc)
	if acc.Token == nil || acc.Role != role || acc.User.Email != email {
		a.t.Fatalf("accepted %+v", acc)
	}
	a.remember(acc.Token.Token)
	return acc.Token.Token
}

// newToken creates another token with the credential given.
func (a *auditEnv) newToken(bearer, name, role string) api.IssuedToken {
	a.t.Helper()
	var tok api.IssuedToken
	a.as(bearer, http.StatusCreated, "POST", "/tokens", map[string]string{"name": name, "role": role}).json(a.t, &tok)
	a.remember(tok.Token)
	return tok
}

func (a *auditEnv) members() map[string]string {
	a.t.Helper()
	var ml api.MemberList
	a.call(http.StatusOK, "GET", "/members", nil).json(a.t, &ml)
	out := map[string]string{}
	for _, m := range ml.Members {
		out[m.User.Email] = m.Role
	}
	return out
}
