package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/distribution/reference"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"google.golang.org/protobuf/proto"
)

// traceID names BuildKit's progress updates in the engine's stream: each a
// StatusResponse, marshalled and base64-encoded. The built image comes in an
// aux message as the classic builder's does.
const traceID = "moby.buildkit.trace"

// metadataStep is BuildKit's name for resolving a base image; when it
// fails, the base image is missing.
const metadataStep = "[internal] load metadata for "

// openSession opens a BuildKit client session to the engine that serves
// secrets (id → value) to RUN --mount=type=secret steps. The engine asks for
// a secret when a step mounts it; nothing is written to disk or to the
// image. Close the session when the build has ended; failed says why it
// ended early, if it did, for a build that failed for want of it.
func openSession(ctx context.Context, cli Builder, app string, secrets map[string]string) (s *session.Session, failed func() error, err error) {
	s, err = session.NewSession(ctx, app)
	if err != nil {
		return nil, nil, fmt.Errorf("opening a BuildKit session: %w", err)
	}
	values := make(map[string][]byte, len(secrets))
	for k, v := range secrets {
		values[k] = []byte(v)
	}
	s.Allow(secretsprovider.FromMap(values))
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return cli.DialHijack(ctx, "/session", proto, meta)
		})
	}()
	return s, func() error {
		select {
		case err := <-done:
			return err
		default:
			return nil
		}
	}, nil
}

// noBuildKit reports whether the engine refused a build because it has no
// BuildKit (an engine older than API 1.39, or not on Linux).
func noBuildKit(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "buildkit") && strings.Contains(msg, "not supported")
}

// contextLost reports whether BuildKit failed to read the context it was
// sent: it reads it once, and a build cache prune that runs meanwhile can
// remove what it kept of it (seen on Engine 20.10 when a build and a prune
// overlap).
func contextLost(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Step == "" && strings.Contains(e.Reason, "failed to read downloaded context") && strings.Contains(e.Reason, "context not found")
}

// vertex is one step of a BuildKit build as the log shows it.
type vertex struct {
	n       int    // its number in the log, "#3"
	name    string // "[build 2/4] RUN go build ./..."
	started bool
	done    bool
	err     string
	pending string   // output after its last newline
	out     []string // its last stepTail lines of output
}

// trace relays one BuildKit progress update: a line when a step starts, the
// lines it prints (prefixed with its number, as steps run side by side),
// and a line when it ends.
func (s *stream) trace(raw json.RawMessage) error {
	var data []byte
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Errorf("reading the build output: %w", err)
	}
	var st controlapi.StatusResponse
	if err := proto.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("reading the build output: %w", err)
	}
	for _, pv := range st.Vertexes {
		v := s.vertex(pv.Digest)
		// A step's name has its build args expanded.
		v.name = s.clean(pv.Name)
		if pv.Started != nil && !v.started {
			v.started = true
			s.deliver(fmt.Sprintf("#%d %s", v.n, v.name))
		}
		if pv.Completed == nil || v.done {
			continue
		}
		v.done = true
		s.flushVertex(v)
		switch {
		case pv.Error != "":
			v.err = pv.Error
			if s.failed == nil && !strings.HasSuffix(pv.Error, context.Canceled.Error()) {
				s.failed = v
			}
			s.line(fmt.Sprintf("#%d ERROR: %s", v.n, pv.Error))
		case pv.Cached:
			s.line(fmt.Sprintf("#%d CACHED", v.n))
		case pv.Started != nil:
			d := pv.Completed.AsTime().Sub(pv.Started.AsTime())
			s.line(fmt.Sprintf("#%d DONE %.1fs", v.n, d.Seconds()))
		}
	}
	for _, l := range st.Logs {
		v := s.vertex(l.Vertex)
		lines := strings.Split(v.pending+string(l.Msg), "\n")
		v.pending = lines[len(lines)-1]
		for _, text := range lines[:len(lines)-1] {
			s.vertexLine(v, text)
		}
	}
	for _, w := range st.Warnings {
		s.line("WARNING: " + string(w.Short))
	}
	return nil
}

// vertex returns the step with digest, numbering it when it is new.
func (s *stream) vertex(digest string) *vertex {
	if s.vertices == nil {
		s.vertices = map[string]*vertex{}
	}
	v, ok := s.vertices[digest]
	if !ok {
		v = &vertex{n: len(s.vertices) + 1}
		s.vertices[digest] = v
	}
	return v
}

// vertexLine delivers a line a step printed.
func (s *stream) vertexLine(v *vertex, text string) {
	if l := s.clean(text); l != "" {
		v.out = keepLast(v.out, l, stepTail)
		s.deliver(fmt.Sprintf("#%d %s", v.n, l))
	}
}

// flushVertex delivers a step's last line that had no newline.
func (s *stream) flushVertex(v *vertex) {
	if v.pending != "" {
		s.vertexLine(v, v.pending)
		v.pending = ""
	}
}

// buildKitFailure makes the error of a BuildKit build that failed with
// reason: the step that failed, and what it printed.
func (s *stream) buildKitFailure(reason string) *Error {
	for _, v := range s.vertices {
		s.flushVertex(v)
	}
	e := &Error{Reason: s.mask.Apply(reason)}
	v := s.failed
	if v == nil {
		return e
	}
	e.Step, e.Output = v.name, v.out
	if ref, ok := strings.CutPrefix(v.name, metadataStep); ok {
		e.MissingBase = ref
		if named, err := reference.ParseNormalizedNamed(ref); err == nil {
			e.MissingBase = reference.FamiliarString(named)
		}
	}
	return e
}
