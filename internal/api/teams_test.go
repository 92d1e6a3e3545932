package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/store"
)

// entriesIn reads one organization's audit log, oldest first.
func (a *auditEnv) entriesIn(orgID string) []store.AuditEntry {
	a.t.Helper()
	var out []store.AuditEntry
	if err := a.db.EachAudit(context.Background(), orgID, store.AuditFilter{}, func(e store.AuditEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		a.t.Fatal(err)
	}
	return out
}

func TestInvitationFlow(t *testing.T) {
	a := newTeamEnv(t, "https://berth.example.com/")
	inv, token := a.invite("grace@example.com", "developer")
	if !strings.HasPrefix(inv.Link, "https://berth.example.com/invitations/accept?token=") || inv.Status != "pending" || inv.Role != "developer" ||
		!inv.ExpiresAt.Equal(a.clock.Now().Add(auth.InvitationTTL)) {
		t.Fatalf("invitation %+v", inv)
	}
	// Listing never shows the link again.
	res := a.call(http.StatusOK, "GET", "/invitations", nil)
	if strings.Contains(string(res.body), token) {
		t.Errorf("the list shows the token: %s", res.body)
	}

	var info api.InvitationInfo
	a.expect(http.StatusOK, request{method: "GET", path: "/api/v1/invitations/lookup?token=" + token}).json(t, &info)
	if info.Organization != "Acme" || info.Email != "grace@example.com" || info.Role != "developer" || info.HasAccount {
		t.Errorf("lookup %+v", info)
	}
	a.expect(http.StatusGone, request{method: "GET", path: "/api/v1/invitations/lookup?token=nope"})

	// A new account needs a password that passes the policy.
	fieldError(t, a.expect(http.StatusUnprocessableEntity, request{method: "POST", path: "/api/v1/invitations/accept",
		body: map[string]string{"token": token, "name": "Grace"}}), "body.password", "required")
	var acc api.AcceptedInvitation
	a.expect(http.StatusOK, request{method: "POST", path: "/api/v1/invitations/accept",
		body: map[string]string{"token": token, "name": "Grace", "password": ownerPassword, "token_name": "cli@laptop"}}).json(t, &acc)
	if acc.Token == nil || acc.Token.Name != "cli@laptop" || acc.Role != "developer" || acc.Organization.Name != "Acme" {
		t.Fatalf("accepted %+v", acc)
	}
	a.remember(acc.Token.Token)
	var me api.Me
	a.as(acc.Token.Token, http.StatusOK, "GET", "/me", nil).json(t, &me)
	if me.User.Email != "grace@example.com" || me.Role != "developer" {
		t.Errorf("new member %+v", me)
	}
	// Single use.
	a.expect(http.StatusGone, request{method: "POST", path: "/api/v1/invitations/accept",
		body: map[string]string{"token": token, "name": "Mallory", "password": ownerPassword}})

	// An existing account accepts signed in, and only as the invited email.
	var rival api.Membership
	a.as(acc.Token.Token, http.StatusCreated, "POST", "/organizations", map[string]string{"name": "Rival"}).json(t, &rival)
	var ot api.OrganizationToken
	a.as(acc.Token.Token, http.StatusCreated, "POST", "/organizations/Rival/token", map[string]string{"name": "rival"}).json(t, &ot)
	a.remember(ot.Token)
	if ot.Organization.ID != rival.Organization.ID || ot.Role != "owner" {
		t.Fatalf("token in Rival %+v", ot)
	}
	var inv2 api.CreatedInvitation
	a.as(ot.Token, http.StatusCreated, "POST", "/invitations", map[string]string{"email": ownerEmail, "role": "admin"}).json(t, &inv2)
	token2 := linkToken(t, inv2.Link)
	a.remember(token2, inv2.Link)
	if !strings.HasPrefix(inv2.Link, "https://berth.example.com/invitations/accept?token=") {
		t.Errorf("link %s", inv2.Link)
	}
	a.expect(http.StatusForbidden, request{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{"token": token2}}) // has an account: sign in
	a.expect(http.StatusForbidden, request{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{"token": token2}, bearer: acc.Token.Token})
	var acc2 api.AcceptedInvitation
	a.call(http.StatusOK, "POST", "/invitations/accept", map[string]string{"token": token2}).json(t, &acc2)
	if acc2.Token != nil || acc2.Organization.Name != "Rival" || acc2.Role != "admin" {
		t.Errorf("existing account accepted %+v", acc2)
	}
	var orgs api.MembershipList
	a.call(http.StatusOK, "GET", "/organizations", nil).json(t, &orgs)
	got := map[string]string{}
	for _, m := range orgs.Organizations {
		got[m.Organization.Name] = m.Role
		if m.Current != (m.Organization.Name == "Acme") {
			t.Errorf("current: %+v", m)
		}
	}
	if len(got) != 2 || got["Acme"] != "owner" || got["Rival"] != "admin" {
		t.Errorf("owner's organizations %+v", orgs)
	}

	// Revoked links stop working; nobody else's invitation can be revoked.
	inv3, token3 := a.invite("henry@example.com", "viewer")
	a.as(ot.Token, http.StatusNotFound, "DELETE", "/invitations/"+inv3.ID, nil)
	a.call(http.StatusNoContent, "DELETE", "/invitations/"+inv3.ID, nil)
	a.expect(http.StatusGone, request{method: "GET", path: "/api/v1/invitations/lookup?token=" + token3})

	// Expired links too.
	_, token4 := a.invite("ida@example.com", "viewer")
	a.clock.Advance(auth.InvitationTTL + time.Minute)
	a.expect(http.StatusGone, request{method: "POST", path: "/api/v1/invitations/accept", body: map[string]string{"token": token4, "password": ownerPassword}})

	// The audit log has the invitations, never their tokens or links.
	accepts, creates := 0, 0
	for _, org := range []string{acc.Organization.ID, rival.Organization.ID} {
		for _, e := range a.entriesIn(org) {
			row, _ := json.Marshal(e)
			for _, s := range []string{token, token2, token3, token4, "?token="} {
				if bytes.Contains(row, []byte(s)) {
					t.Errorf("an invitation token is stored in audit entry %s", row)
				}
			}
			switch e.Action {
			case "invitation.accept":
				accepts++
				if e.Result == "ok" && e.OrganizationID != org {
					t.Errorf("accept entry %s", row)
				}
			case "invitation.create":
				creates++
				if e.Result == "ok" && !strings.Contains(e.Summary, `"email":"[redacted]"`) {
					t.Errorf("invitation entry %s", row)
				}
			}
		}
	}
	if accepts < 2 || creates < 4 {
		t.Errorf("%d accept and %d create entries", accepts, creates)
	}
}

func TestInvitingAboveOneselfIsRefused(t *testing.T) {
	a := newTeamEnv(t, "")
	admin := a.join("admin@example.com", "admin")
	fieldError(t, a.as(admin, http.StatusUnprocessableEntity, "POST", "/invitations", map[string]string{"email": "x@example.com", "role": "owner"}), "body.role", "transfer")
	dev := a.join("dev@example.com", "developer")
	p := a.as(dev, http.StatusForbidden, "POST", "/invitations", map[string]string{"email": "x@example.com", "role": "viewer"}).problem(t)
	if !strings.Contains(p.Detail, "member.invite") {
		t.Errorf("refusal %q", p.Detail)
	}
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/invitations", map[string]string{"email": "dev@example.com", "role": "viewer"}), "body.email", "already a member")
}

func TestMembers(t *testing.T) {
	a := newTeamEnv(t, "")
	admin := a.join("admin@example.com", "admin")
	dev := a.join("dev@example.com", "developer")
	a.as(admin, http.StatusOK, "PUT", "/members/dev@example.com", map[string]string{"role": "viewer"})
	var me api.Me
	a.as(dev, http.StatusOK, "GET", "/me", nil).json(t, &me)
	if me.Role != "viewer" {
		t.Errorf("demoted member is %s", me.Role)
	}
	a.as(dev, http.StatusForbidden, "POST", "/projects", map[string]string{"name": "x"})
	a.as(admin, http.StatusForbidden, "PUT", "/members/"+ownerEmail, map[string]string{"role": "viewer"})
	a.as(admin, http.StatusForbidden, "POST", "/members/dev@example.com/transfer-ownership", nil)
	a.as(admin, http.StatusNotFound, "PUT", "/members/nobody@example.com", map[string]string{"role": "viewer"})

	var removed api.MemberRemoved
	a.as(admin, http.StatusOK, "DELETE", "/members/dev@example.com", nil).json(t, &removed)
	if removed.RevokedTokens < 1 {
		t.Errorf("removed %+v", removed)
	}
	a.as(dev, http.StatusUnauthorized, "GET", "/me", nil)

	// Ownership moves; the former owner is an admin.
	a.call(http.StatusNoContent, "POST", "/members/admin@example.com/transfer-ownership", nil)
	if m := a.members(); m[ownerEmail] != "admin" || m["admin@example.com"] != "owner" {
		t.Errorf("after transfer %v", m)
	}
	// Leaving.
	a.call(http.StatusOK, "POST", "/organization/leave", nil)
	a.call(http.StatusUnauthorized, "GET", "/me", nil)
	var ml api.MemberList
	a.as(admin, http.StatusOK, "GET", "/members", nil).json(t, &ml)
	if len(ml.Members) != 1 || ml.Members[0].User.Email != "admin@example.com" {
		t.Errorf("members after leaving %+v", ml.Members)
	}
}

func TestGrantsScopeAMember(t *testing.T) {
	a := newTeamEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "lab"})
	a.call(http.StatusCreated, "POST", "/projects/shop/environments", map[string]string{"name": "staging"})
	a.createApp("shop", "web", map[string]any{"env": map[string]string{"SECRET": "s3cr3t-value"}})
	a.createApp("lab", "web", nil)
	m := a.join("m@example.com", "member")
	a.as(m, http.StatusForbidden, "GET", "/projects", nil)

	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", "/members/m@example.com/grants", map[string]string{"project": "nope", "role": "viewer"}), "body.project", "nope")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", "/members/m@example.com/grants", map[string]string{"project": "shop", "environment": "nope", "role": "viewer"}), "body.environment", "nope")
	var gl api.GrantList
	a.call(http.StatusOK, "PUT", "/members/m@example.com/grants", map[string]string{"project": "shop", "role": "viewer"}).json(t, &gl)
	if len(gl.Grants) != 1 || gl.Grants[0] != (api.Grant{Project: "shop", Role: "viewer"}) {
		t.Fatalf("grants %+v", gl)
	}
	var pl api.ProjectList
	a.as(m, http.StatusOK, "GET", "/projects", nil).json(t, &pl)
	if len(pl.Projects) != 1 || pl.Projects[0].Name != "shop" {
		t.Errorf("member sees %+v", pl.Projects)
	}
	a.as(m, http.StatusNotFound, "GET", "/projects/lab", nil)
	a.as(m, http.StatusOK, "GET", "/projects/shop/env?app=web", nil)
	// A viewer grant reads variables masked, never their values.
	p := a.as(m, http.StatusForbidden, "GET", "/projects/shop/env?app=web&reveal=true", nil).problem(t)
	if !strings.Contains(p.Detail, "app.env.reveal") {
		t.Errorf("refused reveal %q", p.Detail)
	}
	a.as(m, http.StatusForbidden, "POST", "/projects/shop/apps/web/deploy", nil)

	// A developer grant on staging only: deploys there, not in production.
	a.call(http.StatusOK, "PUT", "/members/m@example.com/grants", map[string]string{"project": "shop", "environment": "staging", "role": "developer"}).json(t, &gl)
	if len(gl.Grants) != 2 {
		t.Fatalf("grants %+v", gl)
	}
	a.as(m, http.StatusCreated, "POST", "/projects/shop/apps", map[string]any{"name": "api", "environment": "staging", "spec": validSpec()})
	a.as(m, http.StatusAccepted, "POST", "/projects/shop/apps/api/deploy?environment=staging", nil)
	a.as(m, http.StatusForbidden, "POST", "/projects/shop/apps/web/deploy", nil)
	a.as(m, http.StatusOK, "GET", "/projects/shop/env?scope=environment&environment=staging&reveal=true", nil)
	a.as(m, http.StatusForbidden, "GET", "/projects/shop/env?app=web&reveal=true", nil)

	// Removing the grants takes it all back.
	a.call(http.StatusOK, "PUT", "/members/m@example.com/grants", map[string]string{"project": "shop", "environment": "staging", "role": ""})
	a.call(http.StatusOK, "PUT", "/members/m@example.com/grants", map[string]string{"project": "shop", "role": ""}).json(t, &gl)
	if len(gl.Grants) != 0 {
		t.Errorf("grants after removal %+v", gl)
	}
	a.as(m, http.StatusForbidden, "GET", "/projects", nil)
}

func TestRevealNeedsPermission(t *testing.T) {
	a := newTeamEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", map[string]any{"env": map[string]string{"SECRET": "s3cr3t-value"}})
	viewer := a.join("v@example.com", "viewer")
	res := a.as(viewer, http.StatusOK, "GET", "/projects/shop/env?app=web", nil)
	if strings.Contains(string(res.body), "s3cr3t-value") {
		t.Errorf("masked listing shows the value")
	}
	res = a.as(viewer, http.StatusForbidden, "GET", "/projects/shop/env?app=web&reveal=true", nil)
	if strings.Contains(string(res.body), "s3cr3t-value") {
		t.Errorf("refusal shows the value")
	}
	for _, e := range a.entries() {
		if e.Action == "env.reveal" {
			t.Errorf("a refused reveal was recorded as one: %+v", e)
		}
	}
	dev := a.join("d@example.com", "developer")
	res = a.as(dev, http.StatusOK, "GET", "/projects/shop/env?app=web&reveal=true", nil)
	if !strings.Contains(string(res.body), "s3cr3t-value") {
		t.Errorf("developer's reveal: %s", res.body)
	}
}

func TestRoleLimitedTokens(t *testing.T) {
	a := newTeamEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", nil)
	tok := a.newToken(a.token, "ci-read", "viewer")
	if tok.Role != "viewer" {
		t.Errorf("issued %+v", tok)
	}
	var tl api.TokenList
	a.call(http.StatusOK, "GET", "/tokens", nil).json(t, &tl)
	roles := map[string]string{}
	for _, x := range tl.Tokens {
		roles[x.Name] = x.Role
	}
	if roles["ci-read"] != "viewer" || roles["ci"] != "" {
		t.Errorf("listed roles %v", roles)
	}
	var me api.Me
	a.as(tok.Token, http.StatusOK, "GET", "/me", nil).json(t, &me)
	if me.Role != "viewer" || !me.RoleLimited {
		t.Errorf("limited token's me %+v", me)
	}
	p := a.as(tok.Token, http.StatusForbidden, "POST", "/projects/shop/apps/web/deploy", nil).problem(t)
	if !strings.Contains(p.Detail, "limited to the viewer role") {
		t.Errorf("refusal %q", p.Detail)
	}
	// A limited token makes only limited tokens, never one above its role.
	child := a.newToken(tok.Token, "child", "")
	if child.Role != "viewer" {
		t.Errorf("a limited token minted %+v", child)
	}
	a.as(child.Token, http.StatusForbidden, "POST", "/projects/shop/apps/web/deploy", nil)
	a.as(tok.Token, http.StatusForbidden, "POST", "/tokens", map[string]string{"name": "x", "role": "admin"})
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/tokens", map[string]string{"name": "x", "role": "root"}), "body.role", "")
}

func TestTwoFactorRequiredLimitsMembersToSettingItUp(t *testing.T) {
	a := newTeamEnv(t, "")
	dev := a.join("dev@example.com", "developer")
	// Turning it on needs the owner's own two-factor login first.
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", "/organization", map[string]bool{"require_two_factor": true}), "body.require_two_factor", "first")
	var en api.TwoFactorEnrolment
	a.call(http.StatusOK, "POST", "/me/two-factor", nil).json(t, &en)
	a.remember(en.Secret)
	a.call(http.StatusOK, "POST", "/me/two-factor/confirm", map[string]string{"otp": a.code(en.Secret)})
	var org api.OrganizationDetail
	a.call(http.StatusOK, "PUT", "/organization", map[string]bool{"require_two_factor": true}).json(t, &org)
	if !org.RequireTwoFactor || org.Name != "Acme" {
		t.Fatalf("organization %+v", org)
	}
	a.as(dev, http.StatusForbidden, "PUT", "/organization", map[string]bool{"require_two_factor": false})

	// Every operation but the member's own account's answers 403.
	ops := documentedOps(t, a)
	n := 0
	for _, op := range ops {
		if op.public || op.perm == api.Account {
			continue
		}
		n++
		path := buildPath(op.path, map[string]string{"project": "shop", "app": "web", "domain": "x.test", "user": ownerEmail, "id": "x"})
		status, body := a.probe(op.method, path, nil, dev)
		if status != http.StatusForbidden || !strings.Contains(string(body), "two-factor") {
			t.Errorf("%s %s as a member without two-factor login: %d %s", op.method, path, status, body)
		}
	}
	if n < 70 {
		t.Errorf("only %d operations checked", n)
	}
	var me api.Me
	a.as(dev, http.StatusOK, "GET", "/me", nil).json(t, &me)
	if !me.TwoFactorMissing {
		t.Errorf("me %+v", me)
	}
	a.as(dev, http.StatusOK, "GET", "/organizations", nil)
	var dEn api.TwoFactorEnrolment
	a.as(dev, http.StatusOK, "POST", "/me/two-factor", nil).json(t, &dEn)
	a.remember(dEn.Secret)
	a.as(dev, http.StatusOK, "POST", "/me/two-factor/confirm", map[string]string{"otp": a.code(dEn.Secret)})
	a.as(dev, http.StatusOK, "GET", "/projects", nil)
}

func TestOrganizationSwitchWithSession(t *testing.T) {
	a := newTeamEnv(t, "")
	var rival api.Membership
	a.call(http.StatusCreated, "POST", "/organizations", map[string]string{"name": "Rival"}).json(t, &rival)
	if rival.Role != "owner" || rival.Current {
		t.Errorf("created %+v", rival)
	}
	// Tokens belong to one organization.
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/organizations/Rival/switch", nil), "body.organization", "token")
	s := a.login(ownerPassword)
	var res api.LoginResult
	a.expect(http.StatusForbidden, request{method: "POST", path: "/api/v1/organizations/Rival/switch", session: s})
	a.expect(http.StatusOK, request{method: "POST", path: "/api/v1/organizations/Rival/switch", session: s, csrf: true}).json(t, &res)
	if res.Organization.ID != rival.Organization.ID || res.Role != "owner" {
		t.Errorf("switched %+v", res)
	}
	var me api.Me
	a.expect(http.StatusOK, request{method: "GET", path: "/api/v1/me", session: s}).json(t, &me)
	if me.Organization.Name != "Rival" {
		t.Errorf("session is in %+v", me.Organization)
	}
	a.expect(http.StatusNotFound, request{method: "POST", path: "/api/v1/organizations/Nope/switch", session: s, csrf: true})
}

// An invitation to one project makes a member who reaches only it.
func TestProjectInvitation(t *testing.T) {
	a := newTeamEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "lab"})
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/invitations", map[string]string{"email": "d@example.com", "role": "developer", "project": "nope"}), "body.project", "nope")
	var inv api.CreatedInvitation
	a.call(http.StatusCreated, "POST", "/invitations", map[string]string{"email": "d@example.com", "role": "developer", "project": "shop"}).json(t, &inv)
	token := linkToken(t, inv.Link)
	a.remember(token, inv.Link)
	if !inv.Scoped || inv.Role != "developer" {
		t.Errorf("invitation %+v", inv.Invitation)
	}
	var acc api.AcceptedInvitation
	a.expect(http.StatusOK, request{method: "POST", path: "/api/v1/invitations/accept",
		body: map[string]string{"token": token, "name": "Dev", "password": ownerPassword}}).json(t, &acc)
	a.remember(acc.Token.Token)
	var pl api.ProjectList
	a.as(acc.Token.Token, http.StatusOK, "GET", "/projects", nil).json(t, &pl)
	if acc.Role != "member" || len(pl.Projects) != 1 || pl.Projects[0].Name != "shop" {
		t.Errorf("a developer invited to shop: role %s, sees %+v", acc.Role, pl.Projects)
	}
	a.as(acc.Token.Token, http.StatusNotFound, "GET", "/projects/lab", nil)
	a.as(acc.Token.Token, http.StatusCreated, "POST", "/projects/shop/apps", map[string]any{"name": "api", "spec": validSpec()})
}
