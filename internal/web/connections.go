package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/forge"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
)

// Git connections: an organization's account at a git provider, managed in
// a section of the settings page like the registries, and offered by the
// new-app form, whose repository and branch inputs become selects filled
// through the connection (htmx) and stay text inputs without JavaScript.

// registerConnections mounts the settings actions of git connections and
// the new-app form's repository and branch partials.
func (u *ui) registerConnections(mux *http.ServeMux) {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, auth.Principal)) {
		mux.HandleFunc(pattern, u.signedIn(u.needApps(fn)))
	}
	h("POST /settings/connections", u.createConnection)
	h("POST /settings/connections/{name}/delete", u.deleteConnection)
	h("GET /connections/repos", u.connectionRepos)
	h("GET /connections/branches", u.connectionBranches)
}

// connectionsView is the git connections section; htmx swaps it as a whole.
type connectionsView struct {
	CSRF      string
	CanWrite  bool // the role may add and remove connections
	Notice    *Notice
	FormError string
	Rows      []connectionRow
	Name      Field
	Provider  Field
	BaseURL   Field
	Token     Field // never carries a value: the template does not render one
}

type connectionRow struct {
	Name, Provider, BaseURL, Account string
	Created                          time.Time
}

// URL is where the row's actions post to.
func (r connectionRow) URL() string { return "/settings/connections/" + r.Name }

// Count is the section's "2 connections" caption.
func (v connectionsView) Count() string {
	if len(v.Rows) == 1 {
		return "1 connection"
	}
	return strconv.Itoa(len(v.Rows)) + " connections"
}

// connectionProviders are the providers a connection can be made to.
var connectionProviders = []Option{{Value: string(gitsrc.KindGitea), Label: "Gitea or Forgejo"}}

// providerTitle names a connection's provider as the form's select does.
func providerTitle(p string) string {
	for _, o := range connectionProviders {
		if o.Value == p {
			return o.Label
		}
	}
	return p
}

var connectionNotices = map[string]Notice{
	"connection-added":   {Tone: "ok", Message: "Git connection added. New apps can pick their repository through it."},
	"connection-removed": {Tone: "ok", Message: "Git connection removed. Apps made from it keep building; their builds no longer report commit statuses."},
	"connection-missing": {Tone: "info", Message: "That git connection no longer exists. It may have been removed in another tab."},
}

func newConnectionFields(name, provider, baseURL string) (f connectionsView) {
	f.Name = Field{ID: "connection-name", Name: "name", Label: "Name", Type: "text", Value: name, Required: true, MaxLength: 32, Placeholder: "gitea", Code: true,
		Hint: "Lowercase letters, digits and '-', starting with a letter. The new-app form lists the connection by it."}
	f.Provider = Field{ID: "connection-provider", Name: "provider", Label: "Provider", Type: "select", Required: true,
		Hint: "GitHub, GitLab and Bitbucket connections are not available yet."}
	for _, o := range connectionProviders {
		o.Selected = o.Value == provider
		f.Provider.Options = append(f.Provider.Options, o)
	}
	f.BaseURL = Field{ID: "connection-base-url", Name: "base_url", Label: "Server URL", Type: "text", Value: baseURL, Required: true, MaxLength: 300, Placeholder: "https://gitea.example.com", Code: true,
		Hint: "The address of the Gitea or Forgejo server, over HTTPS."}
	f.Token = Field{ID: "connection-token", Name: "token", Label: "Access token", Type: "password", Required: true, Autocomplete: "new-password",
		Hint: "An access token of the account, with the write:repository and read:user scopes: Berth lists its repositories, creates webhooks and reports commit statuses. Stored encrypted and never shown again."}
	return f
}

func (u *ui) connectionsView(r *http.Request, p auth.Principal) (connectionsView, error) {
	v := newConnectionFields("", "", "")
	v.CSRF, v.CanWrite = p.CSRFToken, p.Can(authz.ConnectionWrite)
	cs, err := u.d.Apps.Connections(r.Context(), p)
	if err != nil {
		return v, err
	}
	for _, c := range cs {
		v.Rows = append(v.Rows, connectionRow{Name: c.Name, Provider: providerTitle(c.Provider), BaseURL: c.BaseURL, Account: c.Account, Created: c.CreatedAt})
	}
	return v, nil
}

func (u *ui) createConnection(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !p.Can(authz.ConnectionWrite) {
		u.failed(w, r, p, "create connection", &deploy.ForbiddenError{Message: "your role (" + p.Role + ") does not allow " + string(authz.ConnectionWrite)})
		return
	}
	in := deploy.ConnectionInput{
		Name:     strings.TrimSpace(r.PostFormValue("name")),
		Provider: r.PostFormValue("provider"),
		BaseURL:  strings.TrimSpace(r.PostFormValue("base_url")),
		Token:    strings.TrimSpace(r.PostFormValue("token")),
	}
	v, err := u.connectionsView(r, p)
	if err != nil {
		u.serverError(w, r, "list connections", err)
		return
	}
	errs := fieldErrors{}
	for _, row := range v.Rows {
		if row.Name == in.Name {
			errs["name"] = "is already taken by another connection"
		}
	}
	var created deploy.Connection
	if len(errs) == 0 {
		created, err = u.d.Apps.CreateConnection(r.Context(), p, in)
		if err != nil && !addAppFieldError(errs, err) {
			u.failed(w, r, p, "create connection", err)
			return
		}
	}
	if len(errs) > 0 {
		f := newConnectionFields(in.Name, in.Provider, in.BaseURL)
		v.Name, v.Provider, v.BaseURL, v.Token = f.Name, f.Provider, f.BaseURL, f.Token
		errs.apply(&v.Name, &v.Provider, &v.BaseURL, &v.Token)
		if v.Token.Error == "" {
			v.Token.Hint = "Type it again: Berth never sends a token back to the browser."
		}
		v.FormError = formErrorSummary(errs)
		u.renderConnections(w, r, p, http.StatusUnprocessableEntity, v)
		return
	}
	u.d.Log.InfoContext(r.Context(), "git connection added", "user_id", p.User.ID, "connection", created.Name, "base_url", created.BaseURL)
	if !isHTMX(r) {
		http.Redirect(w, r, "/settings?notice=connection-added#connections", http.StatusSeeOther)
		return
	}
	if v, err = u.connectionsView(r, p); err != nil {
		u.serverError(w, r, "list connections", err)
		return
	}
	v.Notice = &Notice{Tone: "ok", Title: "Connection “" + created.Name + "” added.",
		Message: "Signed in at " + created.BaseURL + " as " + created.Account + ". New apps can pick their repository through it."}
	u.renderConnections(w, r, p, http.StatusOK, v)
}

func (u *ui) deleteConnection(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := r.PathValue("name")
	err := u.d.Apps.DeleteConnection(r.Context(), p, name)
	if errors.Is(err, store.ErrNotFound) {
		u.connectionGone(w, r, p)
		return
	} else if err != nil {
		u.failed(w, r, p, "delete connection", err)
		return
	}
	u.d.Log.InfoContext(r.Context(), "git connection removed", "user_id", p.User.ID, "connection", name)
	if !isHTMX(r) {
		http.Redirect(w, r, "/settings?notice=connection-removed#connections", http.StatusSeeOther)
		return
	}
	v, err := u.connectionsView(r, p)
	if err != nil {
		u.serverError(w, r, "list connections", err)
		return
	}
	n := connectionNotices["connection-removed"]
	n.Title, n.Message = "Connection “"+name+"” removed.", "Apps made from it keep building; their builds no longer report commit statuses."
	v.Notice = &n
	u.renderConnections(w, r, p, http.StatusOK, v)
}

// connectionGone answers a removal of a connection that no longer exists.
func (u *ui) connectionGone(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !isHTMX(r) {
		http.Redirect(w, r, "/settings?notice=connection-missing#connections", http.StatusSeeOther)
		return
	}
	v, err := u.connectionsView(r, p)
	if err != nil {
		u.serverError(w, r, "list connections", err)
		return
	}
	n := connectionNotices["connection-missing"]
	v.Notice = &n
	u.renderConnections(w, r, p, http.StatusOK, v)
}

// renderConnections answers htmx with the section alone and a plain form
// post with the whole settings page around it.
func (u *ui) renderConnections(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, v connectionsView) {
	if isHTMX(r) {
		u.renderTemplate(w, r, status, "settings", "connections", v)
		return
	}
	page, err := u.settingsPageView(r, p)
	if err != nil {
		u.serverError(w, r, "list connections", err)
		return
	}
	page.Connections = &v
	u.render(w, r, status, "settings", page)
}

// ---------- the new-app form ----------

// connectionProvider is the prefix of the provider select's values that
// pick a connection: "connection:gitea". Connection names cannot hold ':'.
const connectionProvider = "connection:"

// connectionOf returns the connection a provider value picks.
func connectionOf(provider string) (string, bool) {
	name, ok := strings.CutPrefix(provider, connectionProvider)
	return name, ok && name != ""
}

// withConnections adds the organization's connections to the form's
// provider choices and makes the select load the repositories of the one
// picked.
func (g *gitForm) withConnections(cs []deploy.Connection) {
	for _, c := range cs {
		g.Connections = append(g.Connections, Option{Value: connectionProvider + c.Name, Label: c.Name + " (" + c.Account + " at " + strings.TrimPrefix(c.BaseURL, "https://") + ")"})
	}
	if len(cs) > 0 {
		g.Provider.Hint = "A connection lists the repositories of its account and sets the webhook up for you. With a provider, owner/name is enough."
	}
}

// selectConnection marks the provider value v as chosen among the
// connections, after fill has looked only at the other choices.
func (g *gitForm) selectConnection(v string) {
	for i := range g.Connections {
		g.Connections[i].Selected = g.Connections[i].Value == v
	}
}

// repoField is the repository input of the form: a select of the
// connection's repositories once they are loaded, else the text input.
type repoField struct {
	Field
	Select bool
}

// branchField is the branch input: a select of the repository's branches
// once they are loaded, else the text input.
type branchField struct {
	Field
	Select bool
	OOB    bool // swapped in out of band, next to a repository field
}

// repoPartial is the answer to a change of the provider select: the
// repository field for it, and the branch field reset out of band.
type repoPartial struct {
	Repo   repoField
	Branch branchField
}

// connectionRepos answers a change of the new-app form's provider select:
// for a connection, a select of its repositories; for anything else, the
// text input again.
func (u *ui) connectionRepos(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	g := newGitForm()
	v := repoPartial{Repo: repoField{Field: g.URL}, Branch: branchField{Field: g.Branch, OOB: true}}
	v.Repo.Value = strings.TrimSpace(q.Get("git_url"))
	if name, ok := connectionOf(q.Get("git_provider")); ok {
		repos, err := u.d.Apps.ConnectionRepos(r.Context(), p, name)
		switch {
		case err == nil && len(repos) == 0:
			v.Repo.Error = "list is empty: the connection's account cannot read any repository; type one as owner/name"
		case err == nil:
			v.Repo.Select = true
			v.Repo.Hint = "The repositories the connection's account can read."
			v.Repo.Options = []Option{{Value: "", Label: "Choose a repository"}}
			for _, repo := range repos {
				label := repo.FullName
				if repo.Private {
					label += " (private)"
				}
				v.Repo.Options = append(v.Repo.Options, Option{Value: repo.FullName, Label: label, Selected: repo.FullName == v.Repo.Value})
			}
		case errors.Is(err, store.ErrNotFound):
			v.Repo.Error = "list is not available: the connection “" + name + "” no longer exists"
		default:
			if u.refused(w, r, err) {
				return
			}
			// A provider failure is written for users; anything else is
			// logged and summarised.
			msg := err.Error()
			if !isProviderError(err) {
				u.d.Log.ErrorContext(r.Context(), "web: list connection repositories", "err", err, "connection", name)
				msg = "an internal error, logged"
			}
			v.Repo.Error = "list could not be loaded (" + msg + "); type the repository as owner/name"
		}
		v.Repo.Placeholder = "owner/name"
	}
	u.renderTemplate(w, r, http.StatusOK, "app-new", "git-repo-partial", v)
}

// connectionBranches answers a change of the repository select: a select
// of the repository's branches, its default one chosen.
func (u *ui) connectionBranches(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	g := newGitForm()
	v := branchField{Field: g.Branch}
	name, ok := connectionOf(q.Get("git_provider"))
	repo := strings.TrimSpace(q.Get("git_url"))
	if !ok || repo == "" {
		u.renderTemplate(w, r, http.StatusOK, "app-new", "git-branch-field", v)
		return
	}
	branches, err := u.d.Apps.ConnectionBranches(r.Context(), p, name, repo)
	if err != nil {
		if u.refused(w, r, err) {
			return
		}
		msg := err.Error()
		if !isProviderError(err) {
			u.d.Log.ErrorContext(r.Context(), "web: list connection branches", "err", err, "connection", name)
			msg = "an internal error, logged"
		}
		v.Error = "list could not be loaded (" + msg + "); type the branch"
		u.renderTemplate(w, r, http.StatusOK, "app-new", "git-branch-field", v)
		return
	}
	v.Value = u.defaultBranch(r, p, name, repo, branches)
	v.Select = true
	v.Hint = "Deploy builds its newest commit; pushes to it deploy by themselves: Berth sets the webhook up at the provider."
	for _, b := range branches {
		v.Options = append(v.Options, Option{Value: b, Label: b, Selected: b == v.Value})
	}
	u.renderTemplate(w, r, http.StatusOK, "app-new", "git-branch-field", v)
}

// defaultBranch is repo's default branch as the provider says, else main,
// master or the first branch.
func (u *ui) defaultBranch(r *http.Request, p auth.Principal, conn, repo string, branches []string) string {
	if repos, err := u.d.Apps.ConnectionRepos(r.Context(), p, conn); err == nil {
		for _, rp := range repos {
			if rp.FullName == repo && slices.Contains(branches, rp.DefaultBranch) {
				return rp.DefaultBranch
			}
		}
	}
	for _, b := range []string{"main", "master"} {
		if slices.Contains(branches, b) {
			return b
		}
	}
	if len(branches) > 0 {
		return branches[0]
	}
	return ""
}

// ---------- the provider webhook notice ----------

// The Source tab's notice after an app was made from a connection says
// whether its webhook was set up at the provider, in the manager's words.
// Those words ride along in the redirect, so they are signed with the
// session's CSRF token: a link from elsewhere cannot put text on the page.

const maxWebhookNote = 600

func noteSignature(p auth.Principal, note string) string {
	mac := hmac.New(sha256.New, []byte("berth webhook note\x00"+p.CSRFToken))
	mac.Write([]byte(note))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// webhookNoteQuery is the query string that carries the result of the
// provider webhook to the Source tab.
func webhookNoteQuery(p auth.Principal, note string) string {
	if len(note) > maxWebhookNote {
		note = note[:maxWebhookNote] + "…"
	}
	return "webhook=" + url.QueryEscape(note) + "&webhook_sig=" + noteSignature(p, note)
}

// webhookNotice turns the note of a redirect into the Source tab's notice,
// or nil when there is none or its signature does not hold.
func webhookNotice(r *http.Request, p auth.Principal) *Notice {
	q := r.URL.Query()
	note, sig := q.Get("webhook"), q.Get("webhook_sig")
	if note == "" || !hmac.Equal([]byte(sig), []byte(noteSignature(p, note))) {
		return nil
	}
	if where, ok := strings.CutPrefix(note, "created at "); ok {
		return &Notice{Tone: "ok", Title: "Webhook created.", Message: "Berth added the webhook to " + where + ": pushes to the branch deploy by themselves. Nothing to set up below."}
	}
	why := strings.TrimPrefix(note, "not created at the provider")
	why = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(why, ":")), "; set it up by hand")
	if strings.HasPrefix(why, "(") && strings.HasSuffix(why, ")") {
		why = why[1 : len(why)-1]
	}
	return &Notice{Tone: "warn", Title: "Webhook not created at the provider.", Message: titleCase(sentence(why)) + " Set it up by hand as described below."}
}

// isProviderError reports whether err is written for users: a provider's
// answer or a refused value.
func isProviderError(err error) bool {
	var fe *forge.Error
	var ae *app.FieldError
	return errors.As(err, &fe) || errors.As(err, &ae)
}
