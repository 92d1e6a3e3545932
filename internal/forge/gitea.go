package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// defaultTimeout bounds a whole request when the caller gives no client.
	defaultTimeout = 15 * time.Second
	// maxBody bounds how much of an answer is read, so a broken or hostile
	// server cannot exhaust memory.
	maxBody = 10 << 20
	// pageSize is Gitea's default [api] MAX_RESPONSE_ITEMS; a server with a
	// smaller maximum is still paged correctly through X-Total-Count.
	pageSize = 50
	// maxPages stops a server that never ends a listing.
	maxPages = 1000
)

// giteaClient is a Client for a Gitea (or Forgejo) server's /api/v1.
type giteaClient struct {
	base     *url.URL
	token    string
	hc       *http.Client
	pageSize int
}

var _ Client = (*giteaClient)(nil)

// NewGitea returns a Client for the Gitea at baseURL (e.g.
// https://git.example.com, or with a sub-path) authenticating with an access
// token. hc carries the timeout; nil means a client with a 15 s timeout.
func NewGitea(baseURL, token string, hc *http.Client) (Client, error) {
	base, err := checkBaseURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("gitea: %w", err)
	}
	if token == "" || strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		// The value is never shown: it is a secret.
		return nil, fmt.Errorf("gitea: access token: %w", &InputError{Field: "access token", Value: "(hidden)",
			Want: "want a non-empty token without spaces or control characters"})
	}
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	return &giteaClient{base: base, token: token, hc: hc, pageSize: pageSize}, nil
}

func (g *giteaClient) Account(ctx context.Context) (string, error) {
	var u struct {
		Login string `json:"login"`
	}
	if _, err := g.do(ctx, "reading the token's user", "", http.MethodGet, "/user", nil, nil, &u); err != nil {
		return "", err
	}
	return u.Login, nil
}

// giteaRepo is a repository as Gitea's API shows it.
type giteaRepo struct {
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	SSHURL        string `json:"ssh_url"`
	DefaultBranch string `json:"default_branch"`
	HTMLURL       string `json:"html_url"`
	Private       bool   `json:"private"`
}

func (r giteaRepo) repo() Repo {
	return Repo{FullName: r.FullName, CloneURL: r.CloneURL, SSHURL: r.SSHURL, DefaultBranch: r.DefaultBranch, WebURL: r.HTMLURL, Private: r.Private}
}

func (g *giteaClient) Repos(ctx context.Context) ([]Repo, error) {
	const op = "listing repositories"
	// /user/repos is what the token's user owns, collaborates on or reaches
	// through an organization, not every public repository of the server.
	page, err := list[giteaRepo](ctx, g, op, "", "/user/repos")
	if err != nil {
		return nil, err
	}
	repos := make([]Repo, 0, len(page))
	for _, r := range page {
		repos = append(repos, r.repo())
	}
	return repos, nil
}

func (g *giteaClient) Repo(ctx context.Context, repo string) (Repo, error) {
	const op = "reading a repository"
	if err := checkRepo(repo); err != nil {
		return Repo{}, fmt.Errorf("gitea: %s: %w", op, err)
	}
	var r giteaRepo
	if _, err := g.do(ctx, op, repo, http.MethodGet, "/repos/"+repo, nil, nil, &r); err != nil {
		return Repo{}, err
	}
	return r.repo(), nil
}

func (g *giteaClient) Branches(ctx context.Context, repo string) ([]string, error) {
	const op = "listing branches"
	if err := checkRepo(repo); err != nil {
		return nil, fmt.Errorf("gitea: %s: %w", op, err)
	}
	type apiBranch struct {
		Name string `json:"name"`
	}
	page, err := list[apiBranch](ctx, g, op, repo, "/repos/"+repo+"/branches")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(page))
	for _, b := range page {
		names = append(names, b.Name)
	}
	return names, nil
}

func (g *giteaClient) SetStatus(ctx context.Context, repo, sha string, s Status) error {
	const op = "setting a commit status"
	for _, err := range []error{checkRepo(repo), checkSHA(sha), checkStatus(s)} {
		if err != nil {
			return fmt.Errorf("gitea: %s: %w", op, err)
		}
	}
	body := map[string]string{
		"state":       string(s.State),
		"target_url":  s.TargetURL,
		"description": s.Description,
		"context":     s.Context,
	}
	_, err := g.do(ctx, op, repo, http.MethodPost, "/repos/"+repo+"/statuses/"+sha, nil, body, nil)
	return err
}

func (g *giteaClient) CreateWebhook(ctx context.Context, repo, hookURL, secret string) error {
	const op = "creating a webhook"
	if err := checkRepo(repo); err != nil {
		return fmt.Errorf("gitea: %s: %w", op, err)
	}
	if err := checkHTTPURL("webhook URL", hookURL); err != nil {
		return fmt.Errorf("gitea: %s: %w", op, err)
	}
	if secret == "" {
		// Without a secret anyone could forge deliveries.
		return fmt.Errorf("gitea: %s: %w", op, &InputError{Field: "webhook secret", Value: "",
			Want: "want a non-empty secret to sign deliveries with"})
	}
	body := map[string]any{
		"type":   "gitea",
		"active": true,
		"events": []string{"push"},
		"config": map[string]string{
			"url":          hookURL,
			"content_type": "json",
			"secret":       secret,
		},
	}
	_, err := g.do(ctx, op, repo, http.MethodPost, "/repos/"+repo+"/hooks", nil, body, nil)
	return err
}

// list fetches every page of a Gitea listing. It follows X-Total-Count when
// the server sends it, and otherwise stops at the first short page.
func list[T any](ctx context.Context, g *giteaClient, op, repo, path string) ([]T, error) {
	var all []T
	for p := 1; p <= maxPages; p++ {
		q := url.Values{"page": {strconv.Itoa(p)}, "limit": {strconv.Itoa(g.pageSize)}}
		var page []T
		h, err := g.do(ctx, op, repo, http.MethodGet, path, q, nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		total, err := strconv.Atoi(h.Get("X-Total-Count"))
		switch {
		case len(page) == 0:
			return all, nil
		case err == nil && total >= 0:
			if len(all) >= total {
				return all, nil
			}
		case len(page) < g.pageSize:
			return all, nil
		}
	}
	return nil, &Error{Provider: "gitea", Op: op, Repo: repo, Status: http.StatusOK,
		Detail: fmt.Sprintf("more than %d pages", maxPages)}
}

// do sends one API request; in, when not nil, is sent as JSON, and a 2xx
// answer is decoded into out when out is not nil.
func (g *giteaClient) do(ctx context.Context, op, repo, method, path string, q url.Values, in, out any) (http.Header, error) {
	u := *g.base
	u.Path = g.base.Path + "/api/v1" + path
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("gitea: %s: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("gitea: %s: %w", op, err)
	}
	req.Header.Set("Authorization", "token "+g.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		// The error names the URL, which carries no secret: the token is
		// in a header.
		return nil, &Error{Provider: "gitea", Op: op, Repo: repo, Detail: err.Error(), Err: ctx.Err()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &Error{Provider: "gitea", Op: op, Repo: repo, Detail: "reading the answer: " + err.Error()}
	}
	if len(data) > maxBody {
		return nil, &Error{Provider: "gitea", Op: op, Repo: repo, Status: resp.StatusCode,
			Detail: fmt.Sprintf("answer larger than %d MB", maxBody>>20)}
	}
	if resp.StatusCode/100 != 2 {
		return nil, g.statusError(op, repo, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, &Error{Provider: "gitea", Op: op, Repo: repo, Status: resp.StatusCode,
				Detail: "the answer is not the JSON expected (is the base URL a Gitea server?)"}
		}
	}
	return resp.Header, nil
}

// statusError turns a non-2xx answer into an Error, keeping Gitea's own
// message for the statuses Error has no advice for.
func (g *giteaClient) statusError(op, repo string, status int, body []byte) error {
	e := &Error{Provider: "gitea", Op: op, Repo: repo, Status: status}
	switch status {
	case http.StatusUnauthorized:
		e.Err = ErrUnauthorized
	case http.StatusForbidden:
		e.Err = ErrForbidden
	case http.StatusNotFound:
		e.Err = ErrNotFound
	default:
		var msg struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &msg) == nil {
			e.Detail = strings.TrimSpace(msg.Message)
		}
		if len(e.Detail) > 300 {
			e.Detail = e.Detail[:300] + "…"
		}
		if strings.Contains(e.Detail, g.token) {
			e.Detail = ""
		}
	}
	return e
}
