package orchestrator

import "context"

// Registries checks registry credentials with the engine that will use them.
type Registries interface {
	// TestLogin logs in to auth.Server with auth's credentials from the
	// engine, as a pull would. The error wraps ErrImageUnauthorized when the
	// registry refused the credentials and ErrRegistryUnreachable when it did
	// not answer, with a plain-words explanation.
	TestLogin(ctx context.Context, auth RegistryAuth) error
}
