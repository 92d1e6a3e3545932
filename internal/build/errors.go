package build

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is what every validation error wraps: the options were refused
// before the Docker Engine was called.
var ErrInvalid = errors.New("invalid build options")

// InvalidError says which option was refused and what is allowed. Its text
// is safe to show the user who supplied the value.
type InvalidError struct {
	Field   string // the option, e.g. "dockerfile", "build arg", "tag"
	Problem string // what is wrong and what is allowed
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Problem }

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ErrSecretsNeedBuildKit refuses build secrets without BuildKit: the
// classic builder could only receive them as build args, and build args
// stay in the image's history for anyone who can pull it.
var ErrSecretsNeedBuildKit = errors.New("build secrets need BuildKit; " +
	"Berth will not pass them to the classic builder as build args, because build args stay readable in the image history. " +
	"Build with BuildKit, or give the values to the app at run time as variables")

// ErrContextTooLarge refuses a build context above the configured limit.
var ErrContextTooLarge = errors.New("build context too large")

// Error is a build the engine ran and that failed. Its text is plain words
// for the deployment's page: the failing Dockerfile step, why, and the last
// lines that step printed (secrets masked).
type Error struct {
	Step        string   // "Step 3/5 : RUN make", or "" when no step had started
	Reason      string   // the engine's message, e.g. "The command '/bin/sh -c make' returned a non-zero code: 2"
	Output      []string // the last lines the failing step printed
	MissingBase string   // the base image of a failing FROM step: not on the engine and not pullable
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.MissingBase != "":
		fmt.Fprintf(&b, "base image %q is not on this Docker Engine and could not be pulled (%s): %s", e.MissingBase, e.Step, e.Reason)
	case e.Step != "":
		fmt.Fprintf(&b, "%s failed: %s", e.Step, e.Reason)
	default:
		fmt.Fprintf(&b, "build failed before its first step: %s", e.Reason)
	}
	if len(e.Output) > 0 {
		b.WriteString("\nlast output of the step:")
		for _, l := range e.Output {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}
