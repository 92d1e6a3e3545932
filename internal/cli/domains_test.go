package cli

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/store"
)

func TestDomainOptionCommands(t *testing.T) {
	newAppServer(t)
	mustRun(t, "", "project", "create", "shop")
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1", "--port", "80")
	const pw = "preview-pw-never-printed"

	r := mustRun(t, "", "domain", "add", "shop/web", "www.example.com", "--https=false", "--redirect-from-apex",
		"--timeout", "90s", "--max-body", "10m", "--compress", "--header", "X-Frame-Options: DENY", "--header", "Strict-Transport-Security: max-age=60")
	if !strings.Contains(r.stdout, "Routed www.example.com to shop/web") || !strings.Contains(r.stdout, "example.com now redirects to http://www.example.com (308)") {
		t.Errorf("add with --redirect-from-apex: %q", r.stdout)
	}
	mustRun(t, pw+"\n", "domain", "add", "shop/web", "preview.example.com", "--https=false", "--basic-auth-user", "preview", "--basic-auth-password-stdin")
	mustRun(t, "", "domain", "add", "shop/web", "old.example.com", "--https=false", "--redirect-to", "https://www.example.com/new", "--redirect-code", "302", "--keep-path=false")

	r = mustRun(t, "", "domain", "list", "shop/web")
	for _, want := range []string{"308 http://www.example.com/…", "302 https://www.example.com/new", "timeout 90s, max body 10MiB, gzip, 2 header(s)", "auth preview"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.stdout)
		}
	}
	if j := mustRun(t, "", "domain", "list", "shop/web", "-o", "json"); strings.Contains(j.stdout, pw) || strings.Contains(j.stdout, "$2a$") {
		t.Errorf("the password or its hash is listed: %s", j.stdout)
	}

	// Refused input names the field and adds nothing, the alias included.
	for _, args := range [][]string{
		{"bad.example.com", "--redirect-to", "https://x.example.com/a b"},
		{"bad.example.com", "--header", "Set-Cookie: a=1"},
		{"bad.example.com", "--timeout", "2h"},
		{"bad.example.com", "--redirect-from-apex"},
		{"www.bad.example.com", "--redirect-from-apex", "--header", "X-A: %[src]"},
	} {
		if r := run(t, "", append([]string{"domain", "add", "shop/web", "--https=false"}, args...)...); r.err == nil {
			t.Errorf("add %v: accepted", args)
		}
	}
	if r := mustRun(t, "", "domain", "list", "shop/web"); strings.Contains(r.stdout, "bad.example.com") {
		t.Errorf("a refused domain was added:\n%s", r.stdout)
	}
}

// A certificate that failed is a short word in the table and its error in
// full under it, with when Berth retries.
func TestDomainListFailedCertificate(t *testing.T) {
	srv := newAppServer(t)
	mustRun(t, "", "project", "create", "shop")
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1", "--port", "80")
	mustRun(t, "", "domain", "add", "shop/web", "secure.example.com", "--https", "--no-wait")
	mustRun(t, "", "domain", "add", "shop/web", "plain.example.com", "--https=false")
	ctx := context.Background()
	certs, err := srv.db.AllCertificates(ctx)
	if err != nil || len(certs) != 1 {
		t.Fatalf("certificates %+v, %v; want the HTTPS domain's", certs, err)
	}
	c := certs[0]
	c.LastError, c.Failures, c.NextAttemptAt = "could not reach the ACME directory at https://acme.example/dir: no such host", 1, time.Now().Add(time.Minute)
	if err := srv.db.SaveCertificate(ctx, time.Now(), c); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "", "domain", "list", "shop/web").stdout
	table, notes, ok := strings.Cut(out, "\n\n")
	if !ok || !strings.Contains(table, "failed (below)") || strings.Contains(table, "no such host") ||
		strings.TrimSpace(notes) != "secure.example.com: certificate not issued: "+c.LastError+"; Berth retries at "+formatTime(&c.NextAttemptAt) {
		t.Errorf("list with a failed certificate:\n%s", out)
	}
	for line := range strings.Lines(table) {
		if len(line) > 120 {
			t.Errorf("table line of %d characters: %q", len(line), line)
		}
	}
}

// The update flags change only what is given: a request built from the
// domain as it is, with those flags written over it.
func TestDomainUpdateFlags(t *testing.T) {
	keep, drop := true, false
	route := api.Domain{ID: "dom_1", Host: "preview.example.com", PathPrefix: "/", Port: 8080, HTTPS: true, TimeoutSeconds: 90, MaxBodyBytes: 1 << 20,
		BasicAuth: &api.DomainAuth{Username: "preview"}, Headers: []api.DomainHeader{{Name: "X-A", Value: "1"}}}
	redirect := api.Domain{ID: "dom_2", Host: "old.example.com", PathPrefix: "/", Headers: []api.DomainHeader{{Name: "X-A", Value: "1"}},
		Redirect: &api.DomainRedirect{To: "https://www.example.com", Code: 302, KeepPath: &drop}}
	with := func(d api.Domain, change func(r *api.DomainRequest)) api.DomainRequest {
		r := domainRequestOf(d)
		change(&r)
		return r
	}
	on := true
	for _, tc := range []struct {
		name  string
		from  api.Domain
		args  []string
		stdin string
		want  api.DomainRequest
	}{
		{"compress alone", route, []string{"--compress"}, "", with(route, func(r *api.DomainRequest) { r.Compress = true })},
		{"https alone keeps the redirect and headers", redirect, []string{"--https"}, "", with(redirect, func(r *api.DomainRequest) { r.HTTPS = &on })},
		{"redirect code", redirect, []string{"--redirect-code", "301"}, "", with(redirect, func(r *api.DomainRequest) {
			r.Redirect = &api.DomainRedirect{To: "https://www.example.com", Code: 301, KeepPath: &drop}
		})},
		{"redirect URL keeps code and path", redirect, []string{"--redirect-to", "https://new.example.com"}, "", with(redirect, func(r *api.DomainRequest) {
			r.Redirect = &api.DomainRedirect{To: "https://new.example.com", Code: 302, KeepPath: &drop}
		})},
		{"no redirect", redirect, []string{"--no-redirect"}, "", with(redirect, func(r *api.DomainRequest) { r.Redirect = nil })},
		{"route becomes a redirect", route, []string{"--redirect-to", "https://x.example.com"}, "", with(route, func(r *api.DomainRequest) {
			r.Redirect = &api.DomainRedirect{To: "https://x.example.com", Code: 308, KeepPath: &keep}
			r.Port, r.TimeoutSeconds, r.MaxBodyBytes = 0, 0, 0
		})},
		{"no auth, no headers", route, []string{"--no-basic-auth", "--clear-headers"}, "", with(route, func(r *api.DomainRequest) { r.BasicAuth, r.Headers = nil, nil })},
		{"headers replaced", route, []string{"--header", "X-B: 2"}, "", with(route, func(r *api.DomainRequest) { r.Headers = []api.DomainHeader{{Name: "X-B", Value: "2"}} })},
		{"user renamed, password kept", route, []string{"--basic-auth-user", "bob"}, "", with(route, func(r *api.DomainRequest) { r.BasicAuth = &api.BasicAuthRequest{Username: "bob"} })},
		{"new password", route, []string{"--basic-auth-password-stdin"}, "new-password\n", with(route, func(r *api.DomainRequest) {
			r.BasicAuth = &api.BasicAuthRequest{Username: "preview", Password: "new-password"}
		})},
		{"new basic auth", redirect, []string{"--basic-auth-user", "bob", "--basic-auth-password-stdin"}, "bobs-password\n", with(redirect, func(r *api.DomainRequest) {
			r.BasicAuth = &api.BasicAuthRequest{Username: "bob", Password: "bobs-password"}
		})},
		{"limits back to defaults", route, []string{"--timeout", "0", "--max-body", ""}, "", with(route, func(r *api.DomainRequest) { r.TimeoutSeconds, r.MaxBodyBytes = 0, 0 })},
		{"port and strip", route, []string{"--port", "9090", "--strip-prefix", "--https=false"}, "", with(route, func(r *api.DomainRequest) {
			off := false
			r.Port, r.StripPrefix, r.HTTPS = 9090, true, &off
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, f := updateFlagsCmd(t, tc.args, tc.stdin)
			got := domainRequestOf(tc.from)
			if err := f.apply(cmd, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tc.want)
				t.Errorf("request\n got %s\nwant %s", g, w)
			}
		})
	}
	for _, tc := range []struct {
		name string
		from api.Domain
		args []string
		want string
	}{
		{"redirect code of a route", route, []string{"--redirect-code", "301"}, "give --redirect-to too"},
		{"no redirect and a redirect", redirect, []string{"--no-redirect", "--redirect-to", "https://x.example.com"}, "contradict"},
		{"no auth and a user", route, []string{"--no-basic-auth", "--basic-auth-user", "bob"}, "contradict"},
		{"clear and set headers", route, []string{"--clear-headers", "--header", "X-B: 2"}, "--clear-headers and --header"},
		{"fractional timeout", route, []string{"--timeout", "1500ms"}, "whole seconds"},
		{"password without auth", redirect, []string{"--basic-auth-password-stdin"}, "give --basic-auth-user too"},
		{"header without colon", route, []string{"--header", "X-B"}, "Name: value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, f := updateFlagsCmd(t, tc.args, "pw-long-enough\n")
			req := domainRequestOf(tc.from)
			if err := f.apply(cmd, &req); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// updateFlagsCmd is a command with berth domain update's option flags,
// parsed from args.
func updateFlagsCmd(t *testing.T, args []string, stdin string) (*cobra.Command, *domainFlags) {
	t.Helper()
	f := &domainFlags{}
	cmd := &cobra.Command{Use: "update"}
	f.bind(cmd)
	f.bindUpdate(cmd)
	cmd.SetIn(strings.NewReader(stdin))
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return cmd, f
}

func TestDomainUpdateCommand(t *testing.T) {
	srv := newAppServer(t)
	mustRun(t, "", "project", "create", "shop")
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1", "--port", "80")
	mustRun(t, "preview-password\n", "domain", "add", "shop/web", "preview.example.com", "--https=false", "--timeout", "90s",
		"--basic-auth-user", "preview", "--basic-auth-password-stdin", "--header", "X-Frame-Options: DENY")
	mustRun(t, "", "domain", "add", "shop/web", "old.example.com", "--https=false", "--redirect-to", "https://www.example.com", "--redirect-code", "302", "--header", "X-A: 1")
	stored := func(host string) store.Domain {
		t.Helper()
		all, err := srv.db.AllDomains(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range all {
			if d.Host == host {
				return d
			}
		}
		t.Fatalf("no domain %s", host)
		return store.Domain{}
	}
	preview := stored("preview.example.com")

	// --compress alone: the auth (and its password), the headers and the
	// timeout stay.
	r := mustRun(t, "", "domain", "update", "shop/web", "preview.example.com", "--compress")
	if strings.TrimSpace(r.stdout) != "Updated preview.example.com: gzip on" {
		t.Errorf("update --compress printed %q", r.stdout)
	}
	want := preview
	want.Compress = true
	if got := stored("preview.example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("after --compress:\n got %+v\nwant %+v", got, want)
	}
	// A redirect keeps being one, headers and all, when only its code changes.
	r = mustRun(t, "", "domain", "update", "shop/web", "old.example.com", "--redirect-code", "301")
	if !strings.Contains(r.stdout, "Updated old.example.com: redirects to https://www.example.com/… (301)") {
		t.Errorf("update --redirect-code printed %q", r.stdout)
	}
	if d := stored("old.example.com"); d.RedirectCode != 301 || d.RedirectTo != "https://www.example.com" || len(d.Headers) != 1 {
		t.Errorf("after --redirect-code: %+v", d)
	}
	r = mustRun(t, "", "domain", "update", "shop/web", "old.example.com", "--no-redirect", "--clear-headers")
	if !strings.Contains(r.stdout, "routes to the app again (container port 80), no headers") {
		t.Errorf("update --no-redirect printed %q", r.stdout)
	}
	if d := stored("old.example.com"); d.RedirectTo != "" || d.Port != 80 || d.Headers != nil {
		t.Errorf("after --no-redirect: %+v", d)
	}
	// A renamed user keeps the password; a new one comes on stdin.
	mustRun(t, "", "domain", "update", "shop/web", "preview.example.com", "--basic-auth-user", "reviewer")
	if d := stored("preview.example.com"); d.AuthUser != "reviewer" || d.AuthHash != preview.AuthHash {
		t.Errorf("renamed user: %q, hash %q (was %q)", d.AuthUser, d.AuthHash, preview.AuthHash)
	}
	r = mustRun(t, "another-password\n", "domain", "update", "shop/web", "preview.example.com", "--basic-auth-password-stdin")
	if !strings.Contains(r.stdout, "new basic auth password") || strings.Contains(r.stdout, "another-password") {
		t.Errorf("new password printed %q", r.stdout)
	}
	if d := stored("preview.example.com"); d.AuthHash == preview.AuthHash || bcrypt.CompareHashAndPassword([]byte(d.AuthHash), []byte("another-password")) != nil {
		t.Errorf("the new password does not verify: %+v", d)
	}
	mustRun(t, "", "domain", "update", "shop/web", "preview.example.com", "--no-basic-auth")
	if d := stored("preview.example.com"); d.AuthUser != "" || d.AuthHash != "" {
		t.Errorf("after --no-basic-auth: %+v", d)
	}

	// Refused: by the server (the field named), or before asking it; either
	// way nothing changes.
	before, _ := srv.db.AllDomains(t.Context())
	mustFail(t, "3600", "", "domain", "update", "shop/web", "preview.example.com", "--timeout", "2h")
	mustFail(t, "headers[0].name", "", "domain", "update", "shop/web", "preview.example.com", "--header", "Set-Cookie: a=1")
	mustFail(t, "nothing to change", "", "domain", "update", "shop/web", "preview.example.com")
	mustFail(t, "unknown flag: --path", "", "domain", "update", "shop/web", "preview.example.com", "--path", "/x")
	mustFail(t, "give --redirect-to too", "", "domain", "update", "shop/web", "preview.example.com", "--keep-path=false")
	mustFail(t, "not found", "", "domain", "update", "shop/web", "nope.example.com", "--compress")
	if after, _ := srv.db.AllDomains(t.Context()); !reflect.DeepEqual(after, before) {
		t.Errorf("refused updates changed the domains:\n%+v\n%+v", before, after)
	}
}
