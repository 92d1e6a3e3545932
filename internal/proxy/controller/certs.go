package controller

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
)

// FallbackCertName is the subject of the self-signed certificate HAProxy
// serves for names no table certificate covers.
const FallbackCertName = "Berth fallback certificate"

// ensureDefaultCert creates the fallback certificate at path once; an
// existing valid one is kept, so browsers see the same one across restarts.
func ensureDefaultCert(path string) error {
	if data, err := os.ReadFile(path); err == nil {
		if _, err := tls.X509KeyPair(data, data); err == nil {
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("fallback certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("fallback certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: FallbackCertName, Organization: []string{"Berth"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("fallback certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("fallback certificate: %w", err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	return writeFileAtomic(path, data, 0o600)
}

// validCertificates keeps the certificates HAProxy can serve and returns
// each one's file (chain then key, re-encoded); the others are named in
// problems.
func validCertificates(certs []proxy.Certificate) ([]proxy.Certificate, map[string][]byte, []string) {
	var valid []proxy.Certificate
	var problems []string
	files := make(map[string][]byte, len(certs))
	for _, c := range certs {
		var data []byte
		var err error
		switch _, dup := files[c.Name]; {
		case !proxy.ValidCertName(c.Name):
			err = errors.New("name must be 1–100 of a–z, 0–9, '_' and '-', starting with a letter or digit")
		case dup:
			err = errors.New("another certificate has the same name")
		default:
			data, err = certFile(c)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("certificate %q not applied: %v", c.Name, err))
			continue
		}
		files[c.Name] = data
		valid = append(valid, c)
	}
	return valid, files, problems
}

// certFile checks that c's chain parses and its key matches the leaf, and
// returns them re-encoded as one PEM file: nothing but PEM blocks, no blank
// lines, as HAProxy's Runtime API payloads require.
func certFile(c proxy.Certificate) ([]byte, error) {
	chain, err := pemBlocks(c.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate chain: %w", err)
	}
	for i, b := range chain {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate chain: block %d is %q, want CERTIFICATE", i+1, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Errorf("certificate chain: certificate %d: %w", i+1, err)
		}
	}
	key, err := pemBlocks(c.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if len(key) != 1 || !strings.HasSuffix(key[0].Type, "PRIVATE KEY") {
		return nil, errors.New("private key: want exactly one PRIVATE KEY block")
	}
	var chainPEM []byte
	for _, b := range chain {
		chainPEM = append(chainPEM, pem.EncodeToMemory(b)...)
	}
	keyPEM := pem.EncodeToMemory(key[0])
	if _, err := tls.X509KeyPair(chainPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("key does not fit the certificate: %w", err)
	}
	return append(chainPEM, keyPEM...), nil
}

// pemBlocks decodes s, which must be PEM blocks (without headers) and white
// space only.
func pemBlocks(s string) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := []byte(s)
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		var b *pem.Block
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, errors.New("not PEM")
		}
		if b, rest = pem.Decode(rest); b == nil {
			return nil, errors.New("not PEM")
		}
		if len(b.Headers) != 0 {
			return nil, errors.New("PEM headers are not supported (encrypted key?)")
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, errors.New("empty")
	}
	return blocks, nil
}

var (
	// ACME tokens and key authorizations are base64url (RFC 8555 8.1, 8.3).
	challengeTokenRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)
	challengeKeyAuthRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}\.[A-Za-z0-9_-]{1,256}$`)
)

// validChallenges keeps well-formed challenges, as token → key authorization.
func validChallenges(chs []proxy.Challenge) ([]proxy.Challenge, map[string]string, []string) {
	var valid []proxy.Challenge
	var problems []string
	m := make(map[string]string, len(chs))
	for _, ch := range chs {
		switch {
		case !challengeTokenRe.MatchString(ch.Token):
			problems = append(problems, fmt.Sprintf("ACME challenge %.40q not answered: the token must be base64url", ch.Token))
		case !challengeKeyAuthRe.MatchString(ch.KeyAuth) || !strings.HasPrefix(ch.KeyAuth, ch.Token+"."):
			problems = append(problems, fmt.Sprintf("ACME challenge %q not answered: the key authorization must be <token>.<thumbprint>", ch.Token))
		default:
			m[ch.Token] = ch.KeyAuth
			valid = append(valid, ch)
		}
	}
	return valid, m, problems
}
