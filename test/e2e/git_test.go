package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
	"github.com/berthpaas/berth/internal/testenv/gitserver"
)

// gitEnv is an edge environment whose server trusts a test git host, with
// one git-sourced app routed through the proxy.
type gitEnv struct {
	*edgeEnv
	git      *gitserver.Server
	repo     *gitserver.Repo
	token    string // API token
	ref      string // project/app
	host     string // the app's domain
	hookURL  string // the webhook URL's path on the server
	secret   string // the webhook secret
	appFiles map[string]string
	head     string // the last commit pushed
}

// build is a build as GET /api/v1/builds/{id} answers.
type build struct {
	ID           string `json:"id"`
	Seq          int    `json:"seq"`
	Status       string `json:"status"`
	Commit       string `json:"commit"`
	DeploymentID string `json:"deployment_id"`
	Error        string `json:"error"`
}

func newGitEnv(t *testing.T) *gitEnv {
	git := gitserver.Start(t, gitserver.Options{})
	// The server's process environment carries the CA file; newEdgeEnv and
	// every restart pass os.Environ() on.
	t.Setenv("BERTH_GIT_CA_FILE", git.CAFile)
	t.Setenv("BERTH_GIT_PRIVATE_HOSTS", "true") // the test host is on 127.0.0.1
	g := &gitEnv{edgeEnv: newEdgeEnv(t), git: git, appFiles: fixtureFiles(t, "../fixtures/gitapp")}
	pass := "git-Passphrase-1"
	g.run(pass, "setup", "--server", g.s.URL, "--email", "admin@example.com", "--password-stdin")
	g.run(pass, "login", "--server", g.s.URL, "--email", "admin@example.com", "--password-stdin")
	g.token = strings.TrimSpace(g.run("", "token", "create", "git-e2e", "--expires", "24h"))
	project := fmt.Sprintf("shop%d", time.Now().UnixNano()%1e5)
	g.ref = project + "/api"
	g.host = project + "-api.example.test"
	g.repo = git.NewRepo(t, project+"/api")
	return g
}

// fixtureFiles reads a fixture directory as a commit's files.
func fixtureFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

// commit pushes the fixture with version.txt = version and the Dockerfile
// edited by edit (nil keeps it).
func (g *gitEnv) commit(version string, edit func(dockerfile string) string) (before, after string) {
	g.t.Helper()
	files := map[string]string{"version.txt": version + "\n", "Dockerfile": g.appFiles["Dockerfile"]}
	if edit != nil {
		files["Dockerfile"] = edit(files["Dockerfile"])
	}
	before = g.head
	if before == "" {
		before = strings.Repeat("0", 40)
	}
	g.head = g.repo.Commit(g.t, files, "release "+version)
	return before, g.head
}

// afterVersionCopy inserts a Dockerfile instruction right after the step
// that copies version.txt (so no cached layer skips it).
func afterVersionCopy(instr string) func(string) string {
	return func(d string) string {
		const anchor = "COPY version.txt /src/version.txt\n"
		if !strings.Contains(d, anchor) {
			panic("test/fixtures/gitapp/Dockerfile lost its " + anchor)
		}
		return strings.Replace(d, anchor, anchor+instr+"\n", 1)
	}
}

// push delivers GitHub's push event for before..after, signed with the
// app's secret, and returns the build it queued.
func (g *gitEnv) push(before, after, message string) build {
	g.t.Helper()
	author := map[string]string{"name": gitserver.AuthorName, "email": gitserver.AuthorEmail, "username": "ada"}
	commit := map[string]any{
		"id": after, "tree_id": strings.Repeat("a", 40), "distinct": true, "message": message,
		"timestamp": "2026-01-02T03:04:05Z", "url": g.repo.CloneURL() + "/commit/" + after,
		"author": author, "committer": author, "added": []string{}, "removed": []string{}, "modified": []string{"version.txt"},
	}
	name := strings.TrimSuffix(g.repo.Name, ".git")
	payload, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": before, "after": after, "created": false, "deleted": false, "forced": false,
		"base_ref": nil, "compare": g.repo.CloneURL() + "/compare/" + before[:12] + "..." + after[:12],
		"commits": []any{commit}, "head_commit": commit,
		"repository": map[string]any{
			"id": 1296269, "name": name[strings.LastIndex(name, "/")+1:], "full_name": name, "private": true,
			"html_url": strings.TrimSuffix(g.repo.CloneURL(), ".git"), "clone_url": g.repo.CloneURL(),
			"ssh_url": "git@" + strings.TrimPrefix(g.git.URL, "https://") + ":" + name + ".git", "default_branch": "main",
		},
		"pusher": map[string]string{"name": "ada", "email": gitserver.AuthorEmail},
		"sender": map[string]any{"login": "ada", "id": 1},
	})
	mac := hmac.New(sha256.New, []byte(g.secret))
	mac.Write(payload)
	req, _ := http.NewRequest(http.MethodPost, g.s.URL+g.hookURL, bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/e2e")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("%d-%s", time.Now().UnixNano(), after[:8]))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var answer struct {
		Message string `json:"message"`
		Build   *build `json:"build"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &answer) != nil || answer.Build == nil || answer.Build.ID == "" {
		g.t.Fatalf("webhook delivery: %d %s; want 202 with the queued build", resp.StatusCode, body)
	}
	if answer.Build.Commit != "" && answer.Build.Commit != after {
		g.t.Errorf("webhook queued a build of %s, want %s", answer.Build.Commit, after)
	}
	return *answer.Build
}

func (g *gitEnv) build(id string) build {
	g.t.Helper()
	var b build
	getJSON(g.t, g.s.URL+"/api/v1/builds/"+url.PathEscape(id), g.token, &b)
	return b
}

// awaitBuild waits until build id's status satisfies ok.
func (g *gitEnv) awaitBuild(id string, within time.Duration, ok func(build) bool) build {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b := g.build(id)
		if ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			out, errOut, _ := cli(g.t, g.cfg, "", "build", "logs", id)
			g.t.Fatalf("build %s after %s: %+v\nbuild log:\n%s%s", id, within, b, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ended(b build) bool { return b.Status != "queued" && b.Status != "running" }

// awaitStep waits until a build step running cmd is up (a process on this
// machine: BuildKit runs steps without a container of the engine).
func (g *gitEnv) awaitStep(id, cmd string) {
	g.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for len(testenv.Processes(cmd)) == 0 {
		if b := g.build(id); ended(b) || time.Now().After(deadline) {
			g.t.Fatalf("build %s never ran %q: %+v", id, cmd, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitNoStep waits until no build step runs cmd (the engine kills a
// cancelled build's step).
func (g *gitEnv) awaitNoStep(cmd string, within time.Duration) {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := testenv.Processes(cmd)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			g.t.Errorf("build step processes %v still run %q %s after the build ended", left, cmd, within)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// webhook reads the app's webhook URL and secret from `berth app webhook`.
func (g *gitEnv) webhook() {
	g.t.Helper()
	out := g.run("", "app", "webhook", g.ref, "--output", "json")
	var hook struct {
		Secret     string `json:"secret"`
		WebhookURL string `json:"webhook_url"`
	}
	if err := json.Unmarshal([]byte(out), &hook); err != nil || hook.Secret == "" || !strings.Contains(hook.WebhookURL, "/hooks/") {
		g.t.Fatalf("berth app webhook --output json: %v\n%s", err, out)
	}
	u, err := url.Parse(hook.WebhookURL)
	if err != nil {
		g.t.Fatal(err)
	}
	g.hookURL, g.secret = u.Path, hook.Secret
	// The text form shows the same secret and URL.
	if text := g.run("", "app", "webhook", g.ref); !strings.Contains(text, hook.Secret) || !strings.Contains(text, hook.WebhookURL) {
		g.t.Errorf("berth app webhook does not show the URL and secret:\n%s", text)
	}
}

// answer is what the app's domain answers now, through the proxy.
func (g *gitEnv) answer() string {
	_, body, _ := g.get(g.host, "/")
	return body
}

// removeApp deletes what the test created, with Docker directly when the
// server is gone (cleanups run after the server process is killed): the
// app's services, and its images once no container uses them.
func (g *gitEnv) removeApp(appID string) {
	if appID == "" {
		return
	}
	docker := func(args ...string) []string {
		out, _ := exec.Command("docker", args...).Output()
		return strings.Fields(string(out))
	}
	if ids := docker("service", "ls", "-q", "--filter", "label=berth.app="+appID); len(ids) > 0 {
		docker(append([]string{"service", "rm"}, ids...)...)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if len(docker("ps", "-aq", "--filter", "label=berth.app="+appID)) == 0 {
			break
		}
	}
	if ids := docker("image", "ls", "-q", "--filter", "label=berth.app="+appID); len(ids) > 0 {
		docker(append([]string{"image", "rm", "-f"}, ids...)...)
	}
	if left := docker("image", "ls", "-q", "--filter", "label=berth.app="+appID); len(left) > 0 {
		g.t.Logf("images of the app left on the engine: %v", left)
	}
}

// The git deploys issue's "done when" against the real binary, a real git
// host (git http-backend behind TLS with its own CA), the classic builder and
// the edge proxy: push → webhook → build → deploy → the commit served; a
// deploy from the CLI that reuses the cache; a cancelled build; a build
// whose server is killed; a failing step. The previous release serves
// throughout.
func TestGitDoneWhen(t *testing.T) {
	g := newGitEnv(t)
	project, _, _ := strings.Cut(g.ref, "/")
	g.run("", "project", "create", project)
	g.run("", "app", "create", g.ref, "--git", g.repo.CloneURL(), "--branch", "main", "--dockerfile", "Dockerfile", "--port", "8080")
	appID := g.appID(g.ref)
	t.Cleanup(func() { g.removeApp(appID) })
	g.webhook()
	g.run("", "domain", "add", g.ref, g.host, "--port", "8080", "--https=false")

	// 1. A push: webhook → build → deployment → the commit's content served.
	v1 := fmt.Sprintf("push-1-%d", time.Now().UnixNano())
	before, sha := g.commit(v1, nil)
	pushed := time.Now()
	b1 := g.push(before, sha, "release "+v1)
	b1 = g.awaitBuild(b1.ID, 120*time.Second, ended)
	if b1.Status != "succeeded" || b1.Commit != sha || b1.DeploymentID == "" {
		t.Fatalf("build of the push: %+v; want succeeded for %s with a deployment", b1, sha)
	}
	built := time.Since(pushed)
	g.awaitAnswer(g.host, "hello from "+v1)
	t.Logf("push to live: %s (build ended after %s, cold cache)", time.Since(pushed).Round(time.Millisecond), built.Round(time.Millisecond))
	if list := g.run("", "build", "list", g.ref); !strings.Contains(list, sha[:7]) || !strings.Contains(list, "succeeded") {
		t.Errorf("build list lacks the succeeded build of %s:\n%s", sha[:7], list)
	}
	if show := g.run("", "build", "show", b1.ID); !strings.Contains(show, sha[:7]) || !strings.Contains(show, "succeeded") {
		t.Errorf("build show:\n%s", show)
	}

	// 2. berth app deploy --follow builds the branch head, streams the build
	// log and follows the deployment; the unchanged first step is cached.
	v2 := fmt.Sprintf("deploy-2-%d", time.Now().UnixNano())
	_, sha2 := g.commit(v2, nil)
	began := time.Now()
	out := g.run("", "app", "deploy", g.ref, "--follow")
	t.Logf("berth app deploy --follow: %s (warm cache)", time.Since(began).Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("its output:\n%s", out)
	}
	for _, want := range []string{"[internal] load metadata for", "RUN mkdir -p /out", "version: " + v2, "live"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy --follow output lacks %q:\n%s", want, out)
		}
	}
	if !testenv.BuildStepCached(out, "RUN mkdir -p /out") {
		t.Errorf("deploy --follow output does not show the unchanged step RUN mkdir -p /out cached:\n%s", out)
	}
	if got := g.answer(); !strings.Contains(got, "hello from "+v2) {
		t.Errorf("once deploy --follow of %s returned, the app answered %q", sha2[:7], got)
		g.awaitAnswer(g.host, "hello from "+v2)
	}

	// 3. Cancel a running build: it ends cancelled within seconds, its step
	// is stopped, the previous release keeps serving.
	sleep := fmt.Sprintf("sleep 120.%d", time.Now().UnixNano()%1e6)
	before, sha = g.commit(fmt.Sprintf("cancel-3-%d", time.Now().UnixNano()), afterVersionCopy("RUN "+sleep))
	b3 := g.push(before, sha, "slow build")
	g.awaitStep(b3.ID, sleep)
	began = time.Now()
	g.run("", "build", "cancel", b3.ID)
	b3 = g.awaitBuild(b3.ID, 10*time.Second, ended)
	t.Logf("cancel → %s in %s", b3.Status, time.Since(began).Round(time.Millisecond))
	if b3.Status != "cancelled" {
		t.Errorf("cancelled build: %+v", b3)
	}
	g.awaitNoStep(sleep, 10*time.Second)
	if testing.Verbose() {
		t.Logf("the cancelled build: %+v; its log:\n%s", b3, g.run("", "build", "logs", b3.ID))
	}
	if got := g.answer(); !strings.Contains(got, "hello from "+v2) {
		t.Errorf("after the cancelled build the app answers %q, want %s", got, v2)
	}

	// 4. kill -9 of the server while a build runs: after the restart the
	// build ends (failed, or retried to the end), never stays running.
	before, sha = g.commit(fmt.Sprintf("killed-4-%d", time.Now().UnixNano()), afterVersionCopy("RUN "+sleep))
	b4 := g.push(before, sha, "build the server dies in")
	g.awaitStep(b4.ID, sleep)
	g.s.cmd.Process.Kill()
	<-g.s.done
	g.s = startServerAt(t, "127.0.0.1", g.port, g.env...)
	began = time.Now()
	b4 = g.awaitBuild(b4.ID, 90*time.Second, ended)
	t.Logf("build of a killed server: %s %q, %s after the restart", b4.Status, b4.Error, time.Since(began).Round(time.Millisecond))
	if b4.Status == "cancelled" {
		t.Errorf("a build the server died in ended %q: %+v; want failed (or retried)", b4.Status, b4)
	}
	g.awaitNoStep(sleep, 15*time.Second)
	if got := g.answer(); b4.Status != "succeeded" && !strings.Contains(got, "hello from "+v2) {
		t.Errorf("after the killed build the app answers %q, want %s", got, v2)
	}

	// 5. A failing step: the build fails naming the step, nothing deploys.
	before, sha = g.commit(fmt.Sprintf("fails-5-%d", time.Now().UnixNano()), afterVersionCopy("RUN false"))
	b5 := g.awaitBuild(g.push(before, sha, "broken build").ID, 60*time.Second, ended)
	if b5.Status != "failed" || !strings.Contains(b5.Error, "RUN false") {
		t.Errorf("failing build: %+v; want failed naming the step RUN false", b5)
	}
	if logs := g.run("", "build", "logs", b5.ID); !strings.Contains(logs, "RUN false") {
		t.Errorf("build logs of the failed build lack the step:\n%s", logs)
	}
	time.Sleep(2 * time.Second) // a deployment, were one queued, would have started
	if got := g.answer(); !strings.Contains(got, "hello from "+v2) {
		t.Errorf("after the failed build the app answers %q, want %s", got, v2)
	}

	// Clean up while the server runs.
	g.run("", "app", "delete", g.ref, "--yes")
	g.run("", "project", "delete", project)
}
