package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/docker/docker/pkg/jsonmessage"
)

// TailLines is how many of the last output lines Result.Tail keeps.
const TailLines = 20

// stepTail is how many lines of a failing step's output its Error keeps:
// enough for a compiler's complaint, short enough to read on a page.
const stepTail = 15

// ansiEscape matches terminal control sequences: the classic builder paints
// a step's stderr red with them, and stored logs are plain text.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// stepLine is the classic builder's header of each Dockerfile instruction.
var stepLine = regexp.MustCompile(`^Step \d+/\d+ : (.*)$`)

// stream turns the engine's JSON message stream into masked log lines and
// remembers what a result or an error needs.
type stream struct {
	mask Mask
	logf func(string)

	pending string   // stream text after its last newline
	tail    []string // the last TailLines lines
	step    string   // the current "Step n/m : …" line
	stepOut []string // the last stepTail lines of the current step's own output
	imageID string

	vertices map[string]*vertex // BuildKit's steps, by digest
	failed   *vertex            // the BuildKit step that failed the build
}

// read consumes r to its end. It returns an *Error when the engine reports
// a failed build, and other errors when the stream itself breaks.
func (s *stream) read(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			s.flush()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the build output: %w", err)
		}
		if err := s.message(&m); err != nil {
			return err
		}
	}
}

func (s *stream) message(m *jsonmessage.JSONMessage) error {
	if m.Error != nil || m.ErrorMessage != "" {
		s.flush()
		reason := m.ErrorMessage
		if m.Error != nil && m.Error.Message != "" {
			reason = m.Error.Message
		}
		if s.vertices != nil {
			return s.buildKitFailure(strings.TrimSpace(reason))
		}
		return s.failure(strings.TrimSpace(reason))
	}
	if m.ID == traceID && m.Aux != nil {
		return s.trace(*m.Aux)
	}
	if m.Aux != nil {
		var aux struct{ ID string }
		if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
			s.imageID = aux.ID
		}
	}
	if m.Stream != "" {
		text := s.pending + m.Stream
		lines := strings.Split(text, "\n")
		s.pending = lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			s.line(l)
		}
	}
	// Pulling a base image: keep the phases ("Pulling fs layer", "Pull
	// complete"), not the byte counters redrawn many times a second.
	if m.Status != "" && (m.Progress == nil || m.Progress.Total == 0 && m.Progress.Current == 0) {
		if m.ID != "" {
			s.line(m.ID + ": " + m.Status)
		} else {
			s.line(m.Status)
		}
	}
	return nil
}

// flush emits a last line that had no newline.
func (s *stream) flush() {
	if s.pending != "" {
		s.line(s.pending)
		s.pending = ""
	}
}

// clean makes a line of output fit a stored log: what a progress bar
// showed last, no terminal colours, secrets masked.
func (s *stream) clean(l string) string {
	// A progress bar redraws its line with carriage returns.
	if i := strings.LastIndex(strings.TrimRight(l, "\r"), "\r"); i >= 0 {
		l = l[i+1:]
	}
	l = ansiEscape.ReplaceAllString(l, "")
	return s.mask.Apply(strings.TrimRight(l, "\r\t "))
}

// line delivers one line of output.
func (s *stream) line(l string) { s.deliver(s.clean(l)) }

// deliver delivers a line of output that is clean already.
func (s *stream) deliver(l string) {
	if l == "" {
		return
	}
	if stepLine.MatchString(l) {
		s.step, s.stepOut = l, nil
	} else if !strings.HasPrefix(l, " ---> ") && !strings.HasPrefix(l, "Removing intermediate container ") {
		s.stepOut = keepLast(s.stepOut, l, stepTail)
	}
	s.tail = keepLast(s.tail, l, TailLines)
	if s.logf != nil {
		s.logf(l)
	}
}

// failure makes the error of a build that failed with reason.
func (s *stream) failure(reason string) *Error {
	e := &Error{Step: s.step, Reason: s.mask.Apply(reason), Output: s.stepOut}
	if sm := stepLine.FindStringSubmatch(s.step); sm != nil {
		f := strings.Fields(sm[1])
		if len(f) > 1 && strings.EqualFold(f[0], "FROM") {
			for _, a := range f[1:] {
				if !strings.HasPrefix(a, "--") {
					e.MissingBase = a
					break
				}
			}
		}
	}
	return e
}

func keepLast(lines []string, l string, n int) []string {
	lines = append(lines, l)
	if len(lines) > n {
		// Copy so the backing array does not grow with the whole log.
		lines = append(lines[:0:0], lines[len(lines)-n:]...)
	}
	return lines
}
