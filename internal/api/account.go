package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// Me is the caller: account, organization, role and how they authenticated.
type Me struct {
	User         User         `json:"user"`
	Organization Organization `json:"organization"`
	Role         string       `json:"role" example:"owner" doc:"Role in the organization"`
	Auth         string       `json:"auth" enum:"session,token" doc:"How this request was authenticated"`
	CSRFToken    string       `json:"csrf_token,omitempty" doc:"For session authentication: the CSRF token to send as X-CSRF-Token on state-changing requests"`
	RoleLimited  bool         `json:"role_limited,omitempty" doc:"The request used a token limited to role"`
	// TwoFactorMissing tells clients why everything else answers 403.
	TwoFactorMissing bool `json:"two_factor_missing,omitempty" doc:"The organization requires two-factor login and the caller has none: until they set it up, only their own account's operations are allowed"`
}

// ChangePasswordRequest replaces the caller's password.
type ChangePasswordRequest struct {
	CurrentPassword string `json:"current_password" maxLength:"1024" doc:"The password in use now"`
	NewPassword     string `json:"new_password" maxLength:"1024" doc:"At least 10 characters, at most 72 bytes; not a common password, not containing the email's local part"`
}

type meOutput struct{ Body Me }

type passwordChangedOutput struct{ Body CredentialsChanged }

type changePasswordInput struct{ Body ChangePasswordRequest }

func (s *server) registerAccount() {
	register(s, huma.Operation{
		OperationID: "get-me",
		Method:      http.MethodGet,
		Path:        Prefix + "/me",
		Tags:        []string{"Account"},
		Summary:     "Show the caller",
		Description: "Returns the signed-in user, their organization and role, and whether the request used a session or an API token.",
	}, s.getMe)

	register(s, huma.Operation{
		OperationID: "change-password",
		Method:      http.MethodPut,
		Path:        Prefix + "/me/password",
		Tags:        []string{"Account"},
		Summary:     "Change the caller's password",
		Description: "Replaces the password after checking the current one. Every other session of the user ends and every API token of the user is revoked, " +
			"since a leaked password may have opened or minted them; the session or token making the change keeps working. The answer says how many were ended and revoked.",
	}, s.changePassword)
	s.registerTwoFactor()
}

func (s *server) getMe(ctx context.Context, _ *struct{}) (*meOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	me := Me{User: userOf(p.User), Organization: organizationOf(p.Organization), Role: p.Role, Auth: "session", CSRFToken: p.CSRFToken,
		RoleLimited: p.RoleLimited, TwoFactorMissing: p.TwoFactorMissing}
	if p.TokenID != "" {
		me.Auth, me.CSRFToken = "token", ""
	}
	return &meOutput{Body: me}, nil
}

func (s *server) changePassword(ctx context.Context, in *changePasswordInput) (*passwordChangedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Auth.ChangePassword(ctx, p, in.Body.CurrentPassword, in.Body.NewPassword)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "password changed", "user_id", p.User.ID, "ended_sessions", r.Sessions, "revoked_tokens", r.Tokens)
	return &passwordChangedOutput{Body: credentialsChangedOf(r)}, nil
}
