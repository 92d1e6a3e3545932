package jobs

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"time"
)

// appLocker gives a running PerApp job exclusive use of its app. River OSS
// has no per-key concurrency limit (that is River Pro's partitioned
// concurrency), so a job that cannot take its app's lock snoozes (no attempt
// used) and is woken by the holder when it ends.
//
// The lock must vanish with the process that holds it, or a crash would
// block the app until someone cleans up:
//   - PostgreSQL: a session advisory lock on a connection held for the job's
//     duration; the server releases it when the connection dies.
//   - SQLite: an in-process lock; the embedded database belongs to one berth
//     server, so the process is the only holder there can be.
type appLocker interface {
	// tryLock takes key for job id, or reports ok=false when another job
	// holds it. release must be called once ok is true.
	tryLock(ctx context.Context, key string, id int64) (release func(), ok bool, err error)
}

type localLocker struct {
	mu      sync.Mutex
	holders map[string]int64
}

func newLocalLocker() *localLocker { return &localLocker{holders: map[string]int64{}} }

func (l *localLocker) tryLock(_ context.Context, key string, id int64) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, held := l.holders[key]; held && h != id {
		return nil, false, nil
	}
	l.holders[key] = id
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.holders[key] == id {
			delete(l.holders, key)
		}
	}, true, nil
}

type pgLocker struct{ db *sql.DB }

func (l *pgLocker) tryLock(ctx context.Context, key string, _ int64) (func(), bool, error) {
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	k := lockKey("berth.jobs.app:" + key)
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, k).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, err
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var unlocked bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, k).Scan(&unlocked); err != nil || !unlocked {
			// Never hand a connection that may still hold the lock back to
			// the pool: make database/sql close it, which frees the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, true, nil
}

var (
	_ appLocker = (*localLocker)(nil)
	_ appLocker = (*pgLocker)(nil)
)
