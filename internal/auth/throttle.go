package auth

import (
	"sync"
	"time"
)

// throttle counts failed logins per key (an account or a client address) and
// imposes a growing wait once a key has failed freeAttempts times.
type throttle struct {
	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures    int
	lockedUntil time.Time
	lastFailure time.Time
}

const (
	freeAttempts   = 5
	maxLockout     = 15 * time.Minute
	throttleForget = time.Hour
)

func newThrottle() *throttle { return &throttle{entries: map[string]*throttleEntry{}} }

// wait returns how long the key must wait before its next attempt.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil || !now.Before(e.lockedUntil) {
		return 0
	}
	return e.lockedUntil.Sub(now)
}

// fail records a failure: 1 s after the sixth, doubling each time, at most 15 min.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(now)
	e := t.entries[key]
	if e == nil {
		e = &throttleEntry{}
		t.entries[key] = e
	}
	if now.Sub(e.lastFailure) > throttleForget {
		e.failures = 0
	}
	e.failures++
	e.lastFailure = now
	if over := e.failures - freeAttempts; over > 0 {
		d := time.Second << min(over-1, 10)
		e.lockedUntil = now.Add(min(d, maxLockout))
	}
}

func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

func (t *throttle) prune(now time.Time) {
	if len(t.entries) < 1024 {
		return
	}
	for k, e := range t.entries {
		if now.Sub(e.lastFailure) > throttleForget && !now.Before(e.lockedUntil) {
			delete(t.entries, k)
		}
	}
}
