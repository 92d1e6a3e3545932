package edge

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/certs"
	"github.com/berthpaas/berth/internal/store"
)

// settingACMEAccount holds the ACME account (sealed JSON acmeAccount).
const settingACMEAccount = "acme.account"

// ACMEConfig says where certificates come from.
type ACMEConfig struct {
	DirectoryURL, Email string
	EABKeyID, EABHMAC   string
	// Roots, when set, are the CAs trusted for the directory's TLS (a
	// private or test CA); nil trusts the system's.
	Roots *x509.CertPool
	// Timeout bounds one issuance (default 2 minutes).
	Timeout time.Duration
	// DNS, when set, answers DNS-01 challenges: the only way to validate
	// a wildcard host (*.example.com). Other hosts keep HTTP-01.
	DNS certs.DNSProvider
}

type acmeAccount struct {
	Directory string `json:"directory"`
	KeyPEM    string `json:"key_pem"`
	URI       string `json:"uri"`
}

// RunCertificates issues and renews the ACME certificates of HTTPS domains
// until ctx ends. The control plane is the one ACME client: HTTP-01
// challenges go into the routing table, so whichever proxy replica the CA
// reaches answers; wildcard hosts are validated through DNS-01 instead
// (cfg.DNS). A failure keeps the previous certificate (if any) and is
// retried with backoff; its reason is shown on the domain.
func (r *Router) RunCertificates(ctx context.Context, cfg ACMEConfig) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	var issuer *certs.Issuer
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		all, err := r.db.AllCertificates(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("edge: list certificates", "err", err)
			}
			continue
		}
		for _, c := range all {
			if c.Source != store.CertACME || time.Now().Before(c.NextAttemptAt) {
				continue
			}
			if issuer == nil {
				if issuer, err = r.issuer(ctx, cfg); err != nil {
					r.certFailed(ctx, c, fmt.Errorf("ACME account at %s: %w", cfg.DirectoryURL, err))
					continue
				}
			}
			r.obtain(ctx, issuer, cfg, c)
		}
	}
}

func (r *Router) obtain(ctx context.Context, issuer *certs.Issuer, cfg ACMEConfig, c store.Certificate) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	began := time.Now()
	got, err := r.obtainFor(ctx, issuer, cfg, c.Host)
	if err != nil {
		r.certFailed(ctx, c, err)
		return
	}
	key, err := r.keys.Seal(got.KeyPEM, store.CertKeyAAD(c.Host))
	if err != nil {
		r.certFailed(ctx, c, err)
		return
	}
	c.CertPEM, c.SealedKey, c.Issuer = string(got.CertPEM), key, got.Info.Issuer
	c.NotBefore, c.NotAfter, c.LastError, c.Failures = got.Info.NotBefore, got.Info.NotAfter, "", 0
	c.NextAttemptAt = certs.RenewAt(got.Info)
	if err := r.db.SaveCertificate(ctx, time.Now(), c); err != nil {
		r.log.Error("edge: save certificate", "host", c.Host, "err", err)
		return
	}
	r.log.Info("certificate issued", "host", c.Host, "issuer", c.Issuer, "not_after", c.NotAfter, "renew_at", c.NextAttemptAt,
		"took_ms", time.Since(began).Milliseconds())
	if _, err := r.Publish(ctx); err != nil {
		r.log.Warn("edge: publish routing table", "err", err)
	}
}

// errNoDNSProvider is why a wildcard certificate cannot be obtained without a
// DNS provider (the domain was added while one was configured).
var errNoDNSProvider = errors.New("a wildcard certificate needs DNS-01 validation: configure --acme-dns-provider")

// obtainFor obtains host's certificate through the only challenge that can
// validate it: DNS-01 for a wildcard, which HTTP-01 cannot prove, and
// HTTP-01 for any other host.
func (r *Router) obtainFor(ctx context.Context, issuer *certs.Issuer, cfg ACMEConfig, host string) (certs.Issued, error) {
	if !strings.HasPrefix(host, "*.") {
		return issuer.ObtainHTTP(ctx, []string{host}, r)
	}
	if cfg.DNS == nil {
		return certs.Issued{}, errNoDNSProvider
	}
	return issuer.ObtainDNS(ctx, []string{host}, cfg.DNS)
}

// certFailed records a failed attempt; the next one waits longer.
func (r *Router) certFailed(ctx context.Context, c store.Certificate, err error) {
	if ctx.Err() != nil && context.Cause(ctx) == context.Canceled {
		return // shutting down: nothing failed
	}
	c.Failures++
	c.LastError = err.Error()
	c.NextAttemptAt = time.Now().Add(certs.Backoff(c.Failures))
	r.log.Warn("certificate not issued", "host", c.Host, "failures", c.Failures, "retry_at", c.NextAttemptAt, "err", err)
	if err := r.db.SaveCertificate(context.WithoutCancel(ctx), time.Now(), c); err != nil {
		r.log.Error("edge: save certificate state", "host", c.Host, "err", err)
	}
}

// issuer registers the install's ACME account, or reuses the stored one when
// it was made with the same directory.
func (r *Router) issuer(ctx context.Context, cfg ACMEConfig) (*certs.Issuer, error) {
	var acct acmeAccount
	if sealed, err := r.db.Setting(ctx, settingACMEAccount); err == nil {
		plain, err := r.keys.Open(sealed, settingACMEAccount)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(plain, &acct); err != nil {
			return nil, err
		}
		if acct.Directory != cfg.DirectoryURL {
			acct = acmeAccount{}
		}
	} else if !store.IsNotFound(err) {
		return nil, err
	}
	ic := certs.IssuerConfig{DirectoryURL: cfg.DirectoryURL, Email: cfg.Email, Roots: cfg.Roots,
		AccountKeyPEM: []byte(acct.KeyPEM), AccountURI: acct.URI}
	if cfg.EABKeyID != "" {
		ic.EAB = &certs.EAB{KeyID: cfg.EABKeyID, HMACKey: cfg.EABHMAC}
	}
	is, err := certs.NewIssuer(ctx, ic)
	if err != nil {
		return nil, err
	}
	key, uri := is.Account()
	b, err := json.Marshal(acmeAccount{Directory: cfg.DirectoryURL, KeyPEM: string(key), URI: uri})
	if err != nil {
		return nil, err
	}
	sealed, err := r.keys.Seal(b, settingACMEAccount)
	if err != nil {
		return nil, err
	}
	return is, r.db.SetSetting(ctx, settingACMEAccount, sealed)
}
