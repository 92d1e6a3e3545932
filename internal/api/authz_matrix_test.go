package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/authz"
)

// matrixOp is one operation of the OpenAPI document.
type matrixOp struct {
	id, method, path string
	perm             authz.Permission
	public           bool
}

// documentedOps reads every operation from the served OpenAPI document, so
// a route added later is in the matrix without anyone listing it.
func documentedOps(t *testing.T, a *auditEnv) []matrixOp {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                 `json:"operationId"`
			Security    *[]map[string][]string `json:"security"`
			Permission  string                 `json:"x-berth-permission"`
		} `json:"paths"`
	}
	a.expect(http.StatusOK, request{method: "GET", path: api.SpecPath}).json(t, &doc)
	table := api.Permissions()
	var ops []matrixOp
	for path, byMethod := range doc.Paths {
		for method, op := range byMethod {
			o := matrixOp{id: op.OperationID, method: strings.ToUpper(method), path: path, perm: authz.Permission(op.Permission)}
			o.public = op.Security != nil && len(*op.Security) == 0
			switch {
			case o.public && o.perm != "":
				t.Errorf("%s is public and declares %s", o.id, o.perm)
			case !o.public && o.perm == "":
				t.Errorf("%s %s (%s) is authenticated but declares no permission", o.method, path, o.id)
			case !o.public && table[o.id] != o.perm:
				t.Errorf("%s: the document says %s, the table %s", o.id, o.perm, table[o.id])
			}
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

// The roles of the matrix. "viewer-token" is the owner's token limited to
// viewer; "other-org" owns another organization and aims at this one's ids.
var matrixRoles = []string{"owner", "admin", "developer", "viewer", "member", "viewer-token", "other-org"}

func roleOf(r string) string {
	if r == "viewer-token" {
		return authz.Viewer
	}
	return r
}

// expectedAllowed is the permission table applied by hand: the gate lets
// through Account operations and those the role has.
func expectedAllowed(role string, perm authz.Permission) bool {
	return perm == api.Account || authz.Can(roleOf(role), perm)
}

// serviceRefusals are allowed by the gate but refused by the service for a
// reason of their own (asserted exactly).
var serviceRefusals = map[string]map[string]int{
	// The owner cannot leave (nor can the owner's limited token make them).
	"leave-organization": {"owner": http.StatusForbidden, "viewer-token": http.StatusForbidden},
	// A token limited to a role cannot mint tokens in other organizations.
	"create-organization-token": {"viewer-token": http.StatusForbidden},
}

// matrixFixture is what the matrix aims at: resources of the first
// organization, some of them one per role so that what an allowed role
// deletes is its own and what a refused role could not delete can be
// checked afterwards.
type matrixFixture struct {
	orgA, deployment, build, registry string
	tokens                            map[string]string // role → credential
	logoutTokens                      map[string]string // role → a token of theirs to sign out with
	revokeTokens                      map[string]string // role → id of a token of theirs to revoke
	registries                        map[string]string // role → registry id to delete
	invitations                       map[string]string // role → invitation id to revoke
	cert, key                         string            // for www.shop.test
}

func newMatrixFixture(t *testing.T, a *auditEnv) *matrixFixture {
	t.Helper()
	f := &matrixFixture{tokens: map[string]string{"owner": a.token}, logoutTokens: map[string]string{}, revokeTokens: map[string]string{},
		registries: map[string]string{}, invitations: map[string]string{}}
	var me api.Me
	a.call(http.StatusOK, "GET", "/me", nil).json(t, &me)
	f.orgA = me.Organization.ID

	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", map[string]any{"env": map[string]string{"K": "v"}})
	var d api.Deployment
	a.call(http.StatusAccepted, "POST", "/projects/shop/apps/web/deploy", nil).json(t, &d)
	f.deployment = d.ID
	a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{"provider": "github", "repo": "acme/api", "branch": "main"}))
	var b api.Build
	a.call(http.StatusAccepted, "POST", "/projects/shop/apps/api/builds", nil).json(t, &b)
	f.build = b.ID
	a.call(http.StatusCreated, "POST", "/projects/shop/apps/web/domains", map[string]any{"host": "www.shop.test"})
	f.cert, f.key = testCA.Leaf(t, "www.shop.test")
	a.remember(f.key)
	var reg api.Registry
	a.call(http.StatusCreated, "POST", "/registries", map[string]string{"name": "ghcr", "server": "ghcr.io", "username": "u", "password": "registry-password"}).json(t, &reg)
	a.remember("registry-password")
	f.registry = reg.ID

	for _, r := range []string{"admin", "developer", "viewer", "member"} {
		f.tokens[r] = a.join(r+"@example.com", r)
	}
	f.tokens["viewer-token"] = a.newToken(a.token, "limited", authz.Viewer).Token

	// Eve joins, founds her own organization, gets a token there and is
	// removed from this one: she is the owner of another organization only.
	eve := a.join("eve@example.com", authz.Member)
	var rival api.Membership
	a.as(eve, http.StatusCreated, "POST", "/organizations", map[string]string{"name": "Rival"}).json(t, &rival)
	var ot api.OrganizationToken
	a.as(eve, http.StatusCreated, "POST", "/organizations/"+rival.Organization.ID+"/token", map[string]string{"name": "rival"}).json(t, &ot)
	a.remember(ot.Token)
	a.call(http.StatusOK, "DELETE", "/members/eve@example.com", nil)
	a.as(eve, http.StatusUnauthorized, "GET", "/me", nil)
	f.tokens["other-org"] = ot.Token

	for _, r := range matrixRoles {
		f.logoutTokens[r] = a.newToken(f.tokens[r], "logout-"+r, "").Token
		if r == "other-org" {
			f.revokeTokens[r] = a.newToken(a.token, "revoke-"+r, "").ID // the owner's: not hers to revoke
		} else {
			f.revokeTokens[r] = a.newToken(f.tokens[r], "revoke-"+r, "").ID
		}
		a.createApp("shop", "victim-"+r, nil)
		a.call(http.StatusCreated, "POST", "/projects/shop/apps/web/domains", map[string]any{"host": r + ".shop.test"})
		a.call(http.StatusCreated, "POST", "/registries", map[string]string{"name": "reg-" + r, "server": r + ".registry.test", "username": "u", "password": "registry-password"}).json(t, &reg)
		f.registries[r] = reg.ID
		inv, _ := a.invite("inv-"+r+"@example.com", authz.Viewer)
		f.invitations[r] = inv.ID
		a.join("victim-"+r+"@example.com", authz.Viewer)
	}
	return f
}

// params fills in op's path parameters for role.
func (f *matrixFixture) params(op matrixOp, role string) map[string]string {
	p := map[string]string{"project": "shop", "app": "web", "domain": "www.shop.test", "user": "viewer@example.com",
		"name": "nope", "owner": "acme", "repo": "api"}
	switch op.id {
	case "delete-app":
		p["app"] = "victim-" + role
	case "list-builds", "start-build", "get-app-source", "reveal-webhook-secret", "update-app-source", "rotate-webhook-secret":
		p["app"] = "api"
	case "remove-domain":
		p["domain"] = role + ".shop.test"
	case "remove-member":
		p["user"] = "victim-" + role + "@example.com"
	case "transfer-ownership":
		p["user"] = ownerEmail // to oneself: refused after the gate (422)
	}
	switch {
	case strings.Contains(op.path, "/deployments/"):
		p["id"] = f.deployment
	case strings.HasPrefix(op.path, "/api/v1/builds/"):
		p["id"] = f.build
	case op.id == "delete-registry":
		p["id"] = f.registries[role]
	case strings.HasPrefix(op.path, "/api/v1/registries/"):
		p["id"] = f.registry
	case op.id == "revoke-token":
		p["id"] = f.revokeTokens[role]
	case op.id == "revoke-invitation":
		p["id"] = f.invitations[role]
	case strings.HasPrefix(op.path, "/api/v1/organizations/"):
		p["id"] = f.orgA
	}
	return p
}

// matrixBody is a body the operation accepts, so that handlers run (and
// the other organization's attempts reach the lookup that must fail).
func (f *matrixFixture) body(op matrixOp, role string) any {
	switch op.id {
	case "create-project":
		return map[string]string{"name": "p-" + role}
	case "create-connection":
		return map[string]string{"name": "c-" + role, "provider": "gitea", "base_url": "https://gitea.invalid", "token": "t0ken"}
	case "update-app-source":
		return map[string]any{"provider": "github", "repo": "acme/api", "branch": "main"}
	case "rename-project":
		return map[string]string{"name": "shop"}
	case "create-environment":
		return map[string]string{"name": "e-" + role}
	case "create-app":
		return map[string]any{"name": "a-" + role, "spec": validSpec()}
	case "update-app-spec":
		return validSpec()
	case "scale-app":
		return map[string]int{"replicas": 1}
	case "rollback-app":
		return map[string]string{"to": "#1"}
	case "replace-env":
		return map[string]any{"vars": map[string]string{"K": "v"}}
	case "update-env":
		return map[string]any{"vars": map[string]string{"K2": "v"}}
	case "add-domain":
		return map[string]any{"host": role + "-new.shop.test"}
	case "update-domain":
		return map[string]any{"host": "www.shop.test"}
	case "upload-certificate":
		return map[string]string{"cert_pem": f.cert, "key_pem": f.key}
	case "create-registry":
		return map[string]string{"name": "r-" + role, "server": role + ".new.registry.test", "username": "u", "password": "registry-password"}
	case "update-registry":
		return map[string]string{"username": "u2"}
	case "set-audit-retention":
		return map[string]int{"days": 400}
	case "create-organization":
		return map[string]string{"name": "Org " + role}
	case "create-organization-token", "create-token":
		return map[string]string{"name": "m-" + role}
	case "update-organization":
		return map[string]any{}
	case "update-member":
		return map[string]string{"role": authz.Viewer}
	case "set-member-grant":
		return map[string]string{"project": "shop", "role": authz.Viewer}
	case "create-invitation":
		return map[string]string{"email": "new-" + role + "@example.com", "role": authz.Viewer}
	case "change-password":
		return map[string]string{"current_password": "wrong password here", "new_password": "a-new-password-123"}
	case "confirm-two-factor":
		return map[string]string{"otp": "000000"}
	case "disable-two-factor":
		return map[string]string{"password": "wrong password here"}
	case "regenerate-recovery-codes":
		return map[string]string{"otp": "000000"}
	}
	return nil
}

func buildPath(path string, params map[string]string) string {
	for k, v := range params {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	return path
}

// probe makes one call and returns its status; a stream that is still open
// after a while passed the gate (refusals are answered at once), -1.
func (a *auditEnv) probe(method, path string, body any, bearer string) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	res, err := a.srv.Client().Do(req)
	if errors.Is(err, context.DeadlineExceeded) {
		return -1, nil
	} else if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode == http.StatusCreated && strings.Contains(path, "/invitations") {
		var inv api.CreatedInvitation
		if json.Unmarshal(b, &inv) == nil && inv.Link != "" {
			a.remember(inv.Link, linkToken(a.t, inv.Link))
		}
	}
	var tok struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(b, &tok) == nil && strings.HasPrefix(tok.Token, "berth_") {
		a.remember(tok.Token)
	}
	return res.StatusCode, b
}

// TestAuthorizationMatrix calls every operation of the OpenAPI document as
// every role and holds the answer to the permission table: refused → 403,
// allowed → anything but 401 and 403; another organization's member
// aiming at this organization's resources never gets a 2xx.
func TestAuthorizationMatrix(t *testing.T) {
	a := newTeamEnv(t, "")
	ops := documentedOps(t, a)
	f := newMatrixFixture(t, a)

	// Anchors: the table is checked by the matrix, these keep it honest.
	for id, want := range map[string]authz.Permission{
		"deploy-app": authz.AppDeploy, "get-env": authz.ProjectRead, "reveal-webhook-secret": authz.AppEnvReveal,
		"set-audit-retention": authz.AuditWrite, "list-audit": authz.AuditRead, "create-registry": authz.RegistryWrite,
		"remove-member": authz.MemberWrite, "create-invitation": authz.MemberInvite, "transfer-ownership": authz.OrgWrite,
		"update-organization": authz.OrgWrite, "get-disk-usage": authz.ServerRead, "app-logs": authz.AppLogs,
		"get-me": api.Account, "enrol-two-factor": api.Account, "logout": api.Account,
	} {
		if got := api.Permissions()[id]; got != want {
			t.Errorf("%s needs %q, want %q", id, got, want)
		}
	}

	var public []string
	checked := map[string]int{}
	for _, role := range matrixRoles {
		var last []matrixOp
		for _, op := range ops {
			if op.public {
				if role == "owner" {
					public = append(public, op.id)
				}
				continue
			}
			if op.id == "leave-organization" {
				last = append(last, op) // ends the membership: after everything else
				continue
			}
			checkMatrixCall(t, a, f, op, role)
			checked[role]++
		}
		for _, op := range last {
			checkMatrixCall(t, a, f, op, role)
			checked[role]++
		}
	}
	slices.Sort(public)
	if want := []string{"accept-invitation", "complete-setup", "create-token-with-password", "get-setup", "login", "lookup-invitation", "receive-webhook"}; !slices.Equal(public, want) {
		t.Errorf("public operations %v, want %v", public, want)
	}
	if checked["owner"] < 80 {
		t.Errorf("only %d operations checked per role", checked["owner"])
	}
	t.Logf("%d public operations; %d authenticated operations × %d roles checked", len(public), checked["owner"], len(matrixRoles))

	// What a refused role aimed at is still there; what an allowed one
	// deleted is gone.
	members := a.members()
	var invs api.InvitationList
	a.call(http.StatusOK, "GET", "/invitations", nil).json(t, &invs)
	for _, role := range matrixRoles {
		sameOrg := role != "other-org"
		gone := func(perm authz.Permission) bool { return sameOrg && expectedAllowed(role, perm) }
		status := http.StatusOK
		if gone(authz.AppWrite) {
			status = http.StatusNotFound
		}
		a.call(status, "GET", "/projects/shop/apps/victim-"+role, nil)
		status = http.StatusOK
		if gone(authz.DomainWrite) {
			status = http.StatusNotFound
		}
		a.call(status, "GET", "/projects/shop/apps/web/domains/"+role+".shop.test", nil)
		status = http.StatusOK
		if gone(authz.RegistryWrite) {
			status = http.StatusNotFound
		}
		a.call(status, "GET", "/registries/"+f.registries[role], nil)
		if _, ok := members["victim-"+role+"@example.com"]; ok == gone(authz.MemberWrite) {
			t.Errorf("%s: victim member still there = %v", role, ok)
		}
		i := slices.IndexFunc(invs.Invitations, func(inv api.Invitation) bool { return inv.ID == f.invitations[role] })
		if i < 0 || (invs.Invitations[i].Status == "revoked") != gone(authz.MemberInvite) {
			t.Errorf("%s: invitation %+v", role, invs.Invitations)
		}
	}
	// Everyone but the owner left at the end.
	for _, r := range []string{"admin", "developer", "viewer", "member"} {
		if _, ok := members[r+"@example.com"]; ok {
			t.Errorf("%s is still a member after leaving", r)
		}
	}
	if members[ownerEmail] != authz.Owner {
		t.Errorf("owner after the matrix: %v", members)
	}
}

func checkMatrixCall(t *testing.T, a *auditEnv, f *matrixFixture, op matrixOp, role string) {
	t.Helper()
	params := f.params(op, role)
	path := buildPath(op.path, params)
	bearer := f.tokens[role]
	if op.id == "logout" {
		bearer = f.logoutTokens[role]
	}
	status, body := a.probe(op.method, path, f.body(op, role), bearer)
	where := op.method + " " + path + " (" + op.id + ", needs " + string(op.perm) + ") as " + role
	if status == http.StatusUnauthorized || status >= 500 {
		t.Errorf("%s: %d %s", where, status, body)
		return
	}
	if role == "other-org" {
		// Operations on a resource of this organization must not find it.
		if strings.Contains(op.path, "{") && op.id != "transfer-ownership" && status >= 200 && status < 300 || status == -1 && strings.Contains(op.path, "{") {
			t.Errorf("%s: %d: another organization's member reached it: %s", where, status, body)
		}
		if strings.Contains(op.path, "{") && status != http.StatusNotFound && status != http.StatusForbidden {
			t.Errorf("%s: %d, want 404 or 403: %s", where, status, body)
		}
		return
	}
	if want, ok := serviceRefusals[op.id][role]; ok {
		if status != want {
			t.Errorf("%s: %d, want %d: %s", where, status, want, body)
		}
		return
	}
	if expectedAllowed(role, op.perm) {
		if status == http.StatusForbidden {
			t.Errorf("%s: refused, but the role has %s: %s", where, op.perm, body)
		}
		return
	}
	if status != http.StatusForbidden {
		t.Errorf("%s: %d, want 403: %s", where, status, body)
	}
}
