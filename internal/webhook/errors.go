package webhook

import (
	"errors"
	"fmt"
)

// MaxBodySize is the largest delivery body accepted, in bytes: 25 MiB,
// the cap GitHub documents for its payloads (it drops larger ones), which is
// also above what GitLab, Gitea and Bitbucket send for a push.
const MaxBodySize = 25 << 20

var (
	// ErrSignature means the delivery is not authenticated: the signature or
	// token header is missing, malformed or wrong. Answer 401 without saying
	// which; errors wrapping it also wrap one of the three below for logs.
	ErrSignature = errors.New("webhook signature rejected")
	// ErrSignatureMissing: the provider's signature header is absent or empty.
	ErrSignatureMissing = errors.New("signature header missing")
	// ErrSignatureMalformed: the header is repeated, lacks its prefix or is
	// not hexadecimal of the right length.
	ErrSignatureMalformed = errors.New("signature header malformed")
	// ErrSignatureMismatch: well-formed, but not made with this app's secret
	// over this body.
	ErrSignatureMismatch = errors.New("signature does not match the body and secret")

	// ErrNoSecret means Verify was called with an empty secret. It refuses
	// rather than check an HMAC anyone can compute with an empty key.
	ErrNoSecret = errors.New("webhook secret is empty; refusing to verify a delivery without a secret")

	// ErrTooLarge means the body exceeds MaxBodySize.
	ErrTooLarge = fmt.Errorf("webhook body is larger than the %d-byte (25 MiB) limit", MaxBodySize)

	// ErrMalformed means the delivery is not one the provider would send:
	// missing event or delivery header, invalid JSON, a push without a ref or
	// with an invalid ref name or commit id.
	ErrMalformed = errors.New("malformed webhook delivery")

	// ErrMultipleRefs is returned by Parse when one delivery updates several
	// refs (Bitbucket sends one repo:push for a `git push` of many
	// branches); use ParseAll for those.
	ErrMultipleRefs = errors.New("webhook delivery updates more than one ref; use ParseAll")
)

// FieldError is invalid configuration; Field names the offending field
// ("provider", "branches[1]", "watch_paths[0]") and Message says what is
// wrong and what is allowed. It has the same shape as app.FieldError so the
// API can map both to the same problem response.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Message }

func sigErr(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrSignature, kind, fmt.Sprintf(format, args...))
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
