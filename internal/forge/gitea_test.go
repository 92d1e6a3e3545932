package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv/gitea"
)

// TestGitea runs the Gitea client against a real Gitea server.
func TestGitea(t *testing.T) {
	s := gitea.Start(t)
	s.CreateRepo(t, "alpha", map[string]string{"README.md": "# alpha\n"})
	s.CreateRepo(t, "beta", map[string]string{"README.md": "# beta\n"})
	s.CreateRepo(t, "gamma", map[string]string{"README.md": "# gamma\n"})
	s.API(t, http.MethodPatch, "/api/v1/repos/"+s.User+"/beta", map[string]any{"private": true}, nil)
	s.Branch(t, "alpha", "feature")
	s.Branch(t, "alpha", "release")

	c, err := NewGitea(s.URL, s.Token, s.Client())
	if err != nil {
		t.Fatal(err)
	}
	// Two items a page, so listings take several pages.
	c.(*giteaClient).pageSize = 2

	t.Run("Account", func(t *testing.T) {
		if got, err := c.Account(t.Context()); err != nil || got != gitea.AdminUser {
			t.Errorf("Account = %q, %v; want %q", got, err, gitea.AdminUser)
		}
	})

	t.Run("Repos", func(t *testing.T) {
		repos, err := c.Repos(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Repo{}
		for _, r := range repos {
			got[r.FullName] = r
		}
		if len(repos) != 3 || len(got) != 3 {
			t.Fatalf("Repos = %+v, want alpha, beta and gamma once each", repos)
		}
		for _, name := range []string{"alpha", "beta", "gamma"} {
			full := s.User + "/" + name
			want := Repo{
				FullName:      full,
				CloneURL:      s.URL + "/" + full + ".git",
				DefaultBranch: gitea.DefaultBranch,
				WebURL:        s.URL + "/" + full,
				Private:       name == "beta",
			}
			r := got[full]
			r.SSHURL = "" // SSH is disabled; its URL is Gitea's business
			if r != want {
				t.Errorf("repo %s = %+v, want %+v", full, r, want)
			}
		}
	})

	t.Run("Repo", func(t *testing.T) {
		r, err := c.Repo(t.Context(), s.User+"/beta")
		if err != nil || r.FullName != s.User+"/beta" || !r.Private || r.DefaultBranch != gitea.DefaultBranch || r.CloneURL != s.URL+"/"+s.User+"/beta.git" {
			t.Errorf("Repo = %+v, %v", r, err)
		}
		_, err = c.Repo(t.Context(), s.User+"/nope")
		checkError(t, err, ErrNotFound, "gitea: reading a repository: repository "+s.User+"/nope not found (404): check its name and that the token can read it", s.Token)
		if _, err := c.Repo(t.Context(), "../x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("Repo(../x) = %v, want an invalid-argument error", err)
		}
	})

	t.Run("Branches", func(t *testing.T) {
		branches, err := c.Branches(t.Context(), s.User+"/alpha")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(branches)
		if want := []string{"feature", gitea.DefaultBranch, "release"}; !slices.Equal(branches, want) {
			t.Fatalf("Branches = %q, want %q", branches, want)
		}
	})

	t.Run("SetStatus", func(t *testing.T) {
		repo := s.User + "/alpha"
		sha := headSHA(t, s, "alpha")
		want := Status{
			State:       StateSuccess,
			TargetURL:   "https://berth.example.test/apps/alpha/deployments/7",
			Description: "Deployed",
			Context:     "berth/deploy",
		}
		if err := c.SetStatus(t.Context(), repo, sha, Status{State: StatePending, Context: want.Context}); err != nil {
			t.Fatal(err)
		}
		if err := c.SetStatus(t.Context(), repo, sha, want); err != nil {
			t.Fatal(err)
		}
		var statuses []struct {
			State       string `json:"status"`
			TargetURL   string `json:"target_url"`
			Description string `json:"description"`
			Context     string `json:"context"`
		}
		s.API(t, http.MethodGet, "/api/v1/repos/"+repo+"/commits/"+sha+"/statuses", nil, &statuses)
		// Both statuses are kept; their order within a second is Gitea's.
		var got []Status
		for _, st := range statuses {
			got = append(got, Status{State(st.State), st.TargetURL, st.Description, st.Context})
		}
		pending := Status{State: StatePending, Context: want.Context}
		if len(got) != 2 || !slices.Contains(got, want) || !slices.Contains(got, pending) {
			t.Fatalf("statuses of %s = %+v, want %+v and %+v", sha, got, pending, want)
		}
	})

	t.Run("CreateWebhook", func(t *testing.T) {
		const secret = "webhook-secret"
		type delivery struct {
			header http.Header
			body   []byte
		}
		deliveries := make(chan delivery, 10)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			deliveries <- delivery{r.Header.Clone(), body}
		}))
		t.Cleanup(hook.Close)

		repo := s.User + "/gamma"
		if err := c.CreateWebhook(t.Context(), repo, hook.URL+"/hooks/gitea", secret); err != nil {
			t.Fatal(err)
		}
		var hooks []struct {
			Type   string            `json:"type"`
			Active bool              `json:"active"`
			Events []string          `json:"events"`
			Config map[string]string `json:"config"`
		}
		s.API(t, http.MethodGet, "/api/v1/repos/"+repo+"/hooks", nil, &hooks)
		if len(hooks) != 1 {
			t.Fatalf("hooks of %s = %+v, want one", repo, hooks)
		}
		h := hooks[0]
		if h.Type != "gitea" || !h.Active || !slices.Equal(h.Events, []string{"push"}) ||
			h.Config["url"] != hook.URL+"/hooks/gitea" || h.Config["content_type"] != "json" {
			t.Fatalf("hook = %+v, want an active gitea hook for push events, JSON, to %s", h, hook.URL+"/hooks/gitea")
		}

		// A push is delivered, signed with the secret.
		work := t.TempDir()
		s.Git(t, work, "clone", "--quiet", s.URL+"/"+repo+".git", ".")
		if err := os.WriteFile(filepath.Join(work, "CHANGELOG"), []byte("v2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Git(t, work, "add", "CHANGELOG")
		s.Git(t, work, "commit", "--quiet", "-m", "Second commit")
		s.Git(t, work, "push", "--quiet", "origin", "HEAD")
		pushed := strings.TrimSpace(s.Git(t, work, "rev-parse", "HEAD"))

		select {
		case d := <-deliveries:
			if ev := d.header.Get("X-Gitea-Event"); ev != "push" {
				t.Errorf("X-Gitea-Event = %q, want push", ev)
			}
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(d.body)
			if sig := d.header.Get("X-Gitea-Signature"); sig != hex.EncodeToString(mac.Sum(nil)) {
				t.Errorf("X-Gitea-Signature = %q, not the HMAC-SHA256 of the body with the secret", sig)
			}
			var push struct {
				Ref   string `json:"ref"`
				After string `json:"after"`
			}
			if err := json.Unmarshal(d.body, &push); err != nil {
				t.Fatalf("delivery body: %v\n%s", err, d.body)
			}
			if push.Ref != "refs/heads/"+gitea.DefaultBranch || push.After != pushed {
				t.Errorf("delivery for %s at %s, want %s at %s", push.Ref, push.After, gitea.DefaultBranch, pushed)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no webhook delivery within 30 s of the push")
		}
	})

	t.Run("WrongToken", func(t *testing.T) {
		const token = "0123456789abcdef0123456789abcdef01234567"
		bad, err := NewGitea(s.URL, token, s.Client())
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Repos(t.Context())
		checkError(t, err, ErrUnauthorized,
			"gitea: listing repositories: the token was refused (401): check it and its scopes", token)
		_, err = bad.Account(t.Context())
		checkError(t, err, ErrUnauthorized,
			"gitea: reading the token's user: the token was refused (401): check it and its scopes", token)
	})

	t.Run("ReadOnlyToken", func(t *testing.T) {
		token := s.CreateToken(t, "read-only", "read:repository", "read:user")
		ro, err := NewGitea(s.URL, token, s.Client())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ro.Branches(t.Context(), s.User+"/alpha"); err != nil {
			t.Fatalf("reading with a read:repository token: %v", err)
		}
		err = ro.SetStatus(t.Context(), s.User+"/alpha", headSHA(t, s, "alpha"), Status{State: StateSuccess})
		checkError(t, err, ErrForbidden,
			"gitea: setting a commit status: the token may not do this (403): it needs write access to the repository and the write:repository scope", token)
	})

	t.Run("MissingRepo", func(t *testing.T) {
		_, err := c.Branches(t.Context(), s.User+"/nope")
		checkError(t, err, ErrNotFound,
			"gitea: listing branches: repository "+s.User+"/nope not found (404): check its name and that the token can read it", s.Token)
	})
}

// checkError asserts err is a provider error wrapping target, with the exact
// message users see, and without the token in it.
func checkError(t *testing.T, err, target error, msg, token string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %v", err, target)
	}
	if err.Error() != msg {
		t.Errorf("error message:\n got %q\nwant %q", err.Error(), msg)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error message contains the token: %q", err.Error())
	}
}

func headSHA(t *testing.T, s *gitea.Server, repo string) string {
	t.Helper()
	var b struct {
		Commit struct {
			ID string `json:"id"`
		} `json:"commit"`
	}
	s.API(t, http.MethodGet, "/api/v1/repos/"+s.User+"/"+repo+"/branches/"+gitea.DefaultBranch, nil, &b)
	if len(b.Commit.ID) != 40 {
		t.Fatalf("head of %s/%s: commit id %q", s.User, repo, b.Commit.ID)
	}
	return b.Commit.ID
}

// TestGiteaRefusesBadInput checks arguments are refused before any request:
// the server only counts requests.
func TestGiteaRefusesBadInput(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "unexpected request", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	c, err := NewGitea(srv.URL, "secret-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	ok := Status{State: StateSuccess}
	tests := []struct {
		name string
		call func() error
	}{
		{"repo without owner", func() error { _, err := c.Branches(t.Context(), "alpha"); return err }},
		{"repo with three parts", func() error { _, err := c.Branches(t.Context(), "a/b/c"); return err }},
		{"repo empty", func() error { _, err := c.Branches(t.Context(), ""); return err }},
		{"repo dot-dot", func() error { _, err := c.Branches(t.Context(), "../etc"); return err }},
		{"repo with space", func() error { _, err := c.Branches(t.Context(), "a b/c"); return err }},
		{"repo with query", func() error { _, err := c.Branches(t.Context(), "a/b?x=1"); return err }},
		{"status repo", func() error { return c.SetStatus(t.Context(), "a/", sha, ok) }},
		{"sha short", func() error { return c.SetStatus(t.Context(), "a/b", "0123abc", ok) }},
		{"sha 41 digits", func() error { return c.SetStatus(t.Context(), "a/b", sha+"8", ok) }},
		{"sha upper case", func() error { return c.SetStatus(t.Context(), "a/b", strings.ToUpper(sha), ok) }},
		{"sha not hex", func() error { return c.SetStatus(t.Context(), "a/b", strings.Repeat("g", 40), ok) }},
		{"status state", func() error { return c.SetStatus(t.Context(), "a/b", sha, Status{State: "done"}) }},
		{"status target", func() error {
			return c.SetStatus(t.Context(), "a/b", sha, Status{State: StateError, TargetURL: "javascript:alert(1)"})
		}},
		{"webhook repo", func() error { return c.CreateWebhook(t.Context(), "a", "https://h.test/", "s") }},
		{"webhook URL", func() error { return c.CreateWebhook(t.Context(), "a/b", "ftp://h.test/", "s") }},
		{"webhook relative URL", func() error { return c.CreateWebhook(t.Context(), "a/b", "/hooks", "s") }},
		{"webhook secret", func() error { return c.CreateWebhook(t.Context(), "a/b", "https://h.test/", "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var in *InputError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &in) {
				t.Fatalf("error = %v, want an InputError", err)
			}
			if !strings.HasPrefix(err.Error(), "gitea: ") || !strings.Contains(err.Error(), in.Want) {
				t.Errorf("error %q does not name the provider and what is allowed", err)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests were made for refused arguments", n)
	}
	// The checks refuse only what is wrong.
	for _, sha := range []string{sha, strings.Repeat("a", 64)} {
		if err := checkSHA(sha); err != nil {
			t.Errorf("checkSHA(%q) = %v", sha, err)
		}
	}
	for _, repo := range []string{"a/b", "Ada.L/my_app-2", "org/.github"} {
		if err := checkRepo(repo); err != nil {
			t.Errorf("checkRepo(%q) = %v", repo, err)
		}
	}
}

func TestNewGiteaValidates(t *testing.T) {
	tests := []struct {
		name, baseURL, token string
	}{
		{"empty URL", "", "tok"},
		{"no scheme", "git.example.test", "tok"},
		{"ftp", "ftp://git.example.test", "tok"},
		{"no host", "https://", "tok"},
		{"user info", "https://ada:s3cr3t-pw@git.example.test", "tok-Zq9"},
		{"query", "https://git.example.test/?access_token=s3cr3t-pw", "tok-Zq9"},
		{"empty query", "https://git.example.test/?", "tok"},
		{"fragment", "https://git.example.test/#top", "tok"},
		{"empty token", "https://git.example.test", ""},
		{"token with newline", "https://git.example.test", "tok-Zq9\nX-Evil: 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewGitea(tt.baseURL, tt.token, nil)
			if !errors.Is(err, ErrInvalid) || c != nil {
				t.Fatalf("NewGitea(%q) = %v, %v; want an invalid-argument error", tt.baseURL, c, err)
			}
			if strings.Contains(err.Error(), "s3cr3t-pw") || (tt.token != "" && strings.Contains(err.Error(), tt.token)) {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}

	c, err := NewGitea("https://git.example.test/gitea/", "tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	g := c.(*giteaClient)
	if g.base.String() != "https://git.example.test/gitea" || g.hc.Timeout != defaultTimeout {
		t.Errorf("NewGitea: base %s, timeout %s; want the URL without trailing slash and %s", g.base, g.hc.Timeout, defaultTimeout)
	}
}

// TestGiteaServerFailures injects answers a real Gitea gives only when
// broken or misaddressed.
func TestGiteaServerFailures(t *testing.T) {
	const token = "tok-Zq9-secret"
	tests := []struct {
		name    string
		handler http.HandlerFunc
		call    func(Client) error
		want    string
	}{
		{
			name:    "server error",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", http.StatusBadGateway) },
			call:    func(c Client) error { _, err := c.Repos(t.Context()); return err },
			want:    "gitea: listing repositories: the server failed (502): try again later",
		},
		{
			name:    "not JSON",
			handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hello</html>") },
			call:    func(c Client) error { _, err := c.Repos(t.Context()); return err },
			want:    "gitea: listing repositories: unexpected answer: the answer is not the JSON expected (is the base URL a Gitea server?)",
		},
		{
			name: "answer too large",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("[" + strings.Repeat(" ", maxBody) + "]"))
			},
			call: func(c Client) error { _, err := c.Branches(t.Context(), "a/b"); return err },
			want: "gitea: listing branches: unexpected answer: answer larger than 10 MB",
		},
		{
			name: "endless listing",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `[{"name":"x"},{"name":"y"}]`)
			},
			call: func(c Client) error { _, err := c.Branches(t.Context(), "a/b"); return err },
			want: "gitea: listing branches: unexpected answer: more than 1000 pages",
		},
		{
			name: "refused with a message",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnprocessableEntity)
				io.WriteString(w, `{"message":"invalid content type"}`)
			},
			call: func(c Client) error { return c.CreateWebhook(t.Context(), "a/b", "https://h.test/", "s") },
			want: "gitea: creating a webhook: refused (422) (gitea said: invalid content type)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "token "+token {
					t.Errorf("Authorization = %q, want the token", got)
				}
				tt.handler(w, r)
			}))
			t.Cleanup(srv.Close)
			c, err := NewGitea(srv.URL, token, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			c.(*giteaClient).pageSize = 2 // full pages for the endless listing
			err = tt.call(c)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error = %v, want a *forge.Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error message:\n got %q\nwant %q", err.Error(), tt.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error message contains the token: %q", err)
			}
		})
	}
}
