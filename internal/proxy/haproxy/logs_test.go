package haproxy

import (
	"net"
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
