package gitea_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/testenv/gitea"
)

func TestStart(t *testing.T) {
	s := gitea.Start(t)

	var version struct {
		Version string `json:"version"`
	}
	s.API(t, http.MethodGet, "/api/v1/version", nil, &version)
	if version.Version == "" {
		t.Fatal("GET /api/v1/version answered without a version")
	}

	var me struct {
		Login   string `json:"login"`
		IsAdmin bool   `json:"is_admin"`
	}
	s.API(t, http.MethodGet, "/api/v1/user", nil, &me)
	if me.Login != s.User || !me.IsAdmin {
		t.Fatalf("GET /api/v1/user with the token = %+v, want admin %q", me, s.User)
	}

	cloneURL := s.CreateRepo(t, "hello", map[string]string{
		"README.md":   "# hello\n",
		"app/main.go": "package main\n",
	})
	if want := s.URL + "/" + s.User + "/hello.git"; cloneURL != want {
		t.Errorf("clone URL = %q, want %q", cloneURL, want)
	}
	refs := s.Git(t, t.TempDir(), "ls-remote", cloneURL)
	if !strings.Contains(refs, "\trefs/heads/"+gitea.DefaultBranch+"\n") {
		t.Fatalf("git ls-remote %s:\n%s\nwant refs/heads/%s", cloneURL, refs, gitea.DefaultBranch)
	}

	s.Branch(t, "hello", "feature")
	refs = s.Git(t, t.TempDir(), "ls-remote", cloneURL)
	if !strings.Contains(refs, "\trefs/heads/feature\n") {
		t.Fatalf("git ls-remote after Branch:\n%s\nwant refs/heads/feature", refs)
	}

	var file struct {
		Content string `json:"content"`
	}
	s.API(t, http.MethodGet, "/api/v1/repos/"+s.User+"/hello/contents/app/main.go", nil, &file)
	if file.Content == "" {
		t.Fatal("the pushed file app/main.go is not in the repository")
	}
}
