package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/store"
)

// DomainRequest adds a domain to an app, or replaces the options of one.
type DomainRequest struct {
	Host        string `json:"host" maxLength:"253" example:"shop.example.com" doc:"DNS name the app answers on (lowercased; no IP addresses). A wildcard *.example.com (one label) needs HTTPS and a DNS-01 provider on the server (--acme-dns-provider). On update: empty, or the domain's own host (a host cannot change)"`
	PathPrefix  string `json:"path_prefix,omitempty" maxLength:"256" example:"/api" doc:"Route only this path and below, on whole segments; empty or / for every path. On update: empty, or the domain's own prefix"`
	StripPrefix bool   `json:"strip_prefix,omitempty" doc:"Remove the path prefix before the request reaches the app"`
	Port        int    `json:"port,omitempty" minimum:"0" maximum:"65535" doc:"Container port requests go to; 0 means the app's HTTP port"`
	HTTPS       *bool  `json:"https,omitempty" doc:"Obtain a certificate through ACME and redirect HTTP to HTTPS once it is issued (default true)"`
	// Options of a domain that routes to the app.
	TimeoutSeconds int   `json:"timeout_seconds,omitempty" minimum:"0" maximum:"3600" doc:"How long the app may take to answer, 1–3600 seconds; 0 or absent for the proxy's default (60)"`
	MaxBodyBytes   int64 `json:"max_body_bytes,omitempty" minimum:"0" doc:"Largest request body accepted, in bytes (at least 1024), judged by Content-Length; larger ones answer 413. 0 or absent for no limit"`
	Compress       bool  `json:"compress,omitempty" doc:"Gzip text responses (HTML, CSS, JavaScript, JSON, XML, SVG, plain text) for clients that accept it, unless the app already compressed them"`
	// Options of every domain.
	Redirect  *DomainRedirect   `json:"redirect,omitempty" doc:"Answer with a redirect instead of routing to the app: www ↔ apex, an old domain, a path moved elsewhere. Needs no HTTP port; port, timeout, body limit and compression do not apply"`
	BasicAuth *BasicAuthRequest `json:"basic_auth,omitempty" doc:"Ask every request for this username and password (HTTP basic auth, 401 otherwise); ACME challenges stay open. Only a bcrypt hash is stored; the password is never returned"`
	Headers   []DomainHeader    `json:"headers,omitempty" maxItems:"10" doc:"Response headers set on every answer, the proxy's own (redirects, 401) included; they replace the app's of the same name"`
}

// DomainRedirect makes a domain a redirect.
type DomainRedirect struct {
	To       string `json:"to" maxLength:"512" example:"https://www.example.com" doc:"Absolute http or https URL: a DNS name, optional port and path of A–Z a–z 0–9 . _ ~ / - (no query, fragment, spaces or quotes)"`
	Code     int    `json:"code,omitempty" enum:"0,301,302,307,308" doc:"301 or 308 (permanent, 308 keeps the method), 302 or 307 (temporary, 307 keeps the method); 0 or absent for 308"`
	KeepPath *bool  `json:"keep_path,omitempty" doc:"Append the request's path and query to the URL (after strip_prefix); default true"`
}

// BasicAuthRequest is the user a domain lets in.
type BasicAuthRequest struct {
	Username string `json:"username" maxLength:"64" example:"preview" doc:"A–Z a–z 0–9 . _ @ + -"`
	Password string `json:"password,omitempty" maxLength:"72" doc:"8–72 bytes, no control characters; write-only. On update, empty or absent keeps the current password"`
}

// DomainHeader is a response header.
type DomainHeader struct {
	Name  string `json:"name" maxLength:"64" example:"Strict-Transport-Security" doc:"Letters, digits and inner hyphens. Hop-by-hop and framing headers, Set-Cookie, Location, WWW-Authenticate and Date are refused"`
	Value string `json:"value" maxLength:"512" example:"max-age=63072000" doc:"Printable ASCII without %, no leading or trailing space"`
}

// DomainAuth is what the API shows of a domain's basic auth.
type DomainAuth struct {
	Username string `json:"username"`
}

// Domain is a route from a host (and path) to an app.
type Domain struct {
	ID          string `json:"id"`
	Host        string `json:"host"`
	PathPrefix  string `json:"path_prefix"`
	StripPrefix bool   `json:"strip_prefix"`
	Port        int    `json:"port"`
	HTTPS       bool   `json:"https"`
	// Zero when unset.
	TimeoutSeconds int                `json:"timeout_seconds,omitempty"`
	MaxBodyBytes   int64              `json:"max_body_bytes,omitempty"`
	Compress       bool               `json:"compress,omitempty"`
	Redirect       *DomainRedirect    `json:"redirect,omitempty" doc:"Where the domain redirects; absent for a domain that routes to the app"`
	BasicAuth      *DomainAuth        `json:"basic_auth,omitempty" doc:"The user basic auth lets in (never the password)"`
	Headers        []DomainHeader     `json:"headers,omitempty"`
	Certificate    *deploy.CertStatus `json:"certificate,omitempty" doc:"The host's certificate; absent for plain-HTTP domains"`
	CreatedAt      time.Time          `json:"created_at"`
}

// DomainList is an app's domains.
type DomainList struct {
	Domains []Domain `json:"domains"`
}

func domainOf(d deploy.Domain) Domain {
	out := Domain{ID: d.ID, Host: d.Host, PathPrefix: d.PathPrefix, StripPrefix: d.StripPrefix, Port: d.Port,
		HTTPS: d.HTTPS, Certificate: d.Certificate, CreatedAt: d.CreatedAt,
		TimeoutSeconds: int(d.Timeout / time.Second), MaxBodyBytes: d.MaxBody, Compress: d.Compress}
	if d.RedirectTo != "" {
		keep := d.RedirectKeepPath
		out.Redirect = &DomainRedirect{To: d.RedirectTo, Code: d.RedirectCode, KeepPath: &keep}
	}
	if d.AuthUser != "" {
		out.BasicAuth = &DomainAuth{Username: d.AuthUser}
	}
	for _, h := range d.Headers {
		out.Headers = append(out.Headers, DomainHeader{Name: h.Name, Value: h.Value})
	}
	return out
}

// DomainInput turns a request into the deploy engine's input.
func (b DomainRequest) DomainInput() deploy.DomainInput {
	in := deploy.DomainInput{
		Host: b.Host, PathPrefix: b.PathPrefix, StripPrefix: b.StripPrefix, Port: b.Port, HTTPS: b.HTTPS == nil || *b.HTTPS,
		Timeout: time.Duration(b.TimeoutSeconds) * time.Second, MaxBody: b.MaxBodyBytes, Compress: b.Compress,
	}
	if r := b.Redirect; r != nil {
		in.Redirect = &deploy.RedirectInput{To: r.To, Code: r.Code, KeepPath: r.KeepPath == nil || *r.KeepPath}
	}
	if a := b.BasicAuth; a != nil {
		in.BasicAuth = &deploy.BasicAuthInput{User: a.Username, Password: a.Password}
	}
	for _, h := range b.Headers {
		in.Headers = append(in.Headers, store.Header{Name: h.Name, Value: h.Value})
	}
	return in
}

// domainFields are the API's names of the engine's domain fields that
// differ.
var domainFields = map[string]string{"timeout": "timeout_seconds", "max_body": "max_body_bytes"}

type addDomainInput struct {
	AppParams
	Body DomainRequest
}

type updateDomainInput struct {
	DomainParams
	Body DomainRequest
}

// DomainParams address one domain of an app. (Exported because huma only
// reads parameters of exported embedded types.)
type DomainParams struct {
	AppParams
	Domain string `path:"domain" maxLength:"300" example:"shop.example.com" doc:"Domain id, host, or host/path for a host with several paths"`
}

// CertificateUpload is a certificate the user brings for an HTTPS domain.
type CertificateUpload struct {
	CertPEM string `json:"cert_pem" maxLength:"65536" doc:"PEM certificate chain: the certificate first, then its intermediates"`
	KeyPEM  string `json:"key_pem" maxLength:"65536" doc:"PEM private key of the certificate (PKCS#1, PKCS#8 or SEC1); stored encrypted, never returned"`
}

type uploadCertificateInput struct {
	DomainParams
	Body CertificateUpload
}

type domainOutput struct{ Body Domain }

type domainListOutput struct{ Body DomainList }

func (s *server) registerDomains() {
	op := func(op huma.Operation) huma.Operation {
		op.Tags = []string{"Domains"}
		op.Errors = append(op.Errors, http.StatusNotFound)
		return op
	}
	register(s, op(huma.Operation{
		OperationID: "list-domains",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/domains",
		Summary:     "List an app's domains",
		Description: "Lists the app's domains by host and path, each HTTPS one with its certificate: source, status (pending, issued, failed), issuer, expiry, the last error in plain words and the next issuance or renewal attempt.",
	}), s.listDomains)

	register(s, op(huma.Operation{
		OperationID: "add-domain",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps/{app}/domains",
		Summary:     "Add a domain to an app",
		Description: "Routes a host, optionally only a path prefix under it, to the app through the edge proxy; live within about a second. " +
			"A host is unique across the platform: one another app routes answers 409 naming it. With `https`, a certificate is requested from the configured ACME CA " +
			"and HTTP redirects to HTTPS once it is issued. Invalid hosts, IP addresses, wildcards without DNS-01 and paths with `..` or unusual characters answer 422 naming the field.\n\n" +
			"Per domain: a timeout and a request body limit; gzip compression; a `redirect` instead of the app (www ↔ apex: add example.com redirecting to https://www.example.com); " +
			"HTTP basic auth for one user; up to 10 response headers. Every value is checked against a narrow alphabet before it reaches the proxy, and anything refused answers 422 " +
			"naming the field, with nothing stored. Timeouts, body limits and redirects apply without a proxy reload; basic auth, headers and compression change the proxy configuration " +
			"and take a seamless reload.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusConflict},
	}), s.addDomain)

	register(s, op(huma.Operation{
		OperationID: "get-domain",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/domains/{domain}",
		Summary:     "Show one of an app's domains",
		Description: "The domain named by id, host, or host/path (a host with several paths answers 409 unless the path is named), with its options and, for an HTTPS domain, its certificate.",
		Errors:      []int{http.StatusConflict},
	}), s.getDomain)

	register(s, op(huma.Operation{
		OperationID: "update-domain",
		Method:      http.MethodPut,
		Path:        Prefix + "/projects/{project}/apps/{app}/domains/{domain}",
		Summary:     "Change a domain's options",
		Description: "Replaces every option of the domain with the body's, the same body as adding one: an option left out takes its default " +
			"(`https` true, no timeout, body limit, redirect, basic auth or headers), so send every option the domain keeps along with those that change. " +
			"The host and path prefix name the route and cannot change: leave them empty or repeat them (to move a domain, add the new one and remove this one). " +
			"`basic_auth` without a `password` keeps the current password, for the same or a renamed user. " +
			"The checks are those of adding a domain; anything refused answers 422 naming the field, with nothing changed. " +
			"Turning `https` on requests a certificate; turning it off deletes the certificate once no HTTPS domain uses the host. Live within about a second.",
		Errors: []int{http.StatusConflict},
	}), s.updateDomain)

	register(s, op(huma.Operation{
		OperationID:   "remove-domain",
		Method:        http.MethodDelete,
		Path:          Prefix + "/projects/{project}/apps/{app}/domains/{domain}",
		Summary:       "Remove a domain from an app",
		Description:   "Stops routing the domain to the app. Its certificate is deleted (and no longer renewed) once no HTTPS domain uses the host.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusConflict},
	}), s.removeDomain)

	register(s, op(huma.Operation{
		OperationID: "upload-certificate",
		Method:      http.MethodPut,
		Path:        Prefix + "/projects/{project}/apps/{app}/domains/{domain}/certificate",
		Summary:     "Use your own certificate for an HTTPS domain",
		Description: "Replaces the host's ACME certificate with an uploaded one, served without a reload and never renewed by Berth. " +
			"It must chain to a trusted root through the intermediates sent along, cover the host, match the key and be valid now; " +
			"otherwise 422 names `cert_pem` or `key_pem` and nothing changes. The key is stored encrypted and never returned.",
		Errors:       []int{http.StatusConflict},
		MaxBodyBytes: 160 << 10,
	}), s.uploadCertificate)

	register(s, op(huma.Operation{
		OperationID: "use-acme-certificate",
		Method:      http.MethodDelete,
		Path:        Prefix + "/projects/{project}/apps/{app}/domains/{domain}/certificate",
		Summary:     "Go back to an ACME certificate",
		Description: "Drops an uploaded certificate: Berth requests one from the ACME CA at once; the uploaded one serves until it is issued.",
		Errors:      []int{http.StatusConflict},
	}), s.useACME)

	if s.deps.ProxyStatus != nil {
		register(s, huma.Operation{
			OperationID: "get-proxy-status",
			Method:      http.MethodGet,
			Path:        Prefix + "/proxy",
			Tags:        []string{"Domains"},
			Summary:     "Show the edge proxy",
			Description: "The edge proxy service: its image, the routing table version, each replica (node, Swarm state, the table version it serves, HAProxy version, " +
				"what it could not apply, requests in flight per release) and the organization's certificates with issuer and expiry. `error` says why the service could not be deployed, if it could not.",
		}, s.proxyStatus)
	}
}

type proxyStatusOutput struct{ Body edge.ProxyStatus }

func (s *server) proxyStatus(ctx context.Context, _ *struct{}) (*proxyStatusOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.deps.ProxyStatus(ctx, p.Organization.ID)
	if err != nil {
		return nil, err
	}
	return &proxyStatusOutput{Body: st}, nil
}

func (s *server) listDomains(ctx context.Context, in *AppParams) (*domainListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := s.deps.Apps.Domains(ctx, p, in.ref())
	if err != nil {
		return nil, err
	}
	out := DomainList{Domains: make([]Domain, len(ds))}
	for i, d := range ds {
		out.Domains[i] = domainOf(d)
	}
	return &domainListOutput{Body: out}, nil
}

func (s *server) addDomain(ctx context.Context, in *addDomainInput) (*domainOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.AddDomain(ctx, p, in.ref(), in.Body.DomainInput())
	if err != nil {
		return nil, apiDomainError(err)
	}
	s.log.InfoContext(ctx, "domain added", "user_id", p.User.ID, "app", in.ref().String(), "host", d.Host, "path_prefix", d.PathPrefix)
	return &domainOutput{Body: domainOf(d)}, nil
}

// apiDomainError gives a field error of the engine the request's name for
// the field.
func apiDomainError(err error) error {
	var fe *app.FieldError
	if errors.As(err, &fe) {
		return &app.FieldError{Field: cmp.Or(domainFields[fe.Field], fe.Field), Message: fe.Message}
	}
	return err
}

func (s *server) getDomain(ctx context.Context, in *DomainParams) (*domainOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.Domain(ctx, p, in.ref(), in.Domain)
	if err != nil {
		return nil, err
	}
	return &domainOutput{Body: domainOf(d)}, nil
}

func (s *server) updateDomain(ctx context.Context, in *updateDomainInput) (*domainOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.UpdateDomain(ctx, p, in.ref(), in.Domain, in.Body.DomainInput())
	if err != nil {
		return nil, apiDomainError(err)
	}
	s.log.InfoContext(ctx, "domain updated", "user_id", p.User.ID, "app", in.ref().String(), "host", d.Host, "path_prefix", d.PathPrefix)
	return &domainOutput{Body: domainOf(d)}, nil
}

func (s *server) removeDomain(ctx context.Context, in *DomainParams) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Apps.RemoveDomain(ctx, p, in.ref(), in.Domain); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "domain removed", "user_id", p.User.ID, "app", in.ref().String(), "domain", in.Domain)
	return nil, nil
}

func (s *server) uploadCertificate(ctx context.Context, in *uploadCertificateInput) (*domainOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.UploadCertificate(ctx, p, in.ref(), in.Domain, in.Body.CertPEM, in.Body.KeyPEM)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "certificate uploaded", "user_id", p.User.ID, "app", in.ref().String(), "host", d.Host)
	return &domainOutput{Body: domainOf(d)}, nil
}

func (s *server) useACME(ctx context.Context, in *DomainParams) (*domainOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.UseACME(ctx, p, in.ref(), in.Domain)
	if err != nil {
		return nil, err
	}
	return &domainOutput{Body: domainOf(d)}, nil
}
