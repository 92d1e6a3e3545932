package deploy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// Limits on registry credentials.
const (
	MaxRegistryUsername = 255
	MaxRegistryPassword = 4096
	maxRegistryServer   = 253 + len(":65535")
	// registryTestTimeout bounds a test login: a registry that black-holes
	// packets must not hold the request for the engine's own timeout.
	registryTestTimeout = 30 * time.Second
)

// Registry is a private registry credential as callers see it: the password
// is write-only and never leaves the service layer.
type Registry struct {
	ID        string
	Name      string
	Server    string
	Username  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func registryView(r store.Registry) Registry {
	return Registry{ID: r.ID, Name: r.Name, Server: r.Server, Username: r.Username, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// RegistryInput is a new registry credential.
type RegistryInput struct {
	Name, Server, Username, Password string
}

// RegistryUpdate changes the fields that are set.
type RegistryUpdate struct {
	Name, Server, Username, Password *string
}

// RegistryTest is the outcome of a test login; Message is in plain words.
type RegistryTest struct {
	OK      bool
	Message string
}

// registryAAD binds a sealed registry password to its registry.
func registryAAD(id string) string { return "registry:" + id }

// registryServerRe matches a lowercase hostname or IPv4 address with an optional port.
var registryServerRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$`)

// dockerHubAliases are the names Docker Hub goes by; image references say
// docker.io, so that is the server a Hub credential is stored under.
var dockerHubAliases = map[string]bool{"index.docker.io": true, "registry-1.docker.io": true, "registry.hub.docker.com": true}

// NormalizeRegistryServer checks a registry server (field "server") and
// returns it as image references name it: lowercase host[:port].
func NormalizeRegistryServer(s string) (string, error) {
	fail := func(problem string) error {
		return &app.FieldError{Field: "server", Message: problem + "; write the registry's host and optional port as image names use it, e.g. registry.example.com or localhost:5000"}
	}
	switch {
	case s == "":
		return "", fail("is required")
	case len(s) > maxRegistryServer:
		return "", fail(fmt.Sprintf("is %d characters long", len(s)))
	case strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return "", fail("must not contain whitespace or control characters")
	case strings.Contains(s, "://"):
		return "", fail(fmt.Sprintf("%q has a scheme; leave out %s", s, s[:strings.Index(s, "://")+3]))
	case strings.Contains(s, "/"):
		return "", fail(fmt.Sprintf("%q has a path; leave out everything from the first '/'", s))
	}
	low := strings.ToLower(s)
	if !registryServerRe.MatchString(low) {
		return "", fail(fmt.Sprintf("%q is not a hostname[:port]", s))
	}
	if host, port, ok := strings.Cut(low, ":"); ok {
		if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
			return "", fail(fmt.Sprintf("port %s is not between 1 and 65535", port))
		}
		low = host + ":" + port
	}
	if dockerHubAliases[low] {
		low = "docker.io"
	}
	return low, nil
}

func validateRegistryUsername(u string) error {
	switch {
	case u == "":
		return &app.FieldError{Field: "username", Message: "is required"}
	case len(u) > MaxRegistryUsername:
		return &app.FieldError{Field: "username", Message: fmt.Sprintf("is %d characters long; the limit is %d", len(u), MaxRegistryUsername)}
	case strings.IndexFunc(u, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0:
		return &app.FieldError{Field: "username", Message: "must not contain control characters"}
	}
	return nil
}

func validateRegistryPassword(p string) error {
	switch {
	case p == "":
		return &app.FieldError{Field: "password", Message: "is required"}
	case len(p) > MaxRegistryPassword:
		// The length only: never echo any part of a password.
		return &app.FieldError{Field: "password", Message: fmt.Sprintf("is %d characters long; the limit is %d", len(p), MaxRegistryPassword)}
	}
	return nil
}

// registryConflict turns the store's conflict into a field error.
func registryConflict(err error) error {
	var ce *store.RegistryConflictError
	if errors.As(err, &ce) {
		return &app.FieldError{Field: ce.Field, Message: fmt.Sprintf("another registry already has the %s %q", ce.Field, ce.Value)}
	}
	if errors.Is(err, store.ErrConflict) {
		return &app.FieldError{Field: "name", Message: "another registry already has this name or server"}
	}
	return err
}

// CreateRegistry stores a registry credential, its password sealed.
func (m *Manager) CreateRegistry(ctx context.Context, p auth.Principal, in RegistryInput) (Registry, error) {
	if err := allowOrg(p, authz.RegistryWrite); err != nil {
		return Registry{}, err
	}
	if err := app.ValidateName("name", in.Name); err != nil {
		return Registry{}, err
	}
	server, err := NormalizeRegistryServer(in.Server)
	if err != nil {
		return Registry{}, err
	}
	if err := validateRegistryUsername(in.Username); err != nil {
		return Registry{}, err
	}
	if err := validateRegistryPassword(in.Password); err != nil {
		return Registry{}, err
	}
	r := store.Registry{ID: store.NewID("reg"), OrganizationID: p.Organization.ID, Name: in.Name, Server: server, Username: in.Username}
	if r.SealedPassword, err = m.keys.Seal([]byte(in.Password), registryAAD(r.ID)); err != nil {
		return Registry{}, err
	}
	if err := m.db.CreateRegistry(ctx, m.now(), &r); err != nil {
		return Registry{}, registryConflict(err)
	}
	return registryView(r), nil
}

// Registries lists the organization's registry credentials by name.
func (m *Manager) Registries(ctx context.Context, p auth.Principal) ([]Registry, error) {
	if err := allowOrg(p, authz.RegistryRead); err != nil {
		return nil, err
	}
	rs, err := m.db.Registries(ctx, p.Organization.ID)
	if err != nil {
		return nil, err
	}
	out := make([]Registry, len(rs))
	for i, r := range rs {
		out[i] = registryView(r)
	}
	return out, nil
}

// registry finds a registry by id or by name: names are DNS labels and ids
// contain '_', so the two never collide.
func (m *Manager) registry(ctx context.Context, p auth.Principal, idOrName string) (store.Registry, error) {
	if strings.Contains(idOrName, "_") {
		return m.db.Registry(ctx, p.Organization.ID, idOrName)
	}
	return m.db.RegistryByName(ctx, p.Organization.ID, idOrName)
}

// Registry returns one registry credential, by id or name.
func (m *Manager) Registry(ctx context.Context, p auth.Principal, idOrName string) (Registry, error) {
	if err := allowOrg(p, authz.RegistryRead); err != nil {
		return Registry{}, err
	}
	r, err := m.registry(ctx, p, idOrName)
	if err != nil {
		return Registry{}, err
	}
	return registryView(r), nil
}

// UpdateRegistry changes a registry credential's set fields.
func (m *Manager) UpdateRegistry(ctx context.Context, p auth.Principal, idOrName string, in RegistryUpdate) (Registry, error) {
	if err := allowOrg(p, authz.RegistryWrite); err != nil {
		return Registry{}, err
	}
	r, err := m.registry(ctx, p, idOrName)
	if err != nil {
		return Registry{}, err
	}
	if in.Name != nil {
		if err := app.ValidateName("name", *in.Name); err != nil {
			return Registry{}, err
		}
		r.Name = *in.Name
	}
	if in.Server != nil {
		if r.Server, err = NormalizeRegistryServer(*in.Server); err != nil {
			return Registry{}, err
		}
	}
	if in.Username != nil {
		if err := validateRegistryUsername(*in.Username); err != nil {
			return Registry{}, err
		}
		r.Username = *in.Username
	}
	if in.Password != nil {
		if err := validateRegistryPassword(*in.Password); err != nil {
			return Registry{}, err
		}
		if r.SealedPassword, err = m.keys.Seal([]byte(*in.Password), registryAAD(r.ID)); err != nil {
			return Registry{}, err
		}
	}
	if err := m.db.UpdateRegistry(ctx, m.now(), &r); err != nil {
		return Registry{}, registryConflict(err)
	}
	return registryView(r), nil
}

// DeleteRegistry deletes a registry credential. Running releases keep
// running; their next pull goes without credentials.
func (m *Manager) DeleteRegistry(ctx context.Context, p auth.Principal, idOrName string) error {
	if err := allowOrg(p, authz.RegistryWrite); err != nil {
		return err
	}
	r, err := m.registry(ctx, p, idOrName)
	if err != nil {
		return err
	}
	return m.db.DeleteRegistry(ctx, p.Organization.ID, r.ID)
}

// TestRegistry logs in to the registry from the container engine with the
// stored credential. A refused or unreachable registry is a result, not an
// error; the error is for an unknown registry or an unreachable engine.
func (m *Manager) TestRegistry(ctx context.Context, p auth.Principal, idOrName string) (RegistryTest, error) {
	if err := allowOrg(p, authz.RegistryWrite); err != nil {
		return RegistryTest{}, err
	}
	r, err := m.registry(ctx, p, idOrName)
	if err != nil {
		return RegistryTest{}, err
	}
	tester, ok := m.releases.(orchestrator.Registries)
	if !ok {
		return RegistryTest{}, errors.New("the container engine cannot test registry logins")
	}
	a, err := openRegistryAuth(m.keys, r)
	if err != nil {
		return RegistryTest{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, registryTestTimeout)
	defer cancel()
	err = tester.TestLogin(ctx, *a)
	switch {
	case err == nil:
		return RegistryTest{OK: true, Message: fmt.Sprintf("logged in to %s as %s", r.Server, r.Username)}, nil
	case errors.Is(err, orchestrator.ErrImageUnauthorized):
		return RegistryTest{Message: fmt.Sprintf("unauthorized: %s refused the username or password", r.Server)}, nil
	case errors.Is(err, orchestrator.ErrRegistryUnreachable) || errors.Is(err, context.DeadlineExceeded):
		return RegistryTest{Message: fmt.Sprintf("unreachable: %s did not answer; check the server name and that the engine's host can reach it", r.Server)}, nil
	case errors.Is(err, orchestrator.ErrEngineUnreachable):
		return RegistryTest{}, err
	default:
		// Other registry answers (TLS problems, HTTP errors) are worth
		// showing as they are: they name the registry, never the password.
		return RegistryTest{Message: "login failed: " + err.Error()}, nil
	}
}

func openRegistryAuth(keys *secrets.Keyring, r store.Registry) (*orchestrator.RegistryAuth, error) {
	pw, err := keys.Open(r.SealedPassword, registryAAD(r.ID))
	if err != nil {
		return nil, fmt.Errorf("open the password of registry %s: %w", r.Name, err)
	}
	return &orchestrator.RegistryAuth{Server: r.Server, Username: r.Username, Password: string(pw)}, nil
}

// registryAuth is the credential of the organization's registry for ref's
// domain, or nil when there is none or ref is an image id. A password that
// cannot be opened fails the deployment: retrying would not help.
func (e *Engine) registryAuth(ctx context.Context, orgID, ref string) (*orchestrator.RegistryAuth, error) {
	if strings.HasPrefix(ref, "sha256:") {
		return nil, nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, nil // not a reference a registry serves
	}
	r, err := e.db.RegistryForServer(ctx, orgID, strings.ToLower(reference.Domain(named)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a, err := openRegistryAuth(e.keys, r)
	if err != nil {
		return nil, failf("the credentials of registry %s cannot be read (was the secret key changed?): %v", r.Name, err)
	}
	return a, nil
}
