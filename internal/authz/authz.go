// Package authz is Berth's permission model. A permission is a string naming
// an action on a resource type ("app.deploy", "member.invite"); a role is a
// named set of permissions. The built-in roles are data, not code paths: a
// check asks whether a role has a permission, never which role it is, so
// custom roles later are new rows, not new branches.
package authz

import (
	"slices"
)

// Permission names an action on a resource type.
type Permission string

// The permissions. Read permissions never include secret values: those
// need AppEnvReveal, and every reveal is audited.
const (
	OrgRead  Permission = "organization.read"  // the organization's name and settings
	OrgWrite Permission = "organization.write" // rename, settings (require two-factor login), transfer ownership, delete

	MemberRead   Permission = "member.read"   // who is a member, with which role
	MemberInvite Permission = "member.invite" // invite people (with a role at most the inviter's)
	MemberWrite  Permission = "member.write"  // change members' roles, remove members, revoke invitations

	ProjectRead  Permission = "project.read"  // projects, environments, apps, deployments, builds, domains, requests
	ProjectWrite Permission = "project.write" // create, rename and delete projects and environments

	AppWrite     Permission = "app.write"      // create, change and delete apps, their variables and git sources
	AppDeploy    Permission = "app.deploy"     // deploy, build, cancel, roll back, restart, scale, stop, start
	AppEnvReveal Permission = "app.env.reveal" // read secret values: variables, webhook secrets
	AppLogs      Permission = "app.logs"       // read app and build logs

	DomainWrite Permission = "domain.write" // add, change and remove domains and certificates

	RegistryRead  Permission = "registry.read"  // registry names, servers and user names (never passwords)
	RegistryWrite Permission = "registry.write" // add, change, test and remove registry credentials

	ConnectionRead  Permission = "connection.read"  // git connections, and the repositories and branches they reach (never tokens)
	ConnectionWrite Permission = "connection.write" // add and remove git connections

	AuditRead  Permission = "audit.read"  // read, export and verify the audit log
	AuditWrite Permission = "audit.write" // the audit log's retention

	ServerRead Permission = "server.read" // the cluster's and the proxy's status, the engine's disk use
	ServerExec Permission = "server.exec" // what reaches the nodes themselves: bind mounts of host paths

	TokenWrite Permission = "token.write" // create and revoke one's own API tokens
)

// All lists every permission, in the order shown to people.
var All = []Permission{
	OrgRead, OrgWrite, MemberRead, MemberInvite, MemberWrite,
	ProjectRead, ProjectWrite, AppWrite, AppDeploy, AppEnvReveal, AppLogs, DomainWrite,
	RegistryRead, RegistryWrite, ConnectionRead, ConnectionWrite, AuditRead, AuditWrite, ServerRead, ServerExec, TokenWrite,
}

// Role is a named set of permissions.
type Role struct {
	Name        string
	Description string
	Permissions []Permission
}

// Has reports whether the role includes p.
func (r Role) Has(p Permission) bool { return slices.Contains(r.Permissions, p) }

// Covers reports whether r includes every permission of o: nobody may
// grant a role their own does not cover.
func (r Role) Covers(o Role) bool {
	for _, p := range o.Permissions {
		if !r.Has(p) {
			return false
		}
	}
	return true
}

// Built-in role names.
const (
	Owner     = "owner"
	Admin     = "admin"
	Developer = "developer"
	Viewer    = "viewer"
	// Member sees the organization and nothing in it: what a member reaches
	// comes from grants on projects or environments.
	Member = "member"
)

var (
	member   = []Permission{OrgRead, TokenWrite}
	readOnly = append(slices.Clone(member), MemberRead, ProjectRead, AppLogs, RegistryRead, ConnectionRead)
	develop  = append(slices.Clone(readOnly), ProjectWrite, AppWrite, AppDeploy, AppEnvReveal, DomainWrite)
	// admin: everything but what only the owner does (the organization
	// itself and the audit log's retention, which erases history).
	admin = slices.DeleteFunc(slices.Clone(All), func(p Permission) bool { return p == OrgWrite || p == AuditWrite })
)

// Builtin are the built-in roles, most powerful first.
var Builtin = []Role{
	{Name: Owner, Description: "everything, including the organization itself and the audit log's retention", Permissions: slices.Clone(All)},
	{Name: Admin, Description: "everything but the organization's settings, ownership and the audit log's retention", Permissions: admin},
	{Name: Developer, Description: "projects and apps: create, deploy, variables (with their values), domains; read the rest", Permissions: develop},
	{Name: Viewer, Description: "read projects, apps, deployments and logs; no secret values, no changes", Permissions: readOnly},
	{Name: Member, Description: "only the projects and environments granted to them", Permissions: member},
}

// Lookup finds a built-in role by name.
func Lookup(name string) (Role, bool) {
	for _, r := range Builtin {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// Can reports whether the role named role has p. An unknown role has no
// permission (deny by default).
func Can(role string, p Permission) bool {
	r, ok := Lookup(role)
	return ok && r.Has(p)
}

// Covers reports whether role grantor may hand out role granted: it must
// include every one of granted's permissions. Unknown roles cover nothing
// and are covered by nothing.
func Covers(grantor, granted string) bool {
	a, ok := Lookup(grantor)
	b, ok2 := Lookup(granted)
	return ok && ok2 && a.Covers(b)
}
