package haproxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineRecorder keeps what it is written, checking each Write ends a line.
type lineRecorder struct {
	t      *testing.T
	mu     sync.Mutex
	writes []string
}

func (r *lineRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !strings.HasSuffix(string(p), "\n") {
		r.t.Errorf("Write of %q does not end a line", p)
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *lineRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.writes, "")
}

// Lines sent in pieces over several connections arrive whole; Close waits
// for the connections still open, and what they sent is passed on.
func TestLogListenerPassesWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	out := &lineRecorder{t: t}
	l, err := ListenLog(path, out)
	if err != nil {
		t.Fatal(err)
	}
	a, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte(`{"status":2`))
	b.Write([]byte("from b\n"))
	time.Sleep(20 * time.Millisecond)
	a.Write([]byte("00}\n" + `{"status":404}` + "\n" + "unfinished"))
	a.Close() // HAProxy stopped: the unfinished line still counts
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.all(), "unfinished") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Close(); err != nil { // b is still open
		t.Fatal(err)
	}
	b.Close()
	got := out.all()
	for _, want := range []string{"{\"status\":200}\n", "{\"status\":404}\n", "from b\n", "unfinished\n"} {
		if strings.Count(got, want) != 1 {
			t.Errorf("%q not passed on exactly once in %q", want, got)
		}
	}
}

// A deleted socket file is made again: new connections are accepted, and
// one made before goes on delivering.
func TestLogListenerRemakesItsSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	out := &lineRecorder{t: t}
	l, err := ListenLog(path, out)
	if err != nil {
		t.Fatal(err)
	}
	before, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	for _, replace := range []bool{false, true} {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if replace { // a plain file takes the path
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var conn net.Conn
		for deadline := time.Now().Add(3 * socketCheck); conn == nil; time.Sleep(50 * time.Millisecond) {
			if conn, err = net.Dial("unix", path); err != nil && time.Now().After(deadline) {
				t.Fatalf("replace=%v: the socket is not back after %v: %v", replace, 3*socketCheck, err)
			}
		}
		line := fmt.Sprintf("after removal, replace=%v\n", replace)
		conn.Write([]byte(line))
		before.Write([]byte("still here\n"))
		conn.Close()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.all(), line) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	before.Close()
	if err := l.Close(); err != nil {
		t.Error(err)
	}
	got := out.all()
	for _, want := range []string{"after removal, replace=false\n", "after removal, replace=true\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "still here\n"); n != 2 {
		t.Errorf("the connection made before the removals delivered %d lines; want 2:\n%s", n, got)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close the socket file: %v; want it gone", err)
	}
}
