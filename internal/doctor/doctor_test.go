package doctor

import (
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/orchestrator/swarm"
	"github.com/berthpaas/berth/internal/testenv"
)

func find(t *testing.T, checks []Check, name string) Check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check named %q in %+v", name, checks)
	return Check{}
}

// noIPVS is a ReadFile for a kernel without IPVS (like this test machine's).
func noIPVS(string) ([]byte, error) { return nil, fs.ErrNotExist }

func TestUnreachableEngineFailsWithFix(t *testing.T) {
	e, err := swarm.New("unix:///nonexistent.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	checks := Run(context.Background(), Options{Engine: e, ReadFile: noIPVS})
	c := find(t, checks, "docker engine")
	if c.Status != Fail {
		t.Fatalf("engine check = %+v, want fail", c)
	}
	if !strings.Contains(c.Detail, "/nonexistent.sock") {
		t.Errorf("detail %q should name the engine address", c.Detail)
	}
	if !strings.Contains(c.Fix, "dockerd") || !strings.Contains(c.Fix, "DOCKER_HOST") {
		t.Errorf("fix %q should say how to start the engine or point elsewhere", c.Fix)
	}
	if s := find(t, checks, "swarm"); s.Status == OK {
		t.Errorf("swarm check passed without an engine: %+v", s)
	}

	var out bytes.Buffer
	if Print(&out, checks) {
		t.Errorf("Print reported ok with a failed engine check:\n%s", out.String())
	}
}

func TestBusyPortFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port

	checks := Run(context.Background(), Options{HTTPPort: busy, HTTPSPort: testenv.FreePort(t), ReadFile: noIPVS})
	c := find(t, checks, "proxy http port")
	if c.Status != Fail {
		t.Fatalf("busy port check = %+v, want fail", c)
	}
	p := strconv.Itoa(busy)
	if !strings.Contains(c.Fix, "sport = :"+p) || !strings.Contains(c.Fix, "--proxy-http-port") {
		t.Errorf("fix %q should show how to find the process on %s and how to move the proxy", c.Fix, p)
	}
	if c := find(t, checks, "proxy https port"); c.Status != OK {
		t.Errorf("free port check = %+v, want ok", c)
	}
}

func TestServerPortBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	c := find(t, Run(context.Background(), Options{Listen: l.Addr().String(), ReadFile: noIPVS}), "server port")
	if c.Status != Fail || !strings.Contains(c.Fix, "--listen") {
		t.Fatalf("server port check = %+v, want fail with a --listen fix", c)
	}
}

func TestDataDir(t *testing.T) {
	// Root bypasses permission bits, so make the path impossible instead: a
	// directory under a regular file.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want string
	}{
		{"missing is created", filepath.Join(t.TempDir(), "a", "b"), OK},
		{"existing", t.TempDir(), OK},
		{"under a regular file", filepath.Join(file, "sub"), Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := find(t, Run(context.Background(), Options{DataDir: tt.dir, ReadFile: noIPVS}), "data dir")
			if c.Status != tt.want {
				t.Fatalf("data dir check = %+v, want %s", c, tt.want)
			}
			if tt.want == Fail && !strings.Contains(c.Fix, tt.dir) {
				t.Errorf("fix %q should name the directory", c.Fix)
			}
			if tt.want == OK {
				entries, err := os.ReadDir(tt.dir)
				if err != nil {
					t.Fatal(err)
				}
				if len(entries) != 0 {
					t.Errorf("check left files behind: %v", entries)
				}
			}
		})
	}
}

func TestIPVSNeverFails(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"proc net", map[string]string{"/proc/net/ip_vs": "IP Virtual Server version 1.2.1"}, OK},
		{"module loaded", map[string]string{"/proc/modules": "overlay 151552 0 - Live 0x0\nip_vs 184320 6 - Live 0x0\n"}, OK},
		{"other modules only", map[string]string{"/proc/modules": "ip_vs_rr 16384 0 - Live 0x0\noverlay 151552 0 - Live 0x0\n"}, Warn},
		{"no proc files", nil, Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := func(name string) ([]byte, error) {
				if s, ok := tt.files[name]; ok {
					return []byte(s), nil
				}
				return nil, fs.ErrNotExist
			}
			c := find(t, Run(context.Background(), Options{ReadFile: read}), "ipvs")
			if c.Status != tt.want {
				t.Fatalf("ipvs check = %+v, want %s", c, tt.want)
			}
			if c.Status == Warn && !strings.Contains(c.Detail, "does not need IPVS") {
				t.Errorf("warning %q should say Berth does not need IPVS", c.Detail)
			}
		})
	}
}

func TestGoodSetupPasses(t *testing.T) {
	e, err := swarm.New(testenv.Docker(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	checks := Run(context.Background(), Options{
		Engine:    e,
		Listen:    "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)),
		HTTPPort:  testenv.FreePort(t),
		HTTPSPort: testenv.FreePort(t),
		DataDir:   filepath.Join(t.TempDir(), "data"),
	})
	var out bytes.Buffer
	ok := Print(&out, checks)
	t.Logf("\n%s", out.String())
	if !ok {
		t.Fatalf("a good setup failed:\n%s", out.String())
	}
	if c := find(t, checks, "docker engine"); c.Status != OK || !strings.Contains(c.Detail, "API ") {
		t.Errorf("engine check = %+v, want ok with the API version", c)
	}
	if c := find(t, checks, "swarm"); c.Status != OK {
		t.Errorf("swarm check = %+v, want ok (scripts/deps.sh initialises the swarm)", c)
	}
}

// A dynamically linked probe is a warning with the fix; a file that is no
// executable is one too.
func TestProbeCheck(t *testing.T) {
	dynamic, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	c := find(t, Run(context.Background(), Options{Probe: dynamic, ReadFile: noIPVS}), "health probe")
	if c.Status != Warn || !strings.Contains(c.Detail, "dynamically linked") || !strings.Contains(c.Fix, "CGO_ENABLED=0") {
		t.Errorf("dynamic probe: %+v, want a warning naming the fix", c)
	}
	notExe := filepath.Join(t.TempDir(), "berth")
	if err := os.WriteFile(notExe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if c := find(t, Run(context.Background(), Options{Probe: notExe, ReadFile: noIPVS}), "health probe"); c.Status != Warn || !strings.Contains(c.Detail, notExe) {
		t.Errorf("a script as the probe: %+v, want a warning naming it", c)
	}
}

func TestPrint(t *testing.T) {
	checks := []Check{
		{Name: "docker engine", Status: OK, Detail: "20.10.24 (API 1.41)"},
		{Name: "ipvs", Status: Warn, Detail: "absent"},
		{Name: "proxy http port", Status: Fail, Detail: ":80 in use", Fix: "stop it"},
	}
	var out bytes.Buffer
	if Print(&out, checks) {
		t.Error("Print reported ok with a failed check")
	}
	want := "" +
		"ok    docker engine    20.10.24 (API 1.41)\n" +
		"warn  ipvs             absent\n" +
		"fail  proxy http port  :80 in use\n" +
		"                       fix: stop it\n"
	if out.String() != want {
		t.Errorf("Print wrote\n%s\nwant\n%s", out.String(), want)
	}

	out.Reset()
	if !Print(&out, checks[:2]) {
		t.Error("Print reported failure with only ok and warn checks")
	}
}

func TestAPIOlder(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1.40", "1.41", true},
		{"1.41", "1.41", false},
		{"1.9", "1.41", true},
		{"1.51", "1.41", false},
		{"2.0", "1.41", false},
		{"", "1.41", false},
	}
	for _, tt := range tests {
		if got := apiOlder(tt.a, tt.b); got != tt.want {
			t.Errorf("apiOlder(%q, %q) = %t, want %t", tt.a, tt.b, got, tt.want)
		}
	}
}
