package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/api"
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
		{"wildcard", map[string]any{"host": "*.example.com"}, "body.host", "DNS-01"},
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
