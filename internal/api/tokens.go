package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// TokenList is the caller's live API tokens, newest first.
type TokenList struct {
	Tokens []APIToken `json:"tokens"`
}

// CreateTokenRequest issues an API token for the caller.
type CreateTokenRequest struct {
	Name      string `json:"name" maxLength:"256" example:"ci" doc:"A name to recognise the token by (up to 64 characters)"`
	ExpiresIn string `json:"expires_in,omitempty" maxLength:"32" example:"24h" doc:"Lifetime: a duration such as 30m, 24h or 30d, up to 366 days. Leave out for a token that does not expire"`
	Role      string `json:"role,omitempty" maxLength:"32" example:"viewer" doc:"Limit the token to this role (owner, admin, developer, viewer, member), at most your own; within projects granted to you it gets no more than this role either. Leave out for a token with your own role at each use (a token that is itself limited makes tokens limited to its role)"`
}

type tokenListOutput struct{ Body TokenList }

type createTokenInput struct{ Body CreateTokenRequest }

type tokenIDInput struct {
	ID string `path:"id" maxLength:"64" example:"tok_7bw6a5c4fk3zxm2q" doc:"Token id"`
}

func (s *server) registerTokens() {
	register(s, huma.Operation{
		OperationID: "list-tokens",
		Method:      http.MethodGet,
		Path:        Prefix + "/tokens",
		Tags:        []string{"Tokens"},
		Summary:     "List API tokens",
		Description: "Lists the caller's API tokens that have not been revoked, newest first, including expired ones. Secrets are never shown again; `prefix` helps recognise a token.",
	}, s.listTokens)

	register(s, huma.Operation{
		OperationID:   "create-token",
		Method:        http.MethodPost,
		Path:          Prefix + "/tokens",
		Tags:          []string{"Tokens"},
		Summary:       "Create an API token",
		Description:   "Issues an API token for the caller, in the caller's organization, optionally limited to a role (`role`, for CI jobs that only read, say). The secret is in this response only.",
		DefaultStatus: http.StatusCreated,
	}, s.createToken)

	register(s, huma.Operation{
		OperationID:   "revoke-token",
		Method:        http.MethodDelete,
		Path:          Prefix + "/tokens/{id}",
		Tags:          []string{"Tokens"},
		Summary:       "Revoke an API token",
		Description:   "Revokes one of the caller's tokens; it stops working at once. An unknown id, an already revoked token or another user's token answers 404.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound},
	}, s.revokeToken)
}

func (s *server) listTokens(ctx context.Context, _ *struct{}) (*tokenListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ts, err := s.deps.Auth.Tokens(ctx, p)
	if err != nil {
		return nil, err
	}
	out := TokenList{Tokens: make([]APIToken, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenOf(t))
	}
	return &tokenListOutput{Body: out}, nil
}

func (s *server) createToken(ctx context.Context, in *createTokenInput) (*issuedTokenOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ttl, err := ParseExpiresIn(in.Body.ExpiresIn)
	if err != nil {
		return nil, err
	}
	role := in.Body.Role
	if role == "" && p.RoleLimited {
		// A limited token must not mint one with the member's whole role.
		role = p.Role
	}
	secret, t, err := s.deps.Auth.CreateRoleToken(ctx, p, in.Body.Name, role, ttl)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "api token created", "user_id", p.User.ID, "token_id", t.ID, "name", t.Name, "role", t.Role)
	return &issuedTokenOutput{Body: issuedOf(secret, t)}, nil
}

func (s *server) revokeToken(ctx context.Context, in *tokenIDInput) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Auth.RevokeToken(ctx, p, in.ID); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "api token revoked", "user_id", p.User.ID, "token_id", in.ID)
	return nil, nil
}
