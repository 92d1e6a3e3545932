package auth

import (
	"sync"
	"time"
)

// throttle counts failed logins per key (an account or a client address) and
// imposes a growing wait once a key has failed freeAttempts times.
//
// An attempt is counted as a failure before the password is checked and taken
// back when it succeeds, so concurrent guesses cannot all slip past the check
// while the slow hash runs.
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

// begin reserves an attempt for every key. It returns how long to wait
// instead when any key is locked; then nothing is reserved.
func (t *throttle) begin(now time.Time, keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if e := t.entries[k]; e != nil && now.Before(e.lockedUntil) {
			wait = max(wait, e.lockedUntil.Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	t.prune(now)
	for _, k := range keys {
		t.fail(k, now)
	}
	return 0
}

// fail records a failure: 1 s after the sixth, doubling each time, at most 15 min.
func (t *throttle) fail(key string, now time.Time) {
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

// succeeded clears the keys in reset and takes back the reserved attempt of
// the keys in undo (a client address keeps its other failures).
func (t *throttle) succeeded(reset []string, undo ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range reset {
		delete(t.entries, k)
	}
	for _, k := range undo {
		if e := t.entries[k]; e != nil {
			e.failures--
			if e.failures <= freeAttempts {
				e.lockedUntil = time.Time{}
			}
			if e.failures <= 0 {
				delete(t.entries, k)
			}
		}
	}
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
