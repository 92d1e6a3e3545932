package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/store"
)

const (
	email    = "ada@example.com"
	password = "correct horse battery staple"
)

type fakeEngine struct{}

func (fakeEngine) Ping(context.Context) error { return nil }
func (fakeEngine) Status(context.Context) orchestrator.EngineStatus {
	return orchestrator.EngineStatus{Reachable: true}
}
func (fakeEngine) Bootstrap(context.Context, orchestrator.BootstrapOptions) (orchestrator.BootstrapResult, error) {
	return orchestrator.BootstrapResult{}, nil
}
func (fakeEngine) Close() error { return nil }

// newServer runs the real API (SQLite store, auth service) behind real HTTP.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth:         auth.New(db, auth.Options{}),
		Engine:       fakeEngine{},
		Log:          slog.New(slog.DiscardHandler),
		SetupAllowed: func(r *http.Request) bool { return auth.SetupAllowed(r, "") },
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// isolate points the CLI at a fresh config file and clears the environment
// variables it reads, so the developer's own login never leaks in.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "berth", "cli.json")
	t.Setenv("BERTH_CLI_CONFIG", path)
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("BERTH_SERVER", "")
	t.Setenv("BERTH_TOKEN", "")
	return path
}

type result struct {
	stdout, stderr string
	err            error
}

// run executes one command line in-process, as cmd/berth would.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	root := &cobra.Command{Use: "berth", SilenceUsage: true, SilenceErrors: true}
	AddCommands(root)
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	return result{stdout: out.String(), stderr: errOut.String(), err: err}
}

func mustRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := run(t, stdin, args...)
	if r.err != nil {
		t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

func mustFail(t *testing.T, want string, stdin string, args ...string) result {
	t.Helper()
	r := run(t, stdin, args...)
	if r.err == nil {
		t.Fatalf("berth %s succeeded, want an error containing %q\nstdout: %s", strings.Join(args, " "), want, r.stdout)
	}
	if !strings.Contains(r.err.Error(), want) {
		t.Fatalf("berth %s: error %q, want it to contain %q", strings.Join(args, " "), r.err, want)
	}
	return r
}

func readConfig(t *testing.T, path string) Config {
	t.Helper()
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSessionFlow(t *testing.T) {
	cfgPath := isolate(t)
	srv := newServer(t)
	url := srv.URL

	r := mustRun(t, password+"\n", "setup", "--server", url, "--email", email, "--password-stdin", "--name", "Ada", "--organization", "Acme")
	if !strings.Contains(r.stdout, email) || !strings.Contains(r.stdout, "berth login --server "+url) {
		t.Errorf("setup output:\n%s", r.stdout)
	}
	mustFail(t, "setup is already complete", "another fine password\n", "setup", "--server", url, "--email", "eve@example.com", "--password-stdin")

	mustFail(t, "invalid email or password", "wrong password\n", "login", "--server", url, "--email", email, "--password-stdin")
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("failed login wrote the config file: %v", err)
	}

	r = mustRun(t, password+"\n", "login", "--server", url+"/", "--email", email, "--password-stdin")
	if strings.TrimSpace(r.stdout) != "Logged in to "+url+" as "+email {
		t.Errorf("login output %q", r.stdout)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(cfgPath)); di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v, want 0700", di.Mode().Perm())
	}
	cfg := readConfig(t, cfgPath)
	if cfg.Server != url || cfg.Email != email || !strings.HasPrefix(cfg.Token, "berth_") {
		t.Errorf("config %+v", cfg)
	}
	loginToken := cfg.Token
	if entries, _ := os.ReadDir(filepath.Dir(cfgPath)); len(entries) != 1 {
		t.Errorf("config dir holds %d entries, want only cli.json", len(entries))
	}

	r = mustRun(t, "", "whoami")
	for _, want := range []string{email, "Ada", "Acme", "owner", url} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("whoami lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, "", "whoami", "--output", "json")
	var me struct {
		api.Me
		Server string `json:"server"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &me); err != nil || me.User.Email != email || me.Server != url || me.Auth != "token" {
		t.Errorf("whoami json %q: %v", r.stdout, err)
	}
	mustFail(t, "--output", "", "whoami", "--output", "yaml")

	r = mustRun(t, "", "token", "create", "ci", "--expires", "24h")
	secret := strings.TrimSuffix(r.stdout, "\n")
	if !strings.HasPrefix(secret, "berth_") || strings.ContainsAny(secret, "\n \t") {
		t.Fatalf("token create stdout %q, want the token alone on one line", r.stdout)
	}
	if !strings.Contains(r.stderr, "shown only once") {
		t.Errorf("token create stderr %q", r.stderr)
	}
	mustFail(t, "--expires must be", "", "token", "create", "ci2", "--expires", "tomorrow")

	r = mustRun(t, "", "token", "list")
	if !strings.Contains(r.stdout, "ci") || !strings.Contains(r.stdout, "cli@") || !strings.Contains(r.stdout, "LAST USED") {
		t.Errorf("token list:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, loginToken) {
		t.Errorf("token list shows a secret:\n%s", r.stdout)
	}
	r = mustRun(t, "", "token", "list", "-o", "json")
	var list api.TokenList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Tokens) != 2 {
		t.Fatalf("token list json %q: %v", r.stdout, err)
	}
	ciID := ""
	for _, tok := range list.Tokens {
		if tok.Name == "ci" {
			ciID = tok.ID
		}
	}

	// The new token works on its own, without the config file.
	t.Setenv("BERTH_CLI_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	t.Setenv("BERTH_SERVER", url)
	t.Setenv("BERTH_TOKEN", secret)
	r = mustRun(t, "", "whoami")
	if !strings.Contains(r.stdout, email) {
		t.Errorf("whoami with BERTH_TOKEN:\n%s", r.stdout)
	}
	t.Setenv("BERTH_CLI_CONFIG", cfgPath)
	t.Setenv("BERTH_SERVER", "")
	t.Setenv("BERTH_TOKEN", "")

	r = mustRun(t, "", "token", "revoke", ciID)
	if !strings.Contains(r.stdout, "Revoked token "+ciID) {
		t.Errorf("revoke output %q", r.stdout)
	}
	mustFail(t, "no token "+ciID, "", "token", "revoke", ciID)
	t.Setenv("BERTH_TOKEN", secret)
	mustFail(t, "not logged in (or the token expired): run berth login", "", "whoami", "--server", url)
	t.Setenv("BERTH_TOKEN", "")

	r = mustRun(t, "", "logout")
	if !strings.Contains(r.stdout, "Logged out of "+url) {
		t.Errorf("logout output %q", r.stdout)
	}
	cfg = readConfig(t, cfgPath)
	if cfg.Token != "" || cfg.Server != url {
		t.Errorf("config after logout %+v", cfg)
	}
	if b, _ := os.ReadFile(cfgPath); bytes.Contains(b, []byte(loginToken)) {
		t.Error("the token is still in the config file")
	}
	mustFail(t, "not logged in", "", "whoami")
	// Revoked on the server, not just forgotten.
	t.Setenv("BERTH_TOKEN", loginToken)
	mustFail(t, "not logged in", "", "whoami", "--server", url)
	t.Setenv("BERTH_TOKEN", "")
	r = mustRun(t, "", "logout")
	if !strings.Contains(r.stdout, "Not logged in") {
		t.Errorf("second logout %q", r.stdout)
	}
}

func TestLoginReplacesEarlierToken(t *testing.T) {
	cfgPath := isolate(t)
	srv := newServer(t)
	mustRun(t, password+"\n", "setup", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, password+"\n", "login", "--server", srv.URL, "--email", email, "--password-stdin")
	first := readConfig(t, cfgPath).Token
	// The email is remembered for the same server.
	mustRun(t, password+"\n", "login", "--server", srv.URL, "--password-stdin")
	second := readConfig(t, cfgPath).Token
	if first == second {
		t.Fatal("second login kept the first token")
	}
	r := mustRun(t, "", "token", "list", "-o", "json")
	var list api.TokenList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Tokens) != 1 {
		t.Errorf("after two logins: %s (%v)", r.stdout, err)
	}
}

func TestConfigTokenIsOnlySentToItsServer(t *testing.T) {
	isolate(t)
	srv := newServer(t)
	mustRun(t, password+"\n", "setup", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, password+"\n", "login", "--server", srv.URL, "--email", email, "--password-stdin")

	var mu sync.Mutex
	var seen []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer other.Close()
	mustFail(t, "not logged in", "", "whoami", "--server", other.URL)
	t.Setenv("BERTH_SERVER", other.URL)
	mustFail(t, "not logged in", "", "token", "list")
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h != "" {
			t.Errorf("the stored token was sent to another server: %q", h)
		}
	}
}

func TestErrorsAreFriendly(t *testing.T) {
	isolate(t)
	srv := newServer(t)
	mustFail(t, "email must be an address like name@example.com", password+"\n", "setup", "--server", srv.URL, "--email", "ada-at-example", "--password-stdin")
	mustFail(t, "password must be at least 10 characters", "short\n", "setup", "--server", srv.URL, "--email", email, "--password-stdin")
	mustFail(t, "stdin is not a terminal", "", "login", "--server", srv.URL, "--email", email)
	mustFail(t, "--email is required", password+"\n", "login", "--server", srv.URL, "--password-stdin")
	mustFail(t, "must be a URL", password+"\n", "login", "--server", "localhost:3000", "--email", email, "--password-stdin")
	mustFail(t, "not logged in", "", "whoami")
	mustFail(t, "not logged in", "", "token", "list")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	want := "cannot reach the Berth server at " + dead + ": is `berth server` running?"
	r := mustFail(t, want, password+"\n", "login", "--server", dead, "--email", email, "--password-stdin")
	if strings.Contains(r.err.Error(), "goroutine") {
		t.Errorf("error %q", r.err)
	}
	t.Setenv("BERTH_TOKEN", "berth_whatever")
	mustFail(t, want, "", "whoami", "--server", dead)
}

func TestLogoutWhenServerIsUnreachable(t *testing.T) {
	cfgPath := isolate(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	if err := saveConfig(cfgPath, Config{Server: dead, Token: "berth_abc", Email: email}); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "", "logout")
	if !strings.Contains(r.stderr, "cannot reach the Berth server") || !strings.Contains(r.stderr, "not revoked") {
		t.Errorf("logout stderr %q", r.stderr)
	}
	if c := readConfig(t, cfgPath); c.Token != "" {
		t.Errorf("token kept: %+v", c)
	}
}

func TestReadPasswordTrimsOneNewline(t *testing.T) {
	for in, want := range map[string]string{
		"secret\n":   "secret",
		"secret\r\n": "secret",
		"secret":     "secret",
		"secret\n\n": "secret\n",
		" secret \n": " secret ",
	} {
		cmd := &cobra.Command{}
		cmd.SetIn(strings.NewReader(in))
		got, err := readPassword(cmd, "password-stdin", true, false)
		if err != nil || got != want {
			t.Errorf("readPassword(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	cmd := &cobra.Command{}
	cmd.SetIn(strings.NewReader("\n"))
	if _, err := readPassword(cmd, "password-stdin", true, false); err == nil {
		t.Error("an empty password was accepted")
	}
}

func TestConfigPath(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	home, _ := os.UserHomeDir()
	if p, _ := configPath(getenv); p != filepath.Join(home, ".config", "berth", "cli.json") {
		t.Errorf("default %q", p)
	}
	env["XDG_CONFIG_HOME"] = "/x"
	if p, _ := configPath(getenv); p != "/x/berth/cli.json" {
		t.Errorf("xdg %q", p)
	}
	env["BERTH_CLI_CONFIG"] = "/y/c.json"
	if p, _ := configPath(getenv); p != "/y/c.json" {
		t.Errorf("explicit %q", p)
	}
}
