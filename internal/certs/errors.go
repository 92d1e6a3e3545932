package certs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/go-acme/lego/v5/acme"
)

// FieldError says which input was rejected and why, in words safe to show
// the user who supplied it (the API answers 422 naming Field). It never
// carries key material.
type FieldError struct {
	Field   string // "certificate", "key", "kind", or a DNS provider setting name
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Error is an ACME failure explained in plain words. Message is safe to show
// users (it quotes what the CA said, never Go values); Err is the library's
// error, for logs.
type Error struct {
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// explain turns an error from lego into an *Error, or returns ctx's error
// (wrapped, so errors.Is(err, context.Canceled) holds) when the attempt was
// stopped. what names the attempt, e.g. "certificate for a.example, b.example".
// solverErr, when set, is the first error our own solver returned: it is the
// cause, and lego's wrapping of it says nothing more.
func explain(ctx context.Context, what string, err, solverErr error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: stopped: %w", what, context.Cause(ctx))
	}
	if solverErr != nil {
		return &Error{Message: what + ": " + solverErr.Error(), Err: err}
	}
	problems := problemsIn(err)
	if len(problems) == 0 {
		var ue *url.Error
		if errors.As(err, &ue) {
			return &Error{Message: what + ": could not reach the CA: " + ue.Err.Error(), Err: err}
		}
		return &Error{Message: what + ": " + err.Error(), Err: err}
	}
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		m := describeProblem(p)
		if !slices.Contains(msgs, m) {
			msgs = append(msgs, m)
		}
	}
	return &Error{Message: what + ": " + strings.Join(msgs, "; "), Err: err}
}

// problemsIn collects every ACME problem document in err's tree; lego joins
// one error per failed domain.
func problemsIn(err error) []*acme.ProblemDetails {
	var out []*acme.ProblemDetails
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if p, ok := e.(*acme.ProblemDetails); ok {
			out = append(out, p)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// describeProblem words a CA's problem document (RFC 8555 section 6.7) for a
// user: what kind of failure it is, then the CA's own explanation. lego
// records the request on problems the CA answered a request with; a problem
// without one was read from a challenge object, so it is the CA's verdict
// on the challenge.
func describeProblem(p *acme.ProblemDetails) string {
	detail := strings.TrimSpace(p.Detail)
	var sub []string
	for _, s := range p.SubProblems {
		d := strings.TrimSpace(s.Detail)
		if s.Identifier.Value != "" {
			d = s.Identifier.Value + ": " + d
		}
		sub = append(sub, d)
	}
	if len(sub) > 0 {
		detail = strings.Join(sub, "; ")
	}
	validation := p.Method == "" && p.URL == ""
	var lead string
	switch {
	case p.Type == acme.ConnectionErrorType:
		lead = "the CA could not reach the challenge"
	case validation && (p.Type == acme.UnauthorizedErrorType || p.Type == acme.IncorrectResponseErrorType):
		lead = "the CA rejected the challenge response"
	case p.Type == acme.DNSErrorType:
		lead = "the CA's DNS lookup failed"
	case p.Type == acme.TLSErrorType:
		lead = "the CA's TLS connection failed"
	case p.Type == acme.CaaErrorType:
		lead = "a CAA record forbids this CA to issue for the domain"
	case validation:
		lead = "the CA could not validate the domain"
	case p.Type == acme.RateLimitedErrorType:
		lead = "the CA's rate limit was reached, try again later"
	case p.Type == acme.RejectedIdentifierErrorType || p.Type == acme.UnsupportedIdentifierErrorType:
		lead = "the CA will not issue for this name"
	case p.Type == acme.ExternalAccountRequiredErrorType:
		lead = "the CA requires external account binding: set the EAB key ID and HMAC key from your CA account"
	case p.Type == acme.AccountDoesNotExistErrorType:
		lead = "the ACME account does not exist at this CA"
	case p.Type == acme.ServerInternalErrorType:
		lead = "the CA had an internal error, try again later"
	default:
		lead = "the CA refused the request"
	}
	if detail == "" {
		return lead
	}
	return lead + ": " + detail
}

// isProblem reports whether err carries a CA problem document of type typ.
func isProblem(err error, typ string) bool {
	var p *acme.ProblemDetails
	return errors.As(err, &p) && p.Type == typ
}
