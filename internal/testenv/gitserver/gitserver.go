// Package gitserver is a git host for tests: the real git http-backend
// speaking git's smart HTTP protocol behind TLS (with a CA file to trust) and,
// optionally, basic auth with a token. It serves bare repositories from one
// directory, which tests fill with NewRepo and Commit or with Git.
package gitserver

import (
	"bytes"
	"encoding/pem"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Author is who Git and Commit commit as.
const (
	AuthorName  = "Ada Lovelace"
	AuthorEmail = "ada@example.test"
)

// Options configure a Server.
type Options struct {
	// Root is the directory of bare repositories to serve; "" is a new
	// temporary directory.
	Root string
	// Token, when set, is the basic-auth password every request must carry
	// (any user name), as git hosts take personal access tokens.
	Token string
	// ProtocolV0 names repositories (e.g. "strict.git") served as an old
	// server would: protocol v0 only, so fetching an unadvertised commit by
	// id is refused.
	ProtocolV0 []string
}

// Server serves the bare repositories under Root.
type Server struct {
	URL    string // https://127.0.0.1:port
	CAFile string // PEM of the certificate the server presents
	Root   string
	Token  string

	requests atomic.Int32
	authSeen sync.Map // Authorization header values received
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	execPath := Git(t, opts.Root, "--exec-path")
	s := &Server{Root: opts.Root, Token: opts.Token}
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + opts.Root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + opts.Root,
			"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
		InheritEnv: []string{"PATH"},
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if h := r.Header.Get("Authorization"); h != "" {
			s.authSeen.Store(h, true)
		}
		if s.Token != "" {
			if _, pass, ok := r.BasicAuth(); !ok || pass != s.Token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if slices.Contains(opts.ProtocolV0, repo) {
			r.Header.Del("Git-Protocol")
		}
		backend.ServeHTTP(w, r)
	}))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(s.CAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// Requests is how many HTTP requests the server received.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// AuthSeen lists the distinct Authorization header values received, sorted.
func (s *Server) AuthSeen() []string {
	var out []string
	s.authSeen.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	sort.Strings(out)
	return out
}

// Repo is a bare repository the server serves, with a work tree of its own
// that Commit pushes from.
type Repo struct {
	Name string // e.g. "shop/api.git"
	Dir  string // the bare repository
	srv  *Server
	work string
	mu   sync.Mutex
}

// NewRepo creates an empty bare repository named name (".git" is added when
// missing; slashes make directories, as "owner/repo.git").
func (s *Server) NewRepo(t testing.TB, name string) *Repo {
	t.Helper()
	if !strings.HasSuffix(name, ".git") {
		name += ".git"
	}
	r := &Repo{Name: name, Dir: filepath.Join(s.Root, filepath.FromSlash(name)), srv: s, work: t.TempDir()}
	if err := os.MkdirAll(filepath.Dir(r.Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	Git(t, s.Root, "init", "-q", "--bare", r.Dir)
	// As hosted git services do: a client may fetch any commit of a branch by id.
	Git(t, r.Dir, "config", "uploadpack.allowReachableSHA1InWant", "true")
	Git(t, r.work, "init", "-q")
	return r
}

// CloneURL is the repository's HTTPS URL.
func (r *Repo) CloneURL() string { return r.srv.URL + "/" + r.Name }

// Commit writes files (path → content, slash-separated paths; other files
// stay as they were), commits them on branch main and pushes main to the
// served repository. It returns the new commit's id.
func (r *Repo) Commit(t testing.TB, files map[string]string, message string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, content := range files {
		full := filepath.Join(r.work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, r.work, "add", "-A")
	Git(t, r.work, "commit", "-q", "--allow-empty", "-m", message)
	Git(t, r.work, "push", "-q", r.Dir, "HEAD:refs/heads/main")
	return Git(t, r.work, "rev-parse", "HEAD")
}

// Head is the commit branch main points at in the served repository.
func (r *Repo) Head(t testing.TB) string {
	t.Helper()
	return Git(t, r.Dir, "rev-parse", "refs/heads/main")
}

// Git runs git in dir for building test repositories, isolated from the
// machine's and the user's configuration, as AuthorName with fixed dates
// (the same content makes the same commit). It fails the test on error and
// returns the trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{
		"-c", "user.name=" + AuthorName, "-c", "user.email=" + AuthorEmail,
		"-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always",
	}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"LC_ALL=C", "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("fixture git %v: %v\n%s", args, err, out.String())
	}
	return strings.TrimSpace(out.String())
}
