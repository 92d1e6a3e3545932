package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrSetupDone is returned by CompleteSetup once an owner exists.
var ErrSetupDone = errors.New("setup already completed")

// User is an account. Email is stored lower-cased.
type User struct {
	ID                string
	Email             string
	Name              string
	PasswordHash      string
	CreatedAt         time.Time
	PasswordChangedAt time.Time
}

// Organization owns every resource.
type Organization struct {
	ID        string
	Name      string
	CreatedAt time.Time
	// RequireTwoFactor: members without two-factor login may only set it up.
	RequireTwoFactor bool
}

// Membership is a user's role in an organization.
type Membership struct {
	Organization Organization
	UserID       string
	Role         string
}

// Built-in role names.
const (
	RoleOwner = "owner"
)

// InstallID returns this installation's id, created on first use. It labels
// what the installation owns in a cluster that might be shared.
func (db *DB) InstallID(ctx context.Context) (string, error) {
	if _, err := db.q().exec(ctx, `INSERT INTO settings (key, value) VALUES ('install.id', ?) ON CONFLICT (key) DO NOTHING`, NewID("ins")); err != nil {
		return "", err
	}
	var id string
	err := db.q().row(ctx, `SELECT value FROM settings WHERE key = 'install.id'`).Scan(&id)
	return id, mapErr(err)
}

// SetupDone reports whether the first owner exists.
func (db *DB) SetupDone(ctx context.Context) (bool, error) {
	var n int
	err := db.q().row(ctx, `SELECT COUNT(*) FROM settings WHERE key = 'setup.completed_at'`).Scan(&n)
	return n > 0, mapErr(err)
}

// CompleteSetup creates the first organization and its owner at time now. It
// runs once: the settings row makes a concurrent or repeated call fail with ErrSetupDone.
func (db *DB) CompleteSetup(ctx context.Context, now time.Time, org *Organization, u *User) error {
	org.ID, org.CreatedAt = NewID("org"), now
	u.ID, u.CreatedAt, u.PasswordChangedAt = NewID("usr"), now, now
	u.Email = strings.ToLower(u.Email)
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `INSERT INTO settings (key, value) VALUES ('setup.completed_at', ?)`, now.Format(time.RFC3339)); err != nil {
			if errors.Is(err, ErrConflict) {
				return ErrSetupDone
			}
			return err
		}
		if _, err := x.exec(ctx, `INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)`, org.ID, org.Name, millis(now)); err != nil {
			return err
		}
		if err := insertUser(ctx, x, u); err != nil {
			return err
		}
		_, err := x.exec(ctx, `INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES (?, ?, ?, ?)`, org.ID, u.ID, RoleOwner, millis(now))
		return err
	})
}

func insertUser(ctx context.Context, x q, u *User) error {
	_, err := x.exec(ctx, `INSERT INTO users (id, email, name, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, u.PasswordHash, millis(u.CreatedAt), millis(u.PasswordChangedAt))
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("email %s: %w", u.Email, ErrConflict)
	}
	return err
}

const userColumns = `id, email, name, password_hash, created_at, password_changed_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created, changed int64
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &created, &changed); err != nil {
		return User{}, mapErr(err)
	}
	u.CreatedAt, u.PasswordChangedAt = fromMillis(created), fromMillis(changed)
	return u, nil
}

// UserByEmail finds a user by email, case-insensitively.
func (db *DB) UserByEmail(ctx context.Context, email string) (User, error) {
	return scanUser(db.q().row(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, strings.ToLower(email)))
}

// UserByID finds a user by id.
func (db *DB) UserByID(ctx context.Context, id string) (User, error) {
	return scanUser(db.q().row(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
}

// SetPassword replaces a user's password hash, ends every session of the
// user and revokes every API token of the user, except the credential in
// keep (the one that made the change): a leaked password may have been used
// to open those sessions and mint those tokens.
func (db *DB) SetPassword(ctx context.Context, now time.Time, userID, hash string, keep Keep) (Revoked, error) {
	var r Revoked
	err := db.inTx(ctx, func(x q) error {
		if err := x.execOne(ctx, `UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?`, hash, millis(now), userID); err != nil {
			return err
		}
		if _, err := x.exec(ctx, `DELETE FROM pending_logins WHERE user_id = ?`, userID); err != nil {
			return err
		}
		var err error
		r, err = revokeOthers(ctx, x, now, userID, keep)
		return err
	})
	return r, err
}

// Memberships lists the organizations a user belongs to, oldest first.
func (db *DB) Memberships(ctx context.Context, userID string) ([]Membership, error) {
	rows, err := db.q().query(ctx, `SELECT `+membershipColumns+` FROM memberships m JOIN organizations o ON o.id = m.organization_id WHERE m.user_id = ? ORDER BY m.created_at, o.id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		m, err := scanMembership(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

const membershipColumns = `o.id, o.name, o.created_at, o.require_two_factor, m.user_id, m.role`

func scanMembership(row interface{ Scan(...any) error }) (Membership, error) {
	var m Membership
	var created int64
	if err := row.Scan(&m.Organization.ID, &m.Organization.Name, &created, &m.Organization.RequireTwoFactor, &m.UserID, &m.Role); err != nil {
		return Membership{}, mapErr(err)
	}
	m.Organization.CreatedAt = fromMillis(created)
	return m, nil
}

// Membership returns the user's membership in one organization.
func (db *DB) Membership(ctx context.Context, orgID, userID string) (Membership, error) {
	return scanMembership(db.q().row(ctx, `SELECT `+membershipColumns+` FROM memberships m JOIN organizations o ON o.id = m.organization_id WHERE m.organization_id = ? AND m.user_id = ?`, orgID, userID))
}

// OrganizationName returns an organization's name.
func (db *DB) OrganizationName(ctx context.Context, id string) (string, error) {
	var name string
	err := db.q().row(ctx, `SELECT name FROM organizations WHERE id = ?`, id).Scan(&name)
	return name, mapErr(err)
}
