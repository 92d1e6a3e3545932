package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/forge"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv/gitea"
)

// An app made from a Gitea connection, against a real Gitea: the token is
// checked when the connection is made, repositories and branches are
// listed through it, creating the app sets its webhook up at Gitea, and
// the build reports its commit statuses there, ending in success once the
// deployment is live.
func TestGitConnectionGitea(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	srv := gitea.Start(t)
	ctx := context.Background()
	// Both test servers' CAs, as --git-ca-file.
	caFile := filepath.Join(t.TempDir(), "cas.pem")
	var cas []byte
	for _, f := range []string{g.mgr.builds.GitCAFile, srv.CAFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, b...)
	}
	if err := os.WriteFile(caFile, cas, 0o600); err != nil {
		t.Fatal(err)
	}
	g.mgr.builds.GitCAFile, g.mgr.builds.PublicURL = caFile, "https://berth.example.test"
	srv.CreateRepo(t, "shop", map[string]string{"Dockerfile": dockerfile("gitea", "")})
	srv.Branch(t, "shop", "staging")

	for field, in := range map[string]ConnectionInput{
		"token":    {Name: "gitea", Provider: "gitea", BaseURL: srv.URL, Token: "0123456789abcdef0123456789abcdef01234567"},
		"name":     {Name: "Bad Name", Provider: "gitea", BaseURL: srv.URL, Token: srv.Token},
		"provider": {Name: "gh", Provider: "github", BaseURL: srv.URL, Token: srv.Token},
		"base_url": {Name: "gitea", Provider: "gitea", BaseURL: "ftp://git.example.test", Token: srv.Token},
	} {
		_, err := g.mgr.CreateConnection(ctx, g.p, in)
		var fe *app.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v, want a FieldError on %s", field, err, field)
		} else if strings.Contains(fe.Message, srv.Token) {
			t.Errorf("%s: the message shows the token: %s", field, fe.Message)
		}
	}
	viewer := g.p
	viewer.Role = authz.Viewer
	if _, err := g.mgr.CreateConnection(ctx, viewer, ConnectionInput{Name: "gitea", Provider: "gitea", BaseURL: srv.URL, Token: srv.Token}); !errors.Is(err, ErrForbidden) {
		t.Errorf("a viewer made a connection: %v", err)
	}
	c, err := g.mgr.CreateConnection(ctx, g.p, ConnectionInput{Name: "gitea", Provider: "gitea", BaseURL: srv.URL + "/", Token: srv.Token})
	if err != nil {
		t.Fatal(err)
	}
	if c.Account != srv.User || c.BaseURL != srv.URL {
		t.Errorf("connection %+v, want account %s at %s", c, srv.User, srv.URL)
	}
	if _, err := g.mgr.CreateConnection(ctx, g.p, ConnectionInput{Name: "gitea", Provider: "gitea", BaseURL: srv.URL, Token: srv.Token}); err == nil {
		t.Error("a second connection with the same name was made")
	}
	repos, err := g.mgr.ConnectionRepos(ctx, viewer, "gitea")
	if err != nil || !slices.ContainsFunc(repos, func(r forge.Repo) bool { return r.FullName == srv.User+"/shop" }) {
		t.Errorf("repos %+v, %v; want %s/shop", repos, err, srv.User)
	}
	branches, err := g.mgr.ConnectionBranches(ctx, g.p, "gitea", srv.User+"/shop")
	if slices.Sort(branches); err != nil || strings.Join(branches, ",") != "main,staging" {
		t.Errorf("branches %v, %v", branches, err)
	}

	// The repository is checked with the provider; without a branch, its
	// default branch is built.
	_, _, err = g.mgr.CreateGitApp(ctx, g.p, CreateAppInput{Ref: AppRef{Project: g.ref.Project, Name: "typo"}, Spec: app.DefaultSpec()},
		GitInput{Connection: "gitea", Source: gitsrc.Source{Variant: &gitsrc.Gitea{Repo: srv.User + "/shpo"}}})
	var fe *app.FieldError
	if !errors.As(err, &fe) || fe.Field != "git.repo" || !strings.Contains(fe.Message, "not found") {
		t.Errorf("a repository the account cannot read: %v, want a git.repo error", err)
	}
	srv.API(t, "PATCH", "/api/v1/repos/"+srv.User+"/shop", map[string]string{"default_branch": "staging"}, nil)
	_, staging, err := g.mgr.CreateGitApp(ctx, g.p, CreateAppInput{Ref: AppRef{Project: g.ref.Project, Name: "staging"}, Spec: app.DefaultSpec()},
		GitInput{Connection: "gitea", Source: gitsrc.Source{Variant: &gitsrc.Gitea{Repo: srv.User + "/shop"}}})
	if err != nil || staging.Branch != "staging" || strings.Join(staging.Filter.Branches, ",") != "staging" {
		t.Errorf("an app without a branch: %+v, %v; want the default branch staging", staging, err)
	}
	srv.API(t, "PATCH", "/api/v1/repos/"+srv.User+"/shop", map[string]string{"default_branch": "main"}, nil)

	ref := AppRef{Project: g.ref.Project, Name: "shop"}
	spec := app.DefaultSpec()
	spec.Port = 8080
	spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second)}
	_, src, err := g.mgr.CreateGitApp(ctx, g.p, CreateAppInput{Ref: ref, Spec: spec}, GitInput{
		Connection: "gitea", Source: gitsrc.Source{Variant: &gitsrc.Gitea{Repo: srv.User + "/shop"}}, Branch: "main",
		WebhookBase: "https://berth.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if !src.HasToken || !strings.HasPrefix(src.ProviderWebhook, "created at ") || src.Provider != "gitea" {
		t.Errorf("source %+v", src)
	}
	var hooks []struct {
		Config map[string]string `json:"config"`
	}
	srv.API(t, "GET", "/api/v1/repos/"+srv.User+"/shop/hooks", nil, &hooks)
	if len(hooks) != 1 || hooks[0].Config["url"] != "https://berth.example.test"+WebhookPath(src.WebhookID) {
		t.Errorf("hooks at Gitea: %+v", hooks)
	}

	b, err := g.mgr.StartBuild(ctx, g.p, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	b = g.waitBuild(b, store.BuildSucceeded)
	d, err := g.db.Deployment(ctx, b.OrganizationID, b.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	g.wait(d, store.DeployLive)
	// The last status goes out after the build or deployment is recorded.
	statuses := func(commit, want string) []giteaStatus {
		var got []giteaStatus
		deadline := time.Now().Add(10 * time.Second)
		for {
			srv.API(t, "GET", "/api/v1/repos/"+srv.User+"/shop/commits/"+commit+"/statuses", nil, &got)
			if slices.ContainsFunc(got, func(s giteaStatus) bool { return s.Status == want }) || time.Now().After(deadline) {
				return got
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	got := statuses(b.Commit, "success")
	var states []string
	for _, s := range got {
		states = append(states, s.Status)
		if s.Context != StatusContext || !strings.HasPrefix(s.TargetURL, "https://berth.example.test/projects/"+g.ref.Project+"/apps/shop/builds/"+b.ID) {
			t.Errorf("status %+v", s)
		}
	}
	if !slices.Contains(states, "pending") || !slices.Contains(states, "success") {
		t.Errorf("statuses of %s at Gitea: %v, want pending and success", b.Commit[:12], states)
	}

	// A commit that does not build ends in a failure status with the reason.
	work := t.TempDir()
	srv.Git(t, work, "clone", "--quiet", srv.URL+"/"+srv.User+"/shop.git", ".")
	if err := os.WriteFile(filepath.Join(work, "Dockerfile"), []byte("FROM berth-fixture/debian:bookworm\nRUN exit 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Git(t, work, "commit", "--quiet", "-am", "break the build")
	srv.Git(t, work, "push", "--quiet", "origin", "HEAD:main")
	broken, err := g.mgr.StartBuild(ctx, g.p, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	broken = g.waitBuild(broken, store.BuildFailed)
	// Statuses of one second come back in no fixed order.
	got = statuses(broken.Commit, "failure")
	if !slices.ContainsFunc(got, func(s giteaStatus) bool {
		return s.Status == "failure" && strings.Contains(s.Description, "Build failed")
	}) {
		t.Errorf("statuses of the broken commit: %+v, want a failure saying the build failed", got)
	}

	// Deleting the connection leaves the app building with its own token.
	if err := g.mgr.DeleteConnection(ctx, g.p, "gitea"); err != nil {
		t.Fatal(err)
	}
	if cs, _ := g.mgr.Connections(ctx, g.p); len(cs) != 0 {
		t.Errorf("connections after delete: %+v", cs)
	}
	if s, err := g.db.AppSource(ctx, g.p.Organization.ID, d.AppID); err != nil || s.ConnectionID != "" || s.SealedToken == "" {
		t.Errorf("source after the connection's deletion: %+v, %v", s, err)
	}
}

// giteaStatus is a commit status as Gitea's API shows it.
type giteaStatus struct {
	Status      string `json:"status"`
	TargetURL   string `json:"target_url"`
	Description string `json:"description"`
	Context     string `json:"context"`
}
