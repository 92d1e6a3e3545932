package gitsrc

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSourceJSONRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		src  Source
		json string
	}{
		{Source{&URL{URL: "https://git.example.test/shop/api.git"}}, `{"kind":"git","url":"https://git.example.test/shop/api.git"}`},
		{Source{&GitHub{Repo: "acme/shop"}}, `{"kind":"github","repo":"acme/shop"}`},
		{Source{&GitHub{Repo: "acme/shop", BaseURL: "https://ghe.example.test", Protocol: TransportSSH}}, `{"kind":"github","repo":"acme/shop","base_url":"https://ghe.example.test","protocol":"ssh"}`},
		{Source{&GitLab{Repo: "g/sub/p", BaseURL: "https://gl.example.test", Protocol: TransportSSH, SSHPort: 2222}}, `{"kind":"gitlab","repo":"g/sub/p","base_url":"https://gl.example.test","protocol":"ssh","ssh_port":2222}`},
		{Source{&Gitea{Repo: "o/r", BaseURL: "https://gitea.example.test"}}, `{"kind":"gitea","repo":"o/r","base_url":"https://gitea.example.test"}`},
		{Source{&Bitbucket{Repo: "ws/r"}}, `{"kind":"bitbucket","repo":"ws/r"}`},
	} {
		b, err := json.Marshal(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.json {
			t.Errorf("Marshal = %s, want %s", b, tc.json)
		}
		var back Source
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if !reflect.DeepEqual(back, tc.src) {
			t.Errorf("round trip of %s = %#v, want %#v", b, back.Variant, tc.src.Variant)
		}
		if err := back.Validate(); err != nil {
			t.Errorf("Validate(%s) = %v", b, err)
		}
	}
	// Embedded in a larger document.
	type app struct {
		Source Source `json:"source"`
	}
	var a app
	if err := json.Unmarshal([]byte(`{"source":{"kind":"github","repo":"a/b"}}`), &a); err != nil || a.Source.Kind() != KindGitHub {
		t.Fatalf("embedded: %+v, %v", a, err)
	}
}

func TestSourceJSONRejects(t *testing.T) {
	for _, in := range []string{
		`{"kind":"svn","url":"https://x/y"}`,
		`{"url":"https://x/y"}`,
		`{"kind":"","url":"https://x/y"}`,
		`{"kind":"git","url":"https://x/y","token":"abc"}`,
		`{"kind":"github","repo":"a/b","url":"https://x/y"}`,
		`{"kind":"git","url":"https://x/y","Kind":"github"}`,
		`{"kind":"git","url":42}`,
		`[]`,
		`null`,
	} {
		var s Source
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("Unmarshal(%s) accepted: %#v", in, s.Variant)
		}
	}
	if _, err := json.Marshal(Source{}); err == nil {
		t.Error("Marshal of an empty Source succeeded")
	}
}

func TestSourceCloneURL(t *testing.T) {
	for _, tc := range []struct {
		v    Variant
		want string
	}{
		{&GitHub{Repo: "acme/shop"}, "https://github.com/acme/shop.git"},
		{&GitHub{Repo: "acme/shop", Protocol: TransportSSH}, "ssh://git@github.com/acme/shop.git"},
		{&GitHub{Repo: "acme/shop", BaseURL: "https://ghe.example.test/"}, "https://ghe.example.test/acme/shop.git"},
		{&GitLab{Repo: "g/sub/p"}, "https://gitlab.com/g/sub/p.git"},
		{&GitLab{Repo: "g/p", BaseURL: "https://gl.example.test:8443/gitlab", Protocol: TransportSSH, SSHPort: 2222}, "ssh://git@gl.example.test:2222/g/p.git"},
		{&Gitea{Repo: "o/r", BaseURL: "https://gitea.example.test"}, "https://gitea.example.test/o/r.git"},
		{&Bitbucket{Repo: "ws/r", Protocol: TransportSSH}, "ssh://git@bitbucket.org/ws/r.git"},
		{&URL{URL: "git@github.com:acme/shop.git"}, "git@github.com:acme/shop.git"},
	} {
		got, err := Source{tc.v}.CloneURL()
		if err != nil || got != tc.want {
			t.Errorf("%#v: CloneURL = %q, %v; want %q", tc.v, got, err, tc.want)
		}
	}
}

func TestSourceValidateNamesField(t *testing.T) {
	for _, tc := range []struct {
		v     Variant
		field string
	}{
		{nil, "source"},
		{&URL{URL: "file:///etc"}, "url"},
		{&GitHub{Repo: "acme"}, "repo"},
		{&GitHub{Repo: "acme/shop/extra"}, "repo"},
		{&GitHub{Repo: "acme/-shop"}, "repo"},
		{&GitHub{Repo: "acme/shop.git"}, "repo"},
		{&GitHub{Repo: "acme/sh op"}, "repo"},
		{&GitHub{Repo: "../etc"}, "repo"},
		{&GitHub{Repo: "a/b", BaseURL: "http://ghe.example.test"}, "base_url"},
		{&GitHub{Repo: "a/b", BaseURL: "https://u:p@ghe.example.test"}, "base_url"},
		{&GitHub{Repo: "a/b", Protocol: "git"}, "protocol"},
		{&GitLab{Repo: "a"}, "repo"},
		{&GitLab{Repo: "a/b", SSHPort: 2222}, "ssh_port"},
		{&GitLab{Repo: "a/b", SSHPort: 70000, Protocol: TransportSSH}, "ssh_port"},
		{&Gitea{Repo: "a/b"}, "base_url"},
		{&Bitbucket{Repo: "a/b/c"}, "repo"},
	} {
		err := Source{tc.v}.Validate()
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("%#v: Validate = %v, want a %q error", tc.v, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), "u:p@") {
			t.Errorf("error repeats credentials: %v", err)
		}
	}
}

func TestMask(t *testing.T) {
	for _, tc := range []struct {
		in      string
		secrets []string
		want    string
	}{
		{"token abc123 in abc123", []string{"abc123"}, "token *** in ***"},
		{"nothing here", []string{"abc"}, "nothing here"},
		{"empty secrets ignored", []string{"", ""}, "empty secrets ignored"},
		{"Authorization: Basic eDphYmM=", []string{"abc", "eDphYmM="}, "Authorization: Basic ***"},
		// The longer secret wins, so no fragment of it remains.
		{"secret-long", []string{"secret", "secret-long"}, "***"},
		{"", []string{"x"}, ""},
	} {
		if got := Mask(tc.in, tc.secrets...); got != tc.want {
			t.Errorf("Mask(%q, %q) = %q, want %q", tc.in, tc.secrets, got, tc.want)
		}
	}
	// GitError carries masked output only.
	s := &session{secrets: []string{"tok3n"}}
	out := maskAll([]string{"fetch", "x-tok3n-y"}, s.secrets)
	if out[1] != "x-***-y" {
		t.Errorf("maskAll = %q", out)
	}
}

func TestDeployKey(t *testing.T) {
	k, err := GenerateDeployKey("shop-api")
	if err != nil {
		t.Fatal(err)
	}
	line := k.AuthorizedKey()
	if !strings.HasPrefix(line, "ssh-ed25519 AAAA") || !strings.HasSuffix(line, " berth-shop-api") || strings.Contains(line, "\n") {
		t.Fatalf("AuthorizedKey = %q", line)
	}
	if !strings.Contains(string(k.PrivateKeyPEM), "BEGIN OPENSSH PRIVATE KEY") {
		t.Fatalf("private key is not OpenSSH PEM: %.40q", k.PrivateKeyPEM)
	}
	back, err := ParseDeployKey("shop-api", k.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if back.AuthorizedKey() != line || back.Fingerprint() != k.Fingerprint() || !strings.HasPrefix(k.Fingerprint(), "SHA256:") {
		t.Fatalf("parsed key differs: %q vs %q", back.AuthorizedKey(), line)
	}
	other, _ := GenerateDeployKey("shop-api")
	if other.Fingerprint() == k.Fingerprint() {
		t.Fatal("two generated keys are equal")
	}
	for _, label := range []string{"", "-x", "a b", "a\nssh-rsa AAAA", strings.Repeat("a", 65)} {
		if _, err := GenerateDeployKey(label); !errors.Is(err, ErrInvalid) {
			t.Errorf("GenerateDeployKey(%q) = %v, want ErrInvalid", label, err)
		}
	}
	if _, err := ParseDeployKey("x", []byte("not a key")); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseDeployKey(garbage) = %v", err)
	}
}
