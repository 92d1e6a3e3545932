package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/store"
)

// registerSettings mounts the settings page and its registry actions.
func (u *ui) registerSettings(mux *http.ServeMux) {
	mux.HandleFunc("GET /settings", u.signedIn(u.settingsPage))
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, auth.Principal)) {
		mux.HandleFunc(pattern, u.signedIn(u.needApps(fn)))
	}
	h("POST /settings/registries", u.createRegistry)
	h("POST /settings/registries/{id}/test", u.testRegistry)
	h("POST /settings/registries/{id}/delete", u.deleteRegistry)
}

// settingsPageView is the settings page with its registries section.
type settingsPageView struct {
	settingsView
	Org        *orgSettingsView
	Registries *registriesView // nil when the server runs without apps, or the role may not read them
	// Connections is the git connections section; nil like Registries.
	Connections *connectionsView
}

// registriesView is the registries section; htmx swaps it as a whole.
type registriesView struct {
	CSRF      string
	CanWrite  bool // the role may add, test and remove registries
	Notice    *Notice
	FormError string
	Rows      []registryRow
	Name      Field
	Server    Field
	Username  Field
	Password  Field // never carries a value: the template does not render one
}

// registryRow is one registry; a test swaps it alone, so it carries the
// CSRF token its forms need.
type registryRow struct {
	CSRF                       string
	CanWrite                   bool
	ID, Name, Server, Username string
	Created                    time.Time
	Test                       *registryTestResult
}

type registryTestResult struct {
	OK      bool
	Tone    string // ok|fail|warn, warn when the login could not be tried
	Title   string // "Login works", "Login failed" or "Not tested"
	Message string
}

// URL is where the row's actions post to.
func (r registryRow) URL() string { return "/settings/registries/" + r.ID }

// registryNotices are the messages a redirect back to /settings can ask for.
var registryNotices = map[string]Notice{
	"registry-added":   {Tone: "ok", Message: "Registry added. Deployments of images from its server now pull with it; use Test to check the login."},
	"registry-removed": {Tone: "ok", Message: "Registry removed. Running apps keep running; their next pull from its server goes without credentials."},
	"registry-missing": {Tone: "info", Message: "That registry no longer exists. It may have been removed in another tab."},
}

func newRegistryFields(name, server, username string) (f registriesView) {
	f.Name = Field{ID: "registry-name", Name: "name", Label: "Name", Type: "text", Value: name, Required: true, MaxLength: 32, Placeholder: "ghcr", Code: true,
		Hint: "Lowercase letters, digits and '-', starting with a letter."}
	f.Server = Field{ID: "registry-server", Name: "server", Label: "Server", Type: "text", Value: server, Required: true, MaxLength: 300, Placeholder: "ghcr.io", Code: true,
		Hint: "host[:port] as image names start with it, e.g. registry.example.com or localhost:5000."}
	f.Username = Field{ID: "registry-username", Name: "username", Label: "Username", Type: "text", Value: username, Required: true, MaxLength: deploy.MaxRegistryUsername, Autocomplete: "off", Code: true}
	f.Password = Field{ID: "registry-password", Name: "password", Label: "Password", Type: "password", Required: true, MaxLength: deploy.MaxRegistryPassword, Autocomplete: "new-password",
		Hint: "Or an access token with read access to the images."}
	return f
}

func (u *ui) registriesView(r *http.Request, p auth.Principal) (registriesView, error) {
	v := newRegistryFields("", "", "")
	v.CSRF, v.CanWrite = p.CSRFToken, p.Can(authz.RegistryWrite)
	rs, err := u.d.Apps.Registries(r.Context(), p)
	if err != nil {
		return v, err
	}
	for _, reg := range rs {
		v.Rows = append(v.Rows, registryRow{CSRF: p.CSRFToken, CanWrite: v.CanWrite, ID: reg.ID, Name: reg.Name, Server: reg.Server, Username: reg.Username, Created: reg.CreatedAt})
	}
	return v, nil
}

func (u *ui) settingsPageView(r *http.Request, p auth.Principal) (settingsPageView, error) {
	v := settingsPageView{settingsView: settingsView{Layout: u.layout(r, &p, "Settings", "settings"), Organization: p.Organization.Name, ServerURL: u.serverURL(r)},
		Org: orgSettingsOf(p)}
	if u.d.Apps == nil {
		return v, nil
	}
	if p.Can(authz.ConnectionRead) {
		cv, err := u.connectionsView(r, p)
		if err != nil {
			return v, err
		}
		v.Connections = &cv
	}
	if !p.Can(authz.RegistryRead) {
		return v, nil
	}
	rv, err := u.registriesView(r, p)
	v.Registries = &rv
	return v, err
}

func (u *ui) settingsPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, err := u.settingsPageView(r, p)
	if err != nil {
		u.serverError(w, r, "list registries", err)
		return
	}
	if n, ok := registryNotices[r.URL.Query().Get("notice")]; ok && v.Registries != nil {
		v.Registries.Notice = &n
	}
	if n, ok := connectionNotices[r.URL.Query().Get("notice")]; ok && v.Connections != nil {
		v.Connections.Notice = &n
	}
	if n, ok := orgNotices[r.URL.Query().Get("notice")]; ok {
		v.Org.Notice = &n
	}
	u.render(w, r, http.StatusOK, "settings", v)
}

func (u *ui) createRegistry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	in := deploy.RegistryInput{
		Name:     strings.TrimSpace(r.PostFormValue("name")),
		Server:   strings.TrimSpace(r.PostFormValue("server")),
		Username: strings.TrimSpace(r.PostFormValue("username")),
		Password: r.PostFormValue("password"), // as typed: spaces may be part of it
	}
	v, err := u.registriesView(r, p)
	if err != nil {
		u.serverError(w, r, "list registries", err)
		return
	}
	errs := registryTaken(v.Rows, in)
	var created deploy.Registry
	if len(errs) == 0 {
		created, err = u.d.Apps.CreateRegistry(r.Context(), p, in)
		if err != nil && !addAppFieldError(errs, err) {
			u.serverError(w, r, "create registry", err)
			return
		}
	}
	if len(errs) > 0 {
		f := newRegistryFields(in.Name, in.Server, in.Username)
		v.Name, v.Server, v.Username, v.Password = f.Name, f.Server, f.Username, f.Password
		errs.apply(&v.Name, &v.Server, &v.Username, &v.Password)
		if v.Password.Error == "" {
			v.Password.Hint = "Type it again: Berth never sends a password back to the browser."
		}
		v.FormError = formErrorSummary(errs)
		u.renderRegistries(w, r, p, http.StatusUnprocessableEntity, v)
		return
	}
	u.d.Log.InfoContext(r.Context(), "registry added", "user_id", p.User.ID, "registry_id", created.ID, "server", created.Server)
	if !isHTMX(r) {
		http.Redirect(w, r, "/settings?notice=registry-added#registries", http.StatusSeeOther)
		return
	}
	if v, err = u.registriesView(r, p); err != nil {
		u.serverError(w, r, "list registries", err)
		return
	}
	v.Notice = &Notice{Tone: "ok", Title: "Registry “" + created.Name + "” added.",
		Message: "Deployments of images from " + created.Server + " now pull with it. Use Test to check the login."}
	u.renderRegistries(w, r, p, http.StatusOK, v)
}

// registryTaken words a clash with an existing registry the way the form's
// labels read. The store's unique constraints stay the authority; this only
// catches the common case with a clearer message.
func registryTaken(rows []registryRow, in deploy.RegistryInput) fieldErrors {
	errs := fieldErrors{}
	server, serr := deploy.NormalizeRegistryServer(in.Server)
	for _, row := range rows {
		if row.Name == in.Name {
			errs["name"] = "is already taken by another registry"
		}
		if serr == nil && row.Server == server {
			errs["server"] = fmt.Sprintf("%s already has credentials, in registry “%s”; remove that one first to replace them", server, row.Name)
		}
	}
	return errs
}

func (u *ui) testRegistry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	reg, err := u.d.Apps.Registry(r.Context(), p, id)
	if errors.Is(err, store.ErrNotFound) {
		u.registryGone(w, r, p)
		return
	} else if err != nil {
		u.serverError(w, r, "find registry", err)
		return
	}
	res, err := u.d.Apps.TestRegistry(r.Context(), p, reg.ID)
	result := registryTestResult{OK: res.OK, Tone: "fail", Title: "Login failed", Message: res.Message}
	if res.OK {
		result.Tone, result.Title = "ok", "Login works"
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		u.registryGone(w, r, p)
		return
	case errors.Is(err, orchestrator.ErrEngineUnreachable):
		result.Tone, result.Title = "warn", "Not tested"
		result.Message = "The container engine did not answer, so Berth could not try the login. See the System page, then try again."
	case err != nil:
		// Not an answer from the registry: the message is for the log, not
		// for the page.
		u.d.Log.ErrorContext(r.Context(), "web: test registry", "err", err, "registry_id", reg.ID)
		result.Tone, result.Title = "warn", "Not tested"
		result.Message = "The test could not run because of an internal error. It has been logged"
		if id := logging.RequestID(r.Context()); id != "" {
			result.Message += " with request id " + id
		}
		result.Message += "."
	}
	row := registryRow{CSRF: p.CSRFToken, CanWrite: p.Can(authz.RegistryWrite), ID: reg.ID, Name: reg.Name, Server: reg.Server, Username: reg.Username, Created: reg.CreatedAt, Test: &result}
	if isHTMX(r) {
		u.renderTemplate(w, r, http.StatusOK, "settings", "registry-row", row)
		return
	}
	v, err := u.settingsPageView(r, p)
	if err != nil {
		u.serverError(w, r, "list registries", err)
		return
	}
	for i := range v.Registries.Rows {
		if v.Registries.Rows[i].ID == reg.ID {
			v.Registries.Rows[i].Test = &result
		}
	}
	u.render(w, r, http.StatusOK, "settings", v)
}

func (u *ui) deleteRegistry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	reg, err := u.d.Apps.Registry(r.Context(), p, id)
	if err == nil {
		err = u.d.Apps.DeleteRegistry(r.Context(), p, reg.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		u.registryGone(w, r, p)
		return
	} else if err != nil {
		u.serverError(w, r, "delete registry", err)
		return
	}
	u.d.Log.InfoContext(r.Context(), "registry removed", "user_id", p.User.ID, "registry_id", reg.ID, "server", reg.Server)
	if !isHTMX(r) {
		http.Redirect(w, r, "/settings?notice=registry-removed#registries", http.StatusSeeOther)
		return
	}
	v, err := u.registriesView(r, p)
	if err != nil {
		u.serverError(w, r, "list registries", err)
		return
	}
	v.Notice = &Notice{Tone: "ok", Title: "Registry “" + reg.Name + "” removed.",
		Message: "Running apps keep running; their next pull from " + reg.Server + " goes without credentials."}
	u.renderRegistries(w, r, p, http.StatusOK, v)
}

// registryGone answers an action on a registry that no longer exists, with
// the current list: it was removed in another tab, or is not this
// organization's.
func (u *ui) registryGone(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !isHTMX(r) {
		http.Redirect(w, r, "/settings?notice=registry-missing#registries", http.StatusSeeOther)
		return
	}
	v, err := u.registriesView(r, p)
	if err != nil {
		u.serverError(w, r, "list registries", err)
		return
	}
	n := registryNotices["registry-missing"]
	v.Notice = &n
	// A row's test targets the row; the answer is the whole section.
	w.Header().Set("HX-Retarget", "#registries")
	w.Header().Set("HX-Reswap", "outerHTML")
	u.renderRegistries(w, r, p, http.StatusOK, v)
}

// renderRegistries answers htmx with the registries section alone and a
// plain form post with the whole settings page around it.
func (u *ui) renderRegistries(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, v registriesView) {
	if isHTMX(r) {
		u.renderTemplate(w, r, status, "settings", "registries", v)
		return
	}
	page, err := u.settingsPageView(r, p)
	if err != nil {
		u.serverError(w, r, "list registries", err)
		return
	}
	page.Registries = &v
	u.render(w, r, status, "settings", page)
}

// Count is the section's "3 registries" caption.
func (v registriesView) Count() string {
	if len(v.Rows) == 1 {
		return "1 registry"
	}
	return strconv.Itoa(len(v.Rows)) + " registries"
}
