package gitsrc

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckRefFormat(t *testing.T) {
	// Cases from git's t1402-check-ref-format.sh, plus Berth's additions.
	for _, tc := range []struct {
		name     string
		oneLevel bool
		ok       bool
	}{
		{"heads/foo", false, true},
		{"foo", false, false},
		{"foo", true, true},
		{"foo/bar/baz", false, true},
		{"refs///heads/foo", false, false},
		{"heads/foo/", false, false},
		{"/heads/foo", false, false},
		{"./foo", true, false},
		{"foo/.bar", false, false},
		{".refs/foo", false, false},
		{"heads/foo..bar", false, false},
		{"heads/foo?bar", false, false},
		{"foo./bar", false, true},
		{"heads/foo.lock", false, false},
		{"foo.lock/bar", false, false},
		{"heads///foo", false, false},
		{"foo.", true, false},
		{"heads/foo@bar", false, true},
		{"heads/v@{ation", false, false},
		{"heads/foo\\bar", false, false},
		{"heads/foo\tbar", false, false},
		{"heads/foo\x7fbar", false, false},
		{"heads/fu\u00dfball", false, true},
		{"@", true, false},
		{"@/foo", false, true},
		{"foo~1", true, false},
		{"foo^", true, false},
		{"a:b", true, false},
		{"a*b", true, false},
		{"a[b", true, false},
		{"", true, false},
		// Berth: no option smuggling, whitespace, bad UTF-8 or line breaks.
		{"-foo", true, false},
		{"--upload-pack=touch /tmp/x", true, false},
		{"main;rm -rf /", true, false},
		{"main\nx", true, false},
		{"main\u00a0x", true, false},
		{"main\u2028x", true, false},
		{"bad\xffutf8", true, false},
		{strings.Repeat("a", 256), true, false},
		{"feature/x-1_2", true, true},
	} {
		err := CheckRefFormat("ref", tc.name, tc.oneLevel)
		if (err == nil) != tc.ok {
			t.Errorf("CheckRefFormat(%q, %v) = %v, want ok=%v", tc.name, tc.oneLevel, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckRefFormat(%q): error %v is not ErrInvalid", tc.name, err)
		}
	}
}

func TestValidateBranchTag(t *testing.T) {
	for _, n := range []string{"HEAD", "refs/heads/main", "-b", "a..b", ""} {
		if err := ValidateBranch(n); err == nil {
			t.Errorf("ValidateBranch(%q) accepted", n)
		}
	}
	if err := ValidateBranch("main"); err != nil {
		t.Error(err)
	}
	if err := ValidateTag("refs/tags/v1"); err == nil {
		t.Error("ValidateTag(refs/tags/v1) accepted")
	}
	var ve *ValidationError
	if err := ValidateBranch("a b"); !errors.As(err, &ve) || ve.Field != "branch" {
		t.Errorf("ValidateBranch error %v does not name the field", err)
	}
}

func TestValidateCommit(t *testing.T) {
	for sha, ok := range map[string]bool{
		strings.Repeat("a", 40):       true,
		strings.Repeat("0", 64):       true,
		strings.Repeat("a", 39):       false,
		strings.Repeat("A", 40):       false,
		strings.Repeat("g", 40):       false,
		"HEAD":                        false,
		"--all":                       false,
		strings.Repeat("a", 41):       false,
		"-" + strings.Repeat("a", 39): false,
	} {
		if err := ValidateCommit(sha); (err == nil) != ok {
			t.Errorf("ValidateCommit(%q) = %v, want ok=%v", sha, err, ok)
		}
	}
}

func TestValidatePath(t *testing.T) {
	for p, ok := range map[string]bool{
		"Dockerfile":             true,
		".":                      true,
		"services/api":           true,
		"docker/Dockerfile.prod": true,
		".github/Dockerfile":     true,
		"":                       false,
		"../Dockerfile":          false,
		"a/../../b":              false,
		"a/..":                   false,
		"..":                     false,
		"/etc/passwd":            false,
		"./Dockerfile":           false,
		"a//b":                   false,
		"a/":                     false,
		"a\\..\\b":               false,
		"-f":                     false,
		"Docker\nfile":           false,
		"Docker file":            false,
		"a\x00b":                 false,
	} {
		err := ValidatePath("dockerfile", p)
		if (err == nil) != ok {
			t.Errorf("ValidatePath(%q) = %v, want ok=%v", p, err, ok)
		}
		var ve *ValidationError
		if err != nil && (!errors.As(err, &ve) || ve.Field != "dockerfile") {
			t.Errorf("ValidatePath(%q): error %v does not name the field", p, err)
		}
	}
	err := ValidatePath("context", "./app")
	if err == nil || !strings.Contains(err.Error(), `"app"`) {
		t.Errorf("unclean path error %v should suggest the clean form", err)
	}
}

func TestURLValidation(t *testing.T) {
	for u, want := range map[string]Transport{
		"https://github.com/acme/shop.git":      TransportHTTPS,
		"https://git.example.test:8443/a/b":     TransportHTTPS,
		"ssh://git@github.com/acme/shop.git":    TransportSSH,
		"ssh://git@[2001:db8::1]:2222/a/b.git":  TransportSSH,
		"ssh://github.com/acme/shop.git":        TransportSSH,
		"git@github.com:acme/shop.git":          TransportSSH,
		"gitlab.example.com:group/sub/proj.git": TransportSSH,
		"HTTPS://github.com/acme/shop.git":      TransportHTTPS,
	} {
		got, err := parseRemoteURL("url", u)
		if err != nil || got != want {
			t.Errorf("parseRemoteURL(%q) = %q, %v; want %q", u, got, err, want)
		}
	}
	for _, u := range []string{
		"",
		"file:///etc",
		"/srv/git/repo.git",
		"./repo",
		"../repo",
		"repo",
		"ext::sh -c touch% /tmp/x",
		"ext::sh",
		"fd::0",
		"git://github.com/acme/shop.git",
		"http://github.com/acme/shop.git",
		"ftp://x/y",
		"https://user:hunter2@github.com/acme/shop.git",
		"https://token@github.com/acme/shop.git",
		"ssh://git:hunter2@github.com/acme/shop.git",
		"https://github.com/acme/shop.git?x=1",
		"https://github.com/acme/shop.git#frag",
		"https://github.com",
		"https://github.com/",
		"https://-oProxyCommand=x/a/b",
		"ssh://-oProxyCommand=touch$IFS/tmp/x/repo",
		"-oProxyCommand=touch:repo",
		"git@-oProxyCommand=x:repo",
		"--upload-pack=touch /tmp/x",
		"--upload-pack=touch$IFS/tmp/x",
		"https://github.com/acme/shop.git\n",
		"https://github.com/acme/sh op.git",
		"https://github.com/acme/shop.git\x00",
		"https://github.com/../etc/passwd",
		"https://github.com/acme/-x.git",
		"https://github.com/acme/$(id).git",
		"https://github.com/a;b/c",
		"ssh://git@host:99999/a",
		"ssh://-git@host/a",
		"git@host:-repo",
		"git@host:",
		"host/path:x",
	} {
		if tr, err := parseRemoteURL("url", u); err == nil {
			t.Errorf("parseRemoteURL(%q) accepted as %s", u, tr)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("parseRemoteURL(%q): %v is not ErrInvalid", u, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error for %q repeats the password: %v", u, err)
		}
	}
}
