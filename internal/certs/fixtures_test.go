package certs_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// testZone is the zone the test DNS server is authoritative for; every name
// under it (and any other name) resolves to 127.0.0.1.
const testZone = "example.test."

// challengeServer is the HTTP server Pebble validates HTTP-01 against: it
// answers what solvers presented. A token presented with hang set blocks its
// request until the test ends.
type challengeServer struct {
	Port int

	mu      sync.Mutex
	answers map[string]string // token → body
	hang    map[string]bool
	release chan struct{}
}

func startChallengeServer(t *testing.T) *challengeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &challengeServer{
		Port:    l.Addr().(*net.TCPAddr).Port,
		answers: map[string]string{},
		hang:    map[string]bool{},
		release: make(chan struct{}),
	}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { _ = srv.Serve(l); close(served) }()
	t.Cleanup(func() {
		close(c.release)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return c
}

func (c *challengeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	c.mu.Lock()
	body, found := c.answers[token]
	hang := c.hang[token]
	c.mu.Unlock()
	if hang {
		select {
		case <-c.release:
		case <-r.Context().Done():
		}
		return
	}
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(body))
}

func (c *challengeServer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.answers) + len(c.hang)
}

// solver is an HTTPSolver publishing to a challengeServer. answer, when
// set, rewrites the key authorization it serves; onPresent runs after each
// Present.
type solver struct {
	srv       *challengeServer
	answer    func(keyAuth string) string
	hang      bool
	onPresent func()
	fail      error

	mu        sync.Mutex
	presented []string
}

func (s *solver) Present(ctx context.Context, domain, token, keyAuth string) error {
	if s.fail != nil {
		return s.fail
	}
	body := keyAuth
	if s.answer != nil {
		body = s.answer(keyAuth)
	}
	s.srv.mu.Lock()
	if s.hang {
		s.srv.hang[token] = true
	} else {
		s.srv.answers[token] = body
	}
	s.srv.mu.Unlock()
	s.mu.Lock()
	s.presented = append(s.presented, domain)
	s.mu.Unlock()
	if s.onPresent != nil {
		s.onPresent()
	}
	return nil
}

func (s *solver) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	if err := ctx.Err(); err != nil {
		return err // the bridge must hand CleanUp a live context
	}
	s.srv.mu.Lock()
	delete(s.srv.answers, token)
	delete(s.srv.hang, token)
	s.srv.mu.Unlock()
	return nil
}

func (s *solver) domains() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.presented...)
}
