// Package gitea runs a real Gitea server for tests of Berth's git provider
// clients: one server per test, on a free loopback port, with its own
// PostgreSQL database, an admin user and an API token for it.
//
// The binary comes from test/gitea/build.sh, which builds Gitea from the Go
// module proxy once and caches it. Start skips the test when Gitea cannot be
// built, started or given a database, and fails it instead under CI=true, so
// CI cannot go green by skipping.
package gitea

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

// Who the admin user is, and who CreateRepo commits as.
const (
	AdminUser   = "berth-admin"
	AdminEmail  = "berth-admin@example.test"
	AuthorName  = "Ada Lovelace"
	AuthorEmail = "ada@example.test"
)

// DefaultBranch is the default branch of repositories CreateRepo makes.
const DefaultBranch = "main"

const (
	// startTimeout bounds how long `gitea web` may take to answer.
	startTimeout = 60 * time.Second
	// stopTimeout is how long Gitea gets to shut down before it is killed.
	stopTimeout = 10 * time.Second
	// pushTimeout bounds how long Gitea may take to record a push.
	pushTimeout = 15 * time.Second
)

// Server is a running Gitea.
type Server struct {
	// URL is the base URL, without a trailing slash: https://localhost:port
	// (Gitea serves TLS with a certificate of a test CA: Berth fetches
	// only over HTTPS).
	URL string
	// CAFile is the PEM of the CA that signed the server's certificate.
	CAFile string
	// User and Password are the admin's credentials; Token is an API token
	// of the admin with every scope.
	User, Password, Token string

	client *http.Client
}

// Client is an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.client }

// binary is the result of test/gitea/build.sh, run once per test process.
var binary struct {
	once sync.Once
	path string
	err  error
}

// Start runs a Gitea server for the test and stops it when the test ends.
// The first call in a process runs test/gitea/build.sh, which takes minutes
// when the binary is not cached yet.
func Start(t testing.TB) *Server {
	t.Helper()
	binary.once.Do(func() { binary.path, binary.err = build() })
	began := time.Now()
	if binary.err != nil {
		unavailable(t, "gitea: %v", binary.err)
		return nil
	}
	// A malformed or absent BERTH_TEST_POSTGRES_URL is testenv's to report.
	db := testenv.Postgres(t)

	dir := t.TempDir()
	ca := testenv.NewCA()
	certPEM, keyPEM := ca.Leaf(t, "localhost")
	tlsFiles := [2]string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	s := &Server{
		User:     AdminUser,
		Password: randomHex(16),
		CAFile:   filepath.Join(dir, "ca.pem"),
		client: &http.Client{Timeout: 15 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}},
	}
	for path, content := range map[string]string{tlsFiles[0]: certPEM, tlsFiles[1]: keyPEM, s.CAFile: ca.PEM()} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.client.CloseIdleConnections)
	secrets := map[string]string{"SECRET_KEY": randomHex(32), "INTERNAL_TOKEN": randomHex(32)}

	// The port is picked free and then handed to Gitea, so another process
	// may take it in between: start again on a new port when that happens.
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port := testenv.FreePort(t)
		s.URL = "https://localhost:" + strconv.Itoa(port)
		cfg := filepath.Join(dir, "app.ini")
		if err := os.WriteFile(cfg, appINI(t, dir, filepath.Dir(binary.path), db, port, tlsFiles, secrets), 0o600); err != nil {
			t.Fatal(err)
		}
		if attempt == 1 {
			// The database outlives a failed attempt, so this is done
			// once. `admin user create` needs the schema `migrate` makes.
			run(t, binary.path, dir, "migrate")
			run(t, binary.path, dir, "admin", "user", "create", "--admin",
				"--username", s.User, "--password", s.Password, "--email", AdminEmail,
				"--must-change-password=false")
		}
		logFile := filepath.Join(dir, fmt.Sprintf("gitea-%d.log", attempt))
		exited, err := s.web(t, dir, logFile)
		if err == nil {
			s.Token = s.CreateToken(t, "berth-test", "all")
			t.Logf("gitea: %s started in %s", s.URL, time.Since(began).Round(time.Millisecond))
			return s
		}
		out, _ := os.ReadFile(logFile)
		lastErr = fmt.Errorf("%v\n%s", err, tail(out, 16<<10))
		if !exited || !bytes.Contains(out, []byte("address already in use")) {
			break
		}
	}
	unavailable(t, "gitea: %v", lastErr)
	return nil
}

// build runs test/gitea/build.sh and returns the binary it reports.
func build() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "test", "gitea", "build.sh"))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("test/gitea/build.sh: %v\n%s", err, tail(stderr.Bytes(), 8<<10))
	}
	bin := strings.TrimSpace(stdout.String())
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("test/gitea/build.sh printed %q, not a binary: %v", bin, err)
	}
	return bin, nil
}

// repoRoot finds Berth's repository root: the nearest directory above the
// working directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; run the tests inside the repository")
		}
		dir = parent
	}
}

// appINI is the configuration of a Gitea for tests: the REST API and git over
// HTTP on loopback, nothing else that costs start-up time or reaches out.
// Templates, options and public assets are read from staticRoot, next to the
// binary, since the binary is built without bindata.
func appINI(t testing.TB, dir, staticRoot, dbURL string, port int, tlsFiles [2]string, secrets map[string]string) []byte {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("gitea: database URL: %v", err)
	}
	pass, _ := u.User.Password()
	sslMode := u.Query().Get("sslmode")
	if sslMode == "" {
		sslMode = "disable"
	}
	runUser := "root"
	if cur, err := user.Current(); err == nil {
		runUser = cur.Username
	}
	data := filepath.Join(dir, "data")
	sections := []struct {
		name string
		keys [][2]string
	}{
		{"", [][2]string{
			{"APP_NAME", "Berth test Gitea"},
			{"RUN_MODE", "prod"},
			{"RUN_USER", runUser},
			// CI and development containers run as root; Gitea refuses
			// to unless told.
			{"I_AM_BEING_UNSAFE_RUNNING_AS_ROOT", "true"},
			{"WORK_PATH", dir},
		}},
		{"server", [][2]string{
			{"PROTOCOL", "https"},
			{"CERT_FILE", tlsFiles[0]},
			{"KEY_FILE", tlsFiles[1]},
			{"HTTP_ADDR", "127.0.0.1"},
			{"HTTP_PORT", strconv.Itoa(port)},
			{"ROOT_URL", "https://localhost:" + strconv.Itoa(port) + "/"},
			{"APP_DATA_PATH", data},
			{"STATIC_ROOT_PATH", staticRoot},
			{"OFFLINE_MODE", "true"},
			{"DISABLE_SSH", "true"},
			{"START_SSH_SERVER", "false"},
			{"LFS_START_SERVER", "false"},
		}},
		{"database", [][2]string{
			{"DB_TYPE", "postgres"},
			{"HOST", u.Host},
			{"NAME", strings.TrimPrefix(u.Path, "/")},
			{"USER", u.User.Username()},
			{"PASSWD", pass},
			{"SSL_MODE", sslMode},
			{"LOG_SQL", "false"},
		}},
		{"repository", [][2]string{
			{"ROOT", filepath.Join(dir, "repositories")},
			{"DEFAULT_BRANCH", DefaultBranch},
		}},
		{"security", [][2]string{
			{"INSTALL_LOCK", "true"},
			{"SECRET_KEY", secrets["SECRET_KEY"]},
			{"INTERNAL_TOKEN", secrets["INTERNAL_TOKEN"]},
			// Hashing is not what these tests exercise.
			{"PASSWORD_HASH_ALGO", "pbkdf2_v1"},
		}},
		{"service", [][2]string{
			{"DISABLE_REGISTRATION", "true"},
			{"REGISTER_EMAIL_CONFIRM", "false"},
			{"ENABLE_NOTIFY_MAIL", "false"},
			{"DEFAULT_KEEP_EMAIL_PRIVATE", "true"},
		}},
		{"mailer", [][2]string{{"ENABLED", "false"}}},
		{"webhook", [][2]string{
			// Deliveries go to httptest servers on 127.0.0.1, which the
			// default list refuses.
			{"ALLOWED_HOST_LIST", "*"},
			{"SKIP_TLS_VERIFY", "true"},
			{"DELIVER_TIMEOUT", "5"},
		}},
		{"queue", [][2]string{{"TYPE", "channel"}}},
		{"indexer", [][2]string{
			{"ISSUE_INDEXER_TYPE", "db"},
			{"REPO_INDEXER_ENABLED", "false"},
		}},
		{"session", [][2]string{{"PROVIDER", "memory"}}},
		{"cache", [][2]string{{"ADAPTER", "memory"}}},
		{"oauth2", [][2]string{{"ENABLED", "false"}}},
		{"actions", [][2]string{{"ENABLED", "false"}}},
		{"packages", [][2]string{{"ENABLED", "false"}}},
		{"cron", [][2]string{{"ENABLED", "false"}}},
		{"cron.update_checker", [][2]string{{"ENABLED", "false"}}},
		{"log", [][2]string{
			{"MODE", "console"},
			{"LEVEL", "Info"},
			{"ROOT_PATH", filepath.Join(dir, "log")},
		}},
	}
	var b bytes.Buffer
	for _, s := range sections {
		if s.name != "" {
			fmt.Fprintf(&b, "\n[%s]\n", s.name)
		}
		for _, kv := range s.keys {
			// Backquotes keep values with ; or # (a password) intact.
			fmt.Fprintf(&b, "%s = `%s`\n", kv[0], kv[1])
		}
	}
	return b.Bytes()
}

// run runs a one-shot gitea command against the test's configuration.
func run(t testing.TB, bin, dir string, args ...string) {
	t.Helper()
	cmd := giteaCommand(bin, dir, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		unavailable(t, "gitea %s: %v\n%s", args[0], err, tail(out, 16<<10))
	}
}

func giteaCommand(bin, dir string, args ...string) *exec.Cmd {
	full := append([]string{"--config", filepath.Join(dir, "app.ini"), "--work-path", dir}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GITEA_WORK_DIR="+dir, "HOME="+dir)
	return cmd
}

// web starts `gitea web` and waits until its API answers. On failure it
// reports whether the process exited by itself.
func (s *Server) web(t testing.TB, dir, logFile string) (exited bool, err error) {
	t.Helper()
	logOut, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := giteaCommand(binary.path, dir, "web")
	cmd.Stdout, cmd.Stderr = logOut, logOut
	if err := cmd.Start(); err != nil {
		logOut.Close()
		return true, fmt.Errorf("start %s: %v", binary.path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logOut.Close() }()
	// stop asks Gitea to shut down gracefully (it flushes its queues), and
	// kills it when it takes too long.
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return
		case <-time.After(stopTimeout):
		}
		_ = cmd.Process.Kill()
		<-done
	}

	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case werr := <-done:
			return true, fmt.Errorf("gitea web exited during start: %v", werr)
		case <-tick.C:
		}
		if s.answers() {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					out, _ := os.ReadFile(logFile)
					t.Logf("gitea log (%s):\n%s", logFile, tail(out, 64<<10))
				}
			})
			return false, nil
		}
		if time.Now().After(deadline) {
			stop()
			return false, fmt.Errorf("%s/api/v1/version did not answer within %s", s.URL, startTimeout)
		}
	}
}

func (s *Server) answers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/version", nil)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// CreateToken makes another API token for the admin with the given scopes
// (e.g. "read:repository"), for tests of what a narrower token may do.
func (s *Server) CreateToken(t testing.TB, name string, scopes ...string) string {
	t.Helper()
	var tok struct {
		Token string `json:"sha1"`
	}
	// Tokens are created with the password (basic auth), not with a token.
	s.do(t, http.MethodPost, "/api/v1/users/"+s.User+"/tokens",
		map[string]any{"name": name, "scopes": scopes}, &tok, true)
	if tok.Token == "" {
		t.Fatal("gitea: token creation answered without a token")
	}
	return tok.Token
}

// API calls Gitea's REST API as the admin (with the token): it sends in as
// JSON when not nil, decodes the answer into out when not nil, and fails the
// test unless the status is 2xx. path starts with /api/v1/.
func (s *Server) API(t testing.TB, method, path string, in, out any) {
	t.Helper()
	s.do(t, method, path, in, out, false)
}

func (s *Server) do(t testing.TB, method, path string, in, out any, basic bool) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if basic {
		req.SetBasicAuth(s.User, s.Password)
	} else {
		req.Header.Set("Authorization", "token "+s.Token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("gitea: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
	if err != nil {
		t.Fatalf("gitea: %s %s: reading the answer: %v", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("gitea: %s %s: %s\n%s", method, path, resp.Status, respBody)
	}
	if out != nil {
		if err := json.Unmarshal(respBody, out); err != nil {
			t.Fatalf("gitea: %s %s: decoding %q: %v", method, path, respBody, err)
		}
	}
}

// CreateRepo creates a public repository of the admin, pushes one commit
// with files (path → content) to its default branch, DefaultBranch, and
// returns its HTTP clone URL.
func (s *Server) CreateRepo(t testing.TB, name string, files map[string]string) (cloneURL string) {
	t.Helper()
	var repo struct {
		CloneURL string `json:"clone_url"`
	}
	s.API(t, http.MethodPost, "/api/v1/user/repos", map[string]any{
		"name":           name,
		"auto_init":      false,
		"default_branch": DefaultBranch,
	}, &repo)
	if repo.CloneURL == "" {
		t.Fatalf("gitea: repository %s created without a clone URL", name)
	}

	work := t.TempDir()
	s.Git(t, work, "init", "--quiet", "--initial-branch="+DefaultBranch)
	for p, content := range files {
		full := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.Git(t, work, "add", "--all")
	s.Git(t, work, "commit", "--quiet", "--allow-empty", "-m", "Initial commit")
	s.Git(t, work, "push", "--quiet", repo.CloneURL, "HEAD:refs/heads/"+DefaultBranch)

	// Gitea records the push (the repository stops being empty, the branch
	// appears in its tables) from a queue after the push has returned; the
	// API refuses to branch from an empty repository until then.
	deadline := time.Now().Add(pushTimeout)
	for {
		var state struct {
			Empty bool `json:"empty"`
		}
		s.API(t, http.MethodGet, "/api/v1/repos/"+s.User+"/"+name, nil, &state)
		if !state.Empty {
			return repo.CloneURL
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitea: repository %s still empty %s after the push", name, pushTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Branch creates branch name in the admin's repository repo from its
// default branch.
func (s *Server) Branch(t testing.TB, repo, name string) {
	t.Helper()
	s.API(t, http.MethodPost, "/api/v1/repos/"+s.User+"/"+repo+"/branches",
		map[string]any{"new_branch_name": name}, nil)
}

// Git runs git in dir with the admin's token for HTTP requests to the
// server, isolated from the user's and the system's git configuration, and
// returns its standard output. The token travels in the environment, not in
// URLs or arguments, so it shows up in neither process lists nor errors.
func (s *Server) Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	auth := "Authorization: Basic " + basicAuth(s.User, s.Token)
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME="+AuthorName, "GIT_AUTHOR_EMAIL="+AuthorEmail,
		"GIT_COMMITTER_NAME="+AuthorName, "GIT_COMMITTER_EMAIL="+AuthorEmail,
		"GIT_CONFIG_COUNT=1",
		"GIT_CONFIG_KEY_0=http."+s.URL+"/.extraHeader",
		"GIT_CONFIG_VALUE_0="+auth,
		"GIT_SSL_CAINFO="+s.CAFile, // over the environment's, and over http.sslCAInfo
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String()
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// unavailable skips the test, or fails it when CI=true.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: not skipping)", args...)
	}
	t.Skipf(format, args...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	if i := bytes.IndexByte(b[len(b)-n:], '\n'); i >= 0 {
		return b[len(b)-n+i+1:]
	}
	return b[len(b)-n:]
}
