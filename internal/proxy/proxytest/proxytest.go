// Package proxytest fakes the control plane's internal listener for tests
// and benchmarks of `berth proxy`: the token-checked table long poll and
// the status reports. Only tests import it.
package proxytest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
)

// ControlPlane serves proxy.TablePath and proxy.StatusPath at URL.
type ControlPlane struct {
	URL          string
	srv          *httptest.Server
	longPoll     time.Duration
	onStatus     func(proxy.Status)
	unauthorized atomic.Int64

	mu      sync.Mutex
	table   proxy.Table
	changed chan struct{} // closed and replaced by every SetTable
}

// NewControlPlane starts a fake that accepts token, answers a table request
// after at most longPoll, and hands every status report to onStatus. It
// stops at the end of the test.
func NewControlPlane(tb testing.TB, token string, longPoll time.Duration, onStatus func(proxy.Status)) *ControlPlane {
	tb.Helper()
	cp := &ControlPlane{longPoll: longPoll, onStatus: onStatus, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+proxy.TablePath, cp.serveTable)
	mux.HandleFunc("POST "+proxy.StatusPath, cp.serveStatus)
	cp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			cp.unauthorized.Add(1)
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	cp.URL = cp.srv.URL
	tb.Cleanup(cp.srv.Close)
	return cp
}

// Close stops serving (a control plane that went away).
func (cp *ControlPlane) Close() { cp.srv.Close() }

// Unauthorized counts the requests refused for their token.
func (cp *ControlPlane) Unauthorized() int64 { return cp.unauthorized.Load() }

// SetTable makes t the table the proxy pulls.
func (cp *ControlPlane) SetTable(t proxy.Table) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.table = t
	close(cp.changed)
	cp.changed = make(chan struct{})
}

// Table is the table served now.
func (cp *ControlPlane) Table() proxy.Table {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.table
}

func (cp *ControlPlane) serveTable(w http.ResponseWriter, r *http.Request) {
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil {
		http.Error(w, "after: "+err.Error(), http.StatusBadRequest)
		return
	}
	wait := time.NewTimer(cp.longPoll)
	defer wait.Stop()
	for {
		cp.mu.Lock()
		t, changed := cp.table, cp.changed
		cp.mu.Unlock()
		if t.Version > after {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(t)
			return
		}
		select {
		case <-changed:
		case <-wait.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (cp *ControlPlane) serveStatus(w http.ResponseWriter, r *http.Request) {
	var s proxy.Status
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if cp.onStatus != nil {
		cp.onStatus(s)
	}
	w.WriteHeader(http.StatusNoContent)
}
