package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/riverqueue/river"

	"github.com/berthpaas/berth/internal/store"
)

// meta is what Berth keeps in a job's River metadata. The keys are flat so
// that one SQL expression (metadata ->> 'berth_app') reads them on both
// PostgreSQL (jsonb) and SQLite (JSON/JSONB).
type meta struct {
	App        string `json:"berth_app,omitempty"`
	Summary    string `json:"berth_summary,omitempty"`
	EnqueuedBy string `json:"berth_enqueued_by,omitempty"`
}

func readMeta(b []byte) meta {
	var m meta
	_ = json.Unmarshal(b, &m) // River's own keys and bad JSON leave fields empty
	return m
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func (q *Queue) insertOpts(args Args, by string) (*river.InsertOpts, error) {
	k, ok := q.workers.kinds[args.Kind()]
	if !ok {
		return nil, fmt.Errorf("jobs: kind %q is not registered", args.Kind())
	}
	md, err := json.Marshal(meta{App: args.App(), Summary: args.Summary(), EnqueuedBy: by})
	if err != nil {
		return nil, err
	}
	return &river.InsertOpts{Queue: k.Queue, MaxAttempts: k.MaxAttempts, Metadata: md}, nil
}

// Insert enqueues a job. by says who or what asked for it, e.g.
// "user:usr_123", "webhook:github:<delivery>", "periodic:prune". For a
// PerApp kind, the app's queued jobs of the kind that are older are
// cancelled (the running one, if any, is kept and finishes first).
func (q *Queue) Insert(ctx context.Context, args Args, by string) (*Info, error) {
	opts, err := q.insertOpts(args, by)
	if err != nil {
		return nil, err
	}
	// A plain Insert (not InsertTx) so that River wakes the queue's fetcher
	// at once; the sweep below keeps newest-wins correct without a
	// transaction around both, because it cancels by id order.
	res, err := q.client.Insert(ctx, args, opts)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert %s: %w", args.Kind(), err)
	}
	if k := q.workers.kinds[args.Kind()]; k.PerApp && args.App() != "" {
		if err := q.cancelOlderQueued(ctx, args.Kind(), args.App(), res.Job.ID); err != nil {
			return nil, err
		}
	}
	return q.info(res.Job), nil
}

// cancelOlderQueued cancels the app's queued jobs of kind with ids below id.
// Two inserts racing each cancel what is older than themselves, so only the
// newest survives. The rows are read and cancelled in one transaction that
// keeps them from being fetched meanwhile (FOR UPDATE on PostgreSQL, the
// immediate write lock on SQLite), so a job that has started is never
// cancelled here; a job that starts just before is caught by the worker's
// own newest-wins check.
func (q *Queue) cancelOlderQueued(ctx context.Context, kind, app string, id int64) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("jobs: newest wins: %w", err)
	}
	defer tx.Rollback()
	query := `SELECT id FROM river_job WHERE kind = ? AND metadata ->> 'berth_app' = ? AND id < ? AND state IN ('available', 'scheduled', 'retryable', 'pending')`
	if q.dialect == store.Postgres {
		query += ` FOR UPDATE`
	}
	ids, err := queryIDs(ctx, tx, q.rebind(query), kind, app, id)
	if err != nil {
		return fmt.Errorf("jobs: newest wins: %w", err)
	}
	for _, old := range ids {
		if _, err := q.client.JobCancelTx(ctx, tx, old); err != nil {
			return fmt.Errorf("jobs: newest wins: cancel %d: %w", old, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("jobs: newest wins: %w", err)
	}
	return nil
}

// newerJob returns the id of a job of the same kind and app inserted after
// id that has not finished, or 0.
func (q *Queue) newerJob(ctx context.Context, kind, app string, id int64) (int64, error) {
	ids, err := queryIDs(ctx, q.db, q.rebind(`SELECT id FROM river_job WHERE kind = ? AND metadata ->> 'berth_app' = ? AND id > ? AND state IN ('available', 'scheduled', 'retryable', 'pending', 'running') ORDER BY id DESC LIMIT 1`), kind, app, id)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	return ids[0], nil
}

// wakeWaiting makes the app's jobs that snoozed behind the one ending now
// available at once, instead of after their snooze. River records a short
// snooze as available with a future scheduled_at (a longer one as
// scheduled), so both states are woken; JobRetry sets scheduled_at to now.
func (q *Queue) wakeWaiting(ctx context.Context, kind, app string, id int64) {
	ids, err := queryIDs(ctx, q.db, q.rebind(`SELECT id FROM river_job WHERE kind = ? AND metadata ->> 'berth_app' = ? AND id <> ? AND state IN ('scheduled', 'available')`), kind, app, id)
	if err != nil {
		q.log.Warn("wake waiting jobs", "kind", kind, "app", app, "err", err)
		return
	}
	for _, w := range ids {
		if _, err := q.client.JobRetry(ctx, w); err != nil {
			q.log.Warn("wake waiting job", "job_id", w, "err", err)
		}
	}
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryIDs(ctx context.Context, db queryer, query string, args ...any) ([]int64, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (q *Queue) rebind(query string) string {
	if q.dialect != store.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
