package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/store"
)

// ErrForbidden means the caller's role does not allow the operation. Errors
// that match it are *ForbiddenError, whose message is safe to show.
var ErrForbidden = errors.New("forbidden")

// ForbiddenError says what the caller may not do and why.
type ForbiddenError struct{ Message string }

func (e *ForbiddenError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrForbidden) hold.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// Require returns a *ForbiddenError unless p has perm.
func (p Principal) Require(perm authz.Permission) error {
	if p.Can(perm) {
		return nil
	}
	return &ForbiddenError{Message: fmt.Sprintf("your role (%s) does not allow %s", p.Role, perm)}
}

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// CreateOrganization makes a new organization with the caller as its owner.
// Anyone signed in may: it is a new, empty tenant.
func (s *Service) CreateOrganization(ctx context.Context, p Principal, name string) (store.Organization, error) {
	name, err := validateText("name", name, 100)
	if err != nil {
		return store.Organization{}, err
	}
	if name == "" {
		return store.Organization{}, &FieldError{"name", "is required"}
	}
	org := store.Organization{Name: name}
	return org, s.db.CreateOrganization(ctx, s.now(), &org, p.User.ID)
}

// Organizations lists the caller's memberships.
func (s *Service) Organizations(ctx context.Context, p Principal) ([]store.Membership, error) {
	return s.db.Memberships(ctx, p.User.ID)
}

// SwitchOrganization moves the caller's browser session to another of their
// organizations. API tokens belong to one organization and cannot switch.
func (s *Service) SwitchOrganization(ctx context.Context, p Principal, orgID string) (Principal, error) {
	if p.SessionHash == "" {
		return Principal{}, &FieldError{"organization", "an API token belongs to one organization; sign in or create a token in the other organization"}
	}
	if _, err := s.db.Membership(ctx, orgID, p.User.ID); errors.Is(err, store.ErrNotFound) {
		return Principal{}, &FieldError{"organization", "you are not a member of that organization"}
	} else if err != nil {
		return Principal{}, err
	}
	if err := s.db.SwitchSession(ctx, p.SessionHash, orgID); err != nil {
		return Principal{}, err
	}
	next, err := s.principal(ctx, p.User.ID, orgID, "")
	if err != nil {
		return Principal{}, err
	}
	next.SessionHash, next.CSRFToken = p.SessionHash, p.CSRFToken
	return next, nil
}

// RenameOrganization renames the caller's organization.
func (s *Service) RenameOrganization(ctx context.Context, p Principal, name string) error {
	if err := p.Require(authz.OrgWrite); err != nil {
		return err
	}
	name, err := validateText("name", name, 100)
	if err != nil {
		return err
	}
	if name == "" {
		return &FieldError{"name", "is required"}
	}
	return s.db.RenameOrganization(ctx, p.Organization.ID, name)
}

// SetRequireTwoFactor turns the organization's two-factor requirement on or
// off. Turning it on needs the caller to have two-factor login themselves,
// so that the owner cannot lock themselves out of everything but enrolment.
func (s *Service) SetRequireTwoFactor(ctx context.Context, p Principal, on bool) error {
	if err := p.Require(authz.OrgWrite); err != nil {
		return err
	}
	if on {
		if _, err := s.enabledTOTP(ctx, p.User.ID); err != nil {
			return &FieldError{"require_two_factor", "set up two-factor login for your own account first"}
		}
	}
	return s.db.SetRequireTwoFactor(ctx, p.Organization.ID, on)
}

// Members lists the organization's members.
func (s *Service) Members(ctx context.Context, p Principal) ([]store.Member, error) {
	if err := p.Require(authz.MemberRead); err != nil {
		return nil, err
	}
	return s.db.Members(ctx, p.Organization.ID)
}

// checkGrant refuses handing out a role the caller's own does not cover,
// and the owner role, which moves only by TransferOwnership.
func checkGrant(p Principal, role string) error {
	if _, ok := authz.Lookup(role); !ok || role == authz.Owner {
		return &FieldError{"role", "must be one of admin, developer, viewer, member (ownership moves by transfer)"}
	}
	if !authz.Covers(p.Role, role) {
		return &ForbiddenError{Message: fmt.Sprintf("your role (%s) cannot grant %s: nobody can grant a role above their own", p.Role, role)}
	}
	return nil
}

// Invite creates an invitation of email to the organization with role and
// returns its single-use token (for the link) once.
func (s *Service) Invite(ctx context.Context, p Principal, email, role string) (string, store.Invitation, error) {
	return s.InviteTo(ctx, p, email, role, "", "")
}

// InviteTo is Invite scoped to a project (or one environment of it, by id):
// the invitee joins as a member who reaches only that, with role there.
func (s *Service) InviteTo(ctx context.Context, p Principal, email, role, projectID, envID string) (string, store.Invitation, error) {
	if err := p.Require(authz.MemberInvite); err != nil {
		return "", store.Invitation{}, err
	}
	email, err := ValidateEmail(email)
	if err != nil {
		return "", store.Invitation{}, err
	}
	if err := checkGrant(p, role); err != nil {
		return "", store.Invitation{}, err
	}
	if u, err := s.db.UserByEmail(ctx, email); err == nil {
		if _, err := s.db.Membership(ctx, p.Organization.ID, u.ID); err == nil {
			return "", store.Invitation{}, &FieldError{"email", email + " is already a member"}
		}
	}
	token := randomSecret(32)
	if envID != "" && projectID == "" {
		return "", store.Invitation{}, &FieldError{"environment", "needs a project"}
	}
	inv := store.Invitation{OrganizationID: p.Organization.ID, Email: email, Role: role, ProjectID: projectID, EnvironmentID: envID, TokenHash: hashSecret(token),
		InvitedBy: p.User.Email, ExpiresAt: s.now().Add(InvitationTTL)}
	if err := s.db.CreateInvitation(ctx, s.now(), &inv); err != nil {
		return "", store.Invitation{}, err
	}
	return token, inv, nil
}

// Invitations lists the organization's invitations.
func (s *Service) Invitations(ctx context.Context, p Principal) ([]store.Invitation, error) {
	if err := p.Require(authz.MemberRead); err != nil {
		return nil, err
	}
	return s.db.Invitations(ctx, p.Organization.ID)
}

// RevokeInvitation makes a pending invitation's link stop working.
func (s *Service) RevokeInvitation(ctx context.Context, p Principal, id string) error {
	if err := p.Require(authz.MemberInvite); err != nil {
		return err
	}
	return s.db.RevokeInvitation(ctx, s.now(), p.Organization.ID, id)
}

// InvitationInfo is what an invitation link shows before it is accepted.
type InvitationInfo struct {
	Invitation   store.Invitation
	Organization string
	// HasAccount: the invited email has an account, which must sign in to accept.
	HasAccount bool
}

// ErrInvitationInvalid is the one answer to an unknown, used, revoked or
// expired invitation token.
var ErrInvitationInvalid = errors.New("this invitation link is not valid: it was used, revoked or has expired; ask for a new one")

// LookupInvitation reads the invitation a link's token names.
func (s *Service) LookupInvitation(ctx context.Context, token string) (InvitationInfo, error) {
	inv, err := s.db.InvitationByHash(ctx, hashSecret(token))
	if errors.Is(err, store.ErrNotFound) || err == nil && !inv.Pending(s.now()) {
		return InvitationInfo{}, ErrInvitationInvalid
	} else if err != nil {
		return InvitationInfo{}, err
	}
	info := InvitationInfo{Invitation: inv}
	orgName, err := s.db.OrganizationName(ctx, inv.OrganizationID)
	if err != nil {
		return InvitationInfo{}, err
	}
	info.Organization = orgName
	_, err = s.db.UserByEmail(ctx, inv.Email)
	info.HasAccount = err == nil
	return info, nil
}

// AcceptInput accepts an invitation: as a signed-in user whose email is the
// invited one (Principal set), or by creating the invited email's account
// (Name and Password).
type AcceptInput struct {
	Token     string
	Principal *Principal
	Name      string
	Password  string
}

// AcceptInvitation uses an invitation's token once and returns the member's
// principal in the organization joined (sessions start from it).
func (s *Service) AcceptInvitation(ctx context.Context, in AcceptInput) (Principal, error) {
	info, err := s.LookupInvitation(ctx, in.Token)
	if err != nil {
		return Principal{}, err
	}
	var userID string
	var newUser *store.User
	switch {
	case in.Principal != nil:
		if in.Principal.User.Email != info.Invitation.Email {
			return Principal{}, &ForbiddenError{Message: fmt.Sprintf("this invitation is for %s; you are signed in as %s", info.Invitation.Email, in.Principal.User.Email)}
		}
		userID = in.Principal.User.ID
	case info.HasAccount:
		return Principal{}, &ForbiddenError{Message: info.Invitation.Email + " has an account: sign in first, then open the link again"}
	default:
		if reason := CheckPasswordPolicy(in.Password, info.Invitation.Email); reason != "" {
			return Principal{}, &FieldError{"password", reason}
		}
		name, err := validateText("name", in.Name, 100)
		if err != nil {
			return Principal{}, err
		}
		hash, err := hashPassword(in.Password)
		if err != nil {
			return Principal{}, err
		}
		newUser = &store.User{Email: info.Invitation.Email, Name: name, PasswordHash: hash}
	}
	inv, err := s.db.AcceptInvitation(ctx, s.now(), hashSecret(in.Token), userID, newUser)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Principal{}, ErrInvitationInvalid
	case errors.Is(err, store.ErrConflict) && newUser != nil:
		return Principal{}, &ForbiddenError{Message: info.Invitation.Email + " has an account: sign in first, then open the link again"}
	case errors.Is(err, store.ErrConflict):
		return Principal{}, &FieldError{"token", "you are already a member of " + info.Organization}
	case err != nil:
		return Principal{}, err
	}
	if newUser != nil {
		userID = newUser.ID
	}
	return s.principal(ctx, userID, inv.OrganizationID, "")
}

// StartSession opens a browser session for p (after accepting an
// invitation, say), like Login does after the password.
func (s *Service) StartSession(ctx context.Context, p Principal, clientIP, userAgent string) (string, Principal, error) {
	return s.startSession(ctx, p, clientIP, userAgent)
}

// SetMemberRole changes another member's role. The caller's role must cover
// both the member's current role and the new one.
func (s *Service) SetMemberRole(ctx context.Context, p Principal, userID, role string) error {
	if err := p.Require(authz.MemberWrite); err != nil {
		return err
	}
	if userID == p.User.ID {
		return &ForbiddenError{Message: "you cannot change your own role"}
	}
	if err := checkGrant(p, role); err != nil {
		return err
	}
	m, err := s.db.Membership(ctx, p.Organization.ID, userID)
	if err != nil {
		return err
	}
	if !authz.Covers(p.Role, m.Role) {
		return &ForbiddenError{Message: fmt.Sprintf("your role (%s) cannot change a member whose role is %s", p.Role, m.Role)}
	}
	return ownerErr(s.db.SetMemberRole(ctx, p.Organization.ID, userID, role))
}

// RemoveMember ends a membership (or the caller's own: leaving). The
// member's sessions and tokens for the organization stop working at once.
func (s *Service) RemoveMember(ctx context.Context, p Principal, userID string) (store.Revoked, error) {
	if userID != p.User.ID {
		if err := p.Require(authz.MemberWrite); err != nil {
			return store.Revoked{}, err
		}
		m, err := s.db.Membership(ctx, p.Organization.ID, userID)
		if err != nil {
			return store.Revoked{}, err
		}
		if !authz.Covers(p.Role, m.Role) {
			return store.Revoked{}, &ForbiddenError{Message: fmt.Sprintf("your role (%s) cannot remove a member whose role is %s", p.Role, m.Role)}
		}
	}
	r, err := s.db.RemoveMember(ctx, s.now(), p.Organization.ID, userID)
	return r, ownerErr(err)
}

// TransferOwnership makes another member the owner; the caller becomes an admin.
func (s *Service) TransferOwnership(ctx context.Context, p Principal, userID string) error {
	if err := p.Require(authz.OrgWrite); err != nil {
		return err
	}
	if p.Role != store.RoleOwner {
		return &ForbiddenError{Message: "only the owner can transfer ownership"}
	}
	if userID == p.User.ID {
		return &FieldError{"user", "you are the owner already"}
	}
	if _, err := s.db.Membership(ctx, p.Organization.ID, userID); err != nil {
		return err
	}
	return s.db.TransferOwnership(ctx, p.Organization.ID, p.User.ID, userID, authz.Admin)
}

func ownerErr(err error) error {
	if errors.Is(err, store.ErrLastOwner) {
		return &ForbiddenError{Message: err.Error()}
	}
	return err
}

// SetGrant gives a member a role within a project (or one environment of
// it), on top of their membership's role; role "" removes the grant. The
// caller's role must cover the role granted.
func (s *Service) SetGrant(ctx context.Context, p Principal, g store.Grant) error {
	if err := p.Require(authz.MemberWrite); err != nil {
		return err
	}
	if g.Role != "" {
		if err := checkGrant(p, g.Role); err != nil {
			return err
		}
	}
	return s.db.SetGrant(ctx, s.now(), p.Organization.ID, g)
}

// Grants lists a member's grants.
func (s *Service) Grants(ctx context.Context, p Principal, userID string) ([]store.Grant, error) {
	if err := p.Require(authz.MemberRead); err != nil {
		return nil, err
	}
	return s.db.Grants(ctx, p.Organization.ID, userID)
}

// TokenIn issues an API token for the caller in another organization they
// belong to (the CLI's organization switch). A token limited to a role
// cannot mint an unlimited one.
func (s *Service) TokenIn(ctx context.Context, p Principal, orgID, name string, ttl time.Duration) (string, store.APIToken, error) {
	if p.RoleLimited {
		return "", store.APIToken{}, &ForbiddenError{Message: "a token limited to a role cannot create tokens for other organizations; sign in again"}
	}
	q, err := s.principal(ctx, p.User.ID, orgID, "")
	if errors.Is(err, ErrUnauthenticated) {
		return "", store.APIToken{}, &FieldError{"organization", "you are not a member of that organization"}
	} else if err != nil {
		return "", store.APIToken{}, err
	}
	return s.CreateToken(ctx, q, name, ttl)
}

// SendInvitation emails an invitation's link when the server has a mailer.
// It reports whether it sent it; a failed send is returned for the caller to
// show, and the invitation stands (its link can still be handed over).
func (s *Service) SendInvitation(ctx context.Context, p Principal, inv store.Invitation, link string) (bool, error) {
	if s.opts.Mailer == nil {
		return false, nil
	}
	body := fmt.Sprintf("%s invites you to the organization %s on Berth, as %s.\n\n"+
		"Accept the invitation: %s\n\n"+
		"The link works once, until %s, and only for %s. If you did not expect it, ignore this email.\n",
		p.User.Email, p.Organization.Name, inv.Role, link, inv.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"), inv.Email)
	if err := s.opts.Mailer.Send(ctx, inv.Email, "Join "+p.Organization.Name+" on Berth", body); err != nil {
		return false, fmt.Errorf("the invitation email could not be sent (%v); hand the link over yourself", err)
	}
	return true, nil
}
