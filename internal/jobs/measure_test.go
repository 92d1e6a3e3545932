package jobs

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/store"
)

// TestMeasureIdle reports what an idle queue costs on SQLite: goroutines,
// RSS and heap added by the River client, CPU over an idle period, and the
// pickup latency of a job inserted by another client (which only polling
// finds). It measures, it asserts nothing; run it on purpose:
//
//	BERTH_JOBS_MEASURE=1 BERTH_JOBS_POLL=1s BERTH_JOBS_IDLE=30s go test ./internal/jobs -run TestMeasureIdle -v
func TestMeasureIdle(t *testing.T) {
	if os.Getenv("BERTH_JOBS_MEASURE") == "" {
		t.Skip("set BERTH_JOBS_MEASURE=1 to measure the idle queue")
	}
	poll, err := time.ParseDuration(cmpOr(os.Getenv("BERTH_JOBS_POLL"), "1s"))
	if err != nil {
		t.Fatal(err)
	}
	idle, err := time.ParseDuration(cmpOr(os.Getenv("BERTH_JOBS_IDLE"), "30s"))
	if err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	g0, rss0, heap0 := snapshot()

	h := newHarness(t)
	w := NewWorkers()
	if err := Register(w, Kind{Queue: QueueBuilds, PerApp: true}, func(ctx context.Context, j *Job[sleepArgs]) error {
		return h.work(ctx, j.ID, j.Attempt, j.Args)
	}); err != nil {
		t.Fatal(err)
	}
	q, err := Open(context.Background(), db, store.SQLite, Options{Workers: w, FetchPollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer q.Close(context.Background())
	time.Sleep(3 * time.Second) // leader elected, maintenance services up
	g1, rss1, heap1 := snapshot()
	t.Logf("poll %s: goroutines %d → %d (+%d); RSS %.1f → %.1f MB (+%.1f); heap in use %.1f → %.1f MB (+%.1f)",
		poll, g0, g1, g1-g0, mb(rss0), mb(rss1), mb(rss1-rss0), mb(heap0), mb(heap1), mb(heap1-heap0))

	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(idle)
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	t.Logf("poll %s: idle CPU %.2f%% of one core over %s", poll, 100*cpu.Seconds()/wall.Seconds(), wall.Round(time.Second))

	// A second client without workers stands for another process (or an
	// insert made in a transaction): River cannot wake the first client's
	// fetcher, so only polling finds the job.
	w2 := NewWorkers()
	if err := Register(w2, Kind{Queue: QueueBuilds, PerApp: true}, func(context.Context, *Job[sleepArgs]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	other, err := Open(context.Background(), db, store.SQLite, Options{Workers: w2}) // never started
	if err != nil {
		t.Fatal(err)
	}
	var worst, sum time.Duration
	const n = 10
	for i := range n {
		// Let the fetcher go idle (a finished job triggers a fetch of its
		// own), then insert at a different phase of the poll cycle each time.
		time.Sleep(poll + 300*time.Millisecond + time.Duration(i)*poll/n)
		at := time.Now()
		id := insert(t, other, sleepArgs{AppName: "m" + strconv.Itoa(i), Commit: "c"})
		h.waitStarted(t, id)
		d := h.runsOf(id)[0].start.Sub(at)
		sum += d
		worst = max(worst, d)
	}
	t.Logf("poll %s: pickup latency of an insert from elsewhere: mean %s, worst %s", poll, (sum / n).Round(time.Millisecond), worst.Round(time.Millisecond))
	time.Sleep(poll + 300*time.Millisecond)
	at := time.Now()
	id := insert(t, q, sleepArgs{AppName: "local", Commit: "c"})
	h.waitStarted(t, id)
	t.Logf("poll %s: pickup latency of a local insert: %s", poll, h.runsOf(id)[0].start.Sub(at).Round(time.Millisecond))
}

func snapshot() (goroutines int, rss, heap uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), vmRSS(), ms.HeapInuse
}

func mb(b uint64) float64 { return float64(int64(b)) / (1 << 20) }

func vmRSS() uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the process's user+system CPU time from /proc/self/stat.
func cpuTime() time.Duration {
	b, _ := os.ReadFile("/proc/self/stat")
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
