package web

import (
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/version"
)

// Layout is what the base layout needs from every page.
type Layout struct {
	Title      string
	Active     string    // the nav entry to highlight
	User       *UserView // nil when nobody is signed in
	CSRF       string    // the session's CSRF token, for forms and htmx
	HTMX       bool      // htmx is part of this build
	Proxy      bool      // the server runs the edge proxy page
	Audit      bool      // the audit log page is there and the user may read it
	BuildQueue bool      // the server deploys apps, so it has a build queue page
	Version    string
	Notice     *Notice
	// Orgs are the signed-in user's organizations, for the switcher.
	Orgs      []orgChoice
	principal *auth.Principal
}

// orgChoice is one organization of the switcher.
type orgChoice struct {
	ID, Name, Role string
	Current        bool
}

// Can reports whether the signed-in principal's role has perm, so a page
// shows only the actions it may take. The services still decide.
func (l Layout) Can(perm string) bool {
	return l.principal != nil && l.principal.Can(authz.Permission(perm))
}

// CSRFHeaders is the hx-headers value that makes htmx send the CSRF token.
func (l Layout) CSRFHeaders() string {
	return `{"` + auth.CSRFHeader + `": "` + l.CSRF + `"}`
}

// UserView is the signed-in person as the shell shows them.
type UserView struct {
	Name, Email, Initials, Organization, Role string
}

// OrgInitial is the organization's mark in the switcher.
func (v UserView) OrgInitial() string {
	r, _ := utf8.DecodeRuneInString(strings.TrimSpace(v.Organization))
	if r == utf8.RuneError {
		return "?"
	}
	return string(unicode.ToUpper(r))
}

// Notice is a message shown once at the top of a page or section.
type Notice struct {
	Tone    string // ok|warn|fail|info
	Title   string
	Message string
}

// Badge is a small status label; Tone picks its colour (ok|warn|fail|neutral|info).
type Badge struct {
	Text string
	Tone string
}

// Field is one form control with its label, hint and error.
type Field struct {
	ID, Name, Label, Type string
	Value                 string
	Hint, Error           string
	Autocomplete          string
	Required, Autofocus   bool
	MinLength, MaxLength  int
	Placeholder           string
	Options               []Option // Type "select"
	Rows                  int      // Type "textarea"
	Min, Max, Step        string   // Type "number"
	Code                  bool     // monospace, no spellcheck: image names, paths, .env text
	Checked               bool     // Type "checkbox"
}

// Option is one choice of a select field.
type Option struct {
	Value, Label string
	Selected     bool
}

// ErrorID is the id of the element describing the field's error.
func (f Field) ErrorID() string { return f.ID + "-error" }

// HintID is the id of the element holding the field's hint.
func (f Field) HintID() string { return f.ID + "-hint" }

// DescribedBy lists the ids that describe the field, for aria-describedby.
func (f Field) DescribedBy() string {
	var ids []string
	if f.Error != "" {
		ids = append(ids, f.ErrorID())
	}
	if f.Hint != "" {
		ids = append(ids, f.HintID())
	}
	return strings.Join(ids, " ")
}

// fieldErrors maps a form's field names to messages.
type fieldErrors map[string]string

// apply puts the message for each field onto it.
func (e fieldErrors) apply(fields ...*Field) {
	for _, f := range fields {
		f.Error = e[f.Name]
	}
}

func (u *ui) layout(r *http.Request, p *auth.Principal, title, active string) Layout {
	l := Layout{Title: title, Active: active, HTMX: u.assets.has("vendor/htmx.min.js"), Proxy: u.d.ProxyStatus != nil, BuildQueue: u.d.Apps != nil, Version: version.Get().Version}
	if p != nil {
		l.User = userView(*p)
		l.CSRF = p.CSRFToken
		l.Audit = u.d.Audit != nil && p.Can(authz.AuditRead)
		l.Proxy = l.Proxy && p.Can(authz.ServerRead)
		l.principal = p
		l.Orgs = u.orgChoices(r, *p)
	}
	return l
}

// orgChoices lists p's organizations for the switcher; a failure only
// leaves the switcher with the current organization, and is logged.
func (u *ui) orgChoices(r *http.Request, p auth.Principal) []orgChoice {
	ms, err := u.d.Auth.Organizations(r.Context(), p)
	if err != nil {
		u.d.Log.WarnContext(r.Context(), "web: list organizations", "err", err)
		return []orgChoice{{ID: p.Organization.ID, Name: p.Organization.Name, Role: p.Role, Current: true}}
	}
	out := make([]orgChoice, 0, len(ms))
	for _, m := range ms {
		out = append(out, orgChoice{ID: m.Organization.ID, Name: m.Organization.Name, Role: m.Role, Current: m.Organization.ID == p.Organization.ID})
	}
	return out
}

func userView(p auth.Principal) *UserView {
	name := p.User.Name
	if name == "" {
		name, _, _ = strings.Cut(p.User.Email, "@")
	}
	return &UserView{Name: name, Email: p.User.Email, Initials: initials(name), Organization: p.Organization.Name, Role: p.Role}
}

func initials(name string) string {
	var out []rune
	for _, w := range strings.FieldsFunc(name, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		r, _ := utf8.DecodeRuneInString(w)
		out = append(out, unicode.ToUpper(r))
		if len(out) == 2 {
			break
		}
	}
	if len(out) == 0 {
		return "?"
	}
	return string(out)
}

// firstName is how the dashboard greets someone.
func firstName(u *UserView) string {
	if f := strings.Fields(u.Name); len(f) > 0 {
		return f[0]
	}
	return u.Name
}

type errorView struct {
	Layout
	Status    int
	Heading   string
	Message   string
	RequestID string
}
