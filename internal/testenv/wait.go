package testenv

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"
)

// FreePort returns a free TCP port from 20000–32767: below Linux's ephemeral
// range (32768–60999), so the test's or benchmark's own outgoing connections
// (thousands under load) cannot take it before a server binds it on all
// addresses. A port from ":0" would come from that range.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port found")
	return 0
}

// Eventually polls f every 5 ms until it returns nil, failing the test with
// f's last error after timeout: servers and reloads become ready
// asynchronously, and a fixed sleep is either flaky or slow.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
