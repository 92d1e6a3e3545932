package web

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/store"
)

// owner returns the principal of the owner, for asserting on the manager
// directly.
func (e *testEnv) owner() auth.Principal {
	e.t.Helper()
	secret, _, err := e.auth.Login(context.Background(), auth.Credentials{Email: ownerEmail, Password: ownerPassword})
	if err != nil {
		e.t.Fatalf("login: %v", err)
	}
	p, err := e.auth.Session(context.Background(), secret)
	if err != nil {
		e.t.Fatalf("session: %v", err)
	}
	return p
}

// createProject makes a project through the UI.
func (b *browser) createProject(name string) {
	b.e.t.Helper()
	p := b.post("/projects", url.Values{"csrf_token": {b.csrf("/projects")}, "name": {name}})
	if p.status != http.StatusSeeOther {
		b.e.t.Fatalf("create project %s: %d\n%s", name, p.status, p.body)
	}
}

// appForm is a valid new-app form; tests change what they need.
func appFormValues(tok, name string) url.Values {
	return url.Values{
		"csrf_token": {tok}, "name": {name}, "environment": {"production"}, "image": {"nginx:1.27"},
		"port": {"8080"}, "replicas": {"2"}, "cpu": {"0.5"}, "memory": {"256m"},
		"health": {"http"}, "health_arg": {"/healthz"}, "vars": {"SECRET_KEY=hunter2-value\nLOG_LEVEL=info\n"},
		"volumes": {"data:/var/lib/app"}, "ports": {""},
	}
}

// createApp makes an app through the new-app form and returns the
// redirect's target.
func (b *browser) createApp(project string, form url.Values) string {
	b.e.t.Helper()
	p := b.post("/projects/"+project+"/apps", form)
	if p.status != http.StatusSeeOther {
		b.e.t.Fatalf("create app: %d\n%s", p.status, p.body)
	}
	return p.location()
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProjectCreateAndDuplicateName(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()

	p := b.get("/projects")
	if p.status != http.StatusOK {
		t.Fatalf("GET /projects: %d", p.status)
	}
	mustContain(t, "empty projects", p.body, "No projects yet", `action="/projects"`, `name="name"`)
	tok := csrfRE.FindStringSubmatch(p.body)[1]

	p = b.post("/projects", url.Values{"csrf_token": {tok}, "name": {"shop"}})
	if p.status != http.StatusSeeOther || p.location() != "/projects/shop?notice=project-created" {
		t.Fatalf("create: %d → %q", p.status, p.location())
	}
	p = b.get(p.location())
	mustContain(t, "new project", p.body, "<h1>shop</h1>", "Project created", `id="env-production"`, "No apps in production yet", `href="/projects/shop/apps/new"`)

	// The same name again: an inline error, with the value kept.
	p = b.post("/projects", url.Values{"csrf_token": {tok}, "name": {"shop"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("duplicate: %d, want 422", p.status)
	}
	mustContain(t, "duplicate", html.UnescapeString(p.body), `Name a project named "shop" already exists`, `id="project-name-error"`, `value="shop"`, "<html")
	// htmx gets the form alone.
	p = b.post("/projects", url.Values{"csrf_token": {tok}, "name": {"Shop!"}}, "HX-Request: true")
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid name: %d, want 422", p.status)
	}
	mustContain(t, "invalid name", p.body, `id="project-form"`, "lowercase letters", `aria-invalid="true"`)
	mustNotContain(t, "invalid name fragment", p.body, "<html")
	// htmx success navigates.
	p = b.post("/projects", url.Values{"csrf_token": {tok}, "name": {"billing"}}, "HX-Request: true")
	if p.header.Get("HX-Redirect") != "/projects/billing?notice=project-created" {
		t.Errorf("htmx create: %d, HX-Redirect %q", p.status, p.header.Get("HX-Redirect"))
	}

	projects, err := e.apps.Projects(t.Context(), e.owner())
	if err != nil || len(projects) != 2 {
		t.Fatalf("projects: %v, %v", projects, err)
	}
	// Without the CSRF token nothing is created.
	if p := b.post("/projects", url.Values{"name": {"forged"}}); p.status != http.StatusForbidden {
		t.Errorf("create without token: %d, want 403", p.status)
	}

	list := b.get("/projects").body
	mustContain(t, "project list", list, `href="/projects/shop"`, `href="/projects/billing"`, "No apps yet")
	mustContain(t, "dashboard", b.get("/").body, `href="/projects/shop"`, "0 apps · 1 environment")
}

func TestEnvironmentsRenameAndDeleteProject(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop")

	p := b.post("/projects/shop/environments", url.Values{"csrf_token": {tok}, "name": {"staging"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("create environment: %d\n%s", p.status, p.body)
	}
	p = b.post("/projects/shop/environments", url.Values{"csrf_token": {tok}, "name": {"staging"}}, "HX-Request: true")
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(p.body), `already has an environment named "staging"`) {
		t.Errorf("duplicate environment: %d\n%s", p.status, p.body)
	}
	page := b.get("/projects/shop").body
	mustContain(t, "environments", page, `id="env-staging"`, `href="/projects/shop/apps/new?env=staging"`, "2 environments")

	// An app in staging blocks deleting the project.
	form := appFormValues(b.csrf("/projects/shop/apps/new"), "api")
	form.Set("environment", "staging")
	loc := b.createApp("shop", form)
	if !strings.HasPrefix(loc, "/projects/shop/apps/api?env=staging") {
		t.Fatalf("app in staging: redirect %q", loc)
	}
	p = b.post("/projects/shop/delete", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusConflict {
		t.Fatalf("delete non-empty project: %d, want 409", p.status)
	}
	mustContain(t, "delete refused", p.body, "still has apps", "Delete them first")
	if _, err := e.apps.Project(t.Context(), e.owner(), "shop"); err != nil {
		t.Fatalf("refused delete removed the project: %v", err)
	}

	p = b.post("/projects/shop/rename", url.Values{"csrf_token": {tok}, "name": {"store"}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/projects/store") {
		t.Fatalf("rename: %d → %q", p.status, p.location())
	}
	if p := b.get("/projects/shop"); p.status != http.StatusNotFound {
		t.Errorf("old name after rename: %d, want 404", p.status)
	}

	if err := e.apps.DeleteApp(t.Context(), e.owner(), deploy.AppRef{Project: "store", Environment: "staging", Name: "api"}, false); err != nil {
		t.Fatal(err)
	}
	p = b.post("/projects/store/delete", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther || p.location() != "/projects?notice=project-deleted" {
		t.Fatalf("delete empty project: %d → %q", p.status, p.location())
	}
	mustContain(t, "after delete", b.get(p.location()).body, "Project deleted", "No projects yet")
}

func TestAppCreateInvalidShowsFieldAndCreatesNothing(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")

	cases := []struct {
		name, field, value string
		wantID, wantText   string
	}{
		{"uppercase image", "image", "Nginx:latest", "app-image-error", "Image &#34;Nginx:latest&#34; is not a valid image reference"},
		{"empty image", "image", "", "app-image-error", "Image is required"},
		{"port out of range", "port", "70000", "app-port-error", "HTTP port must be between 1 and 65535"},
		{"port not a number", "port", "http", "app-port-error", "HTTP port must be a whole number"},
		{"memory unreadable", "memory", "lots", "app-memory-error", "Memory limit &#34;lots&#34; is not a size"},
		{"memory below Docker's minimum", "memory", "1m", "app-memory-error", "at least 6 MiB"},
		{"published port out of range", "ports", "8080:80\n99999:53/udp", "app-ports-error", "Published ports line 2: published port must be between 1 and 65535"},
		{"volume without path", "volumes", "data", "app-volumes-error", "Volumes line 1: write name:/path"},
		{"volume relative path", "volumes", "data:var/lib", "app-volumes-error", "Volumes line 1: mount path must be an absolute path"},
		{"env line", "vars", "GOOD=1\nnot a variable", "app-vars-error", "Variables line 2: expected KEY=VALUE"},
		{"health path", "health_arg", "healthz", "app-health-arg-error", "Path or command must start with"},
		{"app name", "name", "Web_1", "app-name-error", "Name &#34;Web_1&#34; does not start with a lowercase letter"},
	}
	for _, c := range cases {
		form := appFormValues(tok, "web")
		form.Set(c.field, c.value)
		p := b.post("/projects/shop/apps", form)
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422", c.name, p.status)
			continue
		}
		mustContain(t, c.name, p.body, `id="`+c.wantID+`"`, c.wantText, "Please correct the highlighted field")
		if c.field != "vars" && c.field != "image" {
			mustContain(t, c.name+" keeps input", p.body, `value="nginx:1.27"`, "SECRET_KEY=hunter2-value")
		}
	}
	apps, err := e.apps.Apps(t.Context(), e.owner(), "shop")
	if err != nil || len(apps) != 0 {
		t.Fatalf("invalid forms created apps: %v, %v", apps, err)
	}

	// A valid form creates the app with what was typed.
	loc := b.createApp("shop", appFormValues(tok, "web"))
	if loc != "/projects/shop/apps/web?notice=app-created" {
		t.Fatalf("create: redirect %q", loc)
	}
	a, err := e.apps.App(t.Context(), e.owner(), deploy.AppRef{Project: "shop", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	s := a.Spec
	if s.Image != "nginx:1.27" || s.Port != 8080 || s.Replicas != 2 || s.Resources.CPULimit != 0.5 || s.Resources.MemoryLimit != 256<<20 ||
		s.Health == nil || s.Health.Path != "/healthz" || len(s.Volumes) != 1 || s.Volumes[0].Target != "/var/lib/app" {
		t.Errorf("stored spec: %+v", s)
	}
	// The name is taken now.
	p := b.post("/projects/shop/apps", appFormValues(tok, "web"))
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, `id="app-name-error"`) {
		t.Errorf("duplicate app: %d", p.status)
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{
		"256m": 256 << 20, "256M": 256 << 20, "256MiB": 256 << 20, "1g": 1 << 30, "1.5G": 3 << 29, "512": 512 << 20,
		"64k": 64 << 10, "2gb": 2 << 30, "100b": 100, " 128 mb ": 128 << 20,
	} {
		if got, err := parseMemory(in); err != nil || got != want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-1m", "1.2.3g", "12 parsecs", "1e9"} {
		if _, err := parseMemory(in); err == nil {
			t.Errorf("parseMemory(%q) accepted", in)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	for in, want := range map[string][]string{
		`curl -f http://localhost/`:     {"curl", "-f", "http://localhost/"},
		`sh -c 'pg_isready -U "$USER"'`: {"sh", "-c", `pg_isready -U "$USER"`},
		`echo "a \"quoted\" word" x''y`: {"echo", `a "quoted" word`, "xy"},
		"  spaced\tout  ":               {"spaced", "out"},
	} {
		got, err := splitArgs(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := splitArgs(`echo 'open`); err == nil {
		t.Error("unclosed quote accepted")
	}
}

func TestDeployQueuesAndCancel(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	p := b.get(b.createApp("shop", appFormValues(tok, "web")))
	if p.status != http.StatusOK {
		t.Fatalf("app page: %d\n%s", p.status, p.body)
	}
	mustContain(t, "new app page", p.body, "Not deployed", "Not deployed yet", `action="/projects/shop/apps/web/deploy"`, "nginx:1.27", "App created")
	mustNotContain(t, "new app page", p.body, `action="/projects/shop/apps/web/restart"`, "hunter2")

	// Deploying without a token is refused and queues nothing.
	if p := b.post("/projects/shop/apps/web/deploy", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("deploy without token: %d, want 403", p.status)
	}
	p = b.post("/projects/shop/apps/web/deploy", url.Values{"csrf_token": {tok}, "image": {"nginx:1.27"}})
	if p.status != http.StatusSeeOther || p.location() != "/projects/shop/apps/web/deployments/1" {
		t.Fatalf("deploy: %d → %q", p.status, p.location())
	}
	detail := b.get(p.location())
	mustContain(t, "queued deployment", detail.body, "Deployment #1", "Queued", `hx-trigger="every 1s"`, "/deployments/1/progress", "updating live")
	list := b.get("/projects/shop/apps/web/deployments").body
	mustContain(t, "deployments list", list, `href="/projects/shop/apps/web/deployments/1"`, "#1", "Queued", "deploy", "ada@example.com", `/deployments/1/cancel`)
	mustContain(t, "overview in flight", b.get("/projects/shop/apps/web").body, "Deployment #1 is in progress", "Deploying", `hx-get="/projects/shop/apps/web/overview"`)

	// A bad image in the deploy box is explained next to it.
	p = b.post("/projects/shop/apps/web/deploy", url.Values{"csrf_token": {tok}, "image": {"NOPE"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("deploy bad image: %d", p.status)
	}
	mustContain(t, "bad image", p.body, `id="deploy-image-error"`, "not a valid image reference", `<details class="popover" open>`)

	p = b.post("/projects/shop/apps/web/deployments/1/cancel", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	if p.header.Get("HX-Redirect") != "/projects/shop/apps/web/deployments/1" {
		t.Fatalf("cancel: %d, HX-Redirect %q", p.status, p.header.Get("HX-Redirect"))
	}
	mustContain(t, "cancelling", b.get("/projects/shop/apps/web/deployments").body, "Cancelling")
	// Rolling back to a deployment that never ran is refused with the reason.
	p = b.post("/projects/shop/apps/web/deployments/1/rollback", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusConflict {
		t.Errorf("rollback to queued: %d, want 409", p.status)
	}
	mustContain(t, "rollback refused", p.body, "Deployment #1 never became healthy")
}

func TestAppPageShowsTasksAndDeployments(t *testing.T) {
	e := newTestEnv(t)
	e.runDeployments()
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	form := appFormValues(tok, "web")
	form.Set("then", "deploy")
	loc := b.createApp("shop", form)
	if loc != "/projects/shop/apps/web/deployments/1" {
		t.Fatalf("create and deploy: redirect %q", loc)
	}
	ref := deploy.AppRef{Project: "shop", Name: "web"}
	waitFor(t, "deployment #1 live", func() bool {
		st, err := e.apps.AppStatus(t.Context(), e.owner(), ref)
		return err == nil && st.Current != nil && st.Current.Status == store.DeployLive
	})

	p := b.get("/projects/shop/apps/web")
	if p.status != http.StatusOK {
		t.Fatalf("app page: %d", p.status)
	}
	mustContain(t, "live app", p.body,
		"Live", "2<span class=\"of\">/2 replicas", // header state
		"berth-1", "Running", "Replica", // tasks table
		"Current deployment", "#1", "HTTP GET /healthz", "256.0 MiB", "0.5 cores", "data → /var/lib/app",
		`action="/projects/shop/apps/web/restart"`, `action="/projects/shop/apps/web/stop"`,
	)
	mustNotContain(t, "live app", p.body, `hx-trigger="every 2s"`) // nothing is changing

	// The deployment page no longer polls once the deployment is over.
	frag := b.do(htmxGet(e, "/projects/shop/apps/web/deployments/1/progress"))
	mustContain(t, "finished progress", frag.body, "Deployment #1", "Live", "is live")
	mustNotContain(t, "finished progress", frag.body, "hx-trigger", "<html")

	// Restart makes deployment #2; then #1 can be rolled back to.
	p = b.post("/projects/shop/apps/web/restart", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther || p.location() != "/projects/shop/apps/web/deployments/2" {
		t.Fatalf("restart: %d → %q", p.status, p.location())
	}
	waitFor(t, "deployment #2 live", func() bool {
		d, err := e.apps.FindDeployment(t.Context(), e.owner(), ref, "2")
		return err == nil && d.Status == store.DeployLive
	})
	list := b.get("/projects/shop/apps/web/deployments").body
	mustContain(t, "deployments", list, "#2", "restart", "#1", "Retired", "Current", "/deployments/1/rollback", "hx-confirm=")
	mustNotContain(t, "deployments", list, "/deployments/2/rollback", "/cancel")

	// Scale and stop.
	p = b.post("/projects/shop/apps/web/scale", url.Values{"csrf_token": {tok}, "replicas": {"500"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("scale to 500: %d", p.status)
	}
	mustContain(t, "scale refused", p.body, "Replicas must be between 0 (stopped) and 100")
	p = b.post("/projects/shop/apps/web/scale", url.Values{"csrf_token": {tok}, "replicas": {"3"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("scale: %d", p.status)
	}
	mustContain(t, "scaled", b.get(p.location()).body, "3<span class=\"of\">/3 replicas", "Replica count changed")
	p = b.post("/projects/shop/apps/web/stop", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("stop: %d", p.status)
	}
	mustContain(t, "stopped", b.get(p.location()).body, "Stopped", `action="/projects/shop/apps/web/start"`)
	mustContain(t, "project page", b.get("/projects/shop").body, `href="/projects/shop/apps/web"`, "Stopped")
	mustContain(t, "projects list", b.get("/projects").body, "1 stopped")
}

func htmxGet(e *testEnv, path string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("HX-Request", "true")
	return req
}

func TestLogsViewerAndDownload(t *testing.T) {
	e := newTestEnv(t)
	e.runDeployments()
	now := time.Now()
	e.releases.logs = []orchestrator.LogLine{
		{Time: now, Slot: 1, Stream: "stdout", Text: "listening on :8080"},
		{Time: now, Slot: 2, Stream: "stderr", Text: "warning: <cache> cold"},
	}
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")

	b.createApp("shop", appFormValues(tok, "web"))
	mustContain(t, "logs before deploy", b.get("/projects/shop/apps/web/logs").body, "No logs yet: the app has not been deployed")

	p := b.post("/projects/shop/apps/web/deploy", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("deploy: %d", p.status)
	}
	waitFor(t, "live", func() bool {
		st, err := e.apps.AppStatus(t.Context(), e.owner(), deploy.AppRef{Project: "shop", Name: "web"})
		return err == nil && st.Current != nil
	})
	page := b.get("/projects/shop/apps/web/logs").body
	mustContain(t, "logs page", page, "listening on :8080", "warning: &lt;cache&gt; cold", "log-stderr", `hx-trigger="every 2s"`,
		`hx-get="/projects/shop/apps/web/logs/lines"`, `data-log-filter`, `data-log-toggle`, `href="/projects/shop/apps/web/logs/download"`)
	frag := b.do(htmxGet(e, "/projects/shop/apps/web/logs/lines"))
	mustContain(t, "lines fragment", frag.body, "listening on :8080")
	mustNotContain(t, "lines fragment", frag.body, "<html", "data-log-filter")

	dl := b.get("/projects/shop/apps/web/logs/download")
	if dl.status != http.StatusOK || !strings.HasPrefix(dl.header.Get("Content-Type"), "text/plain") || !strings.Contains(dl.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %q %q", dl.status, dl.header.Get("Content-Type"), dl.header.Get("Content-Disposition"))
	}
	mustContain(t, "download", dl.body, "replica=1 stdout listening on :8080", "replica=2 stderr warning: <cache> cold")
}

func TestEnvRevealRequiresPostAndCSRF(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	b.createApp("shop", appFormValues(tok, "web"))

	p := b.get("/projects/shop/apps/web/env")
	if p.status != http.StatusOK {
		t.Fatalf("env page: %d", p.status)
	}
	mustContain(t, "masked", p.body, "SECRET_KEY", "LOG_LEVEL", "hidden value", `action="/projects/shop/apps/web/env/reveal"`)
	mustNotContain(t, "masked", p.body, "hunter2-value", ">info<")
	if p := b.get("/projects/shop/apps/web/env/reveal"); strings.Contains(p.body, "hunter2-value") || p.status == http.StatusOK {
		t.Errorf("GET reveal: %d, shows the value: %v", p.status, strings.Contains(p.body, "hunter2-value"))
	}
	for name, c := range map[string]struct {
		form    url.Values
		headers []string
	}{
		"no token":    {url.Values{}, nil},
		"wrong token": {url.Values{"csrf_token": {"nope"}}, nil},
		"cross-site":  {url.Values{"csrf_token": {tok}}, []string{"Sec-Fetch-Site: cross-site"}},
	} {
		p := b.post("/projects/shop/apps/web/env/reveal", c.form, c.headers...)
		if p.status != http.StatusForbidden || strings.Contains(p.body, "hunter2-value") {
			t.Errorf("reveal with %s: %d", name, p.status)
		}
	}
	p = b.post("/projects/shop/apps/web/env/reveal", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("reveal: %d", p.status)
	}
	mustContain(t, "revealed", p.body, "hunter2-value", `id="env-editor"`, "SECRET_KEY=hunter2-value", "Save and redeploy")
	mustNotContain(t, "revealed fragment", p.body, "<html")
	if p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("revealed values: Cache-Control %q", p.header.Get("Cache-Control"))
	}

	// A broken .env saves nothing and names the line.
	p = b.post("/projects/shop/apps/web/env", url.Values{"csrf_token": {tok}, "dotenv": {"A=1\nB=\"open\n"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad .env: %d", p.status)
	}
	mustContain(t, "bad .env", p.body, `id="env-editor-error"`, "line 2", "Nothing was saved")
	p = b.post("/projects/shop/apps/web/env", url.Values{"csrf_token": {tok}, "dotenv": {"A=1\nB=two words\n"}})
	if p.status != http.StatusOK {
		t.Fatalf("save .env: %d\n%s", p.status, p.body)
	}
	mustContain(t, "saved", p.body, "Saved 2 variables", "not running, so nothing was redeployed")
	vars, err := e.apps.Env(t.Context(), e.owner(), deploy.EnvScope{Scope: deploy.ScopeApp, Ref: deploy.AppRef{Project: "shop", Name: "web"}})
	if err != nil || len(vars) != 2 || vars["B"] != "two words" {
		t.Errorf("stored variables: %v, %v", vars, err)
	}

	// Once deployed, saving redeploys and links the deployment.
	if _, err := e.apps.Deploy(t.Context(), e.owner(), deploy.AppRef{Project: "shop", Name: "web"}, deploy.DeployInput{}); err != nil {
		t.Fatal(err)
	}
	e.runDeployments()
	waitFor(t, "live", func() bool {
		a, err := e.apps.App(t.Context(), e.owner(), deploy.AppRef{Project: "shop", Name: "web"})
		return err == nil && a.CurrentDeploymentID != ""
	})
	p = b.post("/projects/shop/apps/web/env", url.Values{"csrf_token": {tok}, "dotenv": {"A=2\n"}}, "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("save after deploy: %d", p.status)
	}
	mustContain(t, "redeployed", p.body, "Saved 1 variable.", `href="/projects/shop/apps/web/deployments/2"`, "deployment #2")
}

func TestDeleteAppRequiresTypedName(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	b.createApp("shop", appFormValues(tok, "web"))
	ref := deploy.AppRef{Project: "shop", Name: "web"}
	exists := func() bool {
		_, err := e.apps.App(t.Context(), e.owner(), ref)
		return err == nil
	}

	mustContain(t, "settings", b.get("/projects/shop/apps/web/settings").body, `name="confirm_name"`, `name="delete_volumes"`, "Delete web")
	for _, typed := range []string{"", "we", "WEB", "shop"} {
		p := b.post("/projects/shop/apps/web/delete", url.Values{"csrf_token": {tok}, "confirm_name": {typed}})
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("typed %q: %d, want 422", typed, p.status)
		}
		mustContain(t, "typed "+typed, p.body, `id="confirm-name-error"`, "Nothing was deleted")
	}
	if p := b.post("/projects/shop/apps/web/delete", url.Values{"confirm_name": {"web"}}); p.status != http.StatusForbidden {
		t.Errorf("delete without token: %d", p.status)
	}
	// Volumes too: a second page asks again and nothing happens yet.
	p := b.post("/projects/shop/apps/web/delete", url.Values{"csrf_token": {tok}, "confirm_name": {"web"}, "delete_volumes": {"on"}})
	if p.status != http.StatusOK {
		t.Fatalf("delete with volumes: %d", p.status)
	}
	mustContain(t, "volume confirmation", p.body, "Delete web and its volumes?", "<code>data</code>", `name="volumes_confirmed" value="yes"`, "Keep everything")
	if !exists() || len(e.releases.removedVolumes()) != 0 {
		t.Fatal("the first step deleted something")
	}
	p = b.post("/projects/shop/apps/web/delete", url.Values{"csrf_token": {tok}, "confirm_name": {"web"}, "delete_volumes": {"on"}, "volumes_confirmed": {"yes"}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/projects/shop?notice=app-deleted-volumes") {
		t.Fatalf("confirmed delete: %d → %q", p.status, p.location())
	}
	if exists() {
		t.Error("app still exists")
	}
	if v := e.releases.removedVolumes(); len(v) != 1 || !strings.HasSuffix(v[0], "-data") {
		t.Errorf("removed volumes: %v", v)
	}
	mustContain(t, "after delete", b.get(p.location()).body, "App and its volumes deleted")

	// Without the box, the name alone deletes and keeps volumes.
	b.createApp("shop", appFormValues(tok, "api"))
	p = b.post("/projects/shop/apps/api/delete", url.Values{"csrf_token": {tok}, "confirm_name": {"api"}})
	if p.status != http.StatusSeeOther || !strings.Contains(p.location(), "notice=app-deleted#") {
		t.Fatalf("delete api: %d → %q", p.status, p.location())
	}
	if v := e.releases.removedVolumes(); len(v) != 1 {
		t.Errorf("volumes removed without asking: %v", v)
	}
}

func TestUnknownProjectAndAppAre404(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	for _, path := range []string{"/projects/nope", "/projects/shop/apps/nope", "/projects/shop/apps/nope/logs", "/projects/nope/apps/new", "/projects/shop/apps/nope/deployments/1"} {
		if p := b.get(path); p.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, p.status)
		}
	}
}

// TestProjectPagesHaveNoInlineCode renders the projects pages in their
// interesting states through the CSP scanner.
func TestProjectPagesHaveNoInlineCode(t *testing.T) {
	e := newTestEnv(t)
	e.runDeployments()
	b := e.browser()
	b.setupOwner()
	pages := map[string]string{"projects empty": b.get("/projects").body, "dashboard empty": b.get("/").body}
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	pages["new app"] = b.get("/projects/shop/apps/new").body
	bad := appFormValues(tok, "web")
	bad.Set("image", "BAD")
	bad.Set("ports", "x")
	pages["new app errors"] = b.post("/projects/shop/apps", bad).body
	form := appFormValues(tok, "web")
	form.Set("then", "deploy")
	b.createApp("shop", form)
	waitFor(t, "live", func() bool {
		a, err := e.apps.App(t.Context(), e.owner(), deploy.AppRef{Project: "shop", Name: "web"})
		return err == nil && a.CurrentDeploymentID != ""
	})
	for _, path := range []string{
		"/", "/projects", "/projects/shop", "/projects/shop/apps/web", "/projects/shop/apps/web/deployments",
		"/projects/shop/apps/web/deployments/1", "/projects/shop/apps/web/logs", "/projects/shop/apps/web/env",
		"/projects/shop/apps/web/settings",
	} {
		pages[path] = b.get(path).body
	}
	pages["env revealed"] = b.post("/projects/shop/apps/web/env/reveal", url.Values{"csrf_token": {tok}}).body
	pages["env error"] = b.post("/projects/shop/apps/web/env", url.Values{"csrf_token": {tok}, "dotenv": {"nope"}}).body
	pages["delete volumes"] = b.post("/projects/shop/apps/web/delete", url.Values{"csrf_token": {tok}, "confirm_name": {"web"}, "delete_volumes": {"on"}}).body
	pages["delete error"] = b.post("/projects/shop/apps/web/delete", url.Values{"csrf_token": {tok}, "confirm_name": {"x"}}).body
	pages["overview fragment"] = b.do(htmxGet(e, "/projects/shop/apps/web/overview")).body
	pages["progress fragment"] = b.do(htmxGet(e, "/projects/shop/apps/web/deployments/1/progress")).body
	pages["project delete refused"] = b.post("/projects/shop/delete", url.Values{"csrf_token": {tok}}).body
	assertNoInline(t, pages)
}
