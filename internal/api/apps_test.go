package api_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// fakeReleases stands in for Swarm: the API layer only relays what the
// manager asks of it. The engine does not run in these tests; they drive
// deployments through the store by hand.
type fakeReleases struct {
	mu             sync.Mutex
	states         map[string]orchestrator.ReleaseState
	logs           []orchestrator.LogLine
	removed        []string
	removedVolumes []string
}

var (
	_ orchestrator.Releases   = (*fakeReleases)(nil)
	_ orchestrator.Registries = (*fakeReleases)(nil)
)

func (f *fakeReleases) EnsureNetwork(context.Context, string, map[string]string) error { return nil }
func (f *fakeReleases) RemoveNetwork(context.Context, string) error                    { return nil }
func (f *fakeReleases) ResolveImage(_ context.Context, ref string, _ *orchestrator.RegistryAuth) (orchestrator.ResolvedImage, error) {
	return orchestrator.ResolvedImage{Ref: ref + "@sha256:" + strings.Repeat("a", 64)}, nil
}
func (f *fakeReleases) CreateRelease(context.Context, orchestrator.Release) error { return nil }
func (f *fakeReleases) ReleaseState(_ context.Context, service string) (orchestrator.ReleaseState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[service], nil
}
func (f *fakeReleases) ScaleRelease(context.Context, string, int) error { return nil }
func (f *fakeReleases) RemoveRelease(_ context.Context, service string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, service)
	return nil
}
func (f *fakeReleases) Services(context.Context, map[string]string) ([]orchestrator.ServiceInfo, error) {
	return nil, nil
}
func (f *fakeReleases) Logs(_ context.Context, _ string, opts orchestrator.LogOptions, out func(orchestrator.LogLine) error) error {
	f.mu.Lock()
	lines := f.logs
	f.mu.Unlock()
	if opts.Tail > 0 && len(lines) > opts.Tail {
		lines = lines[len(lines)-opts.Tail:]
	}
	for _, l := range lines {
		if !opts.Timestamps {
			l.Time = time.Time{}
		}
		if err := out(l); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeReleases) PruneFiles(context.Context, string) error { return nil }

// TestLogin refuses every registry login: no registry answers in these tests.
func (f *fakeReleases) TestLogin(context.Context, orchestrator.RegistryAuth) error {
	return orchestrator.ErrImageUnauthorized
}

func (f *fakeReleases) RemoveVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removedVolumes = append(f.removedVolumes, name)
	return nil
}

type appEnv struct {
	*env
	db       *store.DB
	dataDir  string
	releases *fakeReleases
	token    string
}

// newAppEnv runs the API with a real deploy.Manager on a real SQLite store,
// completes setup and signs in with a token. opts configure the Manager.
func newAppEnv(t *testing.T, opts ...func(*deploy.Manager)) *appEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	rel := &fakeReleases{states: map[string]orchestrator.ReleaseState{}}
	logger := slog.New(slog.DiscardHandler)
	engine := deploy.NewEngine(db, rel, keys, logger, deploy.Options{}) // never run: Poke only signals
	e := &env{t: t, clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &lockedBuffer{}, secrets: &secretSet{}}
	mux := http.NewServeMux()
	apps := deploy.NewManager(db, keys, rel, engine).WithCertRoots(testCA.Pool)
	for _, o := range opts {
		o(apps)
	}
	api.Register(mux, api.Deps{
		Auth:         auth.New(db, auth.Options{Now: e.clock.Now}),
		Engine:       fakeEngine{},
		Apps:         apps,
		Log:          slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SetupAllowed: func(*http.Request) bool { return true },
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
				t.Errorf("a secret (%.8s…) appears in the logs:\n%s", s, logs)
			}
		}
	})
	e.setup()
	return &appEnv{env: e, db: db, dataDir: dir, releases: rel, token: e.tokenLogin("test", "").Token}
}

func (a *appEnv) call(want int, method, path string, body any) response {
	a.t.Helper()
	return a.expect(want, request{method: method, path: "/api/v1" + path, body: body, bearer: a.token})
}

// fieldError checks that a problem names location and mentions a word.
func fieldError(t *testing.T, res response, location, mention string) {
	t.Helper()
	p := res.problem(t)
	for _, d := range p.Errors {
		if d.Location == location && strings.Contains(d.Message, mention) {
			return
		}
	}
	t.Errorf("no error at %s mentioning %q: %s", location, mention, res.body)
}

func validSpec() map[string]any {
	return map[string]any{"image": "nginx:1.27", "port": 80}
}

func (a *appEnv) createApp(project, name string, extra map[string]any) api.App {
	a.t.Helper()
	body := map[string]any{"name": name, "spec": validSpec()}
	for k, v := range extra {
		body[k] = v
	}
	var out api.App
	a.call(http.StatusCreated, "POST", "/projects/"+project+"/apps", body).json(a.t, &out)
	return out
}

func TestProjects(t *testing.T) {
	a := newAppEnv(t)
	var p api.Project
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"}).json(t, &p)
	if p.Name != "shop" || !strings.HasPrefix(p.ID, "prj_") {
		t.Errorf("created %+v", p)
	}
	res := a.call(http.StatusConflict, "POST", "/projects", map[string]string{"name": "shop"})
	fieldError(t, res, "body.name", `"shop" already exists`)
	for _, bad := range []string{"Shop", "-shop", "", "shop_1", strings.Repeat("a", 33)} {
		fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/projects", map[string]string{"name": bad}), "body.name", "")
	}
	a.call(http.StatusUnprocessableEntity, "POST", "/projects", map[string]any{"name": "x", "organization_id": "org_other"})

	var env api.Environment
	a.call(http.StatusCreated, "POST", "/projects/shop/environments", map[string]string{"name": "staging"}).json(t, &env)
	if env.Name != "staging" || env.Network == "" {
		t.Errorf("environment %+v", env)
	}
	fieldError(t, a.call(http.StatusConflict, "POST", "/projects/shop/environments", map[string]string{"name": "staging"}), "body.name", "staging")
	a.call(http.StatusNotFound, "POST", "/projects/nope/environments", map[string]string{"name": "staging"})

	a.createApp("shop", "web", nil)
	var d api.ProjectDetail
	a.call(http.StatusOK, "GET", "/projects/shop", nil).json(t, &d)
	if d.Name != "shop" || len(d.Environments) != 2 || d.Environments[0].Name != "production" || len(d.Apps) != 1 || d.Apps[0].Name != "web" || d.Apps[0].Environment != "production" {
		t.Errorf("project detail %+v", d)
	}

	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "blog"})
	var list api.ProjectList
	a.call(http.StatusOK, "GET", "/projects", nil).json(t, &list)
	if len(list.Projects) != 2 || list.Projects[0].Name != "blog" || list.Projects[1].Name != "shop" {
		t.Errorf("projects %+v", list.Projects)
	}

	fieldError(t, a.call(http.StatusConflict, "PATCH", "/projects/shop", map[string]string{"name": "blog"}), "body.name", "blog")
	a.call(http.StatusOK, "PATCH", "/projects/shop", map[string]string{"name": "store"}).json(t, &p)
	if p.Name != "store" {
		t.Errorf("renamed %+v", p)
	}
	a.call(http.StatusNotFound, "GET", "/projects/shop", nil)

	res = a.call(http.StatusConflict, "DELETE", "/projects/store", nil)
	if pr := res.problem(t); pr.Detail != "project still has applications" {
		t.Errorf("delete non-empty: %q", pr.Detail)
	}
	a.call(http.StatusNoContent, "DELETE", "/projects/store/apps/web", nil)
	a.call(http.StatusNoContent, "DELETE", "/projects/store", nil)
	a.call(http.StatusNotFound, "GET", "/projects/store", nil)
}

func TestCreateAppRejectsInvalidFields(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	spec := func(changes map[string]any) map[string]any {
		s := validSpec()
		for k, v := range changes {
			s[k] = v
		}
		return s
	}
	tests := []struct {
		name     string
		body     map[string]any
		location string
		mention  string
	}{
		{"image", map[string]any{"name": "web", "spec": spec(map[string]any{"image": "nginx:latest; rm -rf /"})}, "body.spec.image", "not a valid image"},
		{"missing image", map[string]any{"name": "web", "spec": map[string]any{"port": 80}}, "body.spec.image", "image"},
		{"port", map[string]any{"name": "web", "spec": spec(map[string]any{"port": 70000})}, "body.spec.port", "65535"},
		{"published port", map[string]any{"name": "web", "spec": spec(map[string]any{"ports": []map[string]any{{"target": 53, "published": 53, "protocol": "udp"}, {"target": 80, "published": 0}}})}, "body.spec.ports[1].published", "65535"},
		{"duration", map[string]any{"name": "web", "spec": spec(map[string]any{"stop_grace_period": "soon"})}, "body.spec.stop_grace_period", "duration"},
		{"health duration", map[string]any{"name": "web", "spec": spec(map[string]any{"health": map[string]any{"type": "http", "interval": "often"}})}, "body.spec.health.interval", "duration"},
		{"memory", map[string]any{"name": "web", "spec": spec(map[string]any{"resources": map[string]any{"memory_limit": 1024}})}, "body.spec.resources.memory_limit", "6 MiB"},
		{"unknown spec field", map[string]any{"name": "web", "spec": spec(map[string]any{"privileged": true})}, "body.spec.privileged", "privileged"},
		{"env key", map[string]any{"name": "web", "spec": validSpec(), "env": map[string]string{"GOOD": "1", "1BAD": "x"}}, "body.env", "1BAD"},
		{"env value", map[string]any{"name": "web", "spec": validSpec(), "env": map[string]string{"NUL": "a\x00b"}}, "body.env.NUL", "NUL bytes"},
		{"app name", map[string]any{"name": "Web", "spec": validSpec()}, "body.name", "lowercase"},
		{"file target", map[string]any{"name": "web", "spec": spec(map[string]any{"files": []map[string]any{{"target": "/etc/../x", "content": "x"}}})}, "body.spec.files[0].target", `".."`},
		{"bind source", map[string]any{"name": "web", "spec": spec(map[string]any{"binds": []map[string]any{{"source": "/var/run/docker.sock", "target": "/s"}}})}, "body.spec.binds[0].source", "/var/run"},
		{"environment name", map[string]any{"name": "web", "environment": "Prod", "spec": validSpec()}, "body.environment", "lowercase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := *a
			e := *a.env
			e.t = t
			b.env = &e
			fieldError(t, b.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps", tt.body), tt.location, tt.mention)
		})
	}
	a.call(http.StatusNotFound, "POST", "/projects/shop/apps", map[string]any{"name": "web", "environment": "staging", "spec": validSpec()})
	var list api.AppList
	a.call(http.StatusOK, "GET", "/projects/shop/apps", nil).json(t, &list)
	if len(list.Apps) != 0 {
		t.Errorf("invalid requests created apps: %+v", list.Apps)
	}

	// A valid app round-trips its spec; durations are strings, memory bytes.
	created := a.createApp("shop", "web", map[string]any{"spec": spec(map[string]any{
		"replicas": 2, "stop_grace_period": "30s", "resources": map[string]any{"memory_limit": 268435456, "cpu_limit": 0.5},
		"ports":  []map[string]any{{"target": 5000, "published": 5000, "protocol": "udp"}},
		"health": map[string]any{"type": "command", "command": []string{"pg_isready", "-q"}, "interval": "5s"},
	})})
	s := created.Spec
	if *s.Replicas != 2 || s.StopGracePeriod != "30s" || s.Resources.MemoryLimit != 268435456 || s.Health == nil || s.Health.Interval != "5s" || s.Ports[0].Protocol != "udp" {
		t.Errorf("spec %+v", s)
	}
	fieldError(t, a.call(http.StatusConflict, "POST", "/projects/shop/apps", map[string]any{"name": "web", "spec": validSpec()}), "body.name", "web")
	// The same name in another environment is another app.
	a.call(http.StatusCreated, "POST", "/projects/shop/environments", map[string]string{"name": "staging"})
	a.createApp("shop", "web", map[string]any{"environment": "staging"})

	// Replacing the spec validates it the same way, at the body's top level.
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", "/projects/shop/apps/web/spec", spec(map[string]any{"port": -1})), "body.port", "65535")
	var updated api.App
	a.call(http.StatusOK, "PUT", "/projects/shop/apps/web/spec", spec(map[string]any{"image": "nginx:1.28"})).json(t, &updated)
	if updated.Spec.Image != "nginx:1.28" || *updated.Spec.Replicas != 1 {
		t.Errorf("updated spec %+v", updated.Spec)
	}
}

func TestDeployRollbackCancel(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	const secret = "s3cret-db-password-value"
	a.remember(secret)
	a.createApp("shop", "web", map[string]any{"env": map[string]string{"DB_PASSWORD": secret}})

	var d api.Deployment
	res := a.call(http.StatusAccepted, "POST", "/projects/shop/apps/web/deploy", map[string]string{})
	res.json(t, &d)
	if d.Seq != 1 || d.Status != store.DeployQueued || !strings.HasPrefix(d.ID, "dep_") || d.CreatedBy != ownerEmail || d.Image != "nginx:1.27" {
		t.Errorf("deployment %+v", d)
	}
	if strings.Contains(string(res.body), secret) || strings.Contains(string(res.body), "sealed") {
		t.Errorf("deployment leaks its environment: %s", res.body)
	}
	// No body at all is fine too; a new image is validated.
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps/web/deploy", map[string]string{"image": "-oops"}), "body.image", "image")
	var d2 api.Deployment
	a.expect(http.StatusAccepted, request{method: "POST", path: "/api/v1/projects/shop/apps/web/deploy", bearer: a.token}).json(t, &d2)
	if d2.Seq != 2 {
		t.Errorf("second deployment %+v", d2)
	}

	res = a.call(http.StatusConflict, "POST", "/projects/shop/apps/web/rollback", map[string]string{"to": "#1"})
	if p := res.problem(t); !strings.Contains(p.Detail, "never became healthy") || strings.HasPrefix(p.Detail, "conflict") {
		t.Errorf("rollback to a never-live deployment: %q", p.Detail)
	}
	a.call(http.StatusNotFound, "POST", "/projects/shop/apps/web/rollback", map[string]string{"to": "#9"})

	var list api.DeploymentList
	res = a.call(http.StatusOK, "GET", "/projects/shop/apps/web/deployments?limit=10", nil)
	res.json(t, &list)
	if len(list.Deployments) != 2 || list.Deployments[0].Seq != 2 {
		t.Errorf("deployments %+v", list.Deployments)
	}
	if strings.Contains(string(res.body), secret) {
		t.Errorf("deployment list leaks a secret: %s", res.body)
	}
	var detail api.DeploymentDetail
	for _, id := range []string{url.PathEscape("#1"), "1", d.ID} {
		a.call(http.StatusOK, "GET", "/projects/shop/apps/web/deployments/"+id, nil).json(t, &detail)
		if detail.ID != d.ID || detail.Spec.Image != "nginx:1.27" || detail.Steps == nil {
			t.Errorf("deployment %s: %+v", id, detail)
		}
	}
	a.call(http.StatusNotFound, "GET", "/projects/shop/apps/web/deployments/dep_nope", nil)

	var cancelled api.Deployment
	a.call(http.StatusAccepted, "POST", "/projects/shop/apps/web/deployments/2/cancel", nil).json(t, &cancelled)
	if !cancelled.CancelRequested {
		t.Errorf("cancel %+v", cancelled)
	}
	// Restart needs something live; status shows what is in flight.
	a.call(http.StatusConflict, "POST", "/projects/shop/apps/web/restart", nil)
	var st api.AppStatus
	a.call(http.StatusOK, "GET", "/projects/shop/apps/web", nil).json(t, &st)
	if st.Current != nil || st.InFlight == nil || st.App.Name != "web" || st.App.Project != "shop" {
		t.Errorf("status %+v", st)
	}
	a.call(http.StatusConflict, "GET", "/projects/shop/apps/web/logs", nil)
}

func TestEnvVarsMaskedUnlessRevealed(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	const secret = "hunter2-but-much-longer"
	a.remember(secret)
	a.createApp("shop", "web", map[string]any{"env": map[string]string{"API_KEY": secret, "MODE": "prod"}})

	var vars api.EnvVarList
	res := a.call(http.StatusOK, "GET", "/projects/shop/env?app=web", nil)
	res.json(t, &vars)
	if len(vars.Vars) != 2 || vars.Vars[0].Key != "API_KEY" || vars.Vars[0].Value != "••••••" || vars.Vars[1].Value != "••••••" {
		t.Errorf("masked vars %+v", vars)
	}
	if strings.Contains(string(res.body), secret) || strings.Contains(string(res.body), "prod") {
		t.Errorf("masked list shows a value: %s", res.body)
	}
	a.call(http.StatusOK, "GET", "/projects/shop/env?scope=app&app=web&reveal=true", nil).json(t, &vars)
	if vars.Vars[0].Value != secret || vars.Vars[1].Value != "prod" {
		t.Errorf("revealed vars %+v", vars)
	}

	// Project scope: dotenv with an error names the line.
	res = a.call(http.StatusUnprocessableEntity, "PUT", "/projects/shop/env", map[string]string{"dotenv": "A=1\nB\n"})
	fieldError(t, res, "body.dotenv", "line 2")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", "/projects/shop/env", map[string]any{"vars": map[string]string{"A": "1"}, "dotenv": "A=1"}), "body.dotenv", "vars")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", "/projects/shop/env", map[string]any{}), "body.vars", "required")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "GET", "/projects/shop/env?scope=project&app=web", nil), "query.scope", "project")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "GET", "/projects/shop/env?scope=app", nil), "query.app", "required")

	var change api.EnvChange
	a.call(http.StatusOK, "PUT", "/projects/shop/env", map[string]string{"dotenv": "SHARED=yes\nexport REGION=\"eu-west\"\n"}).json(t, &change)
	if len(change.Deployments) != 0 {
		t.Errorf("an app never deployed was redeployed: %+v", change.Deployments)
	}
	a.call(http.StatusOK, "GET", "/projects/shop/env?reveal=true", nil).json(t, &vars)
	if len(vars.Vars) != 2 || vars.Vars[0].Key != "REGION" || vars.Vars[0].Value != "eu-west" {
		t.Errorf("project vars %+v", vars)
	}
	a.call(http.StatusOK, "PATCH", "/projects/shop/env", map[string]any{"vars": map[string]string{"NEW": "1"}, "unset": []string{"SHARED"}})
	a.call(http.StatusOK, "GET", "/projects/shop/env", nil).json(t, &vars)
	if len(vars.Vars) != 2 || vars.Vars[0].Key != "NEW" || vars.Vars[1].Key != "REGION" {
		t.Errorf("after patch %+v", vars)
	}
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PATCH", "/projects/shop/env", map[string]any{"unset": []string{"GONE"}}), "body.unset[0]", "GONE")
	a.call(http.StatusNotFound, "GET", "/projects/shop/env?app=nope", nil)

	if strings.Contains(a.logs.String(), secret) {
		t.Error("a variable's value reached the log")
	}
}

// secondOrganization creates another organization with its owner through
// the real setup operation, after clearing setup's once-only marker
// directly in the SQLite file: the store has no exported way to add an
// organization yet (it comes with teams).
func (a *appEnv) secondOrganization(email string) string {
	a.t.Helper()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(a.dataDir, "berth.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		a.t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DELETE FROM settings WHERE key = 'setup.completed_at'`); err != nil {
		a.t.Fatal(err)
	}
	a.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/setup",
		body: map[string]string{"email": email, "password": ownerPassword, "organization": "Rival"}})
	var tok api.IssuedToken
	a.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/auth/tokens",
		body: map[string]string{"email": email, "password": ownerPassword, "name": "rival"}}).json(a.t, &tok)
	a.remember(tok.Token)
	return tok.Token
}

func TestOtherOrganizationSeesNothing(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", map[string]any{"env": map[string]string{"K": "v"}})
	var d api.Deployment
	a.call(http.StatusAccepted, "POST", "/projects/shop/apps/web/deploy", nil).json(t, &d)

	rival := a.secondOrganization("eve@example.com")
	as := func(want int, method, path string, body any) {
		t.Helper()
		a.expect(want, request{method: method, path: "/api/v1" + path, body: body, bearer: rival})
	}
	var list api.ProjectList
	a.expect(http.StatusOK, request{method: "GET", path: "/api/v1/projects", bearer: rival}).json(t, &list)
	if len(list.Projects) != 0 {
		t.Errorf("rival sees %+v", list.Projects)
	}
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/projects/shop", nil},
		{"PATCH", "/projects/shop", map[string]string{"name": "mine"}},
		{"DELETE", "/projects/shop", nil},
		{"GET", "/projects/shop/environments", nil},
		{"POST", "/projects/shop/environments", map[string]string{"name": "staging"}},
		{"GET", "/projects/shop/apps", nil},
		{"POST", "/projects/shop/apps", map[string]any{"name": "evil", "spec": validSpec()}},
		{"GET", "/projects/shop/apps/web", nil},
		{"PUT", "/projects/shop/apps/web/spec", validSpec()},
		{"DELETE", "/projects/shop/apps/web", nil},
		{"POST", "/projects/shop/apps/web/deploy", nil},
		{"POST", "/projects/shop/apps/web/stop", nil},
		{"POST", "/projects/shop/apps/web/scale", map[string]int{"replicas": 0}},
		{"GET", "/projects/shop/apps/web/deployments", nil},
		{"GET", "/projects/shop/apps/web/deployments/" + d.ID, nil},
		{"POST", "/projects/shop/apps/web/deployments/" + d.ID + "/cancel", nil},
		{"GET", "/projects/shop/apps/web/deployments/" + d.ID + "/events", nil},
		{"GET", "/projects/shop/apps/web/logs", nil},
		{"GET", "/projects/shop/env?app=web&reveal=true", nil},
		{"PUT", "/projects/shop/env", map[string]any{"vars": map[string]string{}}},
	} {
		as(http.StatusNotFound, c.method, c.path, c.body)
	}
	// The owner's data is intact.
	var st api.AppStatus
	a.call(http.StatusOK, "GET", "/projects/shop/apps/web", nil).json(t, &st)
	if st.InFlight == nil || st.InFlight.ID != d.ID {
		t.Errorf("owner's app after the rival's attempts: %+v", st)
	}
}

type sseEvent struct {
	name string
	data string
}

// readEvents reads a Server-Sent Events stream to its end.
func readEvents(t *testing.T, res *http.Response, got chan<- sseEvent) {
	defer close(got)
	sc := bufio.NewScanner(res.Body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				got <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func (a *appEnv) stream(path string) (*http.Response, <-chan sseEvent) {
	a.t.Helper()
	req, err := http.NewRequest("GET", a.srv.URL+"/api/v1"+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		a.t.Fatalf("GET %s: %d %s", path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	got := make(chan sseEvent, 100)
	go readEvents(a.t, res, got)
	return res, got
}

func next(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended early")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

func TestDeploymentEventsStreamUntilTerminal(t *testing.T) {
	a := newAppEnv(t)
	ctx := context.Background()
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", nil)
	var d api.Deployment
	a.call(http.StatusAccepted, "POST", "/projects/shop/apps/web/deploy", nil).json(t, &d)

	a.call(http.StatusNotFound, "GET", "/projects/shop/apps/web/deployments/7/events", nil)
	_, events := a.stream("/projects/shop/apps/web/deployments/" + url.PathEscape("#1") + "/events")

	ev := next(t, events)
	if ev.name != "status" || !strings.Contains(ev.data, `"status":"queued"`) {
		t.Fatalf("first event %+v", ev)
	}
	now := time.Now()
	step := func(msg string) {
		if err := a.db.AddStep(ctx, now, d.ID, msg); err != nil {
			t.Fatal(err)
		}
	}
	move := func(from, to string, upd store.DeploymentUpdate) {
		if err := a.db.TransitionDeployment(ctx, d.ID, []string{from}, to, upd); err != nil {
			t.Fatal(err)
		}
	}
	step("Deployment #1 started: deploy")
	service := "web-x-1"
	move(store.DeployQueued, store.DeployStarting, store.DeploymentUpdate{Service: &service, StartedAt: &now})
	want := []sseEvent{
		{"step", "Deployment #1 started: deploy"},
		{"status", `"status":"starting"`},
	}
	for _, w := range want {
		if ev := next(t, events); ev.name != w.name || !strings.Contains(ev.data, w.data) {
			t.Fatalf("event %+v, want %+v", ev, w)
		}
	}
	step("1 of 2 replicas healthy")
	step("2 of 2 replicas healthy")
	move(store.DeployStarting, store.DeploySwitching, store.DeploymentUpdate{})
	move(store.DeploySwitching, store.DeployDraining, store.DeploymentUpdate{})
	move(store.DeployDraining, store.DeployLive, store.DeploymentUpdate{FinishedAt: &now})
	step("Deployment #1 is live") // after the final transition, as the engine does

	var rest []sseEvent
	for ev := range events {
		rest = append(rest, ev)
	}
	var steps []string
	for _, ev := range rest {
		if ev.name == "step" {
			var s api.DeploymentStep
			if err := json.Unmarshal([]byte(ev.data), &s); err != nil || s.At.IsZero() || s.Seq == 0 {
				t.Errorf("step event %q: %v", ev.data, err)
			}
			steps = append(steps, s.Message)
		}
	}
	if strings.Join(steps, "|") != "1 of 2 replicas healthy|2 of 2 replicas healthy|Deployment #1 is live" {
		t.Errorf("steps %q", steps)
	}
	if last := rest[len(rest)-1]; last.name != "status" || !strings.Contains(last.data, `"status":"live"`) {
		t.Errorf("last event %+v, want status live (events %+v)", last, rest)
	}
}

func TestLogsStream(t *testing.T) {
	a := newAppEnv(t)
	ctx := context.Background()
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	app := a.createApp("shop", "web", nil)
	var d api.Deployment
	a.call(http.StatusAccepted, "POST", "/projects/shop/apps/web/deploy", nil).json(t, &d)
	service := "web-x-1"
	if err := a.db.TransitionDeployment(ctx, d.ID, []string{store.DeployQueued}, store.DeployLive, store.DeploymentUpdate{Service: &service}); err != nil {
		t.Fatal(err)
	}
	if err := a.db.SetCurrentDeployment(ctx, time.Now(), app.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	a.releases.logs = []orchestrator.LogLine{
		{Time: at, Task: "t1", Slot: 1, Stream: "stdout", Text: "first"},
		{Time: at, Task: "t2", Slot: 2, Stream: "stderr", Text: "second"},
		{Time: at, Task: "t1", Slot: 1, Stream: "stdout", Text: "third"},
	}
	a.releases.states[service] = orchestrator.ReleaseState{Exists: true, Desired: 2, Running: 2,
		Tasks: []orchestrator.Task{{ID: "t1", Slot: 1, Node: "node1", State: orchestrator.TaskRunning}}}

	var st api.AppStatus
	a.call(http.StatusOK, "GET", "/projects/shop/apps/web", nil).json(t, &st)
	if st.Current == nil || st.Current.ID != d.ID || st.Release.Service != service || st.Release.Running != 2 || len(st.Release.Tasks) != 1 || st.Release.Tasks[0].Node != "node1" {
		t.Errorf("status %+v", st)
	}

	fieldError(t, a.call(http.StatusUnprocessableEntity, "GET", "/projects/shop/apps/web/logs?since=yesterday", nil), "query.since", "since")
	_, events := a.stream("/projects/shop/apps/web/logs?tail=2&since=10m&timestamps=true")
	var lines []api.LogLine
	for ev := range events {
		if ev.name != "log" {
			t.Fatalf("event %+v", ev)
		}
		var l api.LogLine
		if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 || lines[0].Text != "second" || lines[0].Slot != 2 || lines[0].Stream != "stderr" || lines[1].Text != "third" || lines[1].Time == nil || !lines[1].Time.Equal(at) {
		t.Errorf("lines %+v", lines)
	}
	_, events = a.stream("/projects/shop/apps/web/logs")
	n := 0
	for ev := range events {
		var l api.LogLine
		json.Unmarshal([]byte(ev.data), &l)
		if l.Time != nil {
			t.Errorf("a timestamp without timestamps=true: %s", ev.data)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
}

func TestAppOperationsNeedAuthAndAreDocumented(t *testing.T) {
	a := newAppEnv(t)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                 `json:"operationId"`
			Summary     string                 `json:"summary"`
			Description string                 `json:"description"`
			Security    *[]map[string][]string `json:"security"`
			Responses   map[string]struct {
				Content map[string]any `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	a.expect(http.StatusOK, request{method: "GET", path: "/api/openapi.json"}).json(t, &doc)
	n := 0
	streams := map[string]bool{}
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/api/v1/projects") {
			continue
		}
		for method, op := range ops {
			n++
			if op.Security == nil || len(*op.Security) == 0 || op.Summary == "" || op.Description == "" {
				t.Errorf("%s %s: not documented as authenticated", method, path)
			}
			if _, ok := op.Responses["200"].Content["text/event-stream"]; ok {
				streams[op.OperationID] = true
			}
			p := strings.NewReplacer("{project}", "shop", "{app}", "web", "{id}", "1").Replace(path)
			res := a.do(request{method: strings.ToUpper(method), path: p, raw: "{}"})
			if res.status != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d", method, path, res.status)
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d project operations documented", n)
	}
	if !streams["follow-deployment"] || !streams["app-logs"] {
		t.Errorf("event streams documented: %v", streams)
	}
}

// Files travel in the spec; a secret file's content is never in a response,
// and writing back what was read keeps it.
func TestAppFilesAndBinds(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	const secret = "tok-s3cr3t-never-returned"
	big := strings.Repeat("a: 1\n", 80<<10) // 400 KiB: more than the usual body limit
	spec := validSpec()
	spec["files"] = []map[string]any{
		{"target": "/etc/app/config.yml", "content": big},
		{"target": "/run/secrets/token", "content": secret, "secret": true, "mode": 0o400},
	}
	spec["binds"] = []map[string]any{{"source": "/srv/shared", "target": "/shared", "read_only": true}}
	created := a.createApp("shop", "web", map[string]any{"spec": spec})
	res := a.call(http.StatusOK, "GET", "/projects/shop/apps/web", nil)
	if strings.Contains(string(res.body), secret) {
		t.Fatalf("the secret file's content is in the response")
	}
	var st api.AppStatus
	res.json(t, &st)
	f := st.App.Spec.Files
	if len(f) != 2 || f[0].Content != big || f[0].Mode != 0o444 || f[1].Content != "(secret, stored encrypted)" || f[1].Mode != 0o400 {
		t.Errorf("files read back: %d files, secret %+v", len(f), f[len(f)-1])
	}
	if b := st.App.Spec.Binds; len(b) != 1 || b[0] != (api.BindMount{Source: "/srv/shared", Target: "/shared", ReadOnly: true}) {
		t.Errorf("binds read back: %+v", b)
	}

	// Read, edit, write back: the placeholder keeps the stored secret.
	var me0 api.Me
	a.call(http.StatusOK, "GET", "/me", nil).json(t, &me0)
	before, err := a.db.App(context.Background(), me0.Organization.ID, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	sealedBefore := before.Spec.Files[1].Content
	w := st.App.Spec
	w.Files[0].Content = "a: 2\n"
	a.call(http.StatusOK, "PUT", "/projects/shop/apps/web/spec", w)
	var me api.Me
	a.call(http.StatusOK, "GET", "/me", nil).json(t, &me)
	stored, err := a.db.App(context.Background(), me.Organization.ID, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The stored secret is the same sealed value as before the write (and never the plaintext).
	if got := stored.Spec.Files; len(got) != 2 || got[0].Content != "a: 2\n" || !app.IsSealed(got[1].Content) || got[1].Content != sealedBefore {
		t.Errorf("stored files after writing back: %+v", got)
	}
}
