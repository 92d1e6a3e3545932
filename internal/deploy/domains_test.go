package deploy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/store"
)

func TestNormalizeDomainOptions(t *testing.T) {
	web := store.App{ID: "app_web", OrganizationID: "org_1", Spec: app.Spec{Port: 8080}}
	d, err := normalizeDomain(DomainInput{Host: "WWW.Example.com", Timeout: 90 * time.Second, MaxBody: 1 << 20, Compress: true,
		BasicAuth: &BasicAuthInput{User: "alice", Password: `pa ss"w#rd`},
		Headers:   []store.Header{{Name: "X-Frame-Options", Value: "DENY"}}}, web, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Host != "www.example.com" || d.Port != 8080 || d.Timeout != 90*time.Second || d.MaxBody != 1<<20 || !d.Compress || d.AuthUser != "alice" || len(d.Headers) != 1 {
		t.Errorf("normalized = %+v", d)
	}
	if strings.Contains(d.AuthHash, "pa ss") || bcrypt.CompareHashAndPassword([]byte(d.AuthHash), []byte(`pa ss"w#rd`)) != nil {
		t.Errorf("auth hash %q does not verify the password (or holds it)", d.AuthHash)
	}

	// A redirect needs no HTTP port; the URL loses its trailing slash when
	// the path is kept; the code defaults to 308.
	worker := store.App{ID: "app_worker", OrganizationID: "org_1"}
	d, err = normalizeDomain(DomainInput{Host: "example.com", Redirect: &RedirectInput{To: "https://www.example.com/", KeepPath: true}}, worker, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.RedirectTo != "https://www.example.com" || d.RedirectCode != 308 || !d.RedirectKeepPath || d.Port != 0 {
		t.Errorf("redirect normalized = %+v", d)
	}

	redirect := func(to string, code int) *RedirectInput { return &RedirectInput{To: to, Code: code} }
	for _, tc := range []struct {
		name, field string
		in          DomainInput
	}{
		{"timeout short", "timeout", DomainInput{Timeout: 500 * time.Millisecond}},
		{"timeout long", "timeout", DomainInput{Timeout: 2 * time.Hour}},
		{"timeout fraction", "timeout", DomainInput{Timeout: 1500 * time.Millisecond}},
		{"max body small", "max_body", DomainInput{MaxBody: 10}},
		{"max body negative", "max_body", DomainInput{MaxBody: -1}},
		{"redirect code", "redirect.code", DomainInput{Redirect: redirect("https://b.example", 303)}},
		{"redirect relative", "redirect.to", DomainInput{Redirect: redirect("/x", 0)}},
		{"redirect newline", "redirect.to", DomainInput{Redirect: redirect("https://b.example/\r\nSet-Cookie: a=1", 0)}},
		{"redirect quote", "redirect.to", DomainInput{Redirect: redirect(`https://b.example/"x`, 0)}},
		{"redirect space", "redirect.to", DomainInput{Redirect: redirect("https://b.example/a b", 0)}},
		{"redirect sample fetch", "redirect.to", DomainInput{Redirect: redirect("https://b.example/%[env(HOME)]", 0)}},
		{"redirect hash", "redirect.to", DomainInput{Redirect: redirect("https://b.example/#top", 0)}},
		{"redirect to itself", "redirect.to", DomainInput{Redirect: redirect("https://a.example.com", 0)}},
		{"redirect with port", "port", DomainInput{Port: 80, Redirect: redirect("https://b.example", 0)}},
		{"redirect with timeout", "timeout", DomainInput{Timeout: time.Minute, Redirect: redirect("https://b.example", 0)}},
		{"redirect with compress", "compress", DomainInput{Compress: true, Redirect: redirect("https://b.example", 0)}},
		{"auth user space", "basic_auth.username", DomainInput{BasicAuth: &BasicAuthInput{User: "a b", Password: "long enough"}}},
		{"auth user newline", "basic_auth.username", DomainInput{BasicAuth: &BasicAuthInput{User: "a\nuser b", Password: "long enough"}}},
		{"auth password short", "basic_auth.password", DomainInput{BasicAuth: &BasicAuthInput{User: "a", Password: "short"}}},
		{"auth password long", "basic_auth.password", DomainInput{BasicAuth: &BasicAuthInput{User: "a", Password: strings.Repeat("x", 73)}}},
		{"auth password newline", "basic_auth.password", DomainInput{BasicAuth: &BasicAuthInput{User: "a", Password: "long\nenough"}}},
		{"header name", "headers[0].name", DomainInput{Headers: []store.Header{{Name: "X A", Value: "1"}}}},
		{"header set-cookie", "headers[0].name", DomainInput{Headers: []store.Header{{Name: "set-cookie", Value: "a=1"}}}},
		{"header value newline", "headers[1].value", DomainInput{Headers: []store.Header{{Name: "X-A", Value: "1"}, {Name: "X-B", Value: "1\r\nX-C: 2"}}}},
		{"header value percent", "headers[0].value", DomainInput{Headers: []store.Header{{Name: "X-A", Value: "%[src]"}}}},
		{"too many headers", "headers", DomainInput{Headers: make([]store.Header, 11)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Host = "a.example.com"
			_, err := normalizeDomain(tc.in, web, false)
			var fe *app.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Message == "" {
				t.Errorf("err = %v, want a field error on %s", err, tc.field)
			}
		})
	}
}

func TestNormalizeDomainWildcards(t *testing.T) {
	web := store.App{ID: "app_web", OrganizationID: "org_1", Spec: app.Spec{Port: 8080}}
	d, err := normalizeDomain(DomainInput{Host: "*.Example.com.", HTTPS: true}, web, true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Host != "*.example.com" || !d.HTTPS {
		t.Errorf("normalized = %+v", d)
	}
	for _, tc := range []struct {
		name, host string
		https, dns bool
		want       string // in the message
	}{
		{"without DNS-01", "*.example.com", true, false, "--acme-dns-provider"},
		{"without https", "*.example.com", false, true, "https"},
		{"two wildcards", "*.*.x.com", true, true, "first label"},
		{"inner wildcard", "a.*.com", true, true, "first label"},
		{"partial label", "*example.com", true, true, "first label"},
		{"bare", "*", true, true, "first label"},
		{"bad rest", "*.-a.com", true, true, "after '*.'"},
		{"ip", "*.10.0.0.1", true, true, "IP address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := normalizeDomain(DomainInput{Host: tc.host, HTTPS: tc.https}, web, tc.dns)
			var fe *app.FieldError
			if !errors.As(err, &fe) || fe.Field != "host" || !strings.Contains(fe.Message, tc.want) {
				t.Errorf("err = %v, want a field error on host mentioning %q", err, tc.want)
			}
		})
	}
}
