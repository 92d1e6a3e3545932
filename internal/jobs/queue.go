// Package jobs owns Berth's durable job queue: builds, deploys and other
// background work stored as River jobs in the same database as the store
// (SQLite or PostgreSQL), with per-app serialization ("newest wins"),
// cancellation, restart survival and a view of what runs and why the rest waits.
//
// River (OSS) gives: durable jobs, per-queue worker limits, per-kind timeouts,
// retries with a policy, JobCancel for queued and running jobs, a rescuer for
// jobs left running by a dead process, periodic jobs, and its own migrations.
// It does not give per-key (per-app) concurrency limits (River Pro's
// partitioned concurrency) nor "newest wins" replacement; this package builds
// those on top: see applock.go and insert.go.
//
// SQLite: River's riversqlite driver shares the store's *sql.DB. Its package
// documentation recommends SetMaxOpenConns(1) to avoid SQLITE_BUSY, because a
// deferred transaction that upgrades from read to write fails at once with
// SQLITE_BUSY whatever the busy timeout. The store's pool (WAL,
// busy_timeout(10000), _txlock=immediate, 4 connections) avoids that case: every
// transaction River opens goes through BeginTx, so it takes the write lock at
// BEGIN and waits out the busy timeout instead of failing, while WAL keeps
// readers concurrent. The tests run the queue on exactly those settings.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/berthpaas/berth/internal/store"
)

// Queue names. Every kind runs on one of them; each has its own worker limit.
const (
	QueueBuilds  = "builds"
	QueueDeploys = "deploys"
	QueueDefault = river.QueueDefault // "default"
)

// Fetch poll intervals: how often an idle queue looks for jobs nobody told
// it about (inserted by another process, or due after a retry backoff or a
// snooze that was not woken).
//
// On SQLite, River's driver has a notifier: an outbox table
// (river_notification) every client polls every 50 ms (fixed in riversqlite),
// which delivers inserts and cancels, so the fetch poll is only a fallback.
// Measured here (2 cores, idle queue, 30 s; TestMeasureIdle): notifier + 1 s
// fetch poll: 1.4% of one core, pickup 24–50 ms. River's PollOnly is no way
// out on SQLite: the driver still claims a listener, so the client neither
// wakes its fetcher on insert nor cancels running jobs locally, and pickup
// becomes the poll interval (200 ms poll: 1.8% CPU, 80–180 ms).
//
// PostgreSQL through database/sql has no notifier: River wakes the fetcher
// for jobs inserted through this client and cancels its own running jobs at
// once; jobs inserted by another server wait for the poll.
const (
	DefaultFetchPollSQLite   = time.Second
	DefaultFetchPollPostgres = 200 * time.Millisecond
)

// Options configures a Queue. The zero value is usable.
type Options struct {
	// Workers holds the job kinds this process runs. Nil: the Queue only
	// inserts, lists and cancels (no queue is worked).
	Workers *Workers

	// Concurrency is the number of jobs each queue runs at once in this
	// process. Missing queues get DefaultConcurrency's values. With several
	// servers on one PostgreSQL database the limit holds per server (a
	// global limit is River Pro's); PerApp serialization holds across them.
	Concurrency map[string]int

	// DefaultTimeout bounds kinds that set no Timeout (default 10 minutes).
	DefaultTimeout time.Duration

	// RescueAfter is how long a job may stay running before River's rescuer
	// assumes its process died and retries (or discards) it. On SQLite,
	// Start does that at once for every job left running, since the
	// embedded database belongs to one berth server: a running job there
	// can only be a leftover of a process that died. PostgreSQL may be
	// shared by several servers, so there it is River's rescuer, after
	// RescueAfter, that hands a dead server's jobs back. Default: the
	// longest kind timeout plus 5 minutes. It must not be shorter than any
	// kind's timeout, or live jobs would be rescued while they run.
	RescueAfter time.Duration

	// FetchPollInterval: see DefaultFetchPollSQLite.
	FetchPollInterval time.Duration

	// Periodic jobs inserted by the elected leader on their schedule.
	Periodic []Periodic

	// ID names this process in jobs' attempted_by (default: River's).
	ID string

	Logger *slog.Logger
}

// Periodic is a job inserted on a fixed interval.
type Periodic struct {
	ID         string // stable name, e.g. "prune-images"
	Every      time.Duration
	RunOnStart bool
	// Args returns the job to insert; it runs in the leader's insert loop.
	Args func() Args
}

// DefaultConcurrency returns the per-queue worker limits for a host with
// cpus cores. One build at a time on a 2-core host: a Docker build saturates
// both cores, and two at once take longer each than one after the other while
// leaving the control plane starved. Deploys mostly wait on Swarm and health
// checks, so a few run side by side (never two of one app: see PerApp).
func DefaultConcurrency(cpus int) map[string]int {
	return map[string]int{
		QueueBuilds:  max(1, cpus/2),
		QueueDeploys: max(2, cpus),
		QueueDefault: max(2, cpus),
	}
}

// Queue is the job queue: a River client plus what Berth builds on top.
type Queue struct {
	client      *river.Client[*sql.Tx]
	driver      riverdriver.Driver[*sql.Tx]
	db          *sql.DB
	dialect     store.Dialect
	workers     *Workers
	concurrency map[string]int
	locks       appLocker
	log         *slog.Logger
	startCancel context.CancelFunc
}

// Open prepares a Queue on db: it applies River's migrations (idempotent, and
// serialised between processes on PostgreSQL) and builds the River client.
// Call Start to begin working jobs.
func Open(ctx context.Context, db *sql.DB, dialect store.Dialect, opts Options) (*Queue, error) {
	q := &Queue{db: db, dialect: dialect, workers: opts.Workers, log: opts.Logger}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.workers == nil {
		q.workers = NewWorkers()
	}
	if q.workers.queue != nil {
		return nil, errors.New("jobs: this Workers set already belongs to another Queue; make one per Queue")
	}
	switch dialect {
	case store.SQLite:
		q.driver = riversqlite.New(db)
		q.locks = newLocalLocker()
	case store.Postgres:
		q.driver = riverdatabasesql.New(db)
		q.locks = &pgLocker{db: db}
	default:
		return nil, fmt.Errorf("jobs: unknown database dialect %q (want %q or %q)", dialect, store.SQLite, store.Postgres)
	}
	if err := q.migrate(ctx); err != nil {
		return nil, err
	}

	q.concurrency = DefaultConcurrency(runtime.NumCPU())
	for name, n := range opts.Concurrency {
		if n < 1 {
			return nil, fmt.Errorf("jobs: concurrency of queue %q is %d; it must be at least 1", name, n)
		}
		q.concurrency[name] = n
	}
	for _, k := range q.workers.kinds {
		if _, ok := q.concurrency[k.Queue]; !ok {
			return nil, fmt.Errorf("jobs: kind %q runs on queue %q, which has no concurrency set", k.name, k.Queue)
		}
	}

	defaultTimeout := cmpOr(opts.DefaultTimeout, 10*time.Minute)
	longest := defaultTimeout
	for _, k := range q.workers.kinds {
		longest = max(longest, k.Timeout)
	}
	rescueAfter := cmpOr(opts.RescueAfter, longest+5*time.Minute)
	if rescueAfter < longest {
		return nil, fmt.Errorf("jobs: RescueAfter %s is shorter than the longest job timeout %s; running jobs would be rescued while they run", rescueAfter, longest)
	}
	poll := opts.FetchPollInterval
	if poll == 0 {
		poll = DefaultFetchPollPostgres
		if dialect == store.SQLite {
			poll = DefaultFetchPollSQLite
		}
	}

	cfg := &river.Config{
		ID:                   opts.ID,
		Logger:               q.log,
		JobTimeout:           defaultTimeout,
		RescueStuckJobsAfter: rescueAfter,
		FetchPollInterval:    poll,
		FetchCooldown:        min(poll, 100*time.Millisecond),
		// Jobs inserted with the kind's MaxAttempts; this is only a fallback.
		MaxAttempts: 1,
		RetryPolicy: &river.DefaultClientRetryPolicy{},
		// Completed and cancelled jobs stay visible for a week in the queue
		// view; builds keep their own records in the store for longer.
		CompletedJobRetentionPeriod: 7 * 24 * time.Hour,
		CancelledJobRetentionPeriod: 7 * 24 * time.Hour,
		DiscardedJobRetentionPeriod: 30 * 24 * time.Hour,
	}
	if len(q.workers.kinds) > 0 {
		cfg.Workers = q.workers.river
		// Only queues some kind runs on: each worked queue is a producer
		// polling the database, which an idle server should not pay for.
		cfg.Queues = map[string]river.QueueConfig{}
		for _, k := range q.workers.kinds {
			cfg.Queues[k.Queue] = river.QueueConfig{MaxWorkers: q.concurrency[k.Queue]}
		}
	}
	for _, p := range opts.Periodic {
		if p.Every <= 0 || p.Args == nil || p.ID == "" {
			return nil, fmt.Errorf("jobs: periodic job %q needs an ID, an interval and Args", p.ID)
		}
		if _, ok := q.workers.kinds[p.Args().Kind()]; !ok {
			return nil, fmt.Errorf("jobs: periodic job %q inserts kind %q, which is not registered", p.ID, p.Args().Kind())
		}
		cfg.PeriodicJobs = append(cfg.PeriodicJobs, river.NewPeriodicJob(
			river.PeriodicInterval(p.Every),
			func() (river.JobArgs, *river.InsertOpts) {
				args := p.Args()
				opts, err := q.insertOpts(args, "periodic:"+p.ID)
				if err != nil {
					q.log.Error("periodic job", "periodic_id", p.ID, "err", err)
				}
				return args, opts
			},
			&river.PeriodicJobOpts{ID: p.ID, RunOnStart: p.RunOnStart},
		))
	}

	client, err := river.NewClient(q.driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	q.client = client
	q.workers.bind(q)
	return q, nil
}

// migrate applies River's schema. rivermigrate itself takes no lock, so on
// PostgreSQL a session advisory lock on a dedicated connection serialises
// two servers starting at once; the second finds nothing left to do.
// SQLite has one berth server per database file, so a process-wide mutex
// is enough there (rivermigrate's read-then-create races even in one process).
func (q *Queue) migrate(ctx context.Context) error {
	m, err := rivermigrate.New(q.driver, &rivermigrate.Config{Logger: q.log})
	if err != nil {
		return fmt.Errorf("jobs: migrator: %w", err)
	}
	if q.dialect == store.Postgres {
		conn, err := q.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("jobs: migrate: %w", err)
		}
		defer conn.Close()
		key := lockKey("berth.jobs.migrate")
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
			return fmt.Errorf("jobs: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	} else {
		sqliteMigrate.Lock()
		defer sqliteMigrate.Unlock()
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate river schema: %w", err)
	}
	return nil
}

var sqliteMigrate sync.Mutex

// Start begins working jobs (a Queue without Workers only inserts, lists
// and cancels). On SQLite it first rescues jobs a dead process left running
// (see Options.RescueAfter). Cancelling ctx stops the queue hard: running
// jobs see their context cancelled and nothing waits for them (like a kill,
// short of the process exiting). Close stops it gracefully.
func (q *Queue) Start(ctx context.Context) error {
	if len(q.workers.kinds) == 0 {
		return nil
	}
	if q.dialect == store.SQLite {
		if err := q.rescueRunning(ctx); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	q.startCancel = cancel
	if err := q.client.Start(ctx); err != nil {
		cancel()
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// Close stops fetching jobs and waits for running ones until ctx is done,
// then cancels their contexts and waits for them to return. A job cut short
// this way is retried or rescued per its kind (see Kind.MaxAttempts).
func (q *Queue) Close(ctx context.Context) error {
	if q.startCancel == nil {
		return nil
	}
	defer func() {
		if q.startCancel != nil {
			q.startCancel()
		}
	}()
	err := q.client.Stop(ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := q.client.StopAndCancel(hard); err != nil {
		return fmt.Errorf("jobs: stop and cancel running jobs: %w", err)
	}
	return nil
}

// Cancel cancels a job. A queued job is cancelled at once and never runs; a
// running job has its context cancelled (at once when this process runs it,
// within about two seconds when another process does) and is recorded as
// cancelled when its worker returns. Cancelling a finished job changes nothing.
func (q *Queue) Cancel(ctx context.Context, id int64) (*Info, error) {
	row, err := q.client.JobCancel(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: cancel %d: %w", id, err)
	}
	return q.info(row), nil
}

// Get returns one job.
func (q *Queue) Get(ctx context.Context, id int64) (*Info, error) {
	row, err := q.client.JobGet(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return nil, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: get %d: %w", id, err)
	}
	infos, err := q.explain(ctx, []*rivertype.JobRow{row})
	if err != nil {
		return nil, err
	}
	return infos[0], nil
}

// ErrNotFound is returned for a job id that does not exist (any more).
var ErrNotFound = errors.New("job not found")

// rescueRunning hands every job left running by a previous process back to
// the queue (attempts left) or discards it (none left), recording why, the
// way River's rescuer would after RescueAfter. It goes through the driver's
// own rescue statement so River's schema stays River's business.
func (q *Queue) rescueRunning(ctx context.Context) error {
	res, err := q.client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).First(10000))
	if err != nil {
		return fmt.Errorf("jobs: rescue: list running jobs: %w", err)
	}
	if len(res.Jobs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	p := &riverdriver.JobRescueManyParams{StuckHorizon: now.Add(time.Second)}
	for _, j := range res.Jobs {
		msg, _ := jsonMarshal(rivertype.AttemptError{
			At: now, Attempt: j.Attempt,
			Error: "berth stopped while the job ran; rescued at start",
		})
		p.ID = append(p.ID, j.ID)
		p.Error = append(p.Error, msg)
		if j.Attempt >= j.MaxAttempts {
			p.State = append(p.State, string(rivertype.JobStateDiscarded))
			p.FinalizedAt = append(p.FinalizedAt, &now)
		} else {
			p.State = append(p.State, string(rivertype.JobStateAvailable))
			p.FinalizedAt = append(p.FinalizedAt, nil)
		}
		p.ScheduledAt = append(p.ScheduledAt, now)
		q.log.Info("rescued job left running", "job_id", j.ID, "kind", j.Kind, "state", p.State[len(p.State)-1])
	}
	if _, err := q.driver.GetExecutor().JobRescueMany(ctx, p); err != nil {
		return fmt.Errorf("jobs: rescue running jobs: %w", err)
	}
	return nil
}

func lockKey(s string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return int64(h.Sum64())
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
