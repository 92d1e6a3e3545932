package edge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// Settings keys owned by the router.
const (
	settingToken   = "proxy.token"         // sealed
	settingVersion = "proxy.table_version" // last version handed out
)

// Options tune the router.
type Options struct {
	// BaseDomain gives every web-facing app a default host (see DefaultHost).
	BaseDomain string
	// LiveTimeout bounds how long AwaitLive waits for the proxies (default 15s).
	LiveTimeout time.Duration
	// DrainTimeout bounds how long AwaitDrained waits (default 30s).
	DrainTimeout time.Duration
	// StaleAfter is how long a silent proxy still counts as running (default 5s).
	StaleAfter time.Duration
	// LongPoll is how long a table request waits for a change (default 25s).
	LongPoll time.Duration
}

// Router keeps the routing table and the proxies' reports.
type Router struct {
	db    *store.DB
	keys  *secrets.Keyring
	log   *slog.Logger
	opts  Options
	token string

	publishMu sync.Mutex // one Publish at a time: versions stay in order

	mu         sync.Mutex
	table      proxy.Table
	sum        [32]byte
	changed    chan struct{} // closed and replaced when the table changes
	challenges map[string]string
	reports    map[string]report
	traffic    *trafficStats // the reports' traffic added up (metrics.go)
	pruned     time.Time     // when traffic was last pruned

	proxy proxyState

	// control is Berth's own public host, served through the proxies by
	// controlHandler on the internal listener.
	control        ControlTarget
	controlHandler http.Handler
}

type report struct {
	status proxy.Status
	at     time.Time
}

// NewRouter loads (or, on a new install, creates) the proxy token and the
// table version, and builds the first table.
func NewRouter(ctx context.Context, db *store.DB, keys *secrets.Keyring, log *slog.Logger, opts Options) (*Router, error) {
	if opts.LiveTimeout == 0 {
		opts.LiveTimeout = 15 * time.Second
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.StaleAfter == 0 {
		opts.StaleAfter = 5 * time.Second
	}
	if opts.LongPoll == 0 {
		opts.LongPoll = 25 * time.Second
	}
	r := &Router{db: db, keys: keys, log: log, opts: opts, changed: make(chan struct{}),
		challenges: map[string]string{}, reports: map[string]report{}, traffic: newTrafficStats(time.Now())}
	tok := make([]byte, 32)
	rand.Read(tok)
	sealed, err := keys.Seal([]byte(base64.RawURLEncoding.EncodeToString(tok)), settingToken)
	if err != nil {
		return nil, err
	}
	if sealed, err = db.InitSetting(ctx, settingToken, sealed); err != nil {
		return nil, fmt.Errorf("edge: proxy token: %w", err)
	}
	plain, err := keys.Open(sealed, settingToken)
	if err != nil {
		return nil, fmt.Errorf("edge: open proxy token: %w", err)
	}
	r.token = string(plain)
	v, err := db.InitSetting(ctx, settingVersion, "0")
	if err != nil {
		return nil, err
	}
	if r.table.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
		return nil, fmt.Errorf("edge: stored table version %q: %w", v, err)
	}
	if _, err := r.Publish(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Token is the secret the proxies present on the internal listener.
func (r *Router) Token() []byte { return []byte(r.token) }

// Table returns the current routing table.
func (r *Router) Table() proxy.Table {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.table
}

// Publish rebuilds the table from the database and, when it changed, gives
// it the next version and wakes the proxies. It returns the current version.
func (r *Router) Publish(ctx context.Context) (int64, error) {
	r.publishMu.Lock()
	defer r.publishMu.Unlock()
	s, err := r.state(ctx)
	if err != nil {
		return 0, fmt.Errorf("edge: read routing state: %w", err)
	}
	t := Build(s)
	b, err := json.Marshal(t)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(b)
	r.mu.Lock()
	if sum == r.sum {
		v := r.table.Version
		r.mu.Unlock()
		return v, nil
	}
	t.Version = r.table.Version + 1
	r.mu.Unlock()
	// The version is stored before anyone sees it, so a restarted control
	// plane never hands out a version a proxy already has with other content.
	if err := r.db.SetSetting(ctx, settingVersion, strconv.FormatInt(t.Version, 10)); err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.table, r.sum = t, sum
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return t.Version, nil
}

func (r *Router) state(ctx context.Context) (State, error) {
	s := State{BaseDomain: r.opts.BaseDomain}
	var err error
	if s.Apps, err = r.db.AppsInCluster(ctx, store.LocalCluster); err != nil {
		return s, err
	}
	if s.Places, err = r.db.AppPlaces(ctx); err != nil {
		return s, err
	}
	if s.Current, err = r.db.CurrentDeployments(ctx); err != nil {
		return s, err
	}
	if s.Active, err = r.db.ActiveDeployments(ctx); err != nil {
		return s, err
	}
	if s.Domains, err = r.db.AllDomains(ctx); err != nil {
		return s, err
	}
	certs, err := r.db.AllCertificates(ctx)
	if err != nil {
		return s, err
	}
	for _, c := range certs {
		if c.CertPEM == "" {
			continue
		}
		key, err := r.keys.Open(c.SealedKey, store.CertKeyAAD(c.Host))
		if err != nil {
			r.log.Error("edge: open certificate key; the host is served with the fallback certificate", "host", c.Host, "err", err)
			continue
		}
		s.Certs = append(s.Certs, Cert{Host: c.Host, CertPEM: c.CertPEM, KeyPEM: string(key)})
	}
	r.mu.Lock()
	if r.control.Host != "" && r.control.Addr != "" {
		c := r.control
		s.Control = &c
	}
	s.Challenges = make(map[string]string, len(r.challenges))
	for k, v := range r.challenges {
		s.Challenges[k] = v
	}
	r.mu.Unlock()
	return s, nil
}

// Replica is one proxy as its reports describe it.
type Replica struct {
	proxy.Status
	LastReport time.Time `json:"last_report"`
	// Fresh is false when the proxy has not reported for a while (stopped,
	// or unable to reach the control plane).
	Fresh bool `json:"fresh"`
}

// Replicas lists the proxies that reported, by id.
func (r *Router) Replicas() []Replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	out := make([]Replica, 0, len(r.reports))
	for _, rep := range r.reports {
		out = append(out, Replica{Status: rep.status, LastReport: rep.at, Fresh: now.Sub(rep.at) < r.opts.StaleAfter})
	}
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// ErrTimeout is wrapped by AwaitLive and AwaitDrained when the proxies did
// not get there in time; the message names the replicas that lag.
var ErrTimeout = errors.New("edge: timed out")

// AwaitLive waits until every running proxy serves table version v or
// newer. With no proxy running there is nothing to wait for.
func (r *Router) AwaitLive(ctx context.Context, v int64) error {
	return r.await(ctx, r.opts.LiveTimeout, func(st proxy.Status) string {
		if st.Version >= v {
			return ""
		}
		return fmt.Sprintf("proxy %s serves table version %d, not %d yet", st.ID, st.Version, v)
	})
}

// AwaitReady waits until every running proxy sees at least n servers of
// service pass their health check, so that moving traffic to it cannot meet
// a backend with nothing up.
func (r *Router) AwaitReady(ctx context.Context, service string, n int) error {
	if !r.routed(service) {
		return nil // no domain leads to it: the proxies do not know it
	}
	n = min(n, proxy.DefaultSlotsPerRelease) // a release gets that many servers
	return r.await(ctx, r.opts.LiveTimeout, func(st proxy.Status) string {
		if up := st.Releases[service].Up; up < n {
			return fmt.Sprintf("proxy %s sees %d of %d servers of %s up", st.ID, up, n, service)
		}
		return ""
	})
}

// AwaitDrained waits until no running proxy has requests in flight to
// service, and no HAProxy worker older than the last reload is left (such a
// worker routes one more request per idle connection by the table it
// started with, which may still name service). It returns ErrTimeout
// (wrapped) after the drain timeout.
func (r *Router) AwaitDrained(ctx context.Context, service string) error {
	if !r.routed(service) {
		return nil
	}
	return r.await(ctx, r.opts.DrainTimeout, func(st proxy.Status) string {
		if n := st.Releases[service].Sessions; n > 0 {
			return fmt.Sprintf("proxy %s still has %d request(s) in flight to %s", st.ID, n, service)
		}
		if st.OldWorkers > 0 {
			return fmt.Sprintf("proxy %s still has %d HAProxy worker(s) from before its last reload", st.ID, st.OldWorkers)
		}
		return ""
	})
}

// routed reports whether the current table sends traffic to service.
func (r *Router) routed(service string) bool {
	for _, a := range r.Table().Apps {
		for _, rel := range a.Releases {
			if rel.Service == service {
				return true
			}
		}
	}
	return false
}

// await polls the fresh reports until pending finds nothing pending in any.
func (r *Router) await(ctx context.Context, timeout time.Duration, pending func(proxy.Status) string) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var lag []string
		for _, rep := range r.Replicas() {
			if rep.Fresh {
				if why := pending(rep.Status); why != "" {
					lag = append(lag, why)
				}
			}
		}
		if len(lag) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s: %s", ErrTimeout, timeout, strings.Join(lag, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Handler serves the internal listener: the table (long poll) and the
// status reports, both behind the proxy token, and, when the control plane
// has a public host, everything else as the control plane itself (the
// proxies forward that host's requests here).
func (r *Router) Handler() http.Handler {
	internal := http.NewServeMux()
	internal.HandleFunc("GET "+proxy.TablePath, r.serveTable)
	internal.HandleFunc("POST "+proxy.StatusPath, r.serveStatus)
	mux := http.NewServeMux()
	mux.Handle("/internal/", r.authorized(internal))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		h := r.controlHandler
		r.mu.Unlock()
		if h == nil {
			http.NotFound(w, req)
			return
		}
		h.ServeHTTP(w, forwarded(req))
	})
	return mux
}

// forwarded makes the client HAProxy forwards for the request's peer: it
// appends the client's address as the last X-Forwarded-For value, so
// throttling and logs see the real client, not the proxy.
func forwarded(req *http.Request) *http.Request {
	vals := req.Header.Values("X-Forwarded-For")
	if len(vals) == 0 {
		return req
	}
	parts := strings.Split(vals[len(vals)-1], ",")
	ip := strings.TrimSpace(parts[len(parts)-1])
	if net.ParseIP(ip) == nil {
		return req
	}
	r2 := req.Clone(req.Context())
	r2.RemoteAddr = net.JoinHostPort(ip, "0")
	return r2
}

// ServeControlPlane routes host (the public URL's) through the proxies to h;
// with https the host gets an ACME certificate and HTTP redirects to HTTPS
// once it is issued. It forgets the certificates of an earlier public host.
func (r *Router) ServeControlPlane(ctx context.Context, host string, https bool, h http.Handler) error {
	r.mu.Lock()
	r.control.Host, r.control.HTTPS, r.controlHandler = host, https, h
	r.mu.Unlock()
	if err := r.db.KeepInstallCertificate(ctx, host); err != nil {
		return err
	}
	if https {
		if err := r.db.EnsureCertificate(ctx, time.Now(), "", host); err != nil {
			return err
		}
	}
	_, err := r.Publish(ctx)
	return err
}

func (r *Router) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(r.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth-proxy"`)
			http.Error(w, "proxy token missing or wrong", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

func (r *Router) serveTable(w http.ResponseWriter, req *http.Request) {
	after, err := strconv.ParseInt(req.URL.Query().Get("after"), 10, 64)
	if err != nil && req.URL.Query().Get("after") != "" {
		http.Error(w, "after: must be a table version (an integer)", http.StatusBadRequest)
		return
	}
	timer := time.NewTimer(r.opts.LongPoll)
	defer timer.Stop()
	for {
		r.mu.Lock()
		t, changed := r.table, r.changed
		r.mu.Unlock()
		// A proxy ahead of us (a restored database) takes the table too.
		if t.Version != after {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(t)
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-req.Context().Done():
			return
		}
	}
}

func (r *Router) serveStatus(w http.ResponseWriter, req *http.Request) {
	var st proxy.Status
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&st); err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusBadRequest)
		return
	}
	if st.ID == "" || len(st.ID) > 128 {
		http.Error(w, "id: required, at most 128 characters", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	// Forget replicas silent for a long time (replaced containers).
	for id, rep := range r.reports {
		if time.Since(rep.at) > time.Hour {
			delete(r.reports, id)
		}
	}
	now := time.Now()
	r.observeTraffic(st, now)
	// The traffic is added up; the reports keep what the proxy serves.
	st.Traffic, st.Recent = nil, nil
	r.reports[st.ID] = report{status: st, at: now}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Present publishes an ACME HTTP-01 challenge and waits until every running
// proxy answers it (certs.HTTPSolver).
func (r *Router) Present(ctx context.Context, _, token, keyAuth string) error {
	r.mu.Lock()
	r.challenges[token] = keyAuth
	r.mu.Unlock()
	v, err := r.Publish(ctx)
	if err != nil {
		return err
	}
	return r.AwaitLive(ctx, v)
}

// CleanUp withdraws a challenge (certs.HTTPSolver).
func (r *Router) CleanUp(ctx context.Context, _, token, _ string) error {
	r.mu.Lock()
	delete(r.challenges, token)
	r.mu.Unlock()
	_, err := r.Publish(ctx)
	return err
}
