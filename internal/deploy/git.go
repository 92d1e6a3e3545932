package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/build"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/webhook"
)

// GitInput is where a new git-sourced app's code comes from and how it is
// built.
type GitInput struct {
	Source gitsrc.Source
	// Branch is built by a deploy that names no commit, and (unless Filter
	// says otherwise) deployed on every push to it.
	Branch string
	// Token authenticates HTTPS fetches of a private repository.
	Token string
	Build store.BuildSettings
	// Filter says which pushes deploy; nil means pushes to Branch.
	Filter *webhook.Filter
	// Connection names the organization's git connection the repository is
	// reached through (Source is then a provider variant with only its Repo
	// set); its token is used unless Token is given. Creating the app then
	// sets its webhook up at the provider, at WebhookBase + the app's
	// webhook path, and its builds report commit statuses.
	Connection  string
	WebhookBase string
}

// GitSource is a git-sourced app's source as users see it: no secret in it.
type GitSource struct {
	Source   gitsrc.Source
	CloneURL string
	Branch   string
	Build    store.BuildSettings
	Filter   webhook.Filter
	HasToken bool
	// DeployKey is the public key (authorized_keys form) to add to the
	// repository for SSH sources; "" for HTTPS.
	DeployKey  string
	KnownHosts string
	// WebhookID is the last segment of the app's webhook URL.
	WebhookID string
	// Provider signs the webhooks; "" for a plain git URL, whose deliveries
	// are recognised by their headers.
	Provider webhook.Provider
	// ProviderWebhook says, for an app just made from a connection, whether
	// its webhook was set up at the provider (or why not).
	ProviderWebhook string
}

// WebhookPath is where providers deliver an app's webhooks.
func WebhookPath(id string) string { return "/hooks/" + id }

// imageRepository names the images built for an app (tags: commit and
// deployment id), in the build registry when there is one. The app id
// keeps it stable across renames.
func (m *Manager) imageRepository(a store.App) string {
	repo := "berth/" + strings.ReplaceAll(a.ID, "_", "-")
	if m.builds != nil && m.builds.Registry != "" {
		repo = m.builds.Registry + "/" + strings.ReplaceAll(a.ID, "_", "-")
	}
	return repo
}

func sourceAAD(appID, what string) string { return "app-source:" + appID + ":" + what }

// providerOf is the webhook provider of a source kind; "" for a plain URL.
func providerOf(k gitsrc.Kind) webhook.Provider {
	switch k {
	case gitsrc.KindGitHub:
		return webhook.GitHub
	case gitsrc.KindGitLab:
		return webhook.GitLab
	case gitsrc.KindGitea:
		return webhook.Gitea
	case gitsrc.KindBitbucket:
		return webhook.Bitbucket
	}
	return ""
}

// validateGit checks every user value of a git source before anything is
// stored: the URL, the branch, the build paths, args and secrets, the push
// filter.
func validateGit(g *GitInput) error {
	if g.Source.Variant == nil {
		return &app.FieldError{Field: "git.url", Message: "is required: the repository to build, e.g. https://git.example.com/shop/api.git"}
	}
	if _, err := g.Source.CloneURL(); err != nil {
		return gitField("git", err)
	}
	if g.Branch == "" {
		g.Branch = "main"
	}
	if err := gitsrc.ValidateBranch(g.Branch); err != nil {
		return gitField("git.branch", err)
	}
	for field, p := range map[string]string{"git.dockerfile": g.Build.Dockerfile, "git.context": g.Build.Context} {
		if p != "" {
			if err := gitsrc.ValidatePath(field, p); err != nil {
				return gitField(field, err)
			}
		}
	}
	if g.Build.Target != "" && !validTarget(g.Build.Target) {
		return &app.FieldError{Field: "git.target", Message: fmt.Sprintf("%q is not a stage name (letters, digits, '.', '_' and '-')", g.Build.Target)}
	}
	for k := range g.Build.Args {
		if err := app.ValidateEnvKey(k); err != nil {
			return &app.FieldError{Field: "git.build_args", Message: fmt.Sprintf("%q is not a valid build arg name", k)}
		}
	}
	if err := validateBuildSecrets(g.Build.Secrets); err != nil {
		return err
	}
	if g.Filter == nil {
		g.Filter = &webhook.Filter{Branches: []string{g.Branch}}
	}
	if err := g.Filter.Validate(); err != nil {
		return gitField("git.filter", err)
	}
	if strings.ContainsAny(g.Token, "\r\n") {
		return &app.FieldError{Field: "git.token", Message: "must be one line"}
	}
	return nil
}

// maxBuildSecrets bounds an app's build secrets.
const maxBuildSecrets = 32

// validateBuildSecrets checks the names of the variables a build mounts as
// secrets: variable names, each once.
func validateBuildSecrets(names []string) error {
	if len(names) > maxBuildSecrets {
		return &app.FieldError{Field: "git.build_secrets", Message: fmt.Sprintf("has %d names; the limit is %d", len(names), maxBuildSecrets)}
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		var fe *app.FieldError
		if err := app.ValidateEnvKey(n); errors.As(err, &fe) {
			return &app.FieldError{Field: "git.build_secrets", Message: fe.Message}
		}
		if seen[n] {
			return &app.FieldError{Field: "git.build_secrets", Message: fmt.Sprintf("names %s twice", n)}
		}
		seen[n] = true
	}
	return nil
}

func validTarget(s string) bool {
	if len(s) > 128 || s[0] == '-' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
}

// gitField turns the git packages' validation errors into a FieldError that
// names the field; their messages never carry a secret.
func gitField(field string, err error) error {
	var ve *gitsrc.ValidationError
	if errors.As(err, &ve) {
		return &app.FieldError{Field: "git." + strings.TrimPrefix(ve.Field, "git."), Message: ve.Reason}
	}
	var fe *webhook.FieldError
	if errors.As(err, &fe) {
		return &app.FieldError{Field: "git.filter." + fe.Field, Message: fe.Message}
	}
	return &app.FieldError{Field: field, Message: err.Error()}
}

// checkGitHost refuses a repository whose host resolves to a loopback,
// private, shared (CGNAT), link-local or unspecified address, unless the
// server allows private hosts: otherwise anyone who may create an app could
// make the server fetch from services only it can reach. It runs when the
// source is stored and again before every fetch (DNS may change between).
func (m *Manager) checkGitHost(ctx context.Context, s gitsrc.Source) error {
	return m.checkHost(ctx, gitHost(cloneURL(s)))
}

// checkHost is checkGitHost's rule for one host; errors name git.url.
func (m *Manager) checkHost(ctx context.Context, host string) error {
	if m.builds == nil || m.builds.PrivateHosts {
		return nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return &app.FieldError{Field: "git.url", Message: fmt.Sprintf("host %s does not resolve", host)}
	}
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() || cgnat.Contains(ip) {
			return &app.FieldError{Field: "git.url", Message: fmt.Sprintf("host %s resolves to %s, a private address; this server fetches only from public addresses (--git-private-hosts)", host, ip)}
		}
	}
	return nil
}

// gitHost is the host of a clone URL: https://host:port/…, ssh://user@host/…
// or the scp-like user@host:path.
func gitHost(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if p, err := url.Parse(u); err == nil {
			return p.Hostname()
		}
		return ""
	}
	u, _, _ = strings.Cut(u, ":")
	if i := strings.LastIndex(u, "@"); i >= 0 {
		u = u[i+1:]
	}
	return u
}

// CreateGitApp stores an app built from git: the app (its spec's image is
// the repository its builds are tagged in), its source with the token and a
// generated deploy key sealed, and a webhook secret. Nothing is built until
// it is deployed or a push arrives.
func (m *Manager) CreateGitApp(ctx context.Context, p auth.Principal, in CreateAppInput, g GitInput) (store.App, GitSource, error) {
	if err := allow(p, authz.AppWrite); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := app.ValidateName("name", in.Ref.Name); err != nil {
		return store.App{}, GitSource{}, err
	}
	var conn store.GitConnection
	if g.Connection != "" {
		var err error
		if conn, err = m.fromConnection(ctx, p, &g); err != nil {
			return store.App{}, GitSource{}, err
		}
	}
	if err := validateGit(&g); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := m.checkGitHost(ctx, g.Source); err != nil {
		return store.App{}, GitSource{}, err
	}
	in.Spec.Image = "berth/pending" // replaced below, once the app has its id
	in.Spec.Normalize()
	if err := in.Spec.Validate(); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := sealFiles(m.keys, &in.Spec); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := m.checkCapacity(ctx, in.Spec.Resources); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := checkBinds(p, nil, in.Spec.Binds); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := validateEnv(in.Env); err != nil {
		return store.App{}, GitSource{}, err
	}
	_, env, err := m.environment(ctx, p, in.Ref.Project, in.Ref.Environment, authz.AppWrite)
	if err != nil {
		return store.App{}, GitSource{}, err
	}
	a := store.App{ID: store.NewID("app"), OrganizationID: p.Organization.ID, ProjectID: env.ProjectID, EnvironmentID: env.ID, Name: in.Ref.Name, Spec: in.Spec}
	a.Spec.Image = m.imageRepository(a)
	src := store.AppSource{Source: g.Source, ConnectionID: conn.ID, Branch: g.Branch, Build: g.Build, Filter: *g.Filter, WebhookID: randomToken(18)}
	if err := m.sealSource(&src, a.ID, g.Token, randomToken(32)); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := m.ensureDeployKey(&src, a.ID, in.Ref); err != nil {
		return store.App{}, GitSource{}, err
	}
	if err := m.db.CreateGitApp(ctx, m.now(), &a, &src); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.App{}, GitSource{}, &app.FieldError{Field: "name", Message: fmt.Sprintf("environment %s of project %s already has an app named %q", env.Name, in.Ref.Project, in.Ref.Name)}
		}
		return store.App{}, GitSource{}, err
	}
	if len(in.Env) > 0 {
		if err := m.replaceEnv(ctx, p, ScopeApp, a.ID, in.Env); err != nil {
			m.db.DeleteApp(ctx, p.Organization.ID, a.ID)
			return store.App{}, GitSource{}, err
		}
	}
	view, err := m.sourceView(src)
	if err == nil && conn.ID != "" {
		view.ProviderWebhook = m.createProviderWebhook(ctx, conn, src, g.WebhookBase)
	}
	return a, view, err
}

// sealSource seals the token (when given) and the webhook secret into src.
func (m *Manager) sealSource(src *store.AppSource, appID, token, secret string) (err error) {
	if token != "" {
		if src.SealedToken, err = m.keys.Seal([]byte(token), sourceAAD(appID, "token")); err != nil {
			return err
		}
	}
	src.SealedSecret, err = m.keys.Seal([]byte(secret), sourceAAD(appID, "webhook-secret"))
	return err
}

// ensureDeployKey gives an SSH source of app appID (ref names its key) a
// sealed deploy key unless it has one.
func (m *Manager) ensureDeployKey(src *store.AppSource, appID string, ref AppRef) error {
	if t, _ := src.Source.Transport(); t != gitsrc.TransportSSH || src.SealedKey != "" {
		return nil
	}
	key, err := gitsrc.GenerateDeployKey(ref.Project + "-" + ref.Name)
	if err != nil {
		return err
	}
	src.SealedKey, err = m.keys.Seal(key.PrivateKeyPEM, sourceAAD(appID, "deploy-key"))
	return err
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func (m *Manager) sourceView(s store.AppSource) (GitSource, error) {
	url, _ := s.Source.CloneURL()
	v := GitSource{Source: s.Source, CloneURL: url, Branch: s.Branch, Build: s.Build, Filter: s.Filter, HasToken: s.SealedToken != "",
		KnownHosts: s.KnownHosts, WebhookID: s.WebhookID, Provider: providerOf(s.Source.Kind())}
	if s.SealedKey != "" {
		pem, err := m.keys.Open(s.SealedKey, sourceAAD(s.AppID, "deploy-key"))
		if err != nil {
			return GitSource{}, err
		}
		key, err := gitsrc.ParseDeployKey(s.AppID, pem)
		if err != nil {
			return GitSource{}, err
		}
		v.DeployKey = key.AuthorizedKey()
	}
	return v, nil
}

// GitSource returns an app's git source; an app deployed from an image is
// ErrNotFound.
func (m *Manager) GitSource(ctx context.Context, p auth.Principal, ref AppRef) (GitSource, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return GitSource{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	if err != nil {
		return GitSource{}, err
	}
	s, err := m.db.AppSource(ctx, p.Organization.ID, l.App.ID)
	if err != nil {
		return GitSource{}, err
	}
	return m.sourceView(s)
}

// WebhookSecret reveals an app's webhook secret, for the provider's
// settings. Callers audit the reveal.
func (m *Manager) WebhookSecret(ctx context.Context, p auth.Principal, ref AppRef) (string, error) {
	if err := allow(p, authz.AppEnvReveal); err != nil {
		return "", err
	}
	l, err := m.locate(ctx, p, ref, authz.AppEnvReveal)
	if err != nil {
		return "", err
	}
	s, err := m.db.AppSource(ctx, p.Organization.ID, l.App.ID)
	if err != nil {
		return "", err
	}
	secret, err := m.keys.Open(s.SealedSecret, sourceAAD(s.AppID, "webhook-secret"))
	return string(secret), err
}

// GitChange replaces a git app's source: the repository, branch, build
// settings and push filter as in GitInput (a nil Filter means pushes to the
// branch). An empty Token keeps the stored one unless RemoveToken.
type GitChange struct {
	GitInput
	RemoveToken bool
}

// UpdateGitSource replaces the source of a git-sourced app. The next build
// fetches and builds by it; what is deployed stays until then. A new host
// forgets the SSH host keys pinned for the old one, and an SSH source that
// has no deploy key yet gets one (shown in the result).
func (m *Manager) UpdateGitSource(ctx context.Context, p auth.Principal, ref AppRef, c GitChange) (GitSource, error) {
	if err := allow(p, authz.AppWrite); err != nil {
		return GitSource{}, err
	}
	if c.Token != "" && c.RemoveToken {
		return GitSource{}, &app.FieldError{Field: "git.remove_token", Message: "cannot go with a new token: give one or the other"}
	}
	var conn store.GitConnection
	if c.Connection != "" {
		var err error
		if conn, err = m.fromConnection(ctx, p, &c.GitInput); err != nil {
			return GitSource{}, err
		}
	}
	if err := validateGit(&c.GitInput); err != nil {
		return GitSource{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.AppWrite)
	if err != nil {
		return GitSource{}, err
	}
	cur, err := m.db.AppSource(ctx, p.Organization.ID, l.App.ID)
	if err != nil {
		return GitSource{}, err
	}
	if err := m.checkGitHost(ctx, c.Source); err != nil {
		return GitSource{}, err
	}
	next := cur
	next.Source, next.Branch, next.Build, next.Filter = c.Source, c.Branch, c.Build, *c.Filter
	switch {
	case c.Token != "":
		if next.SealedToken, err = m.keys.Seal([]byte(c.Token), sourceAAD(cur.AppID, "token")); err != nil {
			return GitSource{}, err
		}
	case c.RemoveToken:
		next.SealedToken = ""
	}
	if gitHost(cloneURL(cur.Source)) != gitHost(cloneURL(next.Source)) {
		// Neither the pinned keys nor the connection are the new host's.
		next.KnownHosts, next.ConnectionID = "", ""
	}
	if conn.ID != "" {
		next.ConnectionID = conn.ID
	}
	if err := m.ensureDeployKey(&next, cur.AppID, ref); err != nil {
		return GitSource{}, err
	}
	if err := m.db.UpdateAppSource(ctx, m.now(), &next); err != nil {
		return GitSource{}, err
	}
	return m.sourceView(next)
}

// RotateWebhookSecret gives an app a new webhook secret and returns it:
// deliveries signed with the old one are refused from then on. It needs the
// permission to change the app and to reveal its secrets; callers audit it.
func (m *Manager) RotateWebhookSecret(ctx context.Context, p auth.Principal, ref AppRef) (string, error) {
	for _, perm := range []authz.Permission{authz.AppWrite, authz.AppEnvReveal} {
		if err := allow(p, perm); err != nil {
			return "", err
		}
	}
	l, err := m.locate(ctx, p, ref, authz.AppWrite)
	if err != nil {
		return "", err
	}
	if !p.CanIn(authz.AppEnvReveal, l.App.ProjectID, l.App.EnvironmentID) {
		return "", forbidden(p, authz.AppEnvReveal)
	}
	src, err := m.db.AppSource(ctx, p.Organization.ID, l.App.ID)
	if err != nil {
		return "", err
	}
	secret := randomToken(32)
	if src.SealedSecret, err = m.keys.Seal([]byte(secret), sourceAAD(src.AppID, "webhook-secret")); err != nil {
		return "", err
	}
	if err := m.db.UpdateAppSource(ctx, m.now(), &src); err != nil {
		return "", err
	}
	return secret, nil
}

// WebhookResult is the answer to a webhook delivery.
type WebhookResult struct {
	Status  int    // HTTP status to answer with
	Message string // why, in plain words
	Build   *store.Build
}

// Webhook handles a delivery to the app whose webhook URL ends in id: it
// checks the signature with the app's secret, ignores what it has seen
// before and what its filter does not deploy, and queues a build of the
// pushed commit. Every refusal has a status and a reason; nothing is queued
// unless the delivery is authentic.
func (m *Manager) Webhook(ctx context.Context, id string, h http.Header, body []byte) (WebhookResult, error) {
	src, err := m.db.AppSourceByWebhook(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return WebhookResult{Status: http.StatusNotFound, Message: "no app has this webhook URL"}, nil
	} else if err != nil {
		return WebhookResult{}, err
	}
	provider := providerOf(src.Source.Kind())
	if provider == "" {
		var ok bool
		if provider, ok = webhook.Detect(h); !ok {
			return WebhookResult{Status: http.StatusBadRequest, Message: "not a webhook of GitHub, GitLab, Gitea or Bitbucket (no event header)"}, nil
		}
	}
	secret, err := m.keys.Open(src.SealedSecret, sourceAAD(src.AppID, "webhook-secret"))
	if err != nil {
		return WebhookResult{}, err
	}
	if err := webhook.Verify(provider, secret, h, body); err != nil {
		return WebhookResult{Status: http.StatusUnauthorized, Message: err.Error()}, nil
	}
	events, err := webhook.ParseAll(provider, h, body)
	if err != nil {
		return WebhookResult{Status: http.StatusBadRequest, Message: err.Error()}, nil
	}
	if len(events) > 0 && events[0].DeliveryID != "" {
		if err := m.db.RecordDelivery(ctx, m.now(), src.AppID, events[0].DeliveryID); errors.Is(err, store.ErrConflict) {
			return WebhookResult{Status: http.StatusOK, Message: "delivery " + events[0].DeliveryID + " was received before; ignored"}, nil
		} else if err != nil {
			return WebhookResult{}, err
		}
	}
	ev, ok, reason := webhook.FirstToDeploy(src.Filter, events)
	if !ok {
		return WebhookResult{Status: http.StatusOK, Message: reason}, nil
	}
	a, err := m.db.App(ctx, src.OrganizationID, src.AppID)
	if err != nil {
		return WebhookResult{}, err
	}
	b := store.Build{OrganizationID: a.OrganizationID, AppID: a.ID, Trigger: "push", Ref: ev.Ref, Commit: ev.Commit,
		Author: ev.HeadCommit.AuthorName, Message: firstLine(ev.HeadCommit.Message), CreatedBy: provider.Title() + " webhook"}
	if err := m.queueBuild(ctx, a, &b); err != nil {
		return WebhookResult{}, err
	}
	return WebhookResult{Status: http.StatusAccepted, Message: fmt.Sprintf("build #%d of %s queued", b.Seq, shortCommit(b.Commit)), Build: &b}, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func shortCommit(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// buildTags are the tags of a build's image: per commit and per deployment.
func (m *Manager) buildTags(a store.App, b store.Build) []string {
	return build.Tags(m.imageRepository(a), b.Commit, b.DeploymentID)
}
