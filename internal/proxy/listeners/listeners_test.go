package listeners

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hold runs Hold in the background until the test ends or stop is called,
// and waits until it serves.
func hold(t *testing.T, path string, addrs map[string]string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Hold(ctx, path, addrs, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Hold: %v", err)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return stop
}

func fetch(t *testing.T, path string) map[string]Listener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls, err := Fetch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(ls) })
	out := map[string]Listener{}
	for _, l := range ls {
		out[l.Name] = l
	}
	return out
}

// served checks that a connection to l's address is accepted on l and
// carries bytes.
func served(t *testing.T, l Listener) {
	t.Helper()
	ln, err := net.FileListener(l.File)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("hello " + l.Name))
		c.Close()
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", l.Name, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello "+l.Name {
		t.Fatalf("%s answered %q, %v", l.Name, b, err)
	}
}

func TestFetchedListenersOutliveTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listeners.sock")
	stop := hold(t, path, map[string]string{"http": "127.0.0.1:0", "https": "127.0.0.1:0"})
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, %v; want mode 0600", fi, err)
	}
	got := fetch(t, path)
	if len(got) != 2 || got["http"].File == nil || got["https"].File == nil {
		t.Fatalf("fetched %v, want http and https", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The holder has closed its copies: the proxy's keep the sockets open.
	served(t, got["http"])
	served(t, got["https"])
}

func TestNewHolderTakesOverTheSockets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listeners.sock")
	stopOld := hold(t, path, map[string]string{"http": "127.0.0.1:0"})
	addr, err := fetch(t, path)["http"].Addr()
	if err != nil {
		t.Fatal(err)
	}
	// The port is taken, so the new holder can only serve it by taking the
	// old holder's socket.
	stopNew := hold(t, path, map[string]string{"http": addr.String()})
	if err := stopOld(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the old holder removed the new one's socket: %v", err)
	}
	l := fetch(t, path)["http"]
	if got, _ := l.Addr(); got.String() != addr.String() {
		t.Fatalf("new holder serves %s, want %s", got, addr)
	}
	served(t, l)
	if err := stopNew(); err != nil {
		t.Fatal(err)
	}
}

func TestHolderRefusesOtherPorts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listeners.sock")
	hold(t, path, map[string]string{"http": "127.0.0.1:0"})
	cases := map[string]map[string]string{
		"another port": {"http": "127.0.0.1:1"},
		"another name": {"https": "127.0.0.1:0"},
		"one more":     {"http": "127.0.0.1:0", "https": "127.0.0.1:0"},
	}
	for name, addrs := range cases {
		t.Run(name, func(t *testing.T) {
			err := Hold(context.Background(), path, addrs, nil)
			if err == nil || !strings.Contains(err.Error(), "stop it to change ports") {
				t.Fatalf("Hold = %v, want a refusal naming the change", err)
			}
		})
	}
	// The running holder still serves.
	served(t, fetch(t, path)["http"])
}

func TestFetchWithoutHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "listeners.sock")
	if _, err := Fetch(context.Background(), path); !errors.Is(err, ErrNoHolder) {
		t.Fatalf("Fetch = %v, want ErrNoHolder", err)
	}
	// A socket file left by a holder that died.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Fetch(context.Background(), path); !errors.Is(err, ErrNoHolder) {
		t.Fatalf("Fetch from a dead holder's socket = %v, want ErrNoHolder", err)
	}
}

func TestBindReportsTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = Bind(map[string]string{"a": "127.0.0.1:0", "b": taken.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "listening for b on "+taken.Addr().String()) {
		t.Fatalf("Bind = %v, want an error naming b and its address", err)
	}
}
