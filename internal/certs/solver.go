package certs

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-acme/lego/v5/challenge"
)

// presenter is what HTTPSolver and DNSProvider have in common, and what lego
// calls a challenge.Provider.
type presenter interface {
	Present(ctx context.Context, domain, token, keyAuth string) error
	CleanUp(ctx context.Context, domain, token, keyAuth string) error
}

// solverBridge hands lego's challenge calls to our solver. It keeps the
// solver's first error, because lego buries it under its own wrapping, and
// it cleans up even after the attempt's ctx ended.
type solverBridge struct {
	s    presenter
	kind string // "HTTP-01 challenge", "DNS-01 record"

	mu  sync.Mutex
	err error
}

var _ challenge.Provider = (*solverBridge)(nil)

func (b *solverBridge) Present(ctx context.Context, domain, token, keyAuth string) error {
	err := b.s.Present(ctx, domain, token, keyAuth)
	if err != nil && ctx.Err() == nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = fmt.Errorf("could not publish the %s for %s: %w", b.kind, domain, err)
		}
		b.mu.Unlock()
	}
	return err
}

func (b *solverBridge) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return b.s.CleanUp(ctx, domain, token, keyAuth)
}

func (b *solverBridge) firstErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
