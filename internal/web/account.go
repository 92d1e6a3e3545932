package web

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/store"
)

type accountView struct {
	Layout
	Profile   profileView
	Password  passwordForm
	TwoFactor twoFactorView
	Tokens    tokensView
}

type profileView struct {
	Name, Email, Organization, Role string
	Since                           time.Time
	PasswordChanged                 time.Time
}

type passwordForm struct {
	CSRF      string
	FormError string
	Current   Field
	New       Field
	Confirm   Field
}

// tokensView is the API tokens section; htmx swaps it as a whole.
type tokensView struct {
	CSRF     string
	Notice   *Notice
	NewToken *newToken
	Rows     []tokenRow
	Name     Field
	Expiry   Field
	Role     Field
}

type newToken struct {
	Name   string
	Secret string
}

type tokenRow struct {
	ID, Name, Prefix string
	Role             string // "" acts with the member's role
	Created          time.Time
	Expires          *time.Time
	LastUsed         *time.Time
	Expired          bool
}

// tokenExpiries are the choices of the create form, in display order.
var tokenExpiries = []struct {
	Value, Label string
	TTL          time.Duration
}{
	{"1d", "1 day", 24 * time.Hour},
	{"7d", "7 days", 7 * 24 * time.Hour},
	{"30d", "30 days", 30 * 24 * time.Hour},
	{"90d", "90 days", 90 * 24 * time.Hour},
	{"never", "Never", 0},
}

const defaultExpiry = "30d"

func newPasswordForm(csrf string) passwordForm {
	return passwordForm{
		CSRF:    csrf,
		Current: Field{ID: "current_password", Name: "current_password", Label: "Current password", Type: "password", Autocomplete: "current-password", Required: true},
		New:     Field{ID: "new_password", Name: "new_password", Label: "New password", Type: "password", Autocomplete: "new-password", Required: true, MinLength: auth.MinPasswordLength, Hint: "At least 10 characters."},
		Confirm: Field{ID: "new_password_confirm", Name: "new_password_confirm", Label: "Confirm new password", Type: "password", Autocomplete: "new-password", Required: true},
	}
}

func newTokenFields(name, expiry string) (Field, Field) {
	if expiry == "" {
		expiry = defaultExpiry
	}
	f := Field{ID: "token-expiry", Name: "expires_in", Label: "Expires", Type: "select", Required: true}
	for _, e := range tokenExpiries {
		f.Options = append(f.Options, Option{Value: e.Value, Label: e.Label, Selected: e.Value == expiry})
	}
	return Field{ID: "token-name", Name: "name", Label: "Name", Type: "text", Value: name, Required: true, MaxLength: 64, Placeholder: "laptop CLI", Hint: "Something that tells you where it is used."}, f
}

func (u *ui) accountView(r *http.Request, p auth.Principal) (accountView, error) {
	v := accountView{
		Layout: u.layout(r, &p, "Account", "account"),
		Profile: profileView{
			Name: p.User.Name, Email: p.User.Email, Organization: p.Organization.Name, Role: p.Role,
			Since: p.User.CreatedAt, PasswordChanged: p.User.PasswordChangedAt,
		},
		Password: newPasswordForm(p.CSRFToken),
	}
	tf, err := u.twoFactorView(r, p)
	if err != nil {
		return v, err
	}
	v.TwoFactor = tf
	t, err := u.tokensView(r, p)
	v.Tokens = t
	return v, err
}

// tokenRoleField offers the roles p may limit a token to; "" is p's own
// role at each use, which follows later changes of it.
func tokenRoleField(p auth.Principal, role string) Field {
	f := Field{ID: "token-role", Name: "role", Label: "Role", Type: "select", Required: true,
		Hint: "A token limited to a lower role can do only what that role may."}
	f.Options = append(f.Options, Option{Value: "", Label: "My role (" + p.Role + ")", Selected: role == ""})
	for _, r := range authz.Builtin {
		if r.Name != p.Role && authz.Covers(p.Role, r.Name) {
			f.Options = append(f.Options, Option{Value: r.Name, Label: r.Name, Selected: r.Name == role})
		}
	}
	return f
}

func (u *ui) tokensView(r *http.Request, p auth.Principal) (tokensView, error) {
	v := tokensView{CSRF: p.CSRFToken}
	v.Name, v.Expiry = newTokenFields("", "")
	v.Role = tokenRoleField(p, "")
	toks, err := u.d.Auth.Tokens(r.Context(), p)
	if err != nil {
		return v, err
	}
	now := time.Now()
	for _, t := range toks {
		v.Rows = append(v.Rows, tokenRowOf(t, now))
	}
	return v, nil
}

func tokenRowOf(t store.APIToken, now time.Time) tokenRow {
	return tokenRow{
		ID: t.ID, Name: t.Name, Prefix: t.Prefix, Role: t.Role, Created: t.CreatedAt, Expires: t.ExpiresAt, LastUsed: t.LastUsedAt,
		Expired: t.ExpiresAt != nil && !now.Before(*t.ExpiresAt),
	}
}

// accountNotices are the messages a redirect back to /account can ask for;
// a fixed set, so the query string cannot put arbitrary text on the page.
var accountNotices = map[string]Notice{
	"password-changed":    {Tone: "ok", Title: "Password changed", Message: "Your other sessions have been signed out and your API tokens revoked, since a leaked password may have opened or minted them. This session stays signed in; create new tokens (or run berth login) where you need them."},
	"token-revoked":       {Tone: "ok", Message: "Token revoked. Clients using it can no longer reach the API."},
	"two-factor-required": {Tone: "warn", Title: "Two-factor login is required.", Message: "Your organization requires every member to use two-factor login. Set it up below to continue; until then the other pages stay closed."},
	"two-factor-disabled": {Tone: "ok", Title: "Two-factor login is off", Message: "Your other sessions have been signed out and your API tokens revoked. This session stays signed in."},
}

func (u *ui) account(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, err := u.accountView(r, p)
	if err != nil {
		u.serverError(w, r, "list tokens", err)
		return
	}
	if n, ok := accountNotices[r.URL.Query().Get("notice")]; ok {
		if r.URL.Query().Get("notice") == "token-revoked" {
			v.Tokens.Notice = &n
		} else {
			v.Notice = &n
		}
	}
	u.render(w, r, http.StatusOK, "account", v)
}

func (u *ui) changePassword(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	current, next := r.PostFormValue("current_password"), r.PostFormValue("new_password")
	errs := fieldErrors{}
	if current == "" {
		errs["current_password"] = "is required"
	}
	if reason := auth.CheckPasswordPolicy(next, p.User.Email); reason != "" {
		errs["new_password"] = reason
	}
	if r.PostFormValue("new_password_confirm") != next {
		errs["new_password_confirm"] = "does not match the new password"
	}
	// Only a form that passes every local check reaches the service, so a
	// mistyped confirmation never changes the password.
	if len(errs) == 0 {
		_, err := u.d.Auth.ChangePassword(r.Context(), p, current, next)
		if err == nil {
			http.Redirect(w, r, "/account?notice=password-changed", http.StatusSeeOther)
			return
		}
		var throttled *auth.ThrottledError
		if errors.As(err, &throttled) {
			secs := int(math.Ceil(throttled.RetryAfter.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			v, verr := u.accountView(r, p)
			if verr != nil {
				u.serverError(w, r, "list tokens", verr)
				return
			}
			v.Password.FormError = "Too many wrong current passwords. Wait " + waitText(secs) + " before trying again."
			u.render(w, r, http.StatusTooManyRequests, "account", v)
			return
		}
		if !addFieldError(errs, err) {
			u.serverError(w, r, "change password", err)
			return
		}
	}
	v, err := u.accountView(r, p)
	if err != nil {
		u.serverError(w, r, "list tokens", err)
		return
	}
	errs.apply(&v.Password.Current, &v.Password.New, &v.Password.Confirm)
	v.Password.FormError = formErrorSummary(errs)
	u.render(w, r, http.StatusUnprocessableEntity, "account", v)
}

func (u *ui) createToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name, expiry, role := r.PostFormValue("name"), r.PostFormValue("expires_in"), r.PostFormValue("role")
	errs := fieldErrors{}
	var ttl time.Duration
	known := false
	for _, e := range tokenExpiries {
		if e.Value == expiry {
			ttl, known = e.TTL, true
		}
	}
	if !known {
		errs["expires_in"] = "must be one of the listed choices"
	}
	var secret string
	var tok store.APIToken
	if len(errs) == 0 {
		var err error
		secret, tok, err = u.d.Auth.CreateRoleToken(r.Context(), p, name, role, ttl)
		if err != nil && !addFieldError(errs, err) {
			u.serverError(w, r, "create token", err)
			return
		}
	}
	tv, err := u.tokensView(r, p)
	if err != nil {
		u.serverError(w, r, "list tokens", err)
		return
	}
	status := http.StatusOK
	if len(errs) > 0 {
		tv.Name, tv.Expiry = newTokenFields(name, expiry)
		tv.Role = tokenRoleField(p, role)
		errs.apply(&tv.Name, &tv.Expiry, &tv.Role)
		status = http.StatusUnprocessableEntity
	} else {
		tv.NewToken = &newToken{Name: tok.Name, Secret: secret}
	}
	u.renderTokens(w, r, p, status, tv)
}

func (u *ui) revokeToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	err := u.d.Auth.RevokeToken(r.Context(), p, r.PathValue("id"))
	notice := Notice{Tone: "ok", Message: accountNotices["token-revoked"].Message}
	if errors.Is(err, auth.ErrNotFound) {
		// Revoked in another tab, or not this user's: either way it is gone.
		notice = Notice{Tone: "info", Message: "That token no longer exists or was already revoked."}
	} else if err != nil {
		u.serverError(w, r, "revoke token", err)
		return
	}
	if !isHTMX(r) {
		http.Redirect(w, r, "/account?notice=token-revoked#tokens", http.StatusSeeOther)
		return
	}
	tv, err := u.tokensView(r, p)
	if err != nil {
		u.serverError(w, r, "list tokens", err)
		return
	}
	tv.Notice = &notice
	u.renderTokens(w, r, p, http.StatusOK, tv)
}

// renderTokens answers htmx with the tokens section alone and a plain form
// post with the whole account page around it.
func (u *ui) renderTokens(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, tv tokensView) {
	if isHTMX(r) {
		u.renderTemplate(w, r, status, "account", "tokens", tv)
		return
	}
	v, err := u.accountView(r, p)
	if err != nil {
		u.serverError(w, r, "list tokens", err)
		return
	}
	v.Tokens = tv
	u.render(w, r, status, "account", v)
}

func isHTMX(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }
