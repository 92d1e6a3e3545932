package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

// deadline bounds every wait; it is generous on purpose: tests assert on
// order and state, never on speed (except Cancel's one-second promise).
const deadline = 60 * time.Second

type backend struct {
	name    string
	dialect store.Dialect
	open    func(t *testing.T) *sql.DB
}

var backends = []backend{
	{"sqlite", store.SQLite, openSQLite},
	{"postgres", store.Postgres, openPostgres},
}

// openSQLite opens the store's database file the way the store does (its
// open function is unexported and its DB hides the *sql.DB), after the store
// created and migrated it, so River's tables live next to the store's.
func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "berth.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t *testing.T) *sql.DB {
	t.Helper()
	url := testenv.Postgres(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(10)
	db.SetMaxIdleConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}

func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// sleepArgs is the test kind: it records when it ran and, on its first
// attempt, blocks while its commit is gated.
type sleepArgs struct {
	AppName   string `json:"app"`
	Commit    string `json:"commit"`
	Token     string `json:"token"` // stands for a secret: must never show in Info
	IgnoreCtx bool   `json:"ignore_ctx"`
	FailFirst bool   `json:"fail_first"`
	HoldMS    int    `json:"hold_ms"`
}

func (sleepArgs) Kind() string      { return "test.sleep" }
func (a sleepArgs) App() string     { return a.AppName }
func (a sleepArgs) Summary() string { return a.AppName + " @ " + a.Commit }

// retryArgs is the same work on a kind that is safe to retry.
type retryArgs struct{ sleepArgs }

func (retryArgs) Kind() string { return "test.retry" }

type run struct {
	id        int64
	commit    string
	attempt   int
	start     time.Time
	end       time.Time
	ctxDoneAt time.Time
}

type harness struct {
	mu      sync.Mutex
	runs    []*run
	gates   map[string]chan struct{}
	started chan int64
}

func newHarness(t *testing.T) *harness {
	h := &harness{gates: map[string]chan struct{}{}, started: make(chan int64, 100)}
	// Release every gate before the databases close, so that workers which
	// ignore their context end with the test.
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for c, g := range h.gates {
			close(g)
			delete(h.gates, c)
		}
	})
	return h
}

func (h *harness) gate(commit string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gates[commit] = make(chan struct{})
}

func (h *harness) release(commit string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.gates[commit])
	delete(h.gates, commit)
}

func (h *harness) work(ctx context.Context, id int64, attempt int, a sleepArgs) error {
	r := &run{id: id, commit: a.Commit, attempt: attempt, start: time.Now()}
	h.mu.Lock()
	h.runs = append(h.runs, r)
	g := h.gates[a.Commit]
	h.mu.Unlock()
	h.started <- id
	defer func() {
		h.mu.Lock()
		r.end = time.Now()
		h.mu.Unlock()
	}()
	if g != nil && attempt == 1 {
		if a.IgnoreCtx {
			<-g
			return nil
		}
		select {
		case <-g:
		case <-ctx.Done():
			h.mu.Lock()
			r.ctxDoneAt = time.Now()
			h.mu.Unlock()
			return ctx.Err()
		}
	}
	if a.FailFirst && attempt == 1 {
		return errors.New("first attempt fails")
	}
	if a.HoldMS > 0 {
		select {
		case <-time.After(time.Duration(a.HoldMS) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (h *harness) runsOf(id int64) []run {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []run
	for _, r := range h.runs {
		if r.id == id {
			out = append(out, *r)
		}
	}
	return out
}

func (h *harness) waitStarted(t *testing.T, id int64) {
	t.Helper()
	timeout := time.After(deadline)
	for {
		if len(h.runsOf(id)) > 0 {
			return
		}
		select {
		case <-h.started:
		case <-time.After(50 * time.Millisecond):
		case <-timeout:
			t.Fatalf("job %d never started", id)
		}
	}
}

type setup struct {
	concurrency  int
	timeout      time.Duration
	rescueAfter  time.Duration
	noStart      bool
	startContext context.Context
	periodic     []Periodic
}

func openQueue(t *testing.T, db *sql.DB, d store.Dialect, h *harness, s setup) *Queue {
	t.Helper()
	w := NewWorkers()
	kind := BuildKind(s.timeout)
	if err := Register(w, kind, func(ctx context.Context, j *Job[sleepArgs]) error {
		return h.work(ctx, j.ID, j.Attempt, j.Args)
	}); err != nil {
		t.Fatal(err)
	}
	retry := Kind{MaxAttempts: 3, Timeout: s.timeout, Retry: func(int) time.Duration { return 100 * time.Millisecond }}
	if err := Register(w, retry, func(ctx context.Context, j *Job[retryArgs]) error {
		return h.work(ctx, j.ID, j.Attempt, j.Args.sleepArgs)
	}); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Logger:         busyWatch(t),
		Workers:        w,
		Concurrency:    map[string]int{QueueBuilds: max(1, s.concurrency)},
		DefaultTimeout: s.timeout,
		RescueAfter:    s.rescueAfter,
		Periodic:       s.periodic,
	}
	q, err := Open(context.Background(), db, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.noStart {
		return q
	}
	ctx := s.startContext
	if ctx == nil {
		ctx = context.Background()
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return q
}

// busyWatch returns a logger that fails the test if River ever logs
// SQLITE_BUSY: the queue shares the store's pool of four connections, not
// the single connection riversqlite's documentation suggests, and relies on
// the busy timeout and immediate transactions instead.
func busyWatch(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for line := range strings.Lines(buf.String()) {
			if strings.Contains(line, "SQLITE_BUSY") || strings.Contains(line, "database is locked") {
				t.Errorf("river logged: %s", line)
			}
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func insert(t *testing.T, q *Queue, a Args) int64 {
	t.Helper()
	in, err := q.Insert(context.Background(), a, "test:"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return in.ID
}

func waitState(t *testing.T, q *Queue, id int64, want ...State) *Info {
	t.Helper()
	end := time.Now().Add(deadline)
	var last *Info
	for time.Now().Before(end) {
		in, err := q.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		last = in
		for _, w := range want {
			if in.State == w {
				return in
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %d: state %s after %s, want %v (errors %v)", id, last.State, deadline, want, last.Errors)
	return nil
}

func TestInsertAndRun(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{})
		id := insert(t, q, sleepArgs{AppName: "shop/api", Commit: "c1", Token: "hunter2"})
		in := waitState(t, q, id, StateCompleted)
		if in.Kind != "test.sleep" || in.Queue != QueueBuilds || in.App != "shop/api" || in.Summary != "shop/api @ c1" {
			t.Errorf("info = %+v", in)
		}
		if in.EnqueuedBy != "test:"+t.Name() || in.Attempt != 1 || in.StartedAt == nil || in.FinishedAt == nil {
			t.Errorf("info = %+v", in)
		}
		if n := len(h.runsOf(id)); n != 1 {
			t.Errorf("ran %d times, want 1", n)
		}
	})
}

// Two builds never overlap when the builds queue runs one at a time, even
// for different apps.
func TestConcurrencyLimit(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: 1})
		var ids []int64
		for i := range 4 {
			ids = append(ids, insert(t, q, sleepArgs{AppName: fmt.Sprintf("app%d", i), Commit: "c", HoldMS: 100}))
		}
		for _, id := range ids {
			waitState(t, q, id, StateCompleted)
		}
		assertNoOverlap(t, h, ids)
	})
}

func assertNoOverlap(t *testing.T, h *harness, ids []int64) {
	t.Helper()
	var runs []run
	for _, id := range ids {
		runs = append(runs, h.runsOf(id)...)
	}
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.start.Before(b.end) && b.start.Before(a.end) {
				t.Errorf("jobs %d [%s, %s] and %d [%s, %s] overlap", a.id, a.start.Format("15:04:05.000"), a.end.Format("15:04:05.000"), b.id, b.start.Format("15:04:05.000"), b.end.Format("15:04:05.000"))
			}
		}
	}
}

// With room for two builds, two apps build side by side but one app's
// builds run one after the other.
func TestPerAppSerialization(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: 2})
		h.gate("a1")
		a1 := insert(t, q, sleepArgs{AppName: "a", Commit: "a1"})
		h.waitStarted(t, a1)
		a2 := insert(t, q, sleepArgs{AppName: "a", Commit: "a2"})
		b1 := insert(t, q, sleepArgs{AppName: "b", Commit: "b1"})

		// App b builds while app a's first build still runs.
		waitState(t, q, b1, StateCompleted)
		if in := waitState(t, q, a1, StateRunning); in.State != StateRunning {
			t.Fatalf("a1 = %s", in.State)
		}
		if r := h.runsOf(a2); len(r) > 0 {
			t.Fatalf("a2 started at %s while a1 runs", r[0].start)
		}
		h.release("a1")
		waitState(t, q, a1, StateCompleted)
		waitState(t, q, a2, StateCompleted)
		assertNoOverlap(t, h, []int64{a1, a2})
		if n := len(h.runsOf(a2)); n != 1 {
			t.Errorf("a2 ran %d times", n)
		}
	})
}

// Inserting a build cancels the app's queued older builds and keeps the
// running one. With one build slot the older build is still queued when the
// newer arrives, so it is cancelled at once. With two, it may be in the
// middle of finding its app busy when the newer one is inserted; then it is
// cancelled when it checks again, at the latest when the running build ends.
// Either way it never runs.
func TestNewestWins(t *testing.T) {
	for _, slots := range []int{1, 2} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			eachBackend(t, func(t *testing.T, b backend) {
				h := newHarness(t)
				q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: slots})
				h.gate("c1")
				c1 := insert(t, q, sleepArgs{AppName: "a", Commit: "c1"})
				h.waitStarted(t, c1)
				c2 := insert(t, q, sleepArgs{AppName: "a", Commit: "c2"})
				c3 := insert(t, q, sleepArgs{AppName: "a", Commit: "c3"})
				other := insert(t, q, sleepArgs{AppName: "b", Commit: "b1"})

				if slots == 1 {
					in, err := q.Get(context.Background(), c2)
					if err != nil {
						t.Fatal(err)
					}
					if in.State != StateCancelled || in.FinishedAt == nil {
						t.Errorf("c2 right after c3's insert: %s (finished %v), want cancelled", in.State, in.FinishedAt)
					}
				}
				if in, _ := q.Get(context.Background(), c1); in.State != StateRunning {
					t.Errorf("running c1 = %s, want it kept running", in.State)
				}
				h.release("c1")
				waitState(t, q, c1, StateCompleted)
				waitState(t, q, c3, StateCompleted)
				waitState(t, q, other, StateCompleted) // other apps are not touched
				waitState(t, q, c2, StateCancelled)
				if r := h.runsOf(c2); len(r) > 0 {
					t.Errorf("cancelled c2 ran: %+v", r)
				}
			})
		})
	}
}

func TestCancelQueued(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: 1})
		h.gate("a1")
		a1 := insert(t, q, sleepArgs{AppName: "a", Commit: "a1"})
		h.waitStarted(t, a1)
		b1 := insert(t, q, sleepArgs{AppName: "b", Commit: "b1"})
		in, err := q.Cancel(context.Background(), b1)
		if err != nil {
			t.Fatal(err)
		}
		if in.State != StateCancelled {
			t.Fatalf("cancel of a queued job: state %s, want cancelled", in.State)
		}
		h.release("a1")
		waitState(t, q, a1, StateCompleted)
		// Something queued after b1 runs, so b1 had its chance and did not take it.
		c1 := insert(t, q, sleepArgs{AppName: "c", Commit: "c1"})
		waitState(t, q, c1, StateCompleted)
		if r := h.runsOf(b1); len(r) > 0 {
			t.Errorf("cancelled b1 ran: %+v", r)
		}
		if in, _ := q.Get(context.Background(), b1); in.State != StateCancelled {
			t.Errorf("b1 = %s", in.State)
		}
		if _, err := q.Cancel(context.Background(), 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancel of a missing job: %v, want ErrNotFound", err)
		}
	})
}

// A running job's context is cancelled within a second of Cancel.
func TestCancelRunning(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: 1})
		h.gate("a1")
		a1 := insert(t, q, sleepArgs{AppName: "a", Commit: "a1"})
		h.waitStarted(t, a1)
		at := time.Now()
		if _, err := q.Cancel(context.Background(), a1); err != nil {
			t.Fatal(err)
		}
		in := waitState(t, q, a1, StateCancelled, StateCompleted, StateDiscarded)
		if in.State != StateCancelled {
			t.Errorf("state %s, want cancelled", in.State)
		}
		r := h.runsOf(a1)
		if len(r) != 1 || r[0].ctxDoneAt.IsZero() {
			t.Fatalf("worker never saw its context done: %+v", r)
		}
		if took := r[0].ctxDoneAt.Sub(at); took > time.Second {
			t.Errorf("worker saw ctx.Done %s after Cancel, want within 1s", took)
		}
	})
}

// A queue stopped hard while jobs run (its context cancelled, nothing
// waited for, workers that do not even return: as close to kill -9 as a
// test process gets) leaves them to the next queue on the same database:
// a kind safe to retry runs again, a build is discarded with the reason.
func TestRestartSurvival(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		h := newHarness(t)
		// On PostgreSQL River's rescuer finds the stuck jobs after RescueAfter;
		// on SQLite Open rescues them at once.
		s := setup{concurrency: 1, timeout: 2 * time.Second, rescueAfter: 3 * time.Second}
		ctx1, kill := context.WithCancel(context.Background())
		s.startContext = ctx1
		s.noStart = true
		q1 := openQueue(t, db, b.dialect, h, s)
		if err := q1.Start(ctx1); err != nil {
			t.Fatal(err)
		}
		h.gate("r1")
		h.gate("s1")
		r1 := insert(t, q1, retryArgs{sleepArgs{AppName: "a", Commit: "r1", IgnoreCtx: true}})
		s1 := insert(t, q1, sleepArgs{AppName: "a", Commit: "s1", IgnoreCtx: true})
		h.waitStarted(t, r1)
		h.waitStarted(t, s1)
		kill()

		s.noStart, s.startContext = false, nil
		q2 := openQueue(t, db, b.dialect, h, s)
		in := waitState(t, q2, r1, StateCompleted)
		if in.Attempt < 2 || len(in.Errors) == 0 {
			t.Errorf("retried job: attempt %d, errors %v; want a second attempt after a recorded error", in.Attempt, in.Errors)
		}
		if n := len(h.runsOf(r1)); n < 2 {
			t.Errorf("retryable job ran %d times, want 2", n)
		}
		in = waitState(t, q2, s1, StateDiscarded)
		if len(in.Errors) == 0 {
			t.Errorf("discarded build says nothing about why: %+v", in)
		}
		if n := len(h.runsOf(s1)); n != 1 {
			t.Errorf("build ran %d times, want once (never retried automatically)", n)
		}
	})
}

func TestListAndWhyItWaits(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: 1})
		h.gate("a1")
		a1 := insert(t, q, sleepArgs{AppName: "a", Commit: "a1", Token: "hunter2"})
		h.waitStarted(t, a1)
		a2 := insert(t, q, sleepArgs{AppName: "a", Commit: "a2", Token: "hunter2"})
		b1 := insert(t, q, sleepArgs{AppName: "b", Commit: "b1", Token: "hunter2"})

		all, err := q.List(context.Background(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[int64]*Info{}
		for _, in := range all {
			byID[in.ID] = in
			if s := fmt.Sprintf("%+v", *in); strings.Contains(s, "hunter2") {
				t.Errorf("job info shows a secret: %s", s)
			}
		}
		if len(all) != 3 || all[0].ID != b1 {
			t.Fatalf("list = %d jobs, first %d; want 3, newest (%d) first", len(all), all[0].ID, b1)
		}
		if in := byID[a1]; in.State != StateRunning || in.Waiting != "" || in.StartedAt == nil {
			t.Errorf("a1 = %+v", in)
		}
		if in := byID[a2]; in.WaitingBehind != a1 || !strings.Contains(in.Waiting, fmt.Sprint(a1)) {
			t.Errorf("a2 waits %q (behind %d), want behind %d", in.Waiting, in.WaitingBehind, a1)
		}
		if in := byID[b1]; in.WaitingBehind != 0 || !strings.Contains(in.Waiting, "concurrency limit: 1 of 1 builds") {
			t.Errorf("b1 waits %q, want the concurrency limit", in.Waiting)
		}
		if in := byID[b1]; in.Summary != "b @ b1" || in.EnqueuedBy != "test:"+t.Name() || in.Kind != "test.sleep" {
			t.Errorf("b1 = %+v", in)
		}

		appA, err := q.List(context.Background(), Filter{App: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(appA) != 2 || appA[0].ID != a2 || appA[1].ID != a1 {
			t.Errorf("app a: %d jobs, want a2, a1", len(appA))
		}
		running, err := q.List(context.Background(), Filter{States: []State{StateRunning}})
		if err != nil {
			t.Fatal(err)
		}
		if len(running) != 1 || running[0].ID != a1 {
			t.Errorf("running: %+v", running)
		}
		h.release("a1")
		waitState(t, q, b1, StateCompleted)
		waitState(t, q, a2, StateCompleted)
	})
}

// Two servers starting at once on one database both migrate River's schema
// without failing, and again on restart.
func TestOpenConcurrentMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = Open(context.Background(), db, b.dialect, Options{})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("open %d: %v", i, err)
			}
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM river_migration`).Scan(&n); err != nil || n == 0 {
			t.Errorf("river_migration rows = %d, %v", n, err)
		}
	})
}

func TestOpenRejectsBadOptions(t *testing.T) {
	db := openSQLite(t)
	if _, err := Open(context.Background(), db, "mysql", Options{}); err == nil {
		t.Error("unknown dialect accepted")
	}
	w := NewWorkers()
	if err := Register(w, Kind{Queue: "nowhere"}, func(context.Context, *Job[sleepArgs]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), db, store.SQLite, Options{Workers: w}); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("kind on an unknown queue: %v", err)
	}
	if err := Register(w, Kind{}, func(context.Context, *Job[sleepArgs]) error { return nil }); err == nil {
		t.Error("kind registered twice")
	}
}

// A kind safe to retry runs again after a failure; a build does not.
func TestRetryPolicy(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: 1})
		r1 := insert(t, q, retryArgs{sleepArgs{AppName: "a", Commit: "r1", FailFirst: true}})
		s1 := insert(t, q, sleepArgs{AppName: "a", Commit: "s1", FailFirst: true})
		in := waitState(t, q, r1, StateCompleted)
		if in.Attempt != 2 || len(in.Errors) != 1 || in.Errors[0].Error != "first attempt fails" || in.MaxAttempts != 3 {
			t.Errorf("retryable kind: %+v", in)
		}
		in = waitState(t, q, s1, StateDiscarded)
		if in.Attempt != 1 || len(in.Errors) != 1 || in.MaxAttempts != 1 {
			t.Errorf("build kind: %+v", in)
		}
		if n := len(h.runsOf(s1)); n != 1 {
			t.Errorf("build ran %d times, want 1", n)
		}
	})
}

// A kind's timeout cancels the job's context; a build that timed out is
// discarded with the reason.
func TestTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		q := openQueue(t, b.open(t), b.dialect, h, setup{concurrency: 1, timeout: 300 * time.Millisecond})
		h.gate("s1")
		s1 := insert(t, q, sleepArgs{AppName: "a", Commit: "s1"})
		in := waitState(t, q, s1, StateDiscarded, StateCompleted)
		if in.State != StateDiscarded || len(in.Errors) != 1 || !strings.Contains(in.Errors[0].Error, "deadline") {
			t.Errorf("timed-out build: %+v", in)
		}
		if r := h.runsOf(s1); len(r) != 1 || r[0].ctxDoneAt.IsZero() {
			t.Errorf("worker never saw its context end: %+v", r)
		}
	})
}

// Periodic jobs are inserted by the leader and say so.
func TestPeriodic(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t)
		p := Periodic{ID: "tick", Every: time.Hour, RunOnStart: true, Args: func() Args {
			return retryArgs{sleepArgs{Commit: "tick"}}
		}}
		q := openQueue(t, b.open(t), b.dialect, h, setup{periodic: []Periodic{p}})
		end := time.Now().Add(deadline)
		for time.Now().Before(end) {
			list, err := q.List(context.Background(), Filter{Kinds: []string{"test.retry"}, States: []State{StateCompleted}})
			if err != nil {
				t.Fatal(err)
			}
			if len(list) > 0 {
				if list[0].EnqueuedBy != "periodic:tick" || list[0].Summary != " @ tick" {
					t.Errorf("periodic job: %+v", list[0])
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no periodic job completed")
	})
}
