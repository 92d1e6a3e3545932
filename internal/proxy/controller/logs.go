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
// fields the counters read and a copy (with the time made readable), not a
// JSON decode and encode and a write of its own. Lines that are not access log lines are HAProxy's own
// messages: logged as "haproxy" records, as from its standard error. Write
// may be called from several goroutines (one per HAProxy worker).
type accessLog struct {
	log     *slog.Logger
	traffic *traffic
	out     io.Writer // nil: the access log is counted, not written

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // writes buf out accessLogFlush after its first line
	// sec and date cache the RFC 3339 form of the last second seen
	// ("2006-01-02T15:04:05."): lines come in order, so one formatting a
	// second serves them all.
	sec  int64
	date []byte
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
	a.buf = a.appendLine(a.buf, line)
	a.buf = append(a.buf, '\n')
	if len(a.buf) >= accessLogBuffer {
		a.flushLocked()
	}
}

// appendLine appends line to buf with its time, HAProxy's epoch seconds
// and milliseconds (`{"time":1893553445.678,`), as an RFC 3339 string in
// UTC (`{"time":"2030-01-02T03:04:05.678Z",`); a line of another shape is
// appended unchanged.
func (a *accessLog) appendLine(buf, line []byte) []byte {
	rest, ok := bytes.CutPrefix(line, []byte(`{"time":`))
	dot := bytes.IndexByte(rest, '.')
	if !ok || dot < 1 || dot > 12 || len(rest) < dot+5 || rest[dot+4] != ',' {
		return append(buf, line...)
	}
	var sec int64
	for _, c := range rest[:dot] {
		if c < '0' || c > '9' {
			return append(buf, line...)
		}
		sec = sec*10 + int64(c-'0')
	}
	if sec != a.sec || a.date == nil {
		a.sec, a.date = sec, time.Unix(sec, 0).UTC().AppendFormat(a.date[:0], "2006-01-02T15:04:05.")
	}
	buf = append(buf, `{"time":"`...)
	buf = append(buf, a.date...)
	buf = append(buf, rest[dot+1:dot+4]...)
	buf = append(buf, `Z"`...)
	return append(buf, rest[dot+4:]...)
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
