// Package certs owns Berth's TLS certificates: inspecting and validating
// certificates users upload, deciding when to renew, and obtaining
// certificates from an ACME CA (Let's Encrypt, ZeroSSL, Pebble in tests).
//
// The control plane is the only ACME client, because it owns the database.
// This package knows nothing of the edge proxies: HTTP-01 challenges are
// handed to an HTTPSolver (the caller puts them in the proxies' routing
// table), DNS-01 challenges to a DNSProvider.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxPEMSize bounds an uploaded certificate chain and an uploaded key. Real
// chains are a few KiB; anything near this is a mistake or an attack.
const MaxPEMSize = 64 << 10

// Info describes a certificate (the leaf of a chain).
type Info struct {
	Names             []string  `json:"names"`  // subject alternative names: DNS names, then IP addresses
	Issuer            string    `json:"issuer"` // the issuer's common name, or its organization
	NotBefore         time.Time `json:"not_before"`
	NotAfter          time.Time `json:"not_after"`
	Serial            string    `json:"serial"`             // lowercase hex
	FingerprintSHA256 string    `json:"fingerprint_sha256"` // lowercase hex of SHA-256 over the DER
}

// Inspect describes the leaf of a PEM chain. keyPEM may be empty; when it is
// given it must be a private key matching the leaf. Inspect checks neither
// dates nor trust (see ValidateUpload).
func Inspect(certPEM, keyPEM []byte) (Info, error) {
	chain, err := parseChain(certPEM)
	if err != nil {
		return Info{}, err
	}
	if len(bytes.TrimSpace(keyPEM)) > 0 {
		key, err := parseKey(keyPEM)
		if err != nil {
			return Info{}, err
		}
		if !keyMatches(chain[0], key) {
			return Info{}, errKeyMismatch
		}
	}
	return info(chain[0]), nil
}

var errKeyMismatch = &FieldError{Field: "key", Message: "the private key does not match the certificate"}

// ValidateUpload checks a certificate and key a user uploads for host:
// sizes, that the chain (leaf first, then intermediates) and the key
// (PKCS#1, PKCS#8 or SEC1 EC) parse, that the key belongs to the leaf, that
// the leaf is valid at now, that it covers host (wildcards as RFC 6125 has
// them: "*" only as the whole left-most label, matching one label), and that
// the chain verifies to roots (nil: the system's roots) using the uploaded
// intermediates. An empty host skips the name check. A rejection is a
// *FieldError naming "certificate" or "key".
func ValidateUpload(certPEM, keyPEM []byte, host string, now time.Time, roots *x509.CertPool) (Info, error) {
	chain, err := parseChain(certPEM)
	if err != nil {
		return Info{}, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return Info{}, err
	}
	leaf := chain[0]
	if !keyMatches(leaf, key) {
		return Info{}, errKeyMismatch
	}
	if now.Before(leaf.NotBefore) {
		return Info{}, fieldErr("certificate", "the certificate is not valid before %s", formatTime(leaf.NotBefore))
	}
	if now.After(leaf.NotAfter) {
		return Info{}, fieldErr("certificate", "the certificate expired on %s", formatTime(leaf.NotAfter))
	}
	if host != "" {
		if err := leaf.VerifyHostname(strings.TrimSuffix(host, ".")); err != nil {
			return Info{}, fieldErr("certificate", "the certificate does not cover %s (it covers %s)", host, coveredNames(leaf))
		}
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return Info{}, verifyError(err)
	}
	return info(leaf), nil
}

func verifyError(err error) *FieldError {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fieldErr("certificate", "the certificate is not signed by a trusted authority (it is self-signed, or the intermediate certificates are missing after it)")
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fieldErr("certificate", "a certificate in the chain is expired or not yet valid")
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return fieldErr("certificate", "the certificate is not meant for TLS servers (its extended key usage excludes serverAuth)")
	default:
		return fieldErr("certificate", "the certificate chain does not verify: %v", err)
	}
}

// parseChain reads the CERTIFICATE blocks of a PEM chain, leaf first.
// Text around the blocks (openssl's "Bag Attributes", comments) is ignored.
func parseChain(certPEM []byte) ([]*x509.Certificate, error) {
	if len(certPEM) > MaxPEMSize {
		return nil, fieldErr("certificate", "the certificate chain is larger than %d KiB", MaxPEMSize>>10)
	}
	var chain []*x509.Certificate
	rest := certPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fieldErr("certificate", "the certificate field holds a private key; put the key in the key field")
			}
			return nil, fieldErr("certificate", "unexpected PEM block %q; only CERTIFICATE blocks belong here", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fieldErr("certificate", "certificate %d of the chain could not be parsed: %v", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fieldErr("certificate", "no PEM certificate found (expected a block starting with -----BEGIN CERTIFICATE-----)")
	}
	if chain[0].IsCA && len(chain) > 1 && !chain[1].IsCA {
		return nil, fieldErr("certificate", "the chain must start with the server's certificate, followed by the intermediates")
	}
	return chain, nil
}

// parseKey reads the first private key block. Errors never quote the input.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	if len(keyPEM) > MaxPEMSize {
		return nil, fieldErr("key", "the private key is larger than %d KiB", MaxPEMSize>>10)
	}
	rest := keyPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fieldErr("key", "no PEM private key found (expected a block starting with -----BEGIN PRIVATE KEY-----)")
		}
		if block.Type == "CERTIFICATE" || block.Type == "EC PARAMETERS" {
			continue // openssl ecparam -genkey writes the parameters first
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
			return nil, fieldErr("key", "the private key is encrypted; upload it without a passphrase")
		}
		var k any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			return nil, fieldErr("key", "unexpected PEM block %q; expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", block.Type)
		}
		if err != nil {
			// The parser's message can describe the input's structure; say
			// only which format failed.
			return nil, fieldErr("key", "the %s block could not be parsed", block.Type)
		}
		switch s := k.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return s.(crypto.Signer), nil
		default:
			return nil, fieldErr("key", "unsupported private key type; use RSA, ECDSA or Ed25519")
		}
	}
}

func keyMatches(leaf *x509.Certificate, key crypto.Signer) bool {
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

func info(c *x509.Certificate) Info {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	issuer := c.Issuer.CommonName
	if issuer == "" && len(c.Issuer.Organization) > 0 {
		issuer = c.Issuer.Organization[0]
	}
	sum := sha256.Sum256(c.Raw)
	return Info{
		Names:             names,
		Issuer:            issuer,
		NotBefore:         c.NotBefore,
		NotAfter:          c.NotAfter,
		Serial:            c.SerialNumber.Text(16),
		FingerprintSHA256: hex.EncodeToString(sum[:]),
	}
}

func coveredNames(c *x509.Certificate) string {
	names := info(c).Names
	if len(names) == 0 {
		if c.Subject.CommonName != "" {
			return "no subject alternative names; browsers ignore its common name " + c.Subject.CommonName
		}
		return "no names"
	}
	return strings.Join(names, ", ")
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// ecKeyPEM encodes an ECDSA key as SEC1 ("EC PRIVATE KEY"), the form
// HAProxy and OpenSSL read everywhere.
func ecKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
