package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Domain routes a host (and optionally a path prefix under it) to an app's
// container port through the edge proxy.
type Domain struct {
	ID             string
	OrganizationID string
	AppID          string
	Host           string
	PathPrefix     string // "/" for every path
	StripPrefix    bool
	Port           int
	HTTPS          bool
	// Timeout is how long the app may take to answer; 0 is the proxy's default.
	Timeout time.Duration
	// MaxBody is the largest request body in bytes; 0 is unlimited.
	MaxBody int64
	// RedirectTo, when not "", makes the domain a redirect to this URL
	// (with RedirectCode) instead of a route to the app.
	RedirectTo       string
	RedirectCode     int
	RedirectKeepPath bool
	// AuthUser, when not "", is the one user basic auth lets in; AuthHash is
	// the bcrypt hash of its password.
	AuthUser, AuthHash string
	Headers            []Header
	Compress           bool
	CreatedAt          time.Time
}

// Header is a response header a domain sets.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DomainConflictError says who already routes a host (and path). It matches
// ErrConflict. OwnerApp is the owning app's id when the owner is in the
// caller's organization, "" when it is another organization's (whose names
// are not the caller's to see).
type DomainConflictError struct {
	Host, PathPrefix string
	OwnerApp         string
}

func (e *DomainConflictError) Error() string {
	return fmt.Sprintf("domain %s%s: %v", e.Host, e.PathPrefix, ErrConflict)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *DomainConflictError) Is(target error) bool { return target == ErrConflict }

// CreateDomain stores d at time now and fills d.ID and d.CreatedAt. The app
// must belong to d.OrganizationID (else ErrNotFound); a host another
// organization uses, or a (host, path prefix) already routed, is a
// *DomainConflictError.
func (db *DB) CreateDomain(ctx context.Context, now time.Time, d *Domain) error {
	d.ID, d.CreatedAt = NewID("dom"), fromMillis(millis(now))
	return db.inTx(ctx, func(x q) error {
		var n int
		if err := x.row(ctx, `SELECT COUNT(*) FROM apps WHERE id = ? AND organization_id = ?`, d.AppID, d.OrganizationID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("app %s: %w", d.AppID, ErrNotFound)
		}
		var org, appID, prefix string
		err := x.row(ctx, `SELECT organization_id, app_id, path_prefix FROM domains WHERE host = ? AND (organization_id <> ? OR path_prefix = ?) ORDER BY organization_id = ? LIMIT 1`,
			d.Host, d.OrganizationID, d.PathPrefix, d.OrganizationID).Scan(&org, &appID, &prefix)
		switch {
		case err == nil && org != d.OrganizationID:
			return &DomainConflictError{Host: d.Host, PathPrefix: d.PathPrefix}
		case err == nil:
			return &DomainConflictError{Host: d.Host, PathPrefix: prefix, OwnerApp: appID}
		case !errors.Is(mapErr(err), ErrNotFound):
			return err
		}
		headers, err := encodeHeaders(d.Headers)
		if err != nil {
			return err
		}
		_, err = x.exec(ctx, `INSERT INTO domains (`+domainColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.OrganizationID, d.AppID, d.Host, d.PathPrefix, sqlBool(d.StripPrefix), d.Port, sqlBool(d.HTTPS),
			d.Timeout.Milliseconds(), d.MaxBody, d.RedirectTo, d.RedirectCode, sqlBool(d.RedirectKeepPath), d.AuthUser, d.AuthHash, headers, sqlBool(d.Compress),
			millis(now))
		if errors.Is(err, ErrConflict) {
			return &DomainConflictError{Host: d.Host, PathPrefix: d.PathPrefix}
		}
		return err
	})
}

// UpdateDomain writes every option of d (all but its host, path prefix and
// app, which identify the route) to the organization's domain d.ID:
// ErrNotFound when it has no such domain.
func (db *DB) UpdateDomain(ctx context.Context, d Domain) error {
	headers, err := encodeHeaders(d.Headers)
	if err != nil {
		return err
	}
	return db.q().execOne(ctx, `UPDATE domains SET strip_prefix = ?, port = ?, https = ?, timeout_ms = ?, max_body = ?, redirect_to = ?, redirect_code = ?,
 redirect_keep_path = ?, auth_user = ?, auth_hash = ?, headers = ?, compress = ? WHERE id = ? AND organization_id = ?`,
		sqlBool(d.StripPrefix), d.Port, sqlBool(d.HTTPS), d.Timeout.Milliseconds(), d.MaxBody, d.RedirectTo, d.RedirectCode,
		sqlBool(d.RedirectKeepPath), d.AuthUser, d.AuthHash, headers, sqlBool(d.Compress), d.ID, d.OrganizationID)
}

// encodeHeaders is the headers column: JSON, or "" for none.
func encodeHeaders(hs []Header) (string, error) {
	if len(hs) == 0 {
		return "", nil
	}
	b, err := json.Marshal(hs)
	return string(b), err
}

const domainColumns = `id, organization_id, app_id, host, path_prefix, strip_prefix, port, https, timeout_ms, max_body, redirect_to, redirect_code, redirect_keep_path, auth_user, auth_hash, headers, compress, created_at`

func (db *DB) listDomains(ctx context.Context, query string, args ...any) ([]Domain, error) {
	rows, err := db.q().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Domain
	for rows.Next() {
		var d Domain
		var created, timeout int64
		var headers string
		if err := rows.Scan(&d.ID, &d.OrganizationID, &d.AppID, &d.Host, &d.PathPrefix, &d.StripPrefix, &d.Port, &d.HTTPS,
			&timeout, &d.MaxBody, &d.RedirectTo, &d.RedirectCode, &d.RedirectKeepPath, &d.AuthUser, &d.AuthHash, &headers, &d.Compress, &created); err != nil {
			return nil, err
		}
		if headers != "" {
			if err := json.Unmarshal([]byte(headers), &d.Headers); err != nil {
				return nil, fmt.Errorf("domain %s: headers: %w", d.ID, err)
			}
		}
		d.Timeout, d.CreatedAt = time.Duration(timeout)*time.Millisecond, fromMillis(created)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Domains lists an app's domains by host and path.
func (db *DB) Domains(ctx context.Context, orgID, appID string) ([]Domain, error) {
	return db.listDomains(ctx, `SELECT `+domainColumns+` FROM domains WHERE organization_id = ? AND app_id = ? ORDER BY host, path_prefix`, orgID, appID)
}

// AllDomains lists every domain of every organization, for the routing
// table. Engine-internal, unscoped: never expose it to a user.
func (db *DB) AllDomains(ctx context.Context) ([]Domain, error) {
	return db.listDomains(ctx, `SELECT `+domainColumns+` FROM domains ORDER BY host, path_prefix`)
}

// DeleteDomain deletes one domain of the organization by id.
func (db *DB) DeleteDomain(ctx context.Context, orgID, id string) error {
	return db.q().execOne(ctx, `DELETE FROM domains WHERE id = ? AND organization_id = ?`, id, orgID)
}

// Certificate is the TLS certificate of one host.
type Certificate struct {
	Host           string
	OrganizationID string
	Source         string // CertACME or CertCustom
	CertPEM        string // "" until issued
	SealedKey      string
	Issuer         string
	NotBefore      time.Time
	NotAfter       time.Time
	LastError      string
	Failures       int
	NextAttemptAt  time.Time
	UpdatedAt      time.Time
}

// Certificate sources.
const (
	CertACME   = "acme"
	CertCustom = "custom"
)

const certColumns = `host, organization_id, source, cert_pem, key_sealed, issuer, not_before, not_after, last_error, failures, next_attempt_at, updated_at`

func (db *DB) listCertificates(ctx context.Context, query string, args ...any) ([]Certificate, error) {
	rows, err := db.q().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Certificate
	for rows.Next() {
		var c Certificate
		var nb, na, next, upd int64
		var org sql.NullString
		if err := rows.Scan(&c.Host, &org, &c.Source, &c.CertPEM, &c.SealedKey, &c.Issuer, &nb, &na, &c.LastError, &c.Failures, &next, &upd); err != nil {
			return nil, err
		}
		c.OrganizationID = org.String
		c.NotBefore, c.NotAfter, c.NextAttemptAt, c.UpdatedAt = fromMillis(nb), fromMillis(na), fromMillis(next), fromMillis(upd)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Certificates lists the organization's certificates by host.
func (db *DB) Certificates(ctx context.Context, orgID string) ([]Certificate, error) {
	return db.listCertificates(ctx, `SELECT `+certColumns+` FROM certificates WHERE organization_id = ? ORDER BY host`, orgID)
}

// AllCertificates lists every certificate, for the routing table and the
// issuer. Engine-internal, unscoped.
func (db *DB) AllCertificates(ctx context.Context) ([]Certificate, error) {
	return db.listCertificates(ctx, `SELECT `+certColumns+` FROM certificates ORDER BY host`)
}

// EnsureCertificate records that host needs an ACME certificate, due now,
// unless it already has a certificate row. An empty orgID is the install's
// own host.
func (db *DB) EnsureCertificate(ctx context.Context, now time.Time, orgID, host string) error {
	_, err := db.q().exec(ctx, `INSERT INTO certificates (host, organization_id, source, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (host) DO NOTHING`,
		host, nullText(orgID), CertACME, millis(now), millis(now))
	return err
}

// SaveCertificate writes c whole (insert or replace) at time now.
func (db *DB) SaveCertificate(ctx context.Context, now time.Time, c Certificate) error {
	_, err := db.q().exec(ctx, `INSERT INTO certificates (`+certColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (host) DO UPDATE SET organization_id = excluded.organization_id, source = excluded.source, cert_pem = excluded.cert_pem,
 key_sealed = excluded.key_sealed, issuer = excluded.issuer, not_before = excluded.not_before, not_after = excluded.not_after,
 last_error = excluded.last_error, failures = excluded.failures, next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at`,
		c.Host, nullText(c.OrganizationID), c.Source, c.CertPEM, c.SealedKey, c.Issuer, millis(c.NotBefore), millis(c.NotAfter), c.LastError, c.Failures, millis(c.NextAttemptAt), millis(now))
	return err
}

// DeleteUnusedCertificates removes the certificates of hosts no HTTPS domain
// uses any more, so nothing renews a deleted domain.
func (db *DB) DeleteUnusedCertificates(ctx context.Context) error {
	_, err := db.q().exec(ctx, `DELETE FROM certificates WHERE organization_id IS NOT NULL AND host NOT IN (SELECT host FROM domains WHERE https = 1)`)
	return err
}

// CertKeyAAD is the associated data a host's sealed private key is bound to.
func CertKeyAAD(host string) string { return "certificate:" + host }

// UseACMECertificate turns a host's uploaded certificate back into an ACME
// one, due now; the uploaded certificate keeps serving until it is replaced.
func (db *DB) UseACMECertificate(ctx context.Context, now time.Time, orgID, host string) error {
	return db.q().execOne(ctx, `UPDATE certificates SET source = ?, next_attempt_at = ?, failures = 0, last_error = '', updated_at = ? WHERE host = ? AND organization_id = ?`,
		CertACME, millis(now), millis(now), host, orgID)
}

// KeepInstallCertificate deletes the install's own certificates (no
// organization) for any host but host, so a changed public URL stops
// renewing the old one. An empty host deletes them all.
func (db *DB) KeepInstallCertificate(ctx context.Context, host string) error {
	_, err := db.q().exec(ctx, `DELETE FROM certificates WHERE organization_id IS NULL AND host <> ?`, host)
	return err
}
