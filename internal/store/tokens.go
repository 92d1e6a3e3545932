package store

import (
	"context"
	"database/sql"
	"time"
)

// APIToken is a bearer token for the API. Only the hash of its secret is stored;
// Prefix is the first characters of the secret, kept to help users recognise it.
type APIToken struct {
	ID             string
	OrganizationID string
	UserID         string
	Name           string
	Hash           string
	Prefix         string
	// Role limits the token to a role ("" is the member's role).
	Role       string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Scope limits a query to what one user sees in one organization.
type Scope struct {
	OrganizationID string
	UserID         string
}

// CreateToken stores a new token (CreatedAt set by the caller) and fills in its id.
func (db *DB) CreateToken(ctx context.Context, t *APIToken) error {
	t.ID = NewID("tok")
	_, err := db.q().exec(ctx, `INSERT INTO api_tokens (id, organization_id, user_id, name, token_hash, prefix, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.OrganizationID, t.UserID, t.Name, t.Hash, t.Prefix, t.Role, millis(t.CreatedAt), nullMillis(t.ExpiresAt))
	return err
}

const tokenColumns = `id, organization_id, user_id, name, token_hash, prefix, role, created_at, expires_at, last_used_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (APIToken, error) {
	var t APIToken
	var created int64
	var expires, used, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.OrganizationID, &t.UserID, &t.Name, &t.Hash, &t.Prefix, &t.Role, &created, &expires, &used, &revoked); err != nil {
		return APIToken{}, mapErr(err)
	}
	t.CreatedAt = fromMillis(created)
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromNullMillis(expires), fromNullMillis(used), fromNullMillis(revoked)
	return t, nil
}

// TokenByHash finds a token by the hash of its secret, revoked or not.
func (db *DB) TokenByHash(ctx context.Context, hash string) (APIToken, error) {
	return scanToken(db.q().row(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE token_hash = ?`, hash))
}

// Tokens lists the tokens in scope that are not revoked, newest first; expired
// ones are included so their owner sees them lapse.
func (db *DB) Tokens(ctx context.Context, s Scope) ([]APIToken, error) {
	rows, err := db.q().query(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE organization_id = ? AND user_id = ? AND revoked_at IS NULL ORDER BY created_at DESC, id`, s.OrganizationID, s.UserID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes a token in scope at time now; another scope's token is ErrNotFound.
func (db *DB) RevokeToken(ctx context.Context, now time.Time, s Scope, id string) error {
	return db.q().execOne(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND organization_id = ? AND user_id = ? AND revoked_at IS NULL`,
		millis(now), id, s.OrganizationID, s.UserID)
}

// TouchToken records the token's last use.
func (db *DB) TouchToken(ctx context.Context, id string, at time.Time) error {
	return db.q().execOne(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, millis(at), id)
}
