package deploy

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/secrets"
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

// publishCounter is a Router that counts routing table publications.
type publishCounter struct{ n int }

func (r *publishCounter) Publish(context.Context) (int64, error)        { r.n++; return int64(r.n), nil }
func (r *publishCounter) AwaitLive(context.Context, int64) error        { return nil }
func (r *publishCounter) AwaitReady(context.Context, string, int) error { return nil }
func (r *publishCounter) AwaitDrained(context.Context, string) error    { return nil }

// domainManager is a manager over a fresh SQLite database with app
// shop/web (HTTP port 8080); nothing here reaches a cluster.
func domainManager(t *testing.T) (*Manager, *store.DB, auth.Principal, *publishCounter) {
	t.Helper()
	ctx := t.Context()
	db, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, _ := secrets.New(key)
	org, u := store.Organization{Name: "Acme"}, store.User{Email: "dev@example.com", PasswordHash: "x"}
	if err := db.CompleteSetup(ctx, time.Now(), &org, &u); err != nil {
		t.Fatal(err)
	}
	router := &publishCounter{}
	m := NewManager(db, keys, nil, NewEngine(db, nil, keys, slog.New(slog.DiscardHandler), Options{Router: router}))
	p := auth.Principal{User: u, Organization: org, Role: store.RoleOwner}
	if _, err := m.CreateProject(ctx, p, "shop"); err != nil {
		t.Fatal(err)
	}
	spec := app.DefaultSpec()
	spec.Image, spec.Port = "nginx", 8080
	if _, err := m.CreateApp(ctx, p, CreateAppInput{Ref: AppRef{Project: "shop", Name: "web"}, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	return m, db, p, router
}

func TestUpdateDomain(t *testing.T) {
	m, db, p, router := domainManager(t)
	ctx := t.Context()
	web := AppRef{Project: "shop", Name: "web"}
	const firstPW, secondPW = "first-password", "second-password"
	api, err := m.AddDomain(ctx, p, web, DomainInput{Host: "shop.example.com", PathPrefix: "/api", Timeout: 90 * time.Second,
		BasicAuth: &BasicAuthInput{User: "alice", Password: firstPW}, Headers: []store.Header{{Name: "X-A", Value: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddDomain(ctx, p, web, DomainInput{Host: "shop.example.com", HTTPS: true}); err != nil {
		t.Fatal(err)
	}
	stored := func(id string) store.Domain {
		t.Helper()
		ds, err := db.Domains(ctx, p.Organization.ID, api.AppID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.ID == id {
				return d
			}
		}
		t.Fatalf("domain %s is gone", id)
		return store.Domain{}
	}
	update := func(which string, in DomainInput) Domain {
		t.Helper()
		before := router.n
		d, err := m.UpdateDomain(ctx, p, web, which, in)
		if err != nil {
			t.Fatalf("update %s: %v", which, err)
		}
		if router.n != before+1 {
			t.Errorf("update %s published the routing table %d times", which, router.n-before)
		}
		if got := stored(d.ID); !reflect.DeepEqual(got, d.Domain) {
			t.Errorf("update %s answered %+v, stored %+v", which, d.Domain, got)
		}
		return d
	}

	// A user without a password keeps the password; the options are
	// replaced as a whole (headers and timeout left out are dropped).
	d := update("shop.example.com/api", DomainInput{BasicAuth: &BasicAuthInput{User: "alice"}, Compress: true, StripPrefix: true})
	if d.ID != api.ID || !d.CreatedAt.Equal(api.CreatedAt) || d.Host != "shop.example.com" || d.PathPrefix != "/api" {
		t.Errorf("the domain lost its identity: %+v", d.Domain)
	}
	if d.AuthUser != "alice" || d.AuthHash != api.AuthHash || !d.Compress || !d.StripPrefix || d.Timeout != 0 || d.Headers != nil || d.Port != 8080 {
		t.Errorf("after the update: %+v", d.Domain)
	}
	// Renamed, still the same password; the host may be repeated as typed.
	d = update(api.ID, DomainInput{Host: "SHOP.example.com.", PathPrefix: "/api", BasicAuth: &BasicAuthInput{User: "bob"}})
	if d.AuthUser != "bob" || d.AuthHash != api.AuthHash {
		t.Errorf("renamed user: %q with hash %q, want the old hash %q", d.AuthUser, d.AuthHash, api.AuthHash)
	}
	// A new password.
	d = update(api.ID, DomainInput{BasicAuth: &BasicAuthInput{User: "bob", Password: secondPW}})
	if bcrypt.CompareHashAndPassword([]byte(d.AuthHash), []byte(secondPW)) != nil || d.AuthHash == api.AuthHash {
		t.Errorf("the new password does not verify against %q", d.AuthHash)
	}
	// A redirect, then back to the app (its HTTP port again); no auth.
	d = update(api.ID, DomainInput{Redirect: &RedirectInput{To: "https://www.example.com", Code: 302}})
	if d.RedirectTo != "https://www.example.com" || d.RedirectCode != 302 || d.Port != 0 || d.AuthUser != "" || d.AuthHash != "" {
		t.Errorf("as a redirect: %+v", d.Domain)
	}
	d = update(api.ID, DomainInput{Port: 9090})
	if d.RedirectTo != "" || d.RedirectCode != 0 || d.Port != 9090 {
		t.Errorf("back to the app: %+v", d.Domain)
	}

	// HTTPS on asks for a certificate; off deletes it once no HTTPS domain
	// of the host is left (shop.example.com/ still is one).
	certs := func() []string {
		t.Helper()
		cs, err := db.AllCertificates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var hosts []string
		for _, c := range cs {
			hosts = append(hosts, c.Host)
		}
		return hosts
	}
	www, err := m.AddDomain(ctx, p, web, DomainInput{Host: "www.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got := certs(); !reflect.DeepEqual(got, []string{"shop.example.com"}) {
		t.Fatalf("certificates before: %v", got)
	}
	d = update("www.example.com", DomainInput{HTTPS: true})
	if got := certs(); !reflect.DeepEqual(got, []string{"shop.example.com", "www.example.com"}) || d.Certificate == nil || d.Certificate.Status != "pending" {
		t.Errorf("HTTPS on: certificates %v, the domain's %+v", got, d.Certificate)
	}
	d = update(www.ID, DomainInput{})
	if got := certs(); !reflect.DeepEqual(got, []string{"shop.example.com"}) || d.Certificate != nil {
		t.Errorf("HTTPS off: certificates %v, the domain's %+v", got, d.Certificate)
	}
	update(api.ID, DomainInput{HTTPS: true})
	update(api.ID, DomainInput{})
	if got := certs(); !reflect.DeepEqual(got, []string{"shop.example.com"}) {
		t.Errorf("HTTPS off for one path of a host another HTTPS domain uses: certificates %v", got)
	}

	// Refused input names the field and changes nothing, byte for byte.
	update(api.ID, DomainInput{Timeout: time.Minute, BasicAuth: &BasicAuthInput{User: "carol", Password: firstPW}, Headers: []store.Header{{Name: "X-B", Value: "2"}}})
	domainsBefore, _ := db.AllDomains(ctx)
	certsBefore, _ := db.AllCertificates(ctx)
	published := router.n
	for _, tc := range []struct {
		name, which, field, want string
		in                       DomainInput
	}{
		{"host changed", api.ID, "host", "a domain's host cannot change; add the new one and remove this one", DomainInput{Host: "other.example.com"}},
		{"path changed", api.ID, "path_prefix", "cannot change", DomainInput{PathPrefix: "/v2"}},
		{"path to every path", api.ID, "path_prefix", "cannot change", DomainInput{PathPrefix: "/"}},
		{"timeout", api.ID, "timeout", "whole seconds", DomainInput{Timeout: 2 * time.Hour}},
		{"max body", api.ID, "max_body", "at least", DomainInput{MaxBody: 10}},
		{"header injection", api.ID, "headers[0].value", "", DomainInput{Headers: []store.Header{{Name: "X-A", Value: "1\r\nX-B: 2"}}}},
		{"redirect injection", api.ID, "redirect.to", "", DomainInput{Redirect: &RedirectInput{To: "https://b.example.com/\nx"}}},
		{"redirect with port", api.ID, "port", "redirect", DomainInput{Port: 80, Redirect: &RedirectInput{To: "https://b.example.com"}}},
		{"strip without prefix", www.ID, "strip_prefix", "prefix", DomainInput{StripPrefix: true}},
		{"redirect to itself", www.ID, "redirect.to", "forever", DomainInput{Redirect: &RedirectInput{To: "https://www.example.com"}}},
		{"new user short password", api.ID, "basic_auth.password", "8–72", DomainInput{BasicAuth: &BasicAuthInput{User: "carol", Password: "short"}}},
		{"auth user", api.ID, "basic_auth.username", "", DomainInput{BasicAuth: &BasicAuthInput{User: "a b"}}},
		// No current auth to keep: an empty password is too short.
		{"new auth without password", www.ID, "basic_auth.password", "8–72", DomainInput{BasicAuth: &BasicAuthInput{User: "dave"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.UpdateDomain(ctx, p, web, tc.which, tc.in)
			var fe *app.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Message, tc.want) {
				t.Errorf("err = %v, want a field error on %s mentioning %q", err, tc.field, tc.want)
			}
		})
	}
	domainsAfter, _ := db.AllDomains(ctx)
	certsAfter, _ := db.AllCertificates(ctx)
	if !reflect.DeepEqual(domainsAfter, domainsBefore) || !reflect.DeepEqual(certsAfter, certsBefore) {
		t.Errorf("refused updates changed the store:\nbefore %+v\nafter  %+v\ncertificates %+v → %+v", domainsBefore, domainsAfter, certsBefore, certsAfter)
	}
	if router.n != published {
		t.Errorf("refused updates published the routing table")
	}

	// Unknown and ambiguous domains.
	if _, err := m.UpdateDomain(ctx, p, web, "nope.example.com", DomainInput{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown domain: %v", err)
	}
	var ce *ConflictError
	if _, err := m.UpdateDomain(ctx, p, web, "shop.example.com", DomainInput{}); !errors.As(err, &ce) || !strings.Contains(ce.Message, "host/path") {
		t.Errorf("a host with two paths: %v", err)
	}
	if _, err := m.UpdateDomain(ctx, p, AppRef{Project: "shop", Name: "nope"}, api.ID, DomainInput{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown app: %v", err)
	}
	if got, err := m.Domain(ctx, p, web, "shop.example.com/api"); err != nil || got.ID != api.ID || got.AuthUser != "carol" {
		t.Errorf("Domain = %+v, %v", got.Domain, err)
	}
}
