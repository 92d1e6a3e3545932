package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
)

// DomainRequest adds a domain to an app.
type DomainRequest struct {
	Host        string `json:"host" maxLength:"253" example:"shop.example.com" doc:"DNS name the app answers on (lowercased; no IP addresses, no wildcards)"`
	PathPrefix  string `json:"path_prefix,omitempty" maxLength:"256" example:"/api" doc:"Route only this path and below, on whole segments; empty or / for every path"`
	StripPrefix bool   `json:"strip_prefix,omitempty" doc:"Remove the path prefix before the request reaches the app"`
	Port        int    `json:"port,omitempty" minimum:"0" maximum:"65535" doc:"Container port requests go to; 0 means the app's HTTP port"`
	HTTPS       *bool  `json:"https,omitempty" doc:"Obtain a certificate through ACME and redirect HTTP to HTTPS once it is issued (default true)"`
}

// Domain is a route from a host (and path) to an app.
type Domain struct {
	ID          string             `json:"id"`
	Host        string             `json:"host"`
	PathPrefix  string             `json:"path_prefix"`
	StripPrefix bool               `json:"strip_prefix"`
	Port        int                `json:"port"`
	HTTPS       bool               `json:"https"`
	Certificate *deploy.CertStatus `json:"certificate,omitempty" doc:"The host's certificate; absent for plain-HTTP domains"`
	CreatedAt   time.Time          `json:"created_at"`
}

// DomainList is an app's domains.
type DomainList struct {
	Domains []Domain `json:"domains"`
}

func domainOf(d deploy.Domain) Domain {
	return Domain{ID: d.ID, Host: d.Host, PathPrefix: d.PathPrefix, StripPrefix: d.StripPrefix, Port: d.Port,
		HTTPS: d.HTTPS, Certificate: d.Certificate, CreatedAt: d.CreatedAt}
}

type addDomainInput struct {
	AppParams
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
			"and HTTP redirects to HTTPS once it is issued. Invalid hosts, IP addresses, wildcards and paths with `..` or unusual characters answer 422 naming the field.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusConflict},
	}), s.addDomain)

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
	b := in.Body
	d, err := s.deps.Apps.AddDomain(ctx, p, in.ref(), deploy.DomainInput{
		Host: b.Host, PathPrefix: b.PathPrefix, StripPrefix: b.StripPrefix, Port: b.Port, HTTPS: b.HTTPS == nil || *b.HTTPS,
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "domain added", "user_id", p.User.ID, "app", in.ref().String(), "host", d.Host, "path_prefix", d.PathPrefix)
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
