package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PebbleBinEnv names the variable that may point at the Pebble binary.
const PebbleBinEnv = "BERTH_PEBBLE_BIN"

// pebbleCacheBin is where test/pebble/install.sh puts Pebble.
const pebbleCacheBin = "/var/cache/berth-fixtures/bin/pebble"

// pebbleStartTimeout bounds Pebble's start; it is generous because the test
// machines are small and busy.
const pebbleStartTimeout = 30 * time.Second

// PebbleOptions configures a Pebble test CA.
type PebbleOptions struct {
	// HTTPPort is the port Pebble connects to on a domain's address to
	// validate HTTP-01 challenges (Pebble's httpPort; 0 means 5002).
	HTTPPort int
	// DNSServer (host:port) is the resolver Pebble looks names and TXT
	// records up with (Pebble's -dnsserver); empty uses the system's.
	DNSServer string
	// EABRequired makes registration without external account binding fail.
	EABRequired bool
	// EABKeys are the external accounts Pebble knows: key ID → base64url
	// HMAC key.
	EABKeys map[string]string
}

// PebbleCA is a running Pebble.
type PebbleCA struct {
	DirectoryURL string
	// Roots trusts Pebble's HTTPS listeners (for the ACME client). It is
	// not the root Pebble issues under: see IssuerRoots.
	Roots *x509.CertPool
	// CAFile holds the same CA as Roots, in PEM (for --acme-ca-file).
	CAFile        string
	managementURL string
}

// Pebble starts Let's Encrypt's Pebble test CA for the test, with a
// throwaway CA of its own for its HTTPS listeners, and stops it when the test
// ends. Pebble is configured for fast, deterministic tests: no validation
// sleeps (PEBBLE_VA_NOSLEEP), no rejected nonces, no reuse of earlier
// authorizations (so every order really validates), 1 s Retry-After.
// It skips the test (fails it under CI=true) when the binary is missing:
// BERTH_PEBBLE_BIN, then PATH, then /var/cache/berth-fixtures/bin/pebble
// (test/pebble/install.sh installs it there).
func Pebble(t testing.TB, o PebbleOptions) *PebbleCA {
	t.Helper()
	bin := findPebble()
	if bin == "" {
		unavailable(t, "pebble binary not found (set %s, put pebble in PATH, or run test/pebble/install.sh)", PebbleBinEnv)
		return nil
	}
	dir := t.TempDir()
	roots, certFile, keyFile := listenerCert(t, dir)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	t.Cleanup(client.CloseIdleConnections)

	httpPort := o.HTTPPort
	if httpPort == 0 {
		httpPort = 5002
	}
	// The listen ports are picked free and then handed to Pebble, so another
	// process may take one in between: start again on new ports when that
	// happens.
	var lastLog string
	for attempt := 1; attempt <= 3; attempt++ {
		listen, mgmt := "127.0.0.1:"+strconv.Itoa(FreePort(t)), "127.0.0.1:"+strconv.Itoa(FreePort(t))
		cfg := map[string]any{"pebble": map[string]any{
			"listenAddress":                  listen,
			"managementListenAddress":        mgmt,
			"certificate":                    certFile,
			"privateKey":                     keyFile,
			"httpPort":                       httpPort,
			"tlsPort":                        5001,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": o.EABRequired,
			"externalAccountMACKeys":         o.EABKeys,
			"keyAlgorithm":                   "ecdsa",
			"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		}}
		cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		cfgFile := filepath.Join(dir, "pebble-config.json")
		if err := os.WriteFile(cfgFile, cfgJSON, 0o600); err != nil {
			t.Fatal(err)
		}
		logFile := filepath.Join(dir, fmt.Sprintf("pebble-%d.log", attempt))
		ca := &PebbleCA{
			DirectoryURL:  "https://" + listen + "/dir",
			Roots:         roots,
			CAFile:        filepath.Join(dir, "listener-ca.pem"),
			managementURL: "https://" + mgmt,
		}
		exited, err := startPebble(t, bin, cfgFile, logFile, o.DNSServer, client, ca.DirectoryURL)
		if err == nil {
			return ca
		}
		out, _ := os.ReadFile(logFile)
		lastLog = string(out)
		if !exited || !bytes.Contains(out, []byte("address already in use")) {
			t.Fatalf("pebble: %v\n%s", err, out)
		}
	}
	t.Fatalf("pebble: no free ports after 3 attempts\n%s", lastLog)
	return nil
}

// startPebble runs Pebble and waits until its directory answers. On failure
// it reports whether the process exited by itself.
func startPebble(t testing.TB, bin, cfgFile, logFile, dnsServer string, client *http.Client, dirURL string) (exited bool, err error) {
	t.Helper()
	logOut, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", cfgFile}
	if dnsServer != "" {
		args = append(args, "-dnsserver", dnsServer)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_WFE_NONCEREJECT=0",
		"PEBBLE_AUTHZREUSE=0",
	)
	cmd.Stdout, cmd.Stderr = logOut, logOut
	if err := cmd.Start(); err != nil {
		logOut.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logOut.Close() }()
	// stop ends Pebble. After a failed test it sends SIGQUIT first, so the
	// log ends with Pebble's goroutine dump: a hung Pebble shows where.
	stop := func(dump bool) {
		if dump && cmd.Process.Signal(syscall.SIGQUIT) == nil {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Second):
			}
		}
		_ = cmd.Process.Kill()
		<-done
	}

	deadline := time.Now().Add(pebbleStartTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case werr := <-done:
			return true, fmt.Errorf("exited during start: %v", werr)
		case <-tick.C:
		}
		if answers(client, dirURL) {
			t.Cleanup(func() {
				stop(t.Failed())
				if t.Failed() {
					out, _ := os.ReadFile(logFile)
					t.Logf("pebble log (%s):\n%s", logFile, tail(out, 64<<10))
				}
			})
			return false, nil
		}
		if time.Now().After(deadline) {
			stop(true)
			return false, fmt.Errorf("directory %s did not answer within %s", dirURL, pebbleStartTimeout)
		}
	}
}

func answers(client *http.Client, url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// IssuerRoots returns the root(s) Pebble issues certificates under, from its
// management interface; Pebble makes a new one every start.
func (p *PebbleCA) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Roots}},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(p.managementURL + "/roots/0")
	if err != nil {
		t.Fatalf("pebble roots: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble roots: %s %v", resp.Status, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		t.Fatalf("pebble roots: no certificate in %q", body)
	}
	return pool
}

func findPebble() string {
	if p := os.Getenv(PebbleBinEnv); p != "" {
		return p
	}
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	if _, err := os.Stat(pebbleCacheBin); err == nil {
		return pebbleCacheBin
	}
	return ""
}

// listenerCert writes a throwaway CA and a localhost certificate it signs,
// for Pebble's HTTPS listeners, and returns a pool trusting the CA.
func listenerCert(t testing.TB, dir string) (roots *x509.CertPool, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth test: Pebble listener CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "listener.pem"), filepath.Join(dir, "listener-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	// The CA as a file too, for a server configured with a CA file.
	if err := os.WriteFile(filepath.Join(dir, "listener-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(caCert)
	return roots, certFile, keyFile
}

func tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	if i := bytes.IndexByte(b[len(b)-n:], '\n'); i >= 0 {
		return b[len(b)-n+i+1:]
	}
	return b[len(b)-n:]
}
