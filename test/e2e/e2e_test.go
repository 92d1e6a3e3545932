// Package e2e drives the real berth binary as a user would: a server process on
// SQLite and a real Docker Engine, and the CLI against it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "berth-e2e-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "berth")
	// Static, like `make build`: release containers run this binary as their probe.
	build := exec.Command("go", "build", "-o", bin, "../../cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func binary(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type server struct {
	URL  string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

// startServer runs `berth server` with its settings from the environment, the
// way a systemd unit or container would configure it.
func startServer(t *testing.T, env ...string) *server {
	t.Helper()
	return startServerAt(t, "127.0.0.1", testenv.FreePort(t), env...)
}

func startServerAt(t *testing.T, host string, port int, env ...string) *server {
	t.Helper()
	return startServerWith(t, binary(t), host, port, env...)
}

// startServerWith runs `bin server`, for a test of an upgrade.
func startServerWith(t *testing.T, bin, host string, port int, env ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, "server", "--log-format", "json")
	cmd.Env = append(os.Environ(), append([]string{
		fmt.Sprintf("BERTH_LISTEN=%s:%d", host, port),
		"BERTH_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"BERTH_SHUTDOWN_TIMEOUT=10s",
		// Tests that need the edge proxy turn it on with their own ports and
		// service name (edge_test.go); the rest must not bind 80/443.
		"BERTH_PROXY=false",
	}, env...)...)
	s := &server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.URL + "/healthz"); err == nil {
			resp.Body.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server did not come up:\n%s", s.logs.String())
	return nil
}

// cli runs a berth CLI command with its own config file.
func cli(t *testing.T, cfg, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "BERTH_CLI_CONFIG="+cfg, "BERTH_TOKEN=", "BERTH_SERVER=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func TestDoneWhenFlow(t *testing.T) {
	testenv.Docker(t)
	s := startServer(t)
	cfg := filepath.Join(t.TempDir(), "cli.json")
	pass := "e2e-Passphrase-" + fmt.Sprint(time.Now().UnixNano())

	// /readyz turns 200 once the database and the engine answer.
	waitFor(t, 20*time.Second, func() bool { return status(t, s.URL+"/readyz", "") == 200 })

	if out, errOut, err := cli(t, cfg, pass+"\n", "setup", "--server", s.URL, "--email", "admin@example.com", "--password-stdin"); err != nil {
		t.Fatalf("setup: %v\n%s%s", err, out, errOut)
	}
	if _, errOut, err := cli(t, cfg, pass+"\n", "setup", "--server", s.URL, "--email", "second@example.com", "--password-stdin"); err == nil || !strings.Contains(strings.ToLower(errOut), "already") {
		t.Fatalf("second setup must be refused with a reason: %v %q", err, errOut)
	}
	if out, errOut, err := cli(t, cfg, pass+"\n", "login", "--server", s.URL, "--email", "admin@example.com", "--password-stdin"); err != nil || !strings.Contains(out, "admin@example.com") {
		t.Fatalf("login: %v\n%s%s", err, out, errOut)
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cli config: %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	if out, errOut, err := cli(t, cfg, "", "whoami"); err != nil || !strings.Contains(out, "admin@example.com") || !strings.Contains(out, "owner") {
		t.Fatalf("whoami: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err := cli(t, cfg, "", "token", "create", "ci", "--expires", "24h")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, errOut)
	}
	token := strings.TrimSpace(out)
	if !strings.HasPrefix(token, "berth_") || strings.Contains(token, "\n") {
		t.Fatalf("token create printed %q; want just the token", out)
	}

	// curl -H "Authorization: Bearer $TOKEN" …/api/v1/system/engine
	var engine struct {
		Reachable     bool   `json:"reachable"`
		ServerVersion string `json:"server_version"`
		Swarm         struct {
			State string `json:"state"`
			Nodes []struct {
				Hostname string `json:"hostname"`
			} `json:"nodes"`
		} `json:"swarm"`
	}
	getJSON(t, s.URL+"/api/v1/system/engine", token, &engine)
	if !engine.Reachable || engine.ServerVersion == "" || engine.Swarm.State != "active" || len(engine.Swarm.Nodes) == 0 {
		t.Fatalf("engine status = %+v", engine)
	}
	if code := status(t, s.URL+"/api/v1/system/engine", ""); code != 401 {
		t.Errorf("engine status without a token: %d, want 401", code)
	}

	// Metrics count the requests by route pattern.
	metrics := body(t, s.URL+"/metrics")
	for _, want := range []string{`berth_http_requests_total{method="GET",route="GET /api/v1/system/engine",status="200"}`, "berth_http_request_duration_seconds_bucket", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Revoked and logged-out credentials stop working.
	if _, errOut, err := cli(t, cfg, "", "logout"); err != nil {
		t.Fatalf("logout: %v %s", err, errOut)
	}
	if _, errOut, err := cli(t, cfg, "", "whoami"); err == nil || !strings.Contains(errOut, "berth login") {
		t.Errorf("whoami after logout: %v %q", err, errOut)
	}

	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop within 15s of SIGTERM")
	}

	// Secrets never reach the logs.
	logs := s.logs.String()
	for _, secret := range []string{pass, token} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret appears in the server log")
		}
	}
	if !strings.Contains(logs, `"request_id"`) {
		t.Errorf("log lines carry no request_id:\n%s", logs)
	}
}

// Setup is accepted from the machine itself or through the public URL's host,
// never from whoever reaches the raw port first.
func TestSetupRefusedFromOtherHosts(t *testing.T) {
	testenv.Docker(t)
	ip := nonLoopbackIP(t)
	port := testenv.FreePort(t)
	startServerAt(t, "0.0.0.0", port, "BERTH_PUBLIC_URL=https://berth.example.com")
	raw := fmt.Sprintf("http://%s:%d/api/v1/setup", ip, port)
	body := `{"email":"admin@example.com","password":"a-long-passphrase-1"}`
	post := func(host string) (int, string) {
		req, _ := http.NewRequest("POST", raw, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, msg := post(""); code != 403 || !strings.Contains(msg, "public URL") {
		t.Fatalf("setup through the raw address %s: %d %s; want 403 naming the public URL", raw, code, msg)
	}
	if code, msg := post("berth.example.com"); code != 201 {
		t.Fatalf("setup through the public URL's host: %d %s", code, msg)
	}
}

func nonLoopbackIP(t *testing.T) string {
	conn, err := net.Dial("udp4", "192.0.2.1:9") // sends nothing; asks the kernel for a source address
	if err != nil {
		t.Skip("no non-loopback address on this machine")
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).IP.String()
}

// SIGTERM lets a request that is still being received finish before exit.
func TestGracefulShutdown(t *testing.T) {
	testenv.Docker(t)
	s := startServer(t)
	pr, pw := io.Pipe()
	result := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.URL+"/api/v1/auth/login", pr)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	io.WriteString(pw, `{"email":"nobody@example.com",`)
	time.Sleep(300 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	io.WriteString(pw, `"password":"not-the-password"}`)
	pw.Close()
	if code := <-result; code != 401 {
		t.Fatalf("in-flight request during shutdown got %d, want its normal answer 401", code)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("exit status after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
	if !strings.Contains(s.logs.String(), "finishing in-flight requests") {
		t.Errorf("shutdown not logged")
	}
}

func TestDoctorExplainsStoppedEngine(t *testing.T) {
	out, _, err := cli(t, "", "", "doctor", "--docker-host", "unix:///nonexistent/docker.sock", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--proxy-http-port", "0", "--proxy-https-port", "0")
	var exit *exec.ExitError
	if err == nil || !asExit(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("doctor with a stopped engine must exit non-zero; err=%v\n%s", err, out)
	}
	if !strings.Contains(out, "fail") || !strings.Contains(out, "fix:") || !strings.Contains(out, "dockerd") {
		t.Fatalf("doctor output must name the failure and a fix:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := cli(t, "", "", "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "commit", "go_version", "docker_api"} {
		if v[k] == "" {
			t.Errorf("version lacks %s: %s", k, out)
		}
	}
}

func TestConfigFileUnknownKeyRejected(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	os.WriteFile(file, []byte("listen: \":0\"\nlisen: typo\n"), 0o600)
	_, errOut, err := cli(t, "", "", "server", "--config", file)
	if err == nil || !strings.Contains(errOut, "unknown keys: lisen") {
		t.Fatalf("server with a misspelt config key: %v %q", err, errOut)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func request(t *testing.T, url, token string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func status(t *testing.T, url, token string) int {
	resp := request(t, url, token)
	resp.Body.Close()
	return resp.StatusCode
}

func body(t *testing.T, url string) string {
	resp := request(t, url, "")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	resp := request(t, url, token)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
