package certs_test

import (
	"errors"
	"testing"

	"github.com/berthpaas/berth/internal/certs"
)

func TestNewDNSProvider(t *testing.T) {
	// Environment variables must play no part.
	t.Setenv("DNSUPDATE_NAMESERVER", "192.0.2.1")
	t.Setenv("RFC2136_NAMESERVER", "192.0.2.1")
	t.Setenv("CLOUDFLARE_DNS_API_TOKEN", "from-env")

	rfc2136 := func(edit func(map[string]string)) map[string]string {
		s := map[string]string{
			"nameserver":  "ns1.example.com",
			"tsig_key":    "berth",
			"tsig_secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
		}
		if edit != nil {
			edit(s)
		}
		return s
	}
	tests := []struct {
		name       string
		kind       string
		settings   map[string]string
		field, msg string
	}{
		{name: "rfc2136 minimal", kind: "rfc2136", settings: rfc2136(nil)},
		{name: "rfc2136 everything", kind: "rfc2136", settings: rfc2136(func(s map[string]string) {
			s["nameserver"] = "[2001:db8::53]:5353"
			s["tsig_algorithm"] = "HMAC-SHA512."
			s["zone"] = "example.com"
			s["ttl"] = "60"
			s["propagation_timeout"] = "5m"
			s["polling_interval"] = "5s"
			s["sequence_interval"] = "2m"
			s["resolvers"] = "10.0.0.53, 10.0.0.54:5353"
		})},
		{name: "cloudflare", kind: "cloudflare", settings: map[string]string{"api_token": "t0k3n", "zone_token": "z0n3"}},

		{name: "unknown kind", kind: "route53", settings: map[string]string{},
			field: "kind", msg: `unknown DNS provider "route53"; supported: rfc2136, cloudflare`},
		{name: "rfc2136 without nameserver", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { delete(s, "nameserver") }),
			field: "nameserver", msg: "this setting is required"},
		{name: "rfc2136 without tsig_key", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { delete(s, "tsig_key") }),
			field: "tsig_key", msg: "this setting is required"},
		{name: "rfc2136 without tsig_secret", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { s["tsig_secret"] = " " }),
			field: "tsig_secret", msg: "this setting is required"},
		{name: "rfc2136 secret not base64", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { s["tsig_secret"] = "not base64!" }),
			field: "tsig_secret", msg: "the TSIG secret must be base64, as in the server's key file"},
		{name: "rfc2136 bad algorithm", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { s["tsig_algorithm"] = "hmac-md5" }),
			field: "tsig_algorithm", msg: `unsupported TSIG algorithm "hmac-md5"; use one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512`},
		{name: "rfc2136 bad port", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { s["nameserver"] = "ns1.example.com:99999" }),
			field: "nameserver", msg: `"ns1.example.com:99999" is not a host:port`},
		{name: "bad duration", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { s["propagation_timeout"] = "soon" }),
			field: "propagation_timeout", msg: `want a duration such as 30s or 2m, got "soon"`},
		{name: "bad ttl", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { s["ttl"] = "-1" }),
			field: "ttl", msg: `want a positive number of seconds, got "-1"`},
		{name: "unknown setting", kind: "rfc2136", settings: rfc2136(func(s map[string]string) { s["api_token"] = "x" }),
			field: "api_token", msg: "unknown setting for the rfc2136 provider; allowed: ttl, propagation_timeout, polling_interval, resolvers, nameserver, tsig_key, tsig_secret, tsig_algorithm, zone, sequence_interval"},
		{name: "cloudflare without token", kind: "cloudflare", settings: map[string]string{},
			field: "api_token", msg: "this setting is required"},
		{name: "cloudflare short ttl", kind: "cloudflare", settings: map[string]string{"api_token": "t", "ttl": "60"},
			field: "ttl", msg: "Cloudflare needs a TTL of at least 120 seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := certs.NewDNSProvider(tc.kind, tc.settings)
			if tc.field == "" {
				if err != nil || p == nil {
					t.Fatalf("NewDNSProvider = %v, %v", p, err)
				}
				return
			}
			var fe *certs.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *certs.FieldError", err)
			}
			if fe.Field != tc.field || fe.Message != tc.msg {
				t.Errorf("got %s: %q\nwant %s: %q", fe.Field, fe.Message, tc.field, tc.msg)
			}
		})
	}
}
