package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// State is a job's state as River names it.
type State = rivertype.JobState

// The states a job can be in.
const (
	StateAvailable = rivertype.JobStateAvailable
	StateScheduled = rivertype.JobStateScheduled
	StateRunning   = rivertype.JobStateRunning
	StateRetryable = rivertype.JobStateRetryable
	StateCompleted = rivertype.JobStateCompleted
	StateCancelled = rivertype.JobStateCancelled
	StateDiscarded = rivertype.JobStateDiscarded
	StatePending   = rivertype.JobStatePending
)

// Info is a job as the UI and API show it. It never holds the job's
// arguments, only the summary the inserter wrote for people.
type Info struct {
	ID          int64
	Kind        string
	Queue       string
	State       State
	App         string
	Summary     string
	EnqueuedBy  string
	Attempt     int
	MaxAttempts int
	Errors      []AttemptError
	CreatedAt   time.Time
	ScheduledAt time.Time
	StartedAt   *time.Time // the latest attempt's start; nil before the first
	FinishedAt  *time.Time
	// Waiting explains why a job that has not started waits; "" otherwise.
	Waiting string
	// WaitingBehind is the running job of the same app it waits for, or 0.
	WaitingBehind int64
}

// AttemptError is one failed attempt.
type AttemptError struct {
	At      time.Time
	Attempt int
	Error   string
}

// Filter selects jobs for List. Zero fields match everything.
type Filter struct {
	Kinds  []string
	States []State
	App    string
	Limit  int // default 100
}

// List returns jobs, newest first.
func (q *Queue) List(ctx context.Context, f Filter) ([]*Info, error) {
	p := river.NewJobListParams().First(cmpOr(f.Limit, 100)).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if len(f.Kinds) > 0 {
		p = p.Kinds(f.Kinds...)
	}
	if len(f.States) > 0 {
		p = p.States(f.States...)
	} else {
		p = p.States(StateAvailable, StateScheduled, StateRunning, StateRetryable, StateCompleted, StateCancelled, StateDiscarded, StatePending)
	}
	if f.App != "" {
		p = p.Where("metadata ->> 'berth_app' = @app", river.NamedArgs{"app": f.App})
	}
	res, err := q.client.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	return q.explain(ctx, res.Jobs)
}

func (q *Queue) info(j *rivertype.JobRow) *Info {
	m := readMeta(j.Metadata)
	in := &Info{
		ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: j.State,
		App: m.App, Summary: m.Summary, EnqueuedBy: m.EnqueuedBy,
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
		CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt,
		StartedAt: j.AttemptedAt, FinishedAt: j.FinalizedAt,
	}
	if j.Attempt == 0 {
		// A PerApp job that found its app busy was fetched and snoozed;
		// River keeps that check's time, but the job never started.
		in.StartedAt = nil
	}
	for _, e := range j.Errors {
		in.Errors = append(in.Errors, AttemptError{At: e.At, Attempt: e.Attempt, Error: e.Error})
	}
	return in
}

// explain turns rows into Infos and says why the waiting ones wait: behind
// a running job of the same app (PerApp kinds), the queue's concurrency
// limit, a retry's backoff, or a time they were scheduled for.
func (q *Queue) explain(ctx context.Context, rows []*rivertype.JobRow) ([]*Info, error) {
	out := make([]*Info, len(rows))
	waiting := false
	for i, r := range rows {
		out[i] = q.info(r)
		waiting = waiting || r.State != StateRunning && r.FinalizedAt == nil
	}
	if !waiting {
		return out, nil
	}
	res, err := q.client.JobList(ctx, river.NewJobListParams().States(StateRunning).First(10000))
	if err != nil {
		return nil, fmt.Errorf("jobs: list running: %w", err)
	}
	runningByQueue := map[string]int{}
	runningByApp := map[string]int64{} // kind:app → job id
	for _, r := range res.Jobs {
		runningByQueue[r.Queue]++
		if app := readMeta(r.Metadata).App; app != "" {
			runningByApp[r.Kind+":"+app] = r.ID
		}
	}
	now := time.Now()
	for _, in := range out {
		if in.State == StateRunning || in.FinishedAt != nil {
			continue
		}
		k := q.workers.kinds[in.Kind]
		if holder, ok := runningByApp[in.Kind+":"+in.App]; ok && in.App != "" && holder != in.ID && (k == nil || k.PerApp) {
			in.WaitingBehind = holder
			in.Waiting = fmt.Sprintf("waiting for job %d of the same app (%s) to finish", holder, in.App)
			continue
		}
		switch {
		case in.State == StateRetryable:
			in.Waiting = fmt.Sprintf("attempt %d of %d failed; retrying at %s", in.Attempt, in.MaxAttempts, in.ScheduledAt.UTC().Format(time.RFC3339))
			continue
		case in.State == StatePending:
			in.Waiting = "pending"
			continue
		case in.State == StateScheduled && in.ScheduledAt.After(now):
			in.Waiting = fmt.Sprintf("scheduled for %s", in.ScheduledAt.UTC().Format(time.RFC3339))
			continue
		}
		limit, known := q.concurrency[in.Queue]
		if known && runningByQueue[in.Queue] >= limit {
			in.Waiting = fmt.Sprintf("concurrency limit: %d of %d %s jobs running", runningByQueue[in.Queue], limit, in.Queue)
			continue
		}
		in.Waiting = "waiting for a worker"
	}
	return out, nil
}
