package web

import (
	"errors"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/berthpaas/berth/internal/auth"
)

// The second step of a sign-in and the two-factor section of the account
// page. The second form carries a pending-sign-in token, never the password.

func codeField(id string, autofocus bool) Field {
	return Field{ID: id, Name: "otp", Label: "Authentication code", Type: "text", Autocomplete: "one-time-code", Required: true, Autofocus: autofocus,
		MaxLength: 32, Code: true, Placeholder: "123456", Hint: "The 6-digit code of your authenticator app, or one of your recovery codes."}
}

func (u *ui) renderSecondStep(w http.ResponseWriter, r *http.Request, v loginView, pending string, status int) {
	v.Pending = pending
	v.Title = "Two-factor sign-in"
	if v.Code.ID == "" {
		v.Code = codeField("otp", true)
	}
	u.render(w, r, status, "login", v)
}

func (u *ui) renderLocked(w http.ResponseWriter, r *http.Request, v loginView, locked *auth.SecondFactorLockedError) {
	secs := max(1, int(math.Ceil(locked.Until.Sub(u.d.Auth.Now()).Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	v.FormError = "Too many wrong codes. For your account's safety, two-factor sign-in is locked until " +
		locked.Until.UTC().Format("15:04 UTC") + " (" + waitText(secs) + " from now)."
	u.render(w, r, http.StatusTooManyRequests, "login", v)
}

// recordSecondStep records the second step by the pending sign-in's user,
// looked up before the handler spends the token.
func (u *ui) recordSecondStep(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			u.badForm(w, r)
			return
		}
		if u.d.Audit == nil {
			h(w, r)
			return
		}
		email := u.d.Auth.PendingLoginUser(r.Context(), r.PostFormValue("pending"))
		if email == "" {
			email = "(unknown sign-in)"
		}
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		u.d.Audit.RecordSignIn(r.Context(), email, u.event(r, r.Pattern, sw.code()))
	}
}

func (u *ui) loginSecondStep(w http.ResponseWriter, r *http.Request) {
	v := newLoginView(u.layout(r, nil, "Sign in", ""))
	v.CSRF = u.preSessionToken(w, r)
	v.Next = localPath(r.PostFormValue("next"))
	pending := r.PostFormValue("pending")
	if !u.preSessionValid(r) {
		v.FormError = "This form expired or was sent from another site. Please sign in again."
		u.render(w, r, http.StatusForbidden, "login", v)
		return
	}
	otp, recovery := auth.SplitCode(r.PostFormValue("otp"))
	secret, _, err := u.d.Auth.LoginSecondStep(r.Context(), pending, otp, recovery, auth.ClientIP(r), r.UserAgent())
	var locked *auth.SecondFactorLockedError
	errs := fieldErrors{}
	switch {
	case err == nil:
		auth.SetSessionCookie(w, secret, u.d.SecureCookies, u.d.SessionLifetime)
		http.Redirect(w, r, v.Next, http.StatusSeeOther)
	case errors.Is(err, auth.ErrPendingLoginExpired):
		v.FormError = "The sign-in took too long and has expired. Please enter your email and password again."
		u.render(w, r, http.StatusUnauthorized, "login", v)
	case errors.Is(err, auth.ErrInvalidSecondFactor):
		v.Code = codeField("otp", true)
		v.Code.Error = "is not right, has expired or was already used"
		v.FormError = "That code did not work. Wait for the next code of your app and try again."
		u.renderSecondStep(w, r, v, pending, http.StatusUnauthorized)
	case errors.As(err, &locked):
		u.renderLocked(w, r, v, locked)
	case addFieldError(errs, err):
		v.Code = codeField("otp", true)
		errs.apply(&v.Code)
		u.renderSecondStep(w, r, v, pending, http.StatusUnprocessableEntity)
	default:
		u.serverError(w, r, "sign in: second step", err)
	}
}

// twoFactorView is the account page's two-factor section.
type twoFactorView struct {
	CSRF          string
	Enabled       bool
	CodesLeft     int
	Enrolment     *enrolmentView
	RecoveryCodes []string // just issued: shown once
	FormError     string
	Confirm       Field
	Password      Field
	DisableCode   Field
	RegenCode     Field
}

type enrolmentView struct {
	QR     template.URL // a data: URI we made, which the CSP allows in <img>
	Secret string
	URI    string
}

// SecretGroups is the base32 secret in groups of four, easier to type.
func (e enrolmentView) SecretGroups() string {
	var b strings.Builder
	for i, r := range e.Secret {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (u *ui) twoFactorView(r *http.Request, p auth.Principal) (twoFactorView, error) {
	v := twoFactorView{
		CSRF:        p.CSRFToken,
		Confirm:     codeField("tf-confirm-code", false),
		Password:    Field{ID: "tf-password", Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password", Required: true},
		DisableCode: codeField("tf-disable-code", false),
		RegenCode:   codeField("tf-regen-code", false),
	}
	v.Confirm.Hint = "The 6-digit code your app shows for Berth now."
	st, err := u.d.Auth.TwoFactor(r.Context(), p.User.ID)
	if err != nil {
		return v, err
	}
	v.Enabled, v.CodesLeft = st.Enabled, st.RecoveryCodesLeft
	if st.Pending {
		en, err := u.d.Auth.PendingEnrolment(r.Context(), p)
		if err != nil && !errors.Is(err, auth.ErrTwoFactorUnavailable) {
			return v, err
		}
		if err == nil {
			v.Enrolment = &enrolmentView{QR: template.URL(auth.QRCodeDataURI(en.QRPNG)), Secret: en.Secret, URI: en.URI}
		}
	}
	return v, nil
}

// renderTwoFactor renders the account page with the two-factor section changed by edit.
func (u *ui) renderTwoFactor(w http.ResponseWriter, r *http.Request, p auth.Principal, status int, edit func(*twoFactorView)) {
	v, err := u.accountView(r, p)
	if err != nil {
		u.serverError(w, r, "account page", err)
		return
	}
	edit(&v.TwoFactor)
	u.render(w, r, status, "account", v)
}

func (u *ui) startTwoFactor(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	_, err := u.d.Auth.StartTwoFactor(r.Context(), p)
	switch {
	case err == nil, errors.Is(err, auth.ErrTwoFactorEnabled):
		http.Redirect(w, r, "/account#two-factor", http.StatusSeeOther)
	case errors.Is(err, auth.ErrTwoFactorUnavailable):
		u.renderTwoFactor(w, r, p, http.StatusConflict, func(v *twoFactorView) {
			v.FormError = "Two-factor login is not available: this server has no master key."
		})
	default:
		u.serverError(w, r, "start two-factor enrolment", err)
	}
}

func (u *ui) confirmTwoFactor(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	codes, err := u.d.Auth.ConfirmTwoFactor(r.Context(), p, r.PostFormValue("otp"))
	errs := fieldErrors{}
	switch {
	case err == nil:
		u.renderTwoFactor(w, r, p, http.StatusOK, func(v *twoFactorView) { v.RecoveryCodes = codes })
	case errors.Is(err, auth.ErrNoPendingEnrolment), errors.Is(err, auth.ErrTwoFactorEnabled):
		http.Redirect(w, r, "/account#two-factor", http.StatusSeeOther)
	case addFieldError(errs, err):
		u.renderTwoFactor(w, r, p, http.StatusUnprocessableEntity, func(v *twoFactorView) {
			v.Confirm.Error = errs["otp"]
			v.Confirm.Autofocus = true
		})
	default:
		u.serverError(w, r, "confirm two-factor enrolment", err)
	}
}

// secondFactorProblem words a refused code for the account page; ok is
// false for errors that are not about the code.
func (u *ui) secondFactorProblem(err error) (string, bool) {
	var locked *auth.SecondFactorLockedError
	var throttled *auth.ThrottledError
	switch {
	case errors.Is(err, auth.ErrInvalidSecondFactor):
		return "That code did not work: it is not right, has expired or was already used.", true
	case errors.As(err, &locked):
		return "Too many wrong codes. Two-factor checks are locked until " + locked.Until.UTC().Format("15:04 UTC") + ".", true
	case errors.As(err, &throttled):
		return "Too many wrong passwords. Wait " + waitText(int(math.Ceil(throttled.RetryAfter.Seconds()))) + " before trying again.", true
	case errors.Is(err, auth.ErrTwoFactorNotEnabled):
		return "Two-factor login is not enabled.", true
	}
	return "", false
}

func (u *ui) disableTwoFactor(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	otp, recovery := auth.SplitCode(r.PostFormValue("otp"))
	_, err := u.d.Auth.DisableTwoFactor(r.Context(), p, r.PostFormValue("password"), otp, recovery)
	if err == nil {
		http.Redirect(w, r, "/account?notice=two-factor-disabled", http.StatusSeeOther)
		return
	}
	errs := fieldErrors{}
	if msg, ok := u.secondFactorProblem(err); ok {
		u.renderTwoFactor(w, r, p, http.StatusUnprocessableEntity, func(v *twoFactorView) { v.FormError = msg })
		return
	}
	if !addFieldError(errs, err) {
		u.serverError(w, r, "disable two-factor login", err)
		return
	}
	u.renderTwoFactor(w, r, p, http.StatusUnprocessableEntity, func(v *twoFactorView) {
		if m, ok := errs["otp"]; ok {
			v.DisableCode.Error = m
		}
		if m, ok := errs["password"]; ok {
			v.Password.Error = m
		}
		v.FormError = formErrorSummary(errs)
	})
}

func (u *ui) regenerateRecoveryCodes(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	otp, recovery := auth.SplitCode(r.PostFormValue("otp"))
	codes, err := u.d.Auth.RegenerateRecoveryCodes(r.Context(), p, otp, recovery)
	if err == nil {
		u.renderTwoFactor(w, r, p, http.StatusOK, func(v *twoFactorView) { v.RecoveryCodes = codes; v.CodesLeft = len(codes) })
		return
	}
	errs := fieldErrors{}
	if msg, ok := u.secondFactorProblem(err); ok {
		u.renderTwoFactor(w, r, p, http.StatusUnprocessableEntity, func(v *twoFactorView) { v.FormError = msg })
		return
	}
	if !addFieldError(errs, err) {
		u.serverError(w, r, "regenerate recovery codes", err)
		return
	}
	u.renderTwoFactor(w, r, p, http.StatusUnprocessableEntity, func(v *twoFactorView) { v.RegenCode.Error = errs["otp"] })
}
