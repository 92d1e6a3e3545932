package controller

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Bounds of the access log's output buffer: it is written out when it holds
// accessLogBuffer bytes or accessLogFlush after the oldest line in it, and
// when the controller stops.
const (
	accessLogBuffer = 64 << 10
	accessLogFlush  = 100 * time.Millisecond
)

// accessLog takes HAProxy's log, whole lines at a time (see
// haproxy.LogListener). HAProxy writes each request as one JSON object in
// proxy's access log format; accessLog counts it in traffic and copies the
// line unchanged to out, buffered, so a request costs a scan for the few
// fields the counters read and a copy, not a JSON decode and encode and a
// write of its own. Lines that are not access log lines are HAProxy's own
// messages: logged as "haproxy" records, as from its standard error. Write
// may be called from several goroutines (one per HAProxy worker).
type accessLog struct {
	log     *slog.Logger
	traffic *traffic
	out     io.Writer // nil: the access log is counted, not written

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // writes buf out accessLogFlush after its first line
}

func newAccessLog(log *slog.Logger, tr *traffic, out io.Writer) *accessLog {
	return &accessLog{log: log, traffic: tr, out: out}
}

// Write handles lines, each ended by '\n'.
func (a *accessLog) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(line) > 0 && line[0] == '{' && a.traffic.record(line) {
			a.emit(line)
			continue
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			a.log.Log(context.Background(), haproxyLevel(line), "haproxy", "output", string(line))
		}
	}
	return len(p), nil
}

// haproxyLevel is the level of one of HAProxy's own messages.
func haproxyLevel(line []byte) slog.Level {
	switch {
	case bytes.HasPrefix(line, []byte("[WARNING]")):
		return slog.LevelWarn
	case bytes.HasPrefix(line, []byte("[ALERT]")):
		return slog.LevelError
	}
	return slog.LevelInfo
}

// emit adds one access log line to the output buffer.
func (a *accessLog) emit(line []byte) {
	if a.out == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.buf) == 0 {
		if a.timer == nil {
			a.timer = time.AfterFunc(accessLogFlush, a.Flush)
		} else {
			a.timer.Reset(accessLogFlush)
		}
	}
	a.buf = append(a.buf, line...)
	a.buf = append(a.buf, '\n')
	if len(a.buf) >= accessLogBuffer {
		a.flushLocked()
	}
}

// Flush writes out the buffered lines.
func (a *accessLog) Flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
}

func (a *accessLog) flushLocked() {
	if len(a.buf) == 0 {
		return
	}
	// Lost lines cannot be logged anywhere better: the logger writes to
	// the same output.
	_, _ = a.out.Write(a.buf)
	a.buf = a.buf[:0]
}
