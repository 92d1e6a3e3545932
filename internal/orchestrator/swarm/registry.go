package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/registry"

	"github.com/berthpaas/berth/internal/orchestrator"
)

var _ orchestrator.Registries = (*Engine)(nil)

// TestLogin asks the engine to log in to the registry, which checks the
// credentials the way a pull would (the engine keeps nothing).
func (e *Engine) TestLogin(ctx context.Context, auth orchestrator.RegistryAuth) error {
	_, err := e.api.RegistryLogin(ctx, registry.AuthConfig{
		Username:      auth.Username,
		Password:      auth.Password,
		ServerAddress: auth.Server,
	})
	if err == nil {
		return nil
	}
	if client := e.unreachable(err); errors.Is(client, orchestrator.ErrEngineUnreachable) {
		return fmt.Errorf("logging in to %s: %w", auth.Server, client)
	}
	return loginError(auth.Server, err)
}

// loginError says in plain words why a login failed. The daemon reports the
// registry's answer as text, so the text is what there is; it never contains
// the password.
func loginError(server string, err error) error {
	msg := err.Error()
	low := strings.ToLower(msg)
	switch {
	case cerrdefs.IsUnauthorized(err) || strings.Contains(low, "unauthorized") || strings.Contains(low, "authentication required") ||
		strings.Contains(low, "incorrect username or password"):
		return fmt.Errorf("%w: %s refused the username or password", orchestrator.ErrImageUnauthorized, server)
	case strings.Contains(low, "no such host") || strings.Contains(low, "connection refused") || strings.Contains(low, "i/o timeout") ||
		strings.Contains(low, "network is unreachable") || strings.Contains(low, "tls handshake timeout") ||
		strings.Contains(low, "server gave http response to https client") || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s did not answer: %s", orchestrator.ErrRegistryUnreachable, server, msg)
	default:
		return fmt.Errorf("logging in to %s: %w", server, err)
	}
}
