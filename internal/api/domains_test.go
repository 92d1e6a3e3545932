package api_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/testenv"
)

func TestDomains(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", nil)
	a.createApp("shop", "api", nil)
	a.createApp("shop", "worker", map[string]any{"spec": map[string]any{"image": "busybox:1"}})
	const web = "/projects/shop/apps/web/domains"

	bad := []struct {
		name     string
		body     map[string]any
		location string
		mention  string
	}{
		{"empty host", map[string]any{"host": ""}, "body.host", "required"},
		{"IP literal", map[string]any{"host": "10.0.0.1"}, "body.host", "IP address"},
		{"IPv6 literal", map[string]any{"host": "[::1]"}, "body.host", "IP address"},
		{"wildcard without DNS-01", map[string]any{"host": "*.example.com"}, "body.host", "--acme-dns-provider"},
		{"underscore", map[string]any{"host": "a_b.example.com"}, "body.host", "RFC 1123"},
		{"newline injection", map[string]any{"host": "a.example.com\nuse_backend x"}, "body.host", "RFC 1123"},
		{"space injection", map[string]any{"host": "a.example.com be_other"}, "body.host", "RFC 1123"},
		{"numeric TLD", map[string]any{"host": "example.123"}, "body.host", "numeric"},
		{"dot-dot path", map[string]any{"host": "a.example.com", "path_prefix": "/api/../admin"}, "body.path_prefix", `".."`},
		{"control char path", map[string]any{"host": "a.example.com", "path_prefix": "/api\u0001"}, "body.path_prefix", "characters"},
		{"quote in path", map[string]any{"host": "a.example.com", "path_prefix": `/a"b`}, "body.path_prefix", "characters"},
		{"relative path", map[string]any{"host": "a.example.com", "path_prefix": "api"}, "body.path_prefix", "start with"},
		{"strip without prefix", map[string]any{"host": "a.example.com", "strip_prefix": true}, "body.strip_prefix", "prefix"},
		{"port", map[string]any{"host": "a.example.com", "port": 70000}, "body.port", "65535"},
		{"timeout", map[string]any{"host": "a.example.com", "timeout_seconds": 3601}, "body.timeout_seconds", "3600"},
		{"max body", map[string]any{"host": "a.example.com", "max_body_bytes": 100}, "body.max_body_bytes", "1024"},
		{"redirect code", map[string]any{"host": "a.example.com", "redirect": map[string]any{"to": "https://b.example.com", "code": 303}}, "body.redirect.code", "308"},
		{"redirect newline", map[string]any{"host": "a.example.com", "redirect": map[string]any{"to": "https://b.example.com/\r\nSet-Cookie: a=1"}}, "body.redirect.to", "no query"},
		{"redirect quote", map[string]any{"host": "a.example.com", "redirect": map[string]any{"to": `https://b.example.com/"`}}, "body.redirect.to", "no query"},
		{"redirect sample fetch", map[string]any{"host": "a.example.com", "redirect": map[string]any{"to": "https://b.example.com/%[env(HOME)]"}}, "body.redirect.to", "no query"},
		{"redirect hash", map[string]any{"host": "a.example.com", "redirect": map[string]any{"to": "https://b.example.com/#x"}}, "body.redirect.to", "no query"},
		{"redirect space", map[string]any{"host": "a.example.com", "redirect": map[string]any{"to": "https://b.example.com/a b"}}, "body.redirect.to", "no query"},
		{"redirect with port", map[string]any{"host": "a.example.com", "port": 80, "redirect": map[string]any{"to": "https://b.example.com"}}, "body.port", "redirect"},
		{"auth user", map[string]any{"host": "a.example.com", "basic_auth": map[string]any{"username": "a b", "password": "long enough"}}, "body.basic_auth.username", "allowed"},
		{"auth password", map[string]any{"host": "a.example.com", "basic_auth": map[string]any{"username": "a", "password": "short"}}, "body.basic_auth.password", "8"},
		{"header name", map[string]any{"host": "a.example.com", "headers": []map[string]string{{"name": "X A", "value": "1"}}}, "body.headers[0].name", "hyphens"},
		{"header set-cookie", map[string]any{"host": "a.example.com", "headers": []map[string]string{{"name": "Set-Cookie", "value": "a=1"}}}, "body.headers[0].name", "cookies"},
		{"header newline", map[string]any{"host": "a.example.com", "headers": []map[string]string{{"name": "X-A", "value": "1\r\nX-B: 2"}}}, "body.headers[0].value", "printable"},
		{"header sample fetch", map[string]any{"host": "a.example.com", "headers": []map[string]string{{"name": "X-A", "value": "%[src]"}}}, "body.headers[0].value", "%"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			b := *a
			e := *a.env
			e.t = t
			b.env = &e
			fieldError(t, b.call(http.StatusUnprocessableEntity, "POST", web, tt.body), tt.location, tt.mention)
		})
	}
	fieldError(t, a.call(http.StatusUnprocessableEntity, "POST", "/projects/shop/apps/worker/domains", map[string]any{"host": "w.example.com"}), "body.port", "no HTTP port")
	var list api.DomainList
	a.call(http.StatusOK, "GET", web, nil).json(t, &list)
	if len(list.Domains) != 0 {
		t.Fatalf("invalid requests added domains: %+v", list.Domains)
	}

	// HTTPS is the default; the host is lowercased.
	var d api.Domain
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "Shop.Example.COM"}).json(t, &d)
	if d.Host != "shop.example.com" || d.PathPrefix != "/" || d.Port != 80 || !d.HTTPS || d.Certificate == nil || d.Certificate.Status != "pending" {
		t.Errorf("added %+v (certificate %+v)", d, d.Certificate)
	}
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "shop.example.com", "path_prefix": "/static", "strip_prefix": true, "https": false})

	// A host and path is unique across the platform; the conflict names the owner.
	res := a.call(http.StatusConflict, "POST", "/projects/shop/apps/api/domains", map[string]any{"host": "shop.example.com"})
	if p := res.problem(t); !strings.Contains(p.Detail, "shop/web") {
		t.Errorf("conflict does not name the owner app: %s", res.body)
	}
	// Another path of the same host may go to another app of the organization.
	a.call(http.StatusCreated, "POST", "/projects/shop/apps/api/domains", map[string]any{"host": "shop.example.com", "path_prefix": "/api", "https": false})

	// Options: a redirect (no HTTP port needed), and a domain with every
	// option of a route to the app. The password is stored hashed and never
	// shown.
	var r api.Domain
	a.call(http.StatusCreated, "POST", "/projects/shop/apps/worker/domains", map[string]any{"host": "example.com", "https": false,
		"redirect": map[string]any{"to": "https://www.example.com/", "code": 301}}).json(t, &r)
	if r.Redirect == nil || r.Redirect.To != "https://www.example.com" || r.Redirect.Code != 301 || r.Redirect.KeepPath == nil || !*r.Redirect.KeepPath || r.Port != 0 {
		t.Errorf("redirect domain = %+v (%+v)", r, r.Redirect)
	}
	res = a.call(http.StatusCreated, "POST", "/projects/shop/apps/api/domains", map[string]any{"host": "www.example.com", "https": false,
		"timeout_seconds": 90, "max_body_bytes": 1 << 20, "compress": true,
		"basic_auth": map[string]any{"username": "preview", "password": "s3cret-preview"},
		"headers":    []map[string]string{{"name": "X-Frame-Options", "value": "DENY"}}})
	res.json(t, &r)
	if r.TimeoutSeconds != 90 || r.MaxBodyBytes != 1<<20 || !r.Compress || r.BasicAuth == nil || r.BasicAuth.Username != "preview" ||
		len(r.Headers) != 1 || r.Headers[0] != (api.DomainHeader{Name: "X-Frame-Options", Value: "DENY"}) {
		t.Errorf("domain with options = %+v", r)
	}
	all, _ := a.db.AllDomains(t.Context())
	for _, d := range all {
		if d.Host == "www.example.com" && (d.AuthHash == "" || strings.Contains(d.AuthHash, "s3cret")) {
			t.Errorf("stored auth hash %q", d.AuthHash)
		}
	}
	listed := a.call(http.StatusOK, "GET", "/projects/shop/apps/api/domains", nil)
	if strings.Contains(string(res.body)+string(listed.body), "s3cret") || strings.Contains(string(listed.body), "$2a$") {
		t.Errorf("the password or its hash came back: %s", listed.body)
	}
	a.call(http.StatusNoContent, "DELETE", "/projects/shop/apps/worker/domains/example.com", nil)
	a.call(http.StatusNoContent, "DELETE", "/projects/shop/apps/api/domains/www.example.com", nil)

	a.call(http.StatusOK, "GET", web, nil).json(t, &list)
	if len(list.Domains) != 2 || list.Domains[1].PathPrefix != "/static" || !list.Domains[1].StripPrefix || list.Domains[1].Certificate != nil {
		t.Errorf("list %+v", list.Domains)
	}
	// A host with two routes of this app needs host/path to remove one.
	a.call(http.StatusConflict, "DELETE", web+"/shop.example.com", nil)
	a.call(http.StatusNoContent, "DELETE", web+"/shop.example.com%2Fstatic", nil)
	a.call(http.StatusNoContent, "DELETE", web+"/shop.example.com", nil)
	a.call(http.StatusNotFound, "DELETE", web+"/shop.example.com", nil)
	a.call(http.StatusOK, "GET", web, nil).json(t, &list)
	if len(list.Domains) != 0 {
		t.Errorf("left after removal: %+v", list.Domains)
	}
	certs, err := a.db.AllCertificates(t.Context())
	if err != nil || len(certs) != 0 {
		t.Errorf("certificate of a removed domain kept (would be renewed): %+v %v", certs, err)
	}
}

// testCA signs the certificates the upload tests bring; every app env's
// manager trusts it.
var testCA = testenv.NewCA()

func TestUploadCertificate(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", nil)
	const web = "/projects/shop/apps/web/domains"
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "shop.example.com"})
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "plain.example.com", "https": false})
	cert, key := testCA.Leaf(t, "shop.example.com")
	otherCert, otherKey := testCA.Leaf(t, "other.example.com")
	a.remember(key, otherKey)

	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", web+"/shop.example.com/certificate", map[string]string{"cert_pem": cert, "key_pem": otherKey}), "body.key_pem", "does not match")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", web+"/shop.example.com/certificate", map[string]string{"cert_pem": otherCert, "key_pem": otherKey}), "body.cert_pem", "shop.example.com")
	fieldError(t, a.call(http.StatusUnprocessableEntity, "PUT", web+"/shop.example.com/certificate", map[string]string{"cert_pem": "not a certificate", "key_pem": key}), "body.cert_pem", "PEM")
	a.call(http.StatusConflict, "PUT", web+"/plain.example.com/certificate", map[string]string{"cert_pem": cert, "key_pem": key})
	var d api.Domain
	a.call(http.StatusOK, "GET", web, nil)
	stored, _ := a.db.AllCertificates(t.Context())
	if len(stored) != 1 || stored[0].Source != "acme" || stored[0].CertPEM != "" {
		t.Fatalf("a refused upload changed the certificate: %+v", stored)
	}

	res := a.call(http.StatusOK, "PUT", web+"/shop.example.com/certificate", map[string]string{"cert_pem": cert, "key_pem": key})
	res.json(t, &d)
	if c := d.Certificate; c == nil || c.Source != "custom" || c.Status != "issued" || c.Issuer != "Berth Test CA" || c.NotAfter == nil {
		t.Errorf("after upload: %+v", d.Certificate)
	}
	if strings.Contains(string(res.body), "PRIVATE KEY") {
		t.Errorf("the key came back: %s", res.body)
	}
	stored, _ = a.db.AllCertificates(t.Context())
	if len(stored) != 1 || stored[0].CertPEM != cert || strings.Contains(stored[0].SealedKey, "PRIVATE KEY") {
		t.Errorf("stored %+v", stored)
	}

	a.call(http.StatusOK, "DELETE", web+"/shop.example.com/certificate", nil).json(t, &d)
	if c := d.Certificate; c == nil || c.Source != "acme" {
		t.Errorf("after going back to ACME: %+v", d.Certificate)
	}
}

func TestWildcardDomains(t *testing.T) {
	a := newAppEnv(t, func(m *deploy.Manager) { m.WithWildcards(true) })
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", nil)
	const web = "/projects/shop/apps/web/domains"
	for _, tt := range []struct {
		name    string
		body    map[string]any
		mention string
	}{
		{"without https", map[string]any{"host": "*.example.com", "https": false}, "https"},
		{"two wildcards", map[string]any{"host": "*.*.x.com"}, "first label"},
		{"inner wildcard", map[string]any{"host": "a.*.com"}, "first label"},
		{"partial label", map[string]any{"host": "*example.com"}, "first label"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := *a
			e := *a.env
			e.t = t
			b.env = &e
			fieldError(t, b.call(http.StatusUnprocessableEntity, "POST", web, tt.body), "body.host", tt.mention)
		})
	}
	var d api.Domain
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "*.Example.com"}).json(t, &d)
	if d.Host != "*.example.com" || !d.HTTPS || d.Certificate == nil || d.Certificate.Status != "pending" {
		t.Errorf("wildcard domain = %+v, want *.example.com with a pending certificate", d)
	}
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "www.example.com"})
}

func TestUpdateDomain(t *testing.T) {
	a := newAppEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	a.createApp("shop", "web", nil)
	const web = "/projects/shop/apps/web/domains"
	var added api.Domain
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "www.example.com", "path_prefix": "/app", "https": false, "timeout_seconds": 90,
		"basic_auth": map[string]any{"username": "preview", "password": "s3cret-preview"},
		"headers":    []map[string]string{{"name": "X-Frame-Options", "value": "DENY"}}}).json(t, &added)
	a.call(http.StatusCreated, "POST", web, map[string]any{"host": "www.example.com", "https": false})
	hashOf := func() string {
		all, _ := a.db.AllDomains(t.Context())
		for _, d := range all {
			if d.ID == added.ID {
				return d.AuthHash
			}
		}
		t.Fatalf("domain %s is gone", added.ID)
		return ""
	}
	hash := hashOf()

	// One domain, by host/path or id; a host with two paths is ambiguous.
	var got api.Domain
	a.call(http.StatusOK, "GET", web+"/www.example.com%2Fapp", nil).json(t, &got)
	if got.ID != added.ID || got.TimeoutSeconds != 90 || got.BasicAuth == nil || got.BasicAuth.Username != "preview" {
		t.Errorf("GET by host/path = %+v", got)
	}
	a.call(http.StatusOK, "GET", web+"/"+added.ID, nil)
	a.call(http.StatusConflict, "GET", web+"/www.example.com", nil)
	a.call(http.StatusNotFound, "GET", web+"/nope.example.com", nil)

	// PUT replaces the options: the password kept, the headers and the
	// timeout gone, compression on.
	var d api.Domain
	res := a.call(http.StatusOK, "PUT", web+"/"+added.ID, map[string]any{"host": "www.example.com", "path_prefix": "/app", "https": false,
		"compress": true, "basic_auth": map[string]any{"username": "preview", "password": ""}})
	res.json(t, &d)
	if d.ID != added.ID || !d.CreatedAt.Equal(added.CreatedAt) || !d.Compress || d.TimeoutSeconds != 0 || len(d.Headers) != 0 ||
		d.BasicAuth == nil || d.BasicAuth.Username != "preview" || d.HTTPS || d.Certificate != nil {
		t.Errorf("after PUT: %+v", d)
	}
	if h := hashOf(); h != hash {
		t.Errorf("an empty password changed the hash: %q → %q", hash, h)
	}
	if strings.Contains(string(res.body), "$2a$") {
		t.Errorf("the hash came back: %s", res.body)
	}
	// Without a password at all, too.
	a.call(http.StatusOK, "PUT", web+"/"+added.ID, map[string]any{"host": "", "https": false, "compress": true, "basic_auth": map[string]any{"username": "preview"}})
	if h := hashOf(); h != hash {
		t.Errorf("an absent password changed the hash: %q → %q", hash, h)
	}
	// The host may be empty and the path left out; https defaults to on and brings a
	// certificate; basic auth left out is removed.
	d = api.Domain{} // the answer leaves out what is unset
	a.call(http.StatusOK, "PUT", web+"/www.example.com%2Fapp", map[string]any{"host": "", "redirect": map[string]any{"to": "https://example.com", "code": 307}}).json(t, &d)
	if d.Redirect == nil || d.Redirect.To != "https://example.com" || d.Redirect.Code != 307 || d.Port != 0 || !d.HTTPS ||
		d.Certificate == nil || d.Certificate.Status != "pending" || d.BasicAuth != nil || d.PathPrefix != "/app" {
		t.Errorf("as a redirect: %+v", d)
	}
	if h := hashOf(); h != "" {
		t.Errorf("basic auth left out kept its hash %q", h)
	}

	// Refused: named fields, with the API's names, and nothing changed.
	before, _ := a.db.AllDomains(t.Context())
	for _, tt := range []struct {
		name     string
		body     map[string]any
		location string
		mention  string
	}{
		{"host changed", map[string]any{"host": "other.example.com"}, "body.host", "cannot change"},
		{"path changed", map[string]any{"host": "www.example.com", "path_prefix": "/v2"}, "body.path_prefix", "cannot change"},
		{"timeout", map[string]any{"host": "", "timeout_seconds": 3601}, "body.timeout_seconds", "3600"},
		{"timeout of a redirect", map[string]any{"host": "", "timeout_seconds": 60, "redirect": map[string]any{"to": "https://example.com"}}, "body.timeout_seconds", "redirect"},
		{"max body", map[string]any{"host": "", "max_body_bytes": 100}, "body.max_body_bytes", "1024"},
		{"new auth without password", map[string]any{"host": "", "basic_auth": map[string]any{"username": "preview", "password": ""}}, "body.basic_auth.password", "8"},
		{"header newline", map[string]any{"host": "", "headers": []map[string]string{{"name": "X-A", "value": "1\r\nX-B: 2"}}}, "body.headers[0].value", "printable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := *a
			e := *a.env
			e.t = t
			b.env = &e
			fieldError(t, b.call(http.StatusUnprocessableEntity, "PUT", web+"/"+added.ID, tt.body), tt.location, tt.mention)
		})
	}
	if after, _ := a.db.AllDomains(t.Context()); !reflect.DeepEqual(after, before) {
		t.Errorf("refused updates changed the domains:\n%+v\n%+v", before, after)
	}
	a.call(http.StatusNotFound, "PUT", web+"/nope.example.com", map[string]any{"host": ""})
	a.call(http.StatusConflict, "PUT", web+"/www.example.com", map[string]any{"host": ""})
	a.call(http.StatusNotFound, "PUT", "/projects/shop/apps/nope/domains/"+added.ID, map[string]any{"host": ""})

	// Back to plain HTTP: the certificate no HTTPS domain uses goes.
	a.call(http.StatusOK, "PUT", web+"/"+added.ID, map[string]any{"host": "", "https": false})
	if certs, _ := a.db.AllCertificates(t.Context()); len(certs) != 0 {
		t.Errorf("certificates after HTTPS off: %+v", certs)
	}

	// Both operations are documented.
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Summary     string   `json:"summary"`
			Description string   `json:"description"`
			Tags        []string `json:"tags"`
		} `json:"paths"`
	}
	a.expect(http.StatusOK, request{method: "GET", path: "/api/openapi.json"}).json(t, &doc)
	ops := doc.Paths["/api/v1/projects/{project}/apps/{app}/domains/{domain}"]
	for method, id := range map[string]string{"get": "get-domain", "put": "update-domain", "delete": "remove-domain"} {
		if op := ops[method]; op.OperationID != id || op.Summary == "" || op.Description == "" || len(op.Tags) != 1 || op.Tags[0] != "Domains" {
			t.Errorf("%s: documented as %+v", id, op)
		}
	}
}
