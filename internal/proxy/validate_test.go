package proxy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validTable() Table {
	return Table{
		Version: 7,
		Apps: []App{
			{ID: "app_a", Name: "A", Releases: []Release{
				{Service: "a-r1", Port: 80, Weight: 80, Health: &HealthCheck{Path: "/up", ExpectStatus: 204}},
				{Service: "a-r2", Port: 80, Weight: 20, Health: &HealthCheck{Path: "/up", ExpectStatus: 204, Interval: 5 * time.Second}},
			}},
			{ID: "app_b", Releases: []Release{{Service: "b.r1_x", Port: 65535, Weight: 0}}},
		},
		Routes: []Route{
			{Host: "a.example.com", AppID: "app_a"},
			{Host: "a.example.com", PathPrefix: "/api/v1.2/x~y/z_", StripPrefix: true, AppID: "app_b", Timeout: time.Hour, MaxBody: 1024},
			{Host: "xn--bcher-kva.example", PathPrefix: "/", AppID: "app_b", Timeout: time.Second},
			{Host: strings.Repeat("a", 63) + ".b", AppID: "app_a"},
			{Host: "r.example.com", Redirect: &Redirect{To: "https://www.example.com:8443/a_b/c~d.e-f", Code: 301, KeepPath: true},
				BasicAuth: &BasicAuth{User: "a.b+c@d_e-f", PasswordHash: "$6$rounds=5000$saltsalt$dWtZ3Bph9o6mmdTjTG4QN.LJQPErXRJcL9jUupSVqmd0h2gdqrHRFfqHl3gaf1auzBaTga0wLGHkTrrq9vOeg/"},
				Headers:   []Header{{Name: "X-Frame-Options", Value: `DENY "quoted" \ $x #y`}}},
		},
	}
}

const testHash = "$2a$05$abcdefghijklmnopqrstuuE7ZfIHTCaDIGdV1wSlEwN1Y.RO6WKVO"

func redirect(to string) *Redirect { return &Redirect{To: to, Code: 308} }

func TestValidateAcceptsValid(t *testing.T) {
	if err := validTable().Validate(); err != nil {
		t.Fatal(err)
	}
	wild := validTable()
	wild.Routes = append(wild.Routes, Route{Host: "*.example.com", AppID: "app_a"},
		Route{Host: "*.example.com", PathPrefix: "/api", AppID: "app_b"})
	if err := wild.Validate(); err != nil {
		t.Fatalf("wildcard routes: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name  string
		mod   func(*Table)
		field string
	}{
		{"empty host", func(t *Table) { t.Routes[0].Host = "" }, "routes[0].host"},
		{"uppercase host", func(t *Table) { t.Routes[0].Host = "A.example.com" }, "routes[0].host"},
		{"trailing dot", func(t *Table) { t.Routes[0].Host = "a.example.com." }, "routes[0].host"},
		{"double wildcard", func(t *Table) { t.Routes[0].Host = "*.*.example.com" }, "routes[0].host"},
		{"inner wildcard", func(t *Table) { t.Routes[0].Host = "a.*.com" }, "routes[0].host"},
		{"partial wildcard", func(t *Table) { t.Routes[0].Host = "*example.com" }, "routes[0].host"},
		{"bare wildcard", func(t *Table) { t.Routes[0].Host = "*" }, "routes[0].host"},
		{"ipv4", func(t *Table) { t.Routes[0].Host = "10.0.0.1" }, "routes[0].host"},
		{"ipv6", func(t *Table) { t.Routes[0].Host = "[::1]" }, "routes[0].host"},
		{"numeric tld", func(t *Table) { t.Routes[0].Host = "a.123" }, "routes[0].host"},
		{"host with port", func(t *Table) { t.Routes[0].Host = "a.example.com:80" }, "routes[0].host"},
		{"label too long", func(t *Table) { t.Routes[0].Host = long + ".com" }, "routes[0].host"},
		{"host too long", func(t *Table) { t.Routes[0].Host = strings.Repeat("abcdefghi.", 25) + "com" + "x" }, "routes[0].host"},
		{"leading hyphen", func(t *Table) { t.Routes[0].Host = "-a.example.com" }, "routes[0].host"},
		{"empty label", func(t *Table) { t.Routes[0].Host = "a..com" }, "routes[0].host"},
		{"underscore", func(t *Table) { t.Routes[0].Host = "a_b.com" }, "routes[0].host"},
		{"host newline", func(t *Table) { t.Routes[0].Host = "a.com\nserver evil 1.2.3.4:80" }, "routes[0].host"},
		{"host space", func(t *Table) { t.Routes[0].Host = "a.com be_x" }, "routes[0].host"},
		{"relative path", func(t *Table) { t.Routes[1].PathPrefix = "api" }, "routes[1].path_prefix"},
		{"dotdot", func(t *Table) { t.Routes[1].PathPrefix = "/a/../b" }, "routes[1].path_prefix"},
		{"dot", func(t *Table) { t.Routes[1].PathPrefix = "/a/." }, "routes[1].path_prefix"},
		{"double slash", func(t *Table) { t.Routes[1].PathPrefix = "/a//b" }, "routes[1].path_prefix"},
		{"trailing slash", func(t *Table) { t.Routes[1].PathPrefix = "/a/" }, "routes[1].path_prefix"},
		{"percent escape", func(t *Table) { t.Routes[1].PathPrefix = "/a%2fb" }, "routes[1].path_prefix"},
		{"sample fetch", func(t *Table) { t.Routes[1].PathPrefix = "/%[env(HOME)]" }, "routes[1].path_prefix"},
		{"hash", func(t *Table) { t.Routes[1].PathPrefix = "/a#b" }, "routes[1].path_prefix"},
		{"quote", func(t *Table) { t.Routes[1].PathPrefix = `/a"b` }, "routes[1].path_prefix"},
		{"space", func(t *Table) { t.Routes[1].PathPrefix = "/a b" }, "routes[1].path_prefix"},
		{"path newline", func(t *Table) { t.Routes[1].PathPrefix = "/a\nb" }, "routes[1].path_prefix"},
		{"too deep", func(t *Table) { t.Routes[1].PathPrefix = "/a/b/c/d/e" }, "routes[1].path_prefix"},
		{"unknown app", func(t *Table) { t.Routes[0].AppID = "app_zz" }, "routes[0].app_id"},
		{"timeout short", func(t *Table) { t.Routes[0].Timeout = 999 * time.Millisecond }, "routes[0].timeout"},
		{"timeout long", func(t *Table) { t.Routes[0].Timeout = time.Hour + time.Second }, "routes[0].timeout"},
		{"timeout sub-ms", func(t *Table) { t.Routes[0].Timeout = time.Second + time.Microsecond }, "routes[0].timeout"},
		{"max body small", func(t *Table) { t.Routes[0].MaxBody = 1023 }, "routes[0].max_body"},
		{"max body negative", func(t *Table) { t.Routes[0].MaxBody = -1 }, "routes[0].max_body"},
		{"duplicate route", func(t *Table) { t.Routes[2].Host, t.Routes[2].PathPrefix = "a.example.com", "/" }, "routes[2].path_prefix"},
		{"bad app id", func(t *Table) { t.Apps[0].ID = "App A" }, "apps[0].id"},
		{"address injection", func(t *Table) { t.Apps[0].Address = "1.2.3.4:80\n    server evil 6.6.6.6:80" }, "apps[0].address"},
		{"address and releases", func(t *Table) { t.Apps[0].Address = "172.18.0.1:7381" }, "apps[0].address"},
		{"address without port", func(t *Table) { t.Apps[0].Address = "172.18.0.1" }, "apps[0].address"},
		{"duplicate app", func(t *Table) { t.Apps[1].ID = "app_a" }, "apps[1].id"},
		{"name newline", func(t *Table) { t.Apps[0].Name = "x\n    server evil 1.2.3.4:80" }, "apps[0].name"},
		{"name invalid utf8", func(t *Table) { t.Apps[0].Name = "\xff" }, "apps[0].name"},
		{"service upper", func(t *Table) { t.Apps[0].Releases[0].Service = "Web" }, "apps[0].releases[0].service"},
		{"service long", func(t *Table) { t.Apps[0].Releases[0].Service = long }, "apps[0].releases[0].service"},
		{"service colon", func(t *Table) { t.Apps[0].Releases[0].Service = "a:81" }, "apps[0].releases[0].service"},
		{"service space", func(t *Table) { t.Apps[0].Releases[0].Service = "a check weight 256" }, "apps[0].releases[0].service"},
		{"duplicate service", func(t *Table) { t.Apps[0].Releases[1].Service = "a-r1" }, "apps[0].releases[1].service"},
		{"port 0", func(t *Table) { t.Apps[0].Releases[0].Port = 0 }, "apps[0].releases[0].port"},
		{"port high", func(t *Table) { t.Apps[0].Releases[0].Port = 65536 }, "apps[0].releases[0].port"},
		{"weight high", func(t *Table) { t.Apps[0].Releases[0].Weight = 257 }, "apps[0].releases[0].weight"},
		{"weight negative", func(t *Table) { t.Apps[0].Releases[0].Weight = -1 }, "apps[0].releases[0].weight"},
		{"health path", func(t *Table) { t.Apps[0].Releases[0].Health.Path = "/up now" }, "apps[0].releases[0].health.path"},
		{"health interval", func(t *Table) { t.Apps[0].Releases[0].Health.Interval = time.Millisecond }, "apps[0].releases[0].health.interval"},
		{"health status", func(t *Table) { t.Apps[0].Releases[0].Health.ExpectStatus = 600 }, "apps[0].releases[0].health.expect_status"},
		{"health mismatch", func(t *Table) { t.Apps[0].Releases[1].Health = &HealthCheck{Path: "/other", ExpectStatus: 204} }, "apps[0].releases[1].health"},
		{"health mixed", func(t *Table) { t.Apps[0].Releases[1].Health = nil }, "apps[0].releases[1].health"},
		{"redirect code", func(t *Table) { t.Routes[0].Redirect = &Redirect{To: "https://b.example", Code: 303} }, "routes[0].redirect.code"},
		{"redirect without app or target", func(t *Table) { t.Routes[0].AppID = "" }, "routes[0].app_id"},
		{"redirect relative", func(t *Table) { t.Routes[0].Redirect = redirect("/elsewhere") }, "routes[0].redirect.to"},
		{"redirect scheme", func(t *Table) { t.Routes[0].Redirect = redirect("javascript://x.example") }, "routes[0].redirect.to"},
		{"redirect newline", func(t *Table) { t.Routes[0].Redirect = redirect("https://b.example/\nSet-Cookie: x=1") }, "routes[0].redirect.to"},
		{"redirect space", func(t *Table) { t.Routes[0].Redirect = redirect("https://b.example/a b") }, "routes[0].redirect.to"},
		{"redirect pipe", func(t *Table) { t.Routes[0].Redirect = redirect("https://b.example/a|be_x") }, "routes[0].redirect.to"},
		{"redirect quote", func(t *Table) { t.Routes[0].Redirect = redirect(`https://b.example/"`) }, "routes[0].redirect.to"},
		{"redirect sample fetch", func(t *Table) { t.Routes[0].Redirect = redirect("https://b.example/%[env(HOME)]") }, "routes[0].redirect.to"},
		{"redirect hash", func(t *Table) { t.Routes[0].Redirect = redirect("https://b.example/#x") }, "routes[0].redirect.to"},
		{"redirect query", func(t *Table) { t.Routes[0].Redirect = redirect("https://b.example/?a=b") }, "routes[0].redirect.to"},
		{"redirect userinfo", func(t *Table) { t.Routes[0].Redirect = redirect("https://u@b.example") }, "routes[0].redirect.to"},
		{"redirect ip", func(t *Table) { t.Routes[0].Redirect = redirect("http://10.0.0.1") }, "routes[0].redirect.to"},
		{"redirect port", func(t *Table) { t.Routes[0].Redirect = redirect("http://b.example:99999") }, "routes[0].redirect.to"},
		{"redirect dotdot", func(t *Table) { t.Routes[0].Redirect = redirect("http://b.example/../x") }, "routes[0].redirect.to"},
		{"redirect keep with slash", func(t *Table) {
			t.Routes[0].Redirect = &Redirect{To: "https://b.example/", Code: 308, KeepPath: true}
		}, "routes[0].redirect.to"},
		{"auth user space", func(t *Table) { t.Routes[0].BasicAuth = &BasicAuth{User: "a b", PasswordHash: testHash} }, "routes[0].basic_auth.user"},
		{"auth user colon", func(t *Table) { t.Routes[0].BasicAuth = &BasicAuth{User: "a:b", PasswordHash: testHash} }, "routes[0].basic_auth.user"},
		{"auth user quote", func(t *Table) { t.Routes[0].BasicAuth = &BasicAuth{User: `a"`, PasswordHash: testHash} }, "routes[0].basic_auth.user"},
		{"auth plain password", func(t *Table) { t.Routes[0].BasicAuth = &BasicAuth{User: "a", PasswordHash: "hunter22"} }, "routes[0].basic_auth.password_hash"},
		{"auth hash newline", func(t *Table) {
			t.Routes[0].BasicAuth = &BasicAuth{User: "a", PasswordHash: testHash + "\nuser b insecure-password x"}
		}, "routes[0].basic_auth.password_hash"},
		{"header name space", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "X A", Value: "1"}} }, "routes[0].headers[0].name"},
		{"header name colon", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "X-A:", Value: "1"}} }, "routes[0].headers[0].name"},
		{"header set-cookie", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "Set-Cookie", Value: "a=1"}} }, "routes[0].headers[0].name"},
		{"header hop-by-hop", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "Transfer-Encoding", Value: "chunked"}} }, "routes[0].headers[0].name"},
		{"header twice", func(t *Table) {
			t.Routes[0].Headers = []Header{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}}
		}, "routes[0].headers[1].name"},
		{"header value newline", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "X-A", Value: "1\r\nSet-Cookie: a=1"}} }, "routes[0].headers[0].value"},
		{"header value sample fetch", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "X-A", Value: "%[env(HOME)]"}} }, "routes[0].headers[0].value"},
		{"header value non-ascii", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "X-A", Value: "é"}} }, "routes[0].headers[0].value"},
		{"header value empty", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "X-A"}} }, "routes[0].headers[0].value"},
		{"header value long", func(t *Table) { t.Routes[0].Headers = []Header{{Name: "X-A", Value: strings.Repeat("a", 513)}} }, "routes[0].headers[0].value"},
		{"too many headers", func(t *Table) { t.Routes[0].Headers = make([]Header, 11) }, "routes[0].headers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := validTable()
			tc.mod(&tb)
			err := tb.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tc.field {
				t.Errorf("field = %q (%v), want %q", fe.Field, fe, tc.field)
			}
			if fe.Message == "" {
				t.Error("empty message")
			}
			if _, err := Render(tb, Options{}); !errors.As(err, &fe) {
				t.Errorf("Render accepted an invalid table: %v", err)
			}
		})
	}
}

func TestValidRoutesDropsOnlyTheBad(t *testing.T) {
	tb := validTable()
	tb.Routes = append(tb.Routes,
		Route{Host: "evil.com\n    server x 1.2.3.4:80", AppID: "app_a"},
		Route{Host: "a.example.com", AppID: "app_b"}, // duplicate of routes[0]
		Route{Host: "c.example.com", AppID: "app_c"}, // app dropped below
	)
	tb.Apps = append(tb.Apps, App{ID: "app_c", Releases: []Release{{Service: "c", Port: 0}}})

	got, errs := ValidRoutes(tb)
	if len(errs) != 4 {
		t.Fatalf("got %d errors, want 4: %v", len(errs), errs)
	}
	wantFields := []string{"apps[2].releases[0].port", "routes[5].host", "routes[6].path_prefix", "routes[7].app_id"}
	for i, err := range errs {
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != wantFields[i] {
			t.Errorf("errs[%d] = %v, want field %s", i, err, wantFields[i])
		}
	}
	if len(got.Routes) != 5 || len(got.Apps) != 2 || got.Version != tb.Version {
		t.Fatalf("kept %d routes, %d apps (version %d), want 5, 2 (%d)", len(got.Routes), len(got.Apps), got.Version, tb.Version)
	}
	if got.Routes[0].AppID != "app_a" {
		t.Errorf("the first of two duplicate routes must win, kept %+v", got.Routes[0])
	}
	if err := got.Validate(); err != nil {
		t.Errorf("ValidRoutes result does not validate: %v", err)
	}
	if m := string(RenderMap(tb)); strings.Contains(m, "evil") || strings.Contains(m, "c.example.com") {
		t.Errorf("RenderMap wrote an invalid route:\n%s", m)
	}
}
