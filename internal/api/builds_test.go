package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/testenv"
)

// newBuildEnv is newAPIEnv on the database at databaseURL ("" is SQLite).
func newBuildEnv(t *testing.T, databaseURL string) *auditEnv { return newAPIEnv(t, databaseURL, "") }

// eachDatabase runs f against SQLite and PostgreSQL (skipped, or failed
// under CI, when PostgreSQL is not available).
func eachDatabase(t *testing.T, f func(t *testing.T, a *auditEnv)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newBuildEnv(t, "")) })
	t.Run("postgres", func(t *testing.T) { f(t, newBuildEnv(t, testenv.Postgres(t))) })
}

func gitApp(git map[string]any) map[string]any {
	return map[string]any{"name": "api", "spec": map[string]any{"port": 8080}, "git": git}
}

func TestGitAppRejectsBadInput(t *testing.T) {
	a := newBuildEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	const repo = "https://git.example.com/shop/api.git"
	tests := []struct {
		name     string
		body     map[string]any
		location string
		mention  string
	}{
		{"file URL", gitApp(map[string]any{"url": "file:///srv/git/api.git"}), "body.git.url", ""},
		{"ext transport", gitApp(map[string]any{"url": "ext::sh -c touch% /tmp/pwned"}), "body.git.url", ""},
		{"local path", gitApp(map[string]any{"url": "/srv/git/api.git"}), "body.git.url", ""},
		{"relative local path", gitApp(map[string]any{"url": "../api"}), "body.git.url", ""},
		{"option as URL", gitApp(map[string]any{"url": "--upload-pack=touch /tmp/pwned"}), "body.git.url", ""},
		{"branch starting with -", gitApp(map[string]any{"url": repo, "branch": "-delete"}), "body.git.branch", ""},
		{"branch with ..", gitApp(map[string]any{"url": repo, "branch": "main..dev"}), "body.git.branch", ""},
		{"dockerfile escaping", gitApp(map[string]any{"url": repo, "dockerfile": "../x"}), "body.git.dockerfile", ""},
		{"dockerfile absolute", gitApp(map[string]any{"url": repo, "dockerfile": "/etc/passwd"}), "body.git.dockerfile", ""},
		{"context escaping", gitApp(map[string]any{"url": repo, "context": "../x"}), "body.git.context", ""},
		{"context absolute", gitApp(map[string]any{"url": repo, "context": "/abs"}), "body.git.context", ""},
		{"no repository", gitApp(map[string]any{"branch": "main"}), "body.git.url", "required"},
		{"url and provider", gitApp(map[string]any{"url": repo, "provider": "github", "repo": "acme/api"}), "body.git.url", "give one"},
		{"repo without provider", gitApp(map[string]any{"repo": "acme/api"}), "body.git.provider", "required"},
		{"unknown provider", gitApp(map[string]any{"provider": "sourceforge", "repo": "acme/api"}), "body.git.provider", ""},
		{"bad repo", gitApp(map[string]any{"provider": "github", "repo": "acme/api/extra"}), "body.git.repo", "owner/name"},
		{"build arg name", gitApp(map[string]any{"url": repo, "build_args": map[string]string{"1X": "y"}}), "body.git.build_args", "1X"},
		{"build secret name", gitApp(map[string]any{"url": repo, "build_secrets": []string{"NPM_TOKEN", "NPM-TOKEN"}}), "body.git.build_secrets", "NPM-TOKEN"},
		{"build secret twice", gitApp(map[string]any{"url": repo, "build_secrets": []string{"NPM_TOKEN", "NPM_TOKEN"}}), "body.git.build_secrets", "NPM_TOKEN twice"},
		{"too many build secrets", gitApp(map[string]any{"url": repo, "build_secrets": manyNames(33)}), "body.git.build_secrets", ""},
		{"watch path", gitApp(map[string]any{"url": repo, "filter": map[string]any{"branches": []string{"main"}, "watch_paths": []string{"src/[a"}}}), "body.git.filter.watch_paths[0]", ""},
		{"image and git", map[string]any{"name": "api", "spec": map[string]any{"image": "nginx:1.27"}, "git": map[string]any{"url": repo}}, "body.spec.image", "git"},
		{"neither image nor git", map[string]any{"name": "api", "spec": map[string]any{"port": 80}}, "body.spec.image", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := *a.appEnv
			e := *a.env
			e.t = t
			b.env = &e
			fieldError(t, b.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps", tt.body), tt.location, tt.mention)
		})
	}
	var list api.AppList
	a.call(http.StatusOK, "GET", "/projects/shop/apps", nil).json(t, &list)
	if len(list.Apps) != 0 {
		t.Errorf("invalid requests created apps: %+v", list.Apps)
	}
}

// hook delivers a webhook as GitHub would, signed with secret ("" leaves
// the signature out).
func (a *auditEnv) hook(url, event, delivery, secret string, body []byte) response {
	a.t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/a1b2c3")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-GitHub-Hook-ID", "512345678")
	if secret != "" {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	out := response{status: res.StatusCode, header: res.Header, body: b.Bytes()}
	if res.StatusCode >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
		a.t.Errorf("webhook answered %d with %q: %s", res.StatusCode, res.Header.Get("Content-Type"), out.body)
	}
	return out
}

func (a *auditEnv) builds(app string) []api.Build {
	a.t.Helper()
	var list api.BuildList
	a.call(http.StatusOK, "GET", "/projects/shop/apps/"+app+"/builds", nil).json(a.t, &list)
	return list.Builds
}

func githubFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGitAppSourceWebhookAndBuilds(t *testing.T) {
	eachDatabase(t, func(t *testing.T, a *auditEnv) {
		const token = "ghp_planted0token0that0must0never0show"
		a.remember(token)
		a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
		a.createApp("shop", "web", nil) // an image app

		res := a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{
			"provider": "github", "repo": "acme/api", "branch": "main", "token": token,
			"dockerfile": "build/Dockerfile", "context": ".", "build_args": map[string]string{"GO_VERSION": "1.26"},
		}))
		var created api.App
		res.json(t, &created)
		src := created.Source
		if src == nil || src.Kind != "github" || src.CloneURL != "https://github.com/acme/api.git" || src.Repo != "acme/api" || src.Branch != "main" ||
			!src.HasToken || src.Provider != "github" || src.Dockerfile != "build/Dockerfile" || src.BuildArgs["GO_VERSION"] != "1.26" ||
			len(src.Filter.Branches) != 1 || src.Filter.Branches[0] != "main" || !strings.HasPrefix(src.WebhookURL, a.srv.URL+"/hooks/") {
			t.Fatalf("created source %+v", src)
		}
		if created.Spec.Image == "" || created.Spec.Port != 8080 {
			t.Errorf("created spec %+v", created.Spec)
		}

		var secret api.WebhookSecret
		a.call(http.StatusOK, "POST", "/projects/shop/apps/api/source/webhook-secret", nil).json(t, &secret)
		a.remember(secret.Secret)
		if len(secret.Secret) < 32 || secret.WebhookURL != src.WebhookURL || secret.Provider != "github" || secret.SignatureHeader != "X-Hub-Signature-256" {
			t.Fatalf("revealed %+v", secret)
		}
		r := a.last("webhook-secret.reveal")
		if r.Target != "project=shop environment=production app=api" || r.Status != http.StatusOK || r.ActorLabel != ownerEmail {
			t.Errorf("reveal entry %+v", r)
		}
		if n := strings.Count(entriesJSON(a), "webhook-secret"); n != 1 {
			t.Errorf("%d reveal entries, want exactly 1", n)
		}

		// Reads show the source, never the token or the secret.
		var st api.AppStatus
		res = a.call(http.StatusOK, "GET", "/projects/shop/apps/api", nil)
		res.json(t, &st)
		if st.App.Source == nil || st.App.Source.WebhookURL != src.WebhookURL {
			t.Errorf("app status source %+v", st.App.Source)
		}
		for _, body := range [][]byte{res.body, a.call(http.StatusOK, "GET", "/projects/shop/apps/api/source", nil).body, a.call(http.StatusOK, "GET", "/projects/shop/apps", nil).body} {
			if bytes.Contains(body, []byte(token)) || bytes.Contains(body, []byte(secret.Secret)) {
				t.Errorf("a read shows the token or the secret: %s", body)
			}
		}
		st = api.AppStatus{}
		a.call(http.StatusOK, "GET", "/projects/shop/apps/web", nil).json(t, &st)
		if st.App.Source != nil {
			t.Errorf("image app has a source: %+v", st.App.Source)
		}
		a.call(http.StatusNotFound, "GET", "/projects/shop/apps/web/source", nil)
		a.call(http.StatusNotFound, "POST", "/projects/shop/apps/web/source/webhook-secret", nil)

		// Deliveries.
		hook := src.WebhookURL
		push := githubFixture(t, "push.json")
		const head = "9049f1265b7d61be4a8904a9a27120d2064dab3b"
		a.hook(hook, "push", "d-unsigned", "", push).expectStatus(t, http.StatusUnauthorized)
		res = a.hook(hook, "push", "d-forged", "not-the-secret", push)
		res.expectStatus(t, http.StatusUnauthorized)
		if bytes.Contains(res.body, []byte(secret.Secret)) {
			t.Errorf("401 shows the secret: %s", res.body)
		}
		if bs := a.builds("api"); len(bs) != 0 {
			t.Fatalf("unauthenticated deliveries queued %+v", bs)
		}
		a.hook(a.srv.URL+"/hooks/no-such-hook", "push", "d-x", secret.Secret, push).expectStatus(t, http.StatusNotFound)
		a.hook(hook, "push", "d-huge", secret.Secret, bytes.Repeat([]byte(" "), 25<<20+1)).expectStatus(t, http.StatusRequestEntityTooLarge)
		a.hook(hook, "push", "d-malformed", secret.Secret, []byte(`{"ref": "refs/heads/main", "after":`)).expectStatus(t, http.StatusBadRequest)
		a.hook(hook, "ping", "d-ping", secret.Secret, githubFixture(t, "ping.json")).expectStatus(t, http.StatusOK)
		other := bytes.Replace(push, []byte(`"ref": "refs/heads/main"`), []byte(`"ref": "refs/heads/feature/x"`), 1)
		res = a.hook(hook, "push", "d-other-branch", secret.Secret, other)
		res.expectStatus(t, http.StatusOK)
		var ans api.WebhookAnswer
		res.json(t, &ans)
		if ans.Build != nil || !strings.Contains(ans.Message, "feature/x") {
			t.Errorf("push to another branch: %+v", ans)
		}
		if bs := a.builds("api"); len(bs) != 0 {
			t.Fatalf("ignored deliveries queued %+v", bs)
		}

		res = a.hook(hook, "push", "d-push-1", secret.Secret, push)
		res.expectStatus(t, http.StatusAccepted)
		res.json(t, &ans)
		if ans.Build == nil || ans.Build.Commit != head || ans.Build.Status != "queued" || ans.Build.Seq != 1 {
			t.Fatalf("push answer %+v", ans)
		}
		a.hook(hook, "push", "d-push-1", secret.Secret, push).expectStatus(t, http.StatusOK) // redelivered
		bs := a.builds("api")
		if len(bs) != 1 || bs[0].Commit != head || bs[0].Trigger != "push" || bs[0].Status != "queued" || bs[0].Ref != "refs/heads/main" ||
			bs[0].App != (api.BuildApp{Project: "shop", Environment: "production", Name: "api"}) {
			t.Fatalf("builds after the push and its replay %+v", bs)
		}
		pushed := bs[0]

		// A deploy of a git app builds; the newest build wins.
		a.call(http.StatusConflict, "POST", "/projects/shop/apps/api/deploy", nil)
		a.call(http.StatusConflict, "POST", "/projects/shop/apps/web/builds", nil)
		fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps/api/builds", map[string]string{"commit": "HEAD~1"}), "body.commit", "commit id")
		var manual api.Build
		a.call(http.StatusAccepted, "POST", "/projects/shop/apps/api/builds", nil).json(t, &manual)
		if manual.Seq != 2 || manual.Status != "queued" || manual.Trigger != "manual" || manual.CreatedBy != ownerEmail || manual.DeploymentID == "" {
			t.Errorf("manual build %+v", manual)
		}
		var got api.Build
		a.call(http.StatusOK, "GET", "/builds/"+pushed.ID, nil).json(t, &got)
		if got.Status != "cancelled" || !strings.Contains(got.Error, "superseded by build #2") || got.App.Name != "api" {
			t.Errorf("the superseded build %+v", got)
		}
		var queue api.BuildQueue
		a.call(http.StatusOK, "GET", "/builds", nil).json(t, &queue)
		if len(queue.Builds) != 1 || queue.Builds[0].ID != manual.ID || queue.Builds[0].App.Project != "shop" {
			t.Errorf("queue %+v", queue)
		}

		// Output: a page, and a stream that follows it to the end.
		var page api.BuildLogPage
		a.call(http.StatusOK, "GET", "/builds/"+manual.ID+"/log", nil).json(t, &page)
		if len(page.Lines) != 0 || page.Ended || page.Status != "queued" {
			t.Errorf("log of a queued build %+v", page)
		}
		ctx := context.Background()
		if err := a.db.AppendBuildLog(ctx, time.Now(), manual.ID, []string{"Fetching 9049f12", "Step 1/4 : FROM golang:1.26"}); err != nil {
			t.Fatal(err)
		}
		_, events := a.stream("/builds/" + manual.ID + "/log/stream?after=1")
		if ev := next(t, events); ev.name != "line" || !strings.Contains(ev.data, "Step 1/4") || !strings.Contains(ev.data, `"seq":2`) {
			t.Errorf("first event %+v", ev)
		}
		if ev := next(t, events); ev.name != "status" || !strings.Contains(ev.data, `"queued"`) {
			t.Errorf("second event %+v", ev)
		}
		if err := a.db.AppendBuildLog(ctx, time.Now(), manual.ID, []string{"Successfully built"}); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events); ev.name != "line" || !strings.Contains(ev.data, "Successfully built") {
			t.Errorf("live line %+v", ev)
		}
		a.call(http.StatusOK, "POST", "/builds/"+manual.ID+"/cancel", nil).json(t, &got)
		if got.Status != "cancelled" || !strings.Contains(got.Error, ownerEmail) || got.FinishedAt == nil {
			t.Errorf("cancelled build %+v", got)
		}
		if ev := next(t, events); ev.name != "end" || !strings.Contains(ev.data, `"cancelled"`) {
			t.Errorf("last event %+v", ev)
		}
		if ev, ok := <-events; ok {
			t.Errorf("the stream went on after its end: %+v", ev)
		}
		a.call(http.StatusConflict, "POST", "/builds/"+manual.ID+"/cancel", nil)
		a.call(http.StatusOK, "GET", "/builds/"+manual.ID+"/log?after=1&limit=1", nil).json(t, &page)
		if len(page.Lines) != 1 || page.Next != 2 || page.Ended {
			t.Errorf("a page with more to come %+v", page)
		}
		a.call(http.StatusOK, "GET", "/builds/"+manual.ID+"/log?after=2", nil).json(t, &page)
		if len(page.Lines) != 1 || page.Next != 3 || !page.Ended || page.Status != "cancelled" {
			t.Errorf("the last page %+v", page)
		}
		a.call(http.StatusOK, "GET", "/builds", nil).json(t, &queue)
		if len(queue.Builds) != 0 {
			t.Errorf("queue after cancelling %+v", queue)
		}
		a.call(http.StatusNotFound, "GET", "/builds/bld_nope", nil)
		a.call(http.StatusNotFound, "GET", "/builds/bld_nope/log/stream", nil)

		assertNoSecret(t, a, token, secret.Secret)

		// Another organization sees none of it.
		rival := a.secondOrganizationIn(t)
		for _, c := range []struct{ method, path string }{
			{"GET", "/builds/" + manual.ID},
			{"POST", "/builds/" + pushed.ID + "/cancel"},
			{"GET", "/builds/" + manual.ID + "/log"},
			{"GET", "/builds/" + manual.ID + "/log/stream"},
			{"GET", "/projects/shop/apps/api/builds"},
			{"POST", "/projects/shop/apps/api/builds"},
			{"GET", "/projects/shop/apps/api/source"},
			{"POST", "/projects/shop/apps/api/source/webhook-secret"},
		} {
			a.expect(http.StatusNotFound, request{method: c.method, path: "/api/v1" + c.path, bearer: rival})
		}
		a.expect(http.StatusOK, request{method: "GET", path: "/api/v1/builds", bearer: rival}).json(t, &queue)
		if len(queue.Builds) != 0 {
			t.Errorf("rival's queue %+v", queue)
		}

		if logs := a.logs.String(); !strings.Contains(logs, "webhook delivery queued a build") || !strings.Contains(logs, "webhook secret revealed") {
			t.Errorf("log lacks the delivery or the reveal:\n%s", logs)
		}
	})
}

func (r response) expectStatus(t *testing.T, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
}

func entriesJSON(a *auditEnv) string {
	b, _ := json.Marshal(a.entries())
	return string(b)
}

// secondOrganizationIn adds another organization with its owner through
// setup, after clearing setup's once-only marker with the store's own
// connection (SQLite or PostgreSQL).
func (a *auditEnv) secondOrganizationIn(t *testing.T) string {
	t.Helper()
	if _, err := a.db.SQL().Exec(`DELETE FROM settings WHERE key = 'setup.completed_at'`); err != nil {
		t.Fatal(err)
	}
	const email = "eve@example.com"
	a.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/setup",
		body: map[string]string{"email": email, "password": ownerPassword, "organization": "Rival"}})
	var tok api.IssuedToken
	a.expect(http.StatusCreated, request{method: "POST", path: "/api/v1/auth/tokens",
		body: map[string]string{"email": email, "password": ownerPassword, "name": "rival"}}).json(t, &tok)
	a.remember(tok.Token)
	return tok.Token
}

func TestGitAppFromPlainURL(t *testing.T) {
	a := newBuildEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	var created api.App
	a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{
		"url": "https://git.example.com/shop/api.git", "branch": "release",
		"filter": map[string]any{"branches": []string{"release", "hotfix/*"}, "tags": true, "watch_paths": []string{"api/**"}},
	})).json(t, &created)
	s := created.Source
	if s == nil || s.Kind != "git" || s.Provider != "" || s.HasToken || s.DeployKey != "" ||
		!s.Filter.Tags || len(s.Filter.Branches) != 2 || s.Filter.WatchPaths[0] != "api/**" {
		t.Fatalf("source %+v", s)
	}
	var secret api.WebhookSecret
	a.call(http.StatusOK, "POST", "/projects/shop/apps/api/source/webhook-secret", nil).json(t, &secret)
	a.remember(secret.Secret)
	if secret.Provider != "" || secret.SignatureHeader != "" || secret.ContentType != "application/json" {
		t.Errorf("plain URL secret %+v", secret)
	}
	// A plain URL's deliveries are recognised by their headers: GitHub's here.
	a.hook(s.WebhookURL, "push", "d-1", "", githubFixture(t, "push.json")).expectStatus(t, http.StatusUnauthorized)
	res := a.hook(s.WebhookURL, "push", "d-2", secret.Secret, githubFixture(t, "push.json"))
	res.expectStatus(t, http.StatusOK) // main is not a deploy branch of this app
	if !strings.Contains(string(res.body), "main") {
		t.Errorf("push to main: %s", res.body)
	}
}

func TestGitAppOverSSHShowsDeployKey(t *testing.T) {
	// deploy.Manager.sourceView calls gitsrc.ParseDeployKey with an empty
	// label, which gitsrc refuses: every SSH app fails to show its source.
	a := newBuildEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	var created api.App
	a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{"url": "ssh://git@git.example.com/shop/api.git"})).json(t, &created)
	if s := created.Source; s == nil || !strings.HasPrefix(s.DeployKey, "ssh-ed25519 ") || s.HasToken {
		t.Fatalf("source %+v", s)
	}
	var src api.AppSource
	a.call(http.StatusOK, "GET", "/projects/shop/apps/api/source", nil).json(t, &src)
	if src.DeployKey != created.Source.DeployKey || strings.Contains(src.DeployKey, "PRIVATE") {
		t.Errorf("source %+v", src)
	}
}

func TestWebhookSecretRevealFailsClosed(t *testing.T) {
	a := newBuildEnv(t, "")
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{"url": "https://git.example.com/shop/api.git"}))
	a.rec.FailAppendsForTest(context.DeadlineExceeded)
	res := a.call(http.StatusInternalServerError, "POST", "/projects/shop/apps/api/source/webhook-secret", nil)
	if bytes.Contains(res.body, []byte("secret\"")) {
		t.Errorf("secret sent without a record: %s", res.body)
	}
}

func TestDiskUsageNeedsOwnerOrAdmin(t *testing.T) {
	a := newBuildEnv(t, "")
	member := a.member("bob@example.com", "developer")
	a.expect(http.StatusForbidden, request{method: "GET", path: "/api/v1/system/disk", bearer: member})
}

func TestBuildOperationsNeedAuthAndAreDocumented(t *testing.T) {
	a := newBuildEnv(t, "")
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                 `json:"operationId"`
			Summary     string                 `json:"summary"`
			Description string                 `json:"description"`
			Security    *[]map[string][]string `json:"security"`
		} `json:"paths"`
	}
	a.expect(http.StatusOK, request{method: "GET", path: api.SpecPath}).json(t, &doc)
	want := map[string]string{
		"list-builds": "get", "start-build": "post", "get-build-queue": "get", "get-build": "get", "cancel-build": "post",
		"get-build-log": "get", "follow-build-log": "get", "get-disk-usage": "get", "get-app-source": "get",
		"reveal-webhook-secret": "post", "receive-webhook": "post", "update-app-source": "put", "rotate-webhook-secret": "post",
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if want[op.OperationID] != method {
				continue
			}
			delete(want, op.OperationID)
			if op.Summary == "" || op.Description == "" {
				t.Errorf("%s undocumented", op.OperationID)
			}
			if op.OperationID == "receive-webhook" {
				if path != "/hooks/{id}" || op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("webhook receiver documented at %s with security %v", path, op.Security)
				}
				continue
			}
			if op.Security == nil || len(*op.Security) == 0 {
				t.Errorf("%s not documented as authenticated", op.OperationID)
			}
			p := strings.NewReplacer("{project}", "shop", "{app}", "api", "{id}", "bld_x").Replace(path)
			if res := a.do(request{method: strings.ToUpper(method), path: p, raw: "{}"}); res.status != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d", method, path, res.status)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("operations missing from the document: %v", want)
	}
}

// A git app's source is changed through the API: bad input is a 422 naming
// the field and changes nothing; a change keeps the token unless told, and
// a rotated webhook secret refuses deliveries signed with the old one.
func TestGitSourceEditAndRotate(t *testing.T) {
	eachDatabase(t, func(t *testing.T, a *auditEnv) {
		const token = "ghp_planted0token0for0the0source0edit"
		a.remember(token)
		a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
		a.createApp("shop", "web", nil)
		var created api.App
		a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{"provider": "github", "repo": "acme/api", "token": token})).json(t, &created)
		const path = "/projects/shop/apps/api/source"
		for _, c := range []struct {
			body     map[string]any
			location string
		}{
			{map[string]any{"url": "ext::sh -c id"}, "body.git.url"},
			{map[string]any{"provider": "github", "repo": "acme/api", "branch": "-x"}, "body.git.branch"},
			{map[string]any{"provider": "github", "repo": "acme/api", "context": "../up"}, "body.git.context"},
			{map[string]any{"provider": "github", "repo": "acme/api", "token": "t", "remove_token": true}, "body.git.remove_token"},
			{map[string]any{"branch": "main"}, "body.git.url"},
		} {
			fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", path, c.body), c.location, "")
		}
		a.call(http.StatusNotFound, "PUT", "/projects/shop/apps/web/source", map[string]any{"url": "https://git.example.com/a/b.git"})
		var src api.AppSource
		a.call(http.StatusOK, "GET", path, nil).json(t, &src)
		if src.Repo != "acme/api" || src.Branch != "main" || !src.HasToken {
			t.Fatalf("refused changes changed the source: %+v", src)
		}

		a.call(http.StatusOK, "PUT", path, map[string]any{"url": "https://git.example.com/shop/api.git", "branch": "release", "dockerfile": "ops/Dockerfile",
			"filter": map[string]any{"branches": []string{"release"}, "tags": true}}).json(t, &src)
		if src.Kind != "git" || src.Branch != "release" || src.Dockerfile != "ops/Dockerfile" || !src.HasToken || !src.Filter.Tags || src.WebhookURL != created.Source.WebhookURL {
			t.Errorf("changed source %+v", src)
		}
		if e := a.last("app-source.update"); e.Target != "project=shop app=api" || strings.Contains(e.Summary, token) {
			t.Errorf("audit entry %+v", e)
		}
		a.call(http.StatusOK, "PUT", path, map[string]any{"url": "https://git.example.com/shop/api.git", "remove_token": true}).json(t, &src)
		if src.HasToken || src.Branch != "main" {
			t.Errorf("after remove_token: %+v", src)
		}

		var old, fresh, shown api.WebhookSecret
		a.call(http.StatusOK, "POST", path+"/webhook-secret", nil).json(t, &old)
		a.call(http.StatusOK, "POST", path+"/webhook-secret/rotate", nil).json(t, &fresh)
		a.remember(old.Secret)
		a.remember(fresh.Secret)
		a.call(http.StatusOK, "POST", path+"/webhook-secret", nil).json(t, &shown)
		if fresh.Secret == old.Secret || shown.Secret != fresh.Secret || fresh.WebhookURL != src.WebhookURL {
			t.Errorf("rotation: old %q, new %q, revealed after %q", old.Secret, fresh.Secret, shown.Secret)
		}
		if e := a.last("webhook-secret.rotate"); e.Status != http.StatusOK || e.ActorLabel != ownerEmail {
			t.Errorf("rotation entry %+v", e)
		}
		a.hook(src.WebhookURL, "ping", "p-old", old.Secret, []byte(`{"zen":"hi"}`)).expectStatus(t, http.StatusUnauthorized)
		a.hook(src.WebhookURL, "ping", "p-new", fresh.Secret, []byte(`{"zen":"hi"}`)).expectStatus(t, http.StatusOK)
		a.call(http.StatusNotFound, "POST", "/projects/shop/apps/web/source/webhook-secret/rotate", nil)
		assertNoSecret(t, a, token, old.Secret, fresh.Secret)
	})
}

func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("SECRET_%d", i)
	}
	return out
}

// Build secrets are names, kept in their order: they round-trip through
// create and GET; PUT, which takes the whole source, replaces them (left
// out or [] clears them, as build_args); a bad one is a 422 naming
// git.build_secrets that changes nothing; the OpenAPI document shows them.
func TestGitBuildSecretsThroughAPI(t *testing.T) {
	eachDatabase(t, func(t *testing.T, a *auditEnv) {
		const repo = "https://git.example.com/shop/api.git"
		const path = "/projects/shop/apps/api/source"
		a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
		var created api.App
		a.call(http.StatusCreated, "POST", "/projects/shop/apps", gitApp(map[string]any{"url": repo, "build_secrets": []string{"SENTRY_AUTH_TOKEN", "NPM_TOKEN"}})).json(t, &created)
		want := []string{"SENTRY_AUTH_TOKEN", "NPM_TOKEN"}
		if created.Source == nil || !slices.Equal(created.Source.BuildSecrets, want) {
			t.Fatalf("created source %+v, want build secrets %v", created.Source, want)
		}
		var src api.AppSource
		a.call(http.StatusOK, "GET", path, nil).json(t, &src)
		if !slices.Equal(src.BuildSecrets, want) {
			t.Errorf("GET source: build secrets %v, want %v", src.BuildSecrets, want)
		}

		fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", path, map[string]any{"url": repo, "build_secrets": []string{"OK", "9LIVES"}}), "body.git.build_secrets", "9LIVES")
		a.call(http.StatusOK, "PUT", path, map[string]any{"url": repo, "build_secrets": []string{"NPM_TOKEN"}}).json(t, &src)
		if !slices.Equal(src.BuildSecrets, []string{"NPM_TOKEN"}) {
			t.Errorf("after replacing: build secrets %v, want [NPM_TOKEN]", src.BuildSecrets)
		}
		for _, body := range []map[string]any{{"url": repo, "build_secrets": []string{}}, {"url": repo}} {
			a.call(http.StatusOK, "PUT", path, map[string]any{"url": repo, "build_secrets": []string{"NPM_TOKEN"}})
			a.call(http.StatusOK, "PUT", path, body)
			res := a.call(http.StatusOK, "GET", path, nil)
			if bytes.Contains(res.body, []byte("build_secrets")) {
				t.Errorf("PUT %v left build secrets: %s", body, res.body)
			}
		}

		var doc struct {
			Components struct {
				Schemas map[string]struct {
					Properties map[string]struct {
						Type     any    `json:"type"`
						MaxItems int    `json:"maxItems"`
						Doc      string `json:"description"`
					} `json:"properties"`
				} `json:"schemas"`
			} `json:"components"`
		}
		a.expect(http.StatusOK, request{method: "GET", path: api.SpecPath}).json(t, &doc)
		for _, schema := range []string{"GitRequest", "GitSourceRequest", "AppSource"} {
			p, ok := doc.Components.Schemas[schema].Properties["build_secrets"]
			if !ok || !strings.Contains(p.Doc, "secret") {
				t.Errorf("OpenAPI schema %s: build_secrets %+v", schema, p)
			}
			if schema != "AppSource" && p.MaxItems != 32 {
				t.Errorf("OpenAPI schema %s: build_secrets maxItems %d, want 32", schema, p.MaxItems)
			}
		}
	})
}
