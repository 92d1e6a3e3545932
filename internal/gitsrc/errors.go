package gitsrc

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on with errors.Is. Their text is safe to show users.
var (
	// ErrInvalid marks every validation failure (see *ValidationError).
	ErrInvalid = errors.New("invalid git source")
	// ErrAuth: the server refused the token or the deploy key, or asked for
	// credentials none were given for.
	ErrAuth = errors.New("git authentication failed")
	// ErrHostKey: the SSH server's host key is not the pinned one (see *HostKeyError).
	ErrHostKey = errors.New("ssh host key verification failed")
	// ErrRefNotFound: the branch or tag does not exist on the remote.
	ErrRefNotFound = errors.New("git ref not found")
	// ErrCommitNotFound: the commit could not be fetched (not on the server, or
	// not reachable from the given ref within the deepening limit).
	ErrCommitNotFound = errors.New("git commit not found")
)

// ValidationError says which field is wrong and what is allowed. It never
// repeats the value: a hostile or secret-bearing value must not travel on
// into logs and UI.
type ValidationError struct {
	Field  string // e.g. "url", "branch", "dockerfile"
	Reason string // what is wrong and what is allowed
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true for every validation failure.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// HostKeyError reports an SSH host whose key is not pinned (Unknown, when
// pins exist but none for this host) or differs from the pinned one.
type HostKeyError struct {
	Host    string   // host:port as dialled
	Pinned  []string // SHA256 fingerprints of the pinned keys for Host
	Offered string   // SHA256 fingerprint the server presented
	Unknown bool
}

func (e *HostKeyError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("host key for %s is not pinned (server offered %s); the pinned known_hosts entries are for other hosts", e.Host, e.Offered)
	}
	return fmt.Sprintf("host key for %s changed: pinned %s, server offered %s; if the server's key really changed, clear the pin and connect again",
		e.Host, strings.Join(e.Pinned, ", "), e.Offered)
}

func (e *HostKeyError) Is(target error) bool { return target == ErrHostKey }

// GitError is a failed git invocation. Args and Output are already masked:
// secrets never appear in them.
type GitError struct {
	Args     []string // git's argument list (no secrets are ever in it; masked anyway)
	ExitCode int      // -1 when git did not exit normally (killed, timeout)
	Output   string   // combined stdout and stderr, masked and truncated
	Kind     error    // one of the sentinels above, or nil when unclassified
	Err      error    // the exec error (e.g. context.DeadlineExceeded)
}

func (e *GitError) Error() string {
	var b strings.Builder
	b.WriteString("git ")
	if len(e.Args) > 0 {
		b.WriteString(e.Args[0])
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Err != nil && e.ExitCode < 0 {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	} else {
		fmt.Fprintf(&b, " (exit %d)", e.ExitCode)
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		b.WriteString(": ")
		b.WriteString(out)
	}
	return b.String()
}

func (e *GitError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
