package gitsrc

import (
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxRefLen bounds ref names; git has no limit but providers do (GitHub 255).
const maxRefLen = 255

// CheckRefFormat applies the rules of `git check-ref-format` to a ref name,
// in Go so validation never runs a program. allowOneLevel corresponds to
// --allow-onelevel (needed for short branch and tag names such as "main").
// On top of git's rules it refuses what Berth never wants to hand to git:
// a leading "-" (option smuggling), whitespace and control characters of
// any script, and invalid UTF-8.
func CheckRefFormat(field, name string, allowOneLevel bool) error {
	switch {
	case name == "":
		return invalid(field, "must not be empty")
	case len(name) > maxRefLen:
		return invalid(field, "must be at most %d bytes", maxRefLen)
	case !utf8.ValidString(name):
		return invalid(field, "must be valid UTF-8")
	case strings.HasPrefix(name, "-"):
		return invalid(field, "must not start with \"-\"")
	case name == "@":
		return invalid(field, "must not be \"@\"")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return invalid(field, "must not start or end with \"/\"")
	case strings.HasSuffix(name, "."):
		return invalid(field, "must not end with \".\"")
	case strings.Contains(name, ".."):
		return invalid(field, "must not contain \"..\"")
	case strings.Contains(name, "//"):
		return invalid(field, "must not contain \"//\"")
	case strings.Contains(name, "@{"):
		return invalid(field, "must not contain \"@{\"")
	}
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || unicode.IsControl(r):
			return invalid(field, "must not contain control characters")
		case unicode.IsSpace(r):
			return invalid(field, "must not contain whitespace")
		case strings.ContainsRune("~^:?*[\\", r):
			return invalid(field, "must not contain any of ~ ^ : ? * [ \\")
		}
	}
	comps := strings.Split(name, "/")
	if len(comps) < 2 && !allowOneLevel {
		return invalid(field, "must contain at least one \"/\"")
	}
	for _, c := range comps {
		if strings.HasPrefix(c, ".") {
			return invalid(field, "no \"/\"-separated part may start with \".\"")
		}
		if strings.HasSuffix(c, ".lock") {
			return invalid(field, "no \"/\"-separated part may end with \".lock\"")
		}
	}
	return nil
}

// ValidateBranch checks a short branch name ("main", "feature/x") as
// `git check-ref-format --branch` would, and refuses "HEAD".
func ValidateBranch(name string) error {
	if name == "HEAD" {
		return invalid("branch", "must not be \"HEAD\"")
	}
	if strings.HasPrefix(name, "refs/") {
		return invalid("branch", "give the short name (\"main\", not \"refs/heads/main\")")
	}
	return CheckRefFormat("branch", name, true)
}

// ValidateTag checks a short tag name ("v1.2.0").
func ValidateTag(name string) error {
	if strings.HasPrefix(name, "refs/") {
		return invalid("tag", "give the short name (\"v1\", not \"refs/tags/v1\")")
	}
	return CheckRefFormat("tag", name, true)
}

// ValidateCommit accepts a full commit id: 40 (SHA-1) or 64 (SHA-256)
// lowercase hex digits. Abbreviations are refused: they cannot be fetched
// and may become ambiguous.
func ValidateCommit(sha string) error {
	if len(sha) != 40 && len(sha) != 64 {
		return invalid("commit", "must be a full commit id of 40 or 64 hex digits")
	}
	for i := 0; i < len(sha); i++ {
		c := sha[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return invalid("commit", "must be lowercase hex digits (0-9, a-f)")
		}
	}
	return nil
}

// ValidatePath checks a path inside the checkout given by a user, such as a
// Dockerfile path or a build context directory: relative, already clean
// (as path.Clean writes it; "." is the checkout root), slash-separated,
// never leaving the checkout. It does not look at the file system: symlinks
// inside the checkout must still be resolved with confinement (os.Root) by
// whoever opens the file.
func ValidatePath(field, p string) error {
	switch {
	case p == "":
		return invalid(field, "must not be empty (use \".\" for the repository root)")
	case len(p) > 4096:
		return invalid(field, "must be at most 4096 bytes")
	case !utf8.ValidString(p):
		return invalid(field, "must be valid UTF-8")
	case strings.HasPrefix(p, "-"):
		return invalid(field, "must not start with \"-\"")
	case strings.HasPrefix(p, "/"):
		return invalid(field, "must be relative to the repository root, not absolute")
	case strings.Contains(p, "\\"):
		return invalid(field, "must use \"/\" as separator, not \"\\\"")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || unicode.IsControl(r) {
			return invalid(field, "must not contain control characters")
		}
		if unicode.IsSpace(r) {
			return invalid(field, "must not contain whitespace")
		}
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return invalid(field, "must stay inside the repository (no \"..\")")
		}
	}
	if c := path.Clean(p); c != p {
		return invalid(field, "must be a clean path (write %q)", c)
	}
	return nil
}

// checkPlain refuses what no URL, host or repository path of a source may
// contain anywhere: control characters, whitespace, invalid UTF-8, a
// leading "-".
func checkPlain(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || unicode.IsControl(r) {
			return invalid(field, "must not contain control characters")
		}
		if unicode.IsSpace(r) {
			return invalid(field, "must not contain whitespace")
		}
	}
	if strings.HasPrefix(s, "-") {
		return invalid(field, "must not start with \"-\"")
	}
	return nil
}

// Transport is how a URL reaches its server.
type Transport string

const (
	TransportHTTPS Transport = "https"
	TransportSSH   Transport = "ssh"
)

// parseRemoteURL validates a clone URL and says which transport it uses.
// Allowed: https://host[:port]/path, ssh://[user@]host[:port]/path and the
// scp-like [user@]host:path. Everything else (file://, ext::, git://,
// http://, local paths, credentials in the URL) is refused.
func parseRemoteURL(field, raw string) (Transport, error) {
	if raw == "" {
		return "", invalid(field, "must not be empty")
	}
	if len(raw) > 2048 {
		return "", invalid(field, "must be at most 2048 bytes")
	}
	if err := checkPlain(field, raw); err != nil {
		return "", err
	}
	if helper, _, ok := strings.Cut(raw, "::"); ok && isSchemeLike(helper) {
		// git's "<transport>::<address>" remote-helper syntax, e.g. ext::.
		return "", invalid(field, "must not use a git remote helper (\"<transport>::\"); use https:// or ssh://")
	}
	scheme, _, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		return parseSCPLike(field, raw)
	}
	switch strings.ToLower(scheme) {
	case "https":
	case "ssh":
	default:
		return "", invalid(field, "must use https:// or ssh:// (or git@host:owner/repo.git), not %s://", safeScheme(scheme))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", invalid(field, "is not a valid URL")
	}
	if u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return "", invalid(field, "must not have a query or fragment")
	}
	if err := checkHostPort(field, u.Host); err != nil {
		return "", err
	}
	if u.Path == "" || u.Path == "/" {
		return "", invalid(field, "must include the repository path")
	}
	if err := checkRepoURLPath(field, u.Path); err != nil {
		return "", err
	}
	if u.Scheme == "https" {
		if u.User != nil {
			return "", invalid(field, "must not contain credentials; give the token separately")
		}
		return TransportHTTPS, nil
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return "", invalid(field, "must not contain a password; SSH uses the deploy key")
		}
		if err := checkSSHUser(field, u.User.Username()); err != nil {
			return "", err
		}
	}
	return TransportSSH, nil
}

func isSchemeLike(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// safeScheme echoes a scheme only when it is harmless to show.
func safeScheme(s string) string {
	if len(s) > 16 || !isSchemeLike(s) {
		return "this scheme"
	}
	return s
}

// parseSCPLike accepts [user@]host:path, the form providers show for SSH.
func parseSCPLike(field, raw string) (Transport, error) {
	hostPart, p, ok := strings.Cut(raw, ":")
	if !ok || strings.Contains(hostPart, "/") {
		return "", invalid(field, "must be an https:// or ssh:// URL or git@host:owner/repo.git; local paths are not allowed")
	}
	user, host, hasUser := strings.Cut(hostPart, "@")
	if !hasUser {
		host, user = user, ""
	} else if err := checkSSHUser(field, user); err != nil {
		return "", err
	}
	if err := checkHostname(field, host); err != nil {
		return "", err
	}
	if p == "" || strings.HasPrefix(p, "-") {
		return "", invalid(field, "must include the repository path after \":\"")
	}
	if err := checkRepoURLPath(field, "/"+strings.TrimPrefix(p, "/")); err != nil {
		return "", err
	}
	return TransportSSH, nil
}

func checkSSHUser(field, user string) error {
	if user == "" || len(user) > 64 || user[0] == '-' {
		return invalid(field, "has an invalid SSH user name")
	}
	for _, r := range user {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return invalid(field, "SSH user may contain only letters, digits, \".\", \"_\" and \"-\"")
		}
	}
	return nil
}

func checkHostPort(field, hostport string) error {
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(hostport, "[") {
		return invalid(field, "has an invalid host")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return invalid(field, "port must be a number from 1 to 65535")
		}
	}
	if strings.Contains(host, ":") { // IPv6 literal, brackets already removed
		if net.ParseIP(host) == nil {
			return invalid(field, "has an invalid host")
		}
		return nil
	}
	return checkHostname(field, host)
}

// checkHostname allows DNS names and IPv4 literals: letters, digits, "-"
// and "." with no label starting with "-".
func checkHostname(field, host string) error {
	if host == "" || len(host) > 253 {
		return invalid(field, "must name a host")
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		if ip := net.ParseIP(host[1 : len(host)-1]); ip != nil && ip.To4() == nil {
			return nil
		}
		return invalid(field, "has an invalid host")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || len(label) > 63 {
			return invalid(field, "has an invalid host name")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return invalid(field, "host may contain only letters, digits, \"-\" and \".\"")
			}
		}
	}
	return nil
}

// checkRepoURLPath checks the repository path part of a URL.
func checkRepoURLPath(field, p string) error {
	for _, c := range strings.Split(p, "/") {
		if c == ".." || c == "." {
			return invalid(field, "repository path must not contain \".\" or \"..\" segments")
		}
		if strings.HasPrefix(c, "-") {
			return invalid(field, "repository path segments must not start with \"-\"")
		}
	}
	if strings.ContainsAny(p, "'\"`$;|&<>\\") {
		return invalid(field, "repository path may not contain quotes, \"$\", \";\", \"|\", \"&\", \"<\", \">\" or \"\\\"")
	}
	return nil
}
