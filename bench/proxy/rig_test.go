package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/proxy/proxytest"
	"github.com/berthpaas/berth/internal/testenv"
)

// need returns the path of a command, or fails naming the Debian package.
func need(b *testing.B, command, pkg string) string {
	b.Helper()
	path, err := exec.LookPath(command)
	if err != nil {
		b.Fatalf("%s not found: apt-get install -y %s", command, pkg)
	}
	return path
}

// upstream is an app task: a Go HTTP server on 127.0.0.1 answering every
// request with its body, after a random wait of 0.5–1.5× delay (so that
// clients do not fall into lockstep). It counts its open connections, to see
// when a proxy has let go of them.
type upstream struct {
	name  string
	port  int
	body  []byte
	delay time.Duration
	conns atomic.Int64
}

func startUpstream(b *testing.B, name string, body []byte, delay time.Duration) *upstream {
	b.Helper()
	u := &upstream{name: name, body: body, delay: delay}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.delay > 0 {
			time.Sleep(u.delay/2 + mrand.N(u.delay))
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(u.body)))
		w.Write(u.body)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			u.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			u.conns.Add(-1)
		}
	}
	s.Start()
	b.Cleanup(s.Close)
	u.port = s.Listener.Addr().(*net.TCPAddr).Port
	return u
}

func (u *upstream) release(weight int) proxy.Release {
	return proxy.Release{Service: u.name, Port: u.port, Weight: weight}
}

// kib is the response body of the throughput runs.
var kib = bytes.Repeat([]byte("x"), 1024)

// dockerDNS is where `berth proxy` resolves tasks.<service> unless it has a
// --nameserver flag: Docker's embedded DNS inside a container, unused on a
// host, so the bench serves it there (which takes root, for port 53).
const dockerDNS = "127.0.0.11:53"

// startDNS answers A queries for tasks.<anything> with 127.0.0.1, so each
// release reaches the upstream listening on its Port.
func startDNS(b *testing.B, addr string) string {
	b.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		b.Fatalf("DNS server for the proxy on %s: %v (berth proxy has no --nameserver flag, so the bench serves Docker's embedded DNS address; run it as root)", addr, err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			for _, q := range r.Question {
				switch {
				case !strings.HasPrefix(q.Name, "tasks."):
					m.Rcode = dns.RcodeNameError
				case q.Qtype == dns.TypeA:
					m.Answer = append(m.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
						A:   net.IPv4(127, 0, 0, 1),
					})
				}
			}
			w.WriteMsg(m)
		})}
	done := make(chan struct{})
	go func() { srv.ActivateAndServe(); close(done) }()
	<-started
	b.Cleanup(func() { srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// statusReport is a status the proxy posted, with when it arrived.
type statusReport struct {
	at time.Time
	proxy.Status
}

// controlPlane is the fake control plane, keeping every status report with
// when it arrived.
type controlPlane struct {
	*proxytest.ControlPlane
	token string

	mu      sync.Mutex
	reports []statusReport
}

func startControlPlane(b *testing.B) *controlPlane {
	b.Helper()
	cp := &controlPlane{token: "bench-token"}
	cp.ControlPlane = proxytest.NewControlPlane(b, cp.token, 5*time.Second, func(s proxy.Status) {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		cp.reports = append(cp.reports, statusReport{at: time.Now(), Status: s})
	})
	return cp
}

// publish makes t the table the proxy pulls, with the next version.
func (cp *controlPlane) publish(t proxy.Table) int64 {
	t.Version = cp.Table().Version + 1
	cp.SetTable(t)
	return t.Version
}

// firstReport returns the first status that arrived at or after since and
// satisfies ok.
func (cp *controlPlane) firstReport(since time.Time, ok func(proxy.Status) bool) (statusReport, bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, r := range cp.reports {
		if !r.at.Before(since) && ok(r.Status) {
			return r, true
		}
	}
	return statusReport{}, false
}

// waitReport waits for a status, arriving at or after since, that ok accepts.
func (cp *controlPlane) waitReport(b *testing.B, since time.Time, what string, ok func(proxy.Status) bool) statusReport {
	b.Helper()
	var r statusReport
	testenv.Eventually(b, 20*time.Second, what, func() error {
		var found bool
		if r, found = cp.firstReport(since, ok); !found {
			return errors.New("no such status report yet")
		}
		return nil
	})
	return r
}

// appTable routes each host to app_bench, served by rels.
func appTable(rels []proxy.Release, hosts ...string) proxy.Table {
	t := proxy.Table{Apps: []proxy.App{{ID: "app_bench", Name: "Bench", Releases: rels}}}
	for _, h := range hosts {
		t.Routes = append(t.Routes, proxy.Route{Host: h, AppID: "app_bench"})
	}
	return t
}

// serving is a report condition: every release named is resolved and up.
func serving(services ...string) func(proxy.Status) bool {
	return func(s proxy.Status) bool {
		for _, svc := range services {
			if r := s.Releases[svc]; r.Up < 1 || r.Servers < 1 {
				return false
			}
		}
		return true
	}
}

// edge is a running `berth proxy`: the controller process and the HAProxy
// master and workers it started.
type edge struct {
	b         *testing.B
	cmd       *exec.Cmd
	exited    chan struct{}
	port      int
	stateDir  string
	logPath   string
	stopped   bool
	haproxies []int // seen while running, killed if the controller leaves them
}

// runDir is where berth proxy keeps HAProxy's files and sockets (its
// --run-dir default).
func (e *edge) runDir() string { return filepath.Join(e.stateDir, "run") }

// edgeOptions are the bench's choices for one `berth proxy`.
type edgeOptions struct {
	bin, dnsAddr string
	nameserver   bool // the binary has --nameserver
	accessFlag   bool // the binary has --access-log
	// noAccessLog: the controller counts every request but writes no line
	// (--access-log=false, or --log-level warn for a binary without it).
	noAccessLog bool
	threads     int // --threads, unless 0 (its default: half the cores)
}

// startEdge runs `berth proxy` against cp and returns once HAProxy answers.
func startEdge(b *testing.B, cp *controlPlane, o edgeOptions) *edge {
	b.Helper()
	dir := b.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(cp.token+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	e := &edge{b: b, port: testenv.FreePort(b), stateDir: filepath.Join(dir, "state"), logPath: filepath.Join(dir, "proxy.log"),
		exited: make(chan struct{})}
	logFile, err := os.Create(e.logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	args := []string{"proxy", "--control-url", cp.URL, "--token-file", tokenFile, "--state-dir", e.stateDir,
		"--http-port", strconv.Itoa(e.port), "--https-port", "0", "--stats-port", strconv.Itoa(testenv.FreePort(b)),
		"--id", "bench"}
	switch {
	case !o.noAccessLog:
		args = append(args, "--log-level", "info")
	case o.accessFlag:
		args = append(args, "--access-log=false")
	default:
		args = append(args, "--log-level", "warn")
	}
	if o.nameserver {
		args = append(args, "--nameserver", o.dnsAddr)
	}
	if o.threads > 0 {
		args = append(args, "--threads", strconv.Itoa(o.threads))
	}
	e.cmd = exec.Command(o.bin, args...)
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	e.cmd.SysProcAttr = orphanSignal(syscall.SIGTERM) // a graceful stop
	if err := e.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { e.cmd.Wait(); close(e.exited) }()
	b.Cleanup(e.stop)
	testenv.Eventually(b, 20*time.Second, "berth proxy answers", func() error {
		select {
		case <-e.exited:
			b.Fatalf("berth proxy exited during startup: %s\n%s", e.cmd.ProcessState, e.logTail())
		default:
		}
		// No keep-alive: an idle connection would keep the first worker
		// alive (for the next request) after the first table's reload.
		_, _, err := get(e.url("/"), benchHost)
		return err
	})
	e.pids()
	return e
}

func (e *edge) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path) }

// pids returns the controller and every HAProxy process under it.
func (e *edge) pids() []int {
	pids := append([]int{e.cmd.Process.Pid}, descendants(e.cmd.Process.Pid)...)
	for _, p := range pids[1:] {
		if !containsInt(e.haproxies, p) {
			e.haproxies = append(e.haproxies, p)
		}
	}
	return pids
}

// parties are the controller and HAProxy, for CPU accounting.
func (e *edge) parties() map[string][]int {
	pid := e.cmd.Process.Pid
	return map[string][]int{"controller": {pid}, "haproxy": descendants(pid)}
}

// stop ends the controller, which stops HAProxy gracefully; any HAProxy
// process still there afterwards is killed.
func (e *edge) stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	e.pids()
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(20 * time.Second):
		e.b.Logf("berth proxy did not stop 20s after SIGTERM; killing it\n%s", e.logTail())
		e.cmd.Process.Kill()
		<-e.exited
	}
	for _, pid := range e.haproxies {
		killIf(pid, "haproxy")
	}
}

// logTail is the end of the proxy's log, for failure messages.
func (e *edge) logTail() string {
	data, _ := os.ReadFile(e.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// hasFlag reports whether `berth proxy --help` lists flag.
func hasFlag(b *testing.B, bin, flag string) bool {
	b.Helper()
	out, err := exec.Command(bin, "proxy", "--help").CombinedOutput()
	if err != nil {
		b.Fatalf("berth proxy --help: %v\n%s", err, out)
	}
	return bytes.Contains(out, []byte("--"+flag+" "))
}

// nginx is a running nginx reverse proxy in front of one upstream.
type nginx struct {
	cmd    *exec.Cmd
	exited chan struct{}
	port   int
	pids   []int
}

// startNginx runs nginx from a temporary prefix as a reverse proxy to
// 127.0.0.1:upstreamPort with upstream keep-alive, logging every request
// (to a file, in a JSON format like berth proxy's) when accessLog is set.
func startNginx(b *testing.B, upstreamPort int, accessLog bool) *nginx {
	b.Helper()
	bin := need(b, "nginx", "nginx")
	dir := b.TempDir()
	n := &nginx{port: testenv.FreePort(b), exited: make(chan struct{})}
	logLine := "access_log off;"
	if accessLog {
		logLine = fmt.Sprintf("access_log %s/access.log berth;", dir)
	}
	conf := fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    log_format berth escape=json '{"time":"$time_iso8601","client":"$remote_addr","host":"$host","method":"$request_method","path":"$uri","status":$status,"bytes":$bytes_sent,"duration_ms":$request_time,"upstream":"$upstream_addr"}';
    %[2]s
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream app {
        server 127.0.0.1:%[3]d;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:%[4]d;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`, dir, logLine, upstreamPort, n.port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath, "-g", "daemon off;")
	n.cmd.SysProcAttr = orphanSignal(syscall.SIGTERM) // the master ends its workers
	var out bytes.Buffer
	n.cmd.Stdout, n.cmd.Stderr = &out, &out
	if err := n.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	b.Cleanup(n.stop)
	testenv.Eventually(b, 10*time.Second, "nginx answers", func() error {
		select {
		case <-n.exited:
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			b.Fatalf("nginx exited: %s\n%s%s", n.cmd.ProcessState, out.String(), errLog)
		default:
		}
		code, _, err := get(n.url(), benchHost)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	n.pids = append([]int{n.cmd.Process.Pid}, descendants(n.cmd.Process.Pid)...)
	return n
}

func (n *nginx) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", n.port) }

// parties are nginx's master and workers, for CPU accounting.
func (n *nginx) parties() map[string][]int {
	return map[string][]int{"proxy": append([]int{n.cmd.Process.Pid}, descendants(n.cmd.Process.Pid)...)}
}

// stop shuts nginx down gracefully (SIGQUIT), killing what is left after 10s.
func (n *nginx) stop() {
	n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	for _, pid := range n.pids[1:] {
		killIf(pid, "nginx")
	}
}

// haproxyRun is a standalone HAProxy on a configuration derived from the
// one berth proxy rendered, for the variants that find what limits it.
type haproxyRun struct {
	cmd    *exec.Cmd
	exited chan struct{}
	pids   []int
}

func startHAProxy(b *testing.B, cfgPath, url, host string) *haproxyRun {
	b.Helper()
	h := &haproxyRun{exited: make(chan struct{})}
	h.cmd = exec.Command(need(b, "haproxy", "haproxy"), "-W", "-f", cfgPath)
	h.cmd.SysProcAttr = orphanSignal(syscall.SIGTERM) // the master ends its workers
	// The access log, if any, goes straight to a file: no pipe, no reader.
	logFile, err := os.Create(filepath.Join(filepath.Dir(cfgPath), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	var errs bytes.Buffer
	h.cmd.Stdout, h.cmd.Stderr = logFile, &errs
	if err := h.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }()
	b.Cleanup(h.stop)
	testenv.Eventually(b, 10*time.Second, "haproxy answers", func() error {
		select {
		case <-h.exited:
			b.Fatalf("haproxy exited: %s\n%s", h.cmd.ProcessState, errs.String())
		default:
		}
		code, _, err := get(url, host)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	h.pids = append([]int{h.cmd.Process.Pid}, descendants(h.cmd.Process.Pid)...)
	return h
}

func (h *haproxyRun) stop() {
	h.cmd.Process.Signal(syscall.SIGUSR1) // soft stop
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-h.exited
	}
	for _, pid := range h.pids[1:] {
		killIf(pid, "haproxy")
	}
}

// orphanSignal has the kernel send sig to a child if the bench dies
// without running its cleanups (go test -timeout, Ctrl-C).
func orphanSignal(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: sig}
}

// procStat is what the bench reads of /proc/<pid>/stat: the parent and the
// CPU time used so far, in clock ticks.
type procStat struct {
	ppid  int
	ticks int64
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = time.Second / 100

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may contain anything.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{ppid: ppid, ticks: utime + stime}, nil
}

// descendants returns every process under pid.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(p); err == nil {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

// cpuTime is the CPU time the processes used so far; gone ones count 0.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, p := range pids {
		if st, err := readStat(p); err == nil {
			ticks += st.ticks
		}
	}
	return time.Duration(ticks) * clockTick
}

// mem is the memory of a set of processes, summed, in bytes.
type mem struct {
	rss  int64 // VmRSS: counts pages shared between the processes once per process
	file int64 // RssFile: the part of rss that maps files (executables, mostly)
	pss  int64 // Pss: shared pages split between the processes sharing them
}

func memory(pids []int) mem {
	field := func(path, name string) int64 {
		data, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, name+":"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				return kb << 10
			}
		}
		return 0
	}
	var m mem
	for _, p := range pids {
		status := fmt.Sprintf("/proc/%d/status", p)
		m.rss += field(status, "VmRSS")
		m.file += field(status, "RssFile")
		m.pss += field(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss")
	}
	return m
}

// killIf kills pid if it is still a process named comm (not a reused pid).
func killIf(pid int, comm string) {
	name, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err == nil && strings.TrimSpace(string(name)) == comm {
		syscall.Kill(pid, syscall.SIGKILL)
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

// runtimeCommand sends one command to HAProxy's Runtime API socket.
func runtimeCommand(ctx context.Context, socket, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", err
	}
	out, err := io.ReadAll(conn)
	return string(out), err
}

// runtimeStats returns `show stat -1 4 -1` (every server) as one row per
// "backend/server", by column name.
func runtimeStats(ctx context.Context, socket string) (map[string]map[string]string, error) {
	out, err := runtimeCommand(ctx, socket, "show stat -1 4 -1")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimPrefix(out, "# "), "\n")
	header := strings.Split(lines[0], ",")
	if !slices.Contains(header, "pxname") || !slices.Contains(header, "svname") {
		return nil, fmt.Errorf("show stat: no CSV header in %.200q", out)
	}
	stats := make(map[string]map[string]string)
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if len(f) < len(header) {
			continue
		}
		row := make(map[string]string, len(header))
		for i, h := range header {
			row[h] = f[i]
		}
		stats[row["pxname"]+"/"+row["svname"]] = row
	}
	return stats, nil
}

// runtimeInfo returns one field of `show info`, e.g. "DroppedLogs".
func runtimeInfo(ctx context.Context, socket, field string) (string, error) {
	out, err := runtimeCommand(ctx, socket, "show info")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(line, field+": "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("show info: no %s", field)
}
