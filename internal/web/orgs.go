package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
)

// Organizations: the switcher in the layout, a new organization, and the
// organization's own settings on the settings page.

func (u *ui) registerOrganizations(mux *http.ServeMux) {
	mux.HandleFunc("POST /organizations/switch", u.signedIn(u.switchOrganization))
	mux.HandleFunc("GET /organizations/new", u.signedIn(u.newOrganization))
	mux.HandleFunc("POST /organizations/create", u.signedIn(u.createOrganization))
	mux.HandleFunc("POST /settings/organization", u.signedIn(u.saveOrganization))
}

// dashboardNotices are the messages a redirect to the dashboard can ask for.
var dashboardNotices = map[string]Notice{
	"organization-switched": {Tone: "ok", Title: "Switched organization.", Message: "You now see and act in this organization."},
	"organization-created":  {Tone: "ok", Title: "Organization created.", Message: "You are its owner. Invite people on the Members page."},
	"invitation-accepted":   {Tone: "ok", Title: "Welcome aboard.", Message: "You joined this organization. What you may do depends on the role you were invited with."},
}

func (u *ui) switchOrganization(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	next, err := u.d.Auth.SwitchOrganization(r.Context(), p, r.PostFormValue("organization"))
	var fe *auth.FieldError
	switch {
	case errors.As(err, &fe):
		u.errorPage(w, r, &p, http.StatusUnprocessableEntity, "You cannot switch to that organization", titleCase(sentence(fe.Message)))
		return
	case err != nil:
		u.serverError(w, r, "switch organization", err)
		return
	}
	u.d.Log.InfoContext(r.Context(), "organization switched", "user_id", p.User.ID, "organization_id", next.Organization.ID)
	seeOther(w, r, "/?notice=organization-switched")
}

// newOrganizationView is the page a new organization is named on; the
// switcher posts the same form, and its errors come back here.
type newOrganizationView struct {
	Layout
	CSRF      string
	FormError string
	Name      Field
}

func newOrganizationFields(name string) Field {
	return Field{ID: "organization-name", Name: "name", Label: "Name", Type: "text", Value: name, Required: true, MaxLength: 100, Autofocus: true,
		Placeholder: "Acme Inc.", Hint: "A separate tenant: its own projects, apps, registries, members and audit log. You become its owner."}
}

func (u *ui) newOrganization(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	u.render(w, r, http.StatusOK, "organization-new", newOrganizationView{
		Layout: u.layout(r, &p, "New organization", ""), CSRF: p.CSRFToken, Name: newOrganizationFields(""),
	})
}

func (u *ui) createOrganization(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	org, err := u.d.Auth.CreateOrganization(r.Context(), p, name)
	errs := fieldErrors{}
	if err != nil {
		if !addFieldError(errs, err) {
			u.serverError(w, r, "create organization", err)
			return
		}
		v := newOrganizationView{Layout: u.layout(r, &p, "New organization", ""), CSRF: p.CSRFToken, Name: newOrganizationFields(name)}
		errs.apply(&v.Name)
		v.FormError = formErrorSummary(errs)
		u.render(w, r, http.StatusUnprocessableEntity, "organization-new", v)
		return
	}
	u.d.Log.InfoContext(r.Context(), "organization created", "user_id", p.User.ID, "organization_id", org.ID)
	if _, err := u.d.Auth.SwitchOrganization(r.Context(), p, org.ID); err != nil {
		u.serverError(w, r, "switch to the new organization", err)
		return
	}
	seeOther(w, r, "/?notice=organization-created")
}

// orgSettingsView is the settings page's organization section.
type orgSettingsView struct {
	CSRF      string
	Name      string
	CanChange bool // the principal may change the organization (its owner)
	Require   Field
	Notice    *Notice
	FormError string
}

func orgSettingsOf(p auth.Principal) *orgSettingsView {
	return &orgSettingsView{
		CSRF: p.CSRFToken, Name: p.Organization.Name, CanChange: p.Can(authz.OrgWrite),
		Require: Field{ID: "require-two-factor", Name: "require_two_factor", Label: "Require two-factor login for every member", Type: "checkbox",
			Checked: p.Organization.RequireTwoFactor,
			Hint:    "Members without it can only set it up (and sign out) until they have. Your own account needs it first."},
	}
}

var orgNotices = map[string]Notice{
	"two-factor-required-on":  {Tone: "ok", Title: "Two-factor login is now required.", Message: "Members without it are sent to set it up the next time they open a page."},
	"two-factor-required-off": {Tone: "ok", Title: "Two-factor login is no longer required.", Message: "Members may turn it on for themselves on their account page."},
}

func (u *ui) saveOrganization(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	on := r.PostFormValue("require_two_factor") == "on"
	err := u.d.Auth.SetRequireTwoFactor(r.Context(), p, on)
	errs := fieldErrors{}
	if err != nil {
		if !addFieldError(errs, err) {
			u.serverError(w, r, "save organization settings", err)
			return
		}
		v, verr := u.settingsPageView(r, p)
		if verr != nil {
			u.serverError(w, r, "settings page", verr)
			return
		}
		v.Org.Require.Checked = on
		errs.apply(&v.Org.Require)
		v.Org.FormError = formErrorSummary(errs)
		u.render(w, r, http.StatusUnprocessableEntity, "settings", v)
		return
	}
	notice := "two-factor-required-off"
	if on {
		notice = "two-factor-required-on"
	}
	seeOther(w, r, "/settings?notice="+notice+"#organization")
}
