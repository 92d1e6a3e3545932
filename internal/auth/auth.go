// Package auth owns accounts, first-run setup, browser sessions, API tokens and
// login throttling. Handlers call it; it calls the store.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/berthpaas/berth/internal/authz"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

var (
	// ErrInvalidCredentials is the one answer to an unknown email or a wrong password.
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrUnauthenticated means the session or token is missing, unknown, expired or revoked.
	ErrUnauthenticated = errors.New("not signed in, or the session or token has expired or been revoked")
	// ErrSetupDone means an owner exists, so setup is closed.
	ErrSetupDone = store.ErrSetupDone
	// ErrNotFound means the object does not exist in the caller's scope.
	ErrNotFound = store.ErrNotFound
)

// FieldError is invalid input; Field names the request field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Message }

// ThrottledError means too many failed logins; retry after RetryAfter.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed sign-in attempts; try again in %s", e.RetryAfter.Round(time.Second))
}

// Principal is who is making a request, in which organization.
type Principal struct {
	User         store.User
	Organization store.Organization
	Role         string
	SessionHash  string // set for browser sessions
	CSRFToken    string // set for browser sessions
	TokenID      string // set for API tokens
	// RoleLimited: an API token limited to a role (CreateRoleToken).
	RoleLimited bool
	// Grants add roles within projects or environments to Role.
	Grants []store.Grant
	// TwoFactorMissing: the organization requires two-factor login and the
	// user has not set it up; they may only do that (and sign out).
	TwoFactorMissing bool
}

// Can reports whether the principal's organization-wide role has perm
// (deny by default: an unknown role has none).
func (p Principal) Can(perm authz.Permission) bool { return authz.Can(p.Role, perm) }

// CanIn reports whether the principal has perm in a project's environment
// (envID "": the project as a whole), by their role or a grant there.
func (p Principal) CanIn(perm authz.Permission, projectID, envID string) bool {
	if p.Can(perm) {
		return true
	}
	for _, g := range p.Grants {
		if g.ProjectID == projectID && (g.EnvironmentID == "" || g.EnvironmentID == envID) && authz.Can(g.Role, perm) {
			return true
		}
	}
	return false
}

// CanSomewhere reports whether the principal has perm anywhere: by their
// role, or by a grant in some project.
func (p Principal) CanSomewhere(perm authz.Permission) bool {
	if p.Can(perm) {
		return true
	}
	for _, g := range p.Grants {
		if authz.Can(g.Role, perm) {
			return true
		}
	}
	return false
}

// SeesProject reports whether the project exists for the principal: they
// may read it, or some environment of it.
func (p Principal) SeesProject(projectID string) bool {
	if p.Can(authz.ProjectRead) {
		return true
	}
	for _, g := range p.Grants {
		if g.ProjectID == projectID && authz.Can(g.Role, authz.ProjectRead) {
			return true
		}
	}
	return false
}

// Scope is the store scope of what the principal owns.
func (p Principal) Scope() store.Scope {
	return store.Scope{OrganizationID: p.Organization.ID, UserID: p.User.ID}
}

// Options tune the service.
type Options struct {
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	Now             func() time.Time // time.Now when nil
	// Keys seals TOTP secrets; without it two-factor enrolment answers
	// ErrTwoFactorUnavailable.
	Keys *secrets.Keyring
	// Mailer sends invitation emails; nil: links are handed over by hand.
	Mailer Mailer
}

// Mailer sends one plain-text email (internal/mail.Sender).
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Service implements accounts, sessions and tokens.
type Service struct {
	db       *store.DB
	opts     Options
	throttle *throttle
}

// New returns a Service on db.
func New(db *store.DB, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionIdle == 0 {
		opts.SessionIdle = 24 * time.Hour
	}
	if opts.SessionLifetime == 0 {
		opts.SessionLifetime = 7 * 24 * time.Hour
	}
	return &Service{db: db, opts: opts, throttle: newThrottle()}
}

func (s *Service) now() time.Time { return s.opts.Now().UTC() }

// SetupNeeded reports whether the owner account still has to be created.
func (s *Service) SetupNeeded(ctx context.Context) (bool, error) {
	done, err := s.db.SetupDone(ctx)
	return !done, err
}

// SetupInput creates the first organization and its owner.
type SetupInput struct {
	Email        string
	Password     string
	Name         string
	Organization string
}

// Setup creates the owner account. It fails with ErrSetupDone once an owner exists.
func (s *Service) Setup(ctx context.Context, in SetupInput) (store.User, error) {
	email, err := ValidateEmail(in.Email)
	if err != nil {
		return store.User{}, err
	}
	if reason := CheckPasswordPolicy(in.Password, email); reason != "" {
		return store.User{}, &FieldError{"password", reason}
	}
	name, err := validateText("name", in.Name, 100)
	if err != nil {
		return store.User{}, err
	}
	orgName, err := validateText("organization", in.Organization, 100)
	if err != nil {
		return store.User{}, err
	}
	if orgName == "" {
		orgName = "Default"
	}
	done, err := s.db.SetupDone(ctx)
	if err != nil {
		return store.User{}, err
	}
	if done {
		return store.User{}, ErrSetupDone
	}
	hash, err := hashPassword(in.Password)
	if err != nil {
		return store.User{}, err
	}
	u := store.User{Email: email, Name: name, PasswordHash: hash}
	if err := s.db.CompleteSetup(ctx, s.now(), &store.Organization{Name: orgName}, &u); err != nil {
		return store.User{}, err
	}
	return u, nil
}

// Credentials are what a person types to sign in, plus where they came from.
type Credentials struct {
	Email     string
	Password  string
	ClientIP  string
	UserAgent string
	// OTP or RecoveryCode is the second factor, for users who enabled
	// two-factor login; without either, such users get
	// ErrSecondFactorRequired once the password is right.
	OTP          string
	RecoveryCode string
}

// Login checks credentials and starts a browser session. It returns the
// session's secret (for the cookie) and the principal.
func (s *Service) Login(ctx context.Context, c Credentials) (string, Principal, error) {
	p, err := s.authenticate(ctx, c)
	if errors.Is(err, ErrSecondFactorRequired) && p.User.ID != "" {
		// The browser's second form sends this token back with the code,
		// so the password never has to travel (or be kept) twice.
		token := randomSecret(32)
		pl := store.PendingLogin{IDHash: hashSecret(token), UserID: p.User.ID, ExpiresAt: s.now().Add(pendingLoginTTL)}
		if err := s.db.CreatePendingLogin(ctx, s.now(), pl); err != nil {
			return "", Principal{}, err
		}
		return "", Principal{}, &PendingLoginError{Token: token}
	}
	if err != nil {
		return "", Principal{}, err
	}
	return s.startSession(ctx, p, c.ClientIP, c.UserAgent)
}

func (s *Service) startSession(ctx context.Context, p Principal, clientIP, userAgent string) (string, Principal, error) {
	secret := randomSecret(32)
	now := s.now()
	sess := store.Session{
		IDHash: hashSecret(secret), UserID: p.User.ID, OrganizationID: p.Organization.ID,
		CSRFToken: randomSecret(24), CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.opts.SessionLifetime),
		ClientIP: clientIP, UserAgent: truncate(userAgent, 256),
	}
	if err := s.db.CreateSession(ctx, sess); err != nil {
		return "", Principal{}, err
	}
	p.SessionHash, p.CSRFToken = sess.IDHash, sess.CSRFToken
	return secret, p, nil
}

// LoginToken checks credentials and issues an API token (what `berth login` stores).
func (s *Service) LoginToken(ctx context.Context, c Credentials, name string, ttl time.Duration) (string, store.APIToken, error) {
	p, err := s.authenticate(ctx, c)
	if err != nil {
		return "", store.APIToken{}, err
	}
	return s.CreateToken(ctx, p, name, ttl)
}

func (s *Service) authenticate(ctx context.Context, c Credentials) (Principal, error) {
	email := strings.ToLower(strings.TrimSpace(c.Email))
	if email == "" {
		return Principal{}, &FieldError{"email", "is required"}
	}
	if c.Password == "" {
		return Principal{}, &FieldError{"password", "is required"}
	}
	now := s.now()
	acct, addr := "account:"+email, "address:"+c.ClientIP
	if wait := s.throttle.begin(now, acct, addr); wait > 0 {
		return Principal{}, &ThrottledError{RetryAfter: wait}
	}
	u, err := s.db.UserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Principal{}, err
	}
	if err != nil || !passwordMatches(u.PasswordHash, c.Password) {
		if err != nil {
			passwordMatches(dummyHash(), c.Password)
		}
		return Principal{}, ErrInvalidCredentials
	}
	s.throttle.succeeded([]string{acct}, addr)
	ms, err := s.db.Memberships(ctx, u.ID)
	if err != nil {
		return Principal{}, err
	}
	if len(ms) == 0 {
		return Principal{}, ErrInvalidCredentials
	}
	p := Principal{User: u, Organization: ms[0].Organization, Role: ms[0].Role}
	if err := s.secondFactor(ctx, u, c.OTP, c.RecoveryCode); err != nil {
		if errors.Is(err, ErrSecondFactorRequired) {
			return Principal{User: u}, err // Login turns it into a pending sign-in
		}
		return Principal{}, err
	}
	return p, nil
}

// Session resolves a session secret from a cookie, enforcing idle and absolute expiry.
func (s *Service) Session(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, ErrUnauthenticated
	}
	sess, err := s.db.SessionByHash(ctx, hashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	} else if err != nil {
		return Principal{}, err
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= s.opts.SessionIdle {
		if err := s.db.DeleteSession(ctx, sess.IDHash); err != nil {
			return Principal{}, err
		}
		return Principal{}, ErrUnauthenticated
	}
	// Writing on every request would serialise reads on SQLite; a minute is precise enough.
	if now.Sub(sess.LastSeenAt) > time.Minute {
		if err := s.db.TouchSession(ctx, sess.IDHash, now); err != nil {
			return Principal{}, err
		}
	}
	p, err := s.principal(ctx, sess.UserID, sess.OrganizationID, "")
	if err != nil {
		return Principal{}, err
	}
	p.SessionHash, p.CSRFToken = sess.IDHash, sess.CSRFToken
	return p, nil
}

// Token resolves an API token secret from an Authorization header.
func (s *Service) Token(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return Principal{}, ErrUnauthenticated
	}
	t, err := s.db.TokenByHash(ctx, hashSecret(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	} else if err != nil {
		return Principal{}, err
	}
	now := s.now()
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)) {
		return Principal{}, ErrUnauthenticated
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		if err := s.db.TouchToken(ctx, t.ID, now); err != nil {
			return Principal{}, err
		}
	}
	p, err := s.principal(ctx, t.UserID, t.OrganizationID, t.Role)
	if err != nil {
		return Principal{}, err
	}
	p.TokenID = t.ID
	return p, nil
}

// principal is userID in orgID as of now: a removed member is
// unauthenticated at once. tokenRole, when set, limits the role to it (and
// to the member's role, when a demotion made that less).
func (s *Service) principal(ctx context.Context, userID, orgID, tokenRole string) (Principal, error) {
	u, err := s.db.UserByID(ctx, userID)
	if err != nil {
		return Principal{}, notFoundIsUnauthenticated(err)
	}
	m, err := s.db.Membership(ctx, orgID, userID)
	if err != nil {
		return Principal{}, notFoundIsUnauthenticated(err)
	}
	p := Principal{User: u, Organization: m.Organization, Role: m.Role}
	if p.Grants, err = s.db.Grants(ctx, orgID, userID); err != nil {
		return Principal{}, err
	}
	if tokenRole != "" {
		p.RoleLimited = true
		if authz.Covers(m.Role, tokenRole) {
			p.Role = tokenRole
		}
		// A token limited to a role gets no more than it anywhere.
		for i, g := range p.Grants {
			if !authz.Covers(tokenRole, g.Role) {
				p.Grants[i].Role = tokenRole
			}
		}
	}
	if m.Organization.RequireTwoFactor {
		if _, err := s.enabledTOTP(ctx, userID); errors.Is(err, ErrTwoFactorNotEnabled) {
			p.TwoFactorMissing = true
		} else if err != nil {
			return Principal{}, err
		}
	}
	return p, nil
}

func notFoundIsUnauthenticated(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrUnauthenticated
	}
	return err
}

// Logout ends the principal's session, or revokes the token it used.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.TokenID != "" {
		return s.db.RevokeToken(ctx, s.now(), p.Scope(), p.TokenID)
	}
	return s.db.DeleteSession(ctx, p.SessionHash)
}

// ChangePassword replaces the principal's password after checking the
// current one. Every other session of the user ends and every API token of
// the user is revoked, in every organization, except the session or token
// making the change: a leaked password may have opened those sessions and
// minted those tokens. It returns what was revoked. Repeated wrong current
// passwords are throttled (ThrottledError).
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string) (store.Revoked, error) {
	if current == "" {
		return store.Revoked{}, &FieldError{"current_password", "is required"}
	}
	if err := s.checkPassword(ctx, p.User.ID, "current_password", current); err != nil {
		return store.Revoked{}, err
	}
	if reason := CheckPasswordPolicy(next, p.User.Email); reason != "" {
		return store.Revoked{}, &FieldError{"new_password", reason}
	}
	if next == current {
		return store.Revoked{}, &FieldError{"new_password", "must differ from the current password"}
	}
	hash, err := hashPassword(next)
	if err != nil {
		return store.Revoked{}, err
	}
	return s.db.SetPassword(ctx, s.now(), p.User.ID, hash, keepOf(p))
}

// TokenPrefix starts every API token, so leaked tokens are easy to scan for.
const TokenPrefix = "berth_"

// MaxTokenTTL bounds token lifetimes; zero means no expiry.
const MaxTokenTTL = 366 * 24 * time.Hour

// CreateToken issues an API token for the principal's user and organization.
// The secret is returned once and never stored.
func (s *Service) CreateToken(ctx context.Context, p Principal, name string, ttl time.Duration) (string, store.APIToken, error) {
	return s.CreateRoleToken(ctx, p, name, "", ttl)
}

// CreateRoleToken issues an API token limited to role ("": the member's
// role at each use), which the principal's role must cover.
func (s *Service) CreateRoleToken(ctx context.Context, p Principal, name, role string, ttl time.Duration) (string, store.APIToken, error) {
	if role == "" && p.RoleLimited {
		role = p.Role // a limited token's tokens are limited too
	}
	if role != "" {
		if _, ok := authz.Lookup(role); !ok {
			return "", store.APIToken{}, &FieldError{"role", "must be one of owner, admin, developer, viewer, member, or empty for your own role"}
		}
		if !authz.Covers(p.Role, role) {
			return "", store.APIToken{}, &ForbiddenError{Message: fmt.Sprintf("your role (%s) cannot make a token with role %s", p.Role, role)}
		}
	}
	name, err := validateText("name", name, 64)
	if err != nil {
		return "", store.APIToken{}, err
	}
	if name == "" {
		return "", store.APIToken{}, &FieldError{"name", "is required"}
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return "", store.APIToken{}, &FieldError{"expires_in", "must be between 1 minute and 366 days, or empty for no expiry"}
	}
	if ttl > 0 && ttl < time.Minute {
		return "", store.APIToken{}, &FieldError{"expires_in", "must be at least 1 minute"}
	}
	secret := TokenPrefix + randomSecret(32)
	t := store.APIToken{OrganizationID: p.Organization.ID, UserID: p.User.ID, Name: name, Hash: hashSecret(secret), Prefix: secret[:len(TokenPrefix)+6], Role: role, CreatedAt: s.now()}
	if ttl > 0 {
		exp := s.now().Add(ttl)
		t.ExpiresAt = &exp
	}
	if err := s.db.CreateToken(ctx, &t); err != nil {
		return "", store.APIToken{}, err
	}
	return secret, t, nil
}

// Tokens lists the principal's live tokens.
func (s *Service) Tokens(ctx context.Context, p Principal) ([]store.APIToken, error) {
	return s.db.Tokens(ctx, p.Scope())
}

// RevokeToken revokes one of the principal's tokens.
func (s *Service) RevokeToken(ctx context.Context, p Principal, id string) error {
	return s.db.RevokeToken(ctx, s.now(), p.Scope(), id)
}

// ValidateEmail returns the normalised address or a FieldError.
func ValidateEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", &FieldError{"email", "is required"}
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") {
		return "", &FieldError{"email", "must be an address like name@example.com"}
	}
	return strings.ToLower(email), nil
}

func validateText(field, v string, maxLen int) (string, error) {
	v = strings.TrimSpace(v)
	if len([]rune(v)) > maxLen {
		return "", &FieldError{field, fmt.Sprintf("must be at most %d characters", maxLen)}
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return "", &FieldError{field, "must not contain control characters"}
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func randomSecret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Now is the service's clock, for answers that say how long to wait.
func (s *Service) Now() time.Time { return s.now() }
