package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/testenv/gitea"
)

// berth connection against a real Gitea: a refused token fails in Gitea's
// words and stores nothing; a connection lists its repositories and their
// branches; berth app create --connection --repo makes an app whose webhook
// Gitea then has; the token never appears in any output.
func TestConnectionCommands(t *testing.T) {
	gt := gitea.Start(t)
	srv := newBuildServerWith(t, deploy.BuildConfig{GitCAFile: gt.CAFile})
	gt.CreateRepo(t, "api", map[string]string{"Dockerfile": "FROM scratch\n"})
	gt.Branch(t, "api", "staging")
	const wrongToken = "0123456789abcdef0123456789abcdef01234567"
	repo := gt.User + "/api"

	// Every output is kept, to look for the tokens in at the end.
	var outputs []string
	keep := func(r result) result {
		outputs = append(outputs, r.stdout, r.stderr)
		if r.err != nil {
			outputs = append(outputs, r.err.Error())
		}
		return r
	}
	ok := func(stdin string, args ...string) result {
		t.Helper()
		return keep(mustRun(t, stdin, args...))
	}
	fail := func(want, stdin string, args ...string) result {
		t.Helper()
		return keep(mustFail(t, want, stdin, args...))
	}

	r := fail("the token was refused (401)", wrongToken+"\n", "connection", "add", "gitea", "--url", gt.URL, "--token-stdin")
	if !strings.HasPrefix(r.err.Error(), "token ") {
		t.Errorf("a refused token does not name the field: %v", r.err)
	}
	fail("--token-stdin", "", "connection", "add", "gitea", "--url", gt.URL, "--token-stdin") // stdin is empty
	fail("pass the access token on stdin with --token-stdin", gt.Token+"\n", "connection", "add", "gitea", "--url", gt.URL)
	fail(`"url" not set`, gt.Token+"\n", "connection", "add", "gitea", "--token-stdin")
	fail("provider", gt.Token+"\n", "connection", "add", "gh", "--provider", "github", "--url", "https://github.com", "--token-stdin")
	if r := ok("", "connection", "list"); strings.TrimSpace(r.stdout) != "NAME  PROVIDER  SERVER  ACCOUNT  CREATED" {
		t.Fatalf("refused connections were stored:\n%s", r.stdout)
	}

	r = ok(gt.Token+"\n", "connection", "add", "gitea", "--url", gt.URL, "--token-stdin")
	for _, want := range []string{"Connected gitea as " + gt.User + " at " + gt.URL + ".", "berth connection repos gitea", "berth app create PROJECT/APP --connection gitea --repo OWNER/NAME"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("add lacks %q:\n%s", want, r.stdout)
		}
	}
	fail("already has a connection named", gt.Token+"\n", "connection", "add", "gitea", "--url", gt.URL, "--token-stdin")

	r = ok("", "connection", "list")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || strings.Join(strings.Fields(lines[1])[:4], " ") != "gitea gitea "+gt.URL+" "+gt.User {
		t.Errorf("list:\n%s", r.stdout)
	}
	var list api.ConnectionList
	if err := json.Unmarshal([]byte(ok("", "connection", "list", "-o", "json").stdout), &list); err != nil || len(list.Connections) != 1 || list.Connections[0].Account != gt.User {
		t.Errorf("list -o json: %+v, %v", list, err)
	}

	r = ok("", "connection", "repos", "gitea")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "FULL NAME") || strings.Join(strings.Fields(lines[1]), " ") != repo+" main false" {
		t.Errorf("repos:\n%s", r.stdout)
	}
	var repos api.ConnectionRepoList
	if err := json.Unmarshal([]byte(ok("", "connection", "repos", "gitea", "-o", "json").stdout), &repos); err != nil || len(repos.Repos) != 1 || repos.Repos[0].FullName != repo {
		t.Errorf("repos -o json: %+v, %v", repos, err)
	}
	fail("connection nope not found", "", "connection", "repos", "nope")

	if r = ok("", "connection", "branches", "gitea", repo); r.stdout != "main\nstaging\n" {
		t.Errorf("branches %q", r.stdout)
	}
	var branches api.BranchList
	if err := json.Unmarshal([]byte(ok("", "connection", "branches", "gitea", repo, "-o", "json").stdout), &branches); err != nil || strings.Join(branches.Branches, ",") != "main,staging" {
		t.Errorf("branches -o json: %+v, %v", branches, err)
	}
	r = fail("repository "+gt.User+"/nope not found", "", "connection", "branches", "gitea", gt.User+"/nope")
	if !strings.Contains(r.err.Error(), "berth connection repos gitea") {
		t.Errorf("an unknown repository lacks the hint: %v", r.err)
	}
	fail("connection nope not found", "", "connection", "branches", "nope", repo)
	fail("write OWNER/REPO", "", "connection", "branches", "gitea", "api")

	ok("", "project", "create", "shop")
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--connection needs --repo OWNER/NAME", []string{"--connection", "gitea"}},
		{"--repo needs --connection NAME", []string{"--repo", repo}},
		{"--git and --connection/--repo", []string{"--connection", "gitea", "--repo", repo, "--git", "https://git.example.com/a.git"}},
		{"--git and --connection/--repo", []string{"--repo", repo, "--git", "https://git.example.com/a.git"}},
		{"--connection and --image", []string{"--connection", "gitea", "--repo", repo, "--image", "nginx:1.27"}},
		{"--branch is for apps built from git: add --git URL, or --connection NAME --repo OWNER/NAME", []string{"--image", "nginx:1.27", "--branch", "main"}},
		{"git.connection", []string{"--connection", "nope", "--repo", repo}},
	} {
		fail(c.want, "", append([]string{"app", "create", "shop/bad"}, c.args...)...)
	}

	r = ok("", "app", "create", "shop/api", "--connection", "gitea", "--repo", repo, "--branch", "staging", "--dockerfile", "Dockerfile", "--port", "8080")
	for _, want := range []string{"Created app shop/api", "(branch staging)", "Webhook URL: " + srv.url + "/hooks/", "Webhook at the provider: created at " + gt.URL + "/" + repo + "; pushes build and deploy from now on"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("create lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "secret and setup") {
		t.Errorf("create asks to set up the webhook that was created at the provider:\n%s", r.stdout)
	}
	s := appStatus(t, "shop/api").App.Source
	if s == nil || s.Kind != "gitea" || s.Repo != repo || s.BaseURL != gt.URL || s.Branch != "staging" || !s.HasToken {
		t.Fatalf("source %+v", s)
	}
	var hooks []struct {
		Active bool `json:"active"`
		Config struct {
			URL string `json:"url"`
		} `json:"config"`
	}
	gt.API(t, http.MethodGet, "/api/v1/repos/"+repo+"/hooks", nil, &hooks)
	if len(hooks) != 1 || !hooks[0].Active || hooks[0].Config.URL != s.WebhookURL {
		t.Errorf("hooks at Gitea %+v, want one to %s", hooks, s.WebhookURL)
	}
	// --git-token-stdin gives the app a token of its own instead.
	ok(gt.CreateToken(t, "shop-web", "read:repository")+"\n", "app", "create", "shop/web", "--connection", "gitea", "--repo", repo, "--git-token-stdin")
	ok("", "app", "status", "shop/api", "-o", "json")
	ok("", "app", "source", "shop/api")

	r = ok("", "connection", "remove", "gitea")
	if strings.TrimSpace(r.stdout) != "Removed connection gitea" {
		t.Errorf("remove %q", r.stdout)
	}
	if r := ok("", "connection", "list"); strings.Contains(r.stdout, "gitea") {
		t.Errorf("after remove:\n%s", r.stdout)
	}
	fail("connection gitea not found", "", "connection", "remove", "gitea")
	if s := appStatus(t, "shop/api").App.Source; s == nil || !s.HasToken {
		t.Errorf("the app lost its token with the connection: %+v", s)
	}

	for _, out := range outputs {
		for _, tok := range []string{gt.Token, wrongToken} {
			if strings.Contains(out, tok) {
				t.Fatalf("a token is shown:\n%s", out)
			}
		}
	}
}
