package cli

import (
	"strings"
	"testing"
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
