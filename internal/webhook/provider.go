package webhook

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Provider is the git hosting service that sends an app's webhooks.
type Provider string

const (
	GitHub    Provider = "github"
	GitLab    Provider = "gitlab"
	Gitea     Provider = "gitea"
	Bitbucket Provider = "bitbucket" // Bitbucket Cloud
)

// Providers lists every supported provider, in the order shown to users.
var Providers = []Provider{GitHub, GitLab, Gitea, Bitbucket}

// ParseProvider reads a provider name as stored in configuration or sent by
// the API. Names are lower case; anything else is a *FieldError on
// "provider" that lists the allowed names.
func ParseProvider(s string) (Provider, error) {
	for _, p := range Providers {
		if s == string(p) {
			return p, nil
		}
	}
	names := make([]string, len(Providers))
	for i, p := range Providers {
		names[i] = string(p)
	}
	what := strconv.Quote(s)
	if s == "" {
		what = "is empty"
	} else {
		what = what + " is not supported"
	}
	return "", &FieldError{Field: "provider", Message: fmt.Sprintf("%s; allowed: %s", what, strings.Join(names, ", "))}
}

// UnmarshalText makes Provider usable in JSON configuration with the same
// validation as ParseProvider.
func (p *Provider) UnmarshalText(b []byte) error {
	v, err := ParseProvider(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Provider) String() string { return string(p) }

// Title is the provider's name for messages ("GitHub").
func (p Provider) Title() string {
	switch p {
	case GitHub:
		return "GitHub"
	case GitLab:
		return "GitLab"
	case Gitea:
		return "Gitea"
	case Bitbucket:
		return "Bitbucket"
	}
	return strconv.Quote(string(p))
}

// Header names as the providers spell them (http.Header.Values
// canonicalizes). Signature and event headers are what
// the providers document; none of them is covered by the signature.
const (
	headerGitHubSignature   = "X-Hub-Signature-256"
	headerGitHubEvent       = "X-GitHub-Event"
	headerGitHubDelivery    = "X-GitHub-Delivery"
	headerGitLabToken       = "X-Gitlab-Token"
	headerGitLabEvent       = "X-Gitlab-Event"
	headerGitLabEventUUID   = "X-Gitlab-Event-UUID"
	headerIdempotencyKey    = "Idempotency-Key"
	headerGiteaSignature    = "X-Gitea-Signature"
	headerGiteaEvent        = "X-Gitea-Event"
	headerGiteaDelivery     = "X-Gitea-Delivery"
	headerBitbucketSig      = "X-Hub-Signature"
	headerBitbucketEvent    = "X-Event-Key"
	headerBitbucketDelivery = "X-Request-UUID"
)

// SignatureHeader names the header that authenticates p's deliveries, for
// setup instructions and logs.
func (p Provider) SignatureHeader() string {
	switch p {
	case GitHub:
		return headerGitHubSignature
	case GitLab:
		return headerGitLabToken
	case Gitea:
		return headerGiteaSignature
	case Bitbucket:
		return headerBitbucketSig
	}
	return ""
}

// Detect names the provider that sent a delivery by its event header, for
// sources that are a plain git URL. Gitea also sends GitHub's headers, so it
// is recognised first.
func Detect(h http.Header) (Provider, bool) {
	for _, c := range []struct {
		header string
		p      Provider
	}{{headerGiteaEvent, Gitea}, {headerGitLabEvent, GitLab}, {headerBitbucketEvent, Bitbucket}, {headerGitHubEvent, GitHub}} {
		if h.Get(c.header) != "" {
			return c.p, true
		}
	}
	return "", false
}
