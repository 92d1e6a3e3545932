package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// LogLine is one line of a replica's output.
type LogLine struct {
	Time   *time.Time `json:"time,omitempty" doc:"When the line was written; only with timestamps=true"`
	Task   string     `json:"task" doc:"Task (replica attempt) id"`
	Slot   int        `json:"slot" example:"1" doc:"Replica slot"`
	Stream string     `json:"stream" enum:"stdout,stderr"`
	Text   string     `json:"text" doc:"The line, without its newline"`
}

type logsInput struct {
	AppParams
	Tail       int    `query:"tail" minimum:"0" maximum:"100000" default:"100" doc:"Last N lines of each replica; 0 for all"`
	Since      string `query:"since" maxLength:"64" example:"10m" doc:"Only lines since then: a duration back from now (10m, 2h) or an RFC 3339 time"`
	Follow     bool   `query:"follow" doc:"Keep the stream open and send new lines as they are written, until the client leaves"`
	Timestamps bool   `query:"timestamps" doc:"Include each line's time"`
}

// streamFunc writes an event stream until it is done or ctx ends.
type streamFunc func(ctx context.Context, send sendFunc) error

// sendFunc writes one event; data is sent as JSON.
type sendFunc func(event string, data any) error

const (
	// streamWriteTimeout bounds each write, so a client that stops reading
	// does not hold the stream forever.
	streamWriteTimeout = 30 * time.Second
	// streamKeepAlive is how often an idle stream sends a comment, so
	// proxies do not close it.
	streamKeepAlive = 15 * time.Second
)

// registerStream adds a Server-Sent Events operation through register, so it
// gets the same authentication and error mapping as every other: h checks
// the request and any error it returns is a problem, answered before the
// stream starts; the streamFunc it returns then writes the events. events
// maps each event name to its data type, for the OpenAPI document.
func registerStream[I any](s *server, op huma.Operation, events map[string]any, h func(context.Context, *I) (streamFunc, error)) {
	registry := s.api.OpenAPI().Components.Schemas
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range events {
			if !yield(k) {
				return
			}
		}
	})
	var variants []*huma.Schema
	for _, name := range names {
		t := reflect.TypeOf(events[name])
		variants = append(variants, &huma.Schema{
			Title: "Event " + name,
			Type:  huma.TypeObject,
			Properties: map[string]*huma.Schema{
				"event": {Type: huma.TypeString, Description: "The event name.", Extensions: map[string]any{"const": name}},
				"data":  registry.Schema(t, true, t.Name()),
			},
			Required: []string{"event", "data"},
		})
	}
	op.Responses = map[string]*huma.Response{"200": {
		Description: "A stream of Server-Sent Events (`text/event-stream`); each event's `data` is one JSON document.",
		Content: map[string]*huma.MediaType{"text/event-stream": {Schema: &huma.Schema{
			Title: "Server-Sent Events",
			Type:  huma.TypeArray,
			Items: &huma.Schema{Extensions: map[string]any{"oneOf": variants}},
		}}},
	}}
	register(s, op, func(ctx context.Context, in *I) (*huma.StreamResponse, error) {
		run, err := h(ctx, in)
		if err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) { s.serveStream(hctx, run) }}, nil
	})
}

// serveStream writes the event stream's headers and runs it with a
// keep-alive, which it stops and waits for before returning.
func (s *server) serveStream(hctx huma.Context, run streamFunc) {
	ctx := hctx.Context()
	_, w := humago.Unwrap(hctx)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx in front must not buffer the stream
	w.WriteHeader(http.StatusOK)

	var mu sync.Mutex
	write := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) // unsupported writers just lack the bound
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write([]byte(": stream open\n\n")); err != nil {
		return
	}
	send := func(event string, data any) error {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		return write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", event, b))
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(streamKeepAlive)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if write([]byte(": keep-alive\n\n")) != nil {
					cancel()
					return
				}
			}
		}
	})
	err := run(ctx, send)
	cancel()
	wg.Wait()
	if err == nil || hctx.Context().Err() != nil {
		return // done, or the client left
	}
	// Too late for a status code: end the stream with the problem's
	// user-safe message (problem logs unexpected errors).
	msg := internalErrorMessage
	var m *huma.ErrorModel
	if errors.As(s.problem(hctx.Context(), err), &m) {
		msg = m.Detail
	}
	send("error", StreamError{Message: msg})
}

func (s *server) registerLogs() {
	registerStream(s, huma.Operation{
		OperationID: "app-logs",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/logs",
		Tags:        []string{"Apps"},
		Summary:     "Stream an app's logs",
		Description: "Streams the container output of the app's current release as Server-Sent Events, one `event: log` per line. " +
			"Without `follow` the stream ends after the existing lines; with it, it stays open until the client leaves. " +
			"An app that has never been deployed answers 409.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable},
	}, map[string]any{"log": LogLine{}, "error": StreamError{}}, s.appLogs)
}

// parseSince reads a duration back from now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	msg := "since must be a duration such as 10m or 2h, or an RFC 3339 time such as 2030-01-02T15:04:05Z"
	return time.Time{}, huma.Error422UnprocessableEntity(msg, &huma.ErrorDetail{Location: "query.since", Message: msg})
}

func (s *server) appLogs(ctx context.Context, in *logsInput) (streamFunc, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	since, err := parseSince(strings.TrimSpace(in.Since), time.Now())
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	// Answer 404 or 409 before the stream starts.
	a, err := s.deps.Apps.App(ctx, p, ref)
	if err != nil {
		return nil, err
	}
	if a.CurrentDeploymentID == "" {
		return nil, huma.Error409Conflict(ref.String() + " has not been deployed yet")
	}
	opts := orchestrator.LogOptions{Tail: in.Tail, Since: since, Follow: in.Follow, Timestamps: in.Timestamps}
	return func(ctx context.Context, send sendFunc) error {
		return s.deps.Apps.Logs(ctx, p, ref, opts, func(l orchestrator.LogLine) error {
			line := LogLine{Task: l.Task, Slot: l.Slot, Stream: l.Stream, Text: l.Text}
			if in.Timestamps && !l.Time.IsZero() {
				t := l.Time
				line.Time = &t
			}
			return send("log", line)
		})
	}, nil
}
