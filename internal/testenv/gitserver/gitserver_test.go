package gitserver

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommitIsServed(t *testing.T) {
	s := Start(t, Options{Token: "tok-1"})
	r := s.NewRepo(t, "shop/api")
	if want := s.URL + "/shop/api.git"; r.CloneURL() != want {
		t.Fatalf("CloneURL = %q, want %q", r.CloneURL(), want)
	}
	first := r.Commit(t, map[string]string{"Dockerfile": "FROM scratch\n", "web/version.txt": "one\n"}, "first")
	second := r.Commit(t, map[string]string{"web/version.txt": "two\n"}, "second")
	if first == second || len(second) != 40 || r.Head(t) != second {
		t.Fatalf("commits %s, %s; head %s", first, second, r.Head(t))
	}

	auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x:tok-1"))
	refs := Git(t, t.TempDir(), "-c", "http.sslCAInfo="+s.CAFile, "-c", "http.extraHeader="+auth, "ls-remote", r.CloneURL())
	if !strings.Contains(refs, second+"\trefs/heads/main") {
		t.Fatalf("ls-remote = %q, want main at %s", refs, second)
	}
	co := filepath.Join(t.TempDir(), "co")
	Git(t, t.TempDir(), "-c", "http.sslCAInfo="+s.CAFile, "-c", "http.extraHeader="+auth, "clone", "-q", r.CloneURL(), co)
	for path, want := range map[string]string{"Dockerfile": "FROM scratch\n", "web/version.txt": "two\n"} {
		if b, err := os.ReadFile(filepath.Join(co, path)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if seen := s.AuthSeen(); len(seen) != 1 || seen[0] != strings.TrimPrefix(auth, "Authorization: ") {
		t.Errorf("AuthSeen = %q", seen)
	}
	if s.Requests() == 0 {
		t.Error("no requests counted")
	}
}

func TestTokenRequired(t *testing.T) {
	s := Start(t, Options{Token: "tok-1"})
	r := s.NewRepo(t, "app")
	r.Commit(t, map[string]string{"a": "a"}, "a")
	cmd := gitCmd(t, "-c", "http.sslCAInfo="+s.CAFile, "-c", "credential.helper=", "ls-remote", r.CloneURL())
	cmd.Env = append(cmd.Env, "GIT_TERMINAL_PROMPT=0")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("ls-remote without the token succeeded:\n%s", out)
	}
}

func gitCmd(t *testing.T, args ...string) *exec.Cmd {
	dir := t.TempDir()
	c := exec.Command("git", args...)
	c.Dir = dir
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	return c
}
