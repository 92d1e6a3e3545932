package audit

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/store"
)

// EntryActor is who did something.
type EntryActor struct {
	Kind  string `json:"kind" enum:"user,token,system" doc:"A person in the browser (user), an API token (token), or Berth itself (system)"`
	ID    string `json:"id" example:"usr_4fk3mz2q7wdxa5ve" doc:"The user's or the token's id; empty for a sign-in with an unknown email"`
	Label string `json:"label" example:"ada@example.com" doc:"The user's email (for tokens, their owner's), or the email typed at a failed sign-in"`
}

// Entry is one line of the audit log as the API lists it and the JSON
// lines export writes it.
type Entry struct {
	Seq       int64           `json:"seq" example:"42" doc:"Position in the organization's log: 1, 2, 3 … without gaps"`
	At        time.Time       `json:"at"`
	Actor     EntryActor      `json:"actor"`
	Action    string          `json:"action" example:"app.deploy" doc:"What was done: resource.verb, e.g. app.deploy, env.reveal, auth.login"`
	Target    string          `json:"target" example:"project=shop app=web" doc:"What it was done to: the request's path parameters"`
	SourceIP  string          `json:"source_ip" example:"192.0.2.10"`
	UserAgent string          `json:"user_agent"`
	Status    int             `json:"status" example:"202" doc:"The HTTP status of the answer"`
	Result    string          `json:"result" enum:"ok,denied,failed" doc:"ok (answered 1xx–3xx), denied (401, 403, 429) or failed (any other error)"`
	Summary   json.RawMessage `json:"summary" doc:"The request's fields by name; values only for fields that are never secret (names, images, hosts …). Passwords, tokens, keys and variable values are never recorded"`
	PrevHash  string          `json:"prev_hash" doc:"The previous entry's hash (empty for the first)"`
	Hash      string          `json:"hash" doc:"SHA-256 over this entry's content and prev_hash"`
}

// EntryOf is the document of a stored entry.
func EntryOf(e store.AuditEntry) Entry {
	return Entry{
		Seq: e.Seq, At: e.At, Actor: EntryActor{Kind: e.ActorKind, ID: e.ActorID, Label: e.ActorLabel},
		Action: e.Action, Target: e.Target, SourceIP: e.SourceIP, UserAgent: e.UserAgent,
		Status: e.Status, Result: e.Result, Summary: json.RawMessage(e.Summary), PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

// csvHeader is the export's first CSV row.
var csvHeader = []string{"seq", "at", "actor_kind", "actor_id", "actor_label", "action", "target", "source_ip", "user_agent", "status", "result", "summary", "prev_hash", "hash"}

// csvCell keeps spreadsheets from running a cell as a formula.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// writeCSVRow writes one entry as a CSV row in csvHeader's order.
func writeCSVRow(w *csv.Writer, e store.AuditEntry) error {
	return w.Write([]string{
		strconv.FormatInt(e.Seq, 10), e.At.Format(time.RFC3339Nano), e.ActorKind, e.ActorID, csvCell(e.ActorLabel),
		e.Action, csvCell(e.Target), e.SourceIP, csvCell(e.UserAgent), strconv.Itoa(e.Status), e.Result, csvCell(e.Summary), e.PrevHash, e.Hash,
	})
}

// Export writes an organization's entries matching f to w as JSON
// lines or CSV; the UI's export links use it too.
func Export(ctx context.Context, db *store.DB, orgID string, f store.AuditFilter, format string, w io.Writer) error {
	if format == "csv" {
		cw := csv.NewWriter(w)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
		err := db.EachAudit(ctx, orgID, f, func(e store.AuditEntry) error {
			if err := writeCSVRow(cw, e); err != nil {
				return err
			}
			cw.Flush()
			return cw.Error()
		})
		cw.Flush()
		return errors.Join(err, cw.Error())
	}
	enc := json.NewEncoder(w)
	return db.EachAudit(ctx, orgID, f, func(e store.AuditEntry) error { return enc.Encode(EntryOf(e)) })
}

// ContentType is the media type of an export format.
func ContentType(format string) string {
	if format == "csv" {
		return "text/csv; charset=utf-8"
	}
	return "application/x-ndjson"
}
