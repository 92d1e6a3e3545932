package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ReadBody reads a delivery body of at most MaxBodySize bytes; a longer one
// is ErrTooLarge (answer 413). Use it (or http.MaxBytesReader with the same
// limit) so an oversize delivery is never held in memory whole.
func ReadBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, ErrTooLarge
		}
		return nil, fmt.Errorf("reading webhook body: %w", err)
	}
	if len(b) > MaxBodySize {
		return nil, ErrTooLarge
	}
	return b, nil
}

// Verify authenticates a delivery from p: body must be the raw request body,
// exactly as received, and h the request headers.
//
//   - GitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
//   - GitLab: X-Gitlab-Token equal to the secret
//   - Gitea: X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>
//   - Bitbucket Cloud: X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>
//
// Comparisons are constant-time. A nil error is the only success; every
// authentication failure wraps ErrSignature. An empty secret is ErrNoSecret
// and a body over MaxBodySize is ErrTooLarge, before any header is read.
// No error text contains the secret or the expected signature.
func Verify(p Provider, secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	if len(body) > MaxBodySize {
		return ErrTooLarge
	}
	switch p {
	case GitHub:
		return verifyHMAC(headerGitHubSignature, "sha256=", secret, h, body)
	case Gitea:
		return verifyHMAC(headerGiteaSignature, "", secret, h, body)
	case Bitbucket:
		return verifyHMAC(headerBitbucketSig, "sha256=", secret, h, body)
	case GitLab:
		return verifyToken(headerGitLabToken, secret, h)
	}
	_, err := ParseProvider(string(p))
	return err
}

// signatureHeader returns the single non-empty value of name.
func signatureHeader(name string, h http.Header) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0 || (len(vs) == 1 && vs[0] == ""):
		return "", sigErr(ErrSignatureMissing, "%s header is not set", name)
	case len(vs) > 1:
		return "", sigErr(ErrSignatureMalformed, "%s header is given %d times; want exactly one", name, len(vs))
	}
	return vs[0], nil
}

func verifyHMAC(name, prefix string, secret []byte, h http.Header, body []byte) error {
	v, err := signatureHeader(name, h)
	if err != nil {
		return err
	}
	digits, ok := strings.CutPrefix(v, prefix)
	if !ok {
		return sigErr(ErrSignatureMalformed, "%s header does not start with %q (only HMAC-SHA256 signatures are accepted)", name, prefix)
	}
	if prefix == "" && strings.Contains(digits, "=") {
		return sigErr(ErrSignatureMalformed, "%s header has an algorithm prefix; want bare hexadecimal", name)
	}
	got, err := hex.DecodeString(digits)
	if err != nil {
		if len(digits)%2 == 1 {
			return sigErr(ErrSignatureMalformed, "%s header has an odd number of hex digits", name)
		}
		return sigErr(ErrSignatureMalformed, "%s header is not hexadecimal", name)
	}
	if len(got) != sha256.Size {
		return sigErr(ErrSignatureMalformed, "%s header has %d hex digits; an HMAC-SHA256 has %d", name, len(digits), 2*sha256.Size)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return sigErr(ErrSignatureMismatch, "%s header does not match the body signed with this app's webhook secret", name)
	}
	return nil
}

// verifyToken compares digests rather than the values themselves so the
// comparison takes the same time whatever the token's length.
func verifyToken(name string, secret []byte, h http.Header) error {
	v, err := signatureHeader(name, h)
	if err != nil {
		return err
	}
	got := sha256.Sum256([]byte(v))
	want := sha256.Sum256(secret)
	if !hmac.Equal(got[:], want[:]) {
		return sigErr(ErrSignatureMismatch, "%s header does not equal this app's webhook secret", name)
	}
	return nil
}
