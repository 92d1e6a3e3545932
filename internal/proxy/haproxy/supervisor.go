// Package haproxy owns a running HAProxy: it supervises the master-worker
// process (start, restart on crash, validated seamless reload, graceful stop)
// and talks to its Runtime API to change routing without reloads.
//
// It knows nothing about Berth's routing table; the configuration renderer in
// the parent package produces the files this package runs.
package haproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config says which HAProxy to run and where its files live.
type Config struct {
	// Binary is the haproxy executable; "haproxy" from PATH when empty.
	Binary string
	// ConfigPath is the configuration the controller writes. It is never run
	// directly: Start and Reload validate it and copy it to ActivePath, which
	// is what HAProxy loads, so a crash restart always uses the last good file.
	ConfigPath string
	// PIDFile is passed to haproxy -p (the master's PID).
	PIDFile string
	// Socket is the master CLI socket (haproxy -S). The supervisor uses it to
	// reload and to see workers; the Runtime API client uses the stats socket
	// declared in the configuration instead (see Client).
	Socket string

	// ExtraFiles are passed to HAProxy (and to its configuration check) as
	// file descriptors 3, 4, …: listening sockets the configuration binds
	// as fd@3, fd@4, handed over by a listener holder.
	ExtraFiles []*os.File

	// MinBackoff and MaxBackoff bound the restart delay after a crash
	// (defaults 100ms and 10s). A process that stayed up for StableAfter
	// (default 30s) resets the delay.
	MinBackoff, MaxBackoff, StableAfter time.Duration
}

// ActivePath is the configuration HAProxy actually loads: the last one that
// passed validation.
func (c Config) ActivePath() string { return c.ConfigPath + ".active" }

func (c Config) withDefaults() (Config, error) {
	if c.Binary == "" {
		c.Binary = "haproxy"
	}
	bin, err := exec.LookPath(c.Binary)
	if err != nil {
		return c, fmt.Errorf("haproxy: binary: %w", err)
	}
	c.Binary = bin
	if c.ConfigPath == "" || c.Socket == "" {
		return c, errors.New("haproxy: Config.ConfigPath and Config.Socket are required")
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.StableAfter <= 0 {
		c.StableAfter = 30 * time.Second
	}
	return c, nil
}

// ConfigError is a configuration refused by `haproxy -c`.
type ConfigError struct {
	Path   string
	Output string // what haproxy printed; names the file and line
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("haproxy: invalid configuration %s: %s", e.Path, strings.TrimSpace(e.Output))
}

// ErrNotRunning is returned by operations on a Process that is not started or
// already stopped.
var ErrNotRunning = errors.New("haproxy: process not running")

// Process supervises one HAProxy master (master-worker mode, -W). It owns one
// goroutine, started by Start and ended by Stop, that restarts the master with
// exponential backoff when it exits unexpectedly.
type Process struct {
	log *slog.Logger

	reloadMu sync.Mutex // serialises Reload and the config swap

	mu       sync.Mutex
	cfg      Config
	cmd      *exec.Cmd     // current master; nil between crash and restart
	exited   chan struct{} // closed when cmd has exited
	ready    chan struct{} // closed once cmd's master CLI lists a worker
	stopping bool
	stopCh   chan struct{}
	done     chan struct{}
}

// NewProcess returns a Process that logs to log.
func NewProcess(log *slog.Logger) *Process {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Process{log: log}
}

// Start validates cfg.ConfigPath, starts HAProxy and returns once the master
// CLI answers and a worker is running (or ctx ends). A configuration that does
// not validate is refused with *ConfigError and nothing is started.
func (p *Process) Start(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.done != nil {
		p.mu.Unlock()
		return errors.New("haproxy: process already started")
	}
	p.cfg = cfg
	p.mu.Unlock()

	if err := p.promote(ctx, cfg); err != nil {
		return err
	}
	cmd, exited, ready, err := p.spawn(cfg)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd, p.exited, p.ready = cmd, exited, ready
	p.stopCh, p.done = make(chan struct{}), make(chan struct{})
	p.mu.Unlock()
	go p.supervise(cfg)

	select {
	case <-ready:
		return nil
	case <-exited:
		err = fmt.Errorf("haproxy: exited during startup: %s", cmd.ProcessState)
	case <-ctx.Done():
		err = fmt.Errorf("haproxy: waiting for first worker: %w", ctx.Err())
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = p.Stop(stopCtx)
	return err
}

// PID returns the current master's PID, or 0 between a crash and the restart.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Reload validates cfg.ConfigPath with `haproxy -c`; a refused file returns
// *ConfigError and the running configuration keeps serving (and stays the one
// a crash restart uses). A valid file becomes the active one and the master is
// told to reload through the master CLI: it re-executes itself (same PID),
// starts new workers that take over the listening sockets, and soft-stops the
// old ones, which finish their in-flight requests. Reload returns once a new
// worker is running.
func (p *Process) Reload(ctx context.Context) error {
	p.mu.Lock()
	cfg, running := p.cfg, p.done != nil && !p.stopping
	p.mu.Unlock()
	if !running {
		return ErrNotRunning
	}
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()

	if err := p.promote(ctx, cfg); err != nil {
		return err
	}
	before, err := p.Workers(ctx)
	if err != nil {
		return fmt.Errorf("haproxy: reload: %w", err)
	}
	// The master closes the connection without a reply while it re-executes.
	if _, err := masterCommand(ctx, cfg.Socket, "reload"); err != nil {
		return fmt.Errorf("haproxy: reload: %w", err)
	}
	if _, err := p.waitWorker(ctx, before); err != nil {
		return fmt.Errorf("haproxy: reload: waiting for new worker: %w", err)
	}
	p.log.Info("haproxy reloaded", "config", cfg.ConfigPath)
	return nil
}

// Stop soft-stops HAProxy (SIGUSR1: listeners close, in-flight requests
// finish). When ctx ends first it sends SIGTERM (hard stop), and SIGKILL if
// that is not enough within five seconds. The supervising goroutine has ended
// when Stop returns.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.done == nil {
		p.mu.Unlock()
		return ErrNotRunning
	}
	if !p.stopping {
		p.stopping = true
		close(p.stopCh)
	}
	cmd, exited, ready, done := p.cmd, p.exited, p.ready, p.done
	p.mu.Unlock()

	if cmd == nil { // between a crash and a restart: nothing to signal
		<-done
		return nil
	}
	// A master still starting up blocks its signals and would act on
	// SIGUSR1 late; let it finish first.
	select {
	case <-ready:
	case <-exited:
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-exited:
		<-done
		return nil
	case <-ctx.Done():
	}
	p.log.Warn("haproxy soft stop deadline passed, sending SIGTERM", "pid", cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	<-done
	return fmt.Errorf("haproxy: soft stop: %w", ctx.Err())
}

// Workers returns the PIDs of the current (not old, draining) workers, from
// the master CLI's `show proc`.
func (p *Process) Workers(ctx context.Context) ([]int, error) {
	cur, _, err := p.workers(ctx)
	return cur, err
}

// OldWorkers returns the PIDs of the workers a reload left behind: they
// still hold connections accepted under an earlier configuration.
func (p *Process) OldWorkers(ctx context.Context) ([]int, error) {
	_, old, err := p.workers(ctx)
	return old, err
}

func (p *Process) workers(ctx context.Context) (cur, old []int, err error) {
	p.mu.Lock()
	sock := p.cfg.Socket
	p.mu.Unlock()
	out, err := masterCommand(ctx, sock, "show proc")
	if err != nil {
		return nil, nil, err
	}
	cur, old = parseShowProc(out)
	return cur, old, nil
}

// parseShowProc returns the PIDs listed under "# workers" and under
// "# old workers" in `show proc`:
//
//	#<PID>          <type>          <reloads>       <uptime>        <version>
//	1162            master          5               0d00h02m07s     2.6.12
//	# workers
//	1271            worker          0               0d00h00m00s     2.6.12
//	# old workers
//	1233            worker          3               0d00h00m43s     2.6.12
func parseShowProc(out string) (cur, old []int) {
	section := ""
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			section = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != "worker" {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch section {
		case "workers":
			cur = append(cur, pid)
		case "old workers":
			old = append(old, pid)
		}
	}
	return cur, old
}

// waitWorker polls the master CLI until a current worker exists that is not
// in before.
func (p *Process) waitWorker(ctx context.Context, before []int) (int, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var lastErr error
	for {
		pids, err := p.Workers(ctx)
		lastErr = err
		for _, pid := range pids {
			if !containsInt(before, pid) {
				return pid, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, errors.Join(ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// promote validates ConfigPath and makes it the active configuration. The
// bytes are read once and the copy is what gets validated, so a file being
// rewritten concurrently cannot slip past the check.
func (p *Process) promote(ctx context.Context, cfg Config) error {
	data, err := os.ReadFile(cfg.ConfigPath)
	if err != nil {
		return fmt.Errorf("haproxy: read config: %w", err)
	}
	dir := filepath.Dir(cfg.ConfigPath)
	f, err := os.CreateTemp(dir, "."+filepath.Base(cfg.ConfigPath)+".candidate-*")
	if err != nil {
		return fmt.Errorf("haproxy: write candidate config: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("haproxy: write candidate config: %w", err)
	}
	if err := checkConfig(ctx, cfg, tmp); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Path = cfg.ConfigPath
		}
		return err
	}
	if err := os.Rename(tmp, cfg.ActivePath()); err != nil {
		return fmt.Errorf("haproxy: activate config: %w", err)
	}
	return nil
}

// checkConfig runs `haproxy -c -q -f path`.
func checkConfig(ctx context.Context, cfg Config, path string) error {
	cmd := exec.CommandContext(ctx, cfg.Binary, "-c", "-f", path)
	cmd.ExtraFiles = cfg.ExtraFiles // fd@ binds must name sockets
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return &ConfigError{Path: path, Output: string(out)}
	}
	return fmt.Errorf("haproxy: check config: %w", err)
}

// spawn starts a master and a goroutine that reaps it; exited is closed when
// it has exited, ready once its master CLI lists a worker. The master binds
// its CLI socket after forking the first worker, so a serving port does not
// mean the master is ready.
func (p *Process) spawn(cfg Config) (cmd *exec.Cmd, exited, ready chan struct{}, err error) {
	args := []string{"-W", "-S", cfg.Socket, "-f", cfg.ActivePath()}
	if cfg.PIDFile != "" {
		args = append(args, "-p", cfg.PIDFile)
	}
	cmd = exec.Command(cfg.Binary, args...)
	cmd.ExtraFiles = cfg.ExtraFiles
	cmd.Stdout = &logWriter{log: p.log, level: slog.LevelInfo}
	cmd.Stderr = &logWriter{log: p.log, level: slog.LevelWarn}
	// Own process group: a Ctrl-C aimed at the controller must not bypass
	// the graceful Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Workers inherit the output pipes; if the master dies first, do not
	// let a lingering worker hold up noticing it.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, fmt.Errorf("haproxy: start: %w", err)
	}
	exited, ready = make(chan struct{}), make(chan struct{})
	go func() {
		err := cmd.Wait()
		if err != nil {
			p.log.Debug("haproxy master exited", "pid", cmd.Process.Pid, "err", err)
		}
		close(exited)
	}()
	go func() { // ends when the master is ready or gone
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-exited:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			out, err := masterCommand(ctx, cfg.Socket, "show proc")
			cancel()
			// The socket path may still be the dead master's: require
			// this master's PID in the answer.
			if err == nil && len(first(parseShowProc(out))) > 0 && strings.Contains(out, strconv.Itoa(cmd.Process.Pid)) {
				close(ready)
				return
			}
		}
	}()
	p.log.Info("haproxy started", "pid", cmd.Process.Pid, "config", cfg.ActivePath())
	return cmd, exited, ready, nil
}

// supervise restarts the master whenever it exits while not stopping.
func (p *Process) supervise(cfg Config) {
	defer close(p.done)
	backoff := cfg.MinBackoff
	for {
		p.mu.Lock()
		cmd, exited := p.cmd, p.exited
		p.mu.Unlock()
		started := time.Now()
		if exited != nil {
			select {
			case <-exited:
			case <-p.stopCh:
				<-exited // Stop signals the process and owns the deadline
				return
			}
			p.mu.Lock()
			stopping := p.stopping
			p.cmd, p.exited, p.ready = nil, nil, nil
			p.mu.Unlock()
			if stopping { // exited because Stop asked it to
				return
			}
			// Workers orphaned by a dead master would, on their way out,
			// unlink the socket paths the next master has just bound; end
			// them first. They share the master's process group.
			reapGroup(cmd.Process.Pid, 2*time.Second)
			if time.Since(started) >= cfg.StableAfter {
				backoff = cfg.MinBackoff
			}
			p.log.Error("haproxy exited unexpectedly, restarting",
				"pid", cmd.Process.Pid, "state", cmd.ProcessState.String(), "backoff", backoff)
		}
		select {
		case <-time.After(backoff):
		case <-p.stopCh:
			return
		}
		backoff = min(backoff*2, cfg.MaxBackoff)

		p.reloadMu.Lock() // do not start from a half-swapped config
		next, nextExited, nextReady, err := p.spawn(cfg)
		p.reloadMu.Unlock()
		if err != nil {
			p.log.Error("haproxy restart failed", "err", err, "backoff", backoff)
			continue
		}
		p.mu.Lock()
		p.cmd, p.exited, p.ready = next, nextExited, nextReady
		stopping := p.stopping
		p.mu.Unlock()
		if stopping { // Stop ran while we were spawning and saw cmd == nil
			_ = next.Process.Signal(syscall.SIGTERM)
			<-nextExited
			return
		}
	}
}

// reapGroup sends SIGTERM to the process group pgid and waits up to wait for
// it to be gone, then sends SIGKILL. Zombies reparented to a non-reaping init
// keep the group alive; the wait bounds that case.
func reapGroup(pgid int, wait time.Duration) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if !groupAlive(pgid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// groupAlive reports whether a live (non-zombie) process is in group pgid.
// Without /proc it falls back to kill(-pgid, 0), which counts zombies.
func groupAlive(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp …"; comm may contain spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// masterCommand sends one command to the master CLI and reads the reply until
// the master closes the connection.
func masterCommand(ctx context.Context, socket, command string) (string, error) {
	return socketCommand(ctx, socket, command)
}

// socketCommand is the shared transport of the master CLI and the stats
// socket in non-interactive mode: one command per connection, the reply ends
// at EOF.
func socketCommand(ctx context.Context, socket, command string) (string, error) {
	if strings.ContainsAny(command, "\r\n;") {
		// Callers validate their arguments; this is the last line of defence.
		return "", fmt.Errorf("haproxy: refusing command containing a separator: %q", command)
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte(command + "\n")); err != nil {
		return "", err
	}
	// The master CLI only ends the exchange once it sees our half-close;
	// the stats socket does not need it but accepts it.
	if uc, ok := conn.(*net.UnixConn); ok {
		if err := uc.CloseWrite(); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(conn); err != nil {
		return buf.String(), err
	}
	return buf.String(), nil
}

// logWriter forwards HAProxy's stdout/stderr lines to the logger. The pipe
// hands over whatever it holds, not whole lines, so an unfinished last line
// waits for the next write instead of being logged as two broken ones.
type logWriter struct {
	log     *slog.Logger
	level   slog.Level
	partial []byte
}

// maxLogLine bounds a line kept waiting for its end.
const maxLogLine = 64 << 10

func (w *logWriter) Write(b []byte) (int, error) {
	data := append(w.partial, b...)
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 && len(data) < maxLogLine {
		w.partial = data
		return len(b), nil
	}
	if end < 0 {
		end = len(data)
	}
	for line := range bytes.SplitSeq(data[:end], []byte{'\n'}) {
		w.logLine(strings.TrimSpace(string(line)))
	}
	w.partial = append([]byte(nil), data[min(end+1, len(data)):]...)
	return len(b), nil
}

func (w *logWriter) logLine(line string) {
	if line == "" {
		return
	}
	level := w.level
	switch {
	case strings.HasPrefix(line, "[NOTICE]"):
		level = slog.LevelInfo
	case strings.HasPrefix(line, "[WARNING]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[ALERT]"):
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, "haproxy", "output", line)
}

func first(cur, _ []int) []int { return cur }
