package swarm

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// rotatedLog is the log driver Berth's services get on an engine whose
// default is json-file: Docker's default driver never deletes a line, so a
// chatty app, or the edge proxy writing a line per request, would fill the
// node's disk. It keeps what Docker's own "local" driver keeps: 5 files of
// 20 MB per container, the oldest deleted first.
var rotatedLog = swarm.Driver{Name: "json-file", Options: map[string]string{"max-size": "20m", "max-file": "5"}}

// specOptions is e.spec with the log driver for services: rotatedLog when
// the engine's default log driver is json-file, the engine's default (nil)
// otherwise, as an administrator who chose another driver (local, journald,
// a log shipper) chose its retention too. The default is asked once.
func (e *Engine) specOptions(ctx context.Context) (SpecOptions, error) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	if !e.logKnown {
		info, err := e.api.Info(ctx)
		if err != nil {
			return SpecOptions{}, e.unreachable(err)
		}
		if info.LoggingDriver == rotatedLog.Name {
			e.logs = &rotatedLog
		}
		e.logKnown = true
	}
	o := e.spec
	o.LogDriver = e.logs
	return o, nil
}

// Logs streams the release's log lines to out, oldest first, until the logs
// are exhausted or, with opts.Follow, until ctx ends. Every line carries its
// time, task and slot; opts.Timestamps is implied. An error from out stops
// the stream and is returned.
func (e *Engine) Logs(ctx context.Context, service string, opts orchestrator.LogOptions, out func(orchestrator.LogLine) error) error {
	svc, err := e.inspectService(ctx, service)
	if err != nil {
		return err
	}
	if svc == nil {
		return fmt.Errorf("logs of %s: %w", service, orchestrator.ErrServiceNotFound)
	}
	lo := container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Timestamps: true, // always: LogLine.Time
		Details:    true, // the task id
		Follow:     opts.Follow,
		Tail:       "all",
	}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = strconv.FormatInt(opts.Since.Unix(), 10) + "." + fmt.Sprintf("%09d", opts.Since.Nanosecond())
	}
	rc, err := e.api.ServiceLogs(ctx, svc.ID, lo)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", service, e.unreachable(err))
	}
	defer rc.Close()
	// Closing the body is what ends a blocked read when ctx ends.
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()

	slots := &slotCache{e: e, service: svc.ID}
	err = readFrames(rc, func(stream, payload string) error {
		l := parseLogLine(payload)
		l.Stream = stream
		l.Slot = slots.slot(ctx, l.Task)
		return out(l)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("logs of %s: %w", service, err)
	}
	return nil
}

// slotCache maps task ids to replica slots, listing the service's tasks
// again when a task it does not know appears (a replacement while following).
type slotCache struct {
	e       *Engine
	service string
	slots   map[string]int
	listed  time.Time
}

func (c *slotCache) slot(ctx context.Context, task string) int {
	if s, ok := c.slots[task]; ok || task == "" {
		return s
	}
	if time.Since(c.listed) < time.Second {
		return 0 // listed moments ago: do not list per line
	}
	c.listed = time.Now()
	tasks, err := c.e.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", c.service))})
	if err != nil {
		return 0
	}
	if c.slots == nil {
		c.slots = map[string]int{}
	}
	for _, t := range tasks {
		c.slots[t.ID] = t.Slot
	}
	return c.slots[task]
}

// readFrames reads the engine's multiplexed log stream (no TTY): frames of an
// 8-byte header — stream (1 stdout, 2 stderr, 3 an error from the engine),
// three zero bytes, a big-endian uint32 length — and the payload. One log
// message per frame; a frame holding several lines is split.
func readFrames(r io.Reader, line func(stream, payload string) error) error {
	br := bufio.NewReaderSize(r, 32<<10)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return err
		}
		var stream string
		switch hdr[0] {
		case 1:
			stream = "stdout"
		case 2:
			stream = "stderr"
		case 3:
			return fmt.Errorf("engine: %s", strings.TrimSpace(string(payload)))
		default:
			return fmt.Errorf("unexpected log stream %d: not a multiplexed stream", hdr[0])
		}
		text := strings.TrimSuffix(string(payload), "\n")
		for l := range strings.SplitSeq(text, "\n") {
			if err := line(stream, l); err != nil {
				return err
			}
		}
	}
}

// parseLogLine reads "<RFC3339Nano time> <details> <text>", details being
// URL-encoded "k=v,k=v" attributes (com.docker.swarm.task.id among them).
// A line without that prefix (a continuation line) keeps its text whole.
func parseLogLine(s string) orchestrator.LogLine {
	var l orchestrator.LogLine
	ts, rest, ok := strings.Cut(s, " ")
	if !ok {
		l.Text = s
		return l
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		l.Text = s
		return l
	}
	l.Time = t
	details, text, _ := strings.Cut(rest, " ")
	attrs, isDetails := parseDetails(details)
	if !isDetails {
		l.Text = rest
		return l
	}
	l.Task = attrs["com.docker.swarm.task.id"]
	l.Text = text
	return l
}

func parseDetails(s string) (map[string]string, bool) {
	attrs := map[string]string{}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, false
		}
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, false
		}
		attrs[k] = v
	}
	_, ok := attrs["com.docker.swarm.task.id"]
	return attrs, ok
}
