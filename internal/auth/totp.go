package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters (RFC 6238): HMAC-SHA-1, 30-second steps, 6 digits. These
// are what every authenticator app supports without being told otherwise.
const (
	totpPeriod = 30
	totpDigits = 6
	// totpSkew accepts the previous and the next step too, for clocks a
	// little off and codes typed just as they change.
	totpSkew = 1
	// totpSecretBytes is the secret's length: 160 bits, the size of a
	// SHA-1 output, as RFC 4226 recommends.
	totpSecretBytes = 20
)

var base32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

// totpStep is the time step t falls in.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// hotp is RFC 4226's HOTP value of secret at counter, as digits digits.
func hotp(secret []byte, counter int64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// totpCode is the 6-digit code of secret at time t.
func totpCode(secret []byte, t time.Time) string { return hotp(secret, totpStep(t), totpDigits) }

// matchTOTP finds the step within the window around now whose code is
// code, considering only steps after lastStep (a code is used once). It
// compares in constant time and checks every step of the window.
func matchTOTP(secret []byte, code string, now time.Time, lastStep int64) (int64, bool) {
	code = normalizeCode(code)
	if len(code) != totpDigits {
		return 0, false
	}
	cur := totpStep(now)
	var found int64
	ok := false
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		if subtle.ConstantTimeCompare([]byte(hotp(secret, s, totpDigits)), []byte(code)) == 1 && s > lastStep && !ok {
			found, ok = s, true
		}
	}
	return found, ok
}

// normalizeCode drops the spaces and dashes people type or paste in codes.
func normalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, strings.TrimSpace(code))
}

// otpauthURI is the key URI authenticator apps read from the QR code
// (https://github.com/google/google-authenticator/wiki/Key-Uri-Format).
func otpauthURI(issuer, account string, secret []byte) string {
	label := url.PathEscape(issuer + ":" + account)
	q := url.Values{}
	q.Set("secret", base32NoPad.EncodeToString(secret))
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", fmt.Sprint(totpDigits))
	q.Set("period", fmt.Sprint(totpPeriod))
	return "otpauth://totp/" + label + "?" + q.Encode()
}

// TOTPCode is the code an authenticator app shows at time at for a base32
// secret (as returned at enrolment): for tests and tools.
func TOTPCode(secretBase32 string, at time.Time) (string, error) {
	secret, err := base32NoPad.DecodeString(strings.ToUpper(strings.TrimRight(secretBase32, "=")))
	if err != nil {
		return "", fmt.Errorf("totp secret: %w", err)
	}
	return totpCode(secret, at), nil
}
