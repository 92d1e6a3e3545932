package store

import (
	"context"
	"time"
)

// Session is a browser session. Only the hash of its id is stored.
type Session struct {
	IDHash         string
	UserID         string
	OrganizationID string
	CSRFToken      string
	CreatedAt      time.Time
	LastSeenAt     time.Time
	ExpiresAt      time.Time // absolute expiry
	ClientIP       string
	UserAgent      string
}

// CreateSession stores a new session.
func (db *DB) CreateSession(ctx context.Context, s Session) error {
	_, err := db.q().exec(ctx, `INSERT INTO sessions (id_hash, user_id, organization_id, csrf_token, created_at, last_seen_at, expires_at, client_ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.IDHash, s.UserID, s.OrganizationID, s.CSRFToken, millis(s.CreatedAt), millis(s.LastSeenAt), millis(s.ExpiresAt), s.ClientIP, s.UserAgent)
	return err
}

// SessionByHash loads a session.
func (db *DB) SessionByHash(ctx context.Context, idHash string) (Session, error) {
	var s Session
	var created, seen, expires int64
	err := db.q().row(ctx, `SELECT id_hash, user_id, organization_id, csrf_token, created_at, last_seen_at, expires_at, client_ip, user_agent FROM sessions WHERE id_hash = ?`, idHash).
		Scan(&s.IDHash, &s.UserID, &s.OrganizationID, &s.CSRFToken, &created, &seen, &expires, &s.ClientIP, &s.UserAgent)
	if err != nil {
		return Session{}, mapErr(err)
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMillis(created), fromMillis(seen), fromMillis(expires)
	return s, nil
}

// TouchSession records use of a session.
func (db *DB) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	return db.q().execOne(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?`, millis(at), idHash)
}

// DeleteSession ends a session. Ending a missing session is not an error.
func (db *DB) DeleteSession(ctx context.Context, idHash string) error {
	_, err := db.q().exec(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash)
	return err
}

// DeleteExpiredSessions removes sessions past their absolute expiry or idle for
// longer than idle, returning how many were removed.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now time.Time, idle time.Duration) (int64, error) {
	res, err := db.q().exec(ctx, `DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?`, millis(now), millis(now.Add(-idle)))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
