package auth

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/berthpaas/berth/internal/store"
)

// Two-factor login: a TOTP authenticator (RFC 6238) with single-use
// recovery codes. Sign-in checks the password first, then, for an enrolled
// user, a code; wrong codes lock the second step for a while.

var (
	// ErrSecondFactorRequired means the password was right and the account
	// needs a TOTP or recovery code too.
	ErrSecondFactorRequired = errors.New("a second factor is required: send the code from your authenticator app, or a recovery code")
	// ErrInvalidSecondFactor is a wrong, expired or already used code.
	ErrInvalidSecondFactor = errors.New("the code is not right, has expired or was already used")
	// ErrPendingLoginExpired means the second step took too long (or its
	// token is unknown): sign in again from the start.
	ErrPendingLoginExpired = errors.New("the sign-in has expired; start again with your email and password")
	// ErrTwoFactorUnavailable means the server has no keyring to seal
	// TOTP secrets with.
	ErrTwoFactorUnavailable = errors.New("two-factor login is not available on this server (no master key)")
	// ErrTwoFactorEnabled means enrolment was asked for while two-factor
	// login is already on.
	ErrTwoFactorEnabled = errors.New("two-factor login is already enabled; disable it first to enrol a new authenticator")
	// ErrTwoFactorNotEnabled means an operation needs two-factor login on.
	ErrTwoFactorNotEnabled = errors.New("two-factor login is not enabled")
	// ErrNoPendingEnrolment means confirm came without a started enrolment.
	ErrNoPendingEnrolment = errors.New("no enrolment in progress; start one first")
)

// SecondFactorLockedError means too many wrong codes in a row: the second
// step refuses every code until Until.
type SecondFactorLockedError struct{ Until time.Time }

func (e *SecondFactorLockedError) Error() string {
	return "too many wrong codes; two-factor sign-in is locked until " + e.Until.UTC().Format("15:04 UTC")
}

// PendingLoginError is ErrSecondFactorRequired for a browser sign-in: Token
// names the pending sign-in, to send back with the code (LoginSecondStep).
type PendingLoginError struct{ Token string }

func (e *PendingLoginError) Error() string { return ErrSecondFactorRequired.Error() }
func (e *PendingLoginError) Is(target error) bool {
	return target == ErrSecondFactorRequired
}

const (
	// SecondFactorAttempts wrong codes in a row lock the second step for
	// SecondFactorLockout.
	SecondFactorAttempts = 5
	SecondFactorLockout  = 15 * time.Minute
	// RecoveryCodeCount codes are issued at a time.
	RecoveryCodeCount = 10
	// pendingLoginTTL is how long the second form waits for its code.
	pendingLoginTTL = 5 * time.Minute
	totpIssuer      = "Berth"
)

// Enrolment is what a user needs to add Berth to an authenticator app. It
// is shown once; the server keeps only the sealed secret.
type Enrolment struct {
	Secret string // base32, to type in by hand
	URI    string // otpauth:// key URI, what the QR code holds
	QRPNG  []byte // the URI as a PNG QR code
}

// TwoFactorStatus is what may be shown about a user's two-factor login:
// never the secret or the codes.
type TwoFactorStatus struct {
	Enabled           bool
	Pending           bool // enrolment started, not confirmed
	RecoveryCodesLeft int
}

// TwoFactor returns the user's two-factor status.
func (s *Service) TwoFactor(ctx context.Context, userID string) (TwoFactorStatus, error) {
	t, err := s.db.TOTPByUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return TwoFactorStatus{}, nil
	} else if err != nil {
		return TwoFactorStatus{}, err
	}
	st := TwoFactorStatus{Enabled: t.Enabled(), Pending: !t.Enabled()}
	if st.Enabled {
		if st.RecoveryCodesLeft, err = s.db.RecoveryCodesLeft(ctx, userID); err != nil {
			return TwoFactorStatus{}, err
		}
	}
	return st, nil
}

// StartTwoFactor generates a TOTP secret for the principal's user and
// stores it sealed, unconfirmed. Starting again replaces an unconfirmed
// secret; an enabled one is kept (ErrTwoFactorEnabled).
func (s *Service) StartTwoFactor(ctx context.Context, p Principal) (Enrolment, error) {
	if s.opts.Keys == nil {
		return Enrolment{}, ErrTwoFactorUnavailable
	}
	if st, err := s.TwoFactor(ctx, p.User.ID); err != nil {
		return Enrolment{}, err
	} else if st.Enabled {
		return Enrolment{}, ErrTwoFactorEnabled
	}
	secret := make([]byte, totpSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return Enrolment{}, err
	}
	sealed, err := s.opts.Keys.Seal(secret, store.TOTPAAD(p.User.ID))
	if err != nil {
		return Enrolment{}, err
	}
	if err := s.db.StartTOTP(ctx, s.now(), p.User.ID, sealed); err != nil {
		return Enrolment{}, err
	}
	return enrolmentOf(p.User.Email, secret)
}

// ConfirmTwoFactor completes enrolment once the user types a valid code
// from the new authenticator, and returns the recovery codes (shown once).
func (s *Service) ConfirmTwoFactor(ctx context.Context, p Principal, otp string) ([]string, error) {
	if strings.TrimSpace(otp) == "" {
		return nil, &FieldError{"otp", "is required"}
	}
	t, err := s.db.TOTPByUser(ctx, p.User.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoPendingEnrolment
	} else if err != nil {
		return nil, err
	}
	if t.Enabled() {
		return nil, ErrTwoFactorEnabled
	}
	secret, err := s.openSecret(t)
	if err != nil {
		return nil, err
	}
	step, ok := matchTOTP(secret, otp, s.now(), 0)
	if !ok {
		return nil, &FieldError{"otp", "is not the current code of your authenticator app; check the app's clock and try the next code"}
	}
	codes, hashes := newRecoveryCodes()
	if err := s.db.ConfirmTOTP(ctx, s.now(), p.User.ID, step, hashes); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrNoPendingEnrolment
		}
		return nil, err
	}
	return codes, nil
}

// DisableTwoFactor turns two-factor login off after checking the password
// and a current code (or a recovery code), and revokes every other session
// and API token of the user.
func (s *Service) DisableTwoFactor(ctx context.Context, p Principal, password, otp, recovery string) (store.Revoked, error) {
	if password == "" {
		return store.Revoked{}, &FieldError{"password", "is required"}
	}
	t, err := s.enabledTOTP(ctx, p.User.ID)
	if err != nil {
		return store.Revoked{}, err
	}
	if err := s.checkPassword(ctx, p.User.ID, "password", password); err != nil {
		return store.Revoked{}, err
	}
	if err := s.checkSecondFactor(ctx, t, otp, recovery); err != nil {
		return store.Revoked{}, err
	}
	return s.db.DisableTOTP(ctx, s.now(), p.User.ID, keepOf(p))
}

// RegenerateRecoveryCodes replaces the user's recovery codes, used or not,
// after checking a current code, and returns the new ones (shown once).
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p Principal, otp, recovery string) ([]string, error) {
	t, err := s.enabledTOTP(ctx, p.User.ID)
	if err != nil {
		return nil, err
	}
	if err := s.checkSecondFactor(ctx, t, otp, recovery); err != nil {
		return nil, err
	}
	codes, hashes := newRecoveryCodes()
	if err := s.db.ReplaceRecoveryCodes(ctx, p.User.ID, hashes); err != nil {
		return nil, err
	}
	return codes, nil
}

// LoginSecondStep completes a browser sign-in started by Login that ended
// in a PendingLoginError, with a TOTP or recovery code.
func (s *Service) LoginSecondStep(ctx context.Context, pending, otp, recovery, clientIP, userAgent string) (string, Principal, error) {
	if pending == "" {
		return "", Principal{}, ErrPendingLoginExpired
	}
	pl, err := s.db.PendingLoginByHash(ctx, hashSecret(pending))
	if errors.Is(err, store.ErrNotFound) {
		return "", Principal{}, ErrPendingLoginExpired
	} else if err != nil {
		return "", Principal{}, err
	}
	if !s.now().Before(pl.ExpiresAt) {
		s.db.DeletePendingLogin(ctx, pl.IDHash)
		return "", Principal{}, ErrPendingLoginExpired
	}
	t, err := s.enabledTOTP(ctx, pl.UserID)
	if err != nil {
		return "", Principal{}, err
	}
	if normalizeCode(otp) == "" && normalizeCode(recovery) == "" {
		return "", Principal{}, &FieldError{"otp", "is required"}
	}
	if err := s.checkSecondFactor(ctx, t, otp, recovery); err != nil {
		return "", Principal{}, err
	}
	if err := s.db.DeletePendingLogin(ctx, pl.IDHash); err != nil {
		return "", Principal{}, err
	}
	u, err := s.db.UserByID(ctx, pl.UserID)
	if err != nil {
		return "", Principal{}, notFoundIsUnauthenticated(err)
	}
	ms, err := s.db.Memberships(ctx, u.ID)
	if err != nil {
		return "", Principal{}, err
	}
	if len(ms) == 0 {
		return "", Principal{}, ErrInvalidCredentials
	}
	return s.startSession(ctx, Principal{User: u, Organization: ms[0].Organization, Role: ms[0].Role}, clientIP, userAgent)
}

// PendingLoginUser is the email of a pending sign-in's user, for the audit
// log of the second step; "" when the token is unknown or expired.
func (s *Service) PendingLoginUser(ctx context.Context, pending string) string {
	pl, err := s.db.PendingLoginByHash(ctx, hashSecret(pending))
	if err != nil || !s.now().Before(pl.ExpiresAt) {
		return ""
	}
	u, err := s.db.UserByID(ctx, pl.UserID)
	if err != nil {
		return ""
	}
	return u.Email
}

// secondFactor checks the second step of a sign-in for u: nothing when u
// has no two-factor login, else a code must come and be right.
func (s *Service) secondFactor(ctx context.Context, u store.User, otp, recovery string) error {
	t, err := s.db.TOTPByUser(ctx, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if !t.Enabled() {
		return nil
	}
	if normalizeCode(otp) == "" && normalizeCode(recovery) == "" {
		if now := s.now(); now.Before(t.LockedUntil) {
			return &SecondFactorLockedError{Until: t.LockedUntil}
		}
		return ErrSecondFactorRequired
	}
	return s.checkSecondFactor(ctx, t, otp, recovery)
}

// checkSecondFactor accepts a TOTP code (each time step once) or an unused
// recovery code (once), and counts the failures toward the lockout.
func (s *Service) checkSecondFactor(ctx context.Context, t store.TOTP, otp, recovery string) error {
	now := s.now()
	if now.Before(t.LockedUntil) {
		return &SecondFactorLockedError{Until: t.LockedUntil}
	}
	ok := false
	switch {
	case normalizeCode(otp) != "":
		secret, err := s.openSecret(t)
		if err != nil {
			return err
		}
		if step, match := matchTOTP(secret, otp, now, t.LastStep); match {
			err := s.db.UseTOTPStep(ctx, t.UserID, step)
			if err != nil && !errors.Is(err, store.ErrReplay) {
				return err
			}
			ok = err == nil
		}
	case normalizeCode(recovery) != "":
		err := s.db.UseRecoveryCode(ctx, now, t.UserID, hashRecoveryCode(recovery))
		if err != nil && !errors.Is(err, store.ErrReplay) {
			return err
		}
		ok = err == nil
	default:
		return &FieldError{"otp", "is required"}
	}
	if ok {
		return nil
	}
	until, err := s.db.RecordTOTPFailure(ctx, now, t.UserID, SecondFactorAttempts, SecondFactorLockout)
	if err != nil {
		return err
	}
	if !until.IsZero() {
		return &SecondFactorLockedError{Until: until}
	}
	return ErrInvalidSecondFactor
}

func (s *Service) enabledTOTP(ctx context.Context, userID string) (store.TOTP, error) {
	t, err := s.db.TOTPByUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !t.Enabled()) {
		return store.TOTP{}, ErrTwoFactorNotEnabled
	}
	return t, err
}

func (s *Service) openSecret(t store.TOTP) ([]byte, error) {
	if s.opts.Keys == nil {
		return nil, ErrTwoFactorUnavailable
	}
	return s.opts.Keys.Open(t.SealedSecret, store.TOTPAAD(t.UserID))
}

// checkPassword checks the user's current password, throttled per user so
// a stolen session cannot become a password oracle.
func (s *Service) checkPassword(ctx context.Context, userID, field, password string) error {
	u, err := s.db.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	key := "change-password:" + u.ID
	if wait := s.throttle.begin(s.now(), key); wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	if !passwordMatches(u.PasswordHash, password) {
		return &FieldError{field, "is not your current password"}
	}
	s.throttle.succeeded([]string{key})
	return nil
}

func keepOf(p Principal) store.Keep {
	return store.Keep{SessionHash: p.SessionHash, TokenID: p.TokenID}
}

// Recovery codes are 80 random bits, written as four groups of four base32
// characters. With that much entropy a plain SHA-256 is enough to store
// them: bcrypt's slowness protects guessable secrets such as passwords from
// offline guessing, and 2^80 guesses are out of reach however fast the hash.
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodeCount {
		b := make([]byte, 10)
		rand.Read(b)
		raw := recoveryEncoding.EncodeToString(b) // 16 characters
		code := raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16]
		codes = append(codes, code)
		hashes = append(hashes, hashRecoveryCode(code))
	}
	return codes, hashes
}

// hashRecoveryCode hashes a code as typed: case, spaces and dashes ignored.
func hashRecoveryCode(code string) string {
	return hashSecret("recovery:" + strings.ToLower(normalizeCode(code)))
}

// QRCodeDataURI is png as a data: URI, which the UI's CSP allows in <img>.
func QRCodeDataURI(png []byte) string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
}

// PendingEnrolment shows a started, unconfirmed enrolment again (the
// account page after a wrong confirming code, or a reload). Once enrolment
// is confirmed the secret is never shown: ErrNoPendingEnrolment.
func (s *Service) PendingEnrolment(ctx context.Context, p Principal) (Enrolment, error) {
	t, err := s.db.TOTPByUser(ctx, p.User.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Enabled()) {
		return Enrolment{}, ErrNoPendingEnrolment
	} else if err != nil {
		return Enrolment{}, err
	}
	secret, err := s.openSecret(t)
	if err != nil {
		return Enrolment{}, err
	}
	return enrolmentOf(p.User.Email, secret)
}

func enrolmentOf(email string, secret []byte) (Enrolment, error) {
	uri := otpauthURI(totpIssuer, email, secret)
	png, err := qrcode.Encode(uri, qrcode.Medium, 256)
	if err != nil {
		return Enrolment{}, fmt.Errorf("qr code: %w", err)
	}
	return Enrolment{Secret: base32NoPad.EncodeToString(secret), URI: uri, QRPNG: png}, nil
}

// SplitCode tells a recovery code (xxxx-xxxx-xxxx-xxxx) from an
// authenticator code typed into one field.
func SplitCode(code string) (otp, recovery string) {
	if len(normalizeCode(code)) > totpDigits+2 {
		return "", code
	}
	return code, ""
}
