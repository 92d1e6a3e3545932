package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/mail"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

// ownerSession signs the owner in and returns the session secret and principal.
func ownerSession(t *testing.T, s *Service) (string, Principal) {
	t.Helper()
	secret, _, err := s.Login(context.Background(), Credentials{Email: "owner@example.com", Password: ownerPassword})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Session(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return secret, p
}

// join invites email with role as inviter, accepts as a new account and
// returns the new member's session secret and principal.
func join(t *testing.T, s *Service, inviter Principal, email, role string) (string, Principal) {
	t.Helper()
	ctx := context.Background()
	token, inv, err := s.Invite(ctx, inviter, email, role)
	if err != nil {
		t.Fatal(err)
	}
	if inv.TokenHash == token || inv.Role != role {
		t.Fatalf("invitation %+v", inv)
	}
	p, err := s.AcceptInvitation(ctx, AcceptInput{Token: token, Name: "New", Password: "kettle brown sunrise"})
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := s.StartSession(ctx, p, "", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err = s.Session(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	return secret, p
}

func TestInvitationIsSingleUseAndBoundToItsEmail(t *testing.T) {
	s, c := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, owner := ownerSession(t, s)

	token, _, err := s.Invite(ctx, owner, "dev@example.com", authz.Developer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.LookupInvitation(ctx, token)
	if err != nil || info.Organization != "Default" || info.HasAccount || info.Invitation.Email != "dev@example.com" {
		t.Fatalf("lookup: %+v, %v", info, err)
	}
	if _, err := s.AcceptInvitation(ctx, AcceptInput{Token: token, Name: "Dev", Password: "short"}); fieldOf(err) != "password" {
		t.Errorf("weak password: %v", err)
	}
	dev, err := s.AcceptInvitation(ctx, AcceptInput{Token: token, Name: "Dev", Password: "kettle brown sunrise"})
	if err != nil || dev.Role != authz.Developer || dev.User.Email != "dev@example.com" {
		t.Fatalf("accept: %+v, %v", dev, err)
	}
	if _, err := s.AcceptInvitation(ctx, AcceptInput{Token: token, Name: "Again", Password: "kettle brown sunrise"}); !errors.Is(err, ErrInvitationInvalid) {
		t.Errorf("second use of a token: %v", err)
	}

	// An invitation for an existing account needs that account signed in.
	other, err := s.CreateOrganization(ctx, owner, "Other")
	if err != nil {
		t.Fatal(err)
	}
	inOther, err := s.SwitchOrganization(ctx, owner, other.ID)
	if err != nil || inOther.Organization.ID != other.ID || inOther.Role != authz.Owner {
		t.Fatalf("switch: %+v, %v", inOther, err)
	}
	token2, _, err := s.Invite(ctx, inOther, "dev@example.com", authz.Viewer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptInvitation(ctx, AcceptInput{Token: token2, Name: "X", Password: "kettle brown sunrise"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("accepting for an existing account without signing in: %v", err)
	}
	if _, err := s.AcceptInvitation(ctx, AcceptInput{Token: token2, Principal: &owner}); !errors.Is(err, ErrForbidden) {
		t.Errorf("accepting someone else's invitation: %v", err)
	}
	joined, err := s.AcceptInvitation(ctx, AcceptInput{Token: token2, Principal: &dev})
	if err != nil || joined.Organization.ID != other.ID || joined.Role != authz.Viewer {
		t.Fatalf("accept signed in: %+v, %v", joined, err)
	}
	if ms, _ := s.Organizations(ctx, dev); len(ms) != 2 {
		t.Errorf("dev belongs to %d organizations, want 2", len(ms))
	}

	// Revoked and expired links do not work.
	revoked, inv, _ := s.Invite(ctx, owner, "r@example.com", authz.Viewer)
	if err := s.RevokeInvitation(ctx, owner, inv.ID); err != nil {
		t.Fatal(err)
	}
	expired, _, _ := s.Invite(ctx, owner, "e@example.com", authz.Viewer)
	c.advance(InvitationTTL + time.Minute)
	for name, tok := range map[string]string{"revoked": revoked, "expired": expired, "unknown": "nope"} {
		if _, err := s.LookupInvitation(ctx, tok); !errors.Is(err, ErrInvitationInvalid) {
			t.Errorf("%s invitation: %v", name, err)
		}
	}
}

func TestNobodyGrantsAboveTheirRole(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, owner := ownerSession(t, s)
	_, admin := join(t, s, owner, "admin@example.com", authz.Admin)
	_, dev := join(t, s, owner, "dev@example.com", authz.Developer)

	if _, _, err := s.Invite(ctx, admin, "x@example.com", authz.Owner); fieldOf(err) != "role" {
		t.Errorf("admin inviting an owner: %v", err)
	}
	if _, _, err := s.Invite(ctx, dev, "x@example.com", authz.Viewer); !errors.Is(err, ErrForbidden) {
		t.Errorf("developer inviting: %v", err)
	}
	if _, _, err := s.Invite(ctx, admin, "x@example.com", "root"); fieldOf(err) != "role" {
		t.Errorf("unknown role: %v", err)
	}
	if err := s.SetMemberRole(ctx, admin, owner.User.ID, authz.Viewer); !errors.Is(err, ErrForbidden) {
		t.Errorf("admin demoting the owner: %v", err)
	}
	if err := s.SetMemberRole(ctx, admin, admin.User.ID, authz.Owner); err == nil {
		t.Error("admin promoting themselves")
	}
	if err := s.SetMemberRole(ctx, admin, dev.User.ID, authz.Viewer); err != nil {
		t.Errorf("admin demoting a developer: %v", err)
	}
	if _, err := s.RemoveMember(ctx, admin, owner.User.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("admin removing the owner: %v", err)
	}
	if err := s.TransferOwnership(ctx, admin, admin.User.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("admin taking ownership: %v", err)
	}
	if err := s.TransferOwnership(ctx, owner, admin.User.ID); err != nil {
		t.Fatal(err)
	}
	ms, _ := s.Members(ctx, owner)
	roles := map[string]string{}
	for _, m := range ms {
		roles[m.User.Email] = m.Role
		if m.User.PasswordHash != "" {
			t.Error("the member list carries a password hash")
		}
	}
	if roles["admin@example.com"] != authz.Owner || roles["owner@example.com"] != authz.Admin || roles["dev@example.com"] != authz.Viewer {
		t.Errorf("roles after the transfer: %v", roles)
	}
}

func TestRemovedMemberLosesSessionsAndTokensAtOnce(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, owner := ownerSession(t, s)
	devSession, dev := join(t, s, owner, "dev@example.com", authz.Developer)
	token, _, err := s.CreateToken(ctx, dev, "ci", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(ctx, token); err != nil {
		t.Fatal(err)
	}
	r, err := s.RemoveMember(ctx, owner, dev.User.ID)
	if err != nil || r.Sessions != 1 || r.Tokens != 1 {
		t.Fatalf("remove: %+v, %v", r, err)
	}
	if _, err := s.Session(ctx, devSession); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("removed member's session: %v", err)
	}
	if _, err := s.Token(ctx, token); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("removed member's token: %v", err)
	}
	if _, err := s.RemoveMember(ctx, owner, owner.User.ID); err == nil {
		t.Error("the owner left their organization")
	}
}

func TestTokenRoleAndRequiredTwoFactor(t *testing.T) {
	s, c := newTwoFactorService(t)
	ctx := context.Background()
	_, owner := ownerSession(t, s)
	_, dev := join(t, s, owner, "dev@example.com", authz.Developer)

	// A token limited to viewer acts as a viewer; a demotion below the
	// token's role limits it too.
	if _, _, err := s.CreateRoleToken(ctx, dev, "too-much", authz.Admin, 0); !errors.Is(err, ErrForbidden) {
		t.Errorf("a developer's admin token: %v", err)
	}
	token, _, err := s.CreateRoleToken(ctx, dev, "read-only", authz.Viewer, 0)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := s.Token(ctx, token)
	if err != nil || tp.Role != authz.Viewer || tp.Can(authz.AppDeploy) {
		t.Fatalf("viewer token: %+v, %v", tp, err)
	}

	if err := s.SetRequireTwoFactor(ctx, owner, true); fieldOf(err) != "require_two_factor" {
		t.Fatalf("requiring 2FA without having it: %v", err)
	}
	if err := s.SetRequireTwoFactor(ctx, dev, true); !errors.Is(err, ErrForbidden) {
		t.Errorf("developer changing the organization: %v", err)
	}
	_, _, owner = enrol(t, s, c)
	if err := s.SetRequireTwoFactor(ctx, owner, true); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Token(ctx, token); err != nil || !p.TwoFactorMissing {
		t.Errorf("member without 2FA in an organization that requires it: %+v, %v", p, err)
	}
}

// An invitation to a project makes a member who reaches only that project.
func TestProjectInvitation(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, owner := ownerSession(t, s)
	proj := store.Project{OrganizationID: owner.Organization.ID, Name: "shop"}
	if err := s.db.CreateProject(ctx, time.Now(), &proj, &store.Environment{Network: "berth-net-shop"}); err != nil {
		t.Fatal(err)
	}
	token, _, err := s.InviteTo(ctx, owner, "dev@example.com", authz.Developer, proj.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := s.AcceptInvitation(ctx, AcceptInput{Token: token, Name: "Dev", Password: "kettle brown sunrise"})
	if err != nil {
		t.Fatal(err)
	}
	if dev.Role != authz.Member || !dev.CanIn(authz.AppDeploy, proj.ID, "") || dev.CanIn(authz.ProjectRead, "prj_other", "") || dev.Can(authz.ProjectRead) {
		t.Errorf("a developer invited to one project: role %s, grants %+v", dev.Role, dev.Grants)
	}
	if _, _, err := s.InviteTo(ctx, owner, "x@example.com", authz.Viewer, "prj_nope", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("invitation to a project of no organization: %v", err)
	}
}

// With a mailer, the invitation's link goes by email to the invited address.
func TestInvitationEmail(t *testing.T) {
	srv := testenv.SMTP(t)
	s, _ := newService(t)
	setUp(t, s)
	sender, err := mail.New(mail.Config{URL: "smtp://" + srv.Addr, From: "Berth <berth@example.test>"})
	if err != nil {
		t.Fatal(err)
	}
	_, owner := ownerSession(t, s)
	token, inv, err := s.Invite(context.Background(), owner, "grace@example.test", authz.Viewer)
	if err != nil {
		t.Fatal(err)
	}
	link := "https://berth.example.test/invitations/accept?token=" + token
	if sent, err := s.SendInvitation(context.Background(), owner, inv, link); sent || err != nil {
		t.Fatalf("without a mailer: sent %v, %v", sent, err)
	}
	s.opts.Mailer = sender
	if sent, err := s.SendInvitation(context.Background(), owner, inv, link); !sent || err != nil {
		t.Fatalf("send: %v, %v", sent, err)
	}
	box := srv.Mailbox()
	for _, want := range []string{"To: <grace@example.test>", "Subject: Join Default on Berth", link, "owner@example.com invites you", "as viewer"} {
		if !strings.Contains(box, want) {
			t.Errorf("email lacks %q:\n%s", want, box)
		}
	}
	s.opts.Mailer, _ = mail.New(mail.Config{URL: "smtp://127.0.0.1:1", From: "b@example.test"})
	if sent, err := s.SendInvitation(context.Background(), owner, inv, link); sent || err == nil || !strings.Contains(err.Error(), "hand the link over yourself") {
		t.Errorf("unreachable server: sent %v, %v", sent, err)
	}
}
