package api_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/testenv/gitea"
)

// Git connections through the API against a real Gitea: bad input is a 422
// naming the field and stores nothing; a connection lists repositories and
// branches; an app made from it gets its webhook at Gitea; the token is
// never shown.
func TestGitConnections(t *testing.T) {
	srv := gitea.Start(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ca, pem, 0o600)
	a := newAPIEnvWith(t, "", "https://berth.example.test", deploy.BuildConfig{GitCAFile: ca})
	a.remember(srv.Token)
	srv.CreateRepo(t, "api", map[string]string{"Dockerfile": "FROM scratch\n"})

	for _, c := range []struct {
		body     map[string]string
		location string
	}{
		{map[string]string{"name": "gh", "provider": "github", "base_url": "https://github.com", "token": "x"}, "body.provider"},
		{map[string]string{"name": "Bad", "provider": "gitea", "base_url": srv.URL, "token": srv.Token}, "body.name"},
		{map[string]string{"name": "gitea", "provider": "gitea", "base_url": "http://" + strings.TrimPrefix(srv.URL, "https://"), "token": srv.Token}, "body.base_url"},
		{map[string]string{"name": "gitea", "provider": "gitea", "base_url": "https://localhost:1", "token": srv.Token}, "body.base_url"},
		{map[string]string{"name": "gitea", "provider": "gitea", "base_url": srv.URL, "token": "0123456789abcdef0123456789abcdef01234567"}, "body.token"},
		{map[string]string{"name": "gitea", "provider": "gitea", "base_url": srv.URL}, "body.token"},
	} {
		fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/connections", c.body), c.location, "")
	}
	var list api.ConnectionList
	a.call(http.StatusOK, "GET", "/connections", nil).json(t, &list)
	if len(list.Connections) != 0 {
		t.Fatalf("refused connections were stored: %+v", list)
	}

	var c api.Connection
	a.call(http.StatusCreated, "POST", "/connections", map[string]string{"name": "gitea", "provider": "gitea", "base_url": srv.URL, "token": srv.Token}).json(t, &c)
	if c.Account != srv.User || c.BaseURL != srv.URL || c.Provider != "gitea" {
		t.Errorf("connection %+v", c)
	}
	var repos api.ConnectionRepoList
	a.call(http.StatusOK, "GET", "/connections/gitea/repos", nil).json(t, &repos)
	if len(repos.Repos) != 1 || repos.Repos[0].FullName != srv.User+"/api" || repos.Repos[0].DefaultBranch != "main" {
		t.Errorf("repos %+v", repos)
	}
	var branches api.BranchList
	a.call(http.StatusOK, "GET", "/connections/gitea/repos/"+srv.User+"/api/branches", nil).json(t, &branches)
	if strings.Join(branches.Branches, ",") != "main" {
		t.Errorf("branches %+v", branches)
	}
	a.call(http.StatusNotFound, "GET", "/connections/gitea/repos/"+srv.User+"/nope/branches", nil)
	a.call(http.StatusNotFound, "GET", "/connections/nope/repos", nil)

	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps", gitApp(map[string]any{"connection": "nope", "repo": srv.User + "/api"})), "body.git.connection", "")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps", gitApp(map[string]any{"connection": "gitea", "url": "https://x.example/a.git"})), "body.git.connection", "")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps", gitApp(map[string]any{"connection": "gitea"})), "body.git.repo", "")
	var created api.App
	a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{"connection": "gitea", "repo": srv.User + "/api"})).json(t, &created)
	s := created.Source
	if s == nil || s.Kind != "gitea" || s.BaseURL != srv.URL || !s.HasToken || !strings.HasPrefix(s.ProviderWebhook, "created at") {
		t.Fatalf("source %+v", s)
	}
	var hooks []struct {
		Config map[string]string `json:"config"`
	}
	srv.API(t, "GET", "/api/v1/repos/"+srv.User+"/api/hooks", nil, &hooks)
	if len(hooks) != 1 || hooks[0].Config["url"] != s.WebhookURL || !strings.HasPrefix(s.WebhookURL, "https://berth.example.test/hooks/") {
		t.Errorf("hooks at Gitea %+v, want %s", hooks, s.WebhookURL)
	}

	a.call(http.StatusNoContent, "DELETE", "/connections/gitea", nil)
	a.call(http.StatusNotFound, "DELETE", "/connections/gitea", nil)
	if e := a.last("connection.create"); e.Status != http.StatusCreated || strings.Contains(e.Summary, srv.Token) {
		t.Errorf("audit entry %+v", e)
	}
	assertNoSecret(t, a, srv.Token)
}
