package web

import (
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/testenv/gitea"
)

// withGitea gives the manager a build queue nobody works and trusts the
// Gitea's CA, as --git-ca-file does; loopback hosts are allowed.
func (e *testEnv) withGitea(srv *gitea.Server) {
	e.t.Helper()
	// The server's CA file lives in its own directory; a copy outlives it.
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		e.t.Fatal(err)
	}
	ca := filepath.Join(e.t.TempDir(), "gitea-ca.pem")
	if err := os.WriteFile(ca, pem, 0o600); err != nil {
		e.t.Fatal(err)
	}
	workers := jobs.NewWorkers()
	if err := jobs.Register(workers, jobs.BuildKind(time.Minute), e.apps.RunBuild); err != nil {
		e.t.Fatal(err)
	}
	q, err := jobs.Open(e.t.Context(), e.db.SQL(), e.db.Dialect(), jobs.Options{Workers: workers})
	if err != nil {
		e.t.Fatalf("open job queue: %v", err)
	}
	e.apps.WithBuilds(deploy.BuildConfig{Queue: q, PrivateHosts: true, GitCAFile: ca})
}

func connectionForm(tok, name, baseURL, token string) url.Values {
	return url.Values{"csrf_token": {tok}, "name": {name}, "provider": {"gitea"}, "base_url": {baseURL}, "token": {token}}
}

// fieldErrorText is the error shown under the input id, unescaped.
func fieldErrorText(body, id string) string {
	m := regexp.MustCompile(`(?s)<p class="field-error" id="` + regexp.QuoteMeta(id) + `-error">.*?<span>(.*?)</span>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestGitConnections walks git connections through the UI against a real
// Gitea: a refused token is shown next to its input and stores nothing; a
// connection is listed; its repositories and branches fill the new-app
// form; an app made through it gets its webhook at Gitea and says so; the
// token never comes back.
func TestGitConnections(t *testing.T) {
	srv := gitea.Start(t)
	srv.CreateRepo(t, "shop", map[string]string{"Dockerfile": "FROM scratch\n"})
	srv.Branch(t, "shop", "release")
	e := newTestEnv(t)
	e.withGitea(srv)
	b := e.browser()
	b.setupOwner()
	var bodies []string
	keep := func(p reply) reply { bodies = append(bodies, p.body); return p }

	page := keep(b.get("/settings"))
	mustContain(t, "settings", page.body, `id="connections"`, `href="#connections"`, "No git connections yet", `id="connection-token" name="token" type="password"`,
		"write:repository", "read:user", `<option value="gitea">Gitea or Forgejo</option>`)
	tok := b.csrf("/settings")

	// A wrong token: the provider's reason under the token input, what was
	// typed kept except the token.
	const wrongToken = "0123456789abcdef0123456789abcdef01234567"
	for _, htmx := range []bool{false, true} {
		var headers []string
		if htmx {
			headers = []string{"HX-Request: true"}
		}
		p := keep(b.post("/settings/connections", connectionForm(tok, "gitea", srv.URL, wrongToken), headers...))
		if p.status != http.StatusUnprocessableEntity {
			t.Fatalf("wrong token (htmx %v): %d\n%s", htmx, p.status, p.body)
		}
		if htmx == strings.Contains(p.body, "<html") {
			t.Errorf("wrong token: htmx %v, whole page %v", htmx, strings.Contains(p.body, "<html"))
		}
		if msg := fieldErrorText(p.body, "connection-token"); !strings.Contains(msg, "401") {
			t.Errorf("wrong token: the token's error is %q, want Gitea's refusal", msg)
		}
		mustContain(t, "wrong token", p.body, `aria-describedby="connection-token-error`, `value="gitea"`, `value="`+srv.URL+`"`)
		mustNotContain(t, "wrong token", p.body, wrongToken)
	}
	// A bad name and a plain-HTTP server are refused before Gitea is asked.
	p := keep(b.post("/settings/connections", connectionForm(tok, "Bad Name", srv.URL, srv.Token)))
	if p.status != http.StatusUnprocessableEntity || fieldErrorText(p.body, "connection-name") == "" {
		t.Errorf("bad name: %d, error %q", p.status, fieldErrorText(p.body, "connection-name"))
	}
	if cs, _ := e.apps.Connections(t.Context(), e.owner()); len(cs) != 0 {
		t.Fatalf("refused connections were stored: %+v", cs)
	}

	// Added: the section lists it with its account.
	p = keep(b.post("/settings/connections", connectionForm(tok, "gitea", srv.URL, srv.Token), "HX-Request: true"))
	if p.status != http.StatusOK {
		t.Fatalf("add: %d\n%s", p.status, p.body)
	}
	mustContain(t, "added", p.body, `<section class="card" id="connections"`, "Connection “gitea” added.", `id="connection-gitea"`,
		"<code>"+srv.URL+"</code>", "<td>"+srv.User+"</td>", "Gitea or Forgejo", "1 connection")
	mustNotContain(t, "added", p.body, "<html")
	mustContain(t, "added form is empty", p.body, `id="connection-name" name="name" type="text" value=""`)
	list := keep(b.get("/settings"))
	mustContain(t, "settings with a connection", list.body, `id="connection-gitea"`, `action="/settings/connections/gitea/delete"`, "Yes, remove")

	// The new-app form offers it; picking it lists the repositories, and
	// picking one lists its branches with the default chosen.
	b.createProject("shop")
	form := keep(b.get("/projects/shop/apps/new"))
	mustContain(t, "new app", form.body, `<optgroup label="From a connection">`, `<option value="connection:gitea">gitea (`+srv.User+" at ",
		`hx-get="/connections/repos"`, `id="git-repo-slot"`, `id="git-branch-slot"`)
	repos := keep(b.get("/connections/repos?git_provider=connection:gitea", "HX-Request: true"))
	if repos.status != http.StatusOK {
		t.Fatalf("repos partial: %d\n%s", repos.status, repos.body)
	}
	mustContain(t, "repos partial", repos.body, `<select id="git-url" name="git_url"`, `hx-get="/connections/branches"`,
		`<option value="`+srv.User+`/shop">`+srv.User+`/shop</option>`, `id="git-branch-slot" class="git-slot" hx-swap-oob="true"`)
	mustNotContain(t, "repos partial", repos.body, "<html")
	back := keep(b.get("/connections/repos?git_provider=git&git_url=x", "HX-Request: true"))
	mustContain(t, "repos partial for a URL", back.body, `<input id="git-url" name="git_url" type="text" value="x"`)
	branches := keep(b.get("/connections/branches?git_provider=connection:gitea&git_url="+url.QueryEscape(srv.User+"/shop"), "HX-Request: true"))
	mustContain(t, "branches partial", branches.body, `<select id="git-branch" name="git_branch"`, `<option value="main" selected>main</option>`, `<option value="release">release</option>`)
	missing := keep(b.get("/connections/branches?git_provider=connection:gitea&git_url="+url.QueryEscape(srv.User+"/nope"), "HX-Request: true"))
	mustContain(t, "branches of a missing repository", missing.body, `<input id="git-branch" name="git_branch" type="text"`, "not found")

	// Created from the connection: Gitea has the webhook, and the Source
	// tab says it was created there.
	f := gitAppFormValues(b.csrf("/projects/shop/apps/new"), "api")
	f.Set("git_provider", "connection:gitea")
	f.Set("git_url", srv.User+"/shop")
	f.Set("git_branch", "release")
	f.Set("git_token", "")
	loc := b.createApp("shop", f)
	if !strings.HasPrefix(loc, "/projects/shop/apps/api/source?notice=git-app-created&webhook=created+at+") {
		t.Fatalf("after creating from a connection: redirected to %s", loc)
	}
	src, err := e.apps.GitSource(t.Context(), e.owner(), apiRef)
	if err != nil {
		t.Fatal(err)
	}
	if src.Branch != "release" || !src.HasToken || !strings.HasPrefix(src.CloneURL, srv.URL+"/") {
		t.Errorf("stored source %+v", src)
	}
	var hooks []struct {
		Config map[string]string `json:"config"`
	}
	srv.API(t, "GET", "/api/v1/repos/"+srv.User+"/shop/hooks", nil, &hooks)
	if len(hooks) != 1 || hooks[0].Config["url"] != e.srv.URL+"/hooks/"+src.WebhookID {
		t.Errorf("hooks at Gitea %+v, want one to %s/hooks/%s", hooks, e.srv.URL, src.WebhookID)
	}
	tab := keep(b.get(loc))
	mustContain(t, "source tab", tab.body, `id="webhook-notice"`, "Webhook created.", srv.URL+"/"+srv.User+"/shop")
	// The note is signed: a link that forges one shows nothing.
	forged := keep(b.get("/projects/shop/apps/api/source?webhook=" + url.QueryEscape("not created at the provider: call +1 555") + "&webhook_sig=x"))
	mustNotContain(t, "forged note", forged.body, "555", `id="webhook-notice"`)

	// Remove, then again from a stale tab.
	p = keep(b.post("/settings/connections/gitea/delete", url.Values{"csrf_token": {tok}}, "HX-Request: true"))
	mustContain(t, "removed", p.body, "Connection “gitea” removed.", "No git connections yet")
	if p := keep(b.post("/settings/connections/gitea/delete", url.Values{"csrf_token": {tok}})); p.location() != "/settings?notice=connection-missing#connections" {
		t.Errorf("remove twice: %d → %q", p.status, p.location())
	}

	for i, body := range bodies {
		if strings.Contains(body, srv.Token) {
			t.Errorf("response %d contains the connection's token", i)
		}
	}
	mustNotContain(t, "log", e.logs.String(), srv.Token)
	assertNoInline(t, map[string]string{"settings": list.body, "new app": form.body, "repos": repos.body, "branches": branches.body, "source": tab.body})
}

// TestGitConnectionWebhookNotice covers the answer the Source tab gives
// when the webhook could not be created, which a working Gitea does not
// produce.
func TestGitConnectionWebhookNotice(t *testing.T) {
	e := newTestEnv(t)
	e.withBuilds()
	b := e.browser()
	shopWithGitApp(e, b)
	p := e.owner()
	note := "not created at the provider (gitea: creating webhook: the token may not do this (403)); set it up by hand"
	// The session's token signs the note; the browser's is that of its own
	// session, so sign with the page's.
	p.CSRFToken = b.csrf("/projects/shop/apps/api/source")
	page := b.get("/projects/shop/apps/api/source?" + webhookNoteQuery(p, note))
	mustContain(t, "failed webhook", page.body, "Webhook not created at the provider.", "Gitea: creating webhook: the token may not do this (403).", "Set it up by hand")
}

// TestGitConnectionsReadOnly: a viewer sees the connections but neither the
// form nor the remove buttons, and is refused the posts; the posts need the
// CSRF token.
func TestGitConnectionsReadOnly(t *testing.T) {
	e := newTestEnv(t)
	owner := e.browser()
	owner.setupOwner()
	viewer := e.memberBrowser(owner, "viewer@example.com", authz.Viewer)
	page := viewer.get("/settings")
	if page.status != http.StatusOK {
		t.Fatalf("settings as viewer: %d", page.status)
	}
	mustContain(t, "viewer settings", page.body, `id="connections"`, "can see the connections but not change them")
	mustNotContain(t, "viewer settings", page.body, `action="/settings/connections"`, `id="connection-token"`)
	tok := viewer.csrf("/settings")
	if p := viewer.post("/settings/connections", connectionForm(tok, "gitea", "https://gitea.example.com", "secret")); p.status != http.StatusForbidden {
		t.Errorf("viewer add: %d, want 403", p.status)
	}
	if p := viewer.post("/settings/connections/gitea/delete", url.Values{"csrf_token": {tok}}); p.status != http.StatusForbidden {
		t.Errorf("viewer remove: %d, want 403", p.status)
	}

	otok := owner.csrf("/settings")
	for _, c := range []struct {
		name    string
		path    string
		form    url.Values
		headers []string
	}{
		{"add without token", "/settings/connections", connectionForm("", "gitea", "https://gitea.example.com", "secret"), nil},
		{"add with wrong token", "/settings/connections", connectionForm("nope", "gitea", "https://gitea.example.com", "secret"), []string{"HX-Request: true"}},
		{"add cross-site", "/settings/connections", connectionForm(otok, "gitea", "https://gitea.example.com", "secret"), []string{"Sec-Fetch-Site: cross-site"}},
		{"remove without token", "/settings/connections/gitea/delete", url.Values{}, nil},
	} {
		if p := owner.post(c.path, c.form, c.headers...); p.status != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, p.status)
		}
	}
}

// TestGitConnectionsBrowser adds a connection and makes an app through it
// in Chromium, under the CSP, and saves screenshots.
func TestGitConnectionsBrowser(t *testing.T) {
	chromium, shots := browserPrereqs(t)
	srv := gitea.Start(t)
	srv.CreateRepo(t, "shop", map[string]string{"Dockerfile": "FROM scratch\n"})
	srv.Branch(t, "shop", "release")
	e := newTestEnv(t)
	e.withGitea(srv)
	hb := e.browser()
	hb.setupOwner()
	hb.createProject("shop")
	base := e.srv.URL

	c := newChrome(t, chromium, shots, 3*time.Minute)
	step, screenshot := c.step, c.screenshot
	step("sign in", chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.ID("email"), ownerEmail), chromedp.SendKeys(chromedp.ID("password"), ownerPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("engine-title")))
	c.stepExpecting("422", "wrong token", chromedp.Navigate(base+"/settings#connections"), chromedp.WaitVisible(chromedp.ID("connection-name")),
		chromedp.SendKeys(chromedp.ID("connection-name"), "gitea"),
		chromedp.SendKeys(chromedp.ID("connection-base-url"), srv.URL),
		chromedp.SendKeys(chromedp.ID("connection-token"), "0123456789abcdef0123456789abcdef01234567"),
		chromedp.Click(chromedp.CSS(`.connection-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("connection-token-error")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("connections").scrollIntoView()`))
	screenshot("connections-error-light")
	step("add", chromedp.SendKeys(chromedp.ID("connection-token"), srv.Token),
		chromedp.Click(chromedp.CSS(`.connection-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("connection-gitea")),
		chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	screenshot("connections-light")
	step("new app from a connection", chromedp.Navigate(base+"/projects/shop/apps/new"), chromedp.WaitVisible(chromedp.ID("app-name")),
		chromedp.SendKeys(chromedp.ID("app-name"), "api"),
		chromedp.Click(chromedp.CSS(`label[for="source-git"]`)),
		// SetValue fires input and change, as a person's pick does.
		chromedp.SetValue(chromedp.ID("git-provider"), "connection:gitea"),
		chromedp.WaitVisible(chromedp.CSS(`select#git-url`)),
		// htmx listens on swapped-in content once it settled.
		chromedp.WaitNotPresent(chromedp.CSS(`#git-repo-slot .htmx-added`)),
		chromedp.SetValue(chromedp.CSS(`select#git-url`), srv.User+"/shop"),
		chromedp.WaitVisible(chromedp.CSS(`select#git-branch`)),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("git-source").scrollIntoView()`))
	screenshot("app-new-connection-light")
	step("create", chromedp.Click(chromedp.CSS(`button[name=then][value=create]`)), chromedp.WaitVisible(chromedp.ID("webhook-notice")))
	screenshot("app-source-connection-light")
}
