package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
)

// The audit log page, and the recording of the UI's own form posts: the UI
// calls the deploy manager and the auth service directly, not the API, so
// the API's middleware never sees its changes. recordPost (from signedIn)
// and recordSignIn (login, setup) record them instead, with the same action
// names as the API.

// registerAudit mounts the audit log page for servers that keep one.
func (u *ui) registerAudit(mux *http.ServeMux) {
	if u.d.Audit == nil {
		return
	}
	mux.HandleFunc("GET /audit", u.signedIn(u.auditPage))
	mux.HandleFunc("GET /audit/export", u.signedIn(u.auditExport))
	mux.HandleFunc("POST /audit/verify", u.signedIn(u.auditVerify))
	mux.HandleFunc("POST /audit/retention", u.signedIn(u.auditSetRetention))
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// recordPost runs h for a signed-in POST and records it once it answered,
// unless h recorded it itself (a reveal). Recording failures are logged by
// the recorder; the answer has gone out and stands.
func (u *ui) recordPost(w http.ResponseWriter, r *http.Request, p auth.Principal, h func(http.ResponseWriter, *http.Request)) {
	if u.d.Audit == nil {
		h(w, r)
		return
	}
	ctx, note := audit.WithNote(r.Context())
	note.Principal = &p
	sw := &statusWriter{ResponseWriter: w}
	r = r.WithContext(ctx)
	h(sw, r)
	if note.Recorded {
		return
	}
	ev := u.event(r, r.Pattern, sw.code())
	ev.OrganizationID, ev.Actor = p.Organization.ID, audit.ActorOf(p)
	u.d.Audit.Record(context.WithoutCancel(ctx), ev)
}

// recordSignIn wraps the sign-in and setup forms, recorded by the email typed.
func (u *ui) recordSignIn(h http.HandlerFunc) http.HandlerFunc {
	if u.d.Audit == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		email := "(none)"
		if typed := r.PostFormValue("email"); typed != "" {
			email = "(not an email address)"
			if e, err := auth.ValidateEmail(typed); err == nil {
				email = e
			}
		}
		u.d.Audit.RecordSignIn(context.WithoutCancel(r.Context()), email, u.event(r, r.Pattern, sw.code()))
	}
}

// event describes a UI request: the action from its route, the target from
// its path values (and the environment it names), the form by field name.
func (u *ui) event(r *http.Request, pattern string, status int) audit.Event {
	var pairs []string
	for _, name := range audit.PathParams(pattern) {
		pairs = append(pairs, name, r.PathValue(name))
	}
	if env := r.URL.Query().Get("env"); env != "" {
		pairs = append(pairs, "environment", env)
	}
	form := r.PostForm
	if r.MultipartForm != nil {
		form = url.Values(r.MultipartForm.Value)
	}
	action := audit.ActionForRoute(pattern)
	return audit.Event{
		Action: action, Target: audit.WithCreated(action, audit.Target(pairs...), form.Get),
		SourceIP: auth.ClientIP(r), UserAgent: r.UserAgent(), Status: status,
		Summary: audit.SummarizeForm(form),
	}
}

// recordReveal records that p is about to see the variables of scope; it
// fails closed, so the caller shows no values when it returns false (the
// recorder has logged why, and the visitor has seen an error page).
func (u *ui) recordReveal(w http.ResponseWriter, r *http.Request, p auth.Principal, scope deploy.EnvScope, names []string) bool {
	if u.d.Audit == nil {
		return true
	}
	ev := u.event(r, r.Pattern, http.StatusOK)
	ev.OrganizationID, ev.Actor, ev.Action = p.Organization.ID, audit.ActorOf(p), "env.reveal"
	ev.Target = audit.Target("project", scope.Ref.Project, "environment", scope.Ref.Environment, "app", scope.Ref.Name)
	ev.Summary = audit.SummarizeReveal(scope.Scope, names)
	if err := u.d.Audit.Record(context.WithoutCancel(r.Context()), ev); err != nil {
		u.errorPage(w, r, &p, http.StatusInternalServerError, "The values were not shown",
			"Every reveal of secret values is written to the audit log first, and that failed. The server log has the details; try again later.")
		return false
	}
	if n := audit.NoteFrom(r.Context()); n != nil {
		n.Recorded = true
	}
	return true
}

type auditPageView struct {
	Layout
	Actor, Action, Target, Since, Until Field
	FilterError                         string
	Filtered                            bool
	Entries                             []auditRow
	NextURL                             string // the next, older page; "" on the last
	ExportJSONL, ExportCSV              string
	Verify                              auditVerifyView
	Retention                           auditRetentionView
}

// auditRetentionView says how long entries are kept; the owner may change it.
type auditRetentionView struct {
	CSRF    string
	Days    int
	Default bool
	CanSet  bool
	Field   Field
	Saved   bool
}

type auditVerifyView struct {
	CSRF    string
	Checked bool // a verification ran
	OK      bool
	Message string
}

type auditRow struct {
	Seq       int64
	At        time.Time
	Actor     string
	ActorKind string // "token" when an API token acted
	Action    string
	Target    []string // "project=shop", "app=web"
	Result    Badge
	Status    int
	Source    string
	UserAgent string
}

// auditPageSize is how many entries a page shows.
const auditPageSize = 50

// canReadAudit shows a 403 page to those who may not read the audit log.
func (u *ui) canReadAudit(w http.ResponseWriter, r *http.Request, p auth.Principal) bool {
	if p.Can(authz.AuditRead) {
		return true
	}
	u.errorPage(w, r, &p, http.StatusForbidden, "Only owners and admins can see the audit log",
		"The audit log records what everyone in the organization did. Ask an owner or an admin of "+p.Organization.Name+" if you need something from it.")
	return false
}

// auditFilter reads the filter form from the query; a bad time is put on
// its field.
func auditFilter(v *auditPageView, q url.Values) (store.AuditFilter, bool) {
	f := store.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")), Target: strings.TrimSpace(q.Get("target"))}
	v.Actor.Value, v.Action.Value, v.Target.Value, v.Since.Value, v.Until.Value = f.Actor, f.Action, f.Target, q.Get("since"), q.Get("until")
	ok := true
	for _, t := range []struct {
		field *Field
		dst   *time.Time
	}{{&v.Since, &f.Since}, {&v.Until, &f.Until}} {
		if s := strings.TrimSpace(t.field.Value); s != "" {
			tm, err := audit.ParseTime(s, time.Now())
			if err != nil {
				t.field.Error, ok = "is not a time: use an age such as 24h or 7d, a date such as 2026-01-31, or an RFC 3339 time", false
				continue
			}
			*t.dst = tm
		}
	}
	v.Filtered = f.Actor != "" || f.Action != "" || f.Target != "" || v.Since.Value != "" || v.Until.Value != ""
	return f, ok
}

func (u *ui) auditView(r *http.Request, p auth.Principal) (*auditPageView, store.AuditFilter, bool) {
	v := &auditPageView{
		Layout: u.layout(r, &p, "Audit log", "audit"),
		Actor:  Field{ID: "audit-actor", Name: "actor", Label: "Actor", Type: "text", Placeholder: "ada@example.com", MaxLength: 256},
		Action: Field{ID: "audit-action", Name: "action", Label: "Action", Type: "text", Placeholder: "app.deploy or app.", MaxLength: 128, Code: true},
		Target: Field{ID: "audit-target", Name: "target", Label: "Target contains", Type: "text", Placeholder: "app=web", MaxLength: 256, Code: true},
		Since:  Field{ID: "audit-since", Name: "since", Label: "Since", Type: "text", Placeholder: "24h or 2026-01-31", MaxLength: 64},
		Until:  Field{ID: "audit-until", Name: "until", Label: "Until", Type: "text", Placeholder: "2026-02-01", MaxLength: 64},
		Verify: auditVerifyView{CSRF: p.CSRFToken},
	}
	days, own, err := u.d.Audit.DB().OrganizationAuditRetention(r.Context(), p.Organization.ID)
	if err != nil {
		u.d.Log.ErrorContext(r.Context(), "web: read audit retention", "err", err)
	}
	v.Retention = auditRetentionView{CSRF: p.CSRFToken, Days: days, Default: !own, CanSet: p.Can(authz.AuditWrite), Saved: r.URL.Query().Get("saved") == "retention",
		Field: Field{ID: "audit-retention", Name: "days", Label: "Keep entries for (days)", Type: "number", Value: strconv.Itoa(days), Min: "1", Max: strconv.Itoa(store.MaxAuditRetentionDays), Required: true,
			Hint: "Older entries are trimmed from the oldest end within the hour; the chain stays verifiable."}}
	q := r.URL.Query()
	f, ok := auditFilter(v, q)
	if !ok {
		v.FilterError = "Nothing is shown until the times are fixed."
	}
	export := url.Values{}
	for _, k := range []string{"actor", "action", "target", "since", "until"} {
		if s := strings.TrimSpace(q.Get(k)); s != "" {
			export.Set(k, s)
		}
	}
	export.Set("format", "jsonl")
	v.ExportJSONL = "/audit/export?" + export.Encode()
	export.Set("format", "csv")
	v.ExportCSV = "/audit/export?" + export.Encode()
	return v, f, ok
}

func (u *ui) auditPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !u.canReadAudit(w, r, p) {
		return
	}
	v, f, ok := u.auditView(r, p)
	if ok {
		if c, err := strconv.ParseInt(r.URL.Query().Get("cursor"), 10, 64); err == nil && c > 0 {
			f.Before = c
		}
		f.Limit = auditPageSize + 1
		es, err := u.d.Audit.DB().AuditEntries(r.Context(), p.Organization.ID, f)
		if err != nil {
			u.serverError(w, r, "read audit log", err)
			return
		}
		for i, e := range es {
			if i == auditPageSize {
				q := r.URL.Query()
				q.Set("cursor", strconv.FormatInt(es[i-1].Seq, 10))
				v.NextURL = "/audit?" + q.Encode()
				break
			}
			v.Entries = append(v.Entries, auditRowOf(e))
		}
	}
	u.render(w, r, http.StatusOK, "audit", v)
}

func auditRowOf(e store.AuditEntry) auditRow {
	tone := map[string]string{store.ResultOK: "ok", store.ResultDenied: "warn", store.ResultFailed: "fail"}[e.Result]
	if tone == "" {
		tone = "neutral"
	}
	return auditRow{
		Seq: e.Seq, At: e.At, Actor: e.ActorLabel, ActorKind: e.ActorKind, Action: e.Action, Target: strings.Fields(e.Target),
		Result: Badge{Text: e.Result, Tone: tone}, Status: e.Status, Source: e.SourceIP, UserAgent: e.UserAgent,
	}
}

func (u *ui) auditExport(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !u.canReadAudit(w, r, p) {
		return
	}
	format := r.URL.Query().Get("format")
	if format != "csv" && format != "jsonl" {
		u.errorPage(w, r, &p, http.StatusBadRequest, "Unknown export format", "Export as jsonl (JSON lines) or csv.")
		return
	}
	_, f, ok := u.auditView(r, p)
	if !ok {
		u.errorPage(w, r, &p, http.StatusBadRequest, "The filter's times are not valid", "Since and until take an age such as 24h or 7d, a date such as 2026-01-31, or an RFC 3339 time.")
		return
	}
	w.Header().Set("Content-Type", audit.ContentType(format))
	w.Header().Set("Content-Disposition", `attachment; filename="berth-audit.`+format+`"`)
	w.Header().Set("Cache-Control", "no-store")
	if err := audit.Export(r.Context(), u.d.Audit.DB(), p.Organization.ID, f, format, w); err != nil {
		// Headers are sent; a cut-off file is all the browser gets.
		u.d.Log.ErrorContext(r.Context(), "web: audit export", "err", err)
	}
}

func (u *ui) auditVerify(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !u.canReadAudit(w, r, p) {
		return
	}
	res, err := u.d.Audit.DB().VerifyAudit(r.Context(), p.Organization.ID)
	if err != nil {
		u.serverError(w, r, "verify audit log", err)
		return
	}
	vv := auditVerifyView{CSRF: p.CSRFToken, Checked: true, OK: res.OK}
	switch {
	case !res.OK:
		vv.Message = res.FirstProblem + "."
	case res.AnchorSeq > 0:
		vv.Message = strconv.Itoa(res.Checked) + " entries checked, from #" + strconv.FormatInt(res.AnchorSeq+1, 10) + " (older ones were trimmed by retention)."
	default:
		vv.Message = strconv.Itoa(res.Checked) + " entries checked."
	}
	if isHTMX(r) {
		u.renderTemplate(w, r, http.StatusOK, "audit", "audit-verify", vv)
		return
	}
	v, f, ok := u.auditView(r, p)
	v.Verify = vv
	if ok {
		f.Limit = auditPageSize
		es, err := u.d.Audit.DB().AuditEntries(r.Context(), p.Organization.ID, f)
		if err != nil {
			u.serverError(w, r, "read audit log", err)
			return
		}
		for _, e := range es {
			v.Entries = append(v.Entries, auditRowOf(e))
		}
	}
	u.render(w, r, http.StatusOK, "audit", v)
}

func (u *ui) auditSetRetention(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !p.Can(authz.AuditWrite) {
		u.errorPage(w, r, &p, http.StatusForbidden, "Only the owner can change the retention",
			"A shorter retention erases history, so only the owner of "+p.Organization.Name+" can change it.")
		return
	}
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("days")))
	if err != nil || days < 1 || days > store.MaxAuditRetentionDays {
		u.errorPage(w, r, &p, http.StatusUnprocessableEntity, "That value is not accepted",
			"Keep entries for a whole number of days, from 1 to "+strconv.Itoa(store.MaxAuditRetentionDays)+".")
		return
	}
	if err := u.d.Audit.DB().SetOrganizationAuditRetention(r.Context(), p.Organization.ID, days); err != nil {
		u.serverError(w, r, "set audit retention", err)
		return
	}
	seeOther(w, r, "/audit?saved=retention")
}
