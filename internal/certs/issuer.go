package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"

	"github.com/berthpaas/berth/internal/version"
)

func init() {
	// lego logs through a process-wide logger that writes to stdout unless
	// told otherwise; nothing of Berth's may write there uninvited.
	legolog.SetDefault(slog.New(slog.DiscardHandler))
}

// SetLibraryLogger sends the ACME library's own log lines (registration,
// each challenge, each poll) to l; by default they are discarded. The
// library's logger is process-wide, so call this once, at wiring time.
func SetLibraryLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	legolog.SetDefault(l)
}

const (
	defaultHTTPTimeout = 30 * time.Second
	// finalizeTimeout bounds the wait for a CA to sign after validation.
	// lego polls it without watching ctx, so keep it short.
	finalizeTimeout = 60 * time.Second
	// cleanupTimeout bounds removing a challenge after the attempt's ctx
	// ended: a cancelled issuance must still take its records down.
	cleanupTimeout = 30 * time.Second
)

// EAB is an external account binding (RFC 8555 section 7.3.4): ZeroSSL,
// Google Trust Services and many internal CAs require one to register.
type EAB struct {
	KeyID   string
	HMACKey string // base64url, as the CA shows it
}

// IssuerConfig configures an ACME client.
type IssuerConfig struct {
	DirectoryURL string // e.g. https://acme-v02.api.letsencrypt.org/directory
	Email        string // optional contact for expiry and incident mail
	EAB          *EAB   // required by some CAs; used only to register
	// Roots verifies the CA's HTTPS endpoints; nil uses the system's roots.
	Roots *x509.CertPool
	// AccountKeyPEM and AccountURI are what Account returned last time.
	// An empty key generates one (ECDSA P-256); an empty URI registers.
	AccountKeyPEM []byte
	AccountURI    string
	HTTPTimeout   time.Duration // per request to the CA; 0 means 30 s
}

// Issued is a certificate obtained from the CA.
type Issued struct {
	CertPEM []byte // the leaf, then the intermediates the CA sent
	KeyPEM  []byte // ECDSA P-256, SEC1 ("EC PRIVATE KEY")
	Info    Info
}

// Issuer obtains certificates from one ACME CA with one account. It is safe
// for concurrent use: each Obtain runs on its own ACME client.
type Issuer struct {
	directoryURL string
	userAgent    string
	httpClient   *http.Client
	user         *acmeUser
	keyPEM       []byte
}

// acmeUser is lego's view of the account.
type acmeUser struct {
	email string
	key   crypto.Signer
	reg   *acme.ExtendedAccount
}

func (u *acmeUser) GetEmail() string                       { return u.email }
func (u *acmeUser) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *acmeUser) GetPrivateKey() crypto.Signer           { return u.key }

var _ registration.User = (*acmeUser)(nil)

// NewIssuer connects to the CA's directory and makes sure the account
// exists: it registers one (agreeing to the CA's terms of service) when
// cfg.AccountURI is empty, and otherwise checks the account is valid,
// registering again only if the CA no longer knows it (a test CA restarted,
// a CA that purged it). Persist Account() afterwards.
func NewIssuer(ctx context.Context, cfg IssuerConfig) (*Issuer, error) {
	u, err := url.Parse(cfg.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fieldErr("directory_url", "the ACME directory URL must be an https:// URL, got %q", cfg.DirectoryURL)
	}
	if cfg.EAB != nil && (cfg.EAB.KeyID == "" || cfg.EAB.HMACKey == "") {
		return nil, fieldErr("eab", "external account binding needs both the key ID and the HMAC key")
	}
	timeout := cfg.HTTPTimeout
	if timeout <= 0 {
		timeout = defaultHTTPTimeout
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12}
	iss := &Issuer{
		directoryURL: cfg.DirectoryURL,
		userAgent:    "berth/" + version.Version,
		httpClient:   &http.Client{Timeout: timeout, Transport: transport},
		user:         &acmeUser{email: cfg.Email},
	}

	if len(cfg.AccountKeyPEM) == 0 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ACME account key: %w", err)
		}
		iss.user.key = k
		if iss.keyPEM, err = ecKeyPEM(k); err != nil {
			return nil, err
		}
	} else {
		k, err := parseKey(cfg.AccountKeyPEM)
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, fieldErr("account_key", "%s", fe.Message)
		}
		switch k.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey:
		default:
			return nil, fieldErr("account_key", "an ACME account key must be ECDSA or RSA")
		}
		iss.user.key = k
		iss.keyPEM = append([]byte(nil), cfg.AccountKeyPEM...)
	}

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.AccountURI != "" {
		iss.user.reg = &acme.ExtendedAccount{Location: cfg.AccountURI}
		client, err := iss.client()
		if err != nil {
			return nil, err
		}
		acct, err := client.Registration.QueryRegistration(ctx)
		switch {
		case err == nil && acct.Status == acme.StatusValid:
			iss.user.reg = acct
			return iss, nil
		case err == nil:
			return nil, &Error{Message: fmt.Sprintf("the ACME account %s is %s; register a new one", cfg.AccountURI, acct.Status)}
		case !isProblem(err, acme.AccountDoesNotExistErrorType):
			return nil, explain(ctx, "ACME account "+cfg.AccountURI, err, nil)
		}
		iss.user.reg = nil // the CA forgot it: register the key again
	}
	if err := iss.register(ctx, cfg.EAB); err != nil {
		return nil, err
	}
	return iss, nil
}

func (iss *Issuer) register(ctx context.Context, eab *EAB) error {
	client, err := iss.client()
	if err != nil {
		return err
	}
	if client.GetServerMetadata().ExternalAccountRequired && eab == nil {
		return &Error{Message: "ACME registration: the CA requires external account binding: set the EAB key ID and HMAC key from your CA account"}
	}
	var acct *acme.ExtendedAccount
	if eab != nil {
		acct, err = client.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
			TermsOfServiceAgreed: true,
			Kid:                  eab.KeyID,
			HmacEncoded:          eab.HMACKey,
		})
	} else {
		acct, err = client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	if err != nil {
		return explain(ctx, "ACME registration", err, nil)
	}
	if acct.Location == "" {
		return &Error{Message: "ACME registration: the CA did not say where the account is (no Location header)"}
	}
	iss.user.reg = acct
	return nil
}

// client makes a lego client for one operation. Challenge providers are
// set per client, so concurrent obtains must not share one.
func (iss *Issuer) client() (*lego.Client, error) {
	// Not lego.NewConfig: it reads LEGO_CA_CERTIFICATES and panics when
	// that names a file it cannot read.
	c, err := lego.NewClient(&lego.Config{
		CADirURL:   iss.directoryURL,
		User:       iss.user,
		UserAgent:  iss.userAgent,
		HTTPClient: iss.httpClient,
		Certificate: lego.CertificateConfig{
			Timeout:             finalizeTimeout,
			OverallRequestLimit: certificate.DefaultOverallRequestLimit,
		},
	})
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, &Error{Message: fmt.Sprintf("could not reach the ACME directory at %s: %v", iss.directoryURL, ue.Err), Err: err}
		}
		return nil, &Error{Message: fmt.Sprintf("the ACME directory at %s is not usable: %v", iss.directoryURL, err), Err: err}
	}
	return c, nil
}

// Account returns the account key (PEM) and URI, for the caller to persist
// (encrypted) and hand back in IssuerConfig on the next start.
func (iss *Issuer) Account() (keyPEM []byte, uri string) {
	return append([]byte(nil), iss.keyPEM...), iss.user.reg.Location
}

// HTTPSolver serves HTTP-01 challenges: while presented, a GET of
// http://<domain>/.well-known/acme-challenge/<token> must answer keyAuth.
type HTTPSolver interface {
	Present(ctx context.Context, domain, token, keyAuth string) error
	CleanUp(ctx context.Context, domain, token, keyAuth string) error
}

// ObtainHTTP obtains one certificate for domains, proving control of each
// with HTTP-01 through s. Cancelling ctx stops the attempt (challenges
// already presented are still cleaned up).
func (iss *Issuer) ObtainHTTP(ctx context.Context, domains []string, s HTTPSolver) (Issued, error) {
	if s == nil {
		return Issued{}, errors.New("certs: ObtainHTTP needs a solver")
	}
	for _, d := range domains {
		if strings.HasPrefix(d, "*.") {
			return Issued{}, fieldErr("domains", "%s is a wildcard: wildcards need a DNS provider (DNS-01)", d)
		}
	}
	b := &solverBridge{s: s, kind: "HTTP-01 challenge"}
	return iss.obtain(ctx, domains, b, func(c *lego.Client) error {
		return c.Challenge.SetHTTP01Provider(b)
	})
}

// ObtainDNS obtains one certificate for domains (wildcards allowed),
// proving control of each with DNS-01 records published through p.
func (iss *Issuer) ObtainDNS(ctx context.Context, domains []string, p DNSProvider) (Issued, error) {
	if p == nil {
		return Issued{}, errors.New("certs: ObtainDNS needs a DNS provider")
	}
	b := &solverBridge{s: p, kind: "DNS-01 record"}
	provider, resolvers := dnsBridgeFor(b, p)
	return iss.obtain(ctx, domains, b, func(c *lego.Client) error {
		return c.Challenge.SetDNS01Provider(provider, dns01.WrapPreCheck(propagationCheck(resolvers)))
	})
}

func (iss *Issuer) obtain(ctx context.Context, domains []string, b *solverBridge, setSolver func(*lego.Client) error) (Issued, error) {
	if len(domains) == 0 {
		return Issued{}, fieldErr("domains", "at least one domain is needed")
	}
	for _, d := range domains {
		if strings.TrimSpace(d) == "" {
			return Issued{}, fieldErr("domains", "a domain is empty")
		}
	}
	what := "certificate for " + strings.Join(domains, ", ")
	if err := ctx.Err(); err != nil {
		return Issued{}, fmt.Errorf("%s: stopped: %w", what, err)
	}
	client, err := iss.client()
	if err != nil {
		return Issued{}, err
	}
	if err := setSolver(client); err != nil {
		return Issued{}, fmt.Errorf("%s: %w", what, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, fmt.Errorf("generate certificate key: %w", err)
	}
	res, err := client.Certificate.Obtain(ctx, certificate.ObtainRequest{
		Domains:    domains,
		PrivateKey: key,
		Bundle:     true,
	})
	if err != nil {
		return Issued{}, explain(ctx, what, err, b.firstErr())
	}
	keyPEM, err := ecKeyPEM(key)
	if err != nil {
		return Issued{}, err
	}
	inf, err := Inspect(res.Certificate, keyPEM)
	if err != nil {
		return Issued{}, &Error{Message: what + ": the CA sent a certificate that does not parse or match the key: " + err.Error(), Err: err}
	}
	return Issued{CertPEM: res.Certificate, KeyPEM: keyPEM, Info: inf}, nil
}
