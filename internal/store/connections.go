package store

import (
	"context"
	"time"
)

// GitConnection is an organization's account at a git provider: its
// server and a token (sealed by internal/secrets).
type GitConnection struct {
	ID             string
	OrganizationID string
	Name           string
	Provider       string // gitsrc.Kind
	BaseURL        string
	Account        string // the provider user the token belongs to
	SealedToken    string
	CreatedBy      string
	CreatedAt      time.Time
}

// CreateGitConnection stores c at time now, filling c.CreatedAt and, when
// empty, c.ID. A name the organization already has is ErrConflict.
func (db *DB) CreateGitConnection(ctx context.Context, now time.Time, c *GitConnection) error {
	if c.ID == "" {
		c.ID = NewID("gcn")
	}
	c.CreatedAt = fromMillis(millis(now))
	_, err := db.q().exec(ctx, `INSERT INTO git_connections (id, organization_id, name, provider, base_url, account, token, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.OrganizationID, c.Name, c.Provider, c.BaseURL, c.Account, c.SealedToken, c.CreatedBy, millis(now))
	return err
}

const connectionColumns = `id, organization_id, name, provider, base_url, account, token, created_by, created_at`

func scanConnection(row interface{ Scan(...any) error }) (GitConnection, error) {
	var c GitConnection
	var created int64
	if err := row.Scan(&c.ID, &c.OrganizationID, &c.Name, &c.Provider, &c.BaseURL, &c.Account, &c.SealedToken, &c.CreatedBy, &created); err != nil {
		return GitConnection{}, mapErr(err)
	}
	c.CreatedAt = fromMillis(created)
	return c, nil
}

// GitConnections lists the organization's connections by name.
func (db *DB) GitConnections(ctx context.Context, orgID string) ([]GitConnection, error) {
	rows, err := db.q().query(ctx, `SELECT `+connectionColumns+` FROM git_connections WHERE organization_id = ? ORDER BY name`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []GitConnection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// GitConnection finds a connection of the organization by id.
func (db *DB) GitConnection(ctx context.Context, orgID, id string) (GitConnection, error) {
	return scanConnection(db.q().row(ctx, `SELECT `+connectionColumns+` FROM git_connections WHERE id = ? AND organization_id = ?`, id, orgID))
}

// GitConnectionByName finds a connection of the organization by name.
func (db *DB) GitConnectionByName(ctx context.Context, orgID, name string) (GitConnection, error) {
	return scanConnection(db.q().row(ctx, `SELECT `+connectionColumns+` FROM git_connections WHERE organization_id = ? AND name = ?`, orgID, name))
}

// DeleteGitConnection removes a connection. Apps made from it keep their
// own copy of the token; their builds stop reporting commit statuses.
func (db *DB) DeleteGitConnection(ctx context.Context, orgID, id string) error {
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `UPDATE app_sources SET connection_id = '' WHERE connection_id = ? AND organization_id = ?`, id, orgID); err != nil {
			return err
		}
		return x.execOne(ctx, `DELETE FROM git_connections WHERE id = ? AND organization_id = ?`, id, orgID)
	})
}
