package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Member is a user's membership as the organization's member list shows it.
type Member struct {
	User     User
	Role     string
	JoinedAt time.Time
}

// Invitation is an offer to join an organization with a role. Only the
// hash of its token is stored.
type Invitation struct {
	ID             string
	OrganizationID string
	Email          string
	Role           string
	// ProjectID, when set, scopes the invitation: the invitee becomes a
	// "member" with Role granted in the project (or EnvironmentID of it).
	ProjectID     string
	EnvironmentID string
	TokenHash     string
	InvitedBy     string // the inviter's email
	CreatedAt     time.Time
	ExpiresAt     time.Time
	AcceptedAt    *time.Time
	AcceptedBy    string
	RevokedAt     *time.Time
}

// Pending reports whether the invitation can still be accepted at now.
func (i Invitation) Pending(now time.Time) bool {
	return i.AcceptedAt == nil && i.RevokedAt == nil && now.Before(i.ExpiresAt)
}

// ErrLastOwner refuses what would leave an organization without its owner.
var ErrLastOwner = errors.New("the organization's owner cannot be removed or demoted; transfer ownership first")

// CreateOrganization stores a new organization with u as its owner.
func (db *DB) CreateOrganization(ctx context.Context, now time.Time, org *Organization, ownerID string) error {
	org.ID, org.CreatedAt = NewID("org"), fromMillis(millis(now))
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)`, org.ID, org.Name, millis(now)); err != nil {
			return err
		}
		_, err := x.exec(ctx, `INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES (?, ?, ?, ?)`, org.ID, ownerID, RoleOwner, millis(now))
		return err
	})
}

// RenameOrganization renames an organization.
func (db *DB) RenameOrganization(ctx context.Context, orgID, name string) error {
	return db.q().execOne(ctx, `UPDATE organizations SET name = ? WHERE id = ?`, name, orgID)
}

// SetRequireTwoFactor turns the organization's two-factor requirement on or off.
func (db *DB) SetRequireTwoFactor(ctx context.Context, orgID string, on bool) error {
	return db.q().execOne(ctx, `UPDATE organizations SET require_two_factor = ? WHERE id = ?`, sqlBool(on), orgID)
}

// Members lists an organization's members by email.
func (db *DB) Members(ctx context.Context, orgID string) ([]Member, error) {
	rows, err := db.q().query(ctx, `SELECT u.id, u.email, u.name, u.password_hash, u.created_at, u.password_changed_at, m.role, m.created_at
		FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.organization_id = ? ORDER BY u.email`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var created, changed, joined int64
		if err := rows.Scan(&m.User.ID, &m.User.Email, &m.User.Name, &m.User.PasswordHash, &created, &changed, &m.Role, &joined); err != nil {
			return nil, err
		}
		m.User.PasswordHash = "" // a member list never carries it
		m.User.CreatedAt, m.User.PasswordChangedAt, m.JoinedAt = fromMillis(created), fromMillis(changed), fromMillis(joined)
		out = append(out, m)
	}
	return out, rows.Err()
}

// SetMemberRole changes a member's role. The owner's role changes only by
// TransferOwnership (ErrLastOwner).
func (db *DB) SetMemberRole(ctx context.Context, orgID, userID, role string) error {
	return db.inTx(ctx, func(x q) error {
		var cur string
		if err := x.row(ctx, `SELECT role FROM memberships WHERE organization_id = ? AND user_id = ?`, orgID, userID).Scan(&cur); err != nil {
			return mapErr(err)
		}
		if cur == RoleOwner || role == RoleOwner {
			return ErrLastOwner
		}
		return x.execOne(ctx, `UPDATE memberships SET role = ? WHERE organization_id = ? AND user_id = ?`, role, orgID, userID)
	})
}

// RemoveMember ends a membership, the member's sessions in the organization
// and their API tokens for it, at once. The owner cannot be removed
// (ErrLastOwner).
func (db *DB) RemoveMember(ctx context.Context, now time.Time, orgID, userID string) (Revoked, error) {
	var r Revoked
	err := db.inTx(ctx, func(x q) error {
		var cur string
		if err := x.row(ctx, `SELECT role FROM memberships WHERE organization_id = ? AND user_id = ?`, orgID, userID).Scan(&cur); err != nil {
			return mapErr(err)
		}
		if cur == RoleOwner {
			return ErrLastOwner
		}
		if err := x.execOne(ctx, `DELETE FROM memberships WHERE organization_id = ? AND user_id = ?`, orgID, userID); err != nil {
			return err
		}
		if _, err := x.exec(ctx, `DELETE FROM grants WHERE organization_id = ? AND user_id = ?`, orgID, userID); err != nil {
			return err
		}
		res, err := x.exec(ctx, `DELETE FROM sessions WHERE organization_id = ? AND user_id = ?`, orgID, userID)
		if err != nil {
			return err
		}
		if r.Sessions, err = res.RowsAffected(); err != nil {
			return err
		}
		res, err = x.exec(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE organization_id = ? AND user_id = ? AND revoked_at IS NULL`, millis(now), orgID, userID)
		if err != nil {
			return err
		}
		r.Tokens, err = res.RowsAffected()
		return err
	})
	return r, err
}

// TransferOwnership makes member to the owner and the current owner from
// an admin, in one transaction.
func (db *DB) TransferOwnership(ctx context.Context, orgID, from, to, formerOwnerRole string) error {
	return db.inTx(ctx, func(x q) error {
		if err := x.execOne(ctx, `UPDATE memberships SET role = ? WHERE organization_id = ? AND user_id = ? AND role = ?`, formerOwnerRole, orgID, from, RoleOwner); err != nil {
			return err
		}
		return x.execOne(ctx, `UPDATE memberships SET role = ? WHERE organization_id = ? AND user_id = ?`, RoleOwner, orgID, to)
	})
}

// SwitchSession moves a browser session to another organization.
func (db *DB) SwitchSession(ctx context.Context, idHash, orgID string) error {
	return db.q().execOne(ctx, `UPDATE sessions SET organization_id = ? WHERE id_hash = ?`, orgID, idHash)
}

// CreateInvitation stores inv, filling its id. A pending invitation of the
// same email to the organization is revoked first: the newest link wins.
func (db *DB) CreateInvitation(ctx context.Context, now time.Time, inv *Invitation) error {
	inv.ID, inv.CreatedAt = NewID("inv"), fromMillis(millis(now))
	inv.Email = strings.ToLower(inv.Email)
	return db.inTx(ctx, func(x q) error {
		if inv.ProjectID != "" {
			var n int
			if err := x.row(ctx, `SELECT COUNT(*) FROM projects WHERE organization_id = ? AND id = ?`, inv.OrganizationID, inv.ProjectID).Scan(&n); err != nil || n == 0 {
				return fmt.Errorf("project %s: %w", inv.ProjectID, ErrNotFound)
			}
			if inv.EnvironmentID != "" {
				if err := x.row(ctx, `SELECT COUNT(*) FROM environments WHERE project_id = ? AND id = ?`, inv.ProjectID, inv.EnvironmentID).Scan(&n); err != nil || n == 0 {
					return fmt.Errorf("environment %s: %w", inv.EnvironmentID, ErrNotFound)
				}
			}
		}
		if _, err := x.exec(ctx, `UPDATE invitations SET revoked_at = ? WHERE organization_id = ? AND email = ? AND accepted_at IS NULL AND revoked_at IS NULL`,
			millis(now), inv.OrganizationID, inv.Email); err != nil {
			return err
		}
		_, err := x.exec(ctx, `INSERT INTO invitations (id, organization_id, email, role, project_id, environment_id, token_hash, invited_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			inv.ID, inv.OrganizationID, inv.Email, inv.Role, inv.ProjectID, inv.EnvironmentID, inv.TokenHash, inv.InvitedBy, millis(now), millis(inv.ExpiresAt))
		return err
	})
}

const invitationColumns = `id, organization_id, email, role, project_id, environment_id, token_hash, invited_by, created_at, expires_at, accepted_at, accepted_by, revoked_at`

func scanInvitation(row interface{ Scan(...any) error }) (Invitation, error) {
	var i Invitation
	var created, expires int64
	var accepted, revoked sql.NullInt64
	var by sql.NullString
	if err := row.Scan(&i.ID, &i.OrganizationID, &i.Email, &i.Role, &i.ProjectID, &i.EnvironmentID, &i.TokenHash, &i.InvitedBy, &created, &expires, &accepted, &by, &revoked); err != nil {
		return Invitation{}, mapErr(err)
	}
	i.CreatedAt, i.ExpiresAt, i.AcceptedAt, i.AcceptedBy, i.RevokedAt = fromMillis(created), fromMillis(expires), fromNullMillis(accepted), by.String, fromNullMillis(revoked)
	return i, nil
}

// Invitations lists an organization's invitations, newest first.
func (db *DB) Invitations(ctx context.Context, orgID string) ([]Invitation, error) {
	rows, err := db.q().query(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE organization_id = ? ORDER BY created_at DESC, id`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Invitation
	for rows.Next() {
		i, err := scanInvitation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

// InvitationByHash finds an invitation by its token's hash.
func (db *DB) InvitationByHash(ctx context.Context, hash string) (Invitation, error) {
	return scanInvitation(db.q().row(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE token_hash = ?`, hash))
}

// RevokeInvitation revokes a pending invitation of the organization.
func (db *DB) RevokeInvitation(ctx context.Context, now time.Time, orgID, id string) error {
	err := db.q().execOne(ctx, `UPDATE invitations SET revoked_at = ? WHERE id = ? AND organization_id = ? AND accepted_at IS NULL AND revoked_at IS NULL`, millis(now), id, orgID)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("invitation %s is not pending: %w", id, ErrNotFound)
	}
	return err
}

// AcceptInvitation uses the invitation with the token hash for user: in one
// transaction it is marked accepted (only if still pending at now, so a
// token works once) and the membership is created. newUser, when set, is
// created first (an invitee without an account). A user who is already a
// member is ErrConflict; an invitation that is not pending is ErrNotFound.
func (db *DB) AcceptInvitation(ctx context.Context, now time.Time, hash string, userID string, newUser *User) (Invitation, error) {
	var inv Invitation
	err := db.inTx(ctx, func(x q) error {
		var err error
		if inv, err = scanInvitation(x.row(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE token_hash = ?`, hash)); err != nil {
			return err
		}
		if !inv.Pending(now) {
			return fmt.Errorf("invitation: %w", ErrNotFound)
		}
		if newUser != nil {
			newUser.ID, newUser.CreatedAt, newUser.PasswordChangedAt = NewID("usr"), now, now
			newUser.Email = strings.ToLower(newUser.Email)
			if err := insertUser(ctx, x, newUser); err != nil {
				return err
			}
			userID = newUser.ID
		}
		if err := x.execOne(ctx, `UPDATE invitations SET accepted_at = ?, accepted_by = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL`, millis(now), userID, inv.ID); err != nil {
			return err
		}
		role := inv.Role
		if inv.ProjectID != "" {
			role = "member" // authz.Member: the grant below is the reach
		}
		if _, err := x.exec(ctx, `INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES (?, ?, ?, ?)`, inv.OrganizationID, userID, role, millis(now)); err != nil {
			return err
		}
		if inv.ProjectID == "" {
			return nil
		}
		_, err = x.exec(ctx, `INSERT INTO grants (organization_id, user_id, project_id, environment_id, role, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			inv.OrganizationID, userID, inv.ProjectID, inv.EnvironmentID, inv.Role, millis(now))
		return err
	})
	return inv, err
}

// Grant gives a member a role within one project, or one environment of it
// (EnvironmentID set).
type Grant struct {
	UserID        string
	ProjectID     string
	EnvironmentID string // "" for the whole project
	Role          string
}

// Grants lists a member's grants in an organization.
func (db *DB) Grants(ctx context.Context, orgID, userID string) ([]Grant, error) {
	rows, err := db.q().query(ctx, `SELECT user_id, project_id, environment_id, role FROM grants WHERE organization_id = ? AND user_id = ? ORDER BY project_id, environment_id`, orgID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var g Grant
		if err := rows.Scan(&g.UserID, &g.ProjectID, &g.EnvironmentID, &g.Role); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// SetGrant gives a member a role in a project or environment of the
// organization, replacing the grant there if any; role "" removes it.
func (db *DB) SetGrant(ctx context.Context, now time.Time, orgID string, g Grant) error {
	return db.inTx(ctx, func(x q) error {
		var n int
		if err := x.row(ctx, `SELECT COUNT(*) FROM memberships WHERE organization_id = ? AND user_id = ?`, orgID, g.UserID).Scan(&n); err != nil || n == 0 {
			return fmt.Errorf("member %s: %w", g.UserID, ErrNotFound)
		}
		if err := x.row(ctx, `SELECT COUNT(*) FROM projects WHERE organization_id = ? AND id = ?`, orgID, g.ProjectID).Scan(&n); err != nil || n == 0 {
			return fmt.Errorf("project %s: %w", g.ProjectID, ErrNotFound)
		}
		if g.EnvironmentID != "" {
			if err := x.row(ctx, `SELECT COUNT(*) FROM environments WHERE project_id = ? AND id = ?`, g.ProjectID, g.EnvironmentID).Scan(&n); err != nil || n == 0 {
				return fmt.Errorf("environment %s: %w", g.EnvironmentID, ErrNotFound)
			}
		}
		if _, err := x.exec(ctx, `DELETE FROM grants WHERE organization_id = ? AND user_id = ? AND project_id = ? AND environment_id = ?`,
			orgID, g.UserID, g.ProjectID, g.EnvironmentID); err != nil {
			return err
		}
		if g.Role == "" {
			return nil
		}
		_, err := x.exec(ctx, `INSERT INTO grants (organization_id, user_id, project_id, environment_id, role, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			orgID, g.UserID, g.ProjectID, g.EnvironmentID, g.Role, millis(now))
		return err
	})
}
