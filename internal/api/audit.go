package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
)

// The audit log: every request that changes state is recorded by the
// record middleware after it ran; reveals are recorded by their handler
// before the values go out (recordReveal). Reading the log needs the owner
// or admin role (audit.CanRead).

// record is the middleware that appends one audit entry for every
// POST, PUT, PATCH and DELETE once its status is known: authenticated
// callers, and sign-ins and setup by the email typed. Requests refused for
// want of credentials (401 before any caller is known) have no actor and
// no organization, and are not recorded. A failed append is logged at error
// level by the recorder; the answer has already been sent, so it stands.
func (s *server) record(hctx huma.Context, next func(huma.Context)) {
	if s.deps.Audit == nil || safeMethod(hctx.Method()) {
		next(hctx)
		return
	}
	r, _ := humago.Unwrap(hctx)
	body := &bodyCapture{limit: maxBodyBytes}
	if r.Body != nil && r.Body != http.NoBody {
		// huma reads the body through this same request, after the
		// middleware chain: the capture sees exactly what it decoded.
		r.Body = teeBody{ReadCloser: r.Body, w: body}
	}
	ctx, note := audit.WithNote(hctx.Context())
	next(huma.WithContext(hctx, ctx))
	if note.Recorded {
		return
	}
	op := hctx.Operation()
	status := hctx.Status()
	if status == 0 {
		status = http.StatusOK
	}
	ev := audit.Event{
		Action:    audit.ActionForOperation(op.OperationID),
		Target:    targetOf(op.Path, hctx),
		SourceIP:  auth.ClientIP(r),
		UserAgent: r.UserAgent(),
		Status:    status,
		Summary:   audit.SummarizeJSON(body.buf.Bytes(), body.truncated),
	}
	ev.Target = audit.WithCreated(ev.Action, ev.Target, func(name string) string { return jsonField(body.buf.Bytes(), name) })
	// The client may be gone; the record is written regardless.
	rctx := context.WithoutCancel(ctx)
	switch {
	case note.Principal != nil:
		ev.OrganizationID, ev.Actor = note.Principal.Organization.ID, audit.ActorOf(*note.Principal)
		s.deps.Audit.Record(rctx, ev)
	case isPublic(op):
		s.deps.Audit.RecordSignIn(rctx, emailTyped(body.buf.Bytes()), ev)
	}
}

// emailTyped is the email of a sign-in or setup body, if it is one: people
// type their password into the wrong field.
func emailTyped(body []byte) string {
	var b struct {
		Email string `json:"email"`
	}
	json.Unmarshal(body, &b)
	if b.Email == "" {
		return "(none)"
	}
	email, err := auth.ValidateEmail(b.Email)
	if err != nil {
		return "(not an email address)"
	}
	return email
}

// jsonField is a top-level string field of a JSON body, or "".
func jsonField(body []byte, name string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	var v string
	json.Unmarshal(m[name], &v)
	return v
}

// targetOf names what an operation acted on: its path parameters, then the
// scope query parameters of the variables operations.
func targetOf(path string, hctx huma.Context) string {
	var pairs []string
	for _, name := range audit.PathParams(path) {
		pairs = append(pairs, name, hctx.Param(name))
	}
	for _, name := range []string{"scope", "environment", "app"} {
		if !strings.Contains(path, "{"+name+"}") {
			pairs = append(pairs, name, hctx.Query(name))
		}
	}
	return audit.Target(pairs...)
}

// bodyCapture keeps the first limit bytes of a request body.
type bodyCapture struct {
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (c *bodyCapture) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room < len(p) {
		c.truncated = true
		p = p[:max(room, 0)]
	}
	c.buf.Write(p)
	return len(p), nil
}

type teeBody struct {
	io.ReadCloser
	w io.Writer
}

func (t teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 {
		t.w.Write(p[:n])
	}
	return n, err
}

// recordReveal records that p is about to see the values of the variables
// named in scope. It fails closed: without a record, no values.
func (s *server) recordReveal(ctx context.Context, p auth.Principal, scope deploy.EnvScope, names []string) error {
	target := audit.Target("project", scope.Ref.Project, "environment", scope.Ref.Environment, "app", scope.Ref.Name)
	return s.recordSecretReveal(ctx, p, "env.reveal", target, audit.SummarizeReveal(scope.Scope, names))
}

// AuditEntry is one line of the audit log (the same document as a line of
// the JSON lines export).
type AuditEntry = audit.Entry

// AuditActor is who did something.
type AuditActor = audit.EntryActor

// AuditPage is a page of the audit log, newest first.
type AuditPage struct {
	Entries    []AuditEntry `json:"entries"`
	NextCursor int64        `json:"next_cursor,omitempty" doc:"Pass as cursor for the next (older) page; absent on the last page"`
}

// AuditVerification is the result of walking the chain.
type AuditVerification struct {
	OK           bool   `json:"ok" doc:"True when every entry matches its hash and follows the one before"`
	Checked      int    `json:"checked" example:"1200" doc:"How many entries were checked"`
	FirstProblem string `json:"first_problem,omitempty" example:"entry #17 is missing: it was deleted (the log jumps from #16 to #18)" doc:"The first entry found edited, deleted or moved, in plain words"`
	FirstBadSeq  int64  `json:"first_bad_seq,omitempty" doc:"That entry's seq"`
	AnchorSeq    int64  `json:"anchor_seq" doc:"Entries up to this seq were trimmed by retention; the chain is checked from the hash of the last one"`
	HeadSeq      int64  `json:"head_seq" doc:"The seq of the newest entry written"`
}

// AuditFilterParams are the filters of the list and export operations.
type AuditFilterParams struct {
	Actor  string `query:"actor" maxLength:"256" example:"ada@example.com" doc:"Only this actor: an email, a token name, or a user or token id"`
	Action string `query:"action" maxLength:"128" example:"app.deploy" doc:"Only this action; ending in a dot (app.) every action of that resource"`
	Target string `query:"target" maxLength:"256" example:"app=web" doc:"Only targets containing this text (case-insensitive)"`
	Since  string `query:"since" maxLength:"64" example:"24h" doc:"Only entries at or after this time: an age (90m, 24h, 7d), a date (2026-01-31) or an RFC 3339 time"`
	Until  string `query:"until" maxLength:"64" example:"2026-01-31T12:00:00Z" doc:"Only entries before this time, in the same forms as since"`
}

func (f AuditFilterParams) filter(now time.Time) (store.AuditFilter, error) {
	out := store.AuditFilter{Actor: strings.TrimSpace(f.Actor), Action: strings.TrimSpace(f.Action), Target: strings.TrimSpace(f.Target)}
	for _, t := range []struct {
		name, value string
		dst         *time.Time
	}{{"since", f.Since, &out.Since}, {"until", f.Until, &out.Until}} {
		if t.value == "" {
			continue
		}
		v, err := audit.ParseTime(t.value, now)
		if err != nil {
			return store.AuditFilter{}, queryProblem(t.name, err.Error())
		}
		*t.dst = v
	}
	return out, nil
}

type listAuditInput struct {
	AuditFilterParams
	Limit  int   `query:"limit" minimum:"1" maximum:"1000" default:"100" doc:"At most this many entries"`
	Cursor int64 `query:"cursor" minimum:"0" doc:"next_cursor of the previous page: entries older than it"`
}

type exportAuditInput struct {
	AuditFilterParams
	Format string `query:"format" enum:"jsonl,csv" default:"jsonl" doc:"JSON lines (one entry per line, exactly as stored: the hashes can be recomputed) or CSV (for spreadsheets: text starting with = + - @ is prefixed with ')"`
}

type auditPageOutput struct{ Body AuditPage }

type auditVerificationOutput struct{ Body AuditVerification }

func (s *server) registerAudit() {
	tags := []string{"Audit log"}
	const who = " Needs the owner or admin role (403 otherwise)."
	register(s, huma.Operation{
		OperationID: "list-audit",
		Method:      http.MethodGet,
		Path:        Prefix + "/audit",
		Tags:        tags,
		Summary:     "List audit log entries",
		Description: "Lists the organization's audit log, newest first: every request that changed something (and sign-ins, failed ones included), and every reveal of secret values. " +
			"Filters combine; page with `cursor` set to the previous page's `next_cursor`." + who,
		Errors: []int{http.StatusForbidden, http.StatusUnprocessableEntity},
	}, s.listAudit)

	register(s, huma.Operation{
		OperationID: "export-audit",
		Method:      http.MethodGet,
		Path:        Prefix + "/audit/export",
		Tags:        tags,
		Summary:     "Export the audit log",
		Description: "Streams every entry matching the filters, oldest first, as JSON lines (`application/x-ndjson`, the same fields as the list) or CSV (`text/csv`) with a header row." + who,
		Errors:      []int{http.StatusForbidden, http.StatusUnprocessableEntity},
		Responses: map[string]*huma.Response{"200": {Description: "The entries", Content: map[string]*huma.MediaType{
			"application/x-ndjson": {}, "text/csv": {},
		}}},
	}, s.exportAudit)

	register(s, huma.Operation{
		OperationID: "verify-audit",
		Method:      http.MethodPost,
		Path:        Prefix + "/audit/verify",
		Tags:        tags,
		Summary:     "Verify the audit log's hash chain",
		Description: "Walks the organization's log from its start (or from the last entry trimmed by retention) and checks that every entry matches its hash and follows the one before. " +
			"`ok` is false when an entry was edited, deleted or reordered; `first_problem` names the first such entry in plain words." + who,
		Errors: []int{http.StatusForbidden},
	}, s.verifyAudit)
	s.registerAuditRetention()
}

// AuditRetention is how long the organization keeps its audit log.
type AuditRetention struct {
	Days    int  `json:"days" example:"365" doc:"Entries older than this many days are trimmed from the oldest end (at most hourly); the chain stays verifiable"`
	Default bool `json:"default" doc:"True when the organization has not set its own and the installation's default applies"`
}

// SetAuditRetentionRequest sets the retention.
type SetAuditRetentionRequest struct {
	Days int `json:"days" minimum:"0" maximum:"36500" example:"730" doc:"Days to keep entries, 1 to 36500; 0 returns to the installation's default (365 unless the operator changed it)"`
}

type auditRetentionOutput struct{ Body AuditRetention }

type setAuditRetentionInput struct{ Body SetAuditRetentionRequest }

func (s *server) registerAuditRetention() {
	tags := []string{"Audit log"}
	register(s, huma.Operation{
		OperationID: "get-audit-retention",
		Method:      http.MethodGet,
		Path:        Prefix + "/audit/retention",
		Tags:        tags,
		Summary:     "Show the audit log's retention",
		Description: "How many days the organization keeps audit entries. Needs the owner or admin role (403 otherwise).",
		Errors:      []int{http.StatusForbidden},
	}, s.getAuditRetention)
	register(s, huma.Operation{
		OperationID: "set-audit-retention",
		Method:      http.MethodPut,
		Path:        Prefix + "/audit/retention",
		Tags:        tags,
		Summary:     "Change the audit log's retention",
		Description: "Sets how many days the organization keeps audit entries; older ones are trimmed from the oldest end within the hour, and the chain stays verifiable from the last trimmed entry's hash. " +
			"Needs the owner role: a shorter retention erases history. The change itself is recorded.",
		Errors: []int{http.StatusForbidden},
	}, s.setAuditRetention)
}

func (s *server) getAuditRetention(ctx context.Context, _ *struct{}) (*auditRetentionOutput, error) {
	p, err := auditReader(ctx)
	if err != nil {
		return nil, err
	}
	days, own, err := s.deps.Audit.DB().OrganizationAuditRetention(ctx, p.Organization.ID)
	if err != nil {
		return nil, err
	}
	return &auditRetentionOutput{Body: AuditRetention{Days: days, Default: !own}}, nil
}

func (s *server) setAuditRetention(ctx context.Context, in *setAuditRetentionInput) (*auditRetentionOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if !audit.CanSetRetention(p) {
		return nil, huma.Error403Forbidden("changing the audit log's retention needs the owner role")
	}
	if err := s.deps.Audit.DB().SetOrganizationAuditRetention(ctx, p.Organization.ID, in.Body.Days); err != nil {
		return nil, err
	}
	return s.getAuditRetention(ctx, nil)
}

// auditReader returns the caller if they may read the audit log.
func auditReader(ctx context.Context) (auth.Principal, error) {
	p, err := principal(ctx)
	if err != nil {
		return p, err
	}
	if !audit.CanRead(p) {
		return p, huma.Error403Forbidden("reading the audit log needs the owner or admin role")
	}
	return p, nil
}

func (s *server) listAudit(ctx context.Context, in *listAuditInput) (*auditPageOutput, error) {
	p, err := auditReader(ctx)
	if err != nil {
		return nil, err
	}
	f, err := in.filter(time.Now())
	if err != nil {
		return nil, err
	}
	f.Limit, f.Before = in.Limit+1, in.Cursor
	es, err := s.deps.Audit.DB().AuditEntries(ctx, p.Organization.ID, f)
	if err != nil {
		return nil, err
	}
	out := AuditPage{Entries: make([]AuditEntry, 0, len(es))}
	for i, e := range es {
		if i == in.Limit {
			out.NextCursor = es[i-1].Seq
			break
		}
		out.Entries = append(out.Entries, audit.EntryOf(e))
	}
	return &auditPageOutput{Body: out}, nil
}

func (s *server) exportAudit(ctx context.Context, in *exportAuditInput) (*huma.StreamResponse, error) {
	p, err := auditReader(ctx)
	if err != nil {
		return nil, err
	}
	f, err := in.filter(time.Now())
	if err != nil {
		return nil, err
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		hctx.SetHeader("Content-Type", audit.ContentType(in.Format))
		hctx.SetHeader("Content-Disposition", `attachment; filename="berth-audit.`+in.Format+`"`)
		hctx.SetStatus(http.StatusOK)
		if err := audit.Export(hctx.Context(), s.deps.Audit.DB(), p.Organization.ID, f, in.Format, hctx.BodyWriter()); err != nil {
			// The status is sent; the cut-off body is all the client sees.
			s.log.ErrorContext(hctx.Context(), "audit export failed", "err", err)
		}
	}}, nil
}

func (s *server) verifyAudit(ctx context.Context, _ *struct{}) (*auditVerificationOutput, error) {
	p, err := auditReader(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.deps.Audit.DB().VerifyAudit(ctx, p.Organization.ID)
	if err != nil {
		return nil, err
	}
	return &auditVerificationOutput{Body: AuditVerification{
		OK: v.OK, Checked: v.Checked, FirstProblem: v.FirstProblem, FirstBadSeq: v.FirstBadSeq, AnchorSeq: v.AnchorSeq, HeadSeq: v.HeadSeq,
	}}, nil
}
