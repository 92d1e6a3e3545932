package certs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/certs"
	"github.com/berthpaas/berth/internal/testenv"
)

// acmeTimeout bounds one ACME operation; the test machines are small and
// run other tests at the same time.
const acmeTimeout = 2 * time.Minute

func acmeContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), acmeTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newIssuer(t *testing.T, ca *testenv.PebbleCA, cfg certs.IssuerConfig) *certs.Issuer {
	t.Helper()
	cfg.DirectoryURL, cfg.Roots = ca.DirectoryURL, ca.Roots
	start := time.Now()
	iss, err := certs.NewIssuer(acmeContext(t), cfg)
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	t.Logf("NewIssuer took %s", time.Since(start).Round(time.Millisecond))
	return iss
}

// verifyIssued checks an issued certificate the way a TLS client would:
// the chain verifies to Pebble's root for every name, the names are exactly
// those asked for, and the key is an ECDSA key matching the leaf.
func verifyIssued(t *testing.T, got certs.Issued, roots *x509.CertPool, names []string, hosts ...string) {
	t.Helper()
	var chain []*x509.Certificate
	rest := got.CertPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) < 2 {
		t.Fatalf("CertPEM holds %d certificates, want the leaf and its intermediate", len(chain))
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, h := range hosts {
		if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: h, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("verify for %s against Pebble's root: %v", h, err)
		}
	}
	gotNames := slices.Sorted(slices.Values(got.Info.Names))
	if want := slices.Sorted(slices.Values(names)); !slices.Equal(gotNames, want) {
		t.Errorf("Info.Names = %v, want %v", gotNames, want)
	}
	if !bytes.Contains(got.KeyPEM, []byte("BEGIN EC PRIVATE KEY")) {
		t.Errorf("KeyPEM is not an EC key:\n%s", got.KeyPEM)
	}
	// ValidateUpload re-checks key, dates, names and chain independently.
	if _, err := certs.ValidateUpload(got.CertPEM, got.KeyPEM, hosts[0], time.Now(), roots); err != nil {
		t.Errorf("ValidateUpload of the issued certificate: %v", err)
	}
	if got.Info.FingerprintSHA256 == "" || got.Info.Serial == "" || !got.Info.NotAfter.After(time.Now()) {
		t.Errorf("Info = %+v", got.Info)
	}
}

func TestHTTP01(t *testing.T) {
	t.Parallel()
	dnsSrv := testenv.DNSUpdate(t, testZone)
	web := startChallengeServer(t)
	ca := testenv.Pebble(t, testenv.PebbleOptions{HTTPPort: web.Port, DNSServer: dnsSrv.Addr})
	iss := newIssuer(t, ca, certs.IssuerConfig{Email: "ops@example.test"})
	roots := ca.IssuerRoots(t)

	t.Run("two names", func(t *testing.T) {
		s := &solver{srv: web}
		names := []string{"a.example.test", "b.example.test"}
		start := time.Now()
		got, err := iss.ObtainHTTP(acmeContext(t), names, s)
		if err != nil {
			t.Fatalf("ObtainHTTP: %v", err)
		}
		t.Logf("HTTP-01 issuance for 2 names took %s", time.Since(start).Round(time.Millisecond))
		verifyIssued(t, got, roots, names, names...)
		if d := slices.Sorted(slices.Values(s.domains())); !slices.Equal(d, names) {
			t.Errorf("solver was given %v, want %v", d, names)
		}
		if n := web.pending(); n != 0 {
			t.Errorf("%d challenges left presented after issuance", n)
		}
	})

	t.Run("account reused", func(t *testing.T) {
		key, uri := iss.Account()
		if uri == "" || !bytes.Contains(key, []byte("PRIVATE KEY")) {
			t.Fatalf("Account() = %q, %q", key, uri)
		}
		again := newIssuer(t, ca, certs.IssuerConfig{AccountKeyPEM: key, AccountURI: uri})
		key2, uri2 := again.Account()
		if uri2 != uri || !bytes.Equal(key2, key) {
			t.Fatalf("second issuer's account = %s, want %s (same key: %v)", uri2, uri, bytes.Equal(key2, key))
		}
		got, err := again.ObtainHTTP(acmeContext(t), []string{"c.example.test"}, &solver{srv: web})
		if err != nil {
			t.Fatalf("ObtainHTTP with the reused account: %v", err)
		}
		verifyIssued(t, got, roots, []string{"c.example.test"}, "c.example.test")

		// The URI is used, not silently replaced by a new registration: a
		// different key cannot claim the account.
		_, err = certs.NewIssuer(acmeContext(t), certs.IssuerConfig{DirectoryURL: ca.DirectoryURL, Roots: ca.Roots, AccountURI: uri})
		var e *certs.Error
		if !errors.As(err, &e) {
			t.Fatalf("NewIssuer with another key for %s: err = %v, want *certs.Error", uri, err)
		}
		t.Logf("other key for the account: %v", err)
	})

	t.Run("wrong key authorization", func(t *testing.T) {
		s := &solver{srv: web, answer: func(ka string) string { return ka + "-wrong" }}
		_, err := iss.ObtainHTTP(acmeContext(t), []string{"d.example.test"}, s)
		var e *certs.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want *certs.Error", err)
		}
		const prefix = "certificate for d.example.test: the CA rejected the challenge response: "
		if !strings.HasPrefix(e.Message, prefix) {
			t.Errorf("message = %q, want prefix %q", e.Message, prefix)
		}
		assertPlain(t, e.Message)
		if n := web.pending(); n != 0 {
			t.Errorf("%d challenges left presented after failure", n)
		}
		t.Logf("wrong key authorization: %v", err)
	})

	t.Run("solver fails", func(t *testing.T) {
		s := &solver{srv: web, fail: errors.New("the routing table is read-only")}
		_, err := iss.ObtainHTTP(acmeContext(t), []string{"e.example.test"}, s)
		const want = "certificate for e.example.test: could not publish the HTTP-01 challenge for e.example.test: the routing table is read-only"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
	})

	t.Run("cancel stops validation", func(t *testing.T) {
		// The challenge URL never answers, so the attempt sits polling the
		// CA until ctx is cancelled.
		ctx, cancel := context.WithCancel(acmeContext(t))
		s := &solver{srv: web, hang: true, onPresent: func() { time.AfterFunc(500*time.Millisecond, cancel) }}
		done := make(chan error, 1)
		go func() {
			_, err := iss.ObtainHTTP(ctx, []string{"f.example.test"}, s)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			if len(s.domains()) != 1 {
				t.Errorf("solver presented %v, want f.example.test once", s.domains())
			}
			if n := web.pending(); n != 0 {
				t.Errorf("%d challenges left presented after cancel", n)
			}
		case <-time.After(acmeTimeout):
			t.Fatal("ObtainHTTP did not return after its context was cancelled")
		}
	})

	t.Run("cancelled before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := &solver{srv: web}
		_, err := iss.ObtainHTTP(ctx, []string{"g.example.test"}, s)
		if !errors.Is(err, context.Canceled) || len(s.domains()) != 0 {
			t.Errorf("err = %v, presented %v; want context.Canceled and nothing presented", err, s.domains())
		}
	})

	t.Run("concurrent obtains", func(t *testing.T) {
		// One Issuer serves all domains of the control plane at once.
		errs := make(chan error, 3)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("p%d.example.test", i)
				got, err := iss.ObtainHTTP(acmeContext(t), []string{name}, &solver{srv: web})
				if err == nil && !slices.Equal(got.Info.Names, []string{name}) {
					err = fmt.Errorf("%s: got a certificate for %v", name, got.Info.Names)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("wildcard refused", func(t *testing.T) {
		_, err := iss.ObtainHTTP(acmeContext(t), []string{"*.example.test"}, &solver{srv: web})
		var fe *certs.FieldError
		if !errors.As(err, &fe) || fe.Field != "domains" {
			t.Errorf("err = %v, want a FieldError on domains", err)
		}
	})
}

func TestDNS01(t *testing.T) {
	t.Parallel()
	dnsSrv := testenv.DNSUpdate(t, testZone)
	ca := testenv.Pebble(t, testenv.PebbleOptions{DNSServer: dnsSrv.Addr})
	iss := newIssuer(t, ca, certs.IssuerConfig{})
	roots := ca.IssuerRoots(t)
	settings := func(secret string) map[string]string {
		return map[string]string{
			"nameserver":     dnsSrv.Addr,
			"tsig_key":       strings.TrimSuffix(testenv.DNSUpdateKey, "."),
			"tsig_algorithm": "hmac-sha256",
			"tsig_secret":    secret,
			// Look for the record where Pebble will: at the test server.
			"resolvers":         dnsSrv.Addr,
			"polling_interval":  "200ms",
			"sequence_interval": "500ms",
		}
	}

	t.Run("wildcard and apex", func(t *testing.T) {
		p, err := certs.NewDNSProvider(certs.DNSRFC2136, settings(dnsSrv.Secret))
		if err != nil {
			t.Fatal(err)
		}
		names := []string{"*.example.test", "example.test"}
		start := time.Now()
		got, err := iss.ObtainDNS(acmeContext(t), names, p)
		if err != nil {
			t.Fatalf("ObtainDNS: %v", err)
		}
		t.Logf("DNS-01 issuance for a wildcard and its apex took %s", time.Since(start).Round(time.Millisecond))
		verifyIssued(t, got, roots, names, "example.test", "anything.example.test")
		if updates, _ := dnsSrv.Counts(); updates < 4 {
			t.Errorf("the DNS server accepted %d updates, want at least 4 (two records added and removed)", updates)
		}
		if recs := dnsSrv.Records(); len(recs) != 0 {
			t.Errorf("TXT records left after issuance: %v", recs)
		}
	})

	t.Run("wrong TSIG secret", func(t *testing.T) {
		wrong := make([]byte, 32)
		_, _ = rand.Read(wrong)
		p, err := certs.NewDNSProvider(certs.DNSRFC2136, settings(base64.StdEncoding.EncodeToString(wrong)))
		if err != nil {
			t.Fatal(err)
		}
		_, refusedBefore := dnsSrv.Counts()
		_, err = iss.ObtainDNS(acmeContext(t), []string{"wrong.example.test"}, p)
		var e *certs.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want *certs.Error", err)
		}
		const prefix = "certificate for wrong.example.test: could not publish the DNS-01 record for wrong.example.test: the DNS server " // …address
		if !strings.HasPrefix(e.Message, prefix) || !strings.Contains(e.Message, "rejected the TSIG signature: check tsig_key, tsig_algorithm and tsig_secret") {
			t.Errorf("message = %q", e.Message)
		}
		if _, refused := dnsSrv.Counts(); refused <= refusedBefore {
			t.Errorf("the DNS server refused no signature; the provider did not reach it")
		}
		assertPlain(t, e.Message)
		t.Logf("wrong TSIG secret: %v", err)
	})
}

func TestEAB(t *testing.T) {
	t.Parallel()
	hmac := make([]byte, 32)
	_, _ = rand.Read(hmac)
	hmacKey := base64.RawURLEncoding.EncodeToString(hmac)
	ca := testenv.Pebble(t, testenv.PebbleOptions{
		EABRequired: true,
		EABKeys:     map[string]string{"berth-kid-1": hmacKey},
	})
	cfg := certs.IssuerConfig{DirectoryURL: ca.DirectoryURL, Roots: ca.Roots}

	t.Run("without EAB", func(t *testing.T) {
		_, err := certs.NewIssuer(acmeContext(t), cfg)
		var e *certs.Error
		if !errors.As(err, &e) || !strings.Contains(e.Message, "the CA requires external account binding: set the EAB key ID and HMAC key") {
			t.Fatalf("err = %v, want the CA's EAB requirement in plain words", err)
		}
	})

	t.Run("wrong HMAC key", func(t *testing.T) {
		c := cfg
		c.EAB = &certs.EAB{KeyID: "berth-kid-1", HMACKey: base64.RawURLEncoding.EncodeToString([]byte("not-the-key-not-the-key-not-the-"))}
		_, err := certs.NewIssuer(acmeContext(t), c)
		var e *certs.Error
		if !errors.As(err, &e) || !strings.HasPrefix(e.Message, "ACME registration: the CA refused the request: ") {
			t.Fatalf("err = %v, want a refused registration", err)
		}
		assertPlain(t, e.Message)
		t.Logf("wrong HMAC key: %v", err)
	})

	t.Run("with EAB", func(t *testing.T) {
		c := cfg
		c.EAB = &certs.EAB{KeyID: "berth-kid-1", HMACKey: hmacKey}
		iss, err := certs.NewIssuer(acmeContext(t), c)
		if err != nil {
			t.Fatalf("NewIssuer with EAB: %v", err)
		}
		if _, uri := iss.Account(); !strings.HasPrefix(uri, "https://") {
			t.Errorf("account URI = %q", uri)
		}
	})
}

// assertPlain fails when a message users see looks like a Go value dump or
// lego's internal formatting rather than words.
func assertPlain(t *testing.T, msg string) {
	t.Helper()
	for _, bad := range []string{"&{", "map[", "acme: error:", "urn:ietf:params", "one or more domains had a problem"} {
		if strings.Contains(msg, bad) {
			t.Errorf("message %q contains %q", msg, bad)
		}
	}
}

func TestNewIssuerConfig(t *testing.T) {
	// A port nothing listens on: take one, then free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String() + "/dir"
	l.Close()

	t.Run("not https", func(t *testing.T) {
		_, err := certs.NewIssuer(context.Background(), certs.IssuerConfig{DirectoryURL: "http://acme.example/dir"})
		var fe *certs.FieldError
		if !errors.As(err, &fe) || fe.Field != "directory_url" {
			t.Errorf("err = %v, want a directory_url FieldError", err)
		}
	})
	t.Run("bad account key", func(t *testing.T) {
		_, err := certs.NewIssuer(context.Background(), certs.IssuerConfig{DirectoryURL: closed, AccountKeyPEM: []byte("nope")})
		var fe *certs.FieldError
		if !errors.As(err, &fe) || fe.Field != "account_key" {
			t.Errorf("err = %v, want an account_key FieldError", err)
		}
	})
	t.Run("half an EAB", func(t *testing.T) {
		_, err := certs.NewIssuer(context.Background(), certs.IssuerConfig{DirectoryURL: closed, EAB: &certs.EAB{KeyID: "kid"}})
		var fe *certs.FieldError
		if !errors.As(err, &fe) || fe.Field != "eab" {
			t.Errorf("err = %v, want an eab FieldError", err)
		}
	})
	t.Run("unreachable directory", func(t *testing.T) {
		_, err := certs.NewIssuer(context.Background(), certs.IssuerConfig{DirectoryURL: closed, HTTPTimeout: 5 * time.Second})
		var e *certs.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want *certs.Error", err)
		}
		want := "could not reach the ACME directory at " + closed + ": dial tcp " + strings.TrimSuffix(strings.TrimPrefix(closed, "https://"), "/dir") + ": connect: connection refused"
		if e.Message != want {
			t.Errorf("message = %q\nwant      %q", e.Message, want)
		}
	})
}
