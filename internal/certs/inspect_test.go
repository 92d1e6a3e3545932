package certs_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/certs"
)

// now is the instant the upload tests validate at.
var now = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (c testCert) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
}

type certOpts struct {
	cn                  string
	names               []string
	notBefore, notAfter time.Time
	ca                  bool
	key                 crypto.Signer
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue makes a certificate signed by parent (self-signed when parent is nil).
func issue(t *testing.T, parent *testCert, o certOpts) testCert {
	t.Helper()
	key := o.key
	if key == nil {
		key = ecKey(t)
	}
	if o.notBefore.IsZero() {
		o.notBefore = now.Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = now.Add(60 * 24 * time.Hour)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.cn, Organization: []string{"Berth Test"}},
		DNSNames:     o.names,
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
	}
	if o.ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{cert: c, key: key}
}

func keyPEM(t *testing.T, k crypto.Signer, format string) []byte {
	t.Helper()
	var der []byte
	var err error
	typ := "PRIVATE KEY"
	switch format {
	case "pkcs1":
		typ, der = "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))
	case "sec1":
		typ = "EC PRIVATE KEY"
		der, err = x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	default:
		der, err = x509.MarshalPKCS8PrivateKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pool(cs ...testCert) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c.cert)
	}
	return p
}

func TestValidateUpload(t *testing.T) {
	root := issue(t, nil, certOpts{cn: "Berth Test Root", ca: true, notBefore: now.AddDate(-1, 0, 0), notAfter: now.AddDate(5, 0, 0)})
	inter := issue(t, &root, certOpts{cn: "Berth Test Intermediate", ca: true, notBefore: now.AddDate(-1, 0, 0), notAfter: now.AddDate(3, 0, 0)})
	leaf := issue(t, &inter, certOpts{cn: "app.example.com", names: []string{"app.example.com", "www.example.com"}})
	wildcard := issue(t, &inter, certOpts{names: []string{"*.example.com"}})
	expired := issue(t, &inter, certOpts{names: []string{"app.example.com"}, notBefore: now.AddDate(0, -3, 0), notAfter: time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC)})
	future := issue(t, &inter, certOpts{names: []string{"app.example.com"}, notBefore: time.Date(2030, 7, 1, 8, 30, 0, 0, time.UTC), notAfter: now.AddDate(0, 3, 0)})
	selfSigned := issue(t, nil, certOpts{names: []string{"app.example.com"}})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaLeaf := issue(t, &inter, certOpts{names: []string{"app.example.com"}, key: rsaKey})
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edLeaf := issue(t, &inter, certOpts{names: []string{"app.example.com"}, key: edKey})

	chain := func(cs ...testCert) []byte {
		var b []byte
		for _, c := range cs {
			b = append(b, c.pem()...)
		}
		return b
	}
	leafKey := keyPEM(t, leaf.key, "sec1")
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	roots := pool(root)

	tests := []struct {
		name       string
		cert, key  []byte
		host       string
		roots      *x509.CertPool
		field, msg string // empty field: valid
		names      []string
	}{
		{name: "good chain, SEC1 key", cert: chain(leaf, inter), key: leafKey, host: "app.example.com", roots: roots, names: []string{"app.example.com", "www.example.com"}},
		{name: "good chain, PKCS#8 EC key", cert: chain(leaf, inter), key: keyPEM(t, leaf.key, "pkcs8"), host: "www.example.com", roots: roots, names: []string{"app.example.com", "www.example.com"}},
		{name: "good chain, PKCS#1 RSA key", cert: chain(rsaLeaf, inter), key: keyPEM(t, rsaKey, "pkcs1"), host: "app.example.com", roots: roots, names: []string{"app.example.com"}},
		{name: "good chain, PKCS#8 RSA key", cert: chain(rsaLeaf, inter), key: keyPEM(t, rsaKey, "pkcs8"), host: "app.example.com", roots: roots, names: []string{"app.example.com"}},
		{name: "good chain, Ed25519 key", cert: chain(edLeaf, inter), key: keyPEM(t, edKey, "pkcs8"), host: "app.example.com", roots: roots, names: []string{"app.example.com"}},
		{name: "host with trailing dot", cert: chain(leaf, inter), key: leafKey, host: "app.example.com.", roots: roots, names: []string{"app.example.com", "www.example.com"}},
		{name: "text around the blocks", cert: append([]byte("Bag Attributes\n    friendlyName: app\n"), chain(leaf, inter)...), key: append([]byte("# key\n"), leafKey...), host: "app.example.com", roots: roots, names: []string{"app.example.com", "www.example.com"}},
		{name: "wildcard covers one label", cert: chain(wildcard, inter), key: keyPEM(t, wildcard.key, "pkcs8"), host: "shop.example.com", roots: roots, names: []string{"*.example.com"}},

		{name: "key mismatch", cert: chain(leaf, inter), key: keyPEM(t, ecKey(t), "sec1"), host: "app.example.com", roots: roots,
			field: "key", msg: "the private key does not match the certificate"},
		{name: "key of another certificate of the chain", cert: chain(leaf, inter), key: keyPEM(t, inter.key, "pkcs8"), host: "app.example.com", roots: roots,
			field: "key", msg: "the private key does not match the certificate"},
		{name: "expired", cert: chain(expired, inter), key: keyPEM(t, expired.key, "sec1"), host: "app.example.com", roots: roots,
			field: "certificate", msg: "the certificate expired on 2030-05-01 00:00 UTC"},
		{name: "not yet valid", cert: chain(future, inter), key: keyPEM(t, future.key, "sec1"), host: "app.example.com", roots: roots,
			field: "certificate", msg: "the certificate is not valid before 2030-07-01 08:30 UTC"},
		{name: "wrong host", cert: chain(leaf, inter), key: leafKey, host: "api.example.com", roots: roots,
			field: "certificate", msg: "the certificate does not cover api.example.com (it covers app.example.com, www.example.com)"},
		{name: "wildcard does not cover two labels", cert: chain(wildcard, inter), key: keyPEM(t, wildcard.key, "sec1"), host: "a.shop.example.com", roots: roots,
			field: "certificate", msg: "the certificate does not cover a.shop.example.com (it covers *.example.com)"},
		{name: "wildcard does not cover the apex", cert: chain(wildcard, inter), key: keyPEM(t, wildcard.key, "sec1"), host: "example.com", roots: roots,
			field: "certificate", msg: "the certificate does not cover example.com (it covers *.example.com)"},
		{name: "self-signed not trusted", cert: chain(selfSigned), key: keyPEM(t, selfSigned.key, "sec1"), host: "app.example.com", roots: roots,
			field: "certificate", msg: "the certificate is not signed by a trusted authority (it is self-signed, or the intermediate certificates are missing after it)"},
		{name: "intermediate missing", cert: chain(leaf), key: leafKey, host: "app.example.com", roots: roots,
			field: "certificate", msg: "the certificate is not signed by a trusted authority (it is self-signed, or the intermediate certificates are missing after it)"},
		{name: "intermediate first", cert: chain(inter, leaf), key: leafKey, host: "app.example.com", roots: roots,
			field: "certificate", msg: "the chain must start with the server's certificate, followed by the intermediates"},
		{name: "garbage certificate", cert: []byte("hello, I am not a certificate"), key: leafKey, host: "app.example.com", roots: roots,
			field: "certificate", msg: "no PEM certificate found (expected a block starting with -----BEGIN CERTIFICATE-----)"},
		{name: "corrupt certificate block", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), key: leafKey, host: "app.example.com", roots: roots,
			field: "certificate", msg: "certificate 1 of the chain could not be parsed: x509: malformed certificate"},
		{name: "key in the certificate field", cert: leafKey, key: leafKey, host: "app.example.com", roots: roots,
			field: "certificate", msg: "the certificate field holds a private key; put the key in the key field"},
		{name: "garbage key", cert: chain(leaf, inter), key: []byte("not a key"), host: "app.example.com", roots: roots,
			field: "key", msg: "no PEM private key found (expected a block starting with -----BEGIN PRIVATE KEY-----)"},
		{name: "corrupt key block", cert: chain(leaf, inter), key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("junk")}), host: "app.example.com", roots: roots,
			field: "key", msg: "the EC PRIVATE KEY block could not be parsed"},
		{name: "encrypted key", cert: chain(leaf, inter), key: encrypted, host: "app.example.com", roots: roots,
			field: "key", msg: "the private key is encrypted; upload it without a passphrase"},
		{name: "certificate too large", cert: bytes.Repeat([]byte("A"), certs.MaxPEMSize+1), key: leafKey, host: "app.example.com", roots: roots,
			field: "certificate", msg: "the certificate chain is larger than 64 KiB"},
		{name: "key too large", cert: chain(leaf, inter), key: bytes.Repeat([]byte("A"), certs.MaxPEMSize+1), host: "app.example.com", roots: roots,
			field: "key", msg: "the private key is larger than 64 KiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := certs.ValidateUpload(tc.cert, tc.key, tc.host, now, tc.roots)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateUpload: %v", err)
				}
				if !slices.Equal(info.Names, tc.names) {
					t.Errorf("Names = %v, want %v", info.Names, tc.names)
				}
				if info.Issuer != "Berth Test Intermediate" {
					t.Errorf("Issuer = %q", info.Issuer)
				}
				return
			}
			var fe *certs.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *certs.FieldError", err)
			}
			if fe.Field != tc.field || fe.Message != tc.msg {
				t.Errorf("got %s: %q\nwant %s: %q", fe.Field, fe.Message, tc.field, tc.msg)
			}
			assertNoKeyMaterial(t, fe.Error(), tc.key)
		})
	}
}

// assertNoKeyMaterial fails when msg quotes any line of a PEM key.
func assertNoKeyMaterial(t *testing.T, msg string, keyPEM []byte) {
	t.Helper()
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line) {
			t.Errorf("message quotes key material: %q", msg)
		}
	}
	block, _ := pem.Decode(keyPEM)
	if block != nil && len(block.Bytes) > 8 {
		if strings.Contains(msg, base64.StdEncoding.EncodeToString(block.Bytes[:9])) || strings.Contains(msg, hex.EncodeToString(block.Bytes[:8])) {
			t.Errorf("message quotes key material: %q", msg)
		}
	}
}

func TestValidateUploadSystemRoots(t *testing.T) {
	// nil roots means the system's roots, which never include a test CA.
	c := issue(t, nil, certOpts{names: []string{"app.example.com"}})
	_, err := certs.ValidateUpload(c.pem(), keyPEM(t, c.key, "pkcs8"), "app.example.com", now, nil)
	var fe *certs.FieldError
	if !errors.As(err, &fe) || fe.Field != "certificate" || !strings.Contains(fe.Message, "not signed by a trusted authority") {
		t.Fatalf("err = %v, want an untrusted certificate", err)
	}
}

func TestInspect(t *testing.T) {
	root := issue(t, nil, certOpts{cn: "Berth Test Root", ca: true})
	leaf := issue(t, &root, certOpts{names: []string{"b.example.com", "a.example.com"}})
	chain := append(leaf.pem(), root.pem()...)

	info, err := certs.Inspect(chain, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.cert.Raw)
	want := certs.Info{
		Names:             []string{"b.example.com", "a.example.com"},
		Issuer:            "Berth Test Root",
		NotBefore:         leaf.cert.NotBefore,
		NotAfter:          leaf.cert.NotAfter,
		Serial:            leaf.cert.SerialNumber.Text(16),
		FingerprintSHA256: hex.EncodeToString(sum[:]),
	}
	if !slices.Equal(info.Names, want.Names) || info.Issuer != want.Issuer || !info.NotBefore.Equal(want.NotBefore) ||
		!info.NotAfter.Equal(want.NotAfter) || info.Serial != want.Serial || info.FingerprintSHA256 != want.FingerprintSHA256 {
		t.Errorf("Inspect = %+v\nwant      %+v", info, want)
	}

	// Issuer falls back to the organization when the CN is empty.
	orgRoot := issue(t, nil, certOpts{ca: true})
	orgLeaf := issue(t, &orgRoot, certOpts{names: []string{"a.example.com"}})
	if info, err := certs.Inspect(orgLeaf.pem(), nil); err != nil || info.Issuer != "Berth Test" {
		t.Errorf("Inspect without issuer CN: %+v, %v; want issuer Berth Test", info, err)
	}

	// A key, when given, must match; dates do not matter to Inspect.
	if _, err := certs.Inspect(chain, keyPEM(t, leaf.key, "pkcs8")); err != nil {
		t.Errorf("Inspect with the right key: %v", err)
	}
	var fe *certs.FieldError
	if _, err := certs.Inspect(chain, keyPEM(t, root.key, "pkcs8")); !errors.As(err, &fe) || fe.Field != "key" {
		t.Errorf("Inspect with the wrong key: %v, want a key FieldError", err)
	}
}
