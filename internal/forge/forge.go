// Package forge talks to git providers' APIs ("forges": Gitea, GitHub,
// GitLab …) on behalf of a user's token: which repositories and branches the
// token can deploy, commit statuses for deployments, and push webhooks.
// Client is the provider-agnostic surface; each provider has one
// implementation in a file of its own.
package forge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Repo is a repository a token can read.
type Repo struct {
	FullName      string // owner/name
	CloneURL      string // HTTPS (or HTTP) clone URL
	SSHURL        string // empty when the provider has SSH disabled
	DefaultBranch string
	WebURL        string
	Private       bool
}

// State is the state of a commit status.
type State string

// The states every provider knows.
const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
	StateError   State = "error"
)

// Status is a commit status, shown next to the commit by the provider.
type Status struct {
	State       State
	TargetURL   string // link to the deployment; may be empty
	Description string
	Context     string // tells statuses from different sources apart, e.g. "berth/deploy"
}

// Client is a git provider's API, authenticated with one token.
type Client interface {
	// Account returns the provider user the token belongs to.
	Account(ctx context.Context) (string, error)
	// Repos returns every repository the token can read.
	Repos(ctx context.Context) ([]Repo, error)
	// Repo returns one repository ("owner/name") the token can read.
	Repo(ctx context.Context, repo string) (Repo, error)
	// Branches returns the branch names of repo ("owner/name").
	Branches(ctx context.Context, repo string) ([]string, error)
	// SetStatus reports a status for commit sha of repo.
	SetStatus(ctx context.Context, repo, sha string, s Status) error
	// CreateWebhook makes the provider POST push events as JSON to url,
	// signed with an HMAC of secret.
	CreateWebhook(ctx context.Context, repo, url, secret string) error
}

// Errors an Error wraps, for errors.Is.
var (
	// ErrUnauthorized: the provider refused the token (401).
	ErrUnauthorized = errors.New("token refused")
	// ErrForbidden: the token is valid but may not do this (403).
	ErrForbidden = errors.New("permission denied")
	// ErrNotFound: the repository does not exist or the token cannot see it (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: an argument was refused before any request was made.
	ErrInvalid = errors.New("invalid argument")
)

// Error is a failed provider operation. Its message is meant for users: it
// names the provider and the operation and says what to do, and it never
// contains the token.
type Error struct {
	Provider string // "gitea"
	Op       string // what was being done, e.g. "listing repositories"
	Repo     string // owner/name, when the operation concerns one repository
	Status   int    // HTTP status; 0 when there was no answer
	Detail   string // the provider's own message, the transport error, or what was wrong with a 2xx answer
	Err      error  // ErrUnauthorized, ErrForbidden, ErrNotFound, or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", e.Provider)
	switch {
	case errors.Is(e.Err, ErrNotFound) && e.Repo != "":
		fmt.Fprintf(&b, "%s: repository %s not found (404): check its name and that the token can read it", e.Op, e.Repo)
	case errors.Is(e.Err, ErrNotFound):
		fmt.Fprintf(&b, "%s: not found (404): check that the base URL is the %s server's", e.Op, e.Provider)
	case errors.Is(e.Err, ErrUnauthorized):
		fmt.Fprintf(&b, "%s: the token was refused (401): check it and its scopes", e.Op)
	case errors.Is(e.Err, ErrForbidden):
		fmt.Fprintf(&b, "%s: the token may not do this (403): it needs write access to the repository and the write:repository scope", e.Op)
	case e.Status == 0:
		fmt.Fprintf(&b, "%s: no answer: %s", e.Op, e.Detail)
	case e.Status/100 == 2:
		fmt.Fprintf(&b, "%s: unexpected answer: %s", e.Op, e.Detail)
	case e.Status >= 500:
		fmt.Fprintf(&b, "%s: the server failed (%d): try again later", e.Op, e.Status)
	default:
		fmt.Fprintf(&b, "%s: refused (%d)", e.Op, e.Status)
	}
	if e.Detail != "" && e.Status/100 > 2 {
		fmt.Fprintf(&b, " (%s said: %s)", e.Provider, e.Detail)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// InputError is an argument refused before any request was made.
type InputError struct {
	Field string // "repo", "sha", "base URL" …
	Value string
	Want  string // what is allowed
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Want)
}

func (e *InputError) Unwrap() error { return ErrInvalid }

// A name part is what Gitea, GitHub and GitLab all allow in user and
// repository names (GitLab's subgroups aside).
var (
	namePart = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	shaRE    = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)
)

// checkRepo validates a repository reference: exactly owner/name.
func checkRepo(repo string) error {
	owner, name, ok := strings.Cut(repo, "/")
	if ok && validPart(owner) && validPart(name) {
		return nil
	}
	return &InputError{Field: "repository", Value: repo,
		Want: "want owner/name, each of letters, digits, '-', '_' and '.'"}
}

func validPart(s string) bool {
	return namePart.MatchString(s) && s != "." && s != ".."
}

// checkSHA validates a full commit id (SHA-1 or SHA-256), lower case.
func checkSHA(sha string) error {
	if shaRE.MatchString(sha) {
		return nil
	}
	return &InputError{Field: "commit", Value: sha,
		Want: "want a full commit id: 40 or 64 lower-case hex digits"}
}

// checkStatus validates a commit status.
func checkStatus(s Status) error {
	switch s.State {
	case StatePending, StateSuccess, StateFailure, StateError:
	default:
		return &InputError{Field: "status state", Value: string(s.State),
			Want: "want pending, success, failure or error"}
	}
	if s.TargetURL != "" {
		if err := checkHTTPURL("status target URL", s.TargetURL); err != nil {
			return err
		}
	}
	return nil
}

// checkHTTPURL validates an absolute http(s) URL.
func checkHTTPURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &InputError{Field: field, Value: raw, Want: "want an absolute http:// or https:// URL"}
	}
	return nil
}

// checkBaseURL validates a provider's base URL. Credentials, queries and
// fragments are refused: the token is the only credential, and Berth appends
// API paths to the URL.
func checkBaseURL(raw string) (*url.URL, error) {
	if err := checkHTTPURL("base URL", raw); err != nil {
		return nil, err
	}
	u, _ := url.Parse(raw)
	if u.User != nil {
		return nil, &InputError{Field: "base URL", Value: u.Redacted(), Want: "want no user name or password in it: the token is the credential"}
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		// The query is left out of the message: it may hold a token.
		shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
		return nil, &InputError{Field: "base URL", Value: shown.String() + "?…", Want: "want no query (?…) or fragment (#…)"}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
