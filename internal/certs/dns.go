package certs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/miekg/dns"
)

// DNSProvider publishes the TXT records of DNS-01 challenges. NewDNSProvider
// builds the supported ones; any other implementation gets lego's defaults
// (propagation checked through the system's resolvers, records in parallel).
type DNSProvider interface {
	Present(ctx context.Context, domain, token, keyAuth string) error
	CleanUp(ctx context.Context, domain, token, keyAuth string) error
}

// DNS provider kinds.
const (
	DNSRFC2136    = "rfc2136"
	DNSCloudflare = "cloudflare"
)

// Setting names, per kind (see NewDNSProvider).
var (
	commonSettings     = []string{"ttl", "propagation_timeout", "polling_interval", "resolvers"}
	rfc2136Settings    = []string{"nameserver", "tsig_key", "tsig_secret", "tsig_algorithm", "zone", "sequence_interval"}
	cloudflareSettings = []string{"api_token", "zone_token"}
)

const (
	defaultPropagationTimeout = 2 * time.Minute
	defaultPollingInterval    = 2 * time.Second
	defaultSequenceInterval   = 60 * time.Second
	defaultTTL                = 120
	dnsTimeout                = 10 * time.Second
)

// dnsProvider is a lego DNS provider plus the timing and propagation-check
// settings this package applies around it.
type dnsProvider struct {
	kind string
	p    challenge.Provider

	propagationTimeout time.Duration
	pollingInterval    time.Duration
	resolvers          []string
	// sequential providers publish one record per name at a time (RFC 2136
	// updates replace the record set), so challenges for a wildcard and its
	// apex take turns, sequenceInterval apart.
	sequential       bool
	sequenceInterval time.Duration
	// diagnose, when set, explains a failed Present in plain words.
	diagnose func(ctx context.Context, fqdn string) error

	mu          sync.Mutex
	lastCleanUp time.Time
}

var _ DNSProvider = (*dnsProvider)(nil)

// NewDNSProvider builds a DNS provider of the given kind from its settings.
// Configuration comes only from settings, never from environment variables.
// A missing, unknown or malformed setting is a *FieldError naming it ("kind"
// for an unknown kind).
//
// Settings every kind accepts, all optional:
//
//	ttl                  TXT record TTL in seconds (default 120; cloudflare: at least 120)
//	propagation_timeout  how long to wait for the record to be visible (default 2m)
//	polling_interval     how often to look (default 2s)
//	resolvers            comma-separated host[:port] nameservers to look at instead of the
//	                     system's resolvers and the zone's authoritative servers
//	                     (split-horizon DNS, private zones)
//
// rfc2136 (RFC 2136 dynamic update, e.g. BIND, Knot, PowerDNS):
//
//	nameserver         host[:port] of the primary that accepts updates (required)
//	tsig_key           TSIG key name (required)
//	tsig_secret        TSIG secret, base64 (required)
//	tsig_algorithm     hmac-sha256 (default), hmac-sha1, hmac-sha224, hmac-sha384, hmac-sha512
//	zone               the zone to update (default: found by asking nameserver for the SOA)
//	sequence_interval  pause between two records at the same name, e.g. a wildcard and its
//	                   apex, which this provider publishes one after the other (default 60s)
//
// cloudflare:
//
//	api_token   API token with Zone:Read and DNS:Edit (required)
//	zone_token  separate token with Zone:Read (optional)
func NewDNSProvider(kind string, settings map[string]string) (DNSProvider, error) {
	var allowed []string
	switch kind {
	case DNSRFC2136:
		allowed = rfc2136Settings
	case DNSCloudflare:
		allowed = cloudflareSettings
	default:
		return nil, fieldErr("kind", "unknown DNS provider %q; supported: %s, %s", kind, DNSRFC2136, DNSCloudflare)
	}
	allowed = append(slices.Clone(commonSettings), allowed...)
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			return nil, fieldErr(k, "unknown setting for the %s provider; allowed: %s", kind, strings.Join(allowed, ", "))
		}
	}
	s := settingsReader(settings)
	d := &dnsProvider{kind: kind}
	var err error
	if d.propagationTimeout, err = s.duration("propagation_timeout", defaultPropagationTimeout); err != nil {
		return nil, err
	}
	if d.pollingInterval, err = s.duration("polling_interval", defaultPollingInterval); err != nil {
		return nil, err
	}
	if d.resolvers, err = s.hostPorts("resolvers"); err != nil {
		return nil, err
	}
	ttl, err := s.integer("ttl", defaultTTL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case DNSRFC2136:
		err = d.rfc2136(s, ttl)
	case DNSCloudflare:
		err = d.cloudflare(s, ttl)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (d *dnsProvider) rfc2136(s settingsReader, ttl int) error {
	ns, err := s.required("nameserver")
	if err != nil {
		return err
	}
	nameserver, err := hostPort(ns)
	if err != nil {
		return fieldErr("nameserver", "%s", err)
	}
	key, err := s.required("tsig_key")
	if err != nil {
		return err
	}
	secret, err := s.required("tsig_secret")
	if err != nil {
		return err
	}
	if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
		return fieldErr("tsig_secret", "the TSIG secret must be base64, as in the server's key file")
	}
	alg := strings.TrimSuffix(strings.ToLower(s["tsig_algorithm"]), ".")
	if alg == "" {
		alg = "hmac-sha256"
	}
	algorithms := []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}
	if !slices.Contains(algorithms, alg) {
		return fieldErr("tsig_algorithm", "unsupported TSIG algorithm %q; use one of %s", s["tsig_algorithm"], strings.Join(algorithms, ", "))
	}
	if d.sequenceInterval, err = s.duration("sequence_interval", defaultSequenceInterval); err != nil {
		return err
	}
	var zones []string
	if z := strings.TrimSpace(s["zone"]); z != "" {
		if _, ok := dns.IsDomainName(z); !ok {
			return fieldErr("zone", "%q is not a domain name", z)
		}
		zones = []string{dns.Fqdn(z)}
	}
	// The Config is filled here, not from dnsupdate.NewDefaultConfig,
	// which reads DNSUPDATE_* and RFC2136_* environment variables.
	p, err := dnsupdate.NewDNSProviderConfig(&dnsupdate.Config{
		Nameserver:         nameserver,
		DNSTimeout:         dnsTimeout,
		Zones:              zones,
		TSIGAlgorithm:      alg + ".",
		TSIGKey:            key,
		TSIGSecret:         secret,
		PropagationTimeout: d.propagationTimeout,
		PollingInterval:    d.pollingInterval,
		TTL:                ttl,
		SequenceInterval:   d.sequenceInterval,
	})
	if err != nil {
		return fieldErr("nameserver", "%v", err)
	}
	d.p = p
	d.sequential = true
	keyName := dns.CanonicalName(key)
	d.diagnose = func(ctx context.Context, fqdn string) error {
		return diagnoseTSIG(ctx, nameserver, keyName, alg+".", secret, fqdn)
	}
	return nil
}

func (d *dnsProvider) cloudflare(s settingsReader, ttl int) error {
	token, err := s.required("api_token")
	if err != nil {
		return err
	}
	if ttl < defaultTTL {
		return fieldErr("ttl", "Cloudflare needs a TTL of at least %d seconds", defaultTTL)
	}
	// Filled here rather than from cloudflare.NewDefaultConfig, which reads
	// CLOUDFLARE_* and CF_* environment variables.
	p, err := cloudflare.NewDNSProviderConfig(&cloudflare.Config{
		AuthToken:          token,
		ZoneToken:          s["zone_token"],
		TTL:                ttl,
		PropagationTimeout: d.propagationTimeout,
		PollingInterval:    d.pollingInterval,
		HTTPClient:         &http.Client{Timeout: 30 * time.Second},
	})
	if err != nil {
		return fieldErr("api_token", "%v", err)
	}
	d.p = p
	return nil
}

// Present publishes the record. A sequential provider first waits out the
// pause after the previous record's removal, watching ctx (lego's own pause
// does not).
func (d *dnsProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	if d.sequential {
		d.mu.Lock()
		wait := time.Until(d.lastCleanUp.Add(d.sequenceInterval))
		d.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			case <-t.C:
			}
		}
	}
	err := d.p.Present(ctx, domain, token, keyAuth)
	if err != nil && d.diagnose != nil && ctx.Err() == nil {
		fqdn := dns01.GetChallengeInfo(ctx, domain, keyAuth).EffectiveFQDN
		if why := d.diagnose(ctx, fqdn); why != nil {
			return fmt.Errorf("%w (%v)", why, err)
		}
	}
	return err
}

func (d *dnsProvider) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	err := d.p.CleanUp(ctx, domain, token, keyAuth)
	d.mu.Lock()
	d.lastCleanUp = time.Now()
	d.mu.Unlock()
	return err
}

// diagnoseTSIG asks nameserver a TSIG-signed question to find out whether
// the server rejects the key itself. It returns nil when it learns nothing
// (the update failed for another reason: zone not found, update policy).
func diagnoseTSIG(ctx context.Context, nameserver, key, alg, secret, fqdn string) error {
	m := new(dns.Msg).SetQuestion(fqdn, dns.TypeSOA)
	m.SetTsig(key, alg, 300, time.Now().Unix())
	c := &dns.Client{Timeout: dnsTimeout, TsigSecret: map[string]string{key: secret}}
	r, _, err := c.ExchangeContext(ctx, m, nameserver)
	tsigRejected := errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrAuth) || errors.Is(err, dns.ErrTime)
	if r != nil {
		if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
			tsigRejected = true
		}
		if r.Rcode == dns.RcodeNotAuth {
			tsigRejected = true
		}
	}
	if tsigRejected {
		return fmt.Errorf("the DNS server %s rejected the TSIG signature: check tsig_key, tsig_algorithm and tsig_secret against the server's key", nameserver)
	}
	return nil
}

// dnsBridgeFor adapts p to lego: our providers bring their propagation
// timing, sequencing and resolvers.
func dnsBridgeFor(b *solverBridge, p DNSProvider) (challenge.Provider, []string) {
	dp, ok := p.(*dnsProvider)
	if !ok {
		return b, nil
	}
	t := &timedBridge{solverBridge: b, p: dp}
	if dp.sequential {
		return &sequentialBridge{t}, dp.resolvers
	}
	return t, dp.resolvers
}

type timedBridge struct {
	*solverBridge
	p *dnsProvider
}

var _ challenge.ProviderTimeout = (*timedBridge)(nil)

func (t *timedBridge) Timeout() (timeout, interval time.Duration) {
	return t.p.propagationTimeout, t.p.pollingInterval
}

// sequentialBridge makes lego solve one challenge at a time. Its pause is
// zero: dnsProvider.Present waits instead, so ctx can interrupt the wait.
type sequentialBridge struct{ *timedBridge }

func (sequentialBridge) Sequential() time.Duration { return 0 }

// propagationCheck returns lego's pre-validation check: ours when resolvers
// are configured, lego's otherwise; both stop as soon as ctx ends (lego's
// polling loop does not watch ctx).
func propagationCheck(resolvers []string) dns01.WrapPreCheckFunc {
	return func(ctx context.Context, domain, fqdn, value string, check dns01.PreCheckFunc) (bool, error) {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		if len(resolvers) == 0 {
			return check(ctx, fqdn, value)
		}
		return txtVisible(ctx, resolvers, fqdn, value)
	}
}

// txtVisible reports whether every resolver answers value among fqdn's TXT
// records.
func txtVisible(ctx context.Context, resolvers []string, fqdn, value string) (bool, error) {
	c := &dns.Client{Timeout: dnsTimeout}
	for _, ns := range resolvers {
		m := new(dns.Msg).SetQuestion(dns.Fqdn(fqdn), dns.TypeTXT)
		r, _, err := c.ExchangeContext(ctx, m, ns)
		if err != nil {
			return false, fmt.Errorf("ask %s for %s TXT: %w", ns, fqdn, err)
		}
		found := false
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok && strings.Join(txt.Txt, "") == value {
				found = true
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// settingsReader reads provider settings, answering *FieldError.
type settingsReader map[string]string

func (s settingsReader) required(name string) (string, error) {
	v := strings.TrimSpace(s[name])
	if v == "" {
		return "", fieldErr(name, "this setting is required")
	}
	return v, nil
}

func (s settingsReader) duration(name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(s[name])
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fieldErr(name, "want a duration such as 30s or 2m, got %q", v)
	}
	return d, nil
}

func (s settingsReader) integer(name string, def int) (int, error) {
	v := strings.TrimSpace(s[name])
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fieldErr(name, "want a positive number of seconds, got %q", v)
	}
	return n, nil
}

func (s settingsReader) hostPorts(name string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s[name], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		hp, err := hostPort(f)
		if err != nil {
			return nil, fieldErr(name, "%s", err)
		}
		out = append(out, hp)
	}
	return out, nil
}

// hostPort accepts host, host:port, IPv6 or [IPv6]:port; the port defaults to 53.
func hostPort(v string) (string, error) {
	if host, port, err := net.SplitHostPort(v); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return "", fmt.Errorf("%q is not a host:port", v)
		}
		return v, nil
	}
	if strings.ContainsAny(v, " /") {
		return "", fmt.Errorf("%q is not a host name or address", v)
	}
	return net.JoinHostPort(strings.Trim(v, "[]"), "53"), nil
}
