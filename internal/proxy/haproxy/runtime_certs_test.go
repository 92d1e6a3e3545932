package haproxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

// tlsEnv is a supervised HAProxy with a TLS listener (default certificate
// plus an initially empty crt-list) and a backend of template servers.
type tlsEnv struct {
	dir, crtList, defaultCert string
	tlsPort                   int
	client                    *Client
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	requireHAProxy(t)
	dir := t.TempDir()
	e := &tlsEnv{
		dir:         dir,
		crtList:     filepath.Join(dir, "certs.list"),
		defaultCert: filepath.Join(dir, "default.pem"),
		tlsPort:     testenv.FreePort(t),
	}
	upstream := backendServer(t, "up")
	stats := filepath.Join(dir, "stats.sock")
	writeFile(t, e.defaultCert, selfSigned(t, "fallback.test", 1))
	writeFile(t, e.crtList, nil)
	cfg := fmt.Sprintf(`global
  stats socket %s mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend fe
  bind 127.0.0.1:%d ssl crt %s crt-list %s
  default_backend be
backend be
  balance roundrobin
  server-template up- 2 %s weight 10
  server-template none- 2 tasks.nowhere.invalid:80 init-addr none weight 0
`, stats, e.tlsPort, e.defaultCert, e.crtList, hostPort(t, upstream))
	conf := Config{
		Binary:     haproxyBin,
		ConfigPath: filepath.Join(dir, "haproxy.cfg"),
		Socket:     filepath.Join(dir, "master.sock"),
	}
	writeFile(t, conf.ConfigPath, []byte(cfg))
	proc := NewProcess(slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err := proc.Start(ctxT(t, 10*time.Second), conf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := proc.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	e.client = NewClient(stats)
	return e
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfSigned returns a PEM certificate for name (with serial) and its key.
func selfSigned(t *testing.T, name string, serial int64) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
}

// served returns the leaf certificate HAProxy presents for sni.
func (e *tlsEnv) served(t *testing.T, sni string) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp",
		net.JoinHostPort("127.0.0.1", strconv.Itoa(e.tlsPort)),
		&tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake for %s: %v", sni, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestCertificatesAtRuntime(t *testing.T) {
	e := newTLSEnv(t)
	ctx := ctxT(t, 20*time.Second)
	file := filepath.Join(e.dir, "a.pem")
	if got := e.served(t, "a.test").Subject.CommonName; got != "fallback.test" {
		t.Fatalf("before adding: served %q, want the default certificate", got)
	}

	// Add: new, set, commit, add to the crt-list.
	v1 := selfSigned(t, "a.test", 1)
	start := time.Now()
	for _, step := range []func() error{
		func() error { return e.client.NewSSLCert(ctx, file) },
		func() error { return e.client.SetSSLCert(ctx, file, v1) },
		func() error { return e.client.CommitSSLCert(ctx, file) },
		func() error { return e.client.AddCrtListEntry(ctx, e.crtList, file) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("certificate added in %v", time.Since(start))
	if c := e.served(t, "a.test"); c.Subject.CommonName != "a.test" || c.SerialNumber.Int64() != 1 {
		t.Fatalf("after adding: served %q serial %v", c.Subject.CommonName, c.SerialNumber)
	}
	if got := e.served(t, "other.test").Subject.CommonName; got != "fallback.test" {
		t.Fatalf("unknown name: served %q, want the default certificate", got)
	}

	// Update in place: set, commit.
	if err := e.client.SetSSLCert(ctx, file, selfSigned(t, "a.test", 2)); err != nil {
		t.Fatal(err)
	}
	if err := e.client.CommitSSLCert(ctx, file); err != nil {
		t.Fatal(err)
	}
	if c := e.served(t, "a.test"); c.SerialNumber.Int64() != 2 {
		t.Fatalf("after update: serial %v, want 2", c.SerialNumber)
	}

	// A chain without its key is refused at commit; abort leaves the old one.
	certOnly, _ := pem.Decode(selfSigned(t, "a.test", 3))
	if err := e.client.SetSSLCert(ctx, file, pem.EncodeToMemory(certOnly)); err != nil {
		t.Fatal(err)
	}
	var ce *CommandError
	if err := e.client.CommitSSLCert(ctx, file); !errors.As(err, &ce) {
		t.Fatalf("commit without key: err = %v, want *CommandError", err)
	} else {
		t.Logf("commit without key: %v", err)
	}
	if err := e.client.AbortSSLCert(ctx, file); err != nil {
		t.Fatal(err)
	}
	if c := e.served(t, "a.test"); c.SerialNumber.Int64() != 2 {
		t.Fatalf("after refused update: serial %v, want 2", c.SerialNumber)
	}

	// In use: cannot be deleted before it leaves the crt-list.
	if err := e.client.DelSSLCert(ctx, file); !errors.As(err, &ce) {
		t.Fatalf("del of a certificate in use: err = %v, want *CommandError", err)
	}
	if err := e.client.DelCrtListEntry(ctx, e.crtList, file); err != nil {
		t.Fatal(err)
	}
	if err := e.client.DelSSLCert(ctx, file); err != nil {
		t.Fatal(err)
	}
	if got := e.served(t, "a.test").Subject.CommonName; got != "fallback.test" {
		t.Fatalf("after removal: served %q, want the default certificate", got)
	}
	if err := e.client.DelSSLCert(ctx, file); !errors.As(err, &ce) {
		t.Fatalf("del of a missing certificate: err = %v, want *CommandError", err)
	}
}

func TestStatsAndServersStateFile(t *testing.T) {
	e := newTLSEnv(t)
	ctx := ctxT(t, 10*time.Second)
	stats, err := e.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]ServerStat{}
	for _, s := range stats {
		if s.Backend != "be" {
			t.Errorf("row of backend %q: only servers of be exist", s.Backend)
		}
		byName[s.Server] = s
	}
	if len(byName) != 4 {
		t.Fatalf("stats = %+v, want 4 servers", stats)
	}
	for _, n := range []string{"up-1", "up-2"} {
		if s := byName[n]; s.Addr == "" || s.Status != "no check" {
			t.Errorf("%s = %+v, want an address and status \"no check\"", n, s)
		}
	}
	for _, n := range []string{"none-1", "none-2"} {
		if s := byName[n]; s.Addr != "" || !strings.HasPrefix(s.Status, "MAINT") {
			t.Errorf("%s = %+v, want no address and MAINT", n, s)
		}
	}

	state, err := e.client.ServersStateFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(state, []byte("1\n# be_id be_name")) || bytes.Count(state, []byte(" be ")) != 4 {
		t.Fatalf("servers state:\n%s", state)
	}
}

// TestCertInjectionRefused: nothing but clean paths and PEM blocks reaches the
// socket.
func TestCertInjectionRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "fake.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	c := NewClient(sock)
	ctx := ctxT(t, 5*time.Second)
	good := selfSigned(t, "a.test", 1)
	const list = "/etc/berth/certs.list"
	for _, p := range []string{"", "relative.pem", "/a b.pem", "/a\n.pem", "/a;b.pem", "/x/../etc/shadow", "/x/./y", `/a"b`} {
		for name, err := range map[string]error{
			"new":       c.NewSSLCert(ctx, p),
			"set":       c.SetSSLCert(ctx, p, good),
			"commit":    c.CommitSSLCert(ctx, p),
			"abort":     c.AbortSSLCert(ctx, p),
			"add entry": c.AddCrtListEntry(ctx, list, p),
			"add list":  c.AddCrtListEntry(ctx, p, "/a.pem"),
			"del entry": c.DelCrtListEntry(ctx, list, p),
			"del cert":  c.DelSSLCert(ctx, p),
		} {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("%s with path %q: err = %v, want *ValidationError", name, p, err)
			}
		}
	}
	for name, data := range map[string][]byte{
		"empty":          nil,
		"not pem":        []byte("hello\n\nshow info\n"),
		"trailing junk":  append(append([]byte{}, good...), "\n\nshutdown frontend fe\n"...),
		"leading junk":   append([]byte("del ssl cert /a.pem\n"), good...),
		"other block":    pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{1}}),
		"header in pem":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"A": "b"}, Bytes: []byte{1}}),
		"type injection": []byte("-----BEGIN CERTIFICATE\n\nshow info-----\nAQ==\n-----END CERTIFICATE\n\nshow info-----\n"),
	} {
		var ve *ValidationError
		if err := c.SetSSLCert(ctx, "/a.pem", data); !errors.As(err, &ve) {
			t.Errorf("set ssl cert with %s: err = %v, want *ValidationError", name, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("%d connections reached the socket", n)
	}
	// Sanity: blank lines between blocks are cleaned away, and it is sent.
	_ = c.SetSSLCert(ctx, "/a.pem", bytes.ReplaceAll(good, []byte("-----\n-----BEGIN"), []byte("-----\n\n\n-----BEGIN")))
	if accepted.Load() != 1 {
		t.Fatal("a valid certificate did not reach the fake socket")
	}
}
