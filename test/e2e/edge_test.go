package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

// edgeEnv is a server running its own edge proxy on high ports, with an ACME
// CA (Pebble) whose HTTP-01 validations reach that proxy.
type edgeEnv struct {
	t                   *testing.T
	s                   *server
	data, cfg           string
	proxyName           string
	port                int // the server's
	httpPort, httpsPort int
	env                 []string
	pebble              *testenv.PebbleCA
}

func newEdgeEnv(t *testing.T) *edgeEnv {
	testenv.Docker(t)
	e := &edgeEnv{t: t, data: filepath.Join(t.TempDir(), "data"), cfg: filepath.Join(t.TempDir(), "cli.json"),
		proxyName: fmt.Sprintf("berth-proxy-e2e%d", time.Now().UnixNano()%1e6), httpPort: testenv.FreePort(t), httpsPort: testenv.FreePort(t)}
	e.pebble = testenv.Pebble(t, testenv.PebbleOptions{HTTPPort: e.httpPort, DNSServer: testenv.DNSUpdate(t, "example.test").Addr})
	e.env = []string{
		"BERTH_DATA_DIR=" + e.data, "BERTH_PROXY=true", "BERTH_PUBLIC_URL=https://berth.example.test", "BERTH_PROXY_NAME=" + e.proxyName,
		fmt.Sprintf("BERTH_PROXY_HTTP_PORT=%d", e.httpPort), fmt.Sprintf("BERTH_PROXY_HTTPS_PORT=%d", e.httpsPort),
		"BERTH_PROXY_BASE_IMAGE=berth-fixture/haproxy:2.6", "BERTH_INTERNAL_LISTEN=:0",
		"BERTH_ACME_DIRECTORY=" + e.pebble.DirectoryURL, "BERTH_ACME_CA_FILE=" + e.pebble.CAFile, "BERTH_DRAIN_TIMEOUT=10s",
	}
	t.Cleanup(func() { removeProxy(t, e.proxyName) })
	e.port = testenv.FreePort(t)
	e.s = startServerAt(t, "127.0.0.1", e.port, e.env...)
	return e
}

// removeProxy deletes what the server created for its proxy: the service
// outlives the control plane on purpose, so the test removes it.
func removeProxy(t *testing.T, name string) {
	services := []string{name, name + "-listen"} // the proxy and its listener holder
	exec.Command("docker", append([]string{"service", "rm"}, services...)...).Run()
	deadline := time.Now().Add(30 * time.Second)
	for _, service := range services {
		for time.Now().Before(deadline) {
			out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+service).Output()
			if len(bytes.TrimSpace(out)) == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if out, _ := exec.Command("docker", "secret", "ls", "-q", "--filter", "label=berth.proxy="+name).Output(); len(out) > 0 {
		exec.Command("docker", append([]string{"secret", "rm"}, strings.Fields(string(out))...)...).Run()
	}
	exec.Command("docker", "volume", "rm", name+"-state", name+"-sockets").Run()
}

func (e *edgeEnv) run(stdin string, args ...string) string {
	e.t.Helper()
	out, errOut, err := cli(e.t, e.cfg, stdin, args...)
	if err != nil {
		e.t.Fatalf("berth %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// get asks the proxy for host's path over plain HTTP (no redirects followed).
func (e *edgeEnv) get(host, path string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", e.httpPort, path), nil)
	req.Host = host
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// awaitAnswer waits until host answers 200 with a body containing want.
func (e *edgeEnv) awaitAnswer(host, want string) time.Duration {
	e.t.Helper()
	began := time.Now()
	var code int
	var body string
	var err error
	for time.Since(began) < 90*time.Second {
		if code, body, err = e.get(host, "/"); err == nil && code == 200 && strings.Contains(body, want) {
			return time.Since(began)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("%s never answered %q through the proxy: %d %q %v\nserver log:\n%s", host, want, code, body, err, e.s.logs.String())
	return 0
}

// load sends GETs and 1 KiB POSTs from 20 clients until stop is closed.
type load struct {
	ok, failed atomic.Int64
	byClient   [20]atomic.Int64 // failures
	mu         sync.Mutex
	failures   []string
	wg         sync.WaitGroup
}

// clientFailures is how many requests each client has lost so far.
func (l *load) clientFailures() (n [20]int64) {
	for i := range n {
		n[i] = l.byClient[i].Load()
	}
	return n
}

func startLoad(port int, host string, stop <-chan struct{}) *load {
	l := &load{}
	tr := &http.Transport{MaxIdleConnsPerHost: 20}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	payload := bytes.Repeat([]byte("x"), 1024)
	for i := range len(l.byClient) {
		l.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var req *http.Request
				if (i+n)%2 == 0 {
					req, _ = http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
				} else {
					req, _ = http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/", port), bytes.NewReader(payload))
				}
				req.Host = host
				resp, err := c.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("%s %s", req.Method, resp.Status)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.byClient[i].Add(1)
					l.mu.Lock()
					if len(l.failures) < 10 {
						l.failures = append(l.failures, fmt.Sprintf("%s %s", time.Now().Format("15:04:05.000"), err))
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

// The edge router issue's "done when", as written, against the real binary,
// a real proxy service and a real ACME CA, then a deployment under load.
func TestEdgeDoneWhen(t *testing.T) {
	e := newEdgeEnv(t)
	pass := "edge-Passphrase-1"
	e.run(pass, "setup", "--server", e.s.URL, "--email", "admin@example.com", "--password-stdin")
	e.run(pass, "login", "--server", e.s.URL, "--email", "admin@example.com", "--password-stdin")
	project := fmt.Sprintf("shop%d", time.Now().UnixNano()%1e5)
	ref := project + "/web"
	e.run("", "project", "create", project)
	e.run("", "app", "create", ref, "--image", "berth-fixture/hello:v1", "--port", "8080", "--replicas", "2",
		"--health-path", "/healthz", "--env", "EXIT_ON_SIGTERM=1")
	t.Cleanup(func() {
		cli(t, e.cfg, "", "app", "delete", ref, "--yes")
		cli(t, e.cfg, "", "project", "delete", project)
	})
	e.run("", "app", "deploy", ref, "--wait")

	// berth domain add shop/web web.example.test --port 8080 --https=false
	e.run("", "domain", "add", ref, "web.example.test", "--port", "8080", "--https=false")
	took := e.awaitAnswer("web.example.test", "hello from v1")
	t.Logf("route live through the proxy %s after the domain was added (includes the proxy's first start)", took)
	// An unknown host gets Berth's page, not another app.
	if code, body, err := e.get("nobody.example.test", "/"); err != nil || code != 503 || !strings.Contains(body, "Berth") {
		t.Errorf("unrouted host: %d %q %v", code, body, err)
	}

	// berth domain add shop/web secure.example.test --https
	out := e.run("", "domain", "add", ref, "secure.example.test", "--https")
	if !strings.Contains(out, "Certificate issued by") {
		t.Errorf("domain add --https output:\n%s", out)
	}
	list := e.run("", "domain", "list", ref)
	if !strings.Contains(list, "secure.example.test") || !strings.Contains(list, "issued") || !strings.Contains(list, "Pebble") {
		t.Errorf("domain list lacks the certificate's issuer and expiry:\n%s", list)
	}
	e.checkTLS("secure.example.test")
	if code, _, err := e.get("secure.example.test", "/"); err != nil || code != 308 {
		t.Errorf("plain HTTP to an HTTPS domain: %d %v, want a 308 redirect", code, err)
	}

	// The control plane itself answers through the proxy on its public
	// host, with a certificate; its host cannot be taken by an app.
	waitFor(t, 90*time.Second, func() bool {
		code, _, err := e.getTLS("berth.example.test", "/healthz")
		return err == nil && code == 200
	})
	if code, _, err := e.get("berth.example.test", "/login"); err != nil || code != 308 {
		t.Errorf("plain HTTP to the control plane: %d %v, want a 308 redirect", code, err)
	}
	if _, errOut, err := cli(t, e.cfg, "", "domain", "add", ref, "berth.example.test"); err == nil || !strings.Contains(errOut, "Berth's own address") {
		t.Errorf("an app took the control plane's host: %v %s", err, errOut)
	}

	// berth proxy status
	status := e.run("", "proxy", "status")
	for _, want := range []string{e.proxyName, "(current)", "secure.example.test", "Port holder:    ", " running",
		"Access log:     on (docker service logs " + e.proxyName + ")"} {
		if !strings.Contains(status, want) {
			t.Errorf("proxy status lacks %q:\n%s", want, status)
		}
	}

	// v1 → v2 under continuous load: not one failed request, although the
	// app exits at once on SIGTERM.
	stop := make(chan struct{})
	l := startLoad(e.httpPort, "web.example.test", stop)
	time.Sleep(500 * time.Millisecond)
	e.run("", "app", "deploy", ref, "--image", "berth-fixture/hello:v2", "--wait")
	for l.ok.Load()+l.failed.Load() < 10000 {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	l.wg.Wait()
	t.Logf("deployment under load: %d requests, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during the deployment: %v", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.failures)
	}
	// The client's idle keep-alive connection from before the deployment
	// (held by an HAProxy worker that never knew v2) gets v2 too.
	if _, body, _ := e.get("web.example.test", "/"); !strings.Contains(body, "v2") {
		t.Errorf("after the deployment the app answers %q", body)
	}
	steps := e.run("", "app", "deployment", ref, "2")
	for _, want := range []string{"Traffic moved to release", "no requests in flight"} {
		if !strings.Contains(steps, want) {
			t.Errorf("deployment steps lack %q:\n%s", want, steps)
		}
	}

	// 20 deployments in a row under load, then a task killed under load.
	stop = make(chan struct{})
	l = startLoad(e.httpPort, "web.example.test", stop)
	began := time.Now()
	for i := range 20 {
		e.run("", "app", "deploy", ref, "--image", fmt.Sprintf("berth-fixture/hello:v%d", 1+i%2), "--wait")
	}
	t.Logf("20 deployments in %s under load", time.Since(began).Round(time.Second))
	before, beforeByClient := l.failed.Load(), l.clientFailures()
	tasks, err := exec.Command("docker", "ps", "-q", "--filter", "label=berth.app="+e.appID(ref)).Output()
	if err != nil || len(strings.Fields(string(tasks))) == 0 {
		t.Fatalf("no container of the app to kill: %v %q", err, tasks)
	}
	exec.Command("docker", "kill", strings.Fields(string(tasks))[0]).Run()
	time.Sleep(3 * time.Second)
	close(stop)
	l.wg.Wait()
	t.Logf("20 deployments and a killed task under load: %d requests, %d failed (%d after the kill)", l.ok.Load(), l.failed.Load(), l.failed.Load()-before)
	if before != 0 {
		t.Errorf("%d requests failed during 20 deployments: %v", before, l.failures)
	}
	// A killed task may take with it what it held of each client: the
	// request in flight, or the next one on the client's connection to it
	// (HAProxy closes that client connection, as the task did), no more.
	for i, n := range l.clientFailures() {
		if n -= beforeByClient[i]; n > 1 {
			t.Errorf("client %d lost %d requests when a task was killed: %v", i, n, l.failures)
		}
	}

	// Berth is upgraded under load: a new binary, so a new proxy image for
	// the proxy and its listener holder. Each new task starts next to the
	// old one and accepts on the same sockets: not one request fails.
	oldImage := e.proxyImage(e.proxyName)
	e.s.cmd.Process.Signal(os.Interrupt)
	<-e.s.done
	upgraded := filepath.Join(t.TempDir(), "berth")
	if b, err := os.ReadFile(binary(t)); err != nil || os.WriteFile(upgraded, append(b, "upgraded"...), 0o755) != nil {
		t.Fatalf("copying the binary: %v", err)
	}
	stop = make(chan struct{})
	l = startLoad(e.httpPort, "web.example.test", stop)
	began = time.Now()
	e.s = startServerWith(t, upgraded, "127.0.0.1", e.port, e.env...)
	image := e.awaitProxyUpgrade(oldImage)
	close(stop)
	l.wg.Wait()
	t.Logf("proxy upgraded to %s in %s under load: %d requests, %d failed", image, time.Since(began).Round(time.Millisecond), l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 {
		t.Errorf("%d requests failed while the proxy was upgraded: %v", l.failed.Load(), l.failures)
	}

	// The proxy keeps serving with the control plane stopped, even when it
	// restarts itself meanwhile: it starts from the table on its volume.
	e.s.cmd.Process.Signal(os.Interrupt)
	<-e.s.done
	proxyTask, _ := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+e.proxyName).Output()
	exec.Command("docker", "kill", strings.TrimSpace(string(proxyTask))).Run()
	e.awaitAnswer("web.example.test", "hello from")
	e.checkTLS("secure.example.test")
	e.s = startServerAt(e.t, "127.0.0.1", e.port, e.env...)

	// Clean up here, while the server runs: cleanups run after the server
	// process is killed.
	e.run("", "app", "delete", ref, "--yes")
	e.run("", "project", "delete", project)
}

// proxyImage is the image a proxy service's spec names.
func (e *edgeEnv) proxyImage(service string) string {
	e.t.Helper()
	out, err := exec.Command("docker", "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", service).Output()
	if err != nil {
		e.t.Fatalf("docker service inspect %s: %v", service, err)
	}
	return strings.TrimSpace(string(out))
}

// awaitProxyUpgrade waits until the proxy and its listener holder each run
// one container, of a new image, and returns that image.
func (e *edgeEnv) awaitProxyUpgrade(old string) string {
	e.t.Helper()
	var last string
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		image := e.proxyImage(e.proxyName)
		done := image != old
		for _, service := range []string{e.proxyName, e.proxyName + "-listen"} {
			out, _ := exec.Command("docker", "ps", "--filter", "label=com.docker.swarm.service.name="+service, "--format", "{{.Image}}").Output()
			running := strings.Fields(string(out))
			last = fmt.Sprintf("%s runs %q, want one of %s", service, running, image)
			if len(running) != 1 || running[0] != image || e.proxyImage(service) != image {
				done = false
				break
			}
		}
		if done {
			return image
		}
	}
	e.t.Fatalf("the proxy was not upgraded from %s within 3 minutes: %s", old, last)
	return ""
}

// appID reads an app's id.
func (e *edgeEnv) appID(ref string) string {
	e.t.Helper()
	var st appStatus
	if err := json.Unmarshal([]byte(e.run("", "app", "status", ref, "--output", "json")), &st); err != nil {
		e.t.Fatal(err)
	}
	return st.App.ID
}

// getTLS asks the proxy's HTTPS port for host's path, trusting Pebble.
func (e *edgeEnv) getTLS(host, path string) (int, string, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: host, RootCAs: e.pebble.IssuerRoots(e.t)}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", e.httpsPort, path), nil)
	req.Host = host
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// checkTLS connects to the HTTPS port with SNI host and checks the served
// certificate chains to Pebble's issuing root and names host.
func (e *edgeEnv) checkTLS(host string) {
	e.t.Helper()
	roots := e.pebble.IssuerRoots(e.t)
	var conn *tls.Conn
	var err error
	for range 50 {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", e.httpsPort),
			&tls.Config{ServerName: host, RootCAs: roots})
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the proxy may still be applying the table
	}
	if err != nil {
		e.t.Fatalf("TLS to %s: %v", host, err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if err := leaf.VerifyHostname(host); err != nil {
		e.t.Errorf("served certificate: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: pool(conn.ConnectionState().PeerCertificates[1:])}); err != nil {
		e.t.Errorf("served certificate does not chain to Pebble: %v", err)
	}
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
