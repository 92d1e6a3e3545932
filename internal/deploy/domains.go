package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/certs"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/store"
)

// DomainInput describes a domain to add to an app, or the options an
// updated one gets.
type DomainInput struct {
	Host string
	// PathPrefix routes only this path and below ("/api"); "" or "/" for all.
	PathPrefix  string
	StripPrefix bool
	// Port is the container port requests go to; 0 means the app's HTTP port.
	Port int
	// HTTPS obtains a certificate (ACME) and redirects HTTP to HTTPS once
	// it is there.
	HTTPS bool
	// Timeout is how long the app may take to answer (1s–1h); 0 is the
	// proxy's default (60s).
	Timeout time.Duration
	// MaxBody is the largest request body in bytes (at least 1024); 0 is
	// unlimited.
	MaxBody int64
	// Redirect, when set, makes the domain a redirect instead of a route
	// to the app.
	Redirect *RedirectInput
	// BasicAuth, when set, asks every request for this user's password.
	BasicAuth *BasicAuthInput
	// Headers are set on every response (at most proxy.MaxHeaders).
	Headers []store.Header
	// Compress gzips text responses for clients that accept it.
	Compress bool
}

// RedirectInput makes a domain a redirect.
type RedirectInput struct {
	// To is an absolute http(s) URL: https://www.example.com.
	To string
	// Code is 301, 302, 307 or 308; 0 means 308.
	Code int
	// KeepPath appends the request's path and query to To.
	KeepPath bool
}

// BasicAuthInput is the user basic auth lets in. Only a bcrypt hash of the
// password is kept.
type BasicAuthInput struct {
	User, Password string
	// hash is the domain's current password hash, which UpdateDomain passes
	// along when Password is empty: the user (renamed or not) keeps it.
	hash string
}

// Password limits of basic auth: bcrypt reads 72 bytes at most.
const (
	MinAuthPasswordLen = 8
	MaxAuthPasswordLen = 72
)

// authHashCost is the bcrypt cost of basic auth passwords. HAProxy verifies
// the hash on every request, in its event loop, so it is kept low: about a
// millisecond per request (the default cost 10 would take ~60 ms).
const authHashCost = 5

// Domain is a domain with its certificate's state.
type Domain struct {
	store.Domain
	// Certificate is nil for plain-HTTP domains.
	Certificate *CertStatus
}

// CertStatus is what users see of a host's certificate.
type CertStatus struct {
	Source    string     `json:"source"` // "acme" or "custom"
	Status    string     `json:"status"` // "pending", "issued", "failed"
	Issuer    string     `json:"issuer,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	// NextAttempt is when Berth next tries to issue or renew.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
}

func certStatus(c store.Certificate) *CertStatus {
	s := &CertStatus{Source: c.Source, Issuer: c.Issuer, LastError: c.LastError, Status: "pending"}
	if c.CertPEM != "" {
		s.Status = "issued"
		na := c.NotAfter
		s.NotAfter = &na
	} else if c.LastError != "" {
		s.Status = "failed"
	}
	if c.Source == store.CertACME && !c.NextAttemptAt.IsZero() {
		next := c.NextAttemptAt
		s.NextAttempt = &next
	}
	return s
}

func fieldErrf(field, msg string) error { return &app.FieldError{Field: field, Message: msg} }

// normalizeDomain checks a domain input and returns it in stored form.
// wildcards says whether wildcard hosts (*.example.com) may be added: their
// certificates need DNS-01 validation, so a DNS provider must be configured.
func normalizeDomain(in DomainInput, a store.App, wildcards bool) (store.Domain, error) {
	host := cleanHost(in.Host)
	rest, wild := strings.CutPrefix(host, "*.")
	switch {
	case host == "":
		return store.Domain{}, fieldErrf("host", "is required, e.g. shop.example.com")
	case strings.Contains(rest, "*"):
		return store.Domain{}, fieldErrf("host", "may hold '*' only as its whole first label, e.g. *.example.com (one level, like a TLS wildcard)")
	case wild && !wildcards:
		return store.Domain{}, fieldErrf("host", "is a wildcard; wildcard domains need DNS-01 validation, which is not configured (set --acme-dns-provider and --acme-dns-settings on the server)")
	case wild && !in.HTTPS:
		return store.Domain{}, fieldErrf("host", "is a wildcard; wildcard domains are served over HTTPS only (their certificate comes through DNS-01): turn on https")
	case isIP(rest):
		return store.Domain{}, fieldErrf("host", "is an IP address; a domain needs a DNS name")
	}
	if err := proxy.CheckHost(rest); err != nil {
		if wild {
			return store.Domain{}, fieldErrf("host", "after '*.': "+err.Error())
		}
		return store.Domain{}, fieldErrf("host", err.Error())
	}
	prefix := cmp.Or(strings.TrimSpace(in.PathPrefix), "/")
	if err := proxy.CheckPathPrefix(prefix); err != nil {
		return store.Domain{}, fieldErrf("path_prefix", err.Error())
	}
	if in.StripPrefix && prefix == "/" {
		return store.Domain{}, fieldErrf("strip_prefix", "needs a path prefix to strip")
	}
	d := store.Domain{OrganizationID: a.OrganizationID, AppID: a.ID, Host: host, PathPrefix: prefix,
		StripPrefix: in.StripPrefix, HTTPS: in.HTTPS, Headers: in.Headers}
	if err := normalizeOptions(in, a, &d); err != nil {
		return store.Domain{}, err
	}
	return d, nil
}

// cleanHost is a host as it is stored: lowercase, without a trailing dot.
func cleanHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// normalizeOptions checks and stores the options of a domain: what requests
// to the app may do, or where the domain redirects, and what applies to both
// (basic auth, headers). Every check is the proxy's own, so a stored domain
// always renders.
func normalizeOptions(in DomainInput, a store.App, d *store.Domain) error {
	if r := in.Redirect; r != nil {
		to := strings.TrimSpace(r.To)
		if r.KeepPath {
			// The request path brings its own leading slash.
			to = strings.TrimSuffix(to, "/")
		}
		switch {
		case in.Port != 0:
			return fieldErrf("port", "a redirect domain sends nothing to the app; leave the port empty")
		case in.Timeout != 0:
			return fieldErrf("timeout", "a redirect domain sends nothing to the app; leave the timeout empty")
		case in.MaxBody != 0:
			return fieldErrf("max_body", "a redirect domain sends nothing to the app; leave the body limit empty")
		case in.Compress:
			return fieldErrf("compress", "a redirect domain has no responses to compress")
		}
		if err := proxy.CheckRedirectURL(to, r.KeepPath); err != nil {
			return fieldErrf("redirect.to", err.Error())
		}
		code := cmp.Or(r.Code, 308)
		if code != 301 && code != 302 && code != 307 && code != 308 {
			return fieldErrf("redirect.code", "must be 301, 302, 307 or 308 (308 and 301 are permanent, 307 and 302 temporary)")
		}
		target, _, _ := strings.Cut(to[strings.Index(to, "://")+3:], "/")
		if target, _, _ = strings.Cut(target, ":"); target == d.Host && d.PathPrefix == "/" {
			return fieldErrf("redirect.to", "points at the domain itself, which would redirect forever; to redirect HTTP to HTTPS, turn on https")
		}
		d.RedirectTo, d.RedirectCode, d.RedirectKeepPath = to, code, r.KeepPath
	} else {
		port := cmp.Or(in.Port, a.Spec.Port)
		switch {
		case a.Spec.Port == 0:
			return fieldErrf("port", "the app has no HTTP port; set spec.port on the app before adding domains")
		case port < 1 || port > 65535:
			return fieldErrf("port", "must be 1–65535")
		}
		d.Port = port
		if in.Timeout != 0 && (in.Timeout < proxy.MinTimeout || in.Timeout > proxy.MaxTimeout || in.Timeout%time.Second != 0) {
			return fieldErrf("timeout", fmt.Sprintf("must be whole seconds from %s to %s, or empty for the default (60s)", proxy.MinTimeout, proxy.MaxTimeout))
		}
		if in.MaxBody != 0 && in.MaxBody < proxy.MinMaxBody {
			return fieldErrf("max_body", fmt.Sprintf("must be at least %d bytes, or empty for no limit", proxy.MinMaxBody))
		}
		d.Timeout, d.MaxBody, d.Compress = in.Timeout, in.MaxBody, in.Compress
	}
	if b := in.BasicAuth; b != nil {
		if err := proxy.CheckAuthUser(b.User); err != nil {
			return fieldErrf("basic_auth.username", err.Error())
		}
		hash := b.hash
		if b.Password != "" || hash == "" {
			if n := len(b.Password); n < MinAuthPasswordLen || n > MaxAuthPasswordLen {
				return fieldErrf("basic_auth.password", fmt.Sprintf("must be %d–%d bytes", MinAuthPasswordLen, MaxAuthPasswordLen))
			}
			for _, c := range []byte(b.Password) {
				if c < 0x20 || c == 0x7f {
					return fieldErrf("basic_auth.password", "must not contain control characters")
				}
			}
			h, err := bcrypt.GenerateFromPassword([]byte(b.Password), authHashCost)
			if err != nil {
				return err
			}
			hash = string(h)
		}
		d.AuthUser, d.AuthHash = b.User, hash
	}
	if err := proxy.CheckHeaders(proxyHeaders(in.Headers)); err != nil {
		var fe *proxy.FieldError
		if errors.As(err, &fe) {
			return fieldErrf(fe.Field, fe.Message)
		}
		return err
	}
	return nil
}

// proxyHeaders converts stored headers to the routing table's.
func proxyHeaders(hs []store.Header) []proxy.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]proxy.Header, len(hs))
	for i, h := range hs {
		out[i] = proxy.Header{Name: h.Name, Value: h.Value}
	}
	return out
}

func isIP(h string) bool {
	_, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil
}

// AddDomain routes a host (and path) to an app. A host another app already
// routes is a *ConflictError naming it.
func (m *Manager) AddDomain(ctx context.Context, p auth.Principal, ref AppRef, in DomainInput) (Domain, error) {
	if err := allow(p, authz.DomainWrite); err != nil {
		return Domain{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.DomainWrite)
	if err != nil {
		return Domain{}, err
	}
	d, err := normalizeDomain(in, l.App, m.wildcards)
	if err != nil {
		return Domain{}, err
	}
	if m.reservedHost != "" && d.Host == m.reservedHost {
		return Domain{}, fieldErrf("host", "is Berth's own address (its --public-url); pick another host")
	}
	now := m.now()
	if err := m.db.CreateDomain(ctx, now, &d); err != nil {
		var taken *store.DomainConflictError
		if errors.As(err, &taken) {
			return Domain{}, m.domainConflict(ctx, p, taken)
		}
		return Domain{}, err
	}
	if d.HTTPS {
		if err := m.db.EnsureCertificate(ctx, now, p.Organization.ID, d.Host); err != nil {
			return Domain{}, err
		}
	}
	m.routesChanged(ctx)
	return m.domain(ctx, d)
}

func (m *Manager) domainConflict(ctx context.Context, p auth.Principal, taken *store.DomainConflictError) error {
	if taken.OwnerApp == "" {
		return conflictf("host %s is used by another organization", taken.Host)
	}
	owner := taken.OwnerApp
	if a, err := m.db.App(ctx, p.Organization.ID, taken.OwnerApp); err == nil {
		owner = m.appLabel(ctx, a)
	}
	return conflictf("%s%s is already routed to app %s", taken.Host, strings.TrimSuffix(taken.PathPrefix, "/"), owner)
}

// appLabel names an app as the CLI takes it: project/app or project/env/app.
func (m *Manager) appLabel(ctx context.Context, a store.App) string {
	places, err := m.db.AppPlaces(ctx)
	if err != nil {
		return a.Name
	}
	pl := places[a.ID]
	return AppRef{Project: pl.Project, Environment: pl.Environment, Name: a.Name}.String()
}

func (m *Manager) domain(ctx context.Context, d store.Domain) (Domain, error) {
	out := Domain{Domain: d}
	if !d.HTTPS {
		return out, nil
	}
	certs, err := m.db.Certificates(ctx, d.OrganizationID)
	if err != nil {
		return out, err
	}
	for _, c := range certs {
		if c.Host == d.Host {
			out.Certificate = certStatus(c)
		}
	}
	return out, nil
}

// Domains lists an app's domains with their certificates.
func (m *Manager) Domains(ctx context.Context, p auth.Principal, ref AppRef) ([]Domain, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	if err != nil {
		return nil, err
	}
	return m.appDomains(ctx, l.App)
}

func (m *Manager) appDomains(ctx context.Context, a store.App) ([]Domain, error) {
	ds, err := m.db.Domains(ctx, a.OrganizationID, a.ID)
	if err != nil {
		return nil, err
	}
	certs, err := m.db.Certificates(ctx, a.OrganizationID)
	if err != nil {
		return nil, err
	}
	byHost := map[string]store.Certificate{}
	for _, c := range certs {
		byHost[c.Host] = c
	}
	out := make([]Domain, len(ds))
	for i, d := range ds {
		out[i] = Domain{Domain: d}
		if c, ok := byHost[d.Host]; ok && d.HTTPS {
			out[i].Certificate = certStatus(c)
		}
	}
	return out, nil
}

// findDomain picks one of an app's domains by id, host, or host/path.
func (m *Manager) findDomain(ctx context.Context, p auth.Principal, ref AppRef, which string) (Domain, error) {
	ds, err := m.Domains(ctx, p, ref)
	if err != nil {
		return Domain{}, err
	}
	return pickDomain(ds, which)
}

// pickDomain picks a domain by id, host, or host/path: ErrNotFound for
// none, a conflict for a host with several paths.
func pickDomain(ds []Domain, which string) (Domain, error) {
	host, prefix, withPath := strings.Cut(strings.ToLower(which), "/")
	var match []Domain
	for _, d := range ds {
		if d.ID == which || d.Host == host && (!withPath || d.PathPrefix == "/"+prefix) {
			match = append(match, d)
		}
	}
	switch len(match) {
	case 0:
		return Domain{}, store.ErrNotFound
	case 1:
		return match[0], nil
	default:
		return Domain{}, conflictf("%s has %d routes; name one as host/path or by id", which, len(match))
	}
}

// RemoveDomain removes one of an app's domains, by id or by host (with an
// optional path prefix: "shop.example.com/api"). A certificate no HTTPS
// domain uses any more is deleted, so it is not renewed.
func (m *Manager) RemoveDomain(ctx context.Context, p auth.Principal, ref AppRef, which string) error {
	if err := allow(p, authz.DomainWrite); err != nil {
		return err
	}
	d, err := m.findDomain(ctx, p, ref, which)
	if err != nil {
		return err
	}
	if err := m.db.DeleteDomain(ctx, p.Organization.ID, d.ID); err != nil {
		return err
	}
	if err := m.db.DeleteUnusedCertificates(ctx); err != nil {
		return err
	}
	m.routesChanged(ctx)
	return nil
}

// Domain is one of an app's domains, by id, host or host/path.
func (m *Manager) Domain(ctx context.Context, p auth.Principal, ref AppRef, which string) (Domain, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return Domain{}, err
	}
	return m.findDomain(ctx, p, ref, which)
}

// UpdateDomain replaces the options of one of an app's domains (found like
// RemoveDomain finds it) with in's: all of them, so an option in leaves out
// is dropped. The host and path prefix name the route and cannot change: in
// leaves them empty or repeats them. A basic auth user with an empty
// password keeps the current password. The checks are AddDomain's, so an
// updated domain always renders, and refused input changes nothing. Turning
// HTTPS on requests a certificate; turning it off deletes the certificate
// once no HTTPS domain uses the host.
func (m *Manager) UpdateDomain(ctx context.Context, p auth.Principal, ref AppRef, which string, in DomainInput) (Domain, error) {
	if err := allow(p, authz.DomainWrite); err != nil {
		return Domain{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.DomainWrite)
	if err != nil {
		return Domain{}, err
	}
	ds, err := m.appDomains(ctx, l.App)
	if err != nil {
		return Domain{}, err
	}
	found, err := pickDomain(ds, which)
	if err != nil {
		return Domain{}, err
	}
	cur := found.Domain
	if strings.TrimSpace(in.Host) == "" {
		in.Host = cur.Host
	}
	if strings.TrimSpace(in.PathPrefix) == "" {
		in.PathPrefix = cur.PathPrefix
	}
	if cleanHost(in.Host) != cur.Host {
		return Domain{}, fieldErrf("host", "a domain's host cannot change; add the new one and remove this one")
	}
	if strings.TrimSpace(in.PathPrefix) != cur.PathPrefix {
		return Domain{}, fieldErrf("path_prefix", "a domain's path prefix cannot change; add the new one and remove this one")
	}
	if b := in.BasicAuth; b != nil && b.Password == "" && cur.AuthUser != "" {
		keep := *b
		keep.hash = cur.AuthHash
		in.BasicAuth = &keep
	}
	d, err := normalizeDomain(in, l.App, m.wildcards)
	if err != nil {
		return Domain{}, err
	}
	d.ID, d.CreatedAt = cur.ID, cur.CreatedAt
	if err := m.db.UpdateDomain(ctx, d); err != nil {
		return Domain{}, err
	}
	switch {
	case d.HTTPS:
		// Also when it was on: a certificate row lost meanwhile comes back.
		if err := m.db.EnsureCertificate(ctx, m.now(), p.Organization.ID, d.Host); err != nil {
			return Domain{}, err
		}
	case cur.HTTPS:
		if err := m.db.DeleteUnusedCertificates(ctx); err != nil {
			return Domain{}, err
		}
	}
	m.routesChanged(ctx)
	return m.domain(ctx, d)
}

// UploadCertificate replaces the ACME certificate of an HTTPS domain's host
// with one the user brings (PEM chain, leaf first, and its key). It must
// verify to a trusted root, cover the host, match the key and be valid now;
// Berth then serves it and does not renew it. UseACME goes back.
func (m *Manager) UploadCertificate(ctx context.Context, p auth.Principal, ref AppRef, which, certPEM, keyPEM string) (Domain, error) {
	if err := allow(p, authz.DomainWrite); err != nil {
		return Domain{}, err
	}
	d, err := m.findDomain(ctx, p, ref, which)
	if err != nil {
		return Domain{}, err
	}
	if !d.HTTPS {
		return Domain{}, conflictf("%s serves plain HTTP; turn on HTTPS for it to give it a certificate", d.Host)
	}
	now := m.now()
	info, err := certs.ValidateUpload([]byte(certPEM), []byte(keyPEM), d.Host, now, m.certRoots)
	var fe *certs.FieldError
	if errors.As(err, &fe) {
		field := map[string]string{"certificate": "cert_pem", "key": "key_pem"}[fe.Field]
		return Domain{}, fieldErrf(cmp.Or(field, fe.Field), fe.Message)
	} else if err != nil {
		return Domain{}, err
	}
	sealed, err := m.keys.Seal([]byte(keyPEM), store.CertKeyAAD(d.Host))
	if err != nil {
		return Domain{}, err
	}
	err = m.db.SaveCertificate(ctx, now, store.Certificate{Host: d.Host, OrganizationID: p.Organization.ID, Source: store.CertCustom,
		CertPEM: certPEM, SealedKey: sealed, Issuer: info.Issuer, NotBefore: info.NotBefore, NotAfter: info.NotAfter})
	if err != nil {
		return Domain{}, err
	}
	m.routesChanged(ctx)
	return m.domain(ctx, d.Domain)
}

// UseACME drops an uploaded certificate: Berth requests one from the ACME CA
// at once (the uploaded one serves until then).
func (m *Manager) UseACME(ctx context.Context, p auth.Principal, ref AppRef, which string) (Domain, error) {
	if err := allow(p, authz.DomainWrite); err != nil {
		return Domain{}, err
	}
	d, err := m.findDomain(ctx, p, ref, which)
	if err != nil {
		return Domain{}, err
	}
	if d.Certificate == nil {
		return Domain{}, conflictf("%s serves plain HTTP; turn on HTTPS for it to give it a certificate", d.Host)
	}
	if d.Certificate.Source != store.CertACME {
		if err := m.db.UseACMECertificate(ctx, m.now(), p.Organization.ID, d.Host); err != nil {
			return Domain{}, err
		}
	}
	return m.domain(ctx, d.Domain)
}

// routesChanged republishes the routing table after a change users made and
// waits (briefly) until the proxies serve it, so that a domain works when
// the call returns. The change is stored either way; a failed publish is
// retried by the periodic one, a slow proxy is shown on the proxy page.
func (m *Manager) routesChanged(ctx context.Context) {
	r := m.engine.opts.Router
	if r == nil {
		return
	}
	v, err := r.Publish(ctx)
	if err != nil {
		m.engine.log.Warn("deploy: publish routing table", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r.AwaitLive(ctx, v)
}
