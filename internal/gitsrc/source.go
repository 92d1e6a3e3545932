// Package gitsrc owns where an app's code comes from and how Berth gets it:
// the git source model (a plain URL or a provider repository), its
// validation, deploy keys, and fetching an exact commit with the git
// binary. git is always run with an argument list and a controlled
// environment, never through a shell; SSH is spoken by Berth itself (see
// SSHMain), so OpenSSH is not needed on the host.
package gitsrc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Kind names a Source variant; it is the "kind" field of the JSON form.
type Kind string

const (
	KindURL       Kind = "git"
	KindGitHub    Kind = "github"
	KindGitLab    Kind = "gitlab"
	KindGitea     Kind = "gitea"
	KindBitbucket Kind = "bitbucket"
)

// Variant is one kind of source. The set is closed: *URL, *GitHub,
// *GitLab, *Gitea, *Bitbucket.
type Variant interface {
	Kind() Kind
	// Validate checks the variant's fields; errors are *ValidationError.
	Validate() error
	// CloneURL is the URL git fetches from; call Validate first.
	CloneURL() string
	sealed()
}

var (
	_ Variant = (*URL)(nil)
	_ Variant = (*GitHub)(nil)
	_ Variant = (*GitLab)(nil)
	_ Variant = (*Gitea)(nil)
	_ Variant = (*Bitbucket)(nil)
)

// Source is where an app's code comes from: exactly one Variant. Secrets
// (token, deploy key) are not part of it; they are sealed by the caller and
// passed in a Remote when git runs. Its JSON form is the variant's fields
// plus "kind", e.g. {"kind":"github","repo":"acme/shop"}.
type Source struct {
	Variant
}

// Kind is the variant's kind, "" for an empty Source.
func (s Source) Kind() Kind {
	if s.Variant == nil {
		return ""
	}
	return s.Variant.Kind()
}

// Validate checks the source; errors are *ValidationError naming the field.
func (s Source) Validate() error {
	if s.Variant == nil {
		return invalid("source", "is empty; set a git URL or a provider repository")
	}
	return s.Variant.Validate()
}

// CloneURL validates the source and returns the URL git fetches from.
func (s Source) CloneURL() (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	return s.Variant.CloneURL(), nil
}

// Transport says whether the source is fetched over HTTPS or SSH.
func (s Source) Transport() (Transport, error) {
	u, err := s.CloneURL()
	if err != nil {
		return "", err
	}
	return parseRemoteURL("url", u)
}

// URL is any git repository reachable over HTTPS (optionally with a token)
// or SSH (with a deploy key).
type URL struct {
	URL string `json:"url"` // https://…, ssh://… or git@host:owner/repo.git
}

func (*URL) Kind() Kind         { return KindURL }
func (u *URL) CloneURL() string { return u.URL }
func (*URL) sealed()            {}
func (u *URL) Validate() error {
	_, err := parseRemoteURL("url", u.URL)
	return err
}

// GitHub is a repository on github.com or a GitHub Enterprise Server.
type GitHub struct {
	Repo     string    `json:"repo"`               // "owner/name"
	BaseURL  string    `json:"base_url,omitempty"` // Enterprise Server, e.g. https://github.example.com; empty means github.com
	Protocol Transport `json:"protocol,omitempty"` // "https" (default) or "ssh"
}

func (*GitHub) Kind() Kind { return KindGitHub }
func (*GitHub) sealed()    {}
func (g *GitHub) Validate() error {
	return validateProvider(g.Repo, 2, 2, g.BaseURL, false, g.Protocol, 0)
}
func (g *GitHub) CloneURL() string {
	return providerCloneURL(g.BaseURL, "https://github.com", g.Repo, g.Protocol, 0)
}

// GitLab is a project on gitlab.com or a self-managed GitLab.
type GitLab struct {
	Repo     string    `json:"repo"`               // "group/subgroup/name"
	BaseURL  string    `json:"base_url,omitempty"` // self-managed, e.g. https://gitlab.example.com; empty means gitlab.com
	Protocol Transport `json:"protocol,omitempty"` // "https" (default) or "ssh"
	SSHPort  int       `json:"ssh_port,omitempty"` // self-managed SSH port when not 22
}

func (*GitLab) Kind() Kind { return KindGitLab }
func (*GitLab) sealed()    {}
func (g *GitLab) Validate() error {
	return validateProvider(g.Repo, 2, 20, g.BaseURL, false, g.Protocol, g.SSHPort)
}
func (g *GitLab) CloneURL() string {
	return providerCloneURL(g.BaseURL, "https://gitlab.com", g.Repo, g.Protocol, g.SSHPort)
}

// Gitea is a repository on a Gitea (or Forgejo) server; there is no default host.
type Gitea struct {
	Repo     string    `json:"repo"`     // "owner/name"
	BaseURL  string    `json:"base_url"` // e.g. https://gitea.example.com
	Protocol Transport `json:"protocol,omitempty"`
	SSHPort  int       `json:"ssh_port,omitempty"`
}

func (*Gitea) Kind() Kind { return KindGitea }
func (*Gitea) sealed()    {}
func (g *Gitea) Validate() error {
	return validateProvider(g.Repo, 2, 2, g.BaseURL, true, g.Protocol, g.SSHPort)
}
func (g *Gitea) CloneURL() string {
	return providerCloneURL(g.BaseURL, "", g.Repo, g.Protocol, g.SSHPort)
}

// Bitbucket is a repository on Bitbucket Cloud (bitbucket.org).
type Bitbucket struct {
	Repo     string    `json:"repo"` // "workspace/name"
	Protocol Transport `json:"protocol,omitempty"`
}

func (*Bitbucket) Kind() Kind { return KindBitbucket }
func (*Bitbucket) sealed()    {}
func (b *Bitbucket) Validate() error {
	return validateProvider(b.Repo, 2, 2, "", false, b.Protocol, 0)
}
func (b *Bitbucket) CloneURL() string {
	return providerCloneURL("", "https://bitbucket.org", b.Repo, b.Protocol, 0)
}

func validateProvider(repo string, minSeg, maxSeg int, baseURL string, baseRequired bool, proto Transport, sshPort int) error {
	if err := checkRepoPath(repo, minSeg, maxSeg); err != nil {
		return err
	}
	if baseURL == "" && baseRequired {
		return invalid("base_url", "is required (e.g. https://git.example.com)")
	}
	if baseURL != "" {
		if err := checkBaseURL(baseURL); err != nil {
			return err
		}
	}
	switch proto {
	case "", TransportHTTPS, TransportSSH:
	default:
		return invalid("protocol", "must be \"https\" or \"ssh\"")
	}
	if sshPort < 0 || sshPort > 65535 {
		return invalid("ssh_port", "must be from 1 to 65535 (or unset for 22)")
	}
	if sshPort != 0 && proto != TransportSSH {
		return invalid("ssh_port", "is only used with protocol \"ssh\"")
	}
	return nil
}

// checkRepoPath allows "owner/name" style paths: segments of letters,
// digits, ".", "_" and "-", none starting with "." or "-".
func checkRepoPath(repo string, minSeg, maxSeg int) error {
	if repo == "" {
		return invalid("repo", "is required (\"owner/name\")")
	}
	if len(repo) > 512 {
		return invalid("repo", "must be at most 512 bytes")
	}
	segs := strings.Split(repo, "/")
	if len(segs) < minSeg || len(segs) > maxSeg {
		if minSeg == maxSeg {
			return invalid("repo", "must be \"owner/name\"")
		}
		return invalid("repo", "must be \"group/name\" with at most %d levels", maxSeg)
	}
	for _, s := range segs {
		if s == "" || s[0] == '.' || s[0] == '-' {
			return invalid("repo", "parts must be non-empty and not start with \".\" or \"-\"")
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return invalid("repo", "may contain only letters, digits, \".\", \"_\", \"-\" and \"/\"")
			}
		}
	}
	if strings.HasSuffix(repo, ".git") {
		return invalid("repo", "must be given without the \".git\" suffix")
	}
	return nil
}

// checkBaseURL allows https://host[:port][/prefix] without credentials,
// query or fragment.
func checkBaseURL(raw string) error {
	const field = "base_url"
	if err := checkPlain(field, raw); err != nil {
		return err
	}
	if !strings.HasPrefix(raw, "https://") {
		return invalid(field, "must start with https://")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid(field, "is not a valid URL")
	}
	if u.User != nil {
		return invalid(field, "must not contain credentials")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return invalid(field, "must not have a query or fragment")
	}
	if err := checkHostPort(field, u.Host); err != nil {
		return err
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" {
		if err := checkRepoURLPath(field, p); err != nil {
			return err
		}
	}
	return nil
}

func providerCloneURL(baseURL, defaultBase, repo string, proto Transport, sshPort int) string {
	if baseURL == "" {
		baseURL = defaultBase
	}
	baseURL = strings.TrimSuffix(baseURL, "/")
	if proto != TransportSSH {
		return baseURL + "/" + repo + ".git"
	}
	host := baseURL
	if u, err := url.Parse(baseURL); err == nil {
		host = u.Hostname()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	if sshPort != 0 && sshPort != 22 {
		host += ":" + strconv.Itoa(sshPort)
	}
	return "ssh://git@" + host + "/" + repo + ".git"
}

// tokenUser is the HTTP user name each provider expects next to a token.
func tokenUser(k Kind) string {
	switch k {
	case KindGitHub:
		return "x-access-token"
	case KindGitLab:
		return "oauth2"
	case KindBitbucket:
		return "x-token-auth"
	default:
		return "git"
	}
}

func newVariant(k Kind) (Variant, error) {
	switch k {
	case KindURL:
		return &URL{}, nil
	case KindGitHub:
		return &GitHub{}, nil
	case KindGitLab:
		return &GitLab{}, nil
	case KindGitea:
		return &Gitea{}, nil
	case KindBitbucket:
		return &Bitbucket{}, nil
	case "":
		return nil, invalid("kind", "is required (git, github, gitlab, gitea or bitbucket)")
	default:
		return nil, invalid("kind", "must be git, github, gitlab, gitea or bitbucket")
	}
}

// MarshalJSON writes the variant's fields with its "kind".
func (s Source) MarshalJSON() ([]byte, error) {
	if s.Variant == nil {
		return nil, errors.New("gitsrc: cannot marshal an empty Source")
	}
	body, err := json.Marshal(s.Variant)
	if err != nil {
		return nil, err
	}
	kind, _ := json.Marshal(s.Variant.Kind())
	var b bytes.Buffer
	b.WriteString(`{"kind":`)
	b.Write(kind)
	if rest := bytes.TrimPrefix(body, []byte("{")); len(rest) > 1 { // more than "}"
		b.WriteByte(',')
		b.Write(rest)
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

// UnmarshalJSON reads the form MarshalJSON writes. Unknown kinds and
// unknown fields are refused; values are not validated here (call
// Validate), so a stored source can always be loaded and shown.
func (s *Source) UnmarshalJSON(data []byte) error {
	var head struct {
		Kind *Kind `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("gitsrc: source: %w", err)
	}
	if head.Kind == nil {
		return invalid("kind", "is required (git, github, gitlab, gitea or bitbucket)")
	}
	v, err := newVariant(*head.Kind)
	if err != nil {
		return err
	}
	// Decode the whole object again, strictly, into the variant plus "kind".
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(data, &fields); err != nil {
		return fmt.Errorf("gitsrc: source: %w", err)
	}
	delete(fields, "kind")
	rest, _ := json.Marshal(fields)
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("gitsrc: %s source: %w", *head.Kind, err)
	}
	s.Variant = v
	return nil
}
