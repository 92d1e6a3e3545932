package proxy_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wrkResult is what the bench reads from `wrk --latency`.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	non2xx   int64
	errors   string // wrk's "Socket errors" line, "" when there were none
}

var (
	rpsRe      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	pctRe      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	requestsRe = regexp.MustCompile(`(?m)^\s+(\d+) requests in `)
	non2xxRe   = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses: (\d+)`)
	errorsRe   = regexp.MustCompile(`(?m)^\s+Socket errors: (.*)$`)
)

// parseWrk reads requests/s, p50, p99 and the failures from wrk's output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := rpsRe.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	units := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}
	for _, m := range pctRe.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		d := time.Duration(v * float64(units[m[3]]))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if r.p50 == 0 || r.p99 == 0 {
		return r, fmt.Errorf("no 50%%/99%% latency in wrk output (--latency missing?):\n%s", out)
	}
	if m := requestsRe.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := non2xxRe.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := errorsRe.FindStringSubmatch(out); m != nil {
		r.errors = m[1]
	}
	return r, nil
}

func TestParseWrk(t *testing.T) {
	const out = `Running 10s test @ http://127.0.0.1:20001/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.05ms  31.20ms   80.12%
    Req/Sec    15.40k     1.10k   18.01k    71.00%
  Latency Distribution
     50%  812.00us
     75%    2.40ms
     90%    3.01ms
     99%    1.20s
  306543 requests in 10.00s, 349.12MB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:  30650.61
Transfer/sec:     34.91MB
`
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{rps: 30650.61, p50: 812 * time.Microsecond, p99: 1200 * time.Millisecond,
		requests: 306543, non2xx: 12, errors: "connect 0, read 0, write 0, timeout 3"}
	if got != want {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}
	if _, err := parseWrk(strings.Replace(out, "  Latency Distribution", "", 1)[:200]); err == nil {
		t.Error("output without Requests/sec parsed")
	}
}

// load is one measured wrk run and the CPU time each party used meanwhile.
type load struct {
	wrkResult
	elapsed time.Duration
	wrkCPU  time.Duration
	cpu     map[string]time.Duration // per party named by the target
}

// target is one way to reach the upstream.
type target struct {
	name string
	url  string
	// parties are the processes whose CPU time is reported, by name.
	parties func() map[string][]int
}

// runWrk runs wrk against tg with the bench's parameters for d (whole
// seconds), failing on any error or non-2xx response.
func runWrk(b *testing.B, tg target, d time.Duration) load {
	b.Helper()
	args := []string{"-t" + strconv.Itoa(*flagThreads), "-c" + strconv.Itoa(*flagConns),
		"-d" + strconv.Itoa(max(1, int(d.Seconds()))) + "s", "--latency", "-H", "Host: " + benchHost, tg.url}
	cmd := exec.Command(need(b, "wrk", "wrk"), args...)
	cmd.SysProcAttr = orphanSignal(syscall.SIGKILL)
	parties := map[string][]int{}
	if tg.parties != nil {
		parties = tg.parties()
	}
	parties["upstream"] = []int{selfPID}
	before := make(map[string]time.Duration)
	for name, pids := range parties {
		before[name] = cpuTime(pids)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		b.Fatal(err)
	}
	if r.non2xx > 0 || r.errors != "" {
		b.Fatalf("%s: %d non-2xx responses, socket errors %q:\n%s", tg.name, r.non2xx, r.errors, out)
	}
	l := load{wrkResult: r, elapsed: elapsed, cpu: make(map[string]time.Duration)}
	l.wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	for name, pids := range parties {
		l.cpu[name] = cpuTime(pids) - before[name]
	}
	return l
}

// perRequest is d spread over the requests of l, in microseconds.
func (l load) perRequest(d time.Duration) float64 {
	if l.requests == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(l.requests)
}

// proxyCPU is the proxy's CPU time per request, in µs, split between
// HAProxy and the controller for berth proxy.
func (l load) proxyCPU() string {
	c, ok := l.cpu["controller"]
	if !ok {
		return fmt.Sprintf("%.1f", l.perRequest(l.cpu["proxy"]))
	}
	h := l.cpu["haproxy"]
	return fmt.Sprintf("%.1f (haproxy %.1f, controller %.1f)", l.perRequest(h+c), l.perRequest(h), l.perRequest(c))
}

// combine is the mean of runs: requests/s and latencies averaged, requests
// and CPU times summed.
func combine(ls []load) load {
	out := load{cpu: make(map[string]time.Duration)}
	var rps float64
	var p50, p99 time.Duration
	for _, l := range ls {
		rps += l.rps
		p50 += l.p50
		p99 += l.p99
		out.requests += l.requests
		out.elapsed += l.elapsed
		out.wrkCPU += l.wrkCPU
		for k, d := range l.cpu {
			out.cpu[k] += d
		}
	}
	n := len(ls)
	out.rps, out.p50, out.p99 = rps/float64(n), p50/time.Duration(n), p99/time.Duration(n)
	return out
}

// ms formats d in milliseconds, with two decimals below 10 ms.
func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// thousands formats n with comma separators, like the README's tables.
func thousands(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
