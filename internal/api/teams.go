package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/store"
)

// Teams: the caller's organizations, the current organization's settings,
// its members and their grants on projects, and invitations. The auth
// service checks each permission again; handlers translate names (an
// email, a project name) into the ids it takes.

// Membership is one of the caller's organizations.
type Membership struct {
	Organization     Organization `json:"organization"`
	Role             string       `json:"role" example:"developer" doc:"The caller's role there"`
	RequireTwoFactor bool         `json:"require_two_factor" doc:"Members must have two-factor login to do anything there"`
	Current          bool         `json:"current" doc:"The organization this request was made in"`
}

// MembershipList is the caller's organizations.
type MembershipList struct {
	Organizations []Membership `json:"organizations"`
}

// CreateOrganizationRequest creates an organization owned by the caller.
type CreateOrganizationRequest struct {
	Name string `json:"name" maxLength:"400" example:"Acme Labs" doc:"Up to 100 characters"`
}

// OrganizationDetail is the current organization and its settings.
type OrganizationDetail struct {
	Organization
	RequireTwoFactor bool   `json:"require_two_factor" doc:"Members without two-factor login may only set it up (and sign out)"`
	Role             string `json:"role" example:"owner" doc:"The caller's role"`
}

// UpdateOrganizationRequest changes the current organization's settings;
// fields left out keep their value.
type UpdateOrganizationRequest struct {
	Name             *string `json:"name,omitempty" maxLength:"400" example:"Acme" doc:"A new name, up to 100 characters"`
	RequireTwoFactor *bool   `json:"require_two_factor,omitempty" doc:"Require two-factor login of every member. Turning it on needs your own two-factor login first"`
}

// OrganizationTokenRequest issues a token in another of the caller's organizations.
type OrganizationTokenRequest struct {
	Name      string `json:"name" maxLength:"256" example:"cli@laptop" doc:"A name to recognise the token by (up to 64 characters)"`
	ExpiresIn string `json:"expires_in,omitempty" maxLength:"32" example:"720h" doc:"Lifetime: a duration such as 30m, 24h or 30d, up to 366 days. Leave out for a token that does not expire"`
}

// OrganizationToken is a token in the organization asked for, shown once.
type OrganizationToken struct {
	IssuedToken
	Organization Organization `json:"organization"`
	Role         string       `json:"role" example:"developer" doc:"The caller's role in that organization"`
}

// Member is a member of the organization.
type Member struct {
	User     User      `json:"user"`
	Role     string    `json:"role" example:"developer" doc:"Role in the organization"`
	JoinedAt time.Time `json:"joined_at" doc:"When they joined"`
}

// MemberList is the organization's members, by email.
type MemberList struct {
	Members []Member `json:"members"`
}

// UpdateMemberRequest changes a member's role.
type UpdateMemberRequest struct {
	Role string `json:"role" maxLength:"32" example:"developer" doc:"admin, developer, viewer or member; at most your own role (ownership moves by transfer)"`
}

// MemberRemoved says what removing a member ended.
type MemberRemoved struct {
	EndedSessions int64 `json:"ended_sessions" doc:"Their browser sessions in the organization that were ended"`
	RevokedTokens int64 `json:"revoked_tokens" doc:"Their API tokens for the organization that were revoked"`
}

// Grant gives a member a role within one project, or one environment of it,
// on top of their organization role.
type Grant struct {
	Project     string `json:"project" example:"shop" doc:"Project name"`
	Environment string `json:"environment,omitempty" example:"staging" doc:"Environment name; absent: the whole project"`
	Role        string `json:"role" example:"developer" doc:"Role there"`
}

// GrantList is a member's grants.
type GrantList struct {
	Grants []Grant `json:"grants"`
}

// SetGrantRequest gives, changes or removes a member's grant.
type SetGrantRequest struct {
	Project     string `json:"project" maxLength:"64" example:"shop" doc:"Project name"`
	Environment string `json:"environment,omitempty" maxLength:"64" example:"staging" doc:"Environment name; leave out for the whole project"`
	Role        string `json:"role" maxLength:"32" example:"developer" doc:"admin, developer, viewer or member, at most your own role; empty removes the grant"`
}

// Invitation is an offer to join the organization. Its link is shown once,
// when it is created.
type Invitation struct {
	ID         string     `json:"id" example:"inv_4fk3mz2xq7bw6a5c" doc:"Invitation id, used to revoke it"`
	Email      string     `json:"email" example:"grace@example.com" doc:"Who is invited: only this email can accept"`
	Role       string     `json:"role" example:"developer" doc:"The role they get (in the project, when the invitation has one)"`
	Scoped     bool       `json:"scoped" doc:"The invitation is to one project (or environment): they join as a member with the role there"`
	InvitedBy  string     `json:"invited_by" example:"ada@example.com" doc:"Who invited them"`
	Status     string     `json:"status" enum:"pending,accepted,revoked,expired"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at" doc:"When the link stops working"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

// InvitationList is the organization's invitations, newest first.
type InvitationList struct {
	Invitations []Invitation `json:"invitations"`
}

// CreateInvitationRequest invites someone by email.
type CreateInvitationRequest struct {
	Email string `json:"email" maxLength:"254" example:"grace@example.com" doc:"Their email address; only an account with it can accept"`
	Role  string `json:"role" maxLength:"32" example:"developer" doc:"admin, developer, viewer or member, at most your own role"`
	// Project scopes the invitation: they join as a member who reaches only it.
	Project     string `json:"project,omitempty" maxLength:"64" example:"shop" doc:"Invite to one project: they join as a member with the role in this project only"`
	Environment string `json:"environment,omitempty" maxLength:"64" example:"staging" doc:"With project: only this environment of it"`
}

// CreatedInvitation is a new invitation with its link, shown only here.
type CreatedInvitation struct {
	Invitation
	Link string `json:"link" example:"https://berth.example.com/invitations/accept?token=…" doc:"The link to send them. It holds a single-use secret and is shown only in this response; it works until expires_at, once"`
	// Emailed: the server sent the link by email (--smtp-url).
	Emailed    bool   `json:"emailed" doc:"The link was emailed to them (the server has --smtp-url)"`
	EmailError string `json:"email_error,omitempty" doc:"Why the email could not be sent; the invitation stands, hand the link over yourself"`
}

// InvitationInfo is what an invitation link offers, before it is accepted.
type InvitationInfo struct {
	Organization string    `json:"organization" example:"Acme" doc:"The organization's name"`
	Email        string    `json:"email" example:"grace@example.com" doc:"Who is invited"`
	Role         string    `json:"role" example:"developer"`
	InvitedBy    string    `json:"invited_by" example:"ada@example.com"`
	ExpiresAt    time.Time `json:"expires_at"`
	HasAccount   bool      `json:"has_account" doc:"The email has an account: accept signed in as it. Otherwise accept with name and password, which creates the account"`
}

// AcceptInvitationRequest accepts an invitation.
type AcceptInvitationRequest struct {
	Token     string `json:"token" maxLength:"256" doc:"The token of the invitation link"`
	Name      string `json:"name,omitempty" maxLength:"400" example:"Grace Hopper" doc:"For a new account: the display name"`
	Password  string `json:"password,omitempty" maxLength:"1024" doc:"For a new account: its password (at least 10 characters, at most 72 bytes; not a common password, not containing the email's local part)"`
	TokenName string `json:"token_name,omitempty" maxLength:"256" example:"cli@laptop" doc:"For a new account: the name of the API token issued with it (default \"invitation\")"`
}

// AcceptedInvitation is the membership an invitation created.
type AcceptedInvitation struct {
	User         User         `json:"user"`
	Organization Organization `json:"organization"`
	Role         string       `json:"role" example:"developer"`
	Token        *IssuedToken `json:"token,omitempty" doc:"For a new account: an API token in the organization joined, shown once"`
}

type membershipListOutput struct{ Body MembershipList }
type membershipOutput struct{ Body Membership }
type createOrganizationInput struct{ Body CreateOrganizationRequest }
type organizationOutput struct{ Body OrganizationDetail }
type updateOrganizationInput struct{ Body UpdateOrganizationRequest }

// OrganizationParams address one of the caller's organizations (exported
// because huma only reads parameters of exported embedded types).
type OrganizationParams struct {
	ID string `path:"id" maxLength:"128" example:"org_m2q7bw6a5c4fk3zx" doc:"Organization id, or the name of one of yours"`
}

type organizationTokenInput struct {
	OrganizationParams
	Body OrganizationTokenRequest
}

type organizationTokenOutput struct{ Body OrganizationToken }

// MemberParams address a member of the organization (exported, as
// OrganizationParams).
type MemberParams struct {
	User string `path:"user" maxLength:"254" example:"grace@example.com" doc:"The member's email or user id"`
}

type memberListOutput struct{ Body MemberList }
type memberOutput struct{ Body Member }
type memberRemovedOutput struct{ Body MemberRemoved }

type updateMemberInput struct {
	MemberParams
	Body UpdateMemberRequest
}

type grantListOutput struct{ Body GrantList }

type setGrantInput struct {
	MemberParams
	Body SetGrantRequest
}

type invitationListOutput struct{ Body InvitationList }
type createInvitationInput struct{ Body CreateInvitationRequest }
type createdInvitationOutput struct{ Body CreatedInvitation }

type invitationIDInput struct {
	ID string `path:"id" maxLength:"64" example:"inv_4fk3mz2xq7bw6a5c" doc:"Invitation id"`
}

type lookupInvitationInput struct {
	Token string `query:"token" maxLength:"256" required:"true" doc:"The token of the invitation link"`
}

type invitationInfoOutput struct{ Body InvitationInfo }
type acceptInvitationInput struct{ Body AcceptInvitationRequest }
type acceptedInvitationOutput struct{ Body AcceptedInvitation }

// invitationPage is the UI page an invitation link opens.
const invitationPage = "/invitations/accept"

func (s *server) registerTeams() {
	s.registerOrganizations()
	s.registerMembers()
	s.registerInvitations()
}

func (s *server) registerOrganizations() {
	tags := []string{"Organizations"}
	register(s, huma.Operation{
		OperationID: "list-organizations",
		Method:      http.MethodGet,
		Path:        Prefix + "/organizations",
		Tags:        tags,
		Summary:     "List your organizations",
		Description: "Lists the organizations the caller is a member of, with their role in each; `current` marks the one this request was made in.",
	}, s.listOrganizations)

	register(s, huma.Operation{
		OperationID:   "create-organization",
		Method:        http.MethodPost,
		Path:          Prefix + "/organizations",
		Tags:          tags,
		Summary:       "Create an organization",
		Description:   "Creates a new, empty organization with the caller as its owner. The caller stays in the current one: switch with `POST /api/v1/organizations/{id}/switch` (browser sessions) or get a token there with `POST /api/v1/organizations/{id}/token`.",
		DefaultStatus: http.StatusCreated,
	}, s.createOrganization)

	register(s, huma.Operation{
		OperationID: "create-organization-token",
		Method:      http.MethodPost,
		Path:        Prefix + "/organizations/{id}/token",
		Tags:        tags,
		Summary:     "Get a token in another of your organizations",
		Description: "Issues an API token for the caller in another organization they belong to (an API token belongs to one organization); this is what `berth org switch` does. " +
			"A token limited to a role cannot do this. The secret is in this response only.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusNotFound},
	}, s.createOrganizationToken)

	register(s, huma.Operation{
		OperationID: "switch-organization",
		Method:      http.MethodPost,
		Path:        Prefix + "/organizations/{id}/switch",
		Tags:        tags,
		Summary:     "Move the browser session to another organization",
		Description: "Moves the caller's browser session to another organization they belong to and returns who they are there. API tokens belong to one organization and answer 422: use `POST /api/v1/organizations/{id}/token`.",
		Errors:      []int{http.StatusNotFound},
	}, s.switchOrganization)

	register(s, huma.Operation{
		OperationID: "get-organization",
		Method:      http.MethodGet,
		Path:        Prefix + "/organization",
		Tags:        tags,
		Summary:     "Show the current organization",
		Description: "Returns the organization this request was made in, its settings and the caller's role.",
	}, s.getOrganization)

	register(s, huma.Operation{
		OperationID: "update-organization",
		Method:      http.MethodPut,
		Path:        Prefix + "/organization",
		Tags:        tags,
		Summary:     "Change the current organization's settings",
		Description: "Renames the organization or turns its two-factor requirement on or off; fields left out keep their value. " +
			"Requiring two-factor login needs the caller's own first (422 otherwise); members without it can then only set it up and sign out.",
	}, s.updateOrganization)

	register(s, huma.Operation{
		OperationID: "leave-organization",
		Method:      http.MethodPost,
		Path:        Prefix + "/organization/leave",
		Tags:        tags,
		Summary:     "Leave the current organization",
		Description: "Ends the caller's membership: their sessions and tokens for the organization stop working at once, including the one making this request. The owner cannot leave (403): transfer ownership first.",
	}, s.leaveOrganization)
}

func (s *server) registerMembers() {
	tags := []string{"Members"}
	register(s, huma.Operation{
		OperationID: "list-members",
		Method:      http.MethodGet,
		Path:        Prefix + "/members",
		Tags:        tags,
		Summary:     "List members",
		Description: "Lists the organization's members with their roles, by email.",
	}, s.listMembers)

	register(s, huma.Operation{
		OperationID: "update-member",
		Method:      http.MethodPut,
		Path:        Prefix + "/members/{user}",
		Tags:        tags,
		Summary:     "Change a member's role",
		Description: "Changes another member's role. Your role must cover both their current role and the new one: nobody grants above their own. The owner's role changes only by transferring ownership.",
		Errors:      []int{http.StatusNotFound},
	}, s.updateMember)

	register(s, huma.Operation{
		OperationID: "remove-member",
		Method:      http.MethodDelete,
		Path:        Prefix + "/members/{user}",
		Tags:        tags,
		Summary:     "Remove a member",
		Description: "Ends a membership; the member's sessions and tokens for the organization stop working at once, and the answer says how many. " +
			"Your role must cover theirs; the owner cannot be removed. To leave yourself, use `POST /api/v1/organization/leave`.",
		Errors: []int{http.StatusNotFound},
	}, s.removeMember)

	register(s, huma.Operation{
		OperationID:   "transfer-ownership",
		Method:        http.MethodPost,
		Path:          Prefix + "/members/{user}/transfer-ownership",
		Tags:          tags,
		Summary:       "Make a member the owner",
		Description:   "Makes another member the organization's owner; the caller, who must be the owner, becomes an admin.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound},
	}, s.transferOwnership)

	if s.deps.Apps == nil {
		return // grants name projects
	}
	register(s, huma.Operation{
		OperationID: "list-member-grants",
		Method:      http.MethodGet,
		Path:        Prefix + "/members/{user}/grants",
		Tags:        tags,
		Summary:     "List a member's project grants",
		Description: "Lists the roles a member has within projects or environments, on top of their organization role.",
		Errors:      []int{http.StatusNotFound},
	}, s.listGrants)

	register(s, huma.Operation{
		OperationID: "set-member-grant",
		Method:      http.MethodPut,
		Path:        Prefix + "/members/{user}/grants",
		Tags:        tags,
		Summary:     "Grant a member a role in a project",
		Description: "Gives a member a role within a project, or one environment of it, on top of their organization role (a `member` sees only what is granted to them). " +
			"An empty role removes the grant. The role must be at most your own. The answer is the member's grants after the change.",
		Errors: []int{http.StatusNotFound},
	}, s.setGrant)
}

func (s *server) registerInvitations() {
	tags := []string{"Invitations"}
	register(s, huma.Operation{
		OperationID: "create-invitation",
		Method:      http.MethodPost,
		Path:        Prefix + "/invitations",
		Tags:        tags,
		Summary:     "Invite someone",
		Description: "Invites an email to the organization with a role (at most your own). The answer's `link` holds a single-use secret and is shown only here: send it to them. " +
			"It works for 7 days, once, and only for that email; a newer invitation of the same email replaces it.",
		DefaultStatus: http.StatusCreated,
	}, s.createInvitation)

	register(s, huma.Operation{
		OperationID: "list-invitations",
		Method:      http.MethodGet,
		Path:        Prefix + "/invitations",
		Tags:        tags,
		Summary:     "List invitations",
		Description: "Lists the organization's invitations, newest first, with their status. Links are never shown again.",
	}, s.listInvitations)

	register(s, huma.Operation{
		OperationID:   "revoke-invitation",
		Method:        http.MethodDelete,
		Path:          Prefix + "/invitations/{id}",
		Tags:          tags,
		Summary:       "Revoke an invitation",
		Description:   "Makes a pending invitation's link stop working. An unknown id, or one no longer pending, answers 404.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound},
	}, s.revokeInvitation)

	register(s, public(huma.Operation{
		OperationID: "lookup-invitation",
		Method:      http.MethodGet,
		Path:        Prefix + "/invitations/lookup",
		Tags:        tags,
		Summary:     "Show what an invitation link offers",
		Description: "Needs no authentication: the link's token is the credential. Returns the organization, the email invited, the role and whether that email has an account. " +
			"A token that is unknown, used, revoked or expired answers 410.",
		Errors: []int{http.StatusGone},
	}), s.lookupInvitation)

	register(s, public(huma.Operation{
		OperationID: "accept-invitation",
		Method:      http.MethodPost,
		Path:        Prefix + "/invitations/accept",
		Tags:        tags,
		Summary:     "Accept an invitation",
		Description: "Uses an invitation link's token, once. Signed in (bearer token, or session cookie with its CSRF token) as the invited email, it adds that account to the organization. " +
			"Not signed in, it creates the invited email's account with `name` and `password` and answers with an API token in the organization joined; an email that has an account must sign in first (403). " +
			"A token that is unknown, used, revoked or expired answers 410.",
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusGone},
	}), s.acceptInvitation)
}

func membershipOf(m store.Membership, current string) Membership {
	return Membership{Organization: organizationOf(m.Organization), Role: m.Role, RequireTwoFactor: m.Organization.RequireTwoFactor, Current: m.Organization.ID == current}
}

func (s *server) listOrganizations(ctx context.Context, _ *struct{}) (*membershipListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := s.deps.Auth.Organizations(ctx, p)
	if err != nil {
		return nil, err
	}
	out := MembershipList{Organizations: make([]Membership, 0, len(ms))}
	for _, m := range ms {
		out.Organizations = append(out.Organizations, membershipOf(m, p.Organization.ID))
	}
	return &membershipListOutput{Body: out}, nil
}

func (s *server) createOrganization(ctx context.Context, in *createOrganizationInput) (*membershipOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	org, err := s.deps.Auth.CreateOrganization(ctx, p, in.Body.Name)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "organization created", "user_id", p.User.ID, "organization_id", org.ID)
	return &membershipOutput{Body: membershipOf(store.Membership{Organization: org, UserID: p.User.ID, Role: store.RoleOwner}, p.Organization.ID)}, nil
}

// membership finds one of the caller's organizations by id or, failing
// that, by name.
func (s *server) membership(ctx context.Context, p auth.Principal, ref string) (store.Membership, error) {
	ms, err := s.deps.Auth.Organizations(ctx, p)
	if err != nil {
		return store.Membership{}, err
	}
	if i := slices.IndexFunc(ms, func(m store.Membership) bool { return m.Organization.ID == ref }); i >= 0 {
		return ms[i], nil
	}
	named := slices.DeleteFunc(ms, func(m store.Membership) bool { return !strings.EqualFold(m.Organization.Name, ref) })
	switch len(named) {
	case 0:
		return store.Membership{}, huma.Error404NotFound("you are not a member of an organization with this id or name; see GET " + Prefix + "/organizations")
	case 1:
		return named[0], nil
	}
	msg := fmt.Sprintf("id: %d of your organizations are named %q; use the id", len(named), ref)
	return store.Membership{}, huma.Error422UnprocessableEntity(msg, &huma.ErrorDetail{Location: "path.id", Message: msg})
}

func (s *server) createOrganizationToken(ctx context.Context, in *organizationTokenInput) (*organizationTokenOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ttl, err := ParseExpiresIn(in.Body.ExpiresIn)
	if err != nil {
		return nil, err
	}
	m, err := s.membership(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	secret, t, err := s.deps.Auth.TokenIn(ctx, p, m.Organization.ID, in.Body.Name, ttl)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "api token created in another organization", "user_id", p.User.ID, "organization_id", m.Organization.ID, "token_id", t.ID, "name", t.Name)
	return &organizationTokenOutput{Body: OrganizationToken{IssuedToken: issuedOf(secret, t), Organization: organizationOf(m.Organization), Role: m.Role}}, nil
}

func (s *server) switchOrganization(ctx context.Context, in *OrganizationParams) (*loginOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.membership(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	next, err := s.deps.Auth.SwitchOrganization(ctx, p, m.Organization.ID)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "organization switched", "user_id", p.User.ID, "organization_id", next.Organization.ID)
	return &loginOutput{Body: LoginResult{User: userOf(next.User), Organization: organizationOf(next.Organization), Role: next.Role, CSRFToken: next.CSRFToken}}, nil
}

func organizationDetailOf(o store.Organization, role string) OrganizationDetail {
	return OrganizationDetail{Organization: organizationOf(o), RequireTwoFactor: o.RequireTwoFactor, Role: role}
}

func (s *server) getOrganization(ctx context.Context, _ *struct{}) (*organizationOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: organizationDetailOf(p.Organization, p.Role)}, nil
}

func (s *server) updateOrganization(ctx context.Context, in *updateOrganizationInput) (*organizationOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if in.Body.Name != nil && *in.Body.Name != p.Organization.Name {
		if err := s.deps.Auth.RenameOrganization(ctx, p, *in.Body.Name); err != nil {
			return nil, err
		}
	}
	if in.Body.RequireTwoFactor != nil && *in.Body.RequireTwoFactor != p.Organization.RequireTwoFactor {
		if err := s.deps.Auth.SetRequireTwoFactor(ctx, p, *in.Body.RequireTwoFactor); err != nil {
			return nil, err
		}
	}
	ms, err := s.deps.Auth.Organizations(ctx, p)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(ms, func(m store.Membership) bool { return m.Organization.ID == p.Organization.ID })
	if i < 0 {
		return nil, store.ErrNotFound
	}
	s.log.InfoContext(ctx, "organization changed", "user_id", p.User.ID, "organization_id", p.Organization.ID, "require_two_factor", ms[i].Organization.RequireTwoFactor)
	return &organizationOutput{Body: organizationDetailOf(ms[i].Organization, ms[i].Role)}, nil
}

func (s *server) leaveOrganization(ctx context.Context, _ *struct{}) (*memberRemovedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Auth.RemoveMember(ctx, p, p.User.ID)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "left organization", "user_id", p.User.ID, "organization_id", p.Organization.ID, "ended_sessions", r.Sessions, "revoked_tokens", r.Tokens)
	return &memberRemovedOutput{Body: MemberRemoved{EndedSessions: r.Sessions, RevokedTokens: r.Tokens}}, nil
}

func memberOf(m store.Member) Member {
	return Member{User: userOf(m.User), Role: m.Role, JoinedAt: m.JoinedAt}
}

func (s *server) listMembers(ctx context.Context, _ *struct{}) (*memberListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := s.deps.Auth.Members(ctx, p)
	if err != nil {
		return nil, err
	}
	out := MemberList{Members: make([]Member, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, memberOf(m))
	}
	return &memberListOutput{Body: out}, nil
}

// member finds a member of the caller's organization by user id or email.
func (s *server) member(ctx context.Context, p auth.Principal, ref string) (store.Member, error) {
	ms, err := s.deps.Auth.Members(ctx, p)
	if err != nil {
		return store.Member{}, err
	}
	i := slices.IndexFunc(ms, func(m store.Member) bool { return m.User.ID == ref || strings.EqualFold(m.User.Email, ref) })
	if i < 0 {
		return store.Member{}, huma.Error404NotFound("no member of this organization has this email or id; see GET " + Prefix + "/members")
	}
	return ms[i], nil
}

func (s *server) updateMember(ctx context.Context, in *updateMemberInput) (*memberOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.member(ctx, p, in.User)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Auth.SetMemberRole(ctx, p, m.User.ID, in.Body.Role); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "member role changed", "user_id", p.User.ID, "member_id", m.User.ID, "role", in.Body.Role)
	m.Role = in.Body.Role
	return &memberOutput{Body: memberOf(m)}, nil
}

func (s *server) removeMember(ctx context.Context, in *MemberParams) (*memberRemovedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.member(ctx, p, in.User)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Auth.RemoveMember(ctx, p, m.User.ID)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "member removed", "user_id", p.User.ID, "member_id", m.User.ID, "ended_sessions", r.Sessions, "revoked_tokens", r.Tokens)
	return &memberRemovedOutput{Body: MemberRemoved{EndedSessions: r.Sessions, RevokedTokens: r.Tokens}}, nil
}

func (s *server) transferOwnership(ctx context.Context, in *MemberParams) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.member(ctx, p, in.User)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Auth.TransferOwnership(ctx, p, m.User.ID); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "ownership transferred", "user_id", p.User.ID, "organization_id", p.Organization.ID, "new_owner_id", m.User.ID)
	return nil, nil
}

// grants lists a member's grants with project and environment names.
func (s *server) grants(ctx context.Context, p auth.Principal, userID string) (*grantListOutput, error) {
	gs, err := s.deps.Auth.Grants(ctx, p, userID)
	if err != nil {
		return nil, err
	}
	projects, err := s.deps.Apps.Projects(ctx, p)
	if err != nil {
		return nil, err
	}
	out := GrantList{Grants: make([]Grant, 0, len(gs))}
	envNames := map[string]string{}
	for _, g := range gs {
		i := slices.IndexFunc(projects, func(pr store.Project) bool { return pr.ID == g.ProjectID })
		if i < 0 {
			continue // a project the caller cannot see
		}
		grant := Grant{Project: projects[i].Name, Role: g.Role}
		if g.EnvironmentID != "" {
			if _, ok := envNames[g.EnvironmentID]; !ok {
				envs, err := s.deps.Apps.Environments(ctx, p, projects[i].Name)
				if err != nil {
					return nil, err
				}
				for _, e := range envs {
					envNames[e.ID] = e.Name
				}
			}
			if grant.Environment = envNames[g.EnvironmentID]; grant.Environment == "" {
				continue
			}
		}
		out.Grants = append(out.Grants, grant)
	}
	return &grantListOutput{Body: out}, nil
}

func (s *server) listGrants(ctx context.Context, in *MemberParams) (*grantListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.member(ctx, p, in.User)
	if err != nil {
		return nil, err
	}
	return s.grants(ctx, p, m.User.ID)
}

// scope resolves a project name and an optional environment name of it to
// ids, as the caller sees them ("" project: no scope).
func (s *server) scope(ctx context.Context, p auth.Principal, project, env string) (string, string, error) {
	if project == "" {
		if env != "" {
			return "", "", &auth.FieldError{Field: "environment", Message: "needs a project"}
		}
		return "", "", nil
	}
	proj, err := s.deps.Apps.Project(ctx, p, project)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", &auth.FieldError{Field: "project", Message: fmt.Sprintf("%q is not a project of this organization", project)}
	} else if err != nil {
		return "", "", err
	}
	if env == "" {
		return proj.ID, "", nil
	}
	envs, err := s.deps.Apps.Environments(ctx, p, proj.Name)
	if err != nil {
		return "", "", err
	}
	i := slices.IndexFunc(envs, func(e store.Environment) bool { return e.Name == env })
	if i < 0 {
		return "", "", &auth.FieldError{Field: "environment", Message: fmt.Sprintf("project %s has no environment %q", proj.Name, env)}
	}
	return proj.ID, envs[i].ID, nil
}

func (s *server) setGrant(ctx context.Context, in *setGrantInput) (*grantListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.member(ctx, p, in.User)
	if err != nil {
		return nil, err
	}
	projectID, envID, err := s.scope(ctx, p, in.Body.Project, in.Body.Environment)
	if err != nil {
		return nil, err
	}
	g := store.Grant{UserID: m.User.ID, ProjectID: projectID, EnvironmentID: envID, Role: in.Body.Role}
	if err := s.deps.Auth.SetGrant(ctx, p, g); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "grant set", "user_id", p.User.ID, "member_id", m.User.ID, "project_id", g.ProjectID, "environment_id", g.EnvironmentID, "role", g.Role)
	return s.grants(ctx, p, m.User.ID)
}

func invitationOf(inv store.Invitation, now time.Time) Invitation {
	status := "pending"
	switch {
	case inv.AcceptedAt != nil:
		status = "accepted"
	case inv.RevokedAt != nil:
		status = "revoked"
	case !now.Before(inv.ExpiresAt):
		status = "expired"
	}
	return Invitation{ID: inv.ID, Email: inv.Email, Role: inv.Role, Scoped: inv.ProjectID != "", InvitedBy: inv.InvitedBy, Status: status,
		CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt, AcceptedAt: inv.AcceptedAt}
}

func (s *server) createInvitation(ctx context.Context, in *createInvitationInput) (*createdInvitationOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	projectID, envID, err := s.scope(ctx, p, in.Body.Project, in.Body.Environment)
	if err != nil {
		return nil, err
	}
	token, inv, err := s.deps.Auth.InviteTo(ctx, p, in.Body.Email, in.Body.Role, projectID, envID)
	if err != nil {
		return nil, err
	}
	// The token is the invitation's only secret: in this answer, nowhere else.
	s.log.InfoContext(ctx, "invitation created", "user_id", p.User.ID, "invitation_id", inv.ID, "role", inv.Role)
	link := s.publicURL(ctx) + invitationPage + "?token=" + url.QueryEscape(token)
	out := CreatedInvitation{Invitation: invitationOf(inv, s.deps.Auth.Now()), Link: link}
	if out.Emailed, err = s.deps.Auth.SendInvitation(ctx, p, inv, link); err != nil {
		out.EmailError = err.Error()
		s.log.WarnContext(ctx, "invitation email not sent", "invitation_id", inv.ID, "err", err)
	}
	return &createdInvitationOutput{Body: out}, nil
}

func (s *server) listInvitations(ctx context.Context, _ *struct{}) (*invitationListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	invs, err := s.deps.Auth.Invitations(ctx, p)
	if err != nil {
		return nil, err
	}
	now := s.deps.Auth.Now()
	out := InvitationList{Invitations: make([]Invitation, 0, len(invs))}
	for _, inv := range invs {
		out.Invitations = append(out.Invitations, invitationOf(inv, now))
	}
	return &invitationListOutput{Body: out}, nil
}

func (s *server) revokeInvitation(ctx context.Context, in *invitationIDInput) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Auth.RevokeInvitation(ctx, p, in.ID); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "invitation revoked", "user_id", p.User.ID, "invitation_id", in.ID)
	return nil, nil
}

func (s *server) lookupInvitation(ctx context.Context, in *lookupInvitationInput) (*invitationInfoOutput, error) {
	info, err := s.deps.Auth.LookupInvitation(ctx, in.Token)
	if err != nil {
		return nil, err
	}
	inv := info.Invitation
	return &invitationInfoOutput{Body: InvitationInfo{Organization: info.Organization, Email: inv.Email, Role: inv.Role,
		InvitedBy: inv.InvitedBy, ExpiresAt: inv.ExpiresAt, HasAccount: info.HasAccount}}, nil
}

// acceptInvitation is public, but takes the caller's credentials when they
// come with it: an existing account accepts signed in.
func (s *server) acceptInvitation(ctx context.Context, in *acceptInvitationInput) (*acceptedInvitationOutput, error) {
	r := exchangeFrom(ctx).r
	accept := auth.AcceptInput{Token: in.Body.Token, Name: in.Body.Name, Password: in.Body.Password}
	if _, noCookie := r.Cookie(auth.SessionCookie); r.Header.Get("Authorization") != "" || noCookie == nil {
		p, err := s.deps.Auth.FromRequest(r)
		if err != nil {
			return nil, err
		}
		if n := audit.NoteFrom(ctx); n != nil {
			n.Principal = &p
		}
		if !csrfValid(r, p) {
			return nil, huma.Error403Forbidden("missing or invalid CSRF token")
		}
		accept.Principal = &p
	}
	if accept.Principal == nil && in.Body.Password == "" {
		if info, err := s.deps.Auth.LookupInvitation(ctx, in.Body.Token); err == nil && !info.HasAccount {
			return nil, &auth.FieldError{Field: "password", Message: "is required to create the account of " + info.Invitation.Email}
		}
	}
	joined, err := s.deps.Auth.AcceptInvitation(ctx, accept)
	if err != nil {
		return nil, err
	}
	if n := audit.NoteFrom(ctx); n != nil {
		n.Principal = &joined // recorded in the organization joined, as the member
	}
	out := AcceptedInvitation{User: userOf(joined.User), Organization: organizationOf(joined.Organization), Role: joined.Role}
	if accept.Principal == nil {
		name := strings.TrimSpace(in.Body.TokenName)
		if name == "" {
			name = "invitation"
		}
		secret, t, err := s.deps.Auth.CreateToken(ctx, joined, name, 0)
		if err != nil {
			return nil, err
		}
		tok := issuedOf(secret, t)
		out.Token = &tok
	}
	s.log.InfoContext(ctx, "invitation accepted", "user_id", joined.User.ID, "organization_id", joined.Organization.ID, "role", joined.Role, "new_account", accept.Principal == nil)
	return &acceptedInvitationOutput{Body: out}, nil
}
