package web

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/berthpaas/berth/internal/auth"
)

// maxFormBytes bounds every form body; Berth's forms are a few hundred bytes.
const maxFormBytes = 64 << 10

type setupView struct {
	Layout
	Allowed   bool
	CSRF      string
	FormError string
	Email     Field
	Name      Field
	Org       Field
	Password  Field
	Confirm   Field
}

func newSetupView(l Layout) setupView {
	return setupView{
		Layout:   l,
		Allowed:  true,
		Name:     Field{ID: "name", Name: "name", Label: "Your name", Type: "text", Autocomplete: "name", Autofocus: true, MaxLength: 100, Placeholder: "Ada Lovelace"},
		Email:    Field{ID: "email", Name: "email", Label: "Email", Type: "email", Autocomplete: "email", Required: true, MaxLength: 254, Placeholder: "you@example.com", Hint: "You sign in with this address."},
		Org:      Field{ID: "organization", Name: "organization", Label: "Organization", Type: "text", Autocomplete: "organization", MaxLength: 100, Placeholder: "Acme Inc.", Hint: "Your team’s workspace. Leave empty to call it “Default”."},
		Password: Field{ID: "password", Name: "password", Label: "Password", Type: "password", Autocomplete: "new-password", Required: true, MinLength: auth.MinPasswordLength, Hint: "At least 10 characters. A passphrase of a few words works well."},
		Confirm:  Field{ID: "password_confirm", Name: "password_confirm", Label: "Confirm password", Type: "password", Autocomplete: "new-password", Required: true},
	}
}

func (u *ui) setupForm(w http.ResponseWriter, r *http.Request) {
	if !u.setupOpen(w, r) {
		return
	}
	v := newSetupView(u.layout(r, nil, "Set up Berth", ""))
	v.CSRF = u.preSessionToken(w, r)
	if !u.d.SetupAllowed(r) {
		v.Allowed = false
		u.render(w, r, http.StatusForbidden, "setup", v)
		return
	}
	u.render(w, r, http.StatusOK, "setup", v)
}

// setupOpen redirects to /login once an owner exists.
func (u *ui) setupOpen(w http.ResponseWriter, r *http.Request) bool {
	needed, err := u.d.Auth.SetupNeeded(r.Context())
	if err != nil {
		u.serverError(w, r, "check setup", err)
		return false
	}
	if !needed {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return false
	}
	return true
}

func (u *ui) setupSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if !u.setupOpen(w, r) {
		return
	}
	v := newSetupView(u.layout(r, nil, "Set up Berth", ""))
	v.CSRF = u.preSessionToken(w, r)
	if !u.d.SetupAllowed(r) {
		v.Allowed = false
		u.render(w, r, http.StatusForbidden, "setup", v)
		return
	}
	if err := r.ParseForm(); err != nil {
		u.badForm(w, r)
		return
	}
	in := auth.SetupInput{
		Email: strings.TrimSpace(r.PostFormValue("email")), Name: r.PostFormValue("name"),
		Organization: r.PostFormValue("organization"), Password: r.PostFormValue("password"),
	}
	v.Email.Value, v.Name.Value, v.Org.Value = in.Email, in.Name, in.Organization
	if !u.preSessionValid(r) {
		v.FormError = "This form expired or was sent from another site. Please try again."
		u.render(w, r, http.StatusForbidden, "setup", v)
		return
	}

	// The service checks one thing at a time; checking the independent fields
	// here first lets the form show every problem at once.
	errs := fieldErrors{}
	email, err := auth.ValidateEmail(in.Email)
	addFieldError(errs, err)
	if reason := auth.CheckPasswordPolicy(in.Password, email); reason != "" {
		errs["password"] = reason
	}
	if r.PostFormValue("password_confirm") != in.Password {
		errs["password_confirm"] = "does not match the password"
	}
	if len(errs) == 0 {
		_, err = u.d.Auth.Setup(r.Context(), in)
		if errors.Is(err, auth.ErrSetupDone) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if !addFieldError(errs, err) && err != nil {
			u.serverError(w, r, "setup", err)
			return
		}
	}
	if len(errs) > 0 {
		errs.apply(&v.Email, &v.Name, &v.Org, &v.Password, &v.Confirm)
		v.FormError = formErrorSummary(errs)
		u.render(w, r, http.StatusUnprocessableEntity, "setup", v)
		return
	}

	secret, _, err := u.d.Auth.Login(r.Context(), auth.Credentials{Email: in.Email, Password: in.Password, ClientIP: auth.ClientIP(r), UserAgent: r.UserAgent()})
	if err != nil {
		u.serverError(w, r, "sign in after setup", err)
		return
	}
	auth.SetSessionCookie(w, secret, u.d.SecureCookies, u.d.SessionLifetime)
	http.Redirect(w, r, "/?welcome=1", http.StatusSeeOther)
}

// addFieldError records a *auth.FieldError and reports whether err was one.
func addFieldError(errs fieldErrors, err error) bool {
	var fe *auth.FieldError
	if errors.As(err, &fe) {
		if _, dup := errs[fe.Field]; !dup {
			errs[fe.Field] = fe.Message
		}
		return true
	}
	return false
}

func formErrorSummary(errs fieldErrors) string {
	if len(errs) == 1 {
		return "Please correct the highlighted field."
	}
	return "Please correct the " + strconv.Itoa(len(errs)) + " highlighted fields."
}

type loginView struct {
	Layout
	CSRF      string
	Next      string
	FormError string
	Email     Field
	Password  Field
	// Pending is set on the second step: the token of the sign-in whose
	// password was right, sent back with the code (never the password).
	Pending string
	Code    Field
}

func newLoginView(l Layout) loginView {
	return loginView{
		Layout:   l,
		Email:    Field{ID: "email", Name: "email", Label: "Email", Type: "email", Autocomplete: "username", Required: true, Autofocus: true, MaxLength: 254},
		Password: Field{ID: "password", Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password", Required: true},
	}
}

func (u *ui) loginForm(w http.ResponseWriter, r *http.Request) {
	if needed, err := u.d.Auth.SetupNeeded(r.Context()); err != nil {
		u.serverError(w, r, "check setup", err)
		return
	} else if needed {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	next := localPath(r.URL.Query().Get("next"))
	if _, err := u.session(r); err == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	v := newLoginView(u.layout(r, nil, "Sign in", ""))
	v.CSRF, v.Next = u.preSessionToken(w, r), next
	if r.URL.Query().Has("signed_out") {
		v.Notice = &Notice{Tone: "ok", Message: "You have signed out."}
	}
	u.render(w, r, http.StatusOK, "login", v)
}

func (u *ui) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if needed, err := u.d.Auth.SetupNeeded(r.Context()); err != nil {
		u.serverError(w, r, "check setup", err)
		return
	} else if needed {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	if err := r.ParseForm(); err != nil {
		u.badForm(w, r)
		return
	}
	v := newLoginView(u.layout(r, nil, "Sign in", ""))
	v.CSRF = u.preSessionToken(w, r)
	v.Next = localPath(r.PostFormValue("next"))
	v.Email.Value = strings.TrimSpace(r.PostFormValue("email"))
	if !u.preSessionValid(r) {
		v.FormError = "This form expired or was sent from another site. Please try again."
		u.render(w, r, http.StatusForbidden, "login", v)
		return
	}
	secret, _, err := u.d.Auth.Login(r.Context(), auth.Credentials{
		Email: v.Email.Value, Password: r.PostFormValue("password"), ClientIP: auth.ClientIP(r), UserAgent: r.UserAgent(),
	})
	var throttled *auth.ThrottledError
	var pending *auth.PendingLoginError
	var locked *auth.SecondFactorLockedError
	errs := fieldErrors{}
	switch {
	case err == nil:
		auth.SetSessionCookie(w, secret, u.d.SecureCookies, u.d.SessionLifetime)
		http.Redirect(w, r, v.Next, http.StatusSeeOther)
		return
	case errors.As(err, &pending):
		u.renderSecondStep(w, r, v, pending.Token, http.StatusOK)
	case errors.As(err, &locked):
		u.renderLocked(w, r, v, locked)
	case addFieldError(errs, err):
		errs.apply(&v.Email, &v.Password)
		u.render(w, r, http.StatusUnprocessableEntity, "login", v)
	case errors.Is(err, auth.ErrInvalidCredentials):
		v.FormError = "The email or password is not right. Check both and try again."
		v.Password.Autofocus, v.Email.Autofocus = true, false
		u.render(w, r, http.StatusUnauthorized, "login", v)
	case errors.As(err, &throttled):
		secs := int(math.Ceil(throttled.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		v.FormError = "Too many failed sign-in attempts. For your account's safety, wait " + waitText(secs) + " before trying again."
		u.render(w, r, http.StatusTooManyRequests, "login", v)
	default:
		u.serverError(w, r, "sign in", err)
	}
}

func waitText(secs int) string {
	if secs < 90 {
		return plural(max(secs, 1), "second")
	}
	return plural((secs+59)/60, "minute")
}

func (u *ui) logout(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := u.d.Auth.Logout(r.Context(), p); err != nil {
		u.serverError(w, r, "sign out", err)
		return
	}
	auth.ClearSessionCookie(w, u.d.SecureCookies)
	http.Redirect(w, r, "/login?signed_out=1", http.StatusSeeOther)
}

func (u *ui) badForm(w http.ResponseWriter, r *http.Request) {
	var pp *auth.Principal
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		pp = &p
	}
	u.errorPage(w, r, pp, http.StatusBadRequest, "The form could not be read", "The request was malformed or too large. Go back and try again.")
}
