package web

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/store"
)

// The members page: who belongs to the organization with which role, their
// project grants, and the invitations. Every action is checked again by the
// auth service; the page only leaves out what the viewer's role cannot do.

func (u *ui) registerMembers(mux *http.ServeMux) {
	mux.HandleFunc("GET /members", u.signedIn(u.membersPage))
	mux.HandleFunc("POST /members/invite", u.signedIn(u.invite))
	mux.HandleFunc("POST /members/invitations/{id}/revoke", u.signedIn(u.revokeInvitation))
	mux.HandleFunc("POST /members/{user}/set-role", u.signedIn(u.setMemberRole))
	mux.HandleFunc("POST /members/{user}/remove", u.signedIn(u.removeMember))
	mux.HandleFunc("POST /members/{user}/transfer-ownership", u.signedIn(u.transferOwnership))
	mux.HandleFunc("POST /members/grants/set", u.signedIn(u.setGrant))
	mux.HandleFunc("POST /members/grants/remove", u.signedIn(u.removeGrant))
}

type membersView struct {
	Layout
	CSRF        string
	CanInvite   bool
	CanWrite    bool
	Members     []memberRow
	Roles       []roleInfo // the built-in roles, for the legend
	Invite      inviteForm
	NewInvite   *newInvite // just created: the link, shown once
	Invitations []invitationRow
	Grants      grantsView
}

type memberRow struct {
	UserID, Name, Email, Role string
	Joined                    time.Time
	You, Owner                bool
	// CanEdit: the viewer may change this member's role and remove them.
	CanEdit     bool
	CanTransfer bool // the viewer owns the organization and may hand it to this member
	RoleField   Field
	Error       string // a refused change of this member, shown on its row
}

// ActionURL is where the row's forms post to.
func (m memberRow) ActionURL(action string) string {
	return "/members/" + url.PathEscape(m.UserID) + "/" + action
}

type roleInfo struct {
	Name, Description string
}

type inviteForm struct {
	FormError string
	Email     Field
	Role      Field
}

type newInvite struct {
	Email, Role, Link string
	Expires           time.Time
	Emailed           bool
	EmailError        string // why the email failed ("" when sent or not configured)
}

type invitationRow struct {
	ID, Email, Role, InvitedBy string
	Created, Expires           time.Time
	Status                     Badge
	Pending                    bool
}

// grantsView is the project access section: grants of every member, and
// the form to add one.
type grantsView struct {
	Available bool // the server has projects (the deploy service runs)
	Rows      []grantRow
	FormError string
	Member    Field
	Scope     Field
	Role      Field
}

type grantRow struct {
	Member, Scope, Role      string
	UserID, ProjectID, EnvID string
}

var memberNotices = map[string]Notice{
	"role-changed":       {Tone: "ok", Message: "Role changed. It applies to the member's next request."},
	"member-removed":     {Tone: "ok", Message: "Member removed. Their sessions and API tokens for this organization stopped working at once."},
	"ownership-moved":    {Tone: "ok", Title: "Ownership transferred.", Message: "You are now an admin of this organization."},
	"invitation-revoked": {Tone: "ok", Message: "Invitation revoked. Its link no longer works."},
	"invitation-missing": {Tone: "info", Message: "That invitation was already used, revoked or has expired."},
	"grant-added":        {Tone: "ok", Message: "Project access granted."},
	"grant-removed":      {Tone: "ok", Message: "Project access removed."},
	"member-missing":     {Tone: "info", Message: "That person is no longer a member. They may have been removed in another tab."},
}

// assignableRoles are the roles p may hand out: covered by p's own, never
// owner (ownership moves by transfer).
func assignableRoles(p auth.Principal) []authz.Role {
	var out []authz.Role
	for _, r := range authz.Builtin {
		if r.Name != authz.Owner && authz.Covers(p.Role, r.Name) {
			out = append(out, r)
		}
	}
	return out
}

func roleSelect(id, name string, roles []authz.Role, selected string) Field {
	f := Field{ID: id, Name: name, Label: "Role", Type: "select", Required: true}
	for _, r := range roles {
		f.Options = append(f.Options, Option{Value: r.Name, Label: r.Name, Selected: r.Name == selected})
	}
	return f
}

func newInviteForm(p auth.Principal, email, role string) inviteForm {
	if role == "" {
		role = authz.Developer
	}
	f := inviteForm{
		Email: Field{ID: "invite-email", Name: "email", Label: "Email", Type: "email", Value: email, Required: true, MaxLength: 254, Autocomplete: "off", Placeholder: "grace@example.com"},
		Role:  roleSelect("invite-role", "role", assignableRoles(p), role),
	}
	f.Role.Hint = "At most your own role (" + p.Role + ")."
	return f
}

func (u *ui) membersView(r *http.Request, p auth.Principal) (membersView, error) {
	v := membersView{
		Layout: u.layout(r, &p, "Members", "members"), CSRF: p.CSRFToken,
		CanInvite: p.Can(authz.MemberInvite), CanWrite: p.Can(authz.MemberWrite),
		Invite: newInviteForm(p, "", ""),
	}
	for _, role := range authz.Builtin {
		v.Roles = append(v.Roles, roleInfo{Name: role.Name, Description: role.Description})
	}
	ms, err := u.d.Auth.Members(r.Context(), p)
	if err != nil {
		return v, err
	}
	roles := assignableRoles(p)
	names := map[string]string{}
	for _, m := range ms {
		row := memberRow{UserID: m.User.ID, Name: m.User.Name, Email: m.User.Email, Role: m.Role, Joined: m.JoinedAt,
			You: m.User.ID == p.User.ID, Owner: m.Role == authz.Owner}
		row.CanEdit = v.CanWrite && !row.You && !row.Owner && authz.Covers(p.Role, m.Role)
		row.CanTransfer = p.Can(authz.OrgWrite) && p.Role == authz.Owner && !row.You
		row.RoleField = roleSelect("role-"+m.User.ID, "role", roles, m.Role)
		row.RoleField.Label = "Role of " + m.User.Email
		v.Members = append(v.Members, row)
		names[m.User.ID] = displayName(m.User)
	}
	invs, err := u.d.Auth.Invitations(r.Context(), p)
	if err != nil {
		return v, err
	}
	now := u.d.Auth.Now()
	for _, inv := range invs {
		v.Invitations = append(v.Invitations, invitationRowOf(inv, now))
	}
	g, err := u.grantsView(r, p, ms, names)
	v.Grants = g
	return v, err
}

func displayName(u store.User) string {
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}

func invitationRowOf(inv store.Invitation, now time.Time) invitationRow {
	row := invitationRow{ID: inv.ID, Email: inv.Email, Role: inv.Role, InvitedBy: inv.InvitedBy, Created: inv.CreatedAt, Expires: inv.ExpiresAt}
	switch {
	case inv.AcceptedAt != nil:
		row.Status = Badge{"Accepted", "ok"}
	case inv.RevokedAt != nil:
		row.Status = Badge{"Revoked", "neutral"}
	case !now.Before(inv.ExpiresAt):
		row.Status = Badge{"Expired", "warn"}
	default:
		row.Status, row.Pending = Badge{"Pending", "info"}, true
	}
	return row
}

// grantsView lists every member's grants by project and environment name.
func (u *ui) grantsView(r *http.Request, p auth.Principal, ms []store.Member, names map[string]string) (grantsView, error) {
	v := grantsView{Available: u.d.Apps != nil && p.Can(authz.ProjectRead)}
	if !v.Available {
		return v, nil
	}
	projects, err := u.d.Apps.Projects(r.Context(), p)
	if err != nil {
		return v, err
	}
	scopes := map[string]string{} // "project" or "project/environment" id → label
	v.Scope = Field{ID: "grant-scope", Name: "scope", Label: "Project or environment", Type: "select", Required: true}
	for _, proj := range projects {
		scopes[proj.ID] = proj.Name
		v.Scope.Options = append(v.Scope.Options, Option{Value: proj.ID, Label: proj.Name + " (every environment)"})
		envs, err := u.d.Apps.Environments(r.Context(), p, proj.Name)
		if err != nil {
			return v, err
		}
		for _, env := range envs {
			scopes[proj.ID+"/"+env.ID] = proj.Name + " / " + env.Name
			v.Scope.Options = append(v.Scope.Options, Option{Value: proj.ID + "/" + env.ID, Label: proj.Name + " / " + env.Name})
		}
	}
	v.Member = Field{ID: "grant-member", Name: "user", Label: "Member", Type: "select", Required: true}
	for _, m := range ms {
		if m.Role == authz.Owner {
			continue // the owner can do everything already
		}
		v.Member.Options = append(v.Member.Options, Option{Value: m.User.ID, Label: displayName(m.User) + " (" + m.Role + ")"})
		gs, err := u.d.Auth.Grants(r.Context(), p, m.User.ID)
		if err != nil {
			return v, err
		}
		for _, g := range gs {
			key := g.ProjectID
			if g.EnvironmentID != "" {
				key += "/" + g.EnvironmentID
			}
			label, ok := scopes[key]
			if !ok {
				label = "(deleted project)"
			}
			v.Rows = append(v.Rows, grantRow{Member: names[m.User.ID], Scope: label, Role: g.Role, UserID: g.UserID, ProjectID: g.ProjectID, EnvID: g.EnvironmentID})
		}
	}
	sort.SliceStable(v.Rows, func(i, j int) bool { return v.Rows[i].Member < v.Rows[j].Member })
	v.Role = roleSelect("grant-role", "role", assignableRoles(p), authz.Developer)
	v.Role.Label = "Role there"
	return v, nil
}

func (u *ui) membersPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, err := u.membersView(r, p)
	if err != nil {
		u.serverError(w, r, "members page", err)
		return
	}
	if n, ok := memberNotices[r.URL.Query().Get("notice")]; ok {
		v.Notice = &n
	}
	u.render(w, r, http.StatusOK, "members", v)
}

// invitationLink is the accept page's address with the token, built on the
// public URL when the server has one.
func (u *ui) invitationLink(r *http.Request, token string) string {
	return u.webhookBase(r) + "/invitations/accept?token=" + url.QueryEscape(token)
}

func (u *ui) invite(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	email, role := strings.TrimSpace(r.PostFormValue("email")), r.PostFormValue("role")
	token, inv, err := u.d.Auth.Invite(r.Context(), p, email, role)
	errs := fieldErrors{}
	if err != nil && !addFieldError(errs, err) {
		u.serverError(w, r, "invite", err)
		return
	}
	v, verr := u.membersView(r, p)
	if verr != nil {
		u.serverError(w, r, "members page", verr)
		return
	}
	if len(errs) > 0 {
		v.Invite = newInviteForm(p, email, role)
		errs.apply(&v.Invite.Email, &v.Invite.Role)
		v.Invite.FormError = formErrorSummary(errs)
		u.render(w, r, http.StatusUnprocessableEntity, "members", v)
		return
	}
	u.d.Log.InfoContext(r.Context(), "member invited", "user_id", p.User.ID, "invitation_id", inv.ID, "role", inv.Role)
	v.NewInvite = &newInvite{Email: inv.Email, Role: inv.Role, Link: u.invitationLink(r, token), Expires: inv.ExpiresAt}
	if v.NewInvite.Emailed, err = u.d.Auth.SendInvitation(r.Context(), p, inv, v.NewInvite.Link); err != nil {
		v.NewInvite.EmailError = err.Error()
		u.d.Log.WarnContext(r.Context(), "invitation email not sent", "invitation_id", inv.ID, "err", err)
	}
	u.render(w, r, http.StatusOK, "members", v)
}

func (u *ui) revokeInvitation(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	err := u.d.Auth.RevokeInvitation(r.Context(), p, r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		seeOther(w, r, "/members?notice=invitation-missing#invitations")
	case err != nil:
		u.serverError(w, r, "revoke invitation", err)
	default:
		seeOther(w, r, "/members?notice=invitation-revoked#invitations")
	}
}

// memberDone answers a member action: on to the page with notice, or the
// page with the refusal on the member's row.
func (u *ui) memberDone(w http.ResponseWriter, r *http.Request, p auth.Principal, op, notice string, err error) {
	var fe *auth.FieldError
	switch {
	case err == nil:
		seeOther(w, r, "/members?notice="+notice)
	case errors.Is(err, store.ErrNotFound):
		seeOther(w, r, "/members?notice=member-missing")
	case errors.As(err, &fe):
		v, verr := u.membersView(r, p)
		if verr != nil {
			u.serverError(w, r, "members page", verr)
			return
		}
		for i := range v.Members {
			if v.Members[i].UserID == r.PathValue("user") {
				v.Members[i].Error = titleCase(fe.Field) + " " + fe.Message + "."
			}
		}
		v.Notice = &Notice{Tone: "fail", Message: titleCase(sentence(fe.Field + " " + fe.Message))}
		u.render(w, r, http.StatusUnprocessableEntity, "members", v)
	default:
		u.serverError(w, r, op, err)
	}
}

func (u *ui) setMemberRole(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	err := u.d.Auth.SetMemberRole(r.Context(), p, r.PathValue("user"), r.PostFormValue("role"))
	u.memberDone(w, r, p, "change member role", "role-changed", err)
}

func (u *ui) removeMember(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	_, err := u.d.Auth.RemoveMember(r.Context(), p, r.PathValue("user"))
	u.memberDone(w, r, p, "remove member", "member-removed", err)
}

func (u *ui) transferOwnership(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	err := u.d.Auth.TransferOwnership(r.Context(), p, r.PathValue("user"))
	u.memberDone(w, r, p, "transfer ownership", "ownership-moved", err)
}

// grantOf reads a grant form: the member, and the scope "project" or
// "project/environment" by id.
func grantOf(r *http.Request, role string) store.Grant {
	proj, env, _ := strings.Cut(r.PostFormValue("scope"), "/")
	return store.Grant{UserID: r.PostFormValue("user"), ProjectID: proj, EnvironmentID: env, Role: role}
}

func (u *ui) setGrant(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	g := grantOf(r, r.PostFormValue("role"))
	err := u.d.Auth.SetGrant(r.Context(), p, g)
	errs := fieldErrors{}
	switch {
	case err == nil:
		seeOther(w, r, "/members?notice=grant-added#access")
		return
	case errors.Is(err, store.ErrNotFound):
		errs["scope"] = "no longer exists, or the member was removed"
	case !addFieldError(errs, err):
		u.serverError(w, r, "grant project access", err)
		return
	}
	v, verr := u.membersView(r, p)
	if verr != nil {
		u.serverError(w, r, "members page", verr)
		return
	}
	for i := range v.Grants.Member.Options {
		v.Grants.Member.Options[i].Selected = v.Grants.Member.Options[i].Value == g.UserID
	}
	errs.apply(&v.Grants.Member, &v.Grants.Scope, &v.Grants.Role)
	v.Grants.FormError = formErrorSummary(errs)
	u.render(w, r, http.StatusUnprocessableEntity, "members", v)
}

func (u *ui) removeGrant(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	err := u.d.Auth.SetGrant(r.Context(), p, grantOf(r, ""))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		u.serverError(w, r, "remove project access", err)
		return
	}
	seeOther(w, r, "/members?notice=grant-removed#access")
}

// roleTone colours a role's badge: the more it may do, the warmer.
func roleTone(role string) string {
	switch role {
	case authz.Owner:
		return "warn"
	case authz.Admin:
		return "info"
	case authz.Developer:
		return "ok"
	}
	return "neutral"
}
