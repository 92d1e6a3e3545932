package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ErrReplay means a one-time code (a TOTP time step or a recovery code) was
// already used.
var ErrReplay = errors.New("code already used")

// TOTPAAD binds a user's sealed TOTP secret to the user.
func TOTPAAD(userID string) string { return "totp:" + userID }

// TOTP is a user's authenticator enrolment. ConfirmedAt is nil while
// enrolment waits for the first valid code.
type TOTP struct {
	UserID       string
	SealedSecret string
	CreatedAt    time.Time
	ConfirmedAt  *time.Time
	LastStep     int64 // the last time step accepted; a code is used once
	Failures     int   // wrong second-factor codes in a row
	LockedUntil  time.Time
}

// Enabled reports whether sign-in asks for a second factor.
func (t TOTP) Enabled() bool { return t.ConfirmedAt != nil }

// TOTPByUser loads a user's enrolment; ErrNotFound when there is none.
func (db *DB) TOTPByUser(ctx context.Context, userID string) (TOTP, error) {
	var t TOTP
	var created, locked int64
	var confirmed sql.NullInt64
	err := db.q().row(ctx, `SELECT user_id, sealed_secret, created_at, confirmed_at, last_step, failures, locked_until FROM user_totp WHERE user_id = ?`, userID).
		Scan(&t.UserID, &t.SealedSecret, &created, &confirmed, &t.LastStep, &t.Failures, &locked)
	if err != nil {
		return TOTP{}, mapErr(err)
	}
	t.CreatedAt, t.ConfirmedAt, t.LockedUntil = fromMillis(created), fromNullMillis(confirmed), fromMillis(locked)
	return t, nil
}

// StartTOTP stores a new, unconfirmed enrolment, replacing an unconfirmed
// one. A confirmed enrolment is left alone: ErrConflict.
func (db *DB) StartTOTP(ctx context.Context, now time.Time, userID, sealed string) error {
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `DELETE FROM user_totp WHERE user_id = ? AND confirmed_at IS NULL`, userID); err != nil {
			return err
		}
		_, err := x.exec(ctx, `INSERT INTO user_totp (user_id, sealed_secret, created_at) VALUES (?, ?, ?)`, userID, sealed, millis(now))
		return err
	})
}

// ConfirmTOTP completes enrolment: it records step as used and stores the
// recovery codes' hashes. ErrNotFound when there is no pending enrolment.
func (db *DB) ConfirmTOTP(ctx context.Context, now time.Time, userID string, step int64, codeHashes []string) error {
	return db.inTx(ctx, func(x q) error {
		if err := x.execOne(ctx, `UPDATE user_totp SET confirmed_at = ?, last_step = ?, failures = 0, locked_until = 0 WHERE user_id = ? AND confirmed_at IS NULL`,
			millis(now), step, userID); err != nil {
			return err
		}
		return replaceRecoveryCodes(ctx, x, userID, codeHashes)
	})
}

// UseTOTPStep records step as used, refusing (ErrReplay) a step at or before
// the last one accepted: the conditional update makes two concurrent uses
// of one code fail for one of them. It also clears the failure count.
func (db *DB) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	err := db.q().execOne(ctx, `UPDATE user_totp SET last_step = ?, failures = 0, locked_until = 0 WHERE user_id = ? AND last_step < ?`, step, userID, step)
	if errors.Is(err, ErrNotFound) {
		return ErrReplay
	}
	return err
}

// UseRecoveryCode marks an unused recovery code as used (ErrReplay when it
// is unknown or already used) and clears the failure count.
func (db *DB) UseRecoveryCode(ctx context.Context, now time.Time, userID, codeHash string) error {
	return db.inTx(ctx, func(x q) error {
		err := x.execOne(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`, millis(now), userID, codeHash)
		if errors.Is(err, ErrNotFound) {
			return ErrReplay
		}
		if err != nil {
			return err
		}
		_, err = x.exec(ctx, `UPDATE user_totp SET failures = 0, locked_until = 0 WHERE user_id = ?`, userID)
		return err
	})
}

// RecordTOTPFailure counts a wrong second-factor code. After limit failures
// in a row the second step is locked until now+lock and the count starts
// over. It returns the lock's end (zero when not locked).
func (db *DB) RecordTOTPFailure(ctx context.Context, now time.Time, userID string, limit int, lock time.Duration) (time.Time, error) {
	var until time.Time
	err := db.inTx(ctx, func(x q) error {
		var failures int
		if err := x.row(ctx, `SELECT failures FROM user_totp WHERE user_id = ?`, userID).Scan(&failures); err != nil {
			return mapErr(err)
		}
		failures++
		if failures >= limit {
			until = now.Add(lock)
			_, err := x.exec(ctx, `UPDATE user_totp SET failures = 0, locked_until = ? WHERE user_id = ?`, millis(until), userID)
			return err
		}
		_, err := x.exec(ctx, `UPDATE user_totp SET failures = ? WHERE user_id = ?`, failures, userID)
		return err
	})
	return until, err
}

// ReplaceRecoveryCodes drops a user's recovery codes, used or not, and
// stores new ones.
func (db *DB) ReplaceRecoveryCodes(ctx context.Context, userID string, codeHashes []string) error {
	return db.inTx(ctx, func(x q) error { return replaceRecoveryCodes(ctx, x, userID, codeHashes) })
}

func replaceRecoveryCodes(ctx context.Context, x q, userID string, codeHashes []string) error {
	if _, err := x.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return err
	}
	for _, h := range codeHashes {
		if _, err := x.exec(ctx, `INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)`, userID, h); err != nil {
			return err
		}
	}
	return nil
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (db *DB) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := db.q().row(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID).Scan(&n)
	return n, mapErr(err)
}

// Keep names the credential that made a change and survives it: a session
// (by its hash) or an API token (by its id). The zero Keep keeps nothing.
type Keep struct {
	SessionHash string
	TokenID     string
}

// Revoked counts what a credential change ended.
type Revoked struct {
	Sessions int64
	Tokens   int64
}

// revokeOthers ends every session of the user and revokes every API token
// of the user, in every organization, except the credential in keep.
func revokeOthers(ctx context.Context, x q, now time.Time, userID string, keep Keep) (Revoked, error) {
	var r Revoked
	res, err := x.exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?`, userID, keep.SessionHash)
	if err != nil {
		return r, err
	}
	if r.Sessions, err = res.RowsAffected(); err != nil {
		return r, err
	}
	res, err = x.exec(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`, millis(now), userID, keep.TokenID)
	if err != nil {
		return r, err
	}
	r.Tokens, err = res.RowsAffected()
	return r, err
}

// DisableTOTP removes a user's enrolment and recovery codes and revokes
// every other session and token of the user.
func (db *DB) DisableTOTP(ctx context.Context, now time.Time, userID string, keep Keep) (Revoked, error) {
	var r Revoked
	err := db.inTx(ctx, func(x q) error {
		if err := x.execOne(ctx, `DELETE FROM user_totp WHERE user_id = ? AND confirmed_at IS NOT NULL`, userID); err != nil {
			return err
		}
		if _, err := x.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
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

// PendingLogin is a sign-in waiting for its second factor.
type PendingLogin struct {
	IDHash    string
	UserID    string
	ExpiresAt time.Time
}

// CreatePendingLogin stores p, dropping expired pending sign-ins.
func (db *DB) CreatePendingLogin(ctx context.Context, now time.Time, p PendingLogin) error {
	return db.inTx(ctx, func(x q) error {
		if _, err := x.exec(ctx, `DELETE FROM pending_logins WHERE expires_at <= ?`, millis(now)); err != nil {
			return err
		}
		_, err := x.exec(ctx, `INSERT INTO pending_logins (id_hash, user_id, expires_at) VALUES (?, ?, ?)`, p.IDHash, p.UserID, millis(p.ExpiresAt))
		return err
	})
}

// PendingLoginByHash loads a pending sign-in.
func (db *DB) PendingLoginByHash(ctx context.Context, idHash string) (PendingLogin, error) {
	var p PendingLogin
	var exp int64
	err := db.q().row(ctx, `SELECT id_hash, user_id, expires_at FROM pending_logins WHERE id_hash = ?`, idHash).Scan(&p.IDHash, &p.UserID, &exp)
	if err != nil {
		return PendingLogin{}, mapErr(err)
	}
	p.ExpiresAt = fromMillis(exp)
	return p, nil
}

// DeletePendingLogin ends a pending sign-in; a missing one is not an error.
func (db *DB) DeletePendingLogin(ctx context.Context, idHash string) error {
	_, err := db.q().exec(ctx, `DELETE FROM pending_logins WHERE id_hash = ?`, idHash)
	return err
}
