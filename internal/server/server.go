// Package server wires the control plane together: it is the one package that
// imports the store, auth, the orchestrator, the API and the UI, and it owns the
// HTTP server's lifecycle. Only cmd/berth imports it.
package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/certs"
	"github.com/berthpaas/berth/internal/config"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/mail"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/orchestrator/swarm"
	"github.com/berthpaas/berth/internal/pages"
	"github.com/berthpaas/berth/internal/probe"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/version"
	"github.com/berthpaas/berth/internal/web"
	"github.com/docker/docker/client"
)

// Cluster is what the control plane drives: an engine that runs releases.
type Cluster interface {
	orchestrator.Engine
	orchestrator.Releases
	orchestrator.Edge
}

// Server is a running control plane's HTTP side and background loops.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	db      *store.DB
	engine  Cluster
	auth    *auth.Service
	deploys *deploy.Engine
	apps    *deploy.Manager
	router  *edge.Router
	handler http.Handler
}

// New assembles the control plane on an open store, keyring and cluster.
func New(cfg config.Config, log *slog.Logger, db *store.DB, keys *secrets.Keyring, engine Cluster, router *edge.Router, installID string, mailer auth.Mailer) *Server {
	s := &Server{cfg: cfg, log: log, db: db, engine: engine, router: router}
	s.deploys = deploy.NewEngine(db, engine, keys, log, deploy.Options{InstallID: installID, Router: router})
	proxyStatus := func(ctx context.Context, orgID string) (edge.ProxyStatus, error) {
		return router.Status(ctx, engine, orgID)
	}
	apps := deploy.NewManager(db, keys, engine, s.deploys)
	s.apps = apps
	if host, _ := publicHost(cfg); host != "" {
		apps.WithReservedHost(host)
	}
	// Run refuses to start with a provider that does not build.
	apps.WithWildcards(cfg.ACMEDNSProvider != "")
	s.auth = auth.New(db, auth.Options{SessionIdle: cfg.SessionIdle, SessionLifetime: cfg.SessionLifetime, Keys: keys, Mailer: mailer})
	secure := len(cfg.PublicURL) > 8 && cfg.PublicURL[:8] == "https://"
	setupAllowed := func(r *http.Request) bool { return auth.SetupAllowed(r, cfg.PublicURL) }

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	metrics := newHTTPMetrics()
	metrics.registry.MustRegister(router.Collector())
	mux.Handle("GET /metrics", metrics.handler())
	auditLog := audit.NewRecorder(db, log, nil) // one recorder: the API and the UI append to the same chains
	humaAPI := api.Register(mux, api.Deps{
		Auth: s.auth, Engine: engine, Log: log, SecureCookies: secure,
		SessionLifetime: cfg.SessionLifetime, SetupAllowed: setupAllowed, Apps: apps, ProxyStatus: proxyStatus,
		Requests: router.AppRequests, Audit: auditLog, PublicURL: cfg.PublicURL,
	})
	spec := sync.OnceValue(func() []byte {
		b, err := json.Marshal(humaAPI.OpenAPI())
		if err != nil {
			log.Error("render OpenAPI document", "err", err)
		}
		return b
	})
	web.Register(mux, web.Deps{
		Auth: s.auth, Engine: engine, Log: log, SecureCookies: secure,
		SessionLifetime: cfg.SessionLifetime, SetupAllowed: setupAllowed, OpenAPI: spec, Apps: apps, ProxyStatus: proxyStatus,
		Requests: router.AppRequests, Audit: auditLog, PublicURL: cfg.PublicURL,
	})
	s.handler = requestID(observe(log, metrics, securityHeaders(limitBody(mux))))
	return s
}

// Handler is the control plane's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when the database and the Docker Engine both answer.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "engine": "ok"}
	code := http.StatusOK
	if err := s.db.Ping(ctx); err != nil {
		checks["database"], code = "unreachable", http.StatusServiceUnavailable
	}
	if err := s.engine.Ping(ctx); err != nil {
		checks["engine"], code = "unreachable", http.StatusServiceUnavailable
	}
	writeJSON(w, code, checks)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Run starts the control plane and serves until ctx is cancelled, then shuts
// down gracefully within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	start := time.Now()
	// One server per data directory; a restore takes the same lock.
	release, err := store.LockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer release()
	db, err := store.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := secrets.Load(cfg.DataDir, os.Getenv)
	if err != nil {
		return err
	}
	// Release containers run their health checks with this very binary
	// (`berth probe`), bind-mounted read-only: images FROM scratch have no curl.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate the berth executable for health probes: %w", err)
	}
	mount := swarm.ProbeMount{HostPath: exe, Args: []string{"probe"}}
	if cfg.ProbePath != "" {
		if err := copyExecutable(exe, cfg.ProbePath); err != nil {
			return fmt.Errorf("probe-path: %w", err)
		}
		mount.HostPath = cfg.ProbePath
	}
	// A berth built with cgo cannot start in images without its loader.
	if interp, err := probe.Interpreter(mount.HostPath); err != nil {
		log.Warn("health probe: not a Linux executable; health checks may not run", "probe", mount.HostPath, "err", err)
	} else if interp != "" {
		log.Warn("this berth binary is dynamically linked (built with cgo): health checks of apps whose images lack "+interp+
			" (Alpine, distroless, scratch) cannot run; "+probe.BuildStatic, "probe", mount.HostPath)
		mount.Interpreter = interp
	}
	engine, err := swarm.New(cfg.DockerHost, swarm.WithProbe(mount))
	if err != nil {
		return fmt.Errorf("docker engine: %w", err)
	}
	defer engine.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	installID, err := db.InstallID(ctx)
	if err != nil {
		return err
	}
	router, err := edge.NewRouter(ctx, db, keys, log, edge.Options{BaseDomain: cfg.BaseDomain, DrainTimeout: cfg.DrainTimeout})
	if err != nil {
		return err
	}
	mailer, err := mailerOf(cfg)
	if err != nil {
		return err
	}
	s := New(cfg, log, db, keys, engine, router, installID, mailer)
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	loops, stopLoops := context.WithCancel(ctx)
	defer func() { stopLoops(); wg.Wait() }()
	wg.Go(func() { s.bootstrapLoop(loops) })
	wg.Go(func() { s.sessionSweeper(loops) })
	wg.Go(func() { s.deploys.Run(loops) })
	wg.Go(func() { s.deploys.Reconcile(loops, 30*time.Second) })
	wg.Go(func() { s.publishLoop(loops) })
	acme, err := acmeConfig(cfg)
	if err != nil {
		return err
	}
	wg.Go(func() { router.RunCertificates(loops, acme) })
	queue, err := s.startBuilds(loops)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		queue.Close(ctx)
	}()
	wg.Go(func() { s.sweepBuilds(loops) })
	if host, https := publicHost(cfg); cfg.Proxy && host != "" {
		if err := router.ServeControlPlane(ctx, host, https, s.Handler()); err != nil {
			return err
		}
	}
	if cfg.Proxy {
		wg.Go(func() {
			router.RunProxy(loops, engine, edge.ProxyConfig{
				Name: cfg.ProxyName, BaseImage: cfg.ProxyBaseImage, Binary: exe, HTTPPort: cfg.ProxyHTTPPort,
				HTTPSPort: cfg.ProxyHTTPSPort, Listen: cfg.InternalListen, InstallID: installID, NoAccessLog: !cfg.ProxyAccessLog,
			})
		})
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	wg.Go(func() { pages.ReleaseAfter(loops, pages.Settle, log) })
	log.Info("berth server listening", "addr", ln.Addr().String(), "url", localURL(ln.Addr()),
		"database", string(db.Dialect()), "version", version.Get().Version, "startup_ms", time.Since(start).Milliseconds())

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "deadline", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// startBuilds opens the job queue on the store's database, registers the
// build job and starts working it.
func (s *Server) startBuilds(ctx context.Context) (*jobs.Queue, error) {
	workers := jobs.NewWorkers()
	if err := jobs.Register(workers, jobs.BuildKind(s.cfg.BuildTimeout), s.apps.RunBuild); err != nil {
		return nil, err
	}
	queue, err := jobs.Open(ctx, s.db.SQL(), s.db.Dialect(), jobs.Options{Workers: workers, Logger: s.log})
	if err != nil {
		return nil, err
	}
	copts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if s.cfg.DockerHost != "" {
		copts = append(copts, client.WithHost(s.cfg.DockerHost))
	}
	docker, err := client.NewClientWithOpts(copts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for builds: %w", err)
	}
	workDir := filepath.Join(s.cfg.DataDir, "builds")
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, fmt.Errorf("build workspace: %w", err)
	}
	s.apps.WithBuilds(deploy.BuildConfig{
		Queue: queue, Docker: docker, WorkDir: workDir, KeepImages: s.cfg.BuildKeepImages,
		MaxCacheBytes: int64(s.cfg.BuildCacheMax) << 20, GitCAFile: s.cfg.GitCAFile, Registry: s.cfg.BuildRegistry,
		PrivateHosts: s.cfg.GitPrivateHosts, PublicURL: s.cfg.PublicURL, Log: s.log,
	})
	if err := queue.Start(ctx); err != nil {
		return nil, err
	}
	return queue, nil
}

// sweepBuilds ends builds whose job ended without them, at start and then
// every 30 s: a build never stays "running" after its server died.
func (s *Server) sweepBuilds(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if err := s.apps.SweepBuilds(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep builds", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bootstrapLoop prepares the engine (Swarm, edge network) and retries until it
// succeeds, so a Docker Engine started after Berth is picked up by itself.
func (s *Server) bootstrapLoop(ctx context.Context) {
	opts := orchestrator.BootstrapOptions{
		InitSwarm: s.cfg.SwarmBootstrap, AdvertiseAddr: s.cfg.AdvertiseAddr,
		EdgeNetwork: orchestrator.EdgeNetwork, EdgeSubnet: s.cfg.EdgeSubnet,
	}
	delay := time.Second
	for {
		res, err := s.engine.Bootstrap(ctx, opts)
		if err == nil {
			s.log.Info("docker engine ready", "swarm_initialized", res.SwarmInitialized, "edge_network_created", res.NetworkCreated)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("docker engine not ready; retrying", "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// publicHost is the DNS name of --public-url, which the edge proxy routes
// to the control plane, and whether it is https. Loopback names and IP
// addresses are not routed (nothing to route or certify).
func publicHost(cfg config.Config) (string, bool) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || u.Hostname() == "" || u.Port() != "" && u.Port() != "443" && u.Port() != "80" {
		return "", false
	}
	h := strings.ToLower(u.Hostname())
	if h == "localhost" || net.ParseIP(h) != nil {
		return "", false
	}
	return h, u.Scheme == "https"
}

// copyExecutable puts a copy of the running binary at path unless an
// identical one is there, atomically: releases running with the old copy
// keep it (their mount holds the old file).
func copyExecutable(exe, path string) error {
	want, err := os.ReadFile(exe)
	if err != nil {
		return err
	}
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, want, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mailerOf is the SMTP sender of --smtp-url, or nil without one.
func mailerOf(cfg config.Config) (auth.Mailer, error) {
	if cfg.SMTPURL == "" {
		if cfg.SMTPFrom != "" {
			return nil, errors.New("smtp-from: set, but no --smtp-url to send with")
		}
		return nil, nil
	}
	return mail.New(mail.Config{URL: cfg.SMTPURL, From: cfg.SMTPFrom})
}

// acmeConfig reads the ACME settings; a CA file that does not load stops
// the start, since every issuance would fail.
func acmeConfig(cfg config.Config) (edge.ACMEConfig, error) {
	c := edge.ACMEConfig{DirectoryURL: cfg.ACMEDirectory, Email: cfg.ACMEEmail, EABKeyID: cfg.ACMEEABKeyID, EABHMAC: cfg.ACMEEABHMACKey}
	if cfg.ACMEDNSProvider != "" {
		settings, err := dnsSettings(cfg.ACMEDNSSettings)
		if err != nil {
			return c, err
		}
		if c.DNS, err = certs.NewDNSProvider(cfg.ACMEDNSProvider, settings); err != nil {
			// The FieldError names the setting, never its value.
			return c, fmt.Errorf("acme-dns-provider %s: %w", cfg.ACMEDNSProvider, err)
		}
	} else if cfg.ACMEDNSSettings != "" {
		return c, fmt.Errorf("acme-dns-settings: set, but no --acme-dns-provider to use them")
	}
	if cfg.ACMECAFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(cfg.ACMECAFile)
	if err != nil {
		return c, fmt.Errorf("acme-ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return c, fmt.Errorf("acme-ca-file %s: no PEM certificate in it", cfg.ACMECAFile)
	}
	c.Roots = pool
	return c, nil
}

// dnsSettings parses --acme-dns-settings: key=value pairs separated by
// commas. A part without '=' continues the previous value, so list settings
// (resolvers=a:53,b:53) need no escaping. Errors name keys and positions,
// never values: they hold secrets.
func dnsSettings(s string) (map[string]string, error) {
	out := map[string]string{}
	last := ""
	for i, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if last == "" {
				return nil, fmt.Errorf("acme-dns-settings: item %d is not key=value", i+1)
			}
			out[last] += "," + part
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz_") != "" {
			// Likely a value with a comma or '=' in it: do not show it.
			return nil, fmt.Errorf("acme-dns-settings: item %d does not start with a setting name (a–z and _) and '='", i+1)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("acme-dns-settings: %s is set twice", k)
		}
		out[k], last = strings.TrimSpace(v), k
	}
	return out, nil
}

// publishLoop rebuilds the routing table every few seconds. Every change
// made through Berth publishes at once; this catches what happens without a
// call (a failed publish, a database edited by another control plane).
func (s *Server) publishLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.router.Publish(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("publish routing table", "err", err)
		}
	}
}

// sessionSweeper deletes expired sessions every hour.
func (s *Server) sessionSweeper(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.db.DeleteExpiredSessions(ctx, time.Now(), s.cfg.SessionIdle); err != nil && ctx.Err() == nil {
			s.log.Warn("delete expired sessions", "err", err)
		} else if n > 0 {
			s.log.Info("deleted expired sessions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func localURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(tcp.Port)))
}
