package certs

import "time"

// Renewal windows. Let's Encrypt certificates last 90 days, so they renew
// with 30 days left, which leaves a month of retries (see Backoff) before
// users see an expired certificate.
const (
	minRenewBefore = 30 * 24 * time.Hour
	maxBackoff     = 24 * time.Hour
	firstBackoff   = time.Minute
)

// RenewAt says when to renew a certificate: when a third of its lifetime
// remains, or when 30 days remain if that is earlier, but never before half
// of its lifetime has passed (so short-lived certificates, e.g. 6 or 47 days,
// are not renewed the moment they are issued).
//
//	90 days  → 30 days before expiry (day 60)
//	1 year   → 121⅔ days before expiry
//	47 days  → 23½ days before expiry (half-way)
//	6 days   → 3 days before expiry (half-way)
//
// A certificate whose NotAfter is not after its NotBefore is due at once
// (RenewAt returns its NotBefore).
func RenewAt(i Info) time.Time {
	lifetime := i.NotAfter.Sub(i.NotBefore)
	if lifetime <= 0 {
		return i.NotBefore
	}
	before := lifetime / 3
	if before < minRenewBefore {
		before = min(minRenewBefore, lifetime/2)
	}
	return i.NotAfter.Add(-before)
}

// Backoff is how long to wait before retrying after the given number of
// consecutive failures: 1 minute, doubling, at most 24 hours. Zero failures
// wait nothing.
func Backoff(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := firstBackoff
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}
