// Package doctor owns `berth doctor`: the checks that tell an operator whether
// a host can run Berth (Docker Engine, Swarm, ports, data directory, kernel
// features) and, for each problem, what to do about it.
package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/probe"
)

// Check statuses.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "fail"
)

// MinAPIVersion is the oldest Docker Engine API Berth is tested with (Engine 20.10).
const MinAPIVersion = "1.41"

// Check is the outcome of one check.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok|warn|fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"` // what the operator should do, when not ok
}

// Options says what to check.
type Options struct {
	// Engine is the cluster's engine; nil fails the engine check.
	Engine orchestrator.Engine
	// Listen is the control plane's listen address (e.g. ":3000"); empty
	// skips its port check.
	Listen string
	// HTTPPort and HTTPSPort are the proxy's ports (80, 443); 0 skips a check.
	HTTPPort, HTTPSPort int
	// DataDir is Berth's data directory; empty skips its check.
	DataDir string
	// Probe is the berth executable release containers run as their health
	// probe; empty skips its check.
	Probe string
	// ReadFile reads kernel files (/proc/…); nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

// Run performs the checks in a stable order. It does not stop at a failure:
// the operator gets the whole picture at once.
func Run(ctx context.Context, opts Options) []Check {
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	var checks []Check

	var st orchestrator.EngineStatus
	if opts.Engine != nil {
		st = opts.Engine.Status(ctx)
	} else {
		st = orchestrator.EngineStatus{Error: "no Docker Engine configured"}
	}
	checks = append(checks, engineCheck(st), swarmCheck(st), ipvsCheck(opts.ReadFile))

	if opts.HTTPPort != 0 {
		checks = append(checks, portCheck("proxy http port", ":"+strconv.Itoa(opts.HTTPPort), "run the proxy on another port with --proxy-http-port", true))
	}
	if opts.HTTPSPort != 0 {
		checks = append(checks, portCheck("proxy https port", ":"+strconv.Itoa(opts.HTTPSPort), "run the proxy on another port with --proxy-https-port", true))
	}
	if opts.Listen != "" {
		checks = append(checks, portCheck("server port", opts.Listen, "listen elsewhere with --listen", false))
	}
	if opts.DataDir != "" {
		checks = append(checks, dataDirCheck(opts.DataDir))
	}
	if opts.Probe != "" {
		checks = append(checks, probeCheck(opts.Probe))
	}
	return checks
}

func engineCheck(st orchestrator.EngineStatus) Check {
	c := Check{Name: "docker engine"}
	if !st.Reachable {
		c.Status = Fail
		c.Detail = st.Error
		c.Fix = "start it: `systemctl start docker` or `dockerd &`; or set DOCKER_HOST to a running engine"
		return c
	}
	c.Detail = fmt.Sprintf("%s (API %s)", st.ServerVersion, st.APIVersion)
	if apiOlder(st.APIVersion, MinAPIVersion) {
		c.Status = Warn
		c.Detail += ", older than API " + MinAPIVersion
		c.Fix = "upgrade Docker Engine to 20.10 or newer; older engines are untested"
		return c
	}
	c.Status = OK
	return c
}

func swarmCheck(st orchestrator.EngineStatus) Check {
	c := Check{Name: "swarm"}
	if !st.Reachable {
		c.Status = Warn
		c.Detail = "not checked: docker engine unreachable"
		return c
	}
	s := st.Swarm
	switch s.State {
	case orchestrator.SwarmActive:
		if !s.IsManager {
			c.Status = Fail
			c.Detail = "active, but this engine is a worker"
			c.Fix = "point Berth at a manager (DOCKER_HOST), or promote this node with `docker node promote` on a manager"
			return c
		}
		c.Status = OK
		c.Detail = fmt.Sprintf("active, manager, %d node%s", len(s.Nodes), plural(len(s.Nodes)))
	case orchestrator.SwarmInactive, "":
		c.Status = Warn
		c.Detail = "inactive"
		c.Fix = "berth server initialises it at start; or run `docker swarm init --advertise-addr <ip>`"
	case orchestrator.SwarmLocked:
		c.Status = Fail
		c.Detail = "locked (autolock after an engine restart)"
		c.Fix = "unlock it with `docker swarm unlock` and the unlock key"
	default: // pending, error
		c.Status = Fail
		c.Detail = s.State
		if s.Error != "" {
			c.Detail += ": " + s.Error
		}
		c.Fix = "inspect with `docker info` and `docker node ls`; a single-node swarm can be reset with `docker swarm leave --force` (its services are lost)"
	}
	return c
}

// ipvsNote is why a missing IPVS is only a warning.
const ipvsNote = "Berth does not need IPVS: it uses dnsrr and its own proxy; only Swarm's ingress mesh/VIPs are affected"

func ipvsCheck(readFile func(string) ([]byte, error)) Check {
	c := Check{Name: "ipvs"}
	if _, err := readFile("/proc/net/ip_vs"); err == nil {
		c.Status = OK
		c.Detail = "available"
		return c
	}
	if mods, err := readFile("/proc/modules"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(mods))
		for sc.Scan() {
			if name, _, _ := strings.Cut(sc.Text(), " "); name == "ip_vs" {
				c.Status = OK
				c.Detail = "ip_vs module loaded"
				return c
			}
		}
	}
	c.Status = Warn
	c.Detail = "absent (" + ipvsNote + ")"
	return c
}

// portCheck binds addr and releases it at once. dockerBinds says the port is
// bound by Docker (host-mode publishing), not by this process, so lacking the
// privilege to bind it here proves nothing.
func portCheck(name, addr, alternative string, dockerBinds bool) Check {
	c := Check{Name: name}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.Status = Fail
		c.Detail = fmt.Sprintf("bad address %q: want host:port or :port", addr)
		c.Fix = alternative
		return c
	}
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
		c.Status = OK
		c.Detail = addr + " free"
		return c
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		c.Status = Fail
		c.Detail = addr + " in use"
		c.Fix = fmt.Sprintf("stop the process using port %s (see `ss -ltnp 'sport = :%s'`), or %s", port, port, alternative)
	case errors.Is(err, syscall.EACCES) && dockerBinds:
		c.Status = Warn
		c.Detail = addr + " not checked: binding it needs root (Docker binds it, not this process)"
		c.Fix = "run `berth doctor` as root to check it"
	case errors.Is(err, syscall.EACCES):
		c.Status = Fail
		c.Detail = addr + ": permission denied"
		c.Fix = "ports below 1024 need root: run berth as root, or `setcap cap_net_bind_service=+ep $(command -v berth)`, or " + alternative
	default:
		c.Status = Fail
		c.Detail = fmt.Sprintf("%s: %v", addr, err)
		c.Fix = alternative
	}
	return c
}

// probeCheck warns about a dynamically linked berth: as the health probe it
// cannot start in images without its loader.
func probeCheck(path string) Check {
	c := Check{Name: "health probe"}
	interp, err := probe.Interpreter(path)
	switch {
	case err != nil:
		c.Status, c.Detail = Warn, err.Error()
		c.Fix = "run berth built for Linux: release containers run it as their health check"
	case interp != "":
		c.Status = Warn
		c.Detail = fmt.Sprintf("%s is dynamically linked (built with cgo): health checks cannot run in images without %s (Alpine, distroless, scratch)", path, interp)
		c.Fix = probe.BuildStatic
	default:
		c.Status, c.Detail = OK, path+" is statically linked: it runs in any image"
	}
	return c
}

func dataDirCheck(dir string) Check {
	c := Check{Name: "data dir"}
	fail := func(err error) Check {
		c.Status = Fail
		c.Detail = fmt.Sprintf("%s not writable: %v", dir, err)
		c.Fix = fmt.Sprintf("create it writable by the user running berth (`mkdir -p %s && chown \"$(id -u)\" %s`), or choose another directory with --data-dir", dir, dir)
		return c
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".berth-doctor-*")
	if err != nil {
		return fail(err)
	}
	_, werr := f.WriteString("berth doctor\n")
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return fail(err)
	}
	c.Status = OK
	c.Detail = dir + " writable"
	return c
}

// Print writes one aligned line per check, and an indented fix line under
// each check that has one. It reports whether no check failed (warnings pass).
func Print(w io.Writer, checks []Check) (ok bool) {
	const statusWidth = 6
	width := 0
	for _, c := range checks {
		width = max(width, len(c.Name))
	}
	width += 2
	ok = true
	for _, c := range checks {
		fmt.Fprintf(w, "%-*s%-*s%s\n", statusWidth, c.Status, width, c.Name, c.Detail)
		if c.Fix != "" && c.Status != OK {
			fmt.Fprintf(w, "%*sfix: %s\n", statusWidth+width, "", c.Fix)
		}
		if c.Status == Fail {
			ok = false
		}
	}
	return ok
}

// apiOlder reports whether Docker API version a ("1.40") is older than b. An
// unparseable version is not called older: the engine answered, so let it be.
func apiOlder(a, b string) bool {
	am, an, aok := parseAPIVersion(a)
	bm, bn, bok := parseAPIVersion(b)
	if !aok || !bok {
		return false
	}
	return am < bm || (am == bm && an < bn)
}

func parseAPIVersion(v string) (major, minor int, ok bool) {
	ma, mi, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(ma)
	minor, err2 := strconv.Atoi(mi)
	return major, minor, err1 == nil && err2 == nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
