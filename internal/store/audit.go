package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Audit actor kinds.
const (
	ActorUser   = "user"
	ActorToken  = "token"
	ActorSystem = "system"
)

// Audit results.
const (
	ResultOK     = "ok"
	ResultDenied = "denied"
	ResultFailed = "failed"
)

// AuditRetentionSetting is the settings key holding how many days audit
// entries are kept; DefaultAuditRetentionDays applies without it.
const (
	AuditRetentionSetting     = "audit.retention_days"
	DefaultAuditRetentionDays = 365
)

// AuditEntry is one line of an organization's audit log. Seq, PrevHash and
// Hash are set by AppendAudit.
type AuditEntry struct {
	ID             string
	OrganizationID string
	Seq            int64
	At             time.Time
	ActorKind      string
	ActorID        string
	ActorLabel     string
	Action         string
	Target         string
	SourceIP       string
	UserAgent      string
	Status         int
	Result         string
	Summary        string // JSON; the recorder keeps secret values out
	PrevHash       string
	Hash           string
}

// auditHashVersion starts every hashed encoding, so the encoding can change
// later without old entries being misread.
const auditHashVersion = "berth-audit-v1"

// ComputeHash is the SHA-256 (hex) of the entry's canonical encoding: a JSON
// array of every field but ID and Hash, in a fixed order, times as Unix
// milliseconds, ending with PrevHash. Go's JSON encoding of strings and
// integers is deterministic, so the same entry always hashes the same.
func (e AuditEntry) ComputeHash() string {
	b, _ := json.Marshal([]any{
		auditHashVersion, e.OrganizationID, e.Seq, millis(e.At),
		e.ActorKind, e.ActorID, e.ActorLabel, e.Action, e.Target,
		e.SourceIP, e.UserAgent, e.Status, e.Result, e.Summary, e.PrevHash,
	})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

const auditColumns = `id, organization_id, seq, at, actor_kind, actor_id, actor_label, action, target, source_ip, user_agent, status, result, summary, prev_hash, hash`

func scanAudit(row interface{ Scan(...any) error }) (AuditEntry, error) {
	var e AuditEntry
	var at int64
	err := row.Scan(&e.ID, &e.OrganizationID, &e.Seq, &at, &e.ActorKind, &e.ActorID, &e.ActorLabel, &e.Action, &e.Target,
		&e.SourceIP, &e.UserAgent, &e.Status, &e.Result, &e.Summary, &e.PrevHash, &e.Hash)
	if err != nil {
		return AuditEntry{}, mapErr(err)
	}
	e.At = fromMillis(at)
	return e, nil
}

// auditHead is a chain's head and anchor.
type auditHead struct {
	seq        int64
	hash       string
	anchorSeq  int64
	anchorHash string
}

// lockAuditHead returns the organization's chain head, creating it, and
// holds it until the transaction ends: on PostgreSQL with FOR UPDATE, on
// SQLite because every write transaction is exclusive (_txlock=immediate).
func (db *DB) lockAuditHead(ctx context.Context, x q, orgID string) (auditHead, error) {
	if _, err := x.exec(ctx, `INSERT INTO audit_chains (organization_id) VALUES (?) ON CONFLICT (organization_id) DO NOTHING`, orgID); err != nil {
		return auditHead{}, err
	}
	query := `SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM audit_chains WHERE organization_id = ?`
	if db.dialect == Postgres {
		query += ` FOR UPDATE`
	}
	var h auditHead
	err := x.row(ctx, query, orgID).Scan(&h.seq, &h.hash, &h.anchorSeq, &h.anchorHash)
	return h, mapErr(err)
}

// AppendAudit adds e at the end of its organization's chain, setting ID,
// Seq, PrevHash and Hash. Appends to one organization are serialised.
func (db *DB) AppendAudit(ctx context.Context, e *AuditEntry) error {
	if e.OrganizationID == "" {
		return fmt.Errorf("audit entry: organization is required")
	}
	if e.Summary == "" {
		e.Summary = "{}"
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	return db.inTx(ctx, func(x q) error {
		h, err := db.lockAuditHead(ctx, x, e.OrganizationID)
		if err != nil {
			return err
		}
		e.ID, e.Seq, e.PrevHash = NewID("aud"), h.seq+1, h.hash
		e.Hash = e.ComputeHash()
		if _, err := x.exec(ctx, `INSERT INTO audit_entries (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.OrganizationID, e.Seq, millis(e.At), e.ActorKind, e.ActorID, e.ActorLabel, e.Action, e.Target,
			e.SourceIP, e.UserAgent, e.Status, e.Result, e.Summary, e.PrevHash, e.Hash); err != nil {
			return err
		}
		return x.execOne(ctx, `UPDATE audit_chains SET head_seq = ?, head_hash = ? WHERE organization_id = ?`, e.Seq, e.Hash, e.OrganizationID)
	})
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	Actor  string // the actor's label (email, token name) or id, exactly
	Action string // exactly, or every action starting with it when it ends in "."
	Target string // a substring of the target, case-insensitively
	Since  time.Time
	Until  time.Time
	Before int64 // only entries with a smaller seq (the cursor of a newest-first page)
	After  int64 // only entries with a larger seq
	Limit  int   // at most this many; 0 means all
}

func (f AuditFilter) where(orgID string) (string, []any) {
	conds, args := []string{"organization_id = ?"}, []any{orgID}
	if f.Actor != "" {
		conds, args = append(conds, "(LOWER(actor_label) = ? OR actor_id = ?)"), append(args, strings.ToLower(f.Actor), f.Actor)
	}
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			conds, args = append(conds, `action LIKE ? ESCAPE '\'`), append(args, likeEscape(f.Action)+"%")
		} else {
			conds, args = append(conds, "action = ?"), append(args, f.Action)
		}
	}
	if f.Target != "" {
		conds, args = append(conds, `LOWER(target) LIKE ? ESCAPE '\'`), append(args, "%"+likeEscape(strings.ToLower(f.Target))+"%")
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "at >= ?"), append(args, millis(f.Since))
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "at < ?"), append(args, millis(f.Until))
	}
	if f.Before > 0 {
		conds, args = append(conds, "seq < ?"), append(args, f.Before)
	}
	if f.After > 0 {
		conds, args = append(conds, "seq > ?"), append(args, f.After)
	}
	return strings.Join(conds, " AND "), args
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// AuditEntries lists an organization's entries matching f, newest first.
func (db *DB) AuditEntries(ctx context.Context, orgID string, f AuditFilter) ([]AuditEntry, error) {
	var out []AuditEntry
	err := db.eachAudit(ctx, orgID, f, "DESC", func(e AuditEntry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// EachAudit calls fn with every entry matching f, oldest first, reading in
// pages so an export of a long log holds little in memory.
func (db *DB) EachAudit(ctx context.Context, orgID string, f AuditFilter, fn func(AuditEntry) error) error {
	const page = 500
	remaining := f.Limit
	for {
		g := f
		g.Limit = page
		if remaining > 0 && remaining < page {
			g.Limit = remaining
		}
		n, last := 0, int64(0)
		err := db.eachAudit(ctx, orgID, g, "ASC", func(e AuditEntry) error {
			n, last = n+1, e.Seq
			return fn(e)
		})
		if err != nil {
			return err
		}
		if remaining > 0 {
			if remaining -= n; remaining == 0 {
				return nil
			}
		}
		if n < g.Limit {
			return nil
		}
		f.After = last
	}
}

func (db *DB) eachAudit(ctx context.Context, orgID string, f AuditFilter, order string, fn func(AuditEntry) error) error {
	where, args := f.where(orgID)
	query := `SELECT ` + auditColumns + ` FROM audit_entries WHERE ` + where + ` ORDER BY seq ` + order
	if f.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	rows, err := db.q().query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditVerification is the outcome of walking a chain.
type AuditVerification struct {
	OK      bool
	Checked int // entries whose hash was checked
	// FirstProblem says in plain words what is wrong with the first bad
	// entry; empty when OK.
	FirstProblem string
	// FirstBadSeq is the sequence number of that entry (0 when OK).
	FirstBadSeq int64
	AnchorSeq   int64 // entries up to this one were trimmed by retention
	HeadSeq     int64
}

// VerifyAudit walks an organization's chain from its anchor (the last entry
// trimmed by retention, or the start) and reports the first entry that was
// edited, deleted or moved, or entries missing at the end.
func (db *DB) VerifyAudit(ctx context.Context, orgID string) (AuditVerification, error) {
	var h auditHead
	err := db.q().row(ctx, `SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM audit_chains WHERE organization_id = ?`, orgID).
		Scan(&h.seq, &h.hash, &h.anchorSeq, &h.anchorHash)
	if err = mapErr(err); err != nil && err != ErrNotFound {
		return AuditVerification{}, err
	}
	v := AuditVerification{AnchorSeq: h.anchorSeq, HeadSeq: h.seq}
	wantSeq, prev := h.anchorSeq+1, h.anchorHash
	problem := func(seq int64, format string, args ...any) error {
		v.FirstBadSeq, v.FirstProblem = seq, fmt.Sprintf(format, args...)
		return errStopWalk
	}
	err = db.eachAudit(ctx, orgID, AuditFilter{}, "ASC", func(e AuditEntry) error {
		switch {
		case e.Seq < wantSeq:
			return problem(e.Seq, "entry #%d is older than the chain's start (#%d): it was trimmed by retention, or written back later", e.Seq, wantSeq)
		case e.Seq > wantSeq && wantSeq == e.Seq-1:
			return problem(wantSeq, "entry #%d is missing: it was deleted (the log jumps from #%d to #%d)", wantSeq, wantSeq-1, e.Seq)
		case e.Seq > wantSeq:
			return problem(wantSeq, "entries #%d to #%d are missing: they were deleted (the log jumps from #%d to #%d)", wantSeq, e.Seq-1, wantSeq-1, e.Seq)
		case e.ComputeHash() != e.Hash:
			return problem(e.Seq, "entry #%d (%s by %s at %s) does not match its hash: it was edited, or moved from another position",
				e.Seq, e.Action, e.ActorLabel, e.At.Format(time.RFC3339))
		case e.PrevHash != prev:
			return problem(e.Seq, "entry #%d (%s by %s at %s) does not follow entry #%d: entries were reordered or replaced",
				e.Seq, e.Action, e.ActorLabel, e.At.Format(time.RFC3339), e.Seq-1)
		}
		v.Checked++
		wantSeq, prev = e.Seq+1, e.Hash
		return nil
	})
	if err != nil && err != errStopWalk {
		return AuditVerification{}, err
	}
	if v.FirstProblem == "" && wantSeq-1 != h.seq {
		if wantSeq-1 < h.seq {
			v.FirstBadSeq = wantSeq
			v.FirstProblem = fmt.Sprintf("entries #%d to #%d at the end of the log are missing: they were deleted", wantSeq, h.seq)
		} else {
			v.FirstBadSeq = h.seq + 1
			v.FirstProblem = fmt.Sprintf("entry #%d was added after the log's last recorded entry (#%d), not by Berth", h.seq+1, h.seq)
		}
	}
	if v.FirstProblem == "" && h.seq > 0 && prev != h.hash {
		v.FirstBadSeq = h.seq
		v.FirstProblem = fmt.Sprintf("entry #%d is not the entry the log recorded as its last: it was replaced", h.seq)
	}
	v.OK = v.FirstProblem == ""
	return v, nil
}

var errStopWalk = fmt.Errorf("stop")

// TrimAudit deletes an organization's entries written before cutoff, from
// the oldest end, and keeps the hash of the last one deleted as the chain's
// anchor, so the rest still verifies. It returns how many it deleted.
func (db *DB) TrimAudit(ctx context.Context, orgID string, cutoff time.Time) (int, error) {
	deleted := 0
	err := db.inTx(ctx, func(x q) error {
		h, err := db.lockAuditHead(ctx, x, orgID)
		if err != nil {
			return err
		}
		// The newest entry before the cutoff that has only such entries
		// before it: trimming never leaves a hole in the middle.
		var last int64
		err = x.row(ctx, `SELECT COALESCE(MIN(seq), 0) FROM audit_entries WHERE organization_id = ? AND at >= ?`, orgID, millis(cutoff)).Scan(&last)
		if err != nil {
			return mapErr(err)
		}
		if last == 0 {
			last = h.seq // everything is older than the cutoff
		} else {
			last--
		}
		if last <= h.anchorSeq {
			return nil
		}
		var hash string
		if err := x.row(ctx, `SELECT hash FROM audit_entries WHERE organization_id = ? AND seq = ?`, orgID, last).Scan(&hash); err != nil {
			return fmt.Errorf("audit entry #%d to anchor the trimmed chain: %w", last, mapErr(err))
		}
		res, err := x.exec(ctx, `DELETE FROM audit_entries WHERE organization_id = ? AND seq <= ?`, orgID, last)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		deleted = int(n)
		return x.execOne(ctx, `UPDATE audit_chains SET anchor_seq = ?, anchor_hash = ? WHERE organization_id = ?`, last, hash, orgID)
	})
	return deleted, err
}

// AuditOrganizations lists the organizations that have an audit chain.
func (db *DB) AuditOrganizations(ctx context.Context) ([]string, error) {
	rows, err := db.q().query(ctx, `SELECT organization_id FROM audit_chains ORDER BY organization_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// MaxAuditRetentionDays bounds the retention: 100 years.
const MaxAuditRetentionDays = 36500

// OrganizationAuditRetention is how many days an organization keeps its
// audit entries: its own setting, else the install-wide one, else
// DefaultAuditRetentionDays. own says whether the organization set it.
func (db *DB) OrganizationAuditRetention(ctx context.Context, orgID string) (days int, own bool, err error) {
	err = db.q().row(ctx, `SELECT retention_days FROM audit_chains WHERE organization_id = ?`, orgID).Scan(&days)
	if err = mapErr(err); err != nil && err != ErrNotFound {
		return 0, false, err
	}
	if days > 0 {
		return days, true, nil
	}
	days, err = db.AuditRetentionDays(ctx)
	return days, false, err
}

// SetOrganizationAuditRetention sets how many days the organization keeps
// its audit entries; 0 returns to the install-wide setting.
func (db *DB) SetOrganizationAuditRetention(ctx context.Context, orgID string, days int) error {
	if days < 0 || days > MaxAuditRetentionDays {
		return fmt.Errorf("audit retention: %d days; want 1 to %d, or 0 for the default", days, MaxAuditRetentionDays)
	}
	return db.inTx(ctx, func(x q) error {
		if _, err := db.lockAuditHead(ctx, x, orgID); err != nil {
			return err
		}
		return x.execOne(ctx, `UPDATE audit_chains SET retention_days = ? WHERE organization_id = ?`, days, orgID)
	})
}

// AuditRetentionDays is the install-wide retention in days: the
// AuditRetentionSetting, or DefaultAuditRetentionDays.
func (db *DB) AuditRetentionDays(ctx context.Context) (int, error) {
	v, err := db.Setting(ctx, AuditRetentionSetting)
	if IsNotFound(err) {
		return DefaultAuditRetentionDays, nil
	} else if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxAuditRetentionDays {
		return 0, fmt.Errorf("setting %s is %q: want a whole number of days from 1 to %d", AuditRetentionSetting, v, MaxAuditRetentionDays)
	}
	return n, nil
}

// SetAuditRetentionDays stores the install-wide retention in days.
func (db *DB) SetAuditRetentionDays(ctx context.Context, days int) error {
	if days < 1 || days > MaxAuditRetentionDays {
		return fmt.Errorf("audit retention: %d days; want 1 to %d", days, MaxAuditRetentionDays)
	}
	return db.SetSetting(ctx, AuditRetentionSetting, strconv.Itoa(days))
}

// OldestOrganization is the organization created at setup, which holds the
// install's own audit events (failed sign-ins with unknown emails).
func (db *DB) OldestOrganization(ctx context.Context) (Organization, error) {
	var o Organization
	var created int64
	err := db.q().row(ctx, `SELECT id, name, created_at FROM organizations ORDER BY created_at, id LIMIT 1`).Scan(&o.ID, &o.Name, &created)
	if err != nil {
		return Organization{}, mapErr(err)
	}
	o.CreatedAt = fromMillis(created)
	return o, nil
}
