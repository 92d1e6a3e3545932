// Package probe owns the health probe Berth runs inside release containers.
// Images built FROM scratch have no curl or wget, and the host cannot reach
// overlay addresses, so a container's health check runs this static program,
// bind-mounted read-only into the container (the berth binary itself, invoked
// as `berth probe …`). Docker keeps the probe's output as the health log, so
// a failing probe prints one short line saying why.
//
//	probe http <url> [--expect STATUS] [--timeout D]
//	probe tcp <host:port> [--timeout D]
//
// It uses the standard library only: it must stay small and static.
package probe

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultTimeout bounds a probe when --timeout is not given.
const DefaultTimeout = 2 * time.Second

// bodyExcerpt is how much of a failing response's body the probe reports.
const bodyExcerpt = 200

// Exit codes, as Docker health checks read them: 0 healthy, 1 unhealthy.
// Usage errors also exit 1 (Docker reserves 2), so a misconfigured check
// shows up as failing with the usage message in the health log.
const (
	exitHealthy   = 0
	exitUnhealthy = 1
)

// Main runs the probe with args (without the program name) and returns the
// process exit code. It prints at most one line, on stdout, when the check
// fails.
func Main(args []string) int {
	return run(args, os.Stdout)
}

func run(args []string, out io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(out, "usage: probe http <url> [--expect STATUS] [--timeout D] | probe tcp <host:port> [--timeout D]")
		return exitUnhealthy
	}
	var err error
	switch args[0] {
	case "http":
		err = runHTTP(args[1:])
	case "tcp":
		err = runTCP(args[1:])
	default:
		err = fmt.Errorf("probe: unknown check %q (want http or tcp)", args[0])
	}
	if err != nil {
		fmt.Fprintln(out, oneLine(err.Error()))
		return exitUnhealthy
	}
	return exitHealthy
}

// parse reads one positional argument and the flags, in any order.
func parse(name string, args []string, expect *int) (target string, timeout time.Duration, err error) {
	fs := flag.NewFlagSet("probe "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.DurationVar(&timeout, "timeout", DefaultTimeout, "give up after this long")
	if expect != nil {
		fs.IntVar(expect, "expect", 0, "expected HTTP status (default: any 2xx or 3xx)")
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", 0, fmt.Errorf("probe %s: %w", name, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", 0, fmt.Errorf("probe %s: want exactly one target, got %d", name, len(pos))
	}
	if timeout <= 0 {
		return "", 0, fmt.Errorf("probe %s: --timeout must be positive", name)
	}
	return pos[0], timeout, nil
}

func runHTTP(args []string) error {
	var expect int
	url, timeout, err := parse("http", args, &expect)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: timeout,
		// A redirect is an answer: 3xx counts as healthy, and following it
		// could leave the container.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "berth-probe")
	resp, err := client.Do(req)
	if err != nil {
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // drop net/http's repeated `Get "url":` prefix
		}
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 400
	if expect != 0 {
		ok = resp.StatusCode == expect
	}
	if ok {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, bodyExcerpt))
	msg := fmt.Sprintf("GET %s: status %d", url, resp.StatusCode)
	if expect != 0 {
		msg += fmt.Sprintf(" (want %d)", expect)
	}
	if b := strings.TrimSpace(validUTF8(body)); b != "" {
		msg += ": " + b
	}
	return errors.New(msg)
}

func runTCP(args []string) error {
	addr, timeout, err := parse("tcp", args, nil)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err // "dial tcp 127.0.0.1:8080: connect: connection refused"
	}
	return conn.Close()
}

// validUTF8 drops a multi-byte character cut by the excerpt limit.
func validUTF8(b []byte) string {
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// oneLine folds a message onto one line: Docker shows the health log as is.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
