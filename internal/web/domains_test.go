package web

import (
	"html"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

const domainsPath = "/projects/shop/apps/web/domains"

// domainForm is the add-domain form as a browser sends it: a checkbox that
// is not ticked is not sent at all.
func domainForm(tok, host, prefix, port string, strip, https bool) url.Values {
	f := url.Values{"csrf_token": {tok}, "host": {host}, "path_prefix": {prefix}, "port": {port}}
	if strip {
		f.Set("strip_prefix", "on")
	}
	if https {
		f.Set("https", "on")
	}
	return f
}

// shopWithWeb sets up the owner, project shop and its app web on port 8080,
// and returns the CSRF token.
func shopWithWeb(e *testEnv, b *browser) string {
	e.t.Helper()
	b.setupOwner()
	b.createProject("shop")
	b.createApp("shop", appFormValues(b.csrf("/projects/shop/apps/new"), "web"))
	return b.csrf(domainsPath)
}

func (e *testEnv) domains(ref deploy.AppRef) []deploy.Domain {
	e.t.Helper()
	ds, err := e.apps.Domains(e.t.Context(), e.owner(), ref)
	if err != nil {
		e.t.Fatalf("list domains: %v", err)
	}
	return ds
}

// setCert stores a certificate's state as the issuer would.
func (e *testEnv) setCert(c store.Certificate) {
	e.t.Helper()
	c.OrganizationID = e.owner().Organization.ID
	if c.Source == "" {
		c.Source = store.CertACME
	}
	if err := e.db.SaveCertificate(e.t.Context(), time.Now(), c); err != nil {
		e.t.Fatalf("save certificate: %v", err)
	}
}

var webRef = deploy.AppRef{Project: "shop", Environment: deploy.Production, Name: "web"}

func TestDomainsAddListRemove(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)

	p := b.get(domainsPath)
	if p.status != http.StatusOK {
		t.Fatalf("domains tab: %d\n%s", p.status, p.body)
	}
	mustContain(t, "empty tab", p.body, `<a href="/projects/shop/apps/web/domains" aria-current="page">Domains</a>`,
		"No domains yet", `id="domain-host"`, `placeholder="8080"`, "Empty for the app&#39;s HTTP port, 8080.",
		`<input id="domain-https" name="https" type="checkbox" value="on" checked`, `<input id="domain-strip" name="strip_prefix" type="checkbox" value="on" aria-describedby`)
	mustNotContain(t, "empty tab", p.body, `hx-trigger="every 2s"`)

	// Plain form post: the host is lowercased, the port defaults to the app's.
	p = b.post(domainsPath, domainForm(tok, "Shop.Example.com", "/api", "", true, true))
	if p.status != http.StatusSeeOther || p.location() != domainsPath+"?notice=domain-added#domains" {
		t.Fatalf("plain add: %d → %q\n%s", p.status, p.location(), p.body)
	}
	ds := e.domains(webRef)
	if len(ds) != 1 {
		t.Fatalf("after add: %d domains", len(ds))
	}
	if d := ds[0]; d.Host != "shop.example.com" || d.PathPrefix != "/api" || !d.StripPrefix || d.Port != 8080 || !d.HTTPS ||
		d.Certificate == nil || d.Certificate.Status != "pending" {
		t.Errorf("stored domain: %+v cert %+v", d.Domain, d.Certificate)
	}
	shopID := ds[0].ID
	p = b.get(p.location())
	mustContain(t, "after plain add", p.body, "Domain added.", `href="http://shop.example.com/api"`, "<code>/api</code>", ">stripped<",
		"Pending", "Requesting from the ACME CA…", `hx-get="/projects/shop/apps/web/domains/list"`, `hx-trigger="every 2s"`, "1 domain")

	// htmx: the tab's section alone, with the new row and the form empty again.
	p = b.post(domainsPath, domainForm(tok, "www.example.com", "", "9090", false, false), "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("htmx add: %d\n%s", p.status, p.body)
	}
	mustNotContain(t, "htmx add", p.body, "<html", `value="www.example.com"`)
	mustContain(t, "htmx add", p.body, `<div id="domains" class="stack">`, "www.example.com now routes to web.",
		`href="http://www.example.com/"`, "every path", "port 9090", "none, plain HTTP", "2 domains",
		`hx-trigger="every 2s"`) // shop's certificate is still pending
	mustNotContain(t, "htmx add, plain HTTP", p.body, "Berth is requesting its certificate")

	// The list refreshes itself until no certificate is pending.
	list := b.get(domainsPath+"/list", "HX-Request: true")
	if list.status != http.StatusOK || !strings.HasPrefix(list.body, `<section class="card card-flush" id="domain-list"`) {
		t.Fatalf("list fragment: %d\n%s", list.status, list.body)
	}
	mustContain(t, "pending list", list.body, `hx-trigger="every 2s"`, "Pending")
	notAfter := time.Now().Add(89*24*time.Hour + time.Hour)
	e.setCert(store.Certificate{Host: "shop.example.com", CertPEM: "-----BEGIN CERTIFICATE-----", Issuer: "Pebble Intermediate CA", NotAfter: notAfter})
	list = b.get(domainsPath+"/list", "HX-Request: true")
	mustContain(t, "issued list", list.body, "Issued", "Pebble Intermediate CA", "Expires on", notAfter.UTC().Format("2 Jan 2006"), "in 89 days",
		`href="https://shop.example.com/api"`)
	mustNotContain(t, "issued list", list.body, "hx-trigger", "<html")
	if p := b.get(domainsPath + "/list"); p.status != http.StatusSeeOther || p.location() != domainsPath {
		t.Errorf("list without htmx: %d → %q", p.status, p.location())
	}

	// The overview links them.
	mustContain(t, "overview", b.get("/projects/shop/apps/web").body, "<dt>Domains</dt>",
		`<a href="https://shop.example.com/api" rel="noopener noreferrer" target="_blank">shop.example.com/api</a>`, `>www.example.com</a>`)

	// Remove with htmx: the section comes back without the row.
	var wwwID string
	for _, d := range e.domains(webRef) {
		if d.Host == "www.example.com" {
			wwwID = d.ID
		}
	}
	p = b.post(domainsPath+"/"+wwwID+"/remove", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("htmx remove: %d\n%s", p.status, p.body)
	}
	mustContain(t, "htmx remove", p.body, "www.example.com removed.", "no longer routes it to web", "1 domain", `id="domain-`+shopID+`"`)
	mustNotContain(t, "htmx remove", p.body, `id="domain-`+wwwID+`"`, "<html")

	// Remove without JavaScript: redirect, then the empty state; the
	// certificate goes too, so nothing renews it.
	p = b.post(domainsPath+"/"+shopID+"/remove", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther || p.location() != domainsPath+"?notice=domain-removed#domains" {
		t.Fatalf("plain remove: %d → %q", p.status, p.location())
	}
	mustContain(t, "after removing all", b.get(p.location()).body, "Domain removed.", "No domains yet")
	if ds := e.domains(webRef); len(ds) != 0 {
		t.Errorf("domains left: %+v", ds)
	}
	if certs, err := e.db.Certificates(t.Context(), e.owner().Organization.ID); err != nil || len(certs) != 0 {
		t.Errorf("certificates left after removing the domain: %+v, %v", certs, err)
	}

	// Removing it again, from a stale tab.
	if p := b.post(domainsPath+"/"+shopID+"/remove", url.Values{"csrf_token": {tok}}); p.location() != domainsPath+"?notice=domain-missing#domains" {
		t.Errorf("remove twice, plain: %d → %q", p.status, p.location())
	}
	p = b.post(domainsPath+"/"+shopID+"/remove", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	if p.status != http.StatusOK || !strings.Contains(p.body, "That domain no longer exists") {
		t.Errorf("remove twice, htmx: %d\n%s", p.status, p.body)
	}
	// A domain of an app that does not exist.
	if p := b.post("/projects/shop/apps/nope/domains/"+shopID+"/remove", url.Values{"csrf_token": {tok}}); p.status != http.StatusNotFound {
		t.Errorf("remove on a missing app: %d, want 404", p.status)
	}
}

func TestDomainsOfOtherEnvironment(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	if p := b.post("/projects/shop/environments", url.Values{"csrf_token": {b.csrf("/projects/shop")}, "name": {"staging"}}); p.status != http.StatusSeeOther {
		t.Fatalf("create environment: %d", p.status)
	}
	form := appFormValues(b.csrf("/projects/shop/apps/new"), "web")
	form.Set("environment", "staging")
	b.createApp("shop", form)

	tab := domainsPath + "?env=staging"
	page := b.get(tab).body
	mustContain(t, "staging tab", page, `action="/projects/shop/apps/web/domains?env=staging"`)
	p := b.post(tab, domainForm(b.csrf(tab), "staging.example.com", "", "", false, true))
	if p.status != http.StatusSeeOther || p.location() != tab+"&notice=domain-added#domains" {
		t.Fatalf("add in staging: %d → %q", p.status, p.location())
	}
	staging := deploy.AppRef{Project: "shop", Environment: "staging", Name: "web"}
	if ds := e.domains(staging); len(ds) != 1 || ds[0].Host != "staging.example.com" {
		t.Fatalf("staging domains: %+v", ds)
	}
	mustContain(t, "staging list", b.get(tab).body, `hx-get="/projects/shop/apps/web/domains/list?env=staging"`,
		`action="/projects/shop/apps/web/domains/`+e.domains(staging)[0].ID+`/remove?env=staging"`)
}

func TestDomainValidationIsInline(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)

	ids := map[string]string{"host": "domain-host", "path_prefix": "domain-path", "port": "domain-port", "strip_prefix": "domain-strip"}
	cases := []struct {
		name               string
		host, prefix, port string
		strip, https, htmx bool
		field, want        string
	}{
		{"no host", "", "/api", "", false, true, false, "host", "Host is required, e.g. shop.example.com."},
		{"wildcard", "*.example.com", "", "", false, true, true, "host", "is a wildcard; wildcard domains need DNS-01 validation"},
		{"IP address", "10.0.0.1", "", "", false, false, false, "host", "is an IP address; a domain needs a DNS name"},
		{"bad label", "shop_1.example.com", "", "", false, true, true, "host", "letters a–z, digits and inner hyphens only"},
		{"relative path", "shop.example.com", "api", "", false, true, false, "path_prefix", "Path prefix must start with &#39;/&#39;"},
		{"trailing slash", "shop.example.com", "/api/", "", false, true, true, "path_prefix", "must not end with &#39;/&#39;"},
		{"dot segment", "shop.example.com", "/a/../b", "", false, true, false, "path_prefix", "segments are not allowed"},
		{"strip without prefix", "shop.example.com", "", "", true, true, true, "strip_prefix", "Strip prefix needs a path prefix to strip."},
		{"port too big", "shop.example.com", "", "70000", false, true, false, "port", "Container port must be a whole number between 1 and 65535"},
		{"port not a number", "shop.example.com", "", "http", false, false, true, "port", "must be a whole number between 1 and 65535, or empty"},
		{"port zero", "shop.example.com", "", "0", false, true, true, "port", "must be a whole number between 1 and 65535"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.htmx {
				headers = []string{"HX-Request: true"}
			}
			p := b.post(domainsPath, domainForm(tok, c.host, c.prefix, c.port, c.strip, c.https), headers...)
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", p.status, p.body)
			}
			if c.htmx == strings.Contains(p.body, "<html") {
				t.Errorf("htmx %v, but a whole page %v", c.htmx, strings.Contains(p.body, "<html"))
			}
			id := ids[c.field]
			mustContain(t, c.name, p.body, `id="`+id+`-error"`, c.want, "Not added. Please correct the highlighted field.")
			if m := regexp.MustCompile(`(?s)<input id="` + id + `"[^>]*>`).FindString(p.body); !strings.Contains(m, `aria-invalid="true"`) || !strings.Contains(m, id+"-error") {
				t.Errorf("input %s is not marked invalid and described by its error: %s", id, m)
			}
			// What was typed stays, checkboxes included.
			for _, v := range []string{c.host, c.prefix, c.port} {
				if v != "" {
					mustContain(t, c.name+" keeps input", html.UnescapeString(p.body), `value="`+v+`"`)
				}
			}
			https := regexp.MustCompile(`<input id="domain-https"[^>]*>`).FindString(p.body)
			if strings.Contains(https, "checked") != c.https {
				t.Errorf("HTTPS box: sent %v, shown %s", c.https, https)
			}
			strip := regexp.MustCompile(`<input id="domain-strip"[^>]*>`).FindString(p.body)
			if strings.Contains(strip, "checked") != c.strip {
				t.Errorf("strip box: sent %v, shown %s", c.strip, strip)
			}
		})
	}
	if ds := e.domains(webRef); len(ds) != 0 {
		t.Errorf("refused adds stored domains: %+v", ds)
	}
}

func TestDomainConflictIsShownAtFormTop(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)
	b.createApp("shop", appFormValues(b.csrf("/projects/shop/apps/new"), "api"))
	if p := b.post(domainsPath, domainForm(tok, "shop.example.com", "", "", false, true)); p.status != http.StatusSeeOther {
		t.Fatalf("add to web: %d\n%s", p.status, p.body)
	}

	apiDomains := "/projects/shop/apps/api/domains"
	for _, htmx := range []bool{false, true} {
		var headers []string
		if htmx {
			headers = []string{"HX-Request: true"}
		}
		p := b.post(apiDomains, domainForm(tok, "shop.example.com", "", "", false, true), headers...)
		if p.status != http.StatusUnprocessableEntity {
			t.Fatalf("htmx %v: conflict answered %d, want 422\n%s", htmx, p.status, p.body)
		}
		mustContain(t, "conflict", p.body, `class="notice notice-fail" role="alert"`,
			"Not added: shop.example.com is already routed to app shop/web.", `value="shop.example.com"`)
		mustNotContain(t, "conflict", p.body, `aria-invalid="true"`)
		// The message sits above the form, not under a field.
		if i, j := strings.Index(p.body, "is already routed"), strings.Index(p.body, `<form class="form domain-form"`); i < 0 || j < 0 || i > j {
			t.Errorf("htmx %v: the conflict is not at the top of the form", htmx)
		}
	}
	if ds := e.domains(deploy.AppRef{Project: "shop", Environment: deploy.Production, Name: "api"}); len(ds) != 0 {
		t.Errorf("the conflicting domain was added: %+v", ds)
	}
	// Another path under the same host is a route of its own, and fine.
	if p := b.post(apiDomains, domainForm(tok, "shop.example.com", "/api", "", true, true)); p.status != http.StatusSeeOther {
		t.Errorf("another path under the host: %d\n%s", p.status, p.body)
	}
}

func TestDomainActionsNeedCSRF(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)
	if p := b.post(domainsPath, domainForm(tok, "shop.example.com", "", "", false, true)); p.status != http.StatusSeeOther {
		t.Fatalf("add: %d", p.status)
	}
	id := e.domains(webRef)[0].ID
	remove := domainsPath + "/" + id + "/remove"
	cases := []struct {
		name    string
		path    string
		form    url.Values
		headers []string
	}{
		{"add without token", domainsPath, domainForm("", "www.example.com", "", "", false, true), nil},
		{"add with wrong token", domainsPath, domainForm("nope", "www.example.com", "", "", false, true), nil},
		{"add htmx without header", domainsPath, domainForm("", "www.example.com", "", "", false, true), []string{"HX-Request: true"}},
		{"add cross-site with token", domainsPath, domainForm(tok, "www.example.com", "", "", false, true), []string{"Sec-Fetch-Site: cross-site"}},
		{"remove without token", remove, url.Values{}, nil},
		{"remove from another origin", remove, url.Values{"csrf_token": {tok}}, []string{"Origin: https://evil.example"}},
	}
	for _, c := range cases {
		if p := b.post(c.path, c.form, c.headers...); p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.name, p.status)
		}
	}
	if ds := e.domains(webRef); len(ds) != 1 || ds[0].ID != id {
		t.Errorf("a forbidden request changed the domains: %+v", ds)
	}
	// htmx sends the token as a header.
	p := b.post(domainsPath, domainForm("", "www.example.com", "", "", false, true), "HX-Request: true", "X-CSRF-Token: "+tok)
	if p.status != http.StatusOK || len(e.domains(webRef)) != 2 {
		t.Errorf("htmx add with X-CSRF-Token header: %d", p.status)
	}
}

func TestDomainCertificateStates(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)
	for _, h := range []string{"ok.example.com", "soon.example.com", "failed.example.com", "renewing.example.com"} {
		if p := b.post(domainsPath, domainForm(tok, h, "", "", false, true)); p.status != http.StatusSeeOther {
			t.Fatalf("add %s: %d", h, p.status)
		}
	}
	now := time.Now()
	e.setCert(store.Certificate{Host: "ok.example.com", CertPEM: "pem", Issuer: "R11", NotAfter: now.Add(60*24*time.Hour + time.Hour)})
	e.setCert(store.Certificate{Host: "soon.example.com", CertPEM: "pem", Issuer: "R11", NotAfter: now.Add(5*24*time.Hour + time.Hour)})
	e.setCert(store.Certificate{Host: "failed.example.com", LastError: "certificate for failed.example.com: the CA could not reach http://failed.example.com/.well-known/acme-challenge/: connection refused",
		Failures: 2, NextAttemptAt: now.Add(11 * time.Minute)})
	e.setCert(store.Certificate{Host: "renewing.example.com", CertPEM: "pem", Issuer: "R11", NotAfter: now.Add(20*24*time.Hour + time.Hour),
		LastError: "rate limited.", NextAttemptAt: now.Add(2*time.Hour + 10*time.Minute)})

	page := b.get(domainsPath).body
	row := func(host string) string {
		t.Helper()
		m := regexp.MustCompile(`(?s)<tr id="domain-[^"]+">\s*<td class="cell-main"><a class="domain-link" href="[^"]*` + regexp.QuoteMeta(host) + `.*?</tr>`).FindString(page)
		if m == "" {
			t.Fatalf("no row for %s", host)
		}
		return m
	}
	mustContain(t, "issued", row("ok.example.com"), "badge-ok", "Issued", "R11", "in 60 days")
	mustContain(t, "expiring", row("soon.example.com"), "badge-warn", "Issued", "in 5 days")
	mustContain(t, "failed", row("failed.example.com"), "badge-fail", "Failed", "cert-error", "connection refused.", "Berth retries in 11 minutes.")
	mustContain(t, "renewal failed", row("renewing.example.com"), "badge-ok", "in 20 days", "Renewal failed: rate limited. Berth retries in 2 hours.")
	// Nothing is pending, so the list does not poll.
	mustNotContain(t, "settled list", page, `hx-trigger="every 2s"`)
}

func TestCertStateWords(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	next := now.Add(-time.Minute)
	for _, c := range []struct {
		name   string
		got    certView
		badge  Badge
		left   string
		retry  string
		errMsg string
	}{
		{"issued", certState("acme", "issued", "R11", now.Add(30*24*time.Hour), "", nil, now), Badge{"Issued", "ok"}, "in 30 days", "", ""},
		{"one day", certState("acme", "issued", "R11", now.Add(36*time.Hour), "", nil, now), Badge{"Issued", "warn"}, "in 1 day", "", ""},
		{"hours", certState("custom", "issued", "", now.Add(3*time.Hour), "", nil, now), Badge{"Issued", "warn"}, "in less than a day", "", ""},
		{"expired", certState("custom", "issued", "", now.Add(-72*time.Hour), "", nil, now), Badge{"Expired", "fail"}, "expired 3 days ago", "", ""},
		{"failed, retry due", certState("acme", "failed", "", time.Time{}, "timeout", &next, now), Badge{"Failed", "fail"}, "", "shortly", "timeout."},
		{"pending", certState("acme", "pending", "", time.Time{}, "", nil, now), Badge{"Pending", "info"}, "", "", ""},
	} {
		if c.got.Badge != c.badge || c.got.Left != c.left || c.got.Retry != c.retry || c.got.Error != c.errMsg {
			t.Errorf("%s: %+v", c.name, c.got)
		}
	}
	if s := certState("custom", "issued", "", now, "", nil, now).Source; s != "Custom" {
		t.Errorf("custom source reads %q", s)
	}
}

func TestDomainsWithoutHTTPPort(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	form := appFormValues(b.csrf("/projects/shop/apps/new"), "worker")
	form.Set("port", "")
	form.Set("health", "none")
	form.Set("health_arg", "")
	b.createApp("shop", form)

	tab := "/projects/shop/apps/worker/domains"
	p := b.get(tab)
	if p.status != http.StatusOK {
		t.Fatalf("tab: %d\n%s", p.status, p.body)
	}
	mustContain(t, "no port", p.body, "This app has no HTTP port", "Set an HTTP port in Settings to add domains.", `href="/projects/shop/apps/worker/settings"`)
	mustNotContain(t, "no port", p.body, `id="domain-host"`, "No domains yet")
	mustNotContain(t, "overview without port", b.get("/projects/shop/apps/worker").body, "<dt>Domains</dt>")

	// A form from before the port was removed: refused, nothing stored.
	p = b.post(tab, domainForm(b.csrf(tab), "jobs.example.com", "", "", false, true))
	if p.status != http.StatusUnprocessableEntity {
		t.Errorf("add without a port: %d, want 422", p.status)
	}
	mustContain(t, "add without a port", p.body, "This app has no HTTP port")
	if ds := e.domains(deploy.AppRef{Project: "shop", Environment: deploy.Production, Name: "worker"}); len(ds) != 0 {
		t.Errorf("domains stored for an app without a port: %+v", ds)
	}
}

func TestDomainsNoInlineScriptOrStyle(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)
	pages := map[string]string{"domains empty": b.get(domainsPath).body}
	pages["domain errors"] = b.post(domainsPath, domainForm(tok, "10.0.0.1", "api", "x", true, false)).body
	pages["domain errors fragment"] = b.post(domainsPath, domainForm(tok, "*.example.com", "", "", false, true), "HX-Request: true").body
	pages["domain added fragment"] = b.post(domainsPath, domainForm(tok, "shop.example.com", "/api", "", true, true), "HX-Request: true").body
	pages["domain list fragment"] = b.get(domainsPath+"/list", "HX-Request: true").body
	pages["domains with rows"] = b.get(domainsPath).body
	pages["overview with domains"] = b.get("/projects/shop/apps/web").body
	assertNoInline(t, pages)
}

// The options of the add form: refused values are shown at their field,
// with the options unfolded and nothing stored; accepted ones show as the
// row's target and tags. The password is never echoed.
func TestDomainOptionsForm(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)
	for _, c := range []struct {
		name, field, want string
		set               map[string]string
	}{
		{"redirect with space", "domain-redirect-to", "no query, fragment, spaces or quotes", map[string]string{"redirect_to": "https://www.example.com/a b"}},
		{"redirect newline", "domain-redirect-to", "no query", map[string]string{"redirect_to": "https://www.example.com/\r\nSet-Cookie: a=1"}},
		{"redirect code", "domain-redirect-code", "301, 302, 307 or 308", map[string]string{"redirect_to": "https://www.example.com", "redirect_code": "303"}},
		{"timeout", "domain-timeout", "between 1 and 3600", map[string]string{"timeout": "7200"}},
		{"max body", "domain-max-body", "is not a size", map[string]string{"max_body": "lots"}},
		{"auth user", "domain-auth-user", "A–Z a–z 0–9", map[string]string{"basic_auth_user": "a b", "basic_auth_password": "long enough pw"}},
		{"auth password", "domain-auth-password", "8–72 bytes", map[string]string{"basic_auth_user": "preview", "basic_auth_password": "short-pw-x"[:5]}},
		{"header line", "domain-headers", "line 2: write Name: value", map[string]string{"headers": "X-A: 1\nnot a header"}},
		{"header refused", "domain-headers", "line 1: name Set-Cookie cannot be set", map[string]string{"headers": "Set-Cookie: a=1"}},
		{"header sample fetch", "domain-headers", "must not contain", map[string]string{"headers": "X-A: %[src]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := domainForm(tok, "shop.example.com", "", "", false, true)
			for k, v := range c.set {
				f.Set(k, v)
			}
			p := b.post(domainsPath, f, "HX-Request: true")
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", p.status, p.body)
			}
			mustContain(t, c.name, html.UnescapeString(p.body), `id="`+c.field+`-error"`, c.want, `<details class="domain-options" open>`)
			if pw := c.set["basic_auth_password"]; pw != "" && strings.Contains(p.body, pw) {
				t.Errorf("the password was echoed")
			}
		})
	}
	if ds := e.domains(webRef); len(ds) != 0 {
		t.Fatalf("refused adds stored domains: %+v", ds)
	}

	f := domainForm(tok, "example.com", "", "", false, false)
	f.Set("redirect_to", "https://www.example.com")
	f.Set("redirect_code", "301")
	f.Set("redirect_keep_path", "on")
	b.post(domainsPath, f, "HX-Request: true")
	f = domainForm(tok, "www.example.com", "", "", false, false)
	for k, v := range map[string]string{"timeout": "90", "max_body": "10m", "compress": "on", "basic_auth_user": "preview",
		"basic_auth_password": "s3cret-preview", "headers": "X-Frame-Options: DENY\n\nStrict-Transport-Security: max-age=60"} {
		f.Set(k, v)
	}
	p := b.post(domainsPath, f, "HX-Request: true")
	mustContain(t, "list", html.UnescapeString(p.body), "301 → https://www.example.com/…", "timeout 90s", "body ≤ 10 MiB", "gzip", "auth: preview", "X-Frame-Options", "Strict-Transport-Security")
	if strings.Contains(p.body, "s3cret") {
		t.Error("the password is shown")
	}
	ds := e.domains(webRef)
	if len(ds) != 2 || ds[0].RedirectCode != 301 || !ds[0].RedirectKeepPath || ds[1].MaxBody != 10<<20 || len(ds[1].Headers) != 2 {
		t.Errorf("stored %+v", ds)
	}
}

// The own-certificate form: offered for HTTPS domains only; a certificate
// that does not fit shows the error under its field and changes nothing; a
// good one replaces the ACME certificate.
func TestUploadCertificateForm(t *testing.T) {
	e := newTestEnv(t)
	ca := testenv.NewCA()
	e.apps.WithCertRoots(ca.Pool)
	b := e.browser()
	tok := shopWithWeb(e, b)
	if p := b.get(domainsPath); strings.Contains(p.body, `id="upload-certificate"`) {
		t.Errorf("upload form without any HTTPS domain")
	}
	b.post(domainsPath, domainForm(tok, "plain.example.com", "", "", false, false))
	b.post(domainsPath, domainForm(tok, "shop.example.com", "", "", false, true))
	var shopID string
	for _, d := range e.domains(webRef) {
		if d.Host == "shop.example.com" {
			shopID = d.ID
		}
	}
	p := b.get(domainsPath)
	mustContain(t, "form", p.body, `id="upload-certificate"`, `<option value="`+shopID+`">shop.example.com</option>`)
	mustNotContain(t, "form", p.body, ">plain.example.com</option>")

	cert, key := ca.Leaf(t, "shop.example.com")
	otherCert, otherKey := ca.Leaf(t, "other.example.com")
	form := func(c, k string) url.Values {
		return url.Values{"csrf_token": {tok}, "domain": {shopID}, "cert_pem": {c}, "key_pem": {k}}
	}
	p = b.post(domainsPath+"/certificate", form(otherCert, otherKey))
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("certificate for another host: %d\n%s", p.status, p.body)
	}
	mustContain(t, "wrong host", p.body, `id="cert-pem-error"`, "Not saved.", "shop.example.com")
	// The key is never sent back, not even the one just typed.
	mustNotContain(t, "wrong host", p.body, strings.Split(otherKey, "\n")[1])
	if certs, _ := e.db.AllCertificates(t.Context()); len(certs) != 1 || certs[0].Source != store.CertACME || certs[0].CertPEM != "" {
		t.Fatalf("a refused upload changed the certificate: %+v", certs)
	}
	if p := b.post(domainsPath+"/certificate", url.Values{"domain": {shopID}, "cert_pem": {cert}, "key_pem": {key}}); p.status != http.StatusForbidden {
		t.Errorf("upload without CSRF token: %d", p.status)
	}

	p = b.post(domainsPath+"/certificate", form(cert, key))
	if p.status != http.StatusSeeOther || p.location() != domainsPath+"?notice=certificate-uploaded#domains" {
		t.Fatalf("upload: %d → %q\n%s", p.status, p.location(), p.body)
	}
	mustContain(t, "after upload", b.get(p.location()).body, "Certificate saved.", "Berth Test CA")
	if certs, _ := e.db.AllCertificates(t.Context()); len(certs) != 1 || certs[0].Source != store.CertCustom || certs[0].CertPEM != cert {
		t.Errorf("stored: %+v", certs)
	}
}

// editPath is where the edit form of domain id posts.
func editPath(id string) string { return domainsPath + "/" + id + "/edit" }

// editForm is the edit form as a browser sends it, with the given fields
// set (a checkbox that is not ticked is not sent).
func editForm(tok string, set map[string]string) url.Values {
	f := url.Values{"csrf_token": {tok}, "port": {""}, "timeout": {""}, "max_body": {""}, "redirect_to": {""},
		"redirect_code": {"308"}, "basic_auth_user": {""}, "basic_auth_password": {""}, "headers": {""}}
	for k, v := range set {
		f.Set(k, v)
	}
	return f
}

// The Edit action opens the add form with the domain in it; saving changes
// its options, an empty password keeping the current one; refused values
// are shown under their fields with nothing saved.
func TestDomainEditForm(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	tok := shopWithWeb(e, b)
	f := domainForm(tok, "preview.example.com", "/app", "", true, false)
	for k, v := range map[string]string{"timeout": "90", "max_body": "10m", "basic_auth_user": "preview", "basic_auth_password": "s3cret-preview",
		"headers": "X-Frame-Options: DENY\nX-Robots-Tag: noindex"} {
		f.Set(k, v)
	}
	if p := b.post(domainsPath, f); p.status != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", p.status, p.body)
	}
	if p := b.post(domainsPath, domainForm(tok, "www.example.com", "", "", false, false)); p.status != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", p.status, p.body)
	}
	var preview, www deploy.Domain
	for _, d := range e.domains(webRef) {
		switch d.Host {
		case "preview.example.com":
			preview = d
		case "www.example.com":
			www = d
		}
	}
	stored := func(id string) store.Domain {
		t.Helper()
		for _, d := range e.domains(webRef) {
			if d.ID == id {
				return d.Domain
			}
		}
		t.Fatalf("domain %s is gone", id)
		return store.Domain{}
	}
	editURL := domainsPath + "?edit=" + preview.ID

	// Every row has its Edit action, with and without htmx.
	mustContain(t, "rows", b.get(domainsPath).body,
		`<a class="btn btn-ghost btn-sm" href="`+editURL+`#edit-domain" hx-get="`+editURL+`" hx-target="#domains" hx-swap="outerHTML show:#edit-domain:top">Edit<span class="sr-only"> preview.example.com/app</span></a>`,
		`href="`+domainsPath+`?edit=`+www.ID+`#edit-domain"`)

	// The form, prefilled: host and path shown, not editable; the password
	// empty; the options open.
	p := b.get(editURL)
	if p.status != http.StatusOK {
		t.Fatalf("edit: %d\n%s", p.status, p.body)
	}
	page := html.UnescapeString(p.body)
	mustContain(t, "edit form", page, `<section class="card" id="edit-domain"`, "Edit preview.example.com/app", `action="`+editPath(preview.ID)+`"`,
		"<dt>Host</dt><dd><code>preview.example.com</code></dd>", "<dt>Path prefix</dt><dd><code>/app</code></dd>",
		`<input id="domain-port" name="port" type="number" value="8080"`, `name="timeout" type="number" value="90"`, `name="max_body" type="text" value="10m"`,
		`name="basic_auth_user" type="text" value="preview"`, "Leave empty to keep the current password",
		`<input id="domain-auth-remove" name="basic_auth_remove" type="checkbox" value="on"`, "X-Frame-Options: DENY\nX-Robots-Tag: noindex</textarea>",
		`<details class="domain-options" open>`, "Save changes", `hx-get="`+domainsPath+`"`, "autofocus")
	mustNotContain(t, "edit form", page, `id="domain-host"`, `id="domain-path"`, `id="add-domain"`, "s3cret", "$2a$", "Add domain</button>")
	if m := regexp.MustCompile(`<input id="domain-strip"[^>]*>`).FindString(page); !strings.Contains(m, "checked") {
		t.Errorf("strip prefix not ticked: %s", m)
	}
	if m := regexp.MustCompile(`<input id="domain-https"[^>]*>`).FindString(page); strings.Contains(m, "checked") {
		t.Errorf("HTTPS ticked for a plain HTTP domain: %s", m)
	}
	frag := b.get(editURL, "HX-Request: true")
	if frag.status != http.StatusOK || !strings.HasPrefix(frag.body, `<div id="domains" class="stack">`) || !strings.Contains(frag.body, `id="edit-domain"`) {
		t.Errorf("edit with htmx: %d\n%s", frag.status, frag.body)
	}
	// A domain without basic auth has no box to remove it.
	mustNotContain(t, "edit www", b.get(domainsPath+"?edit="+www.ID).body, "domain-auth-remove", "Leave empty to keep")

	// Refused values: shown at their field, in the edit form, with what was
	// typed; nothing saved; the password never echoed.
	before := stored(preview.ID)
	keep := map[string]string{"port": "8080", "strip_prefix": "on", "timeout": "90", "max_body": "10m", "basic_auth_user": "preview",
		"headers": "X-Frame-Options: DENY"}
	for _, c := range []struct {
		name, field, want string
		set               map[string]string
	}{
		{"timeout", "domain-timeout", "between 1 and 3600", map[string]string{"timeout": "7200"}},
		{"port", "domain-port", "between 1 and 65535", map[string]string{"port": "0"}},
		{"header", "domain-headers", "line 1: name Set-Cookie cannot be set", map[string]string{"headers": "Set-Cookie: a=1"}},
		{"password", "domain-auth-password", "8–72 bytes", map[string]string{"basic_auth_password": "short"}},
		{"redirect with a port", "domain-port", "leave the port empty", map[string]string{"redirect_to": "https://www.example.com"}},
		{"auth user", "domain-auth-user", "A–Z a–z 0–9", map[string]string{"basic_auth_user": "a b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := map[string]string{}
			for k, v := range keep {
				set[k] = v
			}
			for k, v := range c.set {
				set[k] = v
			}
			p := b.post(editPath(preview.ID), editForm(tok, set), "HX-Request: true")
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", p.status, p.body)
			}
			body := html.UnescapeString(p.body)
			mustContain(t, c.name, body, `id="`+c.field+`-error"`, c.want, "Not saved. Please correct the highlighted field.", `id="edit-domain"`,
				`action="`+editPath(preview.ID)+`"`, "Leave empty to keep the current password")
			for k, v := range c.set {
				if k != "basic_auth_password" && k != "headers" && !strings.Contains(body, `value="`+v+`"`) {
					t.Errorf("%s=%q not kept in the form", k, v)
				}
			}
			if pw := c.set["basic_auth_password"]; pw != "" && strings.Contains(p.body, pw) {
				t.Error("the password was echoed")
			}
			if got := stored(preview.ID); !reflect.DeepEqual(got, before) {
				t.Errorf("a refused edit changed the domain:\n%+v\n%+v", before, got)
			}
		})
	}

	// Saved with htmx: the tab comes back with a notice and the add form;
	// the empty password kept the hash; a timeout left empty is dropped.
	set := map[string]string{}
	for k, v := range keep {
		set[k] = v
	}
	set["timeout"], set["compress"] = "", "on"
	p = b.post(editPath(preview.ID), editForm(tok, set), "HX-Request: true")
	if p.status != http.StatusOK {
		t.Fatalf("save: %d\n%s", p.status, p.body)
	}
	mustContain(t, "saved", html.UnescapeString(p.body), "preview.example.com/app saved.", "The edge proxy applies the change", `id="add-domain"`, "gzip", "auth: preview")
	mustNotContain(t, "saved", p.body, "<html", "timeout 90s", `id="edit-domain"`)
	after := stored(preview.ID)
	if after.AuthHash != before.AuthHash || after.AuthUser != "preview" || after.Timeout != 0 || !after.Compress || after.MaxBody != 10<<20 ||
		len(after.Headers) != 1 || !after.StripPrefix || after.ID != before.ID || !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("after the edit: %+v (before %+v)", after, before)
	}
	// A new password; then basic auth removed with the box.
	set["basic_auth_password"] = "another-password"
	b.post(editPath(preview.ID), editForm(tok, set), "HX-Request: true")
	if h := stored(preview.ID).AuthHash; h == before.AuthHash || bcrypt.CompareHashAndPassword([]byte(h), []byte("another-password")) != nil {
		t.Errorf("the new password does not verify against %q", h)
	}
	set["basic_auth_password"], set["basic_auth_remove"] = "", "on"
	b.post(editPath(preview.ID), editForm(tok, set), "HX-Request: true")
	if d := stored(preview.ID); d.AuthUser != "" || d.AuthHash != "" {
		t.Errorf("basic auth not removed: %+v", d)
	}

	// Without JavaScript: a redirect back to the tab, saying so. HTTPS on
	// asks for a certificate.
	p = b.post(editPath(www.ID), editForm(tok, map[string]string{"port": "8080", "https": "on"}))
	if p.status != http.StatusSeeOther || p.location() != domainsPath+"?notice=domain-updated#domains" {
		t.Fatalf("plain save: %d → %q\n%s", p.status, p.location(), p.body)
	}
	mustContain(t, "after plain save", b.get(p.location()).body, "Domain saved.", "Requesting from the ACME CA…")
	if certs, _ := e.db.AllCertificates(t.Context()); len(certs) != 1 || certs[0].Host != "www.example.com" {
		t.Errorf("certificates after HTTPS on: %+v", certs)
	}
	// A redirect, then back to the app.
	p = b.post(editPath(www.ID), editForm(tok, map[string]string{"redirect_to": "https://example.com", "redirect_code": "302"}), "HX-Request: true")
	mustContain(t, "redirect", html.UnescapeString(p.body), "www.example.com saved.", "302 → https://example.com")
	p = b.post(editPath(www.ID), editForm(tok, map[string]string{"port": "9090"}), "HX-Request: true")
	if d := stored(www.ID); d.RedirectTo != "" || d.Port != 9090 || d.HTTPS {
		t.Errorf("back to the app: %+v", d)
	}
	if certs, _ := e.db.AllCertificates(t.Context()); len(certs) != 0 {
		t.Errorf("certificates after HTTPS off: %+v", certs)
	}

	// A domain removed meanwhile, and a request without the CSRF token.
	mustContain(t, "edit a missing domain", b.get(domainsPath+"?edit=dom_gone").body, "That domain no longer exists", `id="add-domain"`)
	if p := b.post(editPath("dom_gone"), editForm(tok, nil)); p.location() != domainsPath+"?notice=domain-missing#domains" {
		t.Errorf("save a missing domain: %d → %q", p.status, p.location())
	}
	if p := b.post(editPath("dom_gone"), editForm(tok, nil), "HX-Request: true"); p.status != http.StatusOK || !strings.Contains(p.body, "That domain no longer exists") {
		t.Errorf("save a missing domain with htmx: %d", p.status)
	}
	before = stored(www.ID)
	if p := b.post(editPath(www.ID), editForm("", map[string]string{"compress": "on", "port": "9090"})); p.status != http.StatusForbidden {
		t.Errorf("edit without the CSRF token: %d", p.status)
	}
	if got := stored(www.ID); !reflect.DeepEqual(got, before) {
		t.Errorf("a forbidden edit changed the domain: %+v", got)
	}

	// A wildcard domain whose DNS-01 provider went away: the host is not a
	// field of the form, so its error stands above it.
	e.apps.WithWildcards(true)
	wild, err := e.apps.AddDomain(t.Context(), e.owner(), webRef, deploy.DomainInput{Host: "*.example.com", HTTPS: true})
	if err != nil {
		t.Fatal(err)
	}
	e.apps.WithWildcards(false)
	p = b.post(editPath(wild.ID), editForm(tok, map[string]string{"https": "on", "compress": "on"}), "HX-Request: true")
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("edit a wildcard without DNS-01: %d\n%s", p.status, p.body)
	}
	mustContain(t, "wildcard", html.UnescapeString(p.body), "Not saved: the host is a wildcard; wildcard domains need DNS-01 validation", `id="edit-domain"`)
	if d := stored(wild.ID); d.Compress {
		t.Errorf("the refused edit was saved: %+v", d)
	}

	assertNoInline(t, map[string]string{
		"edit form":           b.get(editURL).body,
		"edit fragment":       b.get(editURL, "HX-Request: true").body,
		"edit error fragment": b.post(editPath(preview.ID), editForm(tok, map[string]string{"timeout": "7200"}), "HX-Request: true").body,
	})
}
