package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/auth"
)

// SetupStatus says whether first-run setup is still open.
type SetupStatus struct {
	Needed bool `json:"needed" doc:"True until the owner account exists"`
}

// SetupRequest creates the first organization and its owner.
type SetupRequest struct {
	Email        string `json:"email" maxLength:"254" example:"ada@example.com" doc:"The owner's sign-in address"`
	Password     string `json:"password" maxLength:"1024" doc:"At least 10 characters, at most 72 bytes; not a common password, not containing the email's local part"`
	Name         string `json:"name,omitempty" maxLength:"400" example:"Ada Lovelace" doc:"The owner's display name (up to 100 characters)"`
	Organization string `json:"organization,omitempty" maxLength:"400" example:"Acme" doc:"Name of the first organization (up to 100 characters); \"Default\" when empty"`
}

// SetupResult is the owner account that setup created.
type SetupResult struct {
	User User `json:"user"`
}

type setupStatusOutput struct{ Body SetupStatus }

type setupInput struct{ Body SetupRequest }

type setupOutput struct{ Body SetupResult }

func (s *server) registerSetup() {
	register(s, public(huma.Operation{
		OperationID: "get-setup",
		Method:      http.MethodGet,
		Path:        Prefix + "/setup",
		Tags:        []string{"Setup"},
		Summary:     "Check whether setup is needed",
		Description: "Reports whether first-run setup is still open, that is whether the owner account has yet to be created. Needs no authentication.",
	}), s.getSetup)

	register(s, public(huma.Operation{
		OperationID:   "complete-setup",
		Method:        http.MethodPost,
		Path:          Prefix + "/setup",
		Tags:          []string{"Setup"},
		Summary:       "Create the owner account",
		Description:   "First-run setup: creates the first organization and its owner. It works once; afterwards it answers 409. To keep a fresh install from being claimed by whoever finds its port first, it is accepted only from the server itself (loopback) or through the configured public URL, and answers 403 otherwise. It does not sign in: call `POST /api/v1/auth/login` or `POST /api/v1/auth/tokens` next.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusForbidden, http.StatusConflict},
	}), s.completeSetup)
}

func (s *server) getSetup(ctx context.Context, _ *struct{}) (*setupStatusOutput, error) {
	needed, err := s.deps.Auth.SetupNeeded(ctx)
	if err != nil {
		return nil, err
	}
	return &setupStatusOutput{Body: SetupStatus{Needed: needed}}, nil
}

func (s *server) completeSetup(ctx context.Context, in *setupInput) (*setupOutput, error) {
	if !s.deps.SetupAllowed(exchangeFrom(ctx).r) {
		return nil, huma.Error403Forbidden("setup is only possible from the server itself (e.g. http://localhost) or through the configured public URL")
	}
	u, err := s.deps.Auth.Setup(ctx, auth.SetupInput{
		Email: in.Body.Email, Password: in.Body.Password, Name: in.Body.Name, Organization: in.Body.Organization,
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "setup completed", "user_id", u.ID, "email", u.Email)
	return &setupOutput{Body: SetupResult{User: userOf(u)}}, nil
}
