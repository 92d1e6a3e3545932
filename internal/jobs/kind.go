package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Args are a job's arguments, stored as JSON in the job row. Never put a
// secret in them: refer to it (an app id, a registry id) and let the worker
// read it from the store, so the queue's rows and views never hold one.
type Args interface {
	// Kind names the job kind, e.g. "build".
	Kind() string
	// App is the app the job works on ("" for jobs of no app). Kinds marked
	// PerApp run one job per app at a time.
	App() string
	// Summary is the one-line description the UI and API show, e.g.
	// "shop/api @ 3f2c1ab (main)". It must hold no secret value.
	Summary() string
}

// Kind configures one job kind.
type Kind struct {
	// Queue the kind runs on (default QueueDefault).
	Queue string
	// Timeout cancels the job's context after this long (default: the
	// Queue's DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts is how often a job runs before it is discarded; 1 (the
	// default) never retries automatically. Set it above 1 only for kinds
	// whose work is safe to repeat from the start; see Retry.
	MaxAttempts int
	// Retry is the backoff before attempt n+1 after attempt n failed
	// (default: 5s·2^(n-1), at most 10 minutes).
	Retry func(attempt int) time.Duration
	// PerApp runs at most one job of this kind per app at a time, and makes
	// the newest job of an app win: inserting one cancels the app's queued
	// (not running) jobs of the kind. Builds and deploys are PerApp: a newer
	// push makes an older, not yet started build pointless.
	PerApp bool
}

// BuildKind is how builds run: on the builds queue, one per app at a time
// with the newest push winning, stopped after timeout.
//
// Builds are not retried automatically (MaxAttempts 1): a build that failed
// failed for a reason a user must see (a broken Dockerfile, a missing base
// image, a full disk); retrying it hides the reason behind minutes of
// repeated work and a busy builder, and a newer push queues a new build
// anyway. A build cut short by a restart is discarded with the reason
// ("berth stopped while the job ran") and the user deploys again.
func BuildKind(timeout time.Duration) Kind {
	return Kind{Queue: QueueBuilds, Timeout: timeout, MaxAttempts: 1, PerApp: true}
}

// Job is what a worker receives.
type Job[T Args] struct {
	ID          int64
	Attempt     int // 1 for the first run
	MaxAttempts int
	Args        T
	EnqueuedBy  string
	// Resumed reports a job that ran before and was cut short (a previous
	// attempt failed, or the process running it died). Workers must be
	// idempotent: e.g. a build re-fetches into a fresh workspace and tags
	// images with the job id, a deploy reads the release's recorded state
	// and continues from it rather than starting a second release.
	Resumed bool
}

// Workers holds the kinds a process runs. A set belongs to one Queue.
type Workers struct {
	river *river.Workers
	kinds map[string]*kindInfo
	queue *Queue
}

type kindInfo struct {
	Kind
	name string
}

// NewWorkers returns an empty set of kinds.
func NewWorkers() *Workers {
	return &Workers{river: river.NewWorkers(), kinds: map[string]*kindInfo{}}
}

func (w *Workers) bind(q *Queue) { w.queue = q }

// Register adds a kind. T's Kind() names it; work runs each job.
func Register[T Args](w *Workers, k Kind, work func(ctx context.Context, job *Job[T]) error) error {
	var zero T
	name := zero.Kind()
	if _, dup := w.kinds[name]; dup {
		return fmt.Errorf("jobs: kind %q registered twice", name)
	}
	k.Queue = cmpOr(k.Queue, QueueDefault)
	k.MaxAttempts = cmpOr(k.MaxAttempts, 1)
	if k.Retry == nil {
		k.Retry = defaultRetry
	}
	info := &kindInfo{Kind: k, name: name}
	if err := river.AddWorkerSafely(w.river, &worker[T]{info: info, set: w, work: work}); err != nil {
		return fmt.Errorf("jobs: register %q: %w", name, err)
	}
	w.kinds[name] = info
	return nil
}

func defaultRetry(attempt int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < attempt && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// waitSnooze is how long a PerApp job that found its app busy waits before
// trying again. The job ahead of it wakes it when it ends, so this only
// bounds the wait when that wake is lost (its process died); each retry
// costs a fetch and a row update, which is why it is not shorter.
const waitSnooze = 15 * time.Second

// ErrSuperseded cancels a PerApp job that a newer job of the same app replaced.
var ErrSuperseded = errors.New("superseded by a newer job of the same app")

type worker[T Args] struct {
	river.WorkerDefaults[T]
	info *kindInfo
	set  *Workers
	work func(ctx context.Context, job *Job[T]) error
}

func (w *worker[T]) Timeout(*river.Job[T]) time.Duration { return w.info.Timeout }

func (w *worker[T]) NextRetry(j *river.Job[T]) time.Time {
	return time.Now().Add(w.info.Retry(j.Attempt))
}

func (w *worker[T]) Work(ctx context.Context, rj *river.Job[T]) error {
	q := w.set.queue
	meta := readMeta(rj.Metadata)
	job := &Job[T]{
		ID: rj.ID, Attempt: rj.Attempt, MaxAttempts: rj.MaxAttempts, Args: rj.Args,
		EnqueuedBy: meta.EnqueuedBy, Resumed: rj.Attempt > 1 || len(rj.Errors) > 0,
	}
	if !w.info.PerApp || rj.Args.App() == "" {
		return w.work(ctx, job)
	}

	key := w.info.name + ":" + rj.Args.App()
	release, ok, err := q.locks.tryLock(ctx, key, rj.ID)
	if err != nil {
		return fmt.Errorf("per-app lock: %w", err)
	}
	if !ok {
		// Another job of this app runs. If a newer one is queued, this one
		// has lost already (the insert's sweep skips jobs that, like this
		// one, are briefly running while they check the lock); otherwise
		// wait without using up an attempt.
		if newer, err := q.newerJob(ctx, w.info.name, rj.Args.App(), rj.ID); err == nil && newer != 0 {
			return river.JobCancel(fmt.Errorf("%w (job %d)", ErrSuperseded, newer))
		}
		return river.JobSnooze(waitSnooze)
	}
	defer func() {
		release()
		q.wakeWaiting(context.WithoutCancel(ctx), w.info.name, rj.Args.App(), rj.ID)
	}()
	// A newer job of the app may have been inserted while this one waited
	// in a worker slot or raced the insert's sweep: the newest wins.
	newer, err := q.newerJob(ctx, w.info.name, rj.Args.App(), rj.ID)
	if err != nil {
		return fmt.Errorf("look for newer jobs: %w", err)
	}
	if newer != 0 {
		return river.JobCancel(fmt.Errorf("%w (job %d)", ErrSuperseded, newer))
	}
	return w.work(ctx, job)
}

var _ river.Worker[Args] = (*worker[Args])(nil)
