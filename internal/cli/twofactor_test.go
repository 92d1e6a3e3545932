package cli

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) next()          { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(30 * time.Second) }

func TestTwoFactorFlow(t *testing.T) {
	isolate(t)
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, _ := secrets.New(key)
	clk := &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth: auth.New(db, auth.Options{Now: clk.now, Keys: keys}), Engine: fakeEngine{}, Log: slog.New(slog.DiscardHandler),
		SetupAllowed: func(r *http.Request) bool { return true },
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	url := srv.URL

	mustRun(t, password+"\n", "setup", "--server", url, "--email", email, "--password-stdin")
	mustRun(t, password+"\n", "login", "--server", url, "--email", email, "--password-stdin")

	r := mustRun(t, "", "account", "2fa", "enable")
	lines := strings.Split(r.stdout, "\n")
	var secret string
	for i, l := range lines {
		if strings.Contains(l, "type the key by hand") && i+1 < len(lines) {
			secret = strings.TrimSpace(lines[i+1])
		}
	}
	if secret == "" || !strings.Contains(r.stdout, "otpauth://totp/") || !strings.Contains(r.stdout, "--otp") {
		t.Fatalf("enable output:\n%s", r.stdout)
	}
	code := func() string {
		c, err := auth.TOTPCode(secret, clk.now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	r = mustRun(t, "", "account", "2fa", "enable", "--otp", code())
	var recovery []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if l = strings.TrimSpace(l); len(l) == 19 && strings.Count(l, "-") == 3 {
			recovery = append(recovery, l)
		}
	}
	if len(recovery) != 10 {
		t.Fatalf("enable --otp output:\n%s", r.stdout)
	}
	if r := mustRun(t, "", "account", "2fa", "status"); !strings.Contains(r.stdout, "on; 10 recovery codes left") {
		t.Errorf("status: %s", r.stdout)
	}

	// login: without a terminal, it says to pass --otp.
	clk.next()
	mustFail(t, "--otp", password+"\n", "login", "--password-stdin")
	mustFail(t, "not right", password+"\n", "login", "--password-stdin", "--otp", "000000x")
	r = mustRun(t, password+"\n", "login", "--password-stdin", "--otp", code())
	if !strings.Contains(r.stdout, "Logged in") {
		t.Errorf("login --otp: %s", r.stdout)
	}
	mustFail(t, "already used", password+"\n", "login", "--password-stdin", "--otp", code())
	mustRun(t, password+"\n", "login", "--password-stdin", "--recovery-code", recovery[0])
	mustFail(t, "already used", password+"\n", "login", "--password-stdin", "--recovery-code", recovery[0])

	clk.next()
	r = mustRun(t, "", "account", "2fa", "recovery-codes", "--otp", code())
	if strings.Count(r.stdout, "\n  ") != 10 {
		t.Errorf("recovery-codes output:\n%s", r.stdout)
	}
	clk.next()
	mustFail(t, "password", "wrong password\n", "account", "2fa", "disable", "--password-stdin", "--otp", code())
	r = mustRun(t, password+"\n", "account", "2fa", "disable", "--password-stdin", "--otp", code())
	if !strings.Contains(r.stdout, "Two-factor login is off") {
		t.Errorf("disable output: %s", r.stdout)
	}
	mustRun(t, "", "whoami") // the CLI's own token survives
	mustRun(t, password+"\n", "login", "--password-stdin")
}
