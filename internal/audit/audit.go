// Package audit owns what goes into Berth's audit log: who may read it, how
// a request becomes an entry (action names, targets, results, summaries that
// never hold secret values) and the Recorder the API and the UI append
// through. The tamper-evident chain itself is kept by the store
// (store.AppendAudit, store.VerifyAudit).
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/store"
)

// CanRead reports whether p may read, export and verify the audit log.
func CanRead(p auth.Principal) bool { return p.Can(authz.AuditRead) }

// CanSetRetention reports whether p may change how long the organization
// keeps its audit log: the owner only (authz.AuditWrite), since a shorter
// retention erases history, and an admin must not be able to erase their own.
func CanSetRetention(p auth.Principal) bool { return p.Can(authz.AuditWrite) }

// Actor is who did something.
type Actor struct {
	Kind  string // store.ActorUser, ActorToken or ActorSystem
	ID    string // the user's or the token's id
	Label string // the user's email, or the token's name
}

// ActorOf is the actor behind a principal: the token when the request used
// one, else the user. The label is the user's email either way, so one
// filter finds what a person did in the browser and with their tokens.
func ActorOf(p auth.Principal) Actor {
	if p.TokenID != "" {
		return Actor{Kind: store.ActorToken, ID: p.TokenID, Label: p.User.Email}
	}
	return Actor{Kind: store.ActorUser, ID: p.User.ID, Label: p.User.Email}
}

// Event is one thing to record.
type Event struct {
	OrganizationID string
	Actor          Actor
	Action         string
	Target         string
	SourceIP       string
	UserAgent      string
	Status         int    // the HTTP status the request was answered with
	Summary        string // JSON from Summarize*, never secret values
}

// ResultOf words an HTTP status: 1xx–3xx ok; 401, 403 and 429 denied
// (the caller was refused); anything else failed.
func ResultOf(status int) string {
	switch {
	case status < 400:
		return store.ResultOK
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusTooManyRequests:
		return store.ResultDenied
	}
	return store.ResultFailed
}

// appender is the store's append; tests replace it to make recording fail.
type appender func(ctx context.Context, e *store.AuditEntry) error

// Recorder appends events to the store and trims by the retention setting.
type Recorder struct {
	db     *store.DB
	append appender
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	lastTrim time.Time
}

// NewRecorder returns a Recorder on db. now is time.Now when nil.
func NewRecorder(db *store.DB, log *slog.Logger, now func() time.Time) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{db: db, append: db.AppendAudit, log: log, now: now}
}

// FailAppendsForTest makes every append fail with err (nil restores them),
// for tests of what happens when the audit log cannot be written.
func (r *Recorder) FailAppendsForTest(err error) {
	if err == nil {
		r.append = r.db.AppendAudit
		return
	}
	r.append = func(context.Context, *store.AuditEntry) error { return err }
}

// DB is the store the log is kept in, for reading it.
func (r *Recorder) DB() *store.DB { return r.db }

// Record appends ev. A failure is logged here at error level (and returned,
// so a caller that must not go on without a record, such as a reveal, can
// refuse); callers need not log it again.
func (r *Recorder) Record(ctx context.Context, ev Event) error {
	e := store.AuditEntry{
		OrganizationID: ev.OrganizationID, At: r.now(),
		ActorKind: ev.Actor.Kind, ActorID: ev.Actor.ID, ActorLabel: clip(ev.Actor.Label, 256),
		Action: ev.Action, Target: clip(ev.Target, 512), SourceIP: ev.SourceIP, UserAgent: clip(ev.UserAgent, 256),
		Status: ev.Status, Result: ResultOf(ev.Status), Summary: ev.Summary,
	}
	if err := r.append(ctx, &e); err != nil {
		r.log.ErrorContext(ctx, "audit: entry not recorded", "err", err, "action", ev.Action, "actor", ev.Actor.Label, "organization_id", ev.OrganizationID, "status", ev.Status)
		return fmt.Errorf("record audit entry: %w", err)
	}
	r.maybeTrim(ctx)
	return nil
}

// RecordSignIn records an event whose actor is known only by the email
// typed (sign-in, setup): in every organization of that account, as the
// user; for an email without an account, in the organization created at
// setup (the installation's own), as that email.
func (r *Recorder) RecordSignIn(ctx context.Context, email string, ev Event) error {
	ev.Actor = Actor{Kind: store.ActorUser, Label: email}
	var orgs []string
	if u, err := r.db.UserByEmail(ctx, email); err == nil {
		ev.Actor.ID = u.ID
		ms, err := r.db.Memberships(ctx, u.ID)
		if err != nil {
			r.log.ErrorContext(ctx, "audit: entry not recorded", "err", err, "action", ev.Action)
			return err
		}
		for _, m := range ms {
			orgs = append(orgs, m.Organization.ID)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		r.log.ErrorContext(ctx, "audit: entry not recorded", "err", err, "action", ev.Action)
		return err
	}
	if len(orgs) == 0 {
		o, err := r.db.OldestOrganization(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return nil // before setup there is no log to write to
		} else if err != nil {
			r.log.ErrorContext(ctx, "audit: entry not recorded", "err", err, "action", ev.Action)
			return err
		}
		orgs = []string{o.ID}
	}
	var errs []error
	for _, org := range orgs {
		ev.OrganizationID = org
		errs = append(errs, r.Record(ctx, ev))
	}
	return errors.Join(errs...)
}

// trimEvery is how often appends check the retention setting.
const trimEvery = time.Hour

// maybeTrim applies the retention setting at most once per trimEvery, on
// the request that happens to come by: no goroutine to own.
func (r *Recorder) maybeTrim(ctx context.Context) {
	now := r.now()
	r.mu.Lock()
	due := now.Sub(r.lastTrim) >= trimEvery
	if due {
		r.lastTrim = now
	}
	r.mu.Unlock()
	if due {
		if err := r.Trim(ctx); err != nil {
			r.log.ErrorContext(ctx, "audit: apply retention", "err", err)
		}
	}
}

// Trim deletes, in every organization, the entries older than its
// retention allows, keeping each chain verifiable.
func (r *Recorder) Trim(ctx context.Context) error {
	orgs, err := r.db.AuditOrganizations(ctx)
	if err != nil {
		return err
	}
	for _, org := range orgs {
		days, _, err := r.db.OrganizationAuditRetention(ctx, org)
		if err != nil {
			return fmt.Errorf("organization %s: %w", org, err)
		}
		cutoff := r.now().Add(-time.Duration(days) * 24 * time.Hour)
		n, err := r.db.TrimAudit(ctx, org, cutoff)
		if err != nil {
			return fmt.Errorf("organization %s: %w", org, err)
		}
		if n > 0 {
			r.log.InfoContext(ctx, "audit: trimmed by retention", "organization_id", org, "entries", n, "retention_days", days)
		}
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// Note travels in a request's context so the layers below the recording
// middleware can tell it what they know.
type Note struct {
	// Principal is the caller, once authentication has resolved it.
	Principal *auth.Principal
	// Recorded means the handler wrote its own entry (a reveal, recorded
	// before the values go out): the middleware adds none.
	Recorded bool
}

type noteKey struct{}

// WithNote returns ctx carrying a new Note.
func WithNote(ctx context.Context) (context.Context, *Note) {
	n := &Note{}
	return context.WithValue(ctx, noteKey{}, n), n
}

// NoteFrom returns the request's Note, or nil outside a recorded request.
func NoteFrom(ctx context.Context) *Note {
	n, _ := ctx.Value(noteKey{}).(*Note)
	return n
}

// Target words named parameters as "project=shop app=web", in the order
// given, leaving out empty ones.
func Target(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			parts = append(parts, pairs[i]+"="+pairs[i+1])
		}
	}
	return strings.Join(parts, " ")
}

// PathParams lists the {name} parameters of a route path, in order.
func PathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(strings.Trim(seg, "{}"), "..."))
		}
	}
	return out
}

// operationActions names the operations whose action does not follow the
// "verb-resource" → "resource.verb" rule.
var operationActions = map[string]string{
	"login":                      "auth.login",
	"create-token-with-password": "auth.login",
	"logout":                     "auth.logout",
	"complete-setup":             "setup.complete",
	"change-password":            "account.change-password",
	"update-app-spec":            "app.update",
	"use-acme-certificate":       "certificate.use-acme",
	"verify-audit":               "audit.verify",
	"set-audit-retention":        "audit.set-retention",
}

// ActionForOperation derives a stable action name from a huma operation
// id: "deploy-app" → "app.deploy", "create-registry" → "registry.create".
func ActionForOperation(id string) string {
	if a, ok := operationActions[id]; ok {
		return a
	}
	verb, resource, ok := strings.Cut(id, "-")
	if !ok {
		return id
	}
	return resource + "." + verb
}

// routeActions names the UI's form posts by route pattern, with the same
// names as the API operations that do the same thing.
var routeActions = map[string]string{
	"POST /setup":                                                   "setup.complete",
	"POST /settings/organization":                                   "organization.update",
	"POST /login":                                                   "auth.login",
	"POST /login/two-factor":                                        "auth.login",
	"POST /account/two-factor":                                      "two-factor.enrol",
	"POST /account/two-factor/confirm":                              "two-factor.confirm",
	"POST /account/two-factor/disable":                              "two-factor.disable",
	"POST /account/two-factor/recovery-codes":                       "recovery-codes.regenerate",
	"POST /logout":                                                  "auth.logout",
	"POST /account/password":                                        "account.change-password",
	"POST /account/tokens":                                          "token.create",
	"POST /account/tokens/{id}/revoke":                              "token.revoke",
	"POST /projects":                                                "project.create",
	"POST /projects/{project}/environments":                         "environment.create",
	"POST /projects/{project}/rename":                               "project.rename",
	"POST /projects/{project}/delete":                               "project.delete",
	"POST /projects/{project}/apps":                                 "app.create",
	"POST /projects/{project}/apps/{app}/env":                       "env.replace",
	"POST /projects/{project}/apps/{app}/settings":                  "app.update",
	"POST /projects/{project}/apps/{app}/delete":                    "app.delete",
	"POST /projects/{project}/apps/{app}/domains":                   "domain.add",
	"POST /projects/{project}/apps/{app}/domains/{id}/remove":       "domain.remove",
	"POST /projects/{project}/apps/{app}/domains/certificate":       "certificate.upload",
	"POST /projects/{project}/apps/{app}/deployments/{id}/cancel":   "deployment.cancel",
	"POST /projects/{project}/apps/{app}/deployments/{id}/rollback": "app.rollback",
	"POST /settings/registries":                                     "registry.create",
	"POST /settings/registries/{id}/delete":                         "registry.delete",
	"POST /settings/registries/{id}/test":                           "registry.test",
	"POST /audit/verify":                                            "audit.verify",
	"POST /audit/retention":                                         "audit.set-retention",
}

// ActionForRoute names a UI request by its route pattern: from the table,
// else "<resource>.<last word>" ("POST /projects/{project}/apps/{app}/deploy"
// → "app.deploy"), else "web" and the pattern.
func ActionForRoute(pattern string) string {
	if a, ok := routeActions[pattern]; ok {
		return a
	}
	_, path, _ := strings.Cut(pattern, " ")
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var statics []string
	for _, s := range segs {
		if !strings.HasPrefix(s, "{") {
			statics = append(statics, s)
		}
	}
	if len(statics) >= 2 {
		resource := strings.TrimSuffix(statics[len(statics)-2], "s")
		return resource + "." + statics[len(statics)-1]
	}
	return "web " + pattern
}

// allowed are the request fields whose values are recorded. Everything else
// is recorded by name only: passwords, tokens, keys, certificates, variable
// values, file contents, labels and anything added later stay out until
// someone decides they are safe. Not even email: people type their password
// into it (sign-ins record the email as the actor once it parses as one).
var allowed = map[string]bool{
	"name": true, "image": true, "project": true, "environment": true, "app": true, "scope": true,
	"replicas": true, "host": true, "path_prefix": true, "strip_prefix": true, "https": true, "port": true,
	"reason": true, "role": true, "server": true, "username": true, "expires_in": true,
	"mode": true, "compress": true, "timeout": true, "redirect_to": true, "redirect_code": true,
	"keep_path": true, "code": true, "organization": true, "to": true, "target": true,
	"read_only": true, "protocol": true, "published": true, "source": true,
	"deployment": true, "id": true, "kind": true, "format": true, "days": true, "commit": true, "user": true,
}

// redacted stands in for a value that is not recorded.
const redacted = "[redacted]"

// summarize keeps the field names of v and the values of allow-listed
// scalar fields; objects are walked (their keys are names, such as
// variable names, never values) up to a depth, lists are counted.
func summarize(v any, key string, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if depth >= 3 {
			return fmt.Sprintf("[%d fields]", len(x))
		}
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = summarize(val, k, depth+1)
		}
		return out
	case []any:
		return fmt.Sprintf("[%d items]", len(x))
	case nil:
		return nil
	case string:
		if allowed[key] {
			return clip(x, 200)
		}
		if x == "" {
			return ""
		}
		return redacted
	case bool, float64, json.Number:
		if allowed[key] {
			return x
		}
		return redacted
	}
	return redacted
}

// SummarizeJSON summarises a JSON request body. A body that is not a JSON
// object (or was cut off) is recorded by size only.
func SummarizeJSON(body []byte, truncated bool) string {
	if len(body) == 0 {
		return "{}"
	}
	var v map[string]any
	if truncated || json.Unmarshal(body, &v) != nil {
		return marshal(map[string]any{"body_bytes": len(body)})
	}
	return marshal(map[string]any{"fields": summarize(v, "", 0)})
}

// SummarizeForm summarises a posted form, leaving out the CSRF token.
func SummarizeForm(form url.Values) string {
	fields := map[string]any{}
	for k, vs := range form {
		if k == "csrf_token" || len(vs) == 0 {
			continue
		}
		fields[k] = summarize(vs[0], k, 0)
	}
	if len(fields) == 0 {
		return "{}"
	}
	return marshal(map[string]any{"fields": fields})
}

// SummarizeReveal is the summary of a reveal: the scope and the names of
// the variables shown, never their values.
func SummarizeReveal(scope string, names []string) string {
	names = slices.Sorted(slices.Values(names))
	if names == nil {
		names = []string{}
	}
	return marshal(map[string]any{"scope": scope, "variables": names})
}

func marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// ParseTime reads a filter's time: an age ("90m", "1h", "7d": that long
// before now), an RFC 3339 time, or a date (midnight UTC).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && n >= 0 && n <= 100_000 && fmt.Sprint(n) == days {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use an age such as 1h or 7d, a date such as 2026-01-31, or an RFC 3339 time", s)
}

// WithCreated adds what a create or add request names ("name" or, for
// domains, "host" in its body or form) to its target, so "project=shop"
// finds the project's creation too: project.create with name shop →
// "project=shop"; app.create at project=shop with name web →
// "project=shop app=web".
func WithCreated(action, target string, field func(string) string) string {
	resource, verb, ok := strings.Cut(action, ".")
	if !ok || (verb != "create" && verb != "add") {
		return target
	}
	name := field("name")
	if resource == "domain" {
		name = field("host")
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 256 || strings.ContainsAny(name, " \t\r\n") || strings.Contains(target, resource+"=") {
		return target
	}
	if target == "" {
		return resource + "=" + name
	}
	return target + " " + resource + "=" + name
}
