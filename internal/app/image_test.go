package app

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateImageValid(t *testing.T) {
	for _, ref := range []string{
		"nginx",
		"nginx:1.27",
		"nginx:latest",
		"library/nginx:1.27-alpine",
		"ghcr.io/berthpaas/berth:v1.2.3",
		"registry.example.com:5000/team/api:2024.01_rc1",
		"localhost:5000/app",
		"localhost/app",
		"Registry.Example.com/team/app", // hosts are case-insensitive
		"docker.io/library/busybox@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa",
		"busybox:1.36@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa",
		"a/b__c/d-e.f",
		"[::1]:5000/app",
	} {
		if err := ValidateImage(ref); err != nil {
			t.Errorf("ValidateImage(%q) = %v, want nil", ref, err)
		}
	}
}

func TestValidateImageInvalid(t *testing.T) {
	digest := "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
	tests := []struct{ ref, want string }{
		{"", "image is required"},
		{"Foo", `image "Foo" is not a valid image reference: repository name must be lowercase`},
		{"team/MyApp:1", "repository name must be lowercase"},
		{"MyOrg/app", "repository name must be lowercase"},
		{"ghcr.io/Team/app", "repository name must be lowercase"},
		{" nginx", "whitespace"},
		{"nginx ", "whitespace"},
		{"ngi nx", "whitespace"},
		{"nginx\n", "whitespace"},
		{"nginx\x00", "control"},
		{"nginx\x7f", "control"},
		{"-nginx", "must not start with '-'"},
		{"--privileged", "must not start with '-'"},
		{"a/../b", `must not contain ".."`},
		{"nginx:1..2", `must not contain ".."`},
		{strings.Repeat("a", 256), "is 256 characters long; the limit is 255"},
		{"nginx:", "the tag must be"},
		{"nginx:-x", "the tag must be"},
		{"nginx:" + strings.Repeat("a", 129), "the tag must be"},
		{"nginx@sha256:abc", "the digest must be sha256"},
		{"nginx@sha512:" + digest + digest, "the digest must be sha256"},
		{"nginx@sha256:" + strings.ToUpper(digest), "the digest must be sha256"},
		{"nginx@", "the digest must be sha256"},
		{"_nginx", "use [registry[:port]/]name"},
		{"nginx/", "use [registry[:port]/]name"},
		{"a//b", "use [registry[:port]/]name"},
		{"nginx;rm -rf /", "whitespace"},
		{"nginx$(id)", "use [registry[:port]/]name"},
		{"nginx`id`", "use [registry[:port]/]name"},
		{digest, "use [registry[:port]/]name"},
		{"registry:port/app", "use [registry[:port]/]name"},
	}
	for _, tt := range tests {
		err := ValidateImage(tt.ref)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "image" {
			t.Errorf("ValidateImage(%q) = %v, want a FieldError for image", tt.ref, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidateImage(%q) = %q, want it to contain %q", tt.ref, err, tt.want)
		}
	}
}
