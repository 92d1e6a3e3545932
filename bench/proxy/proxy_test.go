// Package proxy_test measures the edge proxy, `berth proxy` (the controller
// and the HAProxy 2.6 it drives), against nginx in the same run:
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/proxy
//
// Throughput: wrk against one upstream (a Go server answering 1 KiB),
// directly, through berth proxy and through nginx (reverse proxy with
// upstream keep-alive, logging every request like berth proxy does), with
// the same wrk parameters; requests/s and p50/p99 of each, as ratios to nginx
// and to the direct path.
// Footprint: idle RSS of the controller and every HAProxy process.
// Route change: a table with a new route published → the new host answered
// through HAProxy. Release switch: weights moved from one release to another
// → every new request on the new one and the old one drained.
// Container output: the CPU dockerd, containerd and the shim spend per access
// log line a container writes (json-file against none), which the
// throughput runs, whose proxy writes to a file, do not see (needs Docker).
//
// It needs wrk, nginx and haproxy (Debian's packages), and root: berth proxy
// resolves tasks.<service> at Docker's embedded DNS address, 127.0.0.11:53,
// where the bench answers for it. It builds ./cmd/berth unless $BERTH_BIN
// names a binary. The tables are printed after the benchmark lines.
// -args -variants adds runs of berth proxy without its access log, of
// standalone HAProxy on edited copies of the configuration it rendered and
// of nginx without access log, to find what limits HAProxy's throughput;
// -args -h lists the other knobs (durations, connections, repetitions).
package proxy_test

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/pages"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/testenv"
)

var (
	flagDuration = flag.Duration("duration", 10*time.Second, "length of each measured wrk run")
	flagWarmup   = flag.Duration("warmup", 3*time.Second, "length of the wrk run before each measured one")
	flagThreads  = flag.Int("threads", 2, "wrk threads")
	flagConns    = flag.Int("connections", 64, "wrk connections")
	flagProcs    = flag.Int("upstream-procs", 1, "GOMAXPROCS of the bench process, which runs the upstream")
	flagReps     = flag.Int("reps", 20, "route changes and release switches measured per iteration")
	flagVariants = flag.Bool("variants", false, "also measure edited copies of the rendered HAProxy configuration")
)

// benchHost is the route of the throughput runs; wrk sends it on every path.
const benchHost = "bench.test"

var selfPID = os.Getpid()

// report collects the tables printed once every benchmark has run, so they
// do not interleave with the benchmark result lines.
var report struct {
	sync.Mutex
	bytes.Buffer
}

func printf(format string, args ...any) {
	report.Lock()
	defer report.Unlock()
	fmt.Fprintf(&report, format, args...)
}

// binary is the berth binary the benchmarks share, built once.
var binary struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	if report.Len() > 0 {
		fmt.Printf("\n%s", report.String())
	}
	os.Exit(code)
}

// env is what every benchmark starts from: the berth binary, the DNS server
// its HAProxy resolves releases with, and a fake control plane.
type env struct {
	cp   *controlPlane
	opts edgeOptions
}

func newEnv(b *testing.B) *env {
	b.Helper()
	need(b, "haproxy", "haproxy")
	binary.once.Do(func() {
		if bin := os.Getenv("BERTH_BIN"); bin != "" {
			if !filepath.IsAbs(bin) {
				bin = filepath.Join("..", "..", bin) // the test runs in bench/proxy
			}
			binary.path, binary.err = filepath.Abs(bin)
			return
		}
		if binary.dir, binary.err = os.MkdirTemp("", "berth-bench-proxy-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "berth")
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binary.path, "../../cmd/berth")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("build berth: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		b.Fatal(binary.err)
	}
	o := edgeOptions{bin: binary.path, nameserver: hasFlag(b, binary.path, "nameserver"), accessFlag: hasFlag(b, binary.path, "access-log")}
	addr := dockerDNS
	if o.nameserver {
		addr = "127.0.0.1:0"
	}
	o.dnsAddr = startDNS(b, addr)
	return &env{cp: startControlPlane(b), opts: o}
}

func (v *env) startEdge(b *testing.B) *edge {
	b.Helper()
	return startEdge(b, v.cp, v.opts)
}

// get sends GET url with Host host on a new connection and returns the
// status and body.
func get(url, host string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Host = host
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// answers is a testenv.Eventually condition: GET url with Host host is 200 with body.
func answers(url, host string, body []byte) func() error {
	return func() error {
		code, got, err := get(url, host)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !bytes.Equal(got, body) {
			return fmt.Errorf("GET %s (Host %s) = %d %.40q", url, host, code, got)
		}
		return nil
	}
}

// version returns the first line of `<command> -v`, e.g. "nginx/1.22.1".
func version(command string) string {
	out, _ := exec.Command(command, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(line)
	switch {
	case len(f) >= 3 && f[0] == "HAProxy":
		v, _, _ := strings.Cut(f[2], "-")
		return "HAProxy " + v
	case len(f) >= 3 && f[0] == "nginx":
		return strings.Replace(f[2], "/", " ", 1)
	}
	return command
}

func loadAverage() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// BenchmarkThroughput runs wrk against the upstream directly, through berth
// proxy and through nginx.
func BenchmarkThroughput(b *testing.B) {
	need(b, "wrk", "wrk")
	need(b, "nginx", "nginx")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(*flagProcs))
	loadBefore := loadAverage()
	v := newEnv(b)
	up := startUpstream(b, "bench-r1", kib, 0)
	e := v.startEdge(b)
	v.cp.publish(appTable([]proxy.Release{up.release(100)}, benchHost))
	testenv.Eventually(b, 20*time.Second, "bench.test served through berth proxy", answers(e.url("/"), benchHost, kib))
	ng := startNginx(b, up.port, true)

	targets := []target{
		{name: "direct", url: fmt.Sprintf("http://127.0.0.1:%d/", up.port)},
		{name: "berth", url: e.url("/"), parties: e.parties},
		{name: "nginx", url: ng.url(), parties: ng.parties},
	}
	// Each path twice, in the order A B C C B A, so that a drift in the
	// machine's load over the run weighs on every path alike.
	order := append(slices.Clone(targets), targets[2], targets[1], targets[0])
	runs := make(map[string][]load)
	berthRequests := int64(0)
	for b.Loop() {
		for _, tg := range order {
			var n int64
			if len(runs[tg.name])%2 == 0 {
				n += runWrk(b, tg, *flagWarmup).requests
			}
			l := runWrk(b, tg, *flagDuration)
			runs[tg.name] = append(runs[tg.name], l)
			if tg.name == "berth" {
				berthRequests += n + l.requests
			}
		}
	}
	direct, berth, nginx := combine(runs["direct"]), combine(runs["berth"]), combine(runs["nginx"])
	b.ReportMetric(direct.rps, "direct-req/s")
	b.ReportMetric(berth.rps, "berth-req/s")
	b.ReportMetric(nginx.rps, "nginx-req/s")
	b.ReportMetric(berth.rps/nginx.rps, "berth/nginx-req/s")
	b.ReportMetric(float64(berth.p99)/float64(nginx.p99), "berth/nginx-p99")
	// CPU time per request hardly depends on what else the machine runs,
	// unlike requests/s and p99.
	proxyCPU := func(l load) float64 { return l.perRequest(l.cpu["haproxy"] + l.cpu["controller"] + l.cpu["proxy"]) }
	b.ReportMetric(proxyCPU(berth)/proxyCPU(nginx), "berth/nginx-CPU/req")

	// What the access log kept of the requests, and the memory after load.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	dropped, err := runtimeInfo(ctx, filepath.Join(e.runDir(), "haproxy.sock"), "DroppedLogs")
	cancel()
	if err != nil {
		dropped = err.Error()
	}
	rss := memory(e.pids()).rss
	time.Sleep(time.Second) // the controller writes the last lines
	access, split := countAccess(b, e.logPath)

	cores := runtime.NumCPU()
	printf("### Throughput: wrk -t%d -c%d -d%s --latency, 1 KiB response, %d cores, mean of %d runs per path (A B C C B A); load average %s before, %s after\n\n",
		*flagThreads, *flagConns, *flagDuration, cores, len(runs["direct"]), loadBefore, loadAverage())
	printf("| path | req/s | p50 | p99 | req/s ÷ nginx | p99 ÷ nginx | req/s ÷ direct | CPU per request: proxy · upstream · wrk | CPU busy |\n")
	printf("|---|---|---|---|---|---|---|---|---|\n")
	row := func(name string, l load, proxyCPU string) {
		total := l.wrkCPU
		for _, d := range l.cpu {
			total += d
		}
		printf("| %s | %s | %s | %s | %.2f | %.2f | %.2f | %s · %.1f · %.1f µs | %.0f%% |\n",
			name, thousands(l.rps), ms(l.p50), ms(l.p99), l.rps/nginx.rps, float64(l.p99)/float64(nginx.p99), l.rps/direct.rps,
			proxyCPU, l.perRequest(l.cpu["upstream"]), l.perRequest(l.wrkCPU), 100*float64(total)/float64(l.elapsed)/float64(cores))
	}
	row("direct: wrk → upstream", direct, "—")
	row("berth proxy ("+version("haproxy")+" + controller)", berth, berth.proxyCPU())
	row(version("nginx")+" (upstream keepalive 64)", nginx, nginx.proxyCPU())
	printf("\ntargets: berth proxy req/s ≥ 1.0× nginx, p99 ≤ 1.0× nginx. Both proxies log every request (berth proxy: HAProxy → log ring → unix socket → controller, which counts it and writes the line unchanged to stderr, to a file here; nginx: JSON to a file).\n")
	printf("Proxy CPU per request, berth proxy ÷ nginx: %.2f (requests/s and p99 move with whatever else the machine runs, CPU per request hardly does; CPU busy is this bench's share of the cores).\n", proxyCPU(berth)/proxyCPU(nginx))
	printf("berth proxy access log: %d requests sent, %d access records, %d access lines logged as HAProxy messages instead (cut short), %s lines HAProxy dropped (DroppedLogs). RSS after the runs: %.1f MB.\n\n",
		berthRequests, access, split, dropped, float64(rss)/(1<<20))

	if !*flagVariants {
		return
	}
	e.stop()
	variants(b, v, up, e, berth, nginx)
}

// countAccess counts the access log lines of the proxy log, and the access
// log lines the controller could not read (cut short), logged as "haproxy"
// records instead.
func countAccess(b *testing.B, path string) (access, split int) {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for line := range bytes.Lines(data) {
		switch {
		case bytes.Contains(line, []byte(`"msg":"access"`)):
			access++
		case bytes.Contains(line, []byte(`"msg":"haproxy","output":"{`)):
			split++
		}
	}
	return access, split
}

// variants measures berth proxy with the access log off (a flag away) and
// standalone HAProxy on edited copies of the configuration it rendered, next
// to nginx without its access log, to find what limits HAProxy here.
func variants(b *testing.B, v *env, up *upstream, e *edge, berth, nginx load) {
	b.Helper()
	rendered, err := os.ReadFile(filepath.Join(e.runDir(), "haproxy.cfg.active"))
	if err != nil {
		b.Fatal(err)
	}
	url := e.url("/")
	type variant struct {
		name string
		run  func() load
	}
	standalone := func(edit func(string) string) func() load {
		return func() load {
			path := filepath.Join(b.TempDir(), "haproxy.cfg")
			if err := os.WriteFile(path, []byte(edit(string(rendered))), 0o600); err != nil {
				b.Fatal(err)
			}
			h := startHAProxy(b, path, url, benchHost)
			defer h.stop()
			return measure(b, target{name: "haproxy", url: url, parties: func() map[string][]int {
				return map[string][]int{"proxy": append([]int{h.cmd.Process.Pid}, descendants(h.cmd.Process.Pid)...)}
			}})
		}
	}
	// Edits fail loudly when the renderer no longer writes what they change.
	replace := func(c, old, new string) string {
		if !strings.Contains(c, old) {
			b.Fatalf("the rendered configuration has no %q any more: update the variants", old)
		}
		return strings.Replace(c, old, new, 1)
	}
	// Standalone, HAProxy has no controller to forward its log ring to (and
	// its forwarder spins on a socket nobody listens on): the ring goes, and
	// the log with it, or to HAProxy's standard output (a file), or to a
	// socket the bench reads and discards.
	const logLine = "    log ring@berth_log len 8192 format raw local0\n"
	noRing := func(c string) string {
		i := strings.Index(c, "\nring berth_log\n")
		if i < 0 {
			b.Fatal("the rendered configuration has no log ring any more: update the variants")
		}
		j := strings.Index(c[i+1:], "\n\n")
		return c[:i+1] + c[i+1+j+2:]
	}
	noLog := func(c string) string { return noRing(replace(c, logLine, "")) }
	toStdout := func(c string) string { return noRing(replace(c, logLine, "    log stdout format raw local0\n")) }
	toDiscard := func(c string) string {
		return replace(c, strconv.Quote("unix@"+filepath.Join(e.runDir(), "access.sock")), strconv.Quote("unix@"+discardLog(b)))
	}
	var datagrams discardDgram
	toDgram := func(c string) string {
		return noRing(replace(c, logLine, "    log "+datagrams.listen(b)+" len 8192 format raw local0\n"))
	}
	vs := []variant{
		{"berth proxy --access-log=false (`berth server --proxy-access-log=false`: the controller still reads and counts every line, writes none)", func() load {
			o := v.opts
			o.noAccessLog = true
			w := startEdge(b, v.cp, o)
			defer w.stop()
			testenv.Eventually(b, 20*time.Second, "served", answers(w.url("/"), benchHost, kib))
			return measure(b, target{name: "berth-nolog", url: w.url("/"), parties: w.parties})
		}},
		{fmt.Sprintf("berth proxy --threads %d (a thread per core; the default is half the cores, at least one)", runtime.NumCPU()), func() load {
			o := v.opts
			o.threads = runtime.NumCPU()
			w := startEdge(b, v.cp, o)
			defer w.stop()
			testenv.Eventually(b, 20*time.Second, "served", answers(w.url("/"), benchHost, kib))
			return measure(b, target{name: "berth-threads", url: w.url("/"), parties: w.parties})
		}},
		{"HAProxy alone, rendered config, access log through the log ring to a socket the bench reads and discards (no controller)", standalone(toDiscard)},
		{"HAProxy alone, access log written by HAProxy straight to a file (`log stdout`, no ring, no controller)", standalone(toStdout)},
		{"HAProxy alone, access log sent as unix datagrams (one per line, no ring) the bench counts and discards", standalone(toDgram)},
		{"HAProxy alone, rendered config without access log", standalone(noLog)},
		{"HAProxy alone, without access log nor routing rules (static default_backend)", standalone(func(c string) string {
			return noRules(b, noLog(c))
		})},
		{"HAProxy alone, access log straight to a file, no routing rules", standalone(func(c string) string { return noRules(b, toStdout(c)) })},
		{"HAProxy alone, access log through the log ring to a discarding socket, without L7 retries (`retry-on conn-failure`: no copy of each request kept to replay it)", standalone(func(c string) string {
			return replace(replace(toDiscard(c), "    retry-on conn-failure empty-response\n", "    retry-on conn-failure\n"), "    http-request disable-l7-retry if !METH_GET\n", "")
		})},
		{"nginx, no access log", func() load {
			n := startNginx(b, up.port, false)
			defer n.stop()
			return measure(b, target{name: "nginx-nolog", url: n.url(), parties: n.parties})
		}},
	}
	printf("### What limits HAProxy: variants, same wrk parameters, against the same nginx run (with access log)\n\n")
	printf("| variant | req/s | p50 | p99 | req/s ÷ nginx | p99 ÷ nginx | proxy CPU per request | upstream CPU per request |\n|---|---|---|---|---|---|---|---|\n")
	row := func(name string, l load) {
		printf("| %s | %s | %s | %s | %.2f | %.2f | %s µs | %.1f µs |\n", name, thousands(l.rps), ms(l.p50), ms(l.p99),
			l.rps/nginx.rps, float64(l.p99)/float64(nginx.p99), l.proxyCPU(), l.perRequest(l.cpu["upstream"]))
	}
	row("(berth proxy, as in the table above)", berth)
	row("(nginx, as in the table above)", nginx)
	for _, vr := range vs {
		row(vr.name, vr.run())
	}
	printf("\nDatagram variant: %d access lines received.\n\n", datagrams.n.Load())
}

// discardDgram counts the datagrams sent to a unix datagram socket.
type discardDgram struct{ n atomic.Int64 }

// listen opens the socket (a 4 MiB receive buffer, as berth proxy would
// ask for) and returns its path.
func (d *discardDgram) listen(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "log.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	conn.SetReadBuffer(4 << 20)
	b.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 16<<10)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
			d.n.Add(1)
		}
	}()
	return path
}

// discardLog listens on a unix socket whose connections are read and
// discarded, for HAProxy's log ring, and returns its path.
func discardLog(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "log.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, conn); conn.Close() }()
		}
	}()
	return path
}

// noRules strips Berth's routing rules from the frontend (host and prefix
// lookups, redirect, body limit, prefix strip) and sends every request to
// the bench's app; X-Forwarded-Proto stays, as nginx sets it too.
func noRules(b *testing.B, c string) string {
	var out strings.Builder
	in, dropped := false, 0
	for line := range strings.Lines(c) {
		switch {
		case strings.HasPrefix(line, "frontend http"):
			in = true
		case !strings.HasPrefix(line, " "):
			in = false
		}
		t := strings.TrimSpace(line)
		routing := strings.HasPrefix(t, "http-request ") && !strings.Contains(t, "X-Forwarded-Proto") ||
			strings.HasPrefix(t, "use_backend ") || strings.HasPrefix(t, "acl ")
		if in && routing {
			dropped++
			continue
		}
		if in && strings.HasPrefix(t, "default_backend ") {
			line = "    default_backend " + proxy.BackendName("app_bench") + "\n"
		}
		out.WriteString(line)
	}
	if dropped == 0 {
		b.Fatal("no routing rules found in the rendered configuration: update noRules")
	}
	return out.String()
}

// measure is one warm-up wrk run and one measured.
func measure(b *testing.B, tg target) load {
	b.Helper()
	runWrk(b, tg, *flagWarmup)
	return runWrk(b, tg, *flagDuration)
}

// BenchmarkFootprint measures the idle RSS of berth proxy: the controller
// and every HAProxy process, serving one route, a few seconds after start,
// once the controller has released the pages it touched only while starting.
func BenchmarkFootprint(b *testing.B) {
	v := newEnv(b)
	up := startUpstream(b, "bench-r1", kib, 0)
	var total, controller, master, workers []mem
	nworkers := 0
	for b.Loop() {
		e := v.startEdge(b)
		v.cp.publish(appTable([]proxy.Release{up.release(100)}, benchHost))
		testenv.Eventually(b, 20*time.Second, "bench.test served", answers(e.url("/"), benchHost, kib))
		// Idle: past the controller's release of its start-up pages.
		time.Sleep(pages.Settle + 2*time.Second)
		pid := e.cmd.Process.Pid
		masters := children(pid)
		var ws []int
		for _, m := range masters {
			ws = append(ws, descendants(m)...)
		}
		total = append(total, memory(e.pids()))
		controller = append(controller, memory([]int{pid}))
		master, workers = append(master, memory(masters)), append(workers, memory(ws))
		nworkers = max(nworkers, len(ws))
		e.stop()
	}
	t := medianMem(total)
	b.ReportMetric(mb(t.rss), "idle-RSS-MB")
	row := func(name string, m mem, target string) {
		printf("| %s | %.1f MB | %.1f MB | %.1f MB | %s |\n", name, mb(m.rss), mb(m.file), mb(m.pss), target)
	}
	printf("### Footprint: berth proxy serving one route, %s after start (median of %d)\n\n", pages.Settle+2*time.Second, len(total))
	printf("| process | RSS | of which file-backed | PSS | target |\n|---|---|---|---|---|\n")
	row("all: controller + HAProxy master + worker", t, "RSS ≤ 40 MB")
	row("controller (`berth proxy`)", medianMem(controller), "")
	row("HAProxy master", medianMem(master), "")
	row(fmt.Sprintf("HAProxy worker (%d)", nworkers), medianMem(workers), "")
	printf("\n")
}

// children returns the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	for _, p := range descendants(pid) {
		if st, err := readStat(p); err == nil && st.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// medianMem is the median of ms by RSS.
func medianMem(ms []mem) mem {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b mem) int { return cmp.Compare(a.rss, b.rss) })
	return s[len(s)/2]
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// medianOf is the median of s.
func medianOf(s []float64) float64 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}

// percentiles returns the median and the maximum of ds.
func percentiles(ds []time.Duration) (med, maxd time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// BenchmarkRouteChange publishes tables with one route more and measures
// until the new host is answered through HAProxy: a route to an existing app
// (a Runtime API map update) and a route to a new app (a reload, and DNS
// resolution of the new release).
func BenchmarkRouteChange(b *testing.B) {
	v := newEnv(b)
	up := startUpstream(b, "bench-r1", kib, 0)
	e := v.startEdge(b)
	base := appTable([]proxy.Release{up.release(100)}, benchHost)
	v.cp.publish(base)
	testenv.Eventually(b, 20*time.Second, "bench.test served", answers(e.url("/"), benchHost, kib))

	// answered: the new host served through HAProxy; reported: a status
	// report with the new version, which a domain change waits for.
	var answered, reported [2][]time.Duration
	live := func(kind int, t proxy.Table, host string) {
		start := time.Now()
		ver := v.cp.publish(t)
		testenv.Eventually(b, 10*time.Second, host+" served", answers(e.url("/"), host, kib))
		answered[kind] = append(answered[kind], time.Since(start))
		r := v.cp.waitReport(b, start, "new version reported", func(s proxy.Status) bool { return s.Version >= ver })
		reported[kind] = append(reported[kind], r.at.Sub(start))
	}
	const existingApp, newApp = 0, 1
	for i := 0; b.Loop(); i++ {
		t := base
		for r := range *flagReps {
			host := fmt.Sprintf("r%d-%d.test", i, r)
			t.Routes = append(slices.Clone(t.Routes), proxy.Route{Host: host, AppID: "app_bench"})
			live(existingApp, t, host)
		}
		for r := range *flagReps {
			id, host := fmt.Sprintf("app_new%d_%d", i, r), fmt.Sprintf("new%d-%d.test", i, r)
			rel := proxy.Release{Service: fmt.Sprintf("new%d-%d-r1", i, r), Port: up.port, Weight: 100}
			t.Apps = append(slices.Clone(t.Apps), proxy.App{ID: id, Releases: []proxy.Release{rel}})
			t.Routes = append(slices.Clone(t.Routes), proxy.Route{Host: host, AppID: id})
			live(newApp, t, host)
		}
	}
	b.ReportMetric(float64(medianDur(answered[existingApp]).Microseconds())/1000, "route-ms")
	b.ReportMetric(float64(medianDur(answered[newApp]).Microseconds())/1000, "new-app-route-ms")
	printf("### Route change: table published → … (%d changes each)\n\n", len(answered[existingApp]))
	printf("| change | new host answered through HAProxy: median | max | status report with the new version: median | max | target |\n|---|---|---|---|---|---|\n")
	for kind, name := range []string{"new route to a running app (Runtime API: add map)", "new app and its route (reload, new release resolved in DNS)"} {
		am, ax := percentiles(answered[kind])
		rm, rx := percentiles(reported[kind])
		printf("| %s | %s | %s | %s | %s | ≤ 1 s |\n", name, ms(am), ms(ax), ms(rm), ms(rx))
	}
	printf("\n")
}

// medianDur is the median of ds.
func medianDur(ds []time.Duration) time.Duration {
	m, _ := percentiles(ds)
	return m
}

// switchDelay is how long the switch's upstreams take per request, on
// average, so that a switch meets requests in flight to the old release.
const switchDelay = 20 * time.Millisecond

// answer is one request of the switch's background load.
type answer struct {
	start time.Time
	body  string // the release that answered; "" for a failure
}

// switchRig is an app with two releases, A and B, each its own upstream,
// behind berth proxy, with a steady load on it.
type switchRig struct {
	b    *testing.B
	v    *env
	e    *edge
	sock string // HAProxy's Runtime API

	mu      sync.Mutex
	answers []answer
}

// switchTimes are the delays after one table publication.
type switchTimes struct {
	moved    time.Duration // every request started later answered by the new release
	drained  time.Duration // … and the old one at weight 0 with no session in HAProxy's stats
	live     time.Duration // a status report with the new version
	reported time.Duration // a status report with the old release at 0 sessions
	at       time.Time     // when the table was published
}

// load runs clients, each sending one request at a time on a keep-alive
// connection, until ctx ends.
func (r *switchRig) load(ctx context.Context, wg *sync.WaitGroup, clients int) {
	for range clients {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.e.url("/"), nil)
				req.Host = benchHost
				ans := answer{start: time.Now()}
				resp, err := client.Do(req)
				if err != nil && ctx.Err() != nil {
					return
				}
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ans.body = string(body)
					}
				}
				r.mu.Lock()
				r.answers = append(r.answers, ans)
				r.mu.Unlock()
			}
		})
	}
}

// move publishes a table that moves the app's traffic from one release to
// the other and measures until the old one has drained everywhere.
func (r *switchRig) move(from, to *upstream) switchTimes {
	b := r.b
	b.Helper()
	r.mu.Lock()
	mark := len(r.answers)
	r.mu.Unlock()
	t0 := time.Now()
	ver := r.v.cp.publish(appTable([]proxy.Release{from.release(0), to.release(100)}, benchHost))

	var drainedAt time.Time
	testenv.Eventually(b, 10*time.Second, "old release drained in HAProxy's stats", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		stats, err := runtimeStats(ctx, r.sock)
		if err != nil {
			return err
		}
		weight, scur := 0, 0
		for k, row := range stats {
			if !strings.HasPrefix(k, proxy.BackendName("app_bench")+"/"+proxy.ServerPrefix(from.name)) {
				continue
			}
			n, _ := strconv.Atoi(row["scur"])
			scur += n
			// Slots without a task (MAINT) go on showing their old weight.
			if !strings.HasPrefix(row["status"], "MAINT") {
				w, _ := strconv.Atoi(row["weight"])
				weight += w
			}
		}
		if weight != 0 || scur != 0 {
			return fmt.Errorf("%s: weight %d, %d sessions", from.name, weight, scur)
		}
		drainedAt = time.Now()
		return nil
	})
	live := r.v.cp.waitReport(b, t0, "new version reported", func(s proxy.Status) bool { return s.Version >= ver })
	reported := r.v.cp.waitReport(b, t0, "old release reported drained", func(s proxy.Status) bool {
		rs, ok := s.Releases[from.name]
		return s.Version >= ver && ok && rs.Sessions == 0
	})
	time.Sleep(300 * time.Millisecond) // requests started after the switch have answered

	// The last request started that the old release answered (or that
	// failed) bounds when traffic moved.
	movedAt := t0
	r.mu.Lock()
	for _, ans := range r.answers[mark:] {
		if ans.body != to.name && ans.start.After(movedAt) {
			movedAt = ans.start
		}
	}
	r.mu.Unlock()
	return switchTimes{
		moved:    movedAt.Sub(t0),
		drained:  max(drainedAt.Sub(t0), movedAt.Sub(t0)),
		live:     live.at.Sub(t0),
		reported: reported.at.Sub(t0),
		at:       t0,
	}
}

// BenchmarkReleaseSwitch moves an app's traffic between two releases under
// a steady load, alternating directions, then once more to see how long
// HAProxy keeps idle connections to the old release.
func BenchmarkReleaseSwitch(b *testing.B) {
	v := newEnv(b)
	a := startUpstream(b, "web-a", []byte("web-a"), switchDelay)
	bb := startUpstream(b, "web-b", []byte("web-b"), switchDelay)
	r := &switchRig{b: b, v: v, e: v.startEdge(b)}
	r.sock = filepath.Join(r.e.runDir(), "haproxy.sock")
	since := time.Now()
	v.cp.publish(appTable([]proxy.Release{a.release(100), bb.release(0)}, benchHost))
	v.cp.waitReport(b, since, "both releases up", serving("web-a", "web-b"))
	testenv.Eventually(b, 10*time.Second, "web-a served", answers(r.e.url("/"), benchHost, []byte("web-a")))

	const clients = 8
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	r.load(ctx, &wg, clients)
	defer func() { stopLoad(); wg.Wait() }()

	var moved, drained, live, reported []time.Duration
	var idleAfter []float64
	from, to := a, bb
	for b.Loop() {
		for range *flagReps {
			time.Sleep(time.Second) // traffic settles on from, its idle connections too
			t := r.move(from, to)
			moved, drained = append(moved, t.moved), append(drained, t.drained)
			live, reported = append(live, t.live), append(reported, t.reported)
			// Connections HAProxy still holds to the old release (idle, in
			// its pool) a second after the switch.
			time.Sleep(time.Until(t.at.Add(time.Second)))
			idleAfter = append(idleAfter, float64(from.conns.Load()))
			from, to = to, from
		}
	}
	// Once more, waiting for HAProxy to close the idle connections.
	time.Sleep(time.Second)
	t := r.move(from, to)
	for from.conns.Load() > 0 && time.Since(t.at) < time.Minute {
		time.Sleep(50 * time.Millisecond)
	}
	idleGone, idleLeft := time.Since(t.at), from.conns.Load()
	stopLoad()
	wg.Wait()

	failed := 0
	for _, ans := range r.answers {
		if ans.body == "" {
			failed++
		}
	}
	mm, mx := percentiles(moved)
	dm, dx := percentiles(drained)
	lm, lx := percentiles(live)
	rm, rx := percentiles(reported)
	b.ReportMetric(float64(dm.Microseconds())/1000, "switch-ms")
	b.ReportMetric(float64(rm.Microseconds())/1000, "switch-reported-ms")
	printf("### Release switch: weights moved A→B, B→A … under %d clients, 10–30 ms per request at the app (%d switches)\n\n", clients, len(moved))
	printf("| from the table published to … | median | max | target |\n|---|---|---|---|\n")
	printf("| every later request answered by the new release | %s | %s | |\n", ms(mm), ms(mx))
	printf("| … and the old one at weight 0 with no session (HAProxy runtime stats) | %s | %s | ≤ 1 s |\n", ms(dm), ms(dx))
	printf("| a status report with the new version (what AwaitLive waits for) | %s | %s | |\n", ms(lm), ms(lx))
	printf("| a status report with the old release at 0 sessions (what AwaitDrained waits for) | %s | %s | ≤ 1 s |\n", ms(rm), ms(rx))
	gone := fmt.Sprintf("after %.1f s", idleGone.Seconds())
	if idleLeft > 0 {
		gone = fmt.Sprintf("not within %.0f s (%d left)", idleGone.Seconds(), idleLeft)
	}
	printf("\n%d requests during the switches, %d failed. Idle connections HAProxy kept open to the old release a second or so after a switch: median %.0f, max %.0f; it closed the last one %s.\n\n",
		len(r.answers), failed, medianOf(idleAfter), slices.Max(idleAfter), gone)
	if failed > 0 {
		b.Errorf("%d of %d requests failed during the switches", failed, len(r.answers))
	}
}
