package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SMTPServer is a real SMTP server (Debian's python3-aiosmtpd) that stores
// every message it accepts in a Maildir.
type SMTPServer struct {
	Addr    string // 127.0.0.1:port
	maildir string
}

// Mailbox returns every message received so far, one after the other.
func (s *SMTPServer) Mailbox() string {
	files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
	var out strings.Builder
	for _, f := range files {
		b, _ := os.ReadFile(f)
		out.Write(b)
		out.WriteString("\n")
	}
	return out.String()
}

// SMTP starts an SMTP server for the test. It skips the test (fails it under
// CI=true) when aiosmtpd is not installed (scripts/deps.sh installs it).
func SMTP(t testing.TB) *SMTPServer {
	t.Helper()
	// Debian's interpreter: the package installs into its dist-packages.
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import aiosmtpd").Run(); err != nil {
		unavailable(t, "aiosmtpd not installed (apt-get install python3-aiosmtpd): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &SMTPServer{Addr: "127.0.0.1:" + strconv.Itoa(port), maildir: filepath.Join(t.TempDir(), "maildir")}
	cmd := exec.Command(python, "-m", "aiosmtpd", "-n", "-l", s.Addr, "-c", "aiosmtpd.handlers.Mailbox", s.maildir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("aiosmtpd did not listen on %s: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
