package proxy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

var hostile = []string{
	"plain",
	"two words",
	`quote " inside`,
	"single ' quote",
	"hash # comment",
	"%[env(HOME)] sample",
	"$HOME ${HOME} env",
	`back\slash\`,
	"line\n    server evil 127.0.0.1:1 weight 256",
	"cr\r\nlf",
	"tab\tdel\x7f",
	"ünïcode ✓",
}

func TestQuoteStaysOneWord(t *testing.T) {
	for _, s := range hostile {
		q := quote(s)
		if !strings.HasPrefix(q, `"`) || !strings.HasSuffix(q, `"`) {
			t.Errorf("quote(%q) = %s, not double-quoted", s, q)
		}
		for i := 0; i < len(q); i++ {
			if q[i] < 0x20 || q[i] >= 0x7f {
				t.Errorf("quote(%q) = %q contains raw byte %#x", s, q, q[i])
			}
		}
		inner := q[1 : len(q)-1]
		for i := 0; i < len(inner); i++ {
			switch inner[i] {
			case '\\':
				i++ // escaped character
			case '"', '$':
				t.Errorf("quote(%q) = %s: unescaped %q", s, q, inner[i])
			}
		}
	}
}

// TestQuoteRoundTripsThroughHAProxy serves each hostile value back from a real
// HAProxy ("http-request return … string <quote(v)>"): the body must be the
// value byte for byte, and the injected "server evil" must not exist.
func TestQuoteRoundTripsThroughHAProxy(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy not found and CI=true")
		}
		t.Skip("haproxy not installed")
	}
	port := testenv.FreePort(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n")
	fmt.Fprintf(&cfg, "frontend f\n    bind 127.0.0.1:%d\n", port)
	for i, s := range hostile {
		fmt.Fprintf(&cfg, "    http-request return status 200 content-type text/plain string %s if { path /%d }\n", quote(s), i)
	}
	fmt.Fprintf(&cfg, "    default_backend b\nbackend b\n    description %s\n", quote(hostile[8]))
	dir := t.TempDir()
	path := filepath.Join(dir, "q.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-dW", "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg.String())
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	client := &http.Client{Timeout: 2 * time.Second}
	for i, s := range hostile {
		var body []byte
		for try := 0; ; try++ {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/%d", port, i))
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				break
			}
			if try == 50 {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if string(body) != s {
			t.Errorf("HAProxy read quote(%q) back as %q", s, body)
		}
	}
}
