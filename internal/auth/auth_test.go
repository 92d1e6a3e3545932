package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/store"
)

const ownerPassword = "correct horse battery"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newService(t *testing.T) (*Service, *clock) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Now()}
	return New(db, Options{SessionIdle: time.Hour, SessionLifetime: 24 * time.Hour, Now: c.now}), c
}

func setUp(t *testing.T, s *Service) {
	t.Helper()
	if _, err := s.Setup(context.Background(), SetupInput{Email: "Owner@Example.com", Password: ownerPassword, Name: "Olive"}); err != nil {
		t.Fatal(err)
	}
}

func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestSetupOnce(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	if need, _ := s.SetupNeeded(ctx); !need {
		t.Fatal("a new install must need setup")
	}
	setUp(t, s)
	if need, _ := s.SetupNeeded(ctx); need {
		t.Fatal("setup still needed after the owner was created")
	}
	_, err := s.Setup(ctx, SetupInput{Email: "other@example.com", Password: "kettle brown sunrise"})
	if !errors.Is(err, ErrSetupDone) {
		t.Fatalf("second setup: %v, want ErrSetupDone", err)
	}
	_, p, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	if err != nil {
		t.Fatal(err)
	}
	if p.Role != "owner" || p.Organization.Name != "Default" || p.User.Email != "owner@example.com" {
		t.Errorf("principal = %+v", p)
	}
}

func TestSetupValidation(t *testing.T) {
	s, _ := newService(t)
	cases := []struct {
		in    SetupInput
		field string
	}{
		{SetupInput{Email: "", Password: ownerPassword}, "email"},
		{SetupInput{Email: "not-an-email", Password: ownerPassword}, "email"},
		{SetupInput{Email: "Name <a@example.com>", Password: ownerPassword}, "email"},
		{SetupInput{Email: "a@example.com", Password: ""}, "password"},
		{SetupInput{Email: "a@example.com", Password: "short"}, "password"},
		{SetupInput{Email: "a@example.com", Password: "password123"}, "password"},
		{SetupInput{Email: "a@example.com", Password: "aaaaaaaaaaaa"}, "password"},
		{SetupInput{Email: "a@example.com", Password: "éééééééééééé"}, "password"},
		{SetupInput{Email: "alice@example.com", Password: "alice-is-great-1"}, "password"},
		{SetupInput{Email: "a@example.com", Password: strings.Repeat("x1", 40)}, "password"},
		{SetupInput{Email: "a@example.com", Password: ownerPassword, Name: "bad\nname"}, "name"},
		{SetupInput{Email: "a@example.com", Password: ownerPassword, Organization: strings.Repeat("o", 101)}, "organization"},
	}
	for _, tc := range cases {
		_, err := s.Setup(context.Background(), tc.in)
		if got := fieldOf(err); got != tc.field {
			t.Errorf("Setup(%+v): error %v names field %q, want %q", tc.in, err, got, tc.field)
		}
	}
	if need, _ := s.SetupNeeded(context.Background()); !need {
		t.Error("rejected setups must change nothing")
	}
}

func TestLoginSameErrorAndThrottle(t *testing.T) {
	s, c := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, _, errUnknown := s.Login(ctx, Credentials{Email: "nobody@example.com", Password: ownerPassword, ClientIP: "10.0.0.1"})
	_, _, errWrong := s.Login(ctx, Credentials{Email: "owner@example.com", Password: "wrong password!", ClientIP: "10.0.0.2"})
	if !errors.Is(errUnknown, ErrInvalidCredentials) || !errors.Is(errWrong, ErrInvalidCredentials) || errUnknown.Error() != errWrong.Error() {
		t.Fatalf("unknown user %v vs wrong password %v: must be the same error", errUnknown, errWrong)
	}

	// Per account: failures from many addresses still lock the account.
	for i := range 5 {
		s.Login(ctx, Credentials{Email: "owner@example.com", Password: "wrong password!", ClientIP: "10.1.0." + string(rune('a'+i))})
	}
	_, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, ClientIP: "10.9.9.9"})
	var th *ThrottledError
	if !errors.As(err, &th) || th.RetryAfter <= 0 {
		t.Fatalf("after 6 failures: %v, want ThrottledError", err)
	}
	first := th.RetryAfter
	c.advance(first)
	s.Login(ctx, Credentials{Email: "owner@example.com", Password: "wrong again!!", ClientIP: "10.9.9.9"})
	_, _, err = s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, ClientIP: "10.9.9.8"})
	if !errors.As(err, &th) || th.RetryAfter <= first {
		t.Fatalf("delay must grow: first %s, then %v", first, err)
	}
	c.advance(th.RetryAfter)
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, ClientIP: "10.9.9.8"}); err != nil {
		t.Fatalf("after waiting, the right password works: %v", err)
	}

	// Per address: one address trying many accounts is slowed too.
	for i := range 6 {
		s.Login(ctx, Credentials{Email: "user" + string(rune('a'+i)) + "@example.com", Password: "whatever pass", ClientIP: "192.0.2.7"})
	}
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword, ClientIP: "192.0.2.7"}); !errors.As(err, &th) {
		t.Fatalf("address throttle: %v", err)
	}
}

func TestSessionExpiry(t *testing.T) {
	s, c := newService(t)
	setUp(t, s)
	ctx := context.Background()
	login := func() string {
		secret, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	a := login()
	b := login()
	if a == b {
		t.Fatal("each login must get a new session id")
	}
	p, err := s.Session(ctx, a)
	if err != nil || p.CSRFToken == "" || p.SessionHash == "" {
		t.Fatalf("session: %+v %v", p, err)
	}
	// Idle: b unused for an hour ends; a used every 50 minutes lives on until the absolute limit.
	for range 30 {
		c.advance(50 * time.Minute)
		if _, err := s.Session(ctx, a); err != nil {
			break
		}
	}
	if _, err := s.Session(ctx, b); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("idle session: %v", err)
	}
	if _, err := s.Session(ctx, a); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("session past its 24h lifetime: %v", err)
	}
	if _, err := s.Session(ctx, "made-up"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown session: %v", err)
	}
}

func TestChangePasswordEndsOtherSessions(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	mine, _, _ := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	other, _, _ := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	p, _ := s.Session(ctx, mine)

	if _, err := s.ChangePassword(ctx, p, "wrong current!", "a new long passphrase"); fieldOf(err) != "current_password" {
		t.Fatalf("wrong current password: %v", err)
	}
	if _, err := s.ChangePassword(ctx, p, ownerPassword, "short"); fieldOf(err) != "new_password" {
		t.Fatalf("weak new password: %v", err)
	}
	if _, err := s.ChangePassword(ctx, p, ownerPassword, "a new long passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, mine); err != nil {
		t.Errorf("the session that changed the password must survive: %v", err)
	}
	if _, err := s.Session(ctx, other); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("other session after password change: %v", err)
	}
	if _, _, err := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("old password still works: %v", err)
	}
}

func TestTokens(t *testing.T) {
	s, c := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, p, _ := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})

	secret, tok, err := s.CreateToken(ctx, p, "ci", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, TokenPrefix) || tok.Hash == secret || strings.Contains(tok.Hash, secret) {
		t.Fatalf("token %q stored as %q", secret, tok.Hash)
	}
	got, err := s.Token(ctx, secret)
	if err != nil || got.TokenID != tok.ID || got.User.ID != p.User.ID {
		t.Fatalf("Token: %+v %v", got, err)
	}
	list, _ := s.Tokens(ctx, p)
	if len(list) != 1 || list[0].LastUsedAt == nil {
		t.Fatalf("last use not recorded: %+v", list)
	}

	c.advance(25 * time.Hour)
	if _, err := s.Token(ctx, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired token: %v", err)
	}

	forever, tok2, _ := s.CreateToken(ctx, p, "forever", 0)
	if err := s.RevokeToken(ctx, Principal{User: store.User{ID: "usr_other"}, Organization: p.Organization}, tok2.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking another user's token: %v", err)
	}
	if err := s.RevokeToken(ctx, p, tok2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(ctx, forever); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked token: %v", err)
	}
	for _, bad := range []struct {
		name string
		ttl  time.Duration
	}{{"", 0}, {"x", time.Second}, {"x", 400 * 24 * time.Hour}, {"x", -time.Hour}, {strings.Repeat("n", 65), 0}} {
		if _, _, err := s.CreateToken(ctx, p, bad.name, bad.ttl); fieldOf(err) == "" {
			t.Errorf("CreateToken(%q, %s) = %v, want a field error", bad.name, bad.ttl, err)
		}
	}
}

func TestChangePasswordIsThrottled(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	_, p, _ := s.Login(ctx, Credentials{Email: "owner@example.com", Password: ownerPassword})
	for range 5 {
		if _, err := s.ChangePassword(ctx, p, "guess guess guess", "a new long passphrase"); fieldOf(err) != "current_password" {
			t.Fatalf("wrong current password: %v", err)
		}
	}
	s.ChangePassword(ctx, p, "guess guess guess", "a new long passphrase")
	var th *ThrottledError
	if _, err := s.ChangePassword(ctx, p, ownerPassword, "a new long passphrase"); !errors.As(err, &th) {
		t.Fatalf("after 6 wrong guesses: %v, want ThrottledError", err)
	}
}

// Guesses sent at the same time cannot all slip past the throttle while the
// slow hash runs: each reserves its attempt first.
func TestConcurrentGuessesAreThrottled(t *testing.T) {
	s, _ := newService(t)
	setUp(t, s)
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Go(func() {
			_, _, results[i] = s.Login(ctx, Credentials{Email: "owner@example.com", Password: "wrong password!", ClientIP: "10.0.0.1"})
		})
	}
	wg.Wait()
	checked := 0
	for _, err := range results {
		if errors.Is(err, ErrInvalidCredentials) {
			checked++
		}
	}
	if checked > freeAttempts+1 {
		t.Fatalf("%d concurrent guesses were checked; the throttle allows %d", checked, freeAttempts+1)
	}
}

func TestSetupAllowed(t *testing.T) {
	req := func(remote, host string, hdr ...string) *http.Request {
		r := httptest.NewRequest("POST", "http://"+host+"/setup", nil)
		r.RemoteAddr = remote
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	cases := []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"loopback", req("127.0.0.1:5000", "localhost:3000"), true},
		{"loopback v6", req("[::1]:5000", "localhost:3000"), true},
		{"remote raw port", req("203.0.113.9:5000", "203.0.113.1:3000"), false},
		{"remote through public host", req("203.0.113.9:5000", "berth.example.com"), true},
		{"local reverse proxy forwarding the internet", req("127.0.0.1:5000", "203.0.113.1", "X-Forwarded-For", "198.51.100.7"), false},
		{"local reverse proxy, Forwarded", req("127.0.0.1:5000", "203.0.113.1", "Forwarded", "for=198.51.100.7"), false},
	}
	for _, tc := range cases {
		if got := SetupAllowed(tc.r, "https://berth.example.com"); got != tc.want {
			t.Errorf("%s: SetupAllowed = %v, want %v", tc.name, got, tc.want)
		}
	}
	if SetupAllowed(req("203.0.113.9:5000", ""), "") {
		t.Error("without a public URL only loopback may set up")
	}
}
