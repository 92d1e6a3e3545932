// Package controller is `berth proxy`, the edge controller that runs next to
// the HAProxy it supervises in the proxy container (decision 7). It owns the
// proxy's state directory: it pulls the routing table from the control plane,
// applies it (through the Runtime API when only routes, weights, certificates
// or challenges changed, by a validated seamless reload otherwise), keeps the
// last good table on disk so a restart serves without the control plane,
// answers ACME HTTP-01 challenges and reports its status every second.
package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthpaas/berth/internal/pages"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/proxy/haproxy"
	"github.com/berthpaas/berth/internal/proxy/listeners"
)

// Config is the operator's configuration of one proxy replica.
type Config struct {
	// ControlURL is the control plane's internal listener, e.g.
	// "http://172.18.0.1:8081"; proxy.TablePath and proxy.StatusPath are
	// appended.
	ControlURL string
	// TokenFile holds the proxy token (surrounding white space ignored). It
	// is read for every request, so a rotated token needs no restart.
	TokenFile string
	// StateDir holds what outlives the process: the last good table (with
	// its certificates) and the default certificate. A new proxy started
	// next to the old one on the same volume begins from them.
	StateDir string
	// RunDir holds what is this process's own: HAProxy's configuration,
	// maps, certificate files and sockets (default StateDir/run). Two
	// proxies sharing a StateDir need two RunDirs.
	RunDir string
	// HTTPPort and HTTPSPort are the public listeners (HTTPSPort 0: no TLS);
	// StatsPort serves the Prometheus exporter at /metrics.
	HTTPPort, HTTPSPort, StatsPort int
	// Listeners, when set, is the Unix socket of the listener holder
	// (internal/proxy/listeners): HAProxy then accepts on the sockets the
	// holder hands over instead of binding HTTPPort and HTTPSPort, so a new
	// proxy serves next to the old one on the same sockets.
	Listeners string
	// ChallengeAddr is where the ACME HTTP-01 responder listens, for HAProxy
	// only (default proxy.DefaultChallengeAddr).
	ChallengeAddr string
	// Nameserver resolves tasks.<service> (default proxy.DefaultNameserver,
	// Docker's embedded DNS).
	Nameserver string
	// HAProxyBinary is the haproxy executable ("haproxy" from PATH if empty).
	HAProxyBinary string
	// ID and Node identify the replica in its status reports.
	ID, Node string
	// Log receives the controller's logs and HAProxy's own messages.
	Log *slog.Logger
	// AccessLog receives the access log: one JSON object per request and
	// line, as HAProxy wrote it, buffered for up to 100 ms (nil: os.Stderr,
	// next to Log's records in `berth proxy`). It is written only when Log
	// is enabled at level info, like a record of that level would be, and
	// NoAccessLog is false.
	AccessLog io.Writer
	// NoAccessLog turns the access log off: requests are still counted for
	// the metrics and the Requests view, but no line is written.
	NoAccessLog bool
	// SlotsPerRelease is passed to the renderer (0: its default).
	SlotsPerRelease int
	// Threads is HAProxy's thread count (0: proxy.DefaultThreads of the
	// CPUs this process may run on).
	Threads int
	// StopTimeout bounds the graceful stop of HAProxy when ctx ends; in-flight
	// requests still running then are cut (default DefaultStopTimeout).
	StopTimeout time.Duration
}

// DefaultStopTimeout is Config.StopTimeout's default: within the proxy
// service's default 10 s stop grace period, after which Docker kills it.
const DefaultStopTimeout = 8 * time.Second

// controller is one running proxy replica. Only the pull loop changes what
// HAProxy serves; the status loop and the challenge responder read it.
type controller struct {
	cfg       Config
	log       *slog.Logger
	opts      proxy.Options
	hcfg      haproxy.Config
	proc      *haproxy.Process
	rt        *haproxy.Client
	http      *http.Client
	tablePath string // last good table, as received

	startedAt      time.Time
	haproxyVersion string

	challenges atomic.Pointer[map[string]string]
	traffic    *traffic      // counted from the access log
	accessLog  *accessLog    // HAProxy's log, from the log socket
	kick       chan struct{} // asks the status loop to report now

	mu      sync.Mutex
	current *plan    // what HAProxy serves
	errs    []string // what of the last table received was not applied
}

// Run runs the proxy until ctx ends, then stops HAProxy gracefully. It
// returns an error only when the proxy cannot start.
func Run(ctx context.Context, cfg Config) error {
	c, err := newController(cfg)
	if err != nil {
		return err
	}
	return c.run(ctx)
}

func newController(cfg Config) (*controller, error) {
	if cfg.ControlURL == "" || cfg.TokenFile == "" || cfg.StateDir == "" {
		return nil, errors.New("proxy controller: ControlURL, TokenFile and StateDir are required")
	}
	cfg.ControlURL = strings.TrimSuffix(cfg.ControlURL, "/")
	cfg.ChallengeAddr = cmp.Or(cfg.ChallengeAddr, proxy.DefaultChallengeAddr)
	cfg.Nameserver = cmp.Or(cfg.Nameserver, proxy.DefaultNameserver)
	cfg.HAProxyBinary = cmp.Or(cfg.HAProxyBinary, "haproxy")
	cfg.StopTimeout = cmp.Or(cfg.StopTimeout, DefaultStopTimeout)
	if cfg.ID == "" {
		cfg.ID, _ = os.Hostname()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if _, err := netip.ParseAddrPort(cfg.ChallengeAddr); err != nil {
		return nil, fmt.Errorf("proxy controller: challenge address: %w", err)
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("proxy controller: state dir: %w", err)
	}
	run, err := filepath.Abs(cmp.Or(cfg.RunDir, filepath.Join(dir, "run")))
	if err != nil {
		return nil, fmt.Errorf("proxy controller: run dir: %w", err)
	}
	path := func(name string) string { return filepath.Join(run, name) }
	c := &controller{
		cfg: cfg,
		log: cfg.Log,
		opts: proxy.Options{
			HTTPPort:        cfg.HTTPPort,
			HTTPSPort:       cfg.HTTPSPort,
			StatsPort:       cfg.StatsPort,
			RuntimeSocket:   path("haproxy.sock"),
			LogSocket:       path("access.sock"),
			MapPath:         path("routes.map"),
			PathMapPath:     path("paths.map"),
			SlotsPerRelease: cfg.SlotsPerRelease,
			Threads:         cmp.Or(cfg.Threads, proxy.DefaultThreads(runtime.NumCPU())),
			DefaultCertPath: filepath.Join(dir, "default.pem"),
			CertDir:         path("certs"),
			CrtListPath:     path("certs.list"),
			ServerStatePath: path("server-state"),
			ChallengeAddr:   cfg.ChallengeAddr,
			Nameserver:      cfg.Nameserver,
		},
		hcfg: haproxy.Config{
			Binary:     cfg.HAProxyBinary,
			ConfigPath: path("haproxy.cfg"),
			PIDFile:    path("haproxy.pid"),
			Socket:     path("master.sock"),
		},
		// A little above the control plane's 25 s long poll.
		http:      &http.Client{Timeout: 35 * time.Second},
		tablePath: filepath.Join(dir, "table.json"),
		kick:      make(chan struct{}, 1),
		traffic:   newTraffic(),
	}
	var out io.Writer
	if !cfg.NoAccessLog && cfg.Log.Enabled(context.Background(), slog.LevelInfo) {
		out = cfg.AccessLog
		if out == nil {
			out = os.Stderr
		}
	}
	c.accessLog = newAccessLog(cfg.Log, c.traffic, out)
	c.proc = haproxy.NewProcess(cfg.Log)
	c.rt = haproxy.NewClient(c.opts.RuntimeSocket)
	if _, err := proxy.Render(proxy.Table{}, c.opts); err != nil {
		return nil, fmt.Errorf("proxy controller: %w", err)
	}
	return c, nil
}

func (c *controller) run(ctx context.Context) error {
	c.startedAt = time.Now()
	for _, dir := range []string{filepath.Dir(c.tablePath), c.opts.CertDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("proxy controller: %w", err)
		}
	}
	if err := ensureDefaultCert(c.opts.DefaultCertPath); err != nil {
		return err
	}
	c.haproxyVersion = haproxyVersion(ctx, c.cfg.HAProxyBinary)

	// The responder listens before HAProxy starts routing challenges to it.
	ln, err := net.Listen("tcp", c.cfg.ChallengeAddr)
	if err != nil {
		return fmt.Errorf("proxy controller: challenge responder: %w", err)
	}
	acme := &http.Server{Handler: http.HandlerFunc(c.serveChallenge), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = acme.Serve(ln) }) // ends with Close
	defer func() {
		acme.Close()
		wg.Wait()
	}()

	// HAProxy's log: listening before HAProxy starts, closed after it
	// stopped, so no line is lost on either side.
	logs, err := haproxy.ListenLog(c.opts.LogSocket, c.accessLog)
	if err != nil {
		return fmt.Errorf("proxy controller: access log socket: %w", err)
	}
	defer func() {
		logs.Close()
		c.accessLog.Flush()
	}()

	if c.cfg.Listeners != "" {
		files, err := c.fetchListeners(ctx)
		if err != nil {
			return err
		}
		defer listeners.Close(files)
	}

	// Serve the last good table before asking the control plane anything.
	if err := c.start(ctx); err != nil {
		return err
	}
	c.log.Info("proxy started", "version", c.appliedVersion(), "haproxy", c.haproxyVersion,
		"http_port", c.opts.HTTPPort, "https_port", c.opts.HTTPSPort)

	var loops sync.WaitGroup
	loops.Go(func() { c.pullLoop(ctx) })
	loops.Go(func() { c.statusLoop(ctx) })
	loops.Go(func() { pages.ReleaseAfter(ctx, pages.Settle, c.log) })
	<-ctx.Done()
	loops.Wait()

	// Soft stop: the listeners close, requests in flight finish (challenge
	// requests too: the responder stops after HAProxy).
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.StopTimeout)
	defer cancel()
	if err := c.proc.Stop(stopCtx); err != nil {
		c.log.Warn("haproxy did not stop gracefully", "err", err)
	}
	c.log.Info("proxy stopped")
	return nil
}

// fetchListeners asks the listener holder for the HTTP and HTTPS sockets,
// waiting for it (it starts with the proxy), and hands them to HAProxy as
// fd@3 and fd@4. They are the caller's to close once HAProxy has stopped.
func (c *controller) fetchListeners(ctx context.Context) ([]listeners.Listener, error) {
	for waited := time.Duration(0); ; waited += 200 * time.Millisecond {
		ls, err := listeners.Fetch(ctx, c.cfg.Listeners)
		if err == nil {
			return c.useListeners(ls)
		}
		if waited%(5*time.Second) == 0 {
			c.log.Info("waiting for the listener holder", "socket", c.cfg.Listeners, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("proxy controller: no listeners from %s: %w", c.cfg.Listeners, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// useListeners keeps the sockets HAProxy binds of those the holder handed
// over, and closes the others.
func (c *controller) useListeners(ls []listeners.Listener) ([]listeners.Listener, error) {
	want := []string{"http"}
	if c.opts.HTTPSPort != 0 {
		want = append(want, "https")
	}
	var keep, rest []listeners.Listener
	for _, name := range want {
		i := slices.IndexFunc(ls, func(l listeners.Listener) bool { return l.Name == name })
		if i < 0 {
			listeners.Close(ls)
			return nil, fmt.Errorf("proxy controller: the listener holder at %s has no %s listener", c.cfg.Listeners, name)
		}
		keep = append(keep, ls[i])
	}
	for _, l := range ls {
		if !slices.Contains(want, l.Name) {
			rest = append(rest, l)
		}
	}
	listeners.Close(rest)
	for _, l := range keep {
		c.hcfg.ExtraFiles = append(c.hcfg.ExtraFiles, l.File)
	}
	c.opts.HTTPFD = 3 // ExtraFiles start at fd 3, in order
	if len(keep) == 2 {
		c.opts.HTTPSFD = 4
	}
	return keep, nil
}

// start starts HAProxy on the table saved by the last successful apply, or
// an empty one. A saved table HAProxy refuses is set aside, not fatal.
func (c *controller) start(ctx context.Context) error {
	t, err := loadTable(c.tablePath)
	if err != nil {
		c.log.Error("last good table unreadable, starting with an empty one", "path", c.tablePath, "err", err)
	}
	if err := writeServerStateHeader(c.opts.ServerStatePath); err != nil {
		return err
	}
	p, err := c.startWith(ctx, t)
	if err != nil && t.Version != 0 && ctx.Err() == nil {
		c.log.Error("haproxy refused the last good table, starting with an empty one", "version", t.Version, "err", err)
		p, err = c.startWith(ctx, proxy.Table{})
	}
	if err != nil {
		return fmt.Errorf("proxy controller: start haproxy: %w", err)
	}
	c.commit(p)
	return nil
}

func (c *controller) startWith(ctx context.Context, t proxy.Table) (*plan, error) {
	p, err := c.prepare(t)
	if err != nil {
		return nil, err
	}
	if err := c.writeFiles(p); err != nil {
		return nil, err
	}
	c.traffic.setTable(p.table)
	return p, c.proc.Start(ctx, c.hcfg)
}

// appliedVersion is the version of the table HAProxy serves.
func (c *controller) appliedVersion() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current.table.Version
}

// haproxyVersion returns the upstream version `haproxy -v` prints ("2.6.12"
// from "HAProxy version 2.6.12-1+deb12u4 2026/10/17 …"), or "" when unknown.
func haproxyVersion(ctx context.Context, binary string) string {
	out, err := exec.CommandContext(ctx, binary, "-v").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) < 3 || f[0] != "HAProxy" || f[1] != "version" {
		return ""
	}
	v, _, _ := strings.Cut(f[2], "-")
	return v
}
