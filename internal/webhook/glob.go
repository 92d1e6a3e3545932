package webhook

import (
	"errors"
	"path"
	"strings"
)

// ValidateGlob checks a watch-path pattern. Patterns are slash-separated
// and relative to the repository root. In a segment, "*" matches any run
// of characters other than "/", "?" one such character, and "[a-z]" /
// "[^a-z]" a class, as in path.Match; "\" escapes. A segment that is
// exactly "**" matches zero or more whole segments, so "src/**" is
// everything under src, "**/*.go" every Go file, "docs/*.md" the Markdown
// files directly in docs.
func ValidateGlob(pattern string) error {
	switch {
	case pattern == "":
		return errors.New("is empty")
	case len(pattern) > 1024:
		return errors.New("is longer than 1024 bytes")
	case strings.HasPrefix(pattern, "!"):
		return errors.New("starts with \"!\"; negated patterns are not supported")
	case strings.HasPrefix(pattern, "/"):
		return errors.New("starts with \"/\"; patterns are relative to the repository root, so drop it")
	case strings.HasSuffix(pattern, "/"):
		return errors.New("ends with \"/\"; to match everything below a directory write dir/**")
	}
	for _, seg := range strings.Split(pattern, "/") {
		switch {
		case seg == "":
			return errors.New("has an empty path segment (\"//\")")
		case seg == "." || seg == "..":
			return errors.New("has a \".\" or \"..\" segment; patterns are relative to the repository root")
		case seg == "**":
			continue
		case strings.Contains(seg, "**"):
			return errors.New("uses \"**\" inside a segment; \"**\" must be a whole segment, as in src/**/*.go")
		}
		if _, err := path.Match(seg, ""); err != nil {
			return errors.New("is not a valid pattern (unclosed \"[\" or trailing \"\\\")")
		}
	}
	return nil
}

// MatchGlob reports whether name, a slash-separated repository path,
// matches pattern. An invalid pattern (see ValidateGlob) matches nothing.
func MatchGlob(pattern, name string) bool {
	if ValidateGlob(pattern) != nil {
		return false
	}
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

// matchSegments is a dynamic programme over (pattern, name) segment
// positions, so patterns with many "**" stay linear in each length.
func matchSegments(pat, name []string) bool {
	// next[j]: pat[i+1:] matches name[j:]; cur[j]: pat[i:] matches name[j:].
	next := make([]bool, len(name)+1)
	cur := make([]bool, len(name)+1)
	next[len(name)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		for j := len(name); j >= 0; j-- {
			if pat[i] == "**" {
				cur[j] = next[j] || (j < len(name) && cur[j+1])
				continue
			}
			ok := false
			if j < len(name) && next[j+1] {
				ok, _ = path.Match(pat[i], name[j])
			}
			cur[j] = ok
		}
		next, cur = cur, next
	}
	return next[0]
}

// MatchPaths reports whether a push touching files should deploy under the
// watch-path globs: true when globs is empty (no watch paths), when files
// is nil (the provider did not say what changed), or when any file matches
// any valid glob. Validate globs beforehand with ValidateGlob; invalid ones
// are ignored here.
func MatchPaths(globs []string, files []string) bool {
	_, ok := matchPaths(globs, files)
	return ok
}

// matchPaths also returns the first match as "file matches glob".
func matchPaths(globs []string, files []string) (string, bool) {
	if len(globs) == 0 || files == nil {
		return "", true
	}
	valid := make([][]string, 0, len(globs))
	for _, g := range globs {
		if ValidateGlob(g) == nil {
			valid = append(valid, strings.Split(g, "/"))
		}
	}
	for _, f := range files {
		segs := strings.Split(f, "/")
		for _, g := range valid {
			if matchSegments(g, segs) {
				return f + " matches watch path " + strings.Join(g, "/"), true
			}
		}
	}
	return "", false
}
