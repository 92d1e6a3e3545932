package web

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
)

var invitationLinkRE = regexp.MustCompile(`<code id="invitation-link">([^<]+)</code>`)

// invite creates an invitation through the members page and returns the
// accept page's path with the token.
func (b *browser) invite(email, role string) string {
	b.e.t.Helper()
	p := b.post("/members/invite", url.Values{"csrf_token": {b.csrf("/members")}, "email": {email}, "role": {role}})
	if p.status != http.StatusOK {
		b.e.t.Fatalf("invite %s as %s: %d\n%s", email, role, p.status, p.body)
	}
	m := invitationLinkRE.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("invite: no link on the page\n%s", p.body)
	}
	link, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		b.e.t.Fatal(err)
	}
	return link.RequestURI()
}

// acceptAsNew accepts the invitation at path with a new account and
// returns the browser, signed in as it.
func (e *testEnv) acceptAsNew(path, name string) *browser {
	e.t.Helper()
	b := e.browser()
	page := b.get(path)
	if page.status != http.StatusOK {
		e.t.Fatalf("GET accept page: %d\n%s", page.status, page.body)
	}
	m := csrfRE.FindStringSubmatch(page.body)
	if m == nil {
		e.t.Fatalf("accept page: no form\n%s", page.body)
	}
	token := tokenOf(e.t, path)
	p := b.post("/invitations/accept", url.Values{"csrf_token": {m[1]}, "token": {token}, "name": {name},
		"password": {"a long enough password"}, "password_confirm": {"a long enough password"}})
	if p.status != http.StatusSeeOther || p.location() != "/?notice=invitation-accepted" {
		e.t.Fatalf("accept: %d → %q\n%s", p.status, p.location(), p.body)
	}
	return b
}

func tokenOf(t *testing.T, path string) string {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

func TestInviteAcceptAsNewAccount(t *testing.T) {
	e := newTestEnv(t)
	owner := e.browser()
	owner.setupOwner()

	path := owner.invite("grace@example.com", authz.Developer)
	token := tokenOf(t, path)
	if !strings.HasPrefix(path, "/invitations/accept?token=") || len(token) < 20 {
		t.Fatalf("link path %q", path)
	}
	members := owner.get("/members")
	mustContain(t, "members page", members.body, "grace@example.com", "Pending", "Create invitation link")
	mustNotContain(t, "members page after the invite", members.body, token)

	page := e.browser().get(path)
	mustContain(t, "accept page", page.body, "Join Analytical Engines", "grace@example.com", "developer",
		`name="password"`, `name="name"`, "Create account and join")
	assertNoInline(t, map[string]string{"accept": page.body})

	// The password policy speaks on its field.
	weak := e.browser()
	wp := weak.get(path)
	tok := csrfRE.FindStringSubmatch(wp.body)[1]
	p := weak.post("/invitations/accept", url.Values{"csrf_token": {tok}, "token": {token}, "name": {"Grace"}, "password": {"short"}, "password_confirm": {"short"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("weak password: %d", p.status)
	}
	mustContain(t, "weak password", p.body, `id="password-error"`, "at least 10 characters")

	grace := e.acceptAsNew(path, "Grace Hopper")
	account := grace.get("/account")
	if account.status != http.StatusOK {
		t.Fatalf("account after accepting: %d", account.status)
	}
	mustContain(t, "new member's account", account.body, "grace@example.com", "Grace Hopper", "Analytical Engines", "developer")
	dash := grace.get("/?notice=invitation-accepted")
	mustContain(t, "dashboard after accepting", dash.body, "Welcome aboard.")

	// The link worked once.
	used := e.browser()
	if g := used.get(path); g.status != http.StatusGone || !strings.Contains(g.body, "it was used, revoked or has expired") {
		t.Errorf("used link: %d\n%s", g.status, g.body)
	}
	tokPage := used.get("/login")
	ct := csrfRE.FindStringSubmatch(tokPage.body)[1]
	if p := used.post("/invitations/accept", url.Values{"csrf_token": {ct}, "token": {token}, "name": {"X"}, "password": {"another long password"}, "password_confirm": {"another long password"}}); p.status != http.StatusGone {
		t.Errorf("POST with a used token: %d", p.status)
	}
	if g := used.get("/invitations/accept"); g.status != http.StatusNotFound {
		t.Errorf("no token: %d", g.status)
	}
	mustNotContain(t, "server log", e.logs.String(), token)

	members = owner.get("/members")
	mustContain(t, "members page after accepting", members.body, "Grace Hopper", "Accepted")
}

func TestAcceptWithExistingAccountNeedsSignIn(t *testing.T) {
	e := newTestEnv(t)
	owner := e.browser()
	owner.setupOwner()
	// Ada makes a second organization and invites grace, who already
	// has an account in the first.
	grace := e.acceptAsNew(owner.invite("grace@example.com", authz.Viewer), "Grace")
	if p := owner.post("/organizations/create", url.Values{"csrf_token": {owner.csrf("/")}, "name": {"Difference Engines"}}); p.status != http.StatusSeeOther {
		t.Fatalf("create organization: %d\n%s", p.status, p.body)
	}
	path := owner.invite("grace@example.com", authz.Admin)

	anon := e.browser().get(path)
	mustContain(t, "accept page for an account", anon.body, "Sign in to accept", "/login?next=")
	mustNotContain(t, "accept page for an account", anon.body, `name="password"`)

	page := grace.get(path)
	mustContain(t, "signed-in accept page", page.body, "Accept and join Difference Engines")
	m := csrfRE.FindAllStringSubmatch(page.body, -1)
	p := grace.post("/invitations/accept", url.Values{"csrf_token": {m[len(m)-1][1]}, "token": {tokenOf(t, path)}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("accept signed in: %d\n%s", p.status, p.body)
	}
	acc := grace.get("/account")
	mustContain(t, "account in the joined organization", acc.body, "Difference Engines", "admin")
}

// memberBrowser invites email with role and accepts as a new account.
func (e *testEnv) memberBrowser(owner *browser, email, role string) *browser {
	e.t.Helper()
	return e.acceptAsNew(owner.invite(email, role), strings.Split(email, "@")[0])
}

func TestDeveloperSeesNoMemberActions(t *testing.T) {
	e := newTestEnv(t)
	owner := e.browser()
	owner.setupOwner()
	dev := e.memberBrowser(owner, "dev@example.com", authz.Developer)

	page := dev.get("/members")
	if page.status != http.StatusOK {
		t.Fatalf("members page as developer: %d", page.status)
	}
	mustContain(t, "members page as developer", page.body, "ada@example.com", "dev@example.com", "Your role can see the members but not change them")
	mustNotContain(t, "members page as developer", page.body, "/set-role", "/transfer-ownership", "Create invitation link", "/members/grants/set")

	ownerID := e.owner().User.ID
	tok := dev.csrf("/members")
	p := dev.post("/members/"+ownerID+"/set-role", url.Values{"csrf_token": {tok}, "role": {authz.Viewer}})
	if p.status != http.StatusForbidden {
		t.Fatalf("developer changes a role: %d\n%s", p.status, p.body)
	}
	mustContain(t, "403 page", p.body, "Not allowed", "does not allow member.write")
	if p := dev.post("/members/invite", url.Values{"csrf_token": {tok}, "email": {"x@example.com"}, "role": {authz.Viewer}}); p.status != http.StatusForbidden {
		t.Errorf("developer invites: %d", p.status)
	}
	if p := dev.post("/settings/organization", url.Values{"csrf_token": {tok}, "require_two_factor": {"on"}}); p.status != http.StatusForbidden {
		t.Errorf("developer changes the organization: %d", p.status)
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("a refusal was logged as an error:\n%s", e.logs.String())
	}

	// The owner may change the developer's role, but only to roles it covers.
	own := owner.get("/members")
	mustContain(t, "members page as owner", own.body, "/set-role", "Make owner", `<option value="admin"`)
	devID := ""
	ms, err := e.auth.Members(t.Context(), e.owner())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.User.Email == "dev@example.com" {
			devID = m.User.ID
		}
	}
	if p := owner.post("/members/"+devID+"/set-role", url.Values{"csrf_token": {owner.csrf("/members")}, "role": {authz.Viewer}}); p.status != http.StatusSeeOther {
		t.Fatalf("owner changes a role: %d\n%s", p.status, p.body)
	}
	mustContain(t, "developer's account after demotion", dev.get("/account").body, "viewer")
	if p := owner.post("/members/"+devID+"/remove", url.Values{"csrf_token": {owner.csrf("/members")}}); p.status != http.StatusSeeOther {
		t.Fatalf("remove member: %d", p.status)
	}
	if g := dev.get("/"); g.status != http.StatusSeeOther || !strings.HasPrefix(g.location(), "/login") {
		t.Errorf("removed member's session: %d → %q", g.status, g.location())
	}
}

func TestSwitchOrganizationChangesDashboard(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	mustContain(t, "dashboard in the first organization", b.get("/").body, `href="/projects/shop"`)

	p := b.post("/organizations/create", url.Values{"csrf_token": {b.csrf("/")}, "name": {"Side Project"}})
	if p.status != http.StatusSeeOther || p.location() != "/?notice=organization-created" {
		t.Fatalf("create organization: %d → %q", p.status, p.location())
	}
	dash := b.get(p.location())
	mustContain(t, "dashboard in the new organization", dash.body, "Organization created.", "Side Project", "Analytical Engines", `action="/organizations/switch"`)
	mustNotContain(t, "dashboard in the new organization", dash.body, `href="/projects/shop"`)

	orgs, err := e.auth.Organizations(t.Context(), e.owner())
	if err != nil || len(orgs) != 2 {
		t.Fatalf("organizations: %+v, %v", orgs, err)
	}
	p = b.post("/organizations/switch", url.Values{"csrf_token": {b.csrf("/")}, "organization": {orgs[0].Organization.ID}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("switch: %d\n%s", p.status, p.body)
	}
	mustContain(t, "dashboard after switching back", b.get(p.location()).body, `href="/projects/shop"`, "Switched organization.")

	if p := b.post("/organizations/switch", url.Values{"csrf_token": {b.csrf("/")}, "organization": {"org_nope"}}); p.status != http.StatusUnprocessableEntity {
		t.Errorf("switch to a stranger's organization: %d", p.status)
	}
	if p := b.post("/organizations/create", url.Values{"csrf_token": {b.csrf("/")}, "name": {" "}}); p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, "is required") {
		t.Errorf("create without a name: %d", p.status)
	}
}

func TestTwoFactorMissingRedirectsToSetup(t *testing.T) {
	e := newTestEnv(t)
	owner := e.browser()
	owner.setupOwner()
	dev := e.memberBrowser(owner, "dev@example.com", authz.Developer)

	// Without two-factor login of their own, the owner cannot require it.
	p := owner.post("/settings/organization", url.Values{"csrf_token": {owner.csrf("/settings")}, "require_two_factor": {"on"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("require without own two-factor: %d", p.status)
	}
	mustContain(t, "settings error", p.body, "set up two-factor login for your own account first", `id="require-two-factor-error"`)

	if err := e.db.SetRequireTwoFactor(t.Context(), e.owner().Organization.ID, true); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/projects", "/members", "/settings"} {
		g := dev.get(path)
		if g.status != http.StatusSeeOther || g.location() != "/account?notice=two-factor-required#two-factor" {
			t.Errorf("GET %s: %d → %q", path, g.status, g.location())
		}
	}
	tok := dev.csrf("/account")
	if p := dev.post("/projects", url.Values{"csrf_token": {tok}, "name": {"sneaky"}}); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/account") {
		t.Errorf("POST while two-factor is missing: %d → %q", p.status, p.location())
	}
	acc := dev.get("/account?notice=two-factor-required")
	mustContain(t, "account page", acc.body, "Two-factor login is required.", "Set up two-factor login")
	if p := dev.post("/account/two-factor", url.Values{"csrf_token": {tok}}); p.status != http.StatusSeeOther || p.location() != "/account#two-factor" {
		t.Errorf("start enrolment: %d → %q", p.status, p.location())
	}
	if p := dev.post("/logout", url.Values{"csrf_token": {tok}}); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/login") {
		t.Errorf("sign out: %d → %q", p.status, p.location())
	}
}

func TestViewerAppHasNoDeployButton(t *testing.T) {
	e := newTestEnv(t)
	owner := e.browser()
	owner.setupOwner()
	owner.createProject("shop")
	owner.createApp("shop", appFormValues(owner.csrf("/projects/shop/apps/new"), "web"))
	viewer := e.memberBrowser(owner, "viewer@example.com", authz.Viewer)

	page := viewer.get("/projects/shop/apps/web")
	if page.status != http.StatusOK {
		t.Fatalf("app page as viewer: %d", page.status)
	}
	mustContain(t, "app page as viewer", page.body, "Read only")
	mustNotContain(t, "app page as viewer", page.body, `action="/projects/shop/apps/web/deploy"`, "Deploy now", `action="/projects/shop/apps/web/scale"`)
	mustNotContain(t, "settings tab as viewer", viewer.get("/projects/shop/apps/web/settings").body, "Save settings", "Delete web")
	mustNotContain(t, "project page as viewer", viewer.get("/projects/shop").body, "New app", "Rename project", "Delete project")
	mustNotContain(t, "projects page as viewer", viewer.get("/projects").body, "Create project")
	mustNotContain(t, "env tab as viewer", viewer.get("/projects/shop/apps/web/env").body, "Reveal values")
	domains := viewer.get("/projects/shop/apps/web/domains")
	if domains.status != http.StatusOK {
		t.Errorf("domains tab as viewer: %d", domains.status)
	}
	mustNotContain(t, "domains tab as viewer", domains.body, "Add a domain", `action="/projects/shop/apps/web/domains"`)
	mustContain(t, "app page as owner", owner.get("/projects/shop/apps/web").body, `action="/projects/shop/apps/web/deploy"`)

	tok := viewer.csrf("/account")
	p := viewer.post("/projects/shop/apps/web/deploy", url.Values{"csrf_token": {tok}, "image": {"nginx:1.28"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("viewer deploys: %d\n%s", p.status, p.body)
	}
	mustContain(t, "403 page", p.body, "Not allowed", "app.deploy")
	hx := viewer.post("/projects/shop/apps/web/restart", url.Values{"csrf_token": {tok}}, "HX-Request: true")
	if hx.status != http.StatusForbidden || hx.header.Get("HX-Retarget") != "#flash" {
		t.Errorf("viewer restarts with htmx: %d, retarget %q", hx.status, hx.header.Get("HX-Retarget"))
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("a refusal was logged as an error:\n%s", e.logs.String())
	}
}

func TestTokenWithRole(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	acc := b.get("/account")
	mustContain(t, "token form", acc.body, `name="role"`, "My role (owner)", `<option value="viewer"`)
	p := b.post("/account/tokens", url.Values{"csrf_token": {b.csrf("/account")}, "name": {"ci"}, "expires_in": {"7d"}, "role": {authz.Viewer}})
	if p.status != http.StatusOK {
		t.Fatalf("create token: %d\n%s", p.status, p.body)
	}
	m := regexp.MustCompile(`<code id="new-token-secret">([^<]+)</code>`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no secret shown\n%s", p.body)
	}
	tp, err := e.auth.Token(t.Context(), m[1])
	if err != nil || tp.Role != authz.Viewer {
		t.Fatalf("token principal: %+v, %v", tp, err)
	}
	mustContain(t, "token list", b.get("/account").body, ">viewer<")
	if p := b.post("/account/tokens", url.Values{"csrf_token": {b.csrf("/account")}, "name": {"x"}, "expires_in": {"7d"}, "role": {"root"}}); p.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown role: %d", p.status)
	}
}

func TestMembersPagesHaveNoInlineCode(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	b.invite("grace@example.com", authz.Developer)
	e.memberBrowser(b, "dev@example.com", authz.Developer)
	pages := map[string]string{}
	for _, path := range []string{"/members", "/settings", "/organizations/new", "/account"} {
		g := b.get(path)
		if g.status != http.StatusOK {
			t.Errorf("GET %s: %d", path, g.status)
		}
		pages[path] = g.body
	}
	mustContain(t, "members page", pages["/members"], "Project access", `name="scope"`, "shop (every environment)", "Make owner")
	assertNoInline(t, pages)
}

// The grant form gives a member a role in one project.
func TestGrantProjectAccess(t *testing.T) {
	e := newTestEnv(t)
	owner := e.browser()
	owner.setupOwner()
	owner.createProject("shop")
	owner.createProject("blog")
	member := e.memberBrowser(owner, "m@example.com", authz.Member)
	mustNotContain(t, "dashboard of a member without grants", member.get("/").body, `href="/projects/shop"`)

	var memberP auth.Principal
	ms, _ := e.auth.Members(t.Context(), e.owner())
	for _, m := range ms {
		if m.User.Email == "m@example.com" {
			memberP.User = m.User
		}
	}
	shop, err := e.apps.Project(t.Context(), e.owner(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	p := owner.post("/members/grants/set", url.Values{"csrf_token": {owner.csrf("/members")}, "user": {memberP.User.ID}, "scope": {shop.ID}, "role": {authz.Developer}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("grant: %d\n%s", p.status, p.body)
	}
	mustContain(t, "members page with a grant", owner.get(p.location()).body, "Project access granted.", "m (member)")
	dash := member.get("/")
	mustContain(t, "dashboard of a member with a grant", dash.body, `href="/projects/shop"`)
	mustNotContain(t, "dashboard of a member with a grant", dash.body, `href="/projects/blog"`)
	mustContain(t, "granted project page", member.get("/projects/shop").body, "New app")

	if p := owner.post("/members/grants/remove", url.Values{"csrf_token": {owner.csrf("/members")}, "user": {memberP.User.ID}, "scope": {shop.ID}}); p.status != http.StatusSeeOther {
		t.Fatalf("remove grant: %d", p.status)
	}
	mustNotContain(t, "dashboard after the grant is gone", member.get("/").body, `href="/projects/shop"`)
}
