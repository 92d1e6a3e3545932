package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/store"
)

// The public page an invitation link opens. Its token is a credential: it
// is never logged or recorded (the request log and audit entries carry
// paths and redacted form fields only), and the page links to nothing
// outside this site, so it cannot leak through a Referer either.

func (u *ui) registerInvitations(mux *http.ServeMux) {
	mux.HandleFunc("GET /invitations/accept", u.acceptForm)
	mux.HandleFunc("POST /invitations/accept", u.acceptSubmit)
}

type acceptView struct {
	Layout
	CSRF      string
	Token     string
	Invalid   string // why the link does not work; the rest is then empty
	Org, Role string
	Email     string
	Expires   time.Time
	// SignedInAs: the browser's session's email, when one is signed in.
	SignedInAs string
	// HasAccount: the invited email has an account, which signs in to accept.
	HasAccount bool
	SignInURL  string
	FormError  string
	Name       Field
	Password   Field
	Confirm    Field
}

// WrongAccount: signed in, but not as the invited email.
func (v acceptView) WrongAccount() bool { return v.SignedInAs != "" && v.SignedInAs != v.Email }

func newAcceptFields(v *acceptView, name string) {
	v.Name = Field{ID: "name", Name: "name", Label: "Your name", Type: "text", Value: name, Required: true, MaxLength: 100, Autocomplete: "name", Autofocus: true}
	v.Password = Field{ID: "password", Name: "password", Label: "Password", Type: "password", Autocomplete: "new-password", Required: true,
		MinLength: auth.MinPasswordLength, Hint: "At least 10 characters."}
	v.Confirm = Field{ID: "password_confirm", Name: "password_confirm", Label: "Confirm password", Type: "password", Autocomplete: "new-password", Required: true}
}

// acceptPage looks the token up and fills what the page shows. A link that
// does not work answers 410 Gone with the one message for all such links.
func (u *ui) acceptPage(w http.ResponseWriter, r *http.Request, token string) (acceptView, *auth.Principal, auth.InvitationInfo, bool) {
	var pp *auth.Principal
	if p, err := u.session(r); err == nil {
		pp = &p
	}
	v := acceptView{Layout: u.layout(r, pp, "Join an organization", ""), Token: token}
	if pp != nil {
		v.CSRF, v.SignedInAs = pp.CSRFToken, pp.User.Email
	} else {
		v.CSRF = u.preSessionToken(w, r)
	}
	info, err := u.d.Auth.LookupInvitation(r.Context(), token)
	if errors.Is(err, auth.ErrInvitationInvalid) || err == nil && token == "" {
		v.Invalid = titleCase(auth.ErrInvitationInvalid.Error()) + "."
		u.render(w, r, http.StatusGone, "accept", v)
		return v, pp, info, false
	} else if err != nil {
		u.serverError(w, r, "look up invitation", err)
		return v, pp, info, false
	}
	v.Org, v.Role, v.Email, v.Expires, v.HasAccount = info.Organization, info.Invitation.Role, info.Invitation.Email, info.Invitation.ExpiresAt, info.HasAccount
	v.SignInURL = "/login?next=" + url.QueryEscape("/invitations/accept?token="+url.QueryEscape(token))
	newAcceptFields(&v, "")
	return v, pp, info, true
}

func (u *ui) acceptForm(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		v := acceptView{Layout: u.layout(r, nil, "Join an organization", ""), Invalid: titleCase(auth.ErrInvitationInvalid.Error()) + "."}
		u.render(w, r, http.StatusNotFound, "accept", v)
		return
	}
	v, _, _, ok := u.acceptPage(w, r, token)
	if !ok {
		return
	}
	u.render(w, r, http.StatusOK, "accept", v)
}

func (u *ui) acceptSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		u.badForm(w, r)
		return
	}
	token := r.PostFormValue("token")
	v, pp, info, ok := u.acceptPage(w, r, token)
	if !ok {
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	actor := audit.Actor{Kind: store.ActorUser, Label: info.Invitation.Email}
	if pp != nil {
		actor = audit.ActorOf(*pp)
	}
	p := u.accept(sw, r, v, pp)
	if p != nil {
		actor = audit.ActorOf(*p)
	}
	u.recordAccept(r, info.Invitation.OrganizationID, actor, sw.code())
}

// accept runs the accept form and returns the principal that joined, or
// nil when it answered with a refusal.
func (u *ui) accept(w http.ResponseWriter, r *http.Request, v acceptView, pp *auth.Principal) *auth.Principal {
	in := auth.AcceptInput{Token: v.Token}
	if pp != nil {
		if !auth.CSRFValid(r, *pp) {
			u.forbidden(w, r, pp)
			return nil
		}
		in.Principal = pp
	} else {
		if !u.preSessionValid(r) {
			v.FormError = "This form expired or was sent from another site. Please try again."
			u.render(w, r, http.StatusForbidden, "accept", v)
			return nil
		}
		in.Name, in.Password = r.PostFormValue("name"), r.PostFormValue("password")
		newAcceptFields(&v, in.Name)
		if r.PostFormValue("password_confirm") != in.Password {
			v.Confirm.Error = "does not match the password"
			v.FormError = formErrorSummary(fieldErrors{"password_confirm": v.Confirm.Error})
			u.render(w, r, http.StatusUnprocessableEntity, "accept", v)
			return nil
		}
	}
	p, err := u.d.Auth.AcceptInvitation(r.Context(), in)
	errs := fieldErrors{}
	var forbidden *auth.ForbiddenError
	switch {
	case errors.Is(err, auth.ErrInvitationInvalid):
		v.Invalid = titleCase(err.Error()) + "."
		u.render(w, r, http.StatusGone, "accept", v)
		return nil
	case errors.As(err, &forbidden):
		v.FormError = titleCase(sentence(forbidden.Message))
		u.render(w, r, http.StatusForbidden, "accept", v)
		return nil
	case addFieldError(errs, err):
		errs.apply(&v.Name, &v.Password, &v.Confirm)
		if m, ok := errs["token"]; ok {
			v.FormError = titleCase(sentence(m))
		} else {
			v.FormError = formErrorSummary(errs)
		}
		u.render(w, r, http.StatusUnprocessableEntity, "accept", v)
		return nil
	case err != nil:
		u.serverError(w, r, "accept invitation", err)
		return nil
	}
	if pp != nil {
		// The signed-in member lands in the organization they joined.
		if _, err := u.d.Auth.SwitchOrganization(r.Context(), *pp, p.Organization.ID); err != nil {
			u.serverError(w, r, "switch to the joined organization", err)
			return &p
		}
	} else {
		secret, _, err := u.d.Auth.StartSession(r.Context(), p, auth.ClientIP(r), r.UserAgent())
		if err != nil {
			u.serverError(w, r, "sign in after accepting", err)
			return &p
		}
		auth.SetSessionCookie(w, secret, u.d.SecureCookies, u.d.SessionLifetime)
	}
	u.d.Log.InfoContext(r.Context(), "invitation accepted", "user_id", p.User.ID, "organization_id", p.Organization.ID, "role", p.Role)
	http.Redirect(w, r, "/?notice=invitation-accepted", http.StatusSeeOther)
	return &p
}

// recordAccept writes the accept to the joined organization's audit log:
// the route and the form by field name (the token's value is redacted like
// every field not known to be safe).
func (u *ui) recordAccept(r *http.Request, orgID string, actor audit.Actor, status int) {
	if u.d.Audit == nil || orgID == "" {
		return
	}
	ev := u.event(r, "POST /invitations/accept", status)
	ev.OrganizationID, ev.Actor = orgID, actor
	u.d.Audit.Record(context.WithoutCancel(r.Context()), ev)
}
