package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/forge"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
)

// A git connection is an organization's account at a git provider: people
// pick repositories and branches through it when they create apps, the
// app's webhook is set up at the provider for them, and builds report
// commit statuses back. Only Gitea (and Forgejo, which speaks its API) is
// built: GitHub, GitLab and Bitbucket need their servers to test against.

// Connection is a git connection as people see it: never its token.
type Connection struct {
	ID, Name, Provider, BaseURL, Account string
	CreatedAt                            time.Time
}

// ConnectionInput is a new git connection.
type ConnectionInput struct {
	Name     string
	Provider string // gitea
	BaseURL  string // the provider's server, e.g. https://gitea.example.com
	Token    string
}

// forgeTimeout bounds one call to a provider's API.
const forgeTimeout = 15 * time.Second

func connectionAAD(id string) string { return "git-connection:" + id }

func connectionView(c store.GitConnection) Connection {
	return Connection{ID: c.ID, Name: c.Name, Provider: c.Provider, BaseURL: c.BaseURL, Account: c.Account, CreatedAt: c.CreatedAt}
}

// newForge is the API client of a provider; errors name the field.
func newForge(provider, baseURL, token string, hc *http.Client) (forge.Client, error) {
	if provider != string(gitsrc.KindGitea) {
		return nil, &app.FieldError{Field: "provider", Message: "must be gitea (Gitea or Forgejo); GitHub, GitLab and Bitbucket connections are not built yet: create the app from the repository's URL with a token"}
	}
	c, err := forge.NewGitea(baseURL, token, hc)
	var ie *forge.InputError
	if errors.As(err, &ie) {
		if ie.Field == "access token" {
			return nil, &app.FieldError{Field: "token", Message: ie.Want}
		}
		return nil, &app.FieldError{Field: "base_url", Message: fmt.Sprintf("%q: %s", ie.Value, ie.Want)}
	}
	return c, err
}

// CreateConnection checks the token against the provider (it must name a
// user) and stores the connection with the token sealed.
func (m *Manager) CreateConnection(ctx context.Context, p auth.Principal, in ConnectionInput) (Connection, error) {
	if err := allowOrg(p, authz.ConnectionWrite); err != nil {
		return Connection{}, err
	}
	if err := app.ValidateName("name", in.Name); err != nil {
		return Connection{}, err
	}
	in.BaseURL = strings.TrimRight(strings.TrimSpace(in.BaseURL), "/")
	if !strings.HasPrefix(in.BaseURL, "https://") {
		return Connection{}, &app.FieldError{Field: "base_url", Message: "must start with https://: the token goes with every request"}
	}
	if in.Token == "" || strings.ContainsAny(in.Token, "\r\n ") {
		return Connection{}, &app.FieldError{Field: "token", Message: "is required: an access token of the provider account, on one line"}
	}
	hc, err := m.forgeHTTP()
	if err != nil {
		return Connection{}, err
	}
	client, err := newForge(in.Provider, in.BaseURL, in.Token, hc)
	if err != nil {
		return Connection{}, err
	}
	if err := m.checkURLHost(ctx, "base_url", in.BaseURL); err != nil {
		return Connection{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, forgeTimeout)
	defer cancel()
	account, err := client.Account(cctx)
	switch {
	case errors.Is(err, forge.ErrUnauthorized), errors.Is(err, forge.ErrForbidden):
		return Connection{}, &app.FieldError{Field: "token", Message: err.Error()}
	case err != nil:
		return Connection{}, &app.FieldError{Field: "base_url", Message: err.Error()}
	}
	c := store.GitConnection{ID: store.NewID("gcn"), OrganizationID: p.Organization.ID, Name: in.Name, Provider: in.Provider,
		BaseURL: in.BaseURL, Account: account, CreatedBy: p.User.ID}
	if c.SealedToken, err = m.keys.Seal([]byte(in.Token), connectionAAD(c.ID)); err != nil {
		return Connection{}, err
	}
	if err := m.db.CreateGitConnection(ctx, m.now(), &c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Connection{}, &app.FieldError{Field: "name", Message: fmt.Sprintf("the organization already has a connection named %q", in.Name)}
		}
		return Connection{}, err
	}
	return connectionView(c), nil
}

// Connections lists the organization's git connections by name.
func (m *Manager) Connections(ctx context.Context, p auth.Principal) ([]Connection, error) {
	if err := allowOrg(p, authz.ConnectionRead); err != nil {
		return nil, err
	}
	cs, err := m.db.GitConnections(ctx, p.Organization.ID)
	if err != nil {
		return nil, err
	}
	out := make([]Connection, len(cs))
	for i, c := range cs {
		out[i] = connectionView(c)
	}
	return out, nil
}

// DeleteConnection removes a connection by name. Apps made from it keep
// building with their own copy of the token; their builds stop reporting
// commit statuses.
func (m *Manager) DeleteConnection(ctx context.Context, p auth.Principal, name string) error {
	if err := allowOrg(p, authz.ConnectionWrite); err != nil {
		return err
	}
	c, err := m.db.GitConnectionByName(ctx, p.Organization.ID, name)
	if err != nil {
		return err
	}
	return m.db.DeleteGitConnection(ctx, p.Organization.ID, c.ID)
}

// connection opens a connection of the organization by name, with its API
// client.
func (m *Manager) connection(ctx context.Context, orgID, name string) (store.GitConnection, forge.Client, error) {
	c, err := m.db.GitConnectionByName(ctx, orgID, name)
	if err != nil {
		return store.GitConnection{}, nil, err
	}
	client, err := m.forgeOf(c)
	return c, client, err
}

func (m *Manager) forgeOf(c store.GitConnection) (forge.Client, error) {
	token, err := m.keys.Open(c.SealedToken, connectionAAD(c.ID))
	if err != nil {
		return nil, err
	}
	hc, err := m.forgeHTTP()
	if err != nil {
		return nil, err
	}
	return newForge(c.Provider, c.BaseURL, string(token), hc)
}

// forgeHTTP is the HTTP client of provider APIs: it trusts the system's
// CAs and --git-ca-file's, as git over HTTPS does.
func (m *Manager) forgeHTTP() (*http.Client, error) {
	hc := &http.Client{Timeout: forgeTimeout}
	if m.builds == nil || m.builds.GitCAFile == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(m.builds.GitCAFile)
	if err != nil {
		return nil, fmt.Errorf("git CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("git CA file %s holds no PEM certificate", m.builds.GitCAFile)
	}
	hc.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}
	return hc, nil
}

// ConnectionRepos lists the repositories a connection's account can read.
func (m *Manager) ConnectionRepos(ctx context.Context, p auth.Principal, name string) ([]forge.Repo, error) {
	if err := allowOrg(p, authz.ConnectionRead); err != nil {
		return nil, err
	}
	_, client, err := m.connection(ctx, p.Organization.ID, name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, forgeTimeout)
	defer cancel()
	return client.Repos(ctx)
}

// ConnectionBranches lists the branches of a repository ("owner/name")
// through a connection.
func (m *Manager) ConnectionBranches(ctx context.Context, p auth.Principal, name, repo string) ([]string, error) {
	if err := allowOrg(p, authz.ConnectionRead); err != nil {
		return nil, err
	}
	_, client, err := m.connection(ctx, p.Organization.ID, name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, forgeTimeout)
	defer cancel()
	bs, err := client.Branches(ctx, repo)
	if errors.Is(err, forge.ErrInvalid) {
		return nil, &app.FieldError{Field: "repo", Message: err.Error()}
	}
	return bs, err
}

// fromConnection makes g's source the repository g.Repo of the connection
// g.Connection, with the connection's token unless g has one. It returns
// the connection.
func (m *Manager) fromConnection(ctx context.Context, p auth.Principal, g *GitInput) (store.GitConnection, error) {
	if err := allowOrg(p, authz.ConnectionRead); err != nil {
		return store.GitConnection{}, err
	}
	c, err := m.db.GitConnectionByName(ctx, p.Organization.ID, g.Connection)
	if errors.Is(err, store.ErrNotFound) {
		return c, &app.FieldError{Field: "git.connection", Message: fmt.Sprintf("the organization has no git connection named %q", g.Connection)}
	} else if err != nil {
		return c, err
	}
	repo := ""
	if v, ok := g.Source.Variant.(*gitsrc.Gitea); ok {
		repo = v.Repo
	}
	if repo == "" {
		return c, &app.FieldError{Field: "git.repo", Message: "is required with a connection: the repository as owner/name"}
	}
	// The provider says whether the account can read it, and its default
	// branch is the one to build when none is given.
	client, err := m.forgeOf(c)
	if err != nil {
		return c, err
	}
	rctx, cancel := context.WithTimeout(ctx, forgeTimeout)
	defer cancel()
	r, err := client.Repo(rctx, repo)
	switch {
	case errors.Is(err, forge.ErrNotFound), errors.Is(err, forge.ErrInvalid):
		return c, &app.FieldError{Field: "git.repo", Message: err.Error()}
	case err != nil:
		return c, &app.FieldError{Field: "git.connection", Message: err.Error()}
	}
	if g.Branch == "" {
		g.Branch = r.DefaultBranch
	}
	g.Source = gitsrc.Source{Variant: &gitsrc.Gitea{Repo: repo, BaseURL: c.BaseURL}}
	if g.Token == "" {
		token, err := m.keys.Open(c.SealedToken, connectionAAD(c.ID))
		if err != nil {
			return c, err
		}
		g.Token = string(token)
	}
	return c, nil
}

// createProviderWebhook sets the app's webhook up at the connection's
// provider. It answers what happened in plain words: a failure leaves the
// app as it is, to be set up by hand.
func (m *Manager) createProviderWebhook(ctx context.Context, c store.GitConnection, src store.AppSource, base string) string {
	if base == "" {
		return "not created at the provider: the server does not know its public URL (--public-url); set the webhook up by hand"
	}
	client, err := m.forgeOf(c)
	if err != nil {
		return "not created at the provider: " + err.Error()
	}
	secret, err := m.keys.Open(src.SealedSecret, sourceAAD(src.AppID, "webhook-secret"))
	if err != nil {
		return "not created at the provider: " + err.Error()
	}
	repo := src.Source.Variant.(*gitsrc.Gitea).Repo
	ctx, cancel := context.WithTimeout(ctx, forgeTimeout)
	defer cancel()
	if err := client.CreateWebhook(ctx, repo, strings.TrimRight(base, "/")+WebhookPath(src.WebhookID), string(secret)); err != nil {
		return "not created at the provider (" + err.Error() + "); set it up by hand"
	}
	return "created at " + c.BaseURL + "/" + repo
}

// checkURLHost applies checkGitHost's private-address rule to the host of
// an http(s) URL named by field.
func (m *Manager) checkURLHost(ctx context.Context, field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &app.FieldError{Field: field, Message: "is not a URL"}
	}
	err = m.checkHost(ctx, u.Hostname())
	var fe *app.FieldError
	if errors.As(err, &fe) {
		fe.Field = field
	}
	return err
}
