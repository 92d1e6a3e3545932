package app

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/distribution/reference"
)

// MaxImageLength is the longest image reference accepted, tag and digest included.
const MaxImageLength = 255

var (
	imageTagRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	imageDigestRe = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// ValidateImage checks an image reference (field "image"):
//
//	[registry[:port]/]path[:tag][@sha256:<64 hex>]
//
// as Docker parses it (github.com/distribution/reference), and stricter: no
// whitespace or control characters, no leading '-', no "..", at most 255
// characters, only sha256 digests, and a first path component with
// uppercase letters is a mistake rather than a registry host.
func ValidateImage(ref string) error {
	invalid := func(reason string) error {
		return &FieldError{"image", fmt.Sprintf("%q is not a valid image reference: %s", ref, reason)}
	}
	switch {
	case ref == "":
		return &FieldError{"image", "is required, e.g. nginx:1.27 or registry.example.com/team/api@sha256:<digest>"}
	case len(ref) > MaxImageLength:
		return &FieldError{"image", fmt.Sprintf("is %d characters long; the limit is %d", len(ref), MaxImageLength)}
	case strings.IndexFunc(ref, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return invalid("it must not contain whitespace or control characters")
	case ref[0] == '-':
		return invalid("it must not start with '-'")
	case strings.Contains(ref, ".."):
		return invalid("it must not contain \"..\"")
	}

	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !imageDigestRe.MatchString(digest) {
		return invalid("the digest must be sha256: followed by 64 lowercase hexadecimal characters")
	}
	if slash := strings.LastIndexByte(name, '/'); strings.LastIndexByte(name[slash+1:], ':') >= 0 {
		colon := slash + 1 + strings.LastIndexByte(name[slash+1:], ':')
		if tag := name[colon+1:]; !imageTagRe.MatchString(tag) {
			return invalid("the tag must be 1–128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")
		}
		name = name[:colon]
	}
	path := name
	if first, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		path = rest // first is a registry host; hosts are case-insensitive
	}
	if strings.ToLower(path) != path {
		return invalid("repository name must be lowercase")
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		// The library's messages repeat the input and use its grammar's
		// terms; ours say what is allowed.
		return invalid("use [registry[:port]/]name[:tag][@sha256:<digest>], where name is lowercase letters and digits separated by '/', '.', '_', '__' or '-'")
	}
	return nil
}
