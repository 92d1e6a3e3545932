package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/deploy"
)

// Registry is a private registry credential. The password is write-only:
// no response ever carries it.
type Registry struct {
	ID          string    `json:"id" example:"reg_4fk3mz2xq7bw6a5c" doc:"Registry id"`
	Name        string    `json:"name" example:"ghcr" doc:"Registry name, unique in the organization"`
	Server      string    `json:"server" example:"ghcr.io" doc:"Registry host[:port], as image names use it; images whose name starts with it are pulled with this credential"`
	Username    string    `json:"username" example:"deploy-bot" doc:"User name Berth logs in with"`
	HasPassword bool      `json:"has_password" doc:"Always true: a password is stored, and never shown"`
	CreatedAt   time.Time `json:"created_at" doc:"When the registry was added"`
	UpdatedAt   time.Time `json:"updated_at" doc:"When the registry was last changed"`
}

// RegistryList is the organization's registries, by name.
type RegistryList struct {
	Registries []Registry `json:"registries"`
}

// CreateRegistryRequest adds a registry credential.
type CreateRegistryRequest struct {
	Name     string `json:"name" maxLength:"64" example:"ghcr" doc:"1–32 lowercase letters, digits and '-', starting with a letter"`
	Server   string `json:"server" maxLength:"300" example:"ghcr.io" doc:"host[:port] without scheme or path, e.g. registry.example.com or localhost:5000; one credential per server"`
	Username string `json:"username" maxLength:"255" example:"deploy-bot" doc:"User name"`
	Password string `json:"password" maxLength:"4096" doc:"Password or access token; write-only" writeOnly:"true"`
}

// UpdateRegistryRequest changes the fields it sets.
type UpdateRegistryRequest struct {
	Name     *string `json:"name,omitempty" maxLength:"64" example:"ghcr" doc:"New name"`
	Server   *string `json:"server,omitempty" maxLength:"300" example:"ghcr.io" doc:"New host[:port]"`
	Username *string `json:"username,omitempty" maxLength:"255" doc:"New user name"`
	Password *string `json:"password,omitempty" maxLength:"4096" doc:"New password or access token; write-only" writeOnly:"true"`
}

// RegistryTest is the outcome of a test login.
type RegistryTest struct {
	OK      bool   `json:"ok" doc:"The registry accepted the credentials"`
	Message string `json:"message" example:"unauthorized: ghcr.io refused the username or password" doc:"What happened, in plain words"`
}

// RegistryParams address a registry.
type RegistryParams struct {
	ID string `path:"id" maxLength:"64" example:"reg_4fk3mz2xq7bw6a5c" doc:"Registry id or name"`
}

type registryOutput struct{ Body Registry }

type registryListOutput struct{ Body RegistryList }

type registryTestOutput struct{ Body RegistryTest }

type createRegistryInput struct{ Body CreateRegistryRequest }

type updateRegistryInput struct {
	RegistryParams
	Body UpdateRegistryRequest
}

func registryOf(r deploy.Registry) Registry {
	return Registry{ID: r.ID, Name: r.Name, Server: r.Server, Username: r.Username, HasPassword: true, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func (s *server) registerRegistries() {
	tags := []string{"Registries"}
	register(s, huma.Operation{
		OperationID: "list-registries",
		Method:      http.MethodGet,
		Path:        Prefix + "/registries",
		Tags:        tags,
		Summary:     "List registries",
		Description: "Lists the organization's private registry credentials by name, without their passwords.",
	}, s.listRegistries)

	register(s, huma.Operation{
		OperationID:   "create-registry",
		Method:        http.MethodPost,
		Path:          Prefix + "/registries",
		Tags:          tags,
		Summary:       "Add a registry",
		Description:   "Stores a credential for a private image registry; deployments of images from its server pull with it. The password is encrypted at rest and never returned. A name or server the organization already has answers 422 naming the field.",
		DefaultStatus: http.StatusCreated,
	}, s.createRegistry)

	register(s, huma.Operation{
		OperationID: "get-registry",
		Method:      http.MethodGet,
		Path:        Prefix + "/registries/{id}",
		Tags:        tags,
		Summary:     "Show a registry",
		Description: "Returns a registry credential, without its password.",
		Errors:      []int{http.StatusNotFound},
	}, s.getRegistry)

	register(s, huma.Operation{
		OperationID: "update-registry",
		Method:      http.MethodPatch,
		Path:        Prefix + "/registries/{id}",
		Tags:        tags,
		Summary:     "Change a registry",
		Description: "Changes the fields the body sets. Running apps are not redeployed; the next pull uses the new credential.",
		Errors:      []int{http.StatusNotFound},
	}, s.updateRegistry)

	register(s, huma.Operation{
		OperationID:   "delete-registry",
		Method:        http.MethodDelete,
		Path:          Prefix + "/registries/{id}",
		Tags:          tags,
		Summary:       "Remove a registry",
		Description:   "Deletes a registry credential. Running apps keep running; their next pull from that server goes without credentials.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound},
	}, s.deleteRegistry)

	register(s, huma.Operation{
		OperationID: "test-registry",
		Method:      http.MethodPost,
		Path:        Prefix + "/registries/{id}/test",
		Tags:        tags,
		Summary:     "Test a registry login",
		Description: "Logs in to the registry from the container engine with the stored credential. A refused or unreachable registry answers 200 with `ok: false` and a message saying which.",
		Errors:      []int{http.StatusNotFound, http.StatusServiceUnavailable},
	}, s.testRegistry)
}

func (s *server) listRegistries(ctx context.Context, _ *struct{}) (*registryListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.deps.Apps.Registries(ctx, p)
	if err != nil {
		return nil, err
	}
	out := RegistryList{Registries: make([]Registry, 0, len(rs))}
	for _, r := range rs {
		out.Registries = append(out.Registries, registryOf(r))
	}
	return &registryListOutput{Body: out}, nil
}

func (s *server) createRegistry(ctx context.Context, in *createRegistryInput) (*registryOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Apps.CreateRegistry(ctx, p, deploy.RegistryInput{Name: in.Body.Name, Server: in.Body.Server, Username: in.Body.Username, Password: in.Body.Password})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "registry added", "user_id", p.User.ID, "registry_id", r.ID, "server", r.Server)
	return &registryOutput{Body: registryOf(r)}, nil
}

func (s *server) getRegistry(ctx context.Context, in *RegistryParams) (*registryOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Apps.Registry(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	return &registryOutput{Body: registryOf(r)}, nil
}

func (s *server) updateRegistry(ctx context.Context, in *updateRegistryInput) (*registryOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Apps.UpdateRegistry(ctx, p, in.ID, deploy.RegistryUpdate{Name: in.Body.Name, Server: in.Body.Server, Username: in.Body.Username, Password: in.Body.Password})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "registry changed", "user_id", p.User.ID, "registry_id", r.ID, "server", r.Server, "password_changed", in.Body.Password != nil)
	return &registryOutput{Body: registryOf(r)}, nil
}

func (s *server) deleteRegistry(ctx context.Context, in *RegistryParams) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Apps.Registry(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Apps.DeleteRegistry(ctx, p, r.ID); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "registry removed", "user_id", p.User.ID, "registry_id", r.ID, "server", r.Server)
	return nil, nil
}

func (s *server) testRegistry(ctx context.Context, in *RegistryParams) (*registryTestOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.deps.Apps.TestRegistry(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	return &registryTestOutput{Body: RegistryTest{OK: res.OK, Message: res.Message}}, nil
}
