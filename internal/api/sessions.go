package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/auth"
)

// LoginRequest signs in with an email and password.
type LoginRequest struct {
	Email    string `json:"email" maxLength:"254" example:"ada@example.com" doc:"Sign-in address"`
	Password string `json:"password" maxLength:"1024" doc:"Password"`
	SecondFactor
}

// SecondFactor is the second step of a sign-in, for accounts with
// two-factor login: leave both out at first; when the answer is a 401 of
// type `urn:berth:problem:otp_required`, repeat the request with one.
type SecondFactor struct {
	OTP          string `json:"otp,omitempty" maxLength:"32" example:"123456" doc:"The current 6-digit code of the authenticator app, for accounts with two-factor login"`
	RecoveryCode string `json:"recovery_code,omitempty" maxLength:"64" doc:"A single-use recovery code, instead of otp"`
}

// LoginResult is who signed in. CSRFToken must accompany state-changing
// requests made with the session cookie.
type LoginResult struct {
	User         User         `json:"user"`
	Organization Organization `json:"organization"`
	Role         string       `json:"role" example:"owner" doc:"Role in the organization"`
	CSRFToken    string       `json:"csrf_token" doc:"Send as the X-CSRF-Token header on POST, PUT, PATCH and DELETE requests made with the session cookie"`
}

// TokenLoginRequest signs in and issues an API token (what `berth login` does).
type TokenLoginRequest struct {
	Email     string `json:"email" maxLength:"254" example:"ada@example.com" doc:"Sign-in address"`
	Password  string `json:"password" maxLength:"1024" doc:"Password"`
	Name      string `json:"name" maxLength:"256" example:"cli@laptop" doc:"A name to recognise the token by (up to 64 characters)"`
	ExpiresIn string `json:"expires_in,omitempty" maxLength:"32" example:"720h" doc:"Lifetime: a duration such as 30m, 24h or 30d, up to 366 days. Leave out for a token that does not expire"`
	SecondFactor
}

type loginInput struct{ Body LoginRequest }

type loginOutput struct{ Body LoginResult }

type tokenLoginInput struct{ Body TokenLoginRequest }

type issuedTokenOutput struct{ Body IssuedToken }

func (s *server) registerSessions() {
	register(s, public(huma.Operation{
		OperationID: "login",
		Method:      http.MethodPost,
		Path:        Prefix + "/auth/login",
		Tags:        []string{"Authentication"},
		Summary:     "Sign in with a session cookie",
		Description: "Checks the email and password and starts a browser session: the response sets the HttpOnly `" + auth.SessionCookie + "` cookie and returns the session's CSRF token. " +
			"A wrong password and an unknown email get the same 401. After repeated failures for an account or from an address, sign-in is refused for a growing time (429 with `Retry-After`).\n\n" +
			twoFactorLoginDoc,
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests},
	}), s.login)

	register(s, public(huma.Operation{
		OperationID: "create-token-with-password",
		Method:      http.MethodPost,
		Path:        Prefix + "/auth/tokens",
		Tags:        []string{"Authentication"},
		Summary:     "Sign in and issue an API token",
		Description: "Checks the email and password and issues an API token for `Authorization: Bearer`; this is what `berth login` does. " +
			"The token's secret is in the response only: store it, the server keeps a hash. Failures are answered and throttled as for `login`, and accounts with two-factor login need `otp` or `recovery_code` the same way.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests},
	}), s.tokenLogin)

	register(s, huma.Operation{
		OperationID:   "logout",
		Method:        http.MethodPost,
		Path:          Prefix + "/auth/logout",
		Tags:          []string{"Authentication"},
		Summary:       "Sign out",
		Description:   "Ends the session the request was made with and clears its cookie, or, for a request made with an API token, revokes that token.",
		DefaultStatus: http.StatusNoContent,
	}, s.logout)
}

const twoFactorLoginDoc = "**Two-factor login.** For an account with two-factor login, a right password without a code answers 401 with the problem type `" + ProblemOTPRequired + "`: " +
	"repeat the request with `otp` (the authenticator's current code) or `recovery_code`. A wrong, expired or reused code answers 401 of type `" + ProblemOTPInvalid + "`. " +
	"After 5 wrong codes in a row the second step is locked for 15 minutes: 429 of type `" + ProblemOTPLocked + "` with `Retry-After`, and the detail says when it unlocks."

func credentials(ctx context.Context, email, password string, f SecondFactor) auth.Credentials {
	r := exchangeFrom(ctx).r
	return auth.Credentials{Email: email, Password: password, ClientIP: auth.ClientIP(r), UserAgent: r.UserAgent(), OTP: f.OTP, RecoveryCode: f.RecoveryCode}
}

func (s *server) login(ctx context.Context, in *loginInput) (*loginOutput, error) {
	c := credentials(ctx, in.Body.Email, in.Body.Password, in.Body.SecondFactor)
	secret, p, err := s.deps.Auth.Login(ctx, c)
	if err != nil {
		s.logLoginFailure(ctx, c, err)
		return nil, err
	}
	auth.SetSessionCookie(exchangeFrom(ctx).w, secret, s.deps.SecureCookies, s.deps.SessionLifetime)
	s.log.InfoContext(ctx, "signed in", "user_id", p.User.ID, "method", "session", "client_ip", c.ClientIP)
	return &loginOutput{Body: LoginResult{
		User: userOf(p.User), Organization: organizationOf(p.Organization), Role: p.Role, CSRFToken: p.CSRFToken,
	}}, nil
}

func (s *server) tokenLogin(ctx context.Context, in *tokenLoginInput) (*issuedTokenOutput, error) {
	ttl, err := ParseExpiresIn(in.Body.ExpiresIn)
	if err != nil {
		return nil, err
	}
	c := credentials(ctx, in.Body.Email, in.Body.Password, in.Body.SecondFactor)
	secret, t, err := s.deps.Auth.LoginToken(ctx, c, in.Body.Name, ttl)
	if err != nil {
		s.logLoginFailure(ctx, c, err)
		return nil, err
	}
	s.log.InfoContext(ctx, "signed in", "user_id", t.UserID, "method", "token", "token_id", t.ID, "client_ip", c.ClientIP)
	return &issuedTokenOutput{Body: issuedOf(secret, t)}, nil
}

// logLoginFailure records refused sign-ins for the operator (and tools such
// as fail2ban): the address and the email tried, never the password. What
// was typed as the email is logged only if it is an address: people do type
// their password into the wrong field.
func (s *server) logLoginFailure(ctx context.Context, c auth.Credentials, err error) {
	email, verr := auth.ValidateEmail(c.Email)
	if verr != nil {
		email = "(not an email address)"
	}
	var throttled *auth.ThrottledError
	var locked *auth.SecondFactorLockedError
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		s.log.WarnContext(ctx, "sign-in failed", "email", email, "client_ip", c.ClientIP)
	case errors.Is(err, auth.ErrInvalidSecondFactor):
		s.log.WarnContext(ctx, "sign-in failed: wrong second-factor code", "email", email, "client_ip", c.ClientIP)
	case errors.As(err, &locked):
		s.log.WarnContext(ctx, "sign-in second factor locked", "email", email, "client_ip", c.ClientIP, "until", locked.Until)
	case errors.As(err, &throttled):
		s.log.WarnContext(ctx, "sign-in throttled", "email", email, "client_ip", c.ClientIP, "retry_after", throttled.RetryAfter.String())
	}
}

func (s *server) logout(ctx context.Context, _ *struct{}) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Auth.Logout(ctx, p); err != nil {
		return nil, err
	}
	if p.TokenID == "" {
		auth.ClearSessionCookie(exchangeFrom(ctx).w, s.deps.SecureCookies)
	}
	s.log.InfoContext(ctx, "signed out", "user_id", p.User.ID, "token_id", p.TokenID)
	return nil, nil
}
