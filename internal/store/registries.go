package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Registry is a credential for a private image registry. SealedPassword is
// the password as sealed by internal/secrets: the store never sees plaintext.
type Registry struct {
	ID             string
	OrganizationID string
	Name           string
	Server         string // host[:port], as image references name it
	Username       string
	SealedPassword string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// RegistryConflictError says which unique field of a registry is taken. It
// matches ErrConflict.
type RegistryConflictError struct {
	Field string // "name" or "server"
	Value string
}

func (e *RegistryConflictError) Error() string {
	return fmt.Sprintf("registry %s %q: %v", e.Field, e.Value, ErrConflict)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *RegistryConflictError) Is(target error) bool { return target == ErrConflict }

// registryConflict finds which of r's unique fields another registry of the
// organization holds, so callers can name it; a race past this check still
// fails on the constraints, with a plain ErrConflict.
func registryConflict(ctx context.Context, x q, r Registry) error {
	var name, server string
	err := x.row(ctx, `SELECT name, server FROM registries WHERE organization_id = ? AND id <> ? AND (name = ? OR server = ?)`,
		r.OrganizationID, r.ID, r.Name, r.Server).Scan(&name, &server)
	switch {
	case errors.Is(mapErr(err), ErrNotFound):
		return nil
	case err != nil:
		return err
	case name == r.Name:
		return &RegistryConflictError{Field: "name", Value: r.Name}
	default:
		return &RegistryConflictError{Field: "server", Value: r.Server}
	}
}

// CreateRegistry stores r at time now. It fills r.CreatedAt, r.UpdatedAt
// and, when empty, r.ID (a caller that seals the password for the id sets it
// first, from NewID("reg")). A name or server the organization already has is
// a *RegistryConflictError.
func (db *DB) CreateRegistry(ctx context.Context, now time.Time, r *Registry) error {
	if r.ID == "" {
		r.ID = NewID("reg")
	}
	now = fromMillis(millis(now)) // what a read returns
	r.CreatedAt, r.UpdatedAt = now, now
	return db.inTx(ctx, func(x q) error {
		if err := registryConflict(ctx, x, *r); err != nil {
			return err
		}
		_, err := x.exec(ctx, `INSERT INTO registries (id, organization_id, name, server, username, password, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.OrganizationID, r.Name, r.Server, r.Username, r.SealedPassword, millis(now), millis(now))
		return err
	})
}

const registryColumns = `id, organization_id, name, server, username, password, created_at, updated_at`

func scanRegistry(row interface{ Scan(...any) error }) (Registry, error) {
	var r Registry
	var created, updated int64
	if err := row.Scan(&r.ID, &r.OrganizationID, &r.Name, &r.Server, &r.Username, &r.SealedPassword, &created, &updated); err != nil {
		return Registry{}, mapErr(err)
	}
	r.CreatedAt, r.UpdatedAt = fromMillis(created), fromMillis(updated)
	return r, nil
}

// Registries lists the organization's registries by name.
func (db *DB) Registries(ctx context.Context, orgID string) ([]Registry, error) {
	rows, err := db.q().query(ctx, `SELECT `+registryColumns+` FROM registries WHERE organization_id = ? ORDER BY name`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Registry
	for rows.Next() {
		r, err := scanRegistry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Registry returns one registry of the organization by id.
func (db *DB) Registry(ctx context.Context, orgID, id string) (Registry, error) {
	return scanRegistry(db.q().row(ctx, `SELECT `+registryColumns+` FROM registries WHERE id = ? AND organization_id = ?`, id, orgID))
}

// RegistryByName finds a registry of the organization by name.
func (db *DB) RegistryByName(ctx context.Context, orgID, name string) (Registry, error) {
	return scanRegistry(db.q().row(ctx, `SELECT `+registryColumns+` FROM registries WHERE organization_id = ? AND name = ?`, orgID, name))
}

// RegistryForServer finds the organization's credential for server
// (host[:port], compared exactly); none is ErrNotFound.
func (db *DB) RegistryForServer(ctx context.Context, orgID, server string) (Registry, error) {
	return scanRegistry(db.q().row(ctx, `SELECT `+registryColumns+` FROM registries WHERE organization_id = ? AND server = ?`, orgID, server))
}

// UpdateRegistry saves r's name, server, username and sealed password at
// time now, and sets r.UpdatedAt. A registry outside r.OrganizationID is
// ErrNotFound; a taken name or server a *RegistryConflictError.
func (db *DB) UpdateRegistry(ctx context.Context, now time.Time, r *Registry) error {
	err := db.inTx(ctx, func(x q) error {
		if err := registryConflict(ctx, x, *r); err != nil {
			return err
		}
		return x.execOne(ctx, `UPDATE registries SET name = ?, server = ?, username = ?, password = ?, updated_at = ? WHERE id = ? AND organization_id = ?`,
			r.Name, r.Server, r.Username, r.SealedPassword, millis(now), r.ID, r.OrganizationID)
	})
	if err == nil {
		r.UpdatedAt = fromMillis(millis(now))
	}
	return err
}

// DeleteRegistry deletes a registry of the organization.
func (db *DB) DeleteRegistry(ctx context.Context, orgID, id string) error {
	return db.q().execOne(ctx, `DELETE FROM registries WHERE id = ? AND organization_id = ?`, id, orgID)
}
