package web

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// registryPassword must never come back in any response.
const registryPassword = "pw-Kq7vX2mZ9rT4-never-echo"

var registryRowRE = regexp.MustCompile(`<tbody id="registry-(reg_[^"]+)">`)

// registryIDs lists the registry rows of a page or fragment, in order.
func registryIDs(body string) []string {
	var ids []string
	for _, m := range registryRowRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func registryForm(tok, name, server, username, password string) url.Values {
	return url.Values{"csrf_token": {tok}, "name": {name}, "server": {server}, "username": {username}, "password": {password}}
}

func TestRegistriesAddListRemove(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	var bodies []string
	keep := func(p reply) reply { bodies = append(bodies, p.body); return p }

	empty := keep(b.get("/settings"))
	mustContain(t, "empty settings", empty.body, `id="registries"`, "No registries yet",
		"Berth uses these credentials to pull images from private registries on every node; passwords are stored encrypted and never shown again.")
	mustNotContain(t, "empty settings", empty.body, "Nothing here can be changed", "Where built images are pushed")
	tok := b.csrf("/settings")

	// Plain form post: redirect back to the list.
	p := keep(b.post("/settings/registries", registryForm(tok, "ghcr", " ghcr.io ", "deploy-bot", registryPassword)))
	if p.status != http.StatusSeeOther || p.location() != "/settings?notice=registry-added#registries" {
		t.Fatalf("plain create: %d → %q\n%s", p.status, p.location(), p.body)
	}
	list := keep(b.get(p.location()))
	mustContain(t, "list", list.body, "Registry added.", "<code>ghcr.io</code>", "deploy-bot", ">ghcr<", `type="password"`)

	// htmx: the section alone, with the server as image names write it.
	p = keep(b.post("/settings/registries", registryForm(tok, "private", "Registry.Example.COM:5000", "ci", registryPassword), "HX-Request: true"))
	if p.status != http.StatusOK {
		t.Fatalf("htmx create: %d\n%s", p.status, p.body)
	}
	mustNotContain(t, "htmx fragment", p.body, "<html", "<body")
	mustContain(t, "htmx fragment", p.body, `<section class="card" id="registries"`, "Registry “private” added.",
		"<code>registry.example.com:5000</code>", "<code>ghcr.io</code>", "2 registries")
	ids := registryIDs(p.body)
	if len(ids) != 2 {
		t.Fatalf("after two adds the list has rows %v", ids)
	}
	// The form comes back empty, ready for the next registry.
	if strings.Contains(p.body, `value="private"`) || strings.Contains(p.body, `value="ci"`) {
		t.Error("the add form kept the values of the registry just added")
	}

	// Remove with htmx: the section comes back without the row.
	gone := ids[1] // by name: ghcr, private
	p = keep(b.post("/settings/registries/"+gone+"/delete", url.Values{"csrf_token": {tok}}, "HX-Request: true"))
	if p.status != http.StatusOK {
		t.Fatalf("htmx remove: %d\n%s", p.status, p.body)
	}
	mustContain(t, "removed", p.body, "Registry “private” removed.", "next pull from registry.example.com:5000 goes without credentials")
	if got := registryIDs(p.body); len(got) != 1 || got[0] != ids[0] {
		t.Errorf("after removing %s the rows are %v", gone, got)
	}

	// Remove without JavaScript: redirect, then the empty state.
	p = keep(b.post("/settings/registries/"+ids[0]+"/delete", url.Values{"csrf_token": {tok}}))
	if p.status != http.StatusSeeOther || p.location() != "/settings?notice=registry-removed#registries" {
		t.Fatalf("plain remove: %d → %q", p.status, p.location())
	}
	list = keep(b.get(p.location()))
	mustContain(t, "after removing all", list.body, "Registry removed.", "No registries yet")
	if got := registryIDs(list.body); len(got) != 0 {
		t.Errorf("rows left after removing both: %v", got)
	}

	// Removing it again, from a stale tab.
	if p := keep(b.post("/settings/registries/"+ids[0]+"/delete", url.Values{"csrf_token": {tok}})); p.location() != "/settings?notice=registry-missing#registries" {
		t.Errorf("remove twice, plain: %d → %q", p.status, p.location())
	}
	p = keep(b.post("/settings/registries/"+ids[0]+"/delete", url.Values{"csrf_token": {tok}}, "HX-Request: true"))
	if p.status != http.StatusOK || p.header.Get("HX-Retarget") != "#registries" {
		t.Errorf("remove twice, htmx: %d, HX-Retarget %q", p.status, p.header.Get("HX-Retarget"))
	}
	mustContain(t, "remove twice", p.body, "no longer exists")

	for i, body := range bodies {
		if strings.Contains(body, registryPassword) {
			t.Errorf("response %d contains the registry password", i)
		}
	}
}

func TestRegistryValidationIsInline(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	tok := b.csrf("/settings")
	if p := b.post("/settings/registries", registryForm(tok, "ghcr", "ghcr.io", "deploy-bot", registryPassword)); p.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", p.status, p.body)
	}

	cases := []struct {
		name, regName, server, username, password string
		htmx                                      bool
		field                                     string // the input that must carry the error
		want                                      string
	}{
		{"scheme", "hub", "https://registry.example.com", "me", registryPassword, false, "server", "has a scheme; leave out https://"},
		{"path", "hub", "registry.example.com/team", "me", registryPassword, true, "server", "has a path"},
		{"bad port", "hub", "registry.example.com:99999", "me", registryPassword, true, "server", "port 99999 is not between 1 and 65535"},
		{"server taken", "other", "GHCR.io", "me", registryPassword, true, "server", "ghcr.io already has credentials, in registry “ghcr”"},
		{"name taken", "ghcr", "quay.io", "me", registryPassword, false, "name", "is already taken by another registry"},
		{"bad name", "My Registry", "quay.io", "me", registryPassword, true, "name", "does not start with a lowercase letter"},
		{"no username", "quay", "quay.io", "", registryPassword, true, "username", "is required"},
		{"no password", "quay", "quay.io", "me", "", true, "password", "is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.htmx {
				headers = []string{"HX-Request: true"}
			}
			p := b.post("/settings/registries", registryForm(tok, c.regName, c.server, c.username, c.password), headers...)
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", p.status, p.body)
			}
			if c.htmx == strings.Contains(p.body, "<html") {
				t.Errorf("htmx %v, but a whole page %v", c.htmx, strings.Contains(p.body, "<html"))
			}
			// The message sits next to its input, which is marked invalid
			// and described by it.
			errID := "registry-" + c.field + "-error"
			mustContain(t, c.name, p.body, `id="`+errID+`"`, `aria-describedby="`+errID, c.want, "Please correct the highlighted field.")
			if m := regexp.MustCompile(`(?s)<input id="registry-` + c.field + `"[^>]*>`).FindString(p.body); !strings.Contains(m, `aria-invalid="true"`) {
				t.Errorf("input %s is not marked invalid: %s", c.field, m)
			}
			// What was typed stays, except the password.
			if c.regName != "" && c.field != "name" {
				mustContain(t, c.name, p.body, `value="`+c.regName+`"`)
			}
			mustNotContain(t, c.name, p.body, registryPassword)
		})
	}

	// Nothing was stored: still only the first registry.
	if ids := registryIDs(b.get("/settings").body); len(ids) != 1 {
		t.Errorf("rows after refused adds: %v", ids)
	}
}

func TestRegistryActionsNeedCSRF(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	tok := b.csrf("/settings")
	if p := b.post("/settings/registries", registryForm(tok, "ghcr", "ghcr.io", "deploy-bot", registryPassword)); p.status != http.StatusSeeOther {
		t.Fatalf("create: %d", p.status)
	}
	id := registryIDs(b.get("/settings").body)[0]

	add := registryForm("", "quay", "quay.io", "me", registryPassword)
	withTok := registryForm(tok, "quay", "quay.io", "me", registryPassword)
	cases := []struct {
		name    string
		path    string
		form    url.Values
		headers []string
	}{
		{"add without token", "/settings/registries", add, nil},
		{"add with wrong token", "/settings/registries", registryForm("nope", "quay", "quay.io", "me", registryPassword), nil},
		{"add htmx without header", "/settings/registries", add, []string{"HX-Request: true"}},
		{"add cross-site with token", "/settings/registries", withTok, []string{"Sec-Fetch-Site: cross-site"}},
		{"test without token", "/settings/registries/" + id + "/test", url.Values{}, []string{"HX-Request: true"}},
		{"remove without token", "/settings/registries/" + id + "/delete", url.Values{}, nil},
		{"remove from another origin", "/settings/registries/" + id + "/delete", url.Values{"csrf_token": {tok}}, []string{"Origin: https://evil.example"}},
	}
	for _, c := range cases {
		p := b.post(c.path, c.form, c.headers...)
		if p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.name, p.status)
		}
		if strings.Contains(p.body, registryPassword) {
			t.Errorf("%s: the refusal echoes the password", c.name)
		}
	}
	if ids := registryIDs(b.get("/settings").body); len(ids) != 1 || ids[0] != id {
		t.Errorf("a forbidden request changed the registries: %v", ids)
	}

	// htmx sends the token as a header.
	p := b.post("/settings/registries", registryForm("", "quay", "quay.io", "me", registryPassword), "HX-Request: true", "X-CSRF-Token: "+tok)
	if p.status != http.StatusOK || len(registryIDs(p.body)) != 2 {
		t.Errorf("htmx add with X-CSRF-Token header: %d, rows %v", p.status, registryIDs(p.body))
	}
}

func TestRegistryTestShowsResultInRow(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	tok := b.csrf("/settings")
	for _, f := range []url.Values{
		registryForm(tok, "ghcr", "ghcr.io", "deploy-bot", registryPassword),
		registryForm(tok, "quay", "quay.io", "robot", registryPassword),
	} {
		if p := b.post("/settings/registries", f); p.status != http.StatusSeeOther {
			t.Fatalf("create: %d\n%s", p.status, p.body)
		}
	}
	ids := registryIDs(b.get("/settings").body)

	// The fake cluster cannot log in to registries, so TestRegistry fails
	// with an internal error: the row says so and the log has the cause.
	p := b.post("/settings/registries/"+ids[1]+"/test", url.Values{}, "HX-Request: true", "X-CSRF-Token: "+tok)
	if p.status != http.StatusOK {
		t.Fatalf("htmx test: %d\n%s", p.status, p.body)
	}
	if !strings.HasPrefix(p.body, `<tbody id="registry-`+ids[1]+`">`) {
		t.Errorf("htmx test answers something other than its row:\n%s", p.body)
	}
	mustContain(t, "test row", p.body, "<code>quay.io</code>", "registry-test-warn", "Not tested:", "internal error", "request id req-")
	mustNotContain(t, "test row", p.body, "<html", "ghcr.io", registryPassword)
	mustContain(t, "log", e.logs.String(), "test registry", "cannot test registry logins", ids[1])
	mustNotContain(t, "log", e.logs.String(), registryPassword)

	// Without JavaScript: the whole page, the result under its row only.
	p = b.post("/settings/registries/"+ids[0]+"/test", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusOK {
		t.Fatalf("plain test: %d", p.status)
	}
	mustContain(t, "plain test", p.body, "<html", "Not tested:")
	rows := strings.Split(p.body, `<tbody id="registry-`)
	if len(rows) != 3 || !strings.Contains(rows[1], "registry-test-warn") || strings.Contains(rows[2], "registry-test-") {
		t.Errorf("the result is not under the tested row alone:\n%s", p.body)
	}

	// A registry removed meanwhile: the section comes back instead.
	p = b.post("/settings/registries/reg_missing/test", url.Values{}, "HX-Request: true", "X-CSRF-Token: "+tok)
	if p.header.Get("HX-Retarget") != "#registries" || !strings.Contains(p.body, "no longer exists") {
		t.Errorf("test of a missing registry: %d, HX-Retarget %q", p.status, p.header.Get("HX-Retarget"))
	}
}

// TestRegistryRowRendersResults covers the answers a real engine gives,
// which the fake cluster cannot produce.
func TestRegistryRowRendersResults(t *testing.T) {
	pages := mustParsePages(loadAssets())
	for _, c := range []struct {
		result registryTestResult
		want   []string
	}{
		{registryTestResult{OK: true, Tone: "ok", Title: "Login works", Message: "logged in to ghcr.io as deploy-bot"}, []string{"registry-test-ok", "Login works", "logged in to ghcr.io as deploy-bot"}},
		{registryTestResult{Tone: "fail", Title: "Login failed", Message: "unauthorized: ghcr.io refused the username or password"}, []string{"registry-test-fail", "Login failed", "refused the username or password"}},
	} {
		var buf bytes.Buffer
		row := registryRow{CSRF: "tok", ID: "reg_1", Name: "ghcr", Server: "ghcr.io", Username: "deploy-bot", Created: time.Now(), Test: &c.result}
		if err := pages["settings"].ExecuteTemplate(&buf, "registry-row", row); err != nil {
			t.Fatal(err)
		}
		mustContain(t, c.result.Message, buf.String(), c.want...)
	}
}

func TestSettingsWithoutApps(t *testing.T) {
	e := newTestEnv(t, func(d *Deps) { d.Apps = nil })
	b := e.browser()
	b.setupOwner()
	p := b.get("/settings")
	if p.status != http.StatusOK {
		t.Fatalf("settings: %d", p.status)
	}
	mustContain(t, "settings without apps", p.body, "This installation", "Coming in later releases")
	mustNotContain(t, "settings without apps", p.body, `id="registries"`)
}

func TestSettingsNoInlineScriptOrStyle(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	tok := b.csrf("/settings")
	pages := map[string]string{"settings empty": b.get("/settings").body}
	pages["registry errors"] = b.post("/settings/registries", registryForm(tok, "x y", "https://x", "", "")).body
	pages["registry errors fragment"] = b.post("/settings/registries", registryForm(tok, "x y", "https://x", "", ""), "HX-Request: true").body
	pages["registry added fragment"] = b.post("/settings/registries", registryForm(tok, "ghcr", "ghcr.io", "me", registryPassword), "HX-Request: true").body
	pages["settings with registry"] = b.get("/settings").body
	id := registryIDs(pages["settings with registry"])[0]
	pages["registry test row"] = b.post("/settings/registries/"+id+"/test", url.Values{"csrf_token": {tok}}, "HX-Request: true").body
	pages["registry test page"] = b.post("/settings/registries/"+id+"/test", url.Values{"csrf_token": {tok}}).body
	assertNoInline(t, pages)
}
