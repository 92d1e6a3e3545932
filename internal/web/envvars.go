package web

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
)

// The Environment tab. Values are secrets: a GET shows the names with the
// values masked; showing them takes a POST with the CSRF token (so a link
// or an embedded page cannot make them appear), and so does editing, since
// the editor holds them.

type envView struct {
	CSRF         string
	CanReveal    bool // the role may read the values (and so edit them)
	Revealed     bool
	Vars         []envVarRow
	RevealAction string
	SaveAction   string
	Editor       Field
	FormError    string
	Saved        *envSaved
}

type envVarRow struct {
	Key, Value string
}

// envSaved says what a save did.
type envSaved struct {
	Count       int
	Deployments []deploymentRow
	Skipped     bool // the app is not running, so nothing was deployed
}

func (u *ui) envView(r *http.Request, p auth.Principal, revealed bool) (*envView, map[string]string, error) {
	ref := appRefOf(r)
	vars, err := u.d.Apps.Env(r.Context(), p, deploy.EnvScope{Scope: deploy.ScopeApp, Ref: ref})
	if err != nil {
		return nil, nil, err
	}
	v := &envView{
		CSRF: p.CSRFToken, Revealed: revealed, CanReveal: p.CanSomewhere(authz.AppEnvReveal),
		RevealAction: appURL(ref, "/env/reveal"), SaveAction: appURL(ref, "/env"),
		Editor: Field{ID: "env-editor", Name: "dotenv", Label: ".env", Type: "textarea", Rows: 10, Code: true,
			Placeholder: "DATABASE_URL=postgres://db/app\nLOG_LEVEL=info",
			Hint:        "Saving replaces every variable of this app and redeploys it if it is running. Quote values with spaces or # in double quotes."},
	}
	v.setVars(vars)
	if revealed {
		v.Editor.Value = app.FormatDotEnv(vars)
	}
	return v, vars, nil
}

func (v *envView) setVars(vars map[string]string) {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	v.Vars = v.Vars[:0]
	for _, k := range keys {
		row := envVarRow{Key: k}
		if v.Revealed {
			row.Value = vars[k]
		}
		v.Vars = append(v.Vars, row)
	}
}

func (u *ui) appEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, _, err := u.appPage(r, p, "env")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	ev, _, err := u.envView(r, p, false)
	if err != nil {
		u.failed(w, r, p, "read variables", err)
		return
	}
	v.Env = ev
	u.render(w, r, http.StatusOK, "app", v)
}

func (u *ui) revealEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ev, vars, err := u.envView(r, p, true)
	if err != nil {
		u.failed(w, r, p, "read variables", err)
		return
	}
	// Recorded before the values go out; no record, no values.
	scope := deploy.EnvScope{Scope: deploy.ScopeApp, Ref: appRefOf(r)}
	if !u.recordReveal(w, r, p, scope, slices.Collect(maps.Keys(vars))) {
		return
	}
	u.renderEnv(w, r, p, http.StatusOK, ev)
}

func (u *ui) saveEnv(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	text := r.PostFormValue("dotenv")
	ev, _, err := u.envView(r, p, true)
	if err != nil {
		u.failed(w, r, p, "read variables", err)
		return
	}
	ev.Editor.Value = text
	vars, err := parseDotEnv(text)
	if err == nil {
		var ds []store.Deployment
		ds, err = u.d.Apps.SetEnv(r.Context(), p, deploy.EnvScope{Scope: deploy.ScopeApp, Ref: ref}, vars)
		if err != nil && len(ds) > 0 {
			// Saved, and some redeploys were queued before one failed:
			// say what happened rather than pretend nothing did.
			u.d.Log.WarnContext(r.Context(), "web: redeploy after variables changed", "app", ref.String(), "err", err)
			err = nil
		}
		if err == nil {
			a, aerr := u.d.Apps.App(r.Context(), p, ref)
			if aerr != nil {
				u.failed(w, r, p, "show app", aerr)
				return
			}
			ev.Saved = &envSaved{Count: len(vars), Skipped: len(ds) == 0}
			for _, d := range ds {
				ev.Saved.Deployments = append(ev.Saved.Deployments, u.deploymentRow(ref, p.CSRFToken, d, a.CurrentDeploymentID, d.CreatedAt))
			}
			ev.setVars(vars)
			ev.Editor.Value = app.FormatDotEnv(vars)
			u.renderEnv(w, r, p, http.StatusOK, ev)
			return
		}
	}
	errs := fieldErrors{}
	if !addDotEnvError(errs, err) {
		u.failed(w, r, p, "save variables", err)
		return
	}
	errs.apply(&ev.Editor)
	ev.FormError = "Nothing was saved."
	u.renderEnv(w, r, p, http.StatusUnprocessableEntity, ev)
}

// addDotEnvError puts a .env parse error or a refused variable on the editor.
func addDotEnvError(errs fieldErrors, err error) bool {
	var de *app.DotEnvError
	if errors.As(err, &de) {
		errs["dotenv"] = "line " + strconv.Itoa(de.Line) + ": " + de.Message
		return true
	}
	sub := fieldErrors{}
	if !addAppFieldError(sub, err) {
		return false
	}
	for _, m := range sub {
		errs["dotenv"] = m
	}
	return true
}

// renderEnv answers htmx with the section alone and a form post with the
// whole app page around it.
func (u *ui) renderEnv(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, ev *envView) {
	if isHTMX(r) {
		u.renderTemplate(w, r, status, "app", "env-section", ev)
		return
	}
	v, _, err := u.appPage(r, p, "env")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	v.Env = ev
	u.render(w, r, status, "app", v)
}
