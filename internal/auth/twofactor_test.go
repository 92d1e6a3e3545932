package auth

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// RFC 6238 appendix B, SHA-1 rows: the 8-digit values, and the 6-digit
// codes Berth uses (the same number, truncated modulo 10^6).
func TestTOTPRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix  int64
		eight string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		at := time.Unix(tc.unix, 0)
		if got := hotp(secret, totpStep(at), 8); got != tc.eight {
			t.Errorf("T=%d: 8 digits %s, want %s", tc.unix, got, tc.eight)
		}
		if got := totpCode(secret, at); got != tc.eight[2:] {
			t.Errorf("T=%d: 6 digits %s, want %s", tc.unix, got, tc.eight[2:])
		}
	}
}

func TestTOTPWindowAndReplay(t *testing.T) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1234567890, 0)
	step := totpStep(now)
	for _, tc := range []struct {
		name   string
		codeAt time.Time
		last   int64
		ok     bool
	}{
		{"current", now, 0, true},
		{"previous step", now.Add(-30 * time.Second), 0, true},
		{"next step", now.Add(30 * time.Second), 0, true},
		{"two steps old", now.Add(-60 * time.Second), 0, false},
		{"two steps ahead", now.Add(60 * time.Second), 0, false},
		{"already used", now, step, false},
		{"older than the last used", now.Add(-30 * time.Second), step, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := totpCode(secret, tc.codeAt)
			got, ok := matchTOTP(secret, code, now, tc.last)
			if ok != tc.ok || (ok && got != totpStep(tc.codeAt)) {
				t.Errorf("matchTOTP = %d, %v; want ok=%v", got, ok, tc.ok)
			}
			if ok {
				if _, ok := matchTOTP(secret, code[:3]+" "+code[3:], now, tc.last); !ok {
					t.Error("a code typed with a space is refused")
				}
			}
		})
	}
	if _, ok := matchTOTP(secret, "12345", now, 0); ok {
		t.Error("5 digits accepted")
	}
}

func newTwoFactorService(t *testing.T) (*Service, *clock) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := New(db, Options{SessionIdle: time.Hour, SessionLifetime: 24 * time.Hour, Now: c.now, Keys: keys})
	setUp(t, s)
	return s, c
}

// enrol turns two-factor login on for the owner and returns the secret,
// the recovery codes and a principal for the session it used.
func enrol(t *testing.T, s *Service, c *clock) ([]byte, []string, Principal) {
	t.Helper()
	ctx := context.Background()
	sess, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Session(ctx, sess)
	en, err := s.StartTwoFactor(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(en.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != en.Secret || u.Query().Get("issuer") != "Berth" {
		t.Fatalf("otpauth URI %q", en.URI)
	}
	if len(en.QRPNG) < 100 || string(en.QRPNG[1:4]) != "PNG" {
		t.Fatalf("QR code is not a PNG")
	}
	secret, err := base32NoPad.DecodeString(en.Secret)
	if err != nil || len(secret) != totpSecretBytes {
		t.Fatalf("secret %q: %v", en.Secret, err)
	}
	// Not enabled until a valid code confirms it.
	if st, _ := s.TwoFactor(ctx, p.User.ID); st.Enabled || !st.Pending {
		t.Fatalf("status before confirm = %+v", st)
	}
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword}); err != nil {
		t.Fatalf("an unconfirmed enrolment must not ask for a code: %v", err)
	}
	if _, err := s.ConfirmTwoFactor(ctx, p, "000000"); fieldOf(err) != "otp" && totpCode(secret, c.now()) != "000000" {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	codes, err := s.ConfirmTwoFactor(ctx, p, totpCode(secret, c.now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != RecoveryCodeCount {
		t.Fatalf("%d recovery codes", len(codes))
	}
	if st, _ := s.TwoFactor(ctx, p.User.ID); !st.Enabled || st.RecoveryCodesLeft != RecoveryCodeCount {
		t.Fatalf("status after confirm = %+v", st)
	}
	// The stored secret is sealed, not the secret itself.
	row, _ := s.db.TOTPByUser(ctx, p.User.ID)
	if strings.Contains(row.SealedSecret, en.Secret) || !strings.HasPrefix(row.SealedSecret, "v1:") {
		t.Errorf("secret stored as %q", row.SealedSecret)
	}
	c.advance(30 * time.Second) // the confirming code is spent
	return secret, codes, p
}

func TestTwoFactorLogin(t *testing.T) {
	s, c := newTwoFactorService(t)
	ctx := context.Background()
	secret, codes, p := enrol(t, s, c)

	_, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	var pending *PendingLoginError
	if !errors.Is(err, ErrSecondFactorRequired) || !errors.As(err, &pending) || pending.Token == "" {
		t.Fatalf("password only: %v", err)
	}
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: "wrong password", OTP: totpCode(secret, c.now())}); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password with a right code: %v", err)
	}
	code := totpCode(secret, c.now())
	if _, got, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: code}); err != nil || got.User.ID != p.User.ID {
		t.Fatalf("password and code: %v", err)
	}
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: code}); !errors.Is(err, ErrInvalidSecondFactor) {
		t.Fatalf("replayed code: %v", err)
	}
	// A token login takes the code the same way.
	c.advance(30 * time.Second)
	if _, _, err := s.LoginToken(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: totpCode(secret, c.now())}, "cli", 0); err != nil {
		t.Fatalf("token login with code: %v", err)
	}
	// Recovery codes: once each, typed in any case.
	rc := strings.ToUpper(codes[3])
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, RecoveryCode: rc}); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, RecoveryCode: codes[3]}); !errors.Is(err, ErrInvalidSecondFactor) {
		t.Fatalf("used recovery code: %v", err)
	}
	if st, _ := s.TwoFactor(ctx, p.User.ID); st.RecoveryCodesLeft != RecoveryCodeCount-1 {
		t.Errorf("recovery codes left = %d", st.RecoveryCodesLeft)
	}

	// The browser's second step, with the pending token.
	_, _, err = s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	errors.As(err, &pending)
	c.advance(30 * time.Second)
	if _, _, err := s.LoginSecondStep(ctx, "nope", totpCode(secret, c.now()), "", "", ""); !errors.Is(err, ErrPendingLoginExpired) {
		t.Fatalf("unknown pending token: %v", err)
	}
	sess, got, err := s.LoginSecondStep(ctx, pending.Token, totpCode(secret, c.now()), "", "127.0.0.1", "test")
	if err != nil || sess == "" || got.User.ID != p.User.ID {
		t.Fatalf("second step: %v", err)
	}
	if _, err := s.Session(ctx, sess); err != nil {
		t.Fatalf("session from the second step: %v", err)
	}
	c.advance(30 * time.Second)
	if _, _, err := s.LoginSecondStep(ctx, pending.Token, totpCode(secret, c.now()), "", "", ""); !errors.Is(err, ErrPendingLoginExpired) {
		t.Fatalf("pending token used twice: %v", err)
	}
	_, _, err = s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	errors.As(err, &pending)
	c.advance(pendingLoginTTL)
	if _, _, err := s.LoginSecondStep(ctx, pending.Token, totpCode(secret, c.now()), "", "", ""); !errors.Is(err, ErrPendingLoginExpired) {
		t.Fatalf("expired pending token: %v", err)
	}
}

func TestTwoFactorLockout(t *testing.T) {
	s, c := newTwoFactorService(t)
	ctx := context.Background()
	secret, _, _ := enrol(t, s, c)
	wrong := func() string {
		code := totpCode(secret, c.now())
		if code == "123456" {
			return "654321"
		}
		return "123456"
	}
	for i := 1; i < SecondFactorAttempts; i++ {
		if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: wrong()}); !errors.Is(err, ErrInvalidSecondFactor) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	_, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: wrong()})
	var locked *SecondFactorLockedError
	if !errors.As(err, &locked) || !locked.Until.Equal(c.now().Add(SecondFactorLockout)) {
		t.Fatalf("fifth wrong code: %v", err)
	}
	if !strings.Contains(locked.Error(), locked.Until.Format("15:04")) {
		t.Errorf("the message does not say when it unlocks: %q", locked.Error())
	}
	// Locked: even the right code is refused, until the lock ends.
	c.advance(SecondFactorLockout - time.Minute)
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: totpCode(secret, c.now())}); !errors.As(err, &locked) {
		t.Fatalf("right code while locked: %v", err)
	}
	c.advance(time.Minute)
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: totpCode(secret, c.now())}); err != nil {
		t.Fatalf("right code after the lock: %v", err)
	}
	// A success resets the count: four more wrong codes do not lock.
	for i := 1; i < SecondFactorAttempts; i++ {
		c.advance(30 * time.Second)
		s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: wrong()})
	}
	c.advance(30 * time.Second)
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: totpCode(secret, c.now())}); err != nil {
		t.Fatalf("after four failures: %v", err)
	}
}

func TestDisableTwoFactorRevokesOthers(t *testing.T) {
	s, c := newTwoFactorService(t)
	ctx := context.Background()
	secret, codes, p := enrol(t, s, c)
	other, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, OTP: totpCode(secret, c.now())})
	if err != nil {
		t.Fatal(err)
	}
	tokSecret, _, _ := s.CreateToken(ctx, p, "ci", 0)
	c.advance(30 * time.Second)

	if _, err := s.DisableTwoFactor(ctx, p, "not my password", totpCode(secret, c.now()), ""); fieldOf(err) != "password" {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.DisableTwoFactor(ctx, p, ownerPassword, "", ""); fieldOf(err) != "otp" {
		t.Fatalf("no code: %v", err)
	}
	// Regenerating replaces the codes.
	fresh, err := s.RegenerateRecoveryCodes(ctx, p, totpCode(secret, c.now()), "")
	if err != nil || len(fresh) != RecoveryCodeCount || fresh[0] == codes[0] {
		t.Fatalf("regenerate: %v", err)
	}
	if _, err := s.DisableTwoFactor(ctx, p, ownerPassword, "", codes[0]); !errors.Is(err, ErrInvalidSecondFactor) {
		t.Fatalf("an old recovery code after regenerate: %v", err)
	}
	r, err := s.DisableTwoFactor(ctx, p, ownerPassword, "", fresh[0])
	// Two other sessions: enrol's password-only check, and other.
	if err != nil || r.Sessions != 2 || r.Tokens != 1 {
		t.Fatalf("disable = %+v, %v", r, err)
	}
	if _, err := s.db.SessionByHash(ctx, p.SessionHash); err != nil {
		t.Errorf("the session that disabled 2FA: %v", err)
	}
	if _, err := s.Session(ctx, other); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("other session after disabling 2FA: %v", err)
	}
	if _, err := s.Token(ctx, tokSecret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token after disabling 2FA: %v", err)
	}
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword}); err != nil {
		t.Errorf("password-only login after disable: %v", err)
	}
}

func TestChangePasswordRevokesTokensKeepsCaller(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	mine, _, _ := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	p, _ := s.Session(ctx, mine)
	cli, _, _ := s.CreateToken(ctx, p, "cli", 0)
	ci, _, _ := s.CreateToken(ctx, p, "ci", 0)
	// The change is made with the cli token: it survives, the rest goes.
	tp, err := s.Token(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.ChangePassword(ctx, tp, ownerPassword, "a new long passphrase")
	if err != nil || r.Sessions != 1 || r.Tokens != 1 {
		t.Fatalf("ChangePassword = %+v, %v", r, err)
	}
	if _, err := s.Token(ctx, cli); err != nil {
		t.Errorf("the token that made the change: %v", err)
	}
	if _, err := s.Token(ctx, ci); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("other token after password change: %v", err)
	}
	if _, err := s.Session(ctx, mine); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("session after a password change made with a token: %v", err)
	}
}

func TestTwoFactorUnavailableWithoutKeys(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, p, _ := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	if _, err := s.StartTwoFactor(ctx, p); !errors.Is(err, ErrTwoFactorUnavailable) {
		t.Fatalf("enrol without a keyring: %v", err)
	}
}
