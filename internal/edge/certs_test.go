package edge

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/certs"
	"github.com/berthpaas/berth/internal/testenv"
)

// A wildcard host's certificate comes through DNS-01 (the RFC 2136 provider
// and Pebble), driven by the ACME loop from the certificate row alone.
func TestRunCertificatesWildcardUsesDNS01(t *testing.T) {
	r, db := newTestRouter(t)
	dnsSrv := testenv.DNSUpdate(t, "example.test.")
	ca := testenv.Pebble(t, testenv.PebbleOptions{DNSServer: dnsSrv.Addr})
	provider, err := certs.NewDNSProvider(certs.DNSRFC2136, map[string]string{
		"nameserver": dnsSrv.Addr, "tsig_key": strings.TrimSuffix(testenv.DNSUpdateKey, "."), "tsig_secret": dnsSrv.Secret,
		// Look for the record where Pebble will: at the test server.
		"resolvers": dnsSrv.Addr, "polling_interval": "200ms",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := db.EnsureCertificate(ctx, time.Now(), "", "*.example.test"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.RunCertificates(ctx, ACMEConfig{DirectoryURL: ca.DirectoryURL, Roots: ca.Roots, Timeout: time.Minute, DNS: provider})
	}()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(90 * time.Second)
	for {
		all, err := db.AllCertificates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 {
			t.Fatalf("certificates = %+v, want the wildcard's row", all)
		}
		c := all[0]
		if c.CertPEM != "" {
			block, _ := pem.Decode([]byte(c.CertPEM))
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(leaf.DNSNames, []string{"*.example.test"}) || c.LastError != "" {
				t.Errorf("issued for %v (last error %q), want *.example.test", leaf.DNSNames, c.LastError)
			}
			if updates, _ := dnsSrv.Counts(); updates < 2 {
				t.Errorf("the DNS server accepted %d updates, want the record added and removed", updates)
			}
			return
		}
		if c.LastError != "" || time.Now().After(deadline) {
			t.Fatalf("wildcard certificate not issued: %q", c.LastError)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Without a DNS provider a wildcard fails with a reason naming the setting,
// before any ACME traffic.
func TestObtainWildcardWithoutDNSProvider(t *testing.T) {
	r, _ := newTestRouter(t)
	_, err := r.obtainFor(context.Background(), nil, ACMEConfig{}, "*.example.com")
	if !errors.Is(err, errNoDNSProvider) || !strings.Contains(err.Error(), "--acme-dns-provider") {
		t.Errorf("err = %v, want errNoDNSProvider", err)
	}
}
