package api

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
)

// Every authenticated operation names the permission it needs in the table
// below, and the authenticate middleware checks it before the handler runs:
// deny by default. register refuses (panics at start) an operation that is
// neither marked public nor listed, so a new route cannot slip through
// unguarded. The service layer checks again, per project and environment;
// this table is the coarse gate in front of it, and what the authorization
// matrix test holds every route to.

// Account is the pseudo-permission of operations on the caller's own
// account (who am I, password, two-factor login, signing out, moving between
// one's organizations). Every signed-in member has it, even one whose
// organization requires two-factor login they have not set up yet: these are
// the only operations such a member may use.
const Account authz.Permission = "account"

// permissions maps every authenticated operation to the permission it needs.
var permissions = map[string]authz.Permission{
	// The caller's own account.
	"get-me":                    Account,
	"change-password":           Account,
	"logout":                    Account,
	"get-two-factor":            Account,
	"enrol-two-factor":          Account,
	"confirm-two-factor":        Account,
	"disable-two-factor":        Account,
	"regenerate-recovery-codes": Account,
	"list-organizations":        Account,
	"switch-organization":       Account,
	"create-organization-token": Account,

	// Every member of the organization.
	"get-version":         authz.OrgRead,
	"get-organization":    authz.OrgRead,
	"create-organization": authz.OrgRead,
	"leave-organization":  authz.OrgRead,
	"list-tokens":         authz.TokenWrite,
	"create-token":        authz.TokenWrite,
	"revoke-token":        authz.TokenWrite,

	"update-organization": authz.OrgWrite,
	"transfer-ownership":  authz.OrgWrite,

	"list-members":       authz.MemberRead,
	"list-member-grants": authz.MemberRead,
	"list-invitations":   authz.MemberRead,
	"update-member":      authz.MemberWrite,
	"remove-member":      authz.MemberWrite,
	"set-member-grant":   authz.MemberWrite,
	"create-invitation":  authz.MemberInvite,
	"revoke-invitation":  authz.MemberInvite,

	"list-projects":      authz.ProjectRead,
	"get-project":        authz.ProjectRead,
	"list-environments":  authz.ProjectRead,
	"list-apps":          authz.ProjectRead,
	"get-app":            authz.ProjectRead,
	"get-app-source":     authz.ProjectRead,
	"get-app-requests":   authz.ProjectRead,
	"list-deployments":   authz.ProjectRead,
	"get-deployment":     authz.ProjectRead,
	"follow-deployment":  authz.ProjectRead,
	"get-env":            authz.ProjectRead, // reveal=true needs app.env.reveal too (getEnv)
	"list-builds":        authz.ProjectRead,
	"get-build":          authz.ProjectRead,
	"get-build-queue":    authz.ProjectRead,
	"list-domains":       authz.ProjectRead,
	"get-domain":         authz.ProjectRead,
	"create-project":     authz.ProjectWrite,
	"rename-project":     authz.ProjectWrite,
	"delete-project":     authz.ProjectWrite,
	"create-environment": authz.ProjectWrite,

	"create-app":        authz.AppWrite,
	"update-app-spec":   authz.AppWrite,
	"update-app-source": authz.AppWrite,
	"delete-app":        authz.AppWrite,
	"replace-env":       authz.AppWrite,
	"update-env":        authz.AppWrite,

	"deploy-app":        authz.AppDeploy,
	"rollback-app":      authz.AppDeploy,
	"restart-app":       authz.AppDeploy,
	"stop-app":          authz.AppDeploy,
	"start-app":         authz.AppDeploy,
	"scale-app":         authz.AppDeploy,
	"cancel-deployment": authz.AppDeploy,
	"start-build":       authz.AppDeploy,
	"cancel-build":      authz.AppDeploy,

	"reveal-webhook-secret": authz.AppEnvReveal,
	"rotate-webhook-secret": authz.AppEnvReveal, // and app.write (the manager)

	"app-logs":         authz.AppLogs,
	"get-build-log":    authz.AppLogs,
	"follow-build-log": authz.AppLogs,

	"add-domain":           authz.DomainWrite,
	"update-domain":        authz.DomainWrite,
	"remove-domain":        authz.DomainWrite,
	"upload-certificate":   authz.DomainWrite,
	"use-acme-certificate": authz.DomainWrite,

	"list-connections":         authz.ConnectionRead,
	"list-connection-repos":    authz.ConnectionRead,
	"list-connection-branches": authz.ConnectionRead,
	"create-connection":        authz.ConnectionWrite,
	"delete-connection":        authz.ConnectionWrite,

	"list-registries": authz.RegistryRead,
	"get-registry":    authz.RegistryRead,
	"create-registry": authz.RegistryWrite,
	"update-registry": authz.RegistryWrite,
	"delete-registry": authz.RegistryWrite,
	"test-registry":   authz.RegistryWrite,

	"list-audit":          authz.AuditRead,
	"export-audit":        authz.AuditRead,
	"verify-audit":        authz.AuditRead,
	"get-audit-retention": authz.AuditRead,
	"set-audit-retention": authz.AuditWrite,

	"get-engine-status": authz.ServerRead,
	"get-proxy-status":  authz.ServerRead,
	"get-disk-usage":    authz.ServerRead,
}

// Permissions returns a copy of the table: operation id → permission.
func Permissions() map[string]authz.Permission { return maps.Clone(permissions) }

// projectLevel reports whether grants on projects can give perm: those
// are checked with CanSomewhere here (the service then checks the project).
// Everything else belongs to the organization as a whole.
func projectLevel(perm authz.Permission) bool {
	switch perm {
	case authz.ProjectRead, authz.ProjectWrite, authz.AppWrite, authz.AppDeploy, authz.AppEnvReveal, authz.AppLogs, authz.DomainWrite:
		return true
	}
	return false
}

// Allowed reports whether p passes the gate in front of an operation that
// needs perm: the organization's role for organization-wide permissions, the
// role or a grant in some project for project-level ones. A member whose
// organization requires two-factor login they lack passes only for Account.
func Allowed(p auth.Principal, perm authz.Permission) bool {
	switch {
	case perm == Account:
		return true
	case p.TwoFactorMissing:
		return false
	case projectLevel(perm):
		return p.CanSomewhere(perm)
	}
	return p.Can(perm)
}

// twoFactorRequired is the refusal of everything but Account operations to
// members who still have to set up two-factor login.
const twoFactorRequired = "your organization requires two-factor login: set it up first (berth account 2fa enable, or Account in the web UI), then try again"

// authorize is the gate: nil when p may call op, else the 403 to answer.
func authorize(op *huma.Operation, p auth.Principal) error {
	perm := permissionOf(op)
	if perm == "" {
		// register refuses such operations; this is the last line.
		return huma.Error403Forbidden("this operation declares no permission")
	}
	if Allowed(p, perm) {
		return nil
	}
	if p.TwoFactorMissing {
		return huma.Error403Forbidden(twoFactorRequired)
	}
	if p.RoleLimited {
		return huma.Error403Forbidden(fmt.Sprintf("this token is limited to the %s role, which does not allow %s", p.Role, perm))
	}
	return huma.Error403Forbidden(fmt.Sprintf("your role (%s) does not allow %s", p.Role, perm))
}

const (
	metaPermission = "berth.permission"
	// extPermission shows the permission in the OpenAPI document.
	extPermission = "x-berth-permission"
)

func permissionOf(op *huma.Operation) authz.Permission {
	p, _ := op.Metadata[metaPermission].(authz.Permission)
	return p
}

// declarePermission attaches the table's permission to an authenticated
// operation, and panics when there is none: an operation without one must
// not be served.
func declarePermission(op *huma.Operation) {
	perm, ok := permissions[op.OperationID]
	if !ok {
		panic(fmt.Sprintf("api: operation %s (%s %s) is neither public nor in the permission table (internal/api/permissions.go)", op.OperationID, op.Method, op.Path))
	}
	if perm != Account && !slices.Contains(authz.All, perm) {
		panic(fmt.Sprintf("api: operation %s needs %q, which is not a permission", op.OperationID, perm))
	}
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata[metaPermission] = perm
	if op.Extensions == nil {
		op.Extensions = map[string]any{}
	}
	op.Extensions[extPermission] = string(perm)
	op.Description += permissionDoc(perm)
}

func permissionDoc(perm authz.Permission) string {
	if perm == Account {
		return "\n\n**Permission:** any signed-in member (their own account), also before they set up a two-factor login their organization requires."
	}
	var roles []string
	for _, r := range authz.Builtin {
		if r.Has(perm) {
			roles = append(roles, "`"+r.Name+"`")
		}
	}
	where := "the organization's role"
	if projectLevel(perm) {
		where = "the organization's role, or a grant in the project"
	}
	return fmt.Sprintf("\n\n**Permission:** `%s` (%s: %s); 403 otherwise.", perm, where, joinWords(roles))
}

func joinWords(ws []string) string {
	if len(ws) < 2 {
		return strings.Join(ws, "")
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " or " + ws[len(ws)-1]
}
