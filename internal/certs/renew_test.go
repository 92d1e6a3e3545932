package certs_test

import (
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/certs"
)

func TestRenewAt(t *testing.T) {
	day := 24 * time.Hour
	issued := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lifetime time.Duration
		before   time.Duration // renew this long before NotAfter
	}{
		{"Let's Encrypt 90 days: a third is 30 days", 90 * day, 30 * day},
		{"1 year: a third", 366 * day, 122 * day},
		{"120 days: a third (40 days)", 120 * day, 40 * day},
		{"75 days: 30 days rather than a third", 75 * day, 30 * day},
		{"60 days: 30 days is half", 60 * day, 30 * day},
		{"47 days: half, not 30 days", 47 * day, 47 * day / 2},
		{"6 days: half", 6 * day, 3 * day},
		{"1 hour: half", time.Hour, 30 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i := certs.Info{NotBefore: issued, NotAfter: issued.Add(tc.lifetime)}
			if got, want := certs.RenewAt(i), i.NotAfter.Add(-tc.before); !got.Equal(want) {
				t.Errorf("RenewAt = %s (%s before expiry), want %s (%s before)", got, i.NotAfter.Sub(got), want, tc.before)
			}
		})
	}
	t.Run("nonsense dates are due at once", func(t *testing.T) {
		i := certs.Info{NotBefore: issued, NotAfter: issued.Add(-time.Hour)}
		if got := certs.RenewAt(i); !got.Equal(issued) {
			t.Errorf("RenewAt = %s, want %s", got, issued)
		}
	})
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{-1, 0},
		{0, 0},
		{1, time.Minute},
		{2, 2 * time.Minute},
		{3, 4 * time.Minute},
		{6, 32 * time.Minute},
		{11, 1024 * time.Minute},
		{12, 24 * time.Hour}, // 2048 minutes is past the cap
		{100, 24 * time.Hour},
		{1 << 30, 24 * time.Hour},
	}
	for _, tc := range tests {
		if got := certs.Backoff(tc.failures); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
}
