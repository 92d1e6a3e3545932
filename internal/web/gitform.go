package web

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/webhook"
)

// The git half of the new-app form: where the code comes from, how it is
// built and which pushes deploy. parseGitForm turns it into a
// deploy.GitInput; gitFormField maps the manager's field names
// ("git.url", "git.filter.branches[0]") back onto these inputs.

// sourceGit is the value of the form's "source" radio that picks git.
const sourceGit = "git"

type gitForm struct {
	Provider     Field
	URL          Field
	BaseURL      Field
	SSH          Field
	Branch       Field
	Token        Field
	Dockerfile   Field
	Context      Field
	Target       Field
	BuildArgs    Field
	BuildSecrets Field
	WatchPaths   Field
	Tags         Field
	// Connections are the organization's git connections, offered as
	// provider choices by the new-app form ("connection:<name>").
	Connections []Option
}

// gitProviders are the provider choices; "git" is any server by URL.
var gitProviders = []Option{
	{Value: "git", Label: "Any git server (URL)"},
	{Value: string(gitsrc.KindGitHub), Label: "GitHub"},
	{Value: string(gitsrc.KindGitLab), Label: "GitLab"},
	{Value: string(gitsrc.KindGitea), Label: "Gitea or Forgejo"},
	{Value: string(gitsrc.KindBitbucket), Label: "Bitbucket Cloud"},
}

func newGitForm() gitForm {
	g := gitForm{
		Provider: Field{ID: "git-provider", Name: "git_provider", Label: "Provider", Type: "select", Required: true, Hint: "With a provider, owner/name is enough and webhooks are checked with its signature."},
		URL: Field{ID: "git-url", Name: "git_url", Label: "Repository", Type: "text", Required: true, Code: true, MaxLength: 2048,
			Placeholder: "https://git.example.com/acme/shop.git", Hint: "An https:// or ssh:// URL (or git@host:owner/repo.git); with a provider, owner/name."},
		BaseURL: Field{ID: "git-base-url", Name: "git_base_url", Label: "Server URL", Type: "text", Code: true, Placeholder: "https://git.example.com",
			Hint: "For GitHub Enterprise, a self-managed GitLab, or Gitea. Empty: github.com, gitlab.com or bitbucket.org."},
		SSH: Field{ID: "git-ssh", Name: "git_ssh", Label: "Clone over SSH with a deploy key", Type: "checkbox",
			Hint: "For a provider repository: Berth makes a key pair and shows the public key to add to the repository."},
		Branch: Field{ID: "git-branch", Name: "git_branch", Label: "Branch", Type: "text", Required: true, Code: true, Value: "main", MaxLength: 255,
			Hint: "Deploy builds its newest commit; pushes to it deploy by themselves once the webhook is set up."},
		Token: Field{ID: "git-token", Name: "git_token", Label: "Access token", Type: "password", Autocomplete: "off",
			Hint: "For a private repository over HTTPS: a token that may read it. Stored encrypted and never shown again."},
		Dockerfile: Field{ID: "git-dockerfile", Name: "git_dockerfile", Label: "Dockerfile", Type: "text", Code: true, Placeholder: "Dockerfile", Hint: "Relative to the context directory."},
		Context:    Field{ID: "git-context", Name: "git_context", Label: "Context directory", Type: "text", Code: true, Placeholder: ".", Hint: "What the build sees, relative to the repository root."},
		Target:     Field{ID: "git-target", Name: "git_target", Label: "Target stage", Type: "text", Code: true, Placeholder: "production", Hint: "A stage of a multi-stage Dockerfile; empty builds the last."},
		BuildArgs: Field{ID: "git-build-args", Name: "git_build_args", Label: "Build args", Type: "textarea", Rows: 3, Code: true, Placeholder: "NODE_ENV=production\nAPP_VERSION=1.4",
			Hint: "One KEY=VALUE per line, for the Dockerfile's ARGs. Not for secrets: they stay in the image's history."},
		BuildSecrets: Field{ID: "git-build-secrets", Name: "git_build_secrets", Label: "Build secrets", Type: "textarea", Rows: 3, Code: true, Placeholder: "NPM_TOKEN\nSENTRY_AUTH_TOKEN",
			Hint: "Names of this app's variables (Environment tab) the build reads with RUN --mount=type=secret,id=NAME; they never reach the image."},
		WatchPaths: Field{ID: "git-watch-paths", Name: "git_watch_paths", Label: "Watch paths", Type: "textarea", Rows: 3, Code: true, Placeholder: "src/**\npackage.json",
			Hint: "One pattern per line: a push deploys only when it changes a matching file. Empty: every push to the branch."},
		Tags: Field{ID: "git-tags", Name: "git_tags", Label: "Deploy tag pushes", Type: "checkbox", Hint: "A pushed tag builds and deploys the commit it points to."},
	}
	g.Provider.Options = append([]Option(nil), gitProviders...)
	g.Provider.Options[0].Selected = true
	return g
}

func (g *gitForm) fields() []*Field {
	return []*Field{&g.Provider, &g.URL, &g.BaseURL, &g.SSH, &g.Branch, &g.Token, &g.Dockerfile, &g.Context, &g.Target, &g.BuildArgs, &g.BuildSecrets, &g.WatchPaths, &g.Tags}
}

// parseGitForm reads the git inputs. Problems of its own (a build arg
// without '=') go into errs; the source itself is checked by the manager.
func parseGitForm(get func(string) string, errs fieldErrors) deploy.GitInput {
	repo := strings.TrimSpace(get("git_url"))
	base := strings.TrimRight(strings.TrimSpace(get("git_base_url")), "/")
	var proto gitsrc.Transport
	if get("git_ssh") == "on" {
		proto = gitsrc.TransportSSH
	}
	provider := get("git_provider")
	if conn, ok := connectionOf(provider); ok {
		// The connection knows the server and the token; owner/name is
		// the repository, also when pasted as its address.
		repo, _ = providerRepo(gitsrc.KindGitea, repo, "")
		in := parseGitBuild(get, errs)
		in.Connection = conn
		if repo != "" {
			in.Source.Variant = &gitsrc.Gitea{Repo: repo}
		}
		return in
	}
	return parseGitSource(get, errs, provider, repo, base, proto)
}

// parseGitSource reads a source given by URL or by provider repository.
func parseGitSource(get func(string) string, errs fieldErrors, provider, repo, base string, proto gitsrc.Transport) deploy.GitInput {
	if provider != "" && provider != "git" {
		repo, base = providerRepo(gitsrc.Kind(provider), repo, base)
	}
	var src gitsrc.Source
	switch gitsrc.Kind(provider) {
	case gitsrc.KindGitHub:
		src.Variant = &gitsrc.GitHub{Repo: repo, BaseURL: base, Protocol: proto}
	case gitsrc.KindGitLab:
		src.Variant = &gitsrc.GitLab{Repo: repo, BaseURL: base, Protocol: proto}
	case gitsrc.KindGitea:
		src.Variant = &gitsrc.Gitea{Repo: repo, BaseURL: base, Protocol: proto}
	case gitsrc.KindBitbucket:
		src.Variant = &gitsrc.Bitbucket{Repo: repo, Protocol: proto}
	case "", "git":
		if repo != "" {
			src.Variant = &gitsrc.URL{URL: repo}
		}
	default:
		errs["git_provider"] = "must be one of the listed choices"
	}
	in := parseGitBuild(get, errs)
	in.Source = src
	in.Token = strings.TrimSpace(get("git_token"))
	return in
}

// parseGitBuild reads the branch, build and filter inputs.
func parseGitBuild(get func(string) string, errs fieldErrors) deploy.GitInput {
	branch := strings.TrimSpace(get("git_branch"))
	if branch == "" {
		branch = "main"
	}
	in := deploy.GitInput{Branch: branch,
		Build: store.BuildSettings{
			Dockerfile: strings.TrimSpace(get("git_dockerfile")),
			Context:    strings.TrimSpace(get("git_context")),
			Target:     strings.TrimSpace(get("git_target")),
		},
		Filter: &webhook.Filter{Branches: []string{branch}, Tags: get("git_tags") == "on"},
	}
	err := lines(get("git_build_args"), func(n int, l string) error {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("line %d: write KEY=VALUE, such as NODE_ENV=production", n)
		}
		if in.Build.Args == nil {
			in.Build.Args = map[string]string{}
		}
		in.Build.Args[strings.TrimSpace(k)] = strings.TrimSpace(v)
		return nil
	})
	if err != nil {
		errs["git_build_args"] = err.Error()
	}
	// Names separated by spaces, commas or new lines; none is nil, as stored.
	for _, n := range strings.FieldsFunc(get("git_build_secrets"), func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		in.Build.Secrets = append(in.Build.Secrets, n)
	}
	lines(get("git_watch_paths"), func(_ int, l string) error {
		in.Filter.WatchPaths = append(in.Filter.WatchPaths, l)
		return nil
	})
	return in
}

// providerRepo accepts a provider repository pasted as a URL
// (https://github.com/acme/shop.git) as well as owner/name: the path is the
// repository, and a host other than the provider's own is its server.
func providerRepo(kind gitsrc.Kind, repo, base string) (string, string) {
	if !strings.HasPrefix(repo, "https://") {
		return repo, base
	}
	u, err := url.Parse(repo)
	if err != nil || u.Host == "" {
		return repo, base
	}
	own := map[gitsrc.Kind]string{gitsrc.KindGitHub: "github.com", gitsrc.KindGitLab: "gitlab.com", gitsrc.KindBitbucket: "bitbucket.org"}[kind]
	if base == "" && u.Host != own {
		base = "https://" + u.Host
	}
	return strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git"), base
}

// gitFormField maps the manager's git field names onto the form's inputs.
func gitFormField(field, msg string) (string, string, bool) {
	switch {
	case field == "commit", field == "git.commit":
		return "commit", msg, true
	case strings.HasPrefix(field, "git.filter.branches"):
		return "git_branch", msg, true
	case strings.HasPrefix(field, "git.filter.watch_paths"):
		return "git_watch_paths", msg, true
	case field == "git.connection":
		return "git_provider", msg, true
	case field == "git.base_url":
		return "git_base_url", msg, true
	case field == "git.remove_token":
		return "git_remove_token", msg, true
	case field == "git.branch", field == "git.dockerfile", field == "git.context", field == "git.target", field == "git.token", field == "git.build_args", field == "git.build_secrets":
		return "git_" + strings.TrimPrefix(field, "git."), msg, true
	case field == "git", strings.HasPrefix(field, "git."):
		return "git_url", msg, true
	}
	return "", "", false
}

// sourceForm changes a git app's source on its Source tab: the git half of
// the new-app form, filled with what is stored. The token input starts
// empty and, left so, keeps the stored token; RemoveToken (offered only
// while one is stored) drops it.
type sourceForm struct {
	CSRF, Action, CancelURL string
	FormError               string
	Git                     gitForm
	RemoveToken             Field
}

func newSourceForm(csrf, action, cancel string, src deploy.GitSource) *sourceForm {
	f := &sourceForm{CSRF: csrf, Action: action, CancelURL: cancel, Git: newGitForm()}
	g := &f.Git
	kind := src.Source.Kind()
	for i := range g.Provider.Options {
		g.Provider.Options[i].Selected = g.Provider.Options[i].Value == string(kind)
	}
	switch v := src.Source.Variant.(type) {
	case *gitsrc.URL:
		g.URL.Value = v.URL
	case *gitsrc.GitHub:
		g.URL.Value, g.BaseURL.Value = v.Repo, v.BaseURL
	case *gitsrc.GitLab:
		g.URL.Value, g.BaseURL.Value = v.Repo, v.BaseURL
	case *gitsrc.Gitea:
		g.URL.Value, g.BaseURL.Value = v.Repo, v.BaseURL
	case *gitsrc.Bitbucket:
		g.URL.Value = v.Repo
	}
	t, _ := src.Source.Transport()
	g.SSH.Checked = t == gitsrc.TransportSSH
	g.Branch.Value = src.Branch
	g.Dockerfile.Value, g.Context.Value, g.Target.Value = src.Build.Dockerfile, src.Build.Context, src.Build.Target
	args := make([]string, 0, len(src.Build.Args))
	for k, v := range src.Build.Args {
		args = append(args, k+"="+v)
	}
	slices.Sort(args)
	g.BuildArgs.Value = strings.Join(args, "\n")
	g.BuildSecrets.Value = strings.Join(src.Build.Secrets, "\n")
	g.WatchPaths.Value = strings.Join(src.Filter.WatchPaths, "\n")
	g.Tags.Checked = src.Filter.Tags
	if src.HasToken {
		g.Token.Placeholder = "the stored token"
		g.Token.Hint = "A token is stored, encrypted. Leave this empty to keep it, or type a new one to replace it."
		f.RemoveToken = Field{ID: "git-remove-token", Name: "git_remove_token", Label: "Remove the stored token", Type: "checkbox",
			Hint: "Berth then fetches without one: a private repository no longer builds."}
	}
	return f
}

func (f *sourceForm) fields() []*Field {
	return append(f.Git.fields(), &f.RemoveToken)
}

// fill puts the submitted values back into the form; the token is never
// sent back.
func (f *sourceForm) fill(get func(string) string) { fillFields(f.fields(), get) }

// keepSSHPort carries the stored SSH port of a GitLab or Gitea source (set
// through the API: the form has no input for it) over to the source read
// from the form, while that is still SSH to the same server.
func keepSSHPort(cur gitsrc.Source, next *gitsrc.Source) {
	switch n := next.Variant.(type) {
	case *gitsrc.GitLab:
		if c, ok := cur.Variant.(*gitsrc.GitLab); ok && n.Protocol == gitsrc.TransportSSH && c.BaseURL == n.BaseURL {
			n.SSHPort = c.SSHPort
		}
	case *gitsrc.Gitea:
		if c, ok := cur.Variant.(*gitsrc.Gitea); ok && n.Protocol == gitsrc.TransportSSH && c.BaseURL == n.BaseURL {
			n.SSHPort = c.SSHPort
		}
	}
}
