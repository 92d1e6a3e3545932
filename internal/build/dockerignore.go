package build

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// ignorePattern is one line of a .dockerignore file.
type ignorePattern struct {
	text      string // cleaned, without "!"
	exception bool   // "!pattern": re-include what earlier lines excluded
	re        *regexp.Regexp
}

// ignoreMatcher decides which paths of a build context stay out of it, with
// the Docker CLI's semantics (github.com/moby/patternmatcher): the last
// matching line wins, a line matching a directory matches everything in it,
// "*" and "?" stay within one path segment, "**" spans any number.
type ignoreMatcher struct {
	patterns      []ignorePattern
	hasExceptions bool
}

// parseIgnore reads a .dockerignore: one pattern a line, "#" comments,
// surrounding spaces trimmed, leading "/" and "./" meaningless.
func parseIgnore(r io.Reader) (*ignoreMatcher, error) {
	m := &ignoreMatcher{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first {
			line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
			first = false
		}
		if err := m.add(string(line)); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	return m, nil
}

func (m *ignoreMatcher) add(line string) error {
	p := strings.TrimSpace(line)
	if p == "" || strings.HasPrefix(p, "#") {
		return nil
	}
	exception := p[0] == '!'
	if exception {
		p = strings.TrimSpace(p[1:])
		if p == "" {
			return fmt.Errorf(".dockerignore: %q: an exception needs a pattern after the \"!\"", line)
		}
	}
	p = path.Clean(p)
	if len(p) > 1 && p[0] == '/' {
		p = p[1:]
	}
	re, err := compileIgnore(p)
	if err != nil {
		return fmt.Errorf(".dockerignore: %q: %w", line, err)
	}
	m.patterns = append(m.patterns, ignorePattern{text: p, exception: exception, re: re})
	m.hasExceptions = m.hasExceptions || exception
	return nil
}

// compileIgnore translates a pattern into an anchored regular expression.
func compileIgnore(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteByte('^')
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case inClass:
			if c == ']' {
				inClass = false
			}
			if c == '\\' && i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(string(p[i])))
				continue
			}
			b.WriteByte(c)
		case c == '*':
			if i+1 < len(p) && p[i+1] == '*' {
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++ // "**/" is "**": it may match no directory at all
				}
				if i+1 == len(p) {
					b.WriteString(".*")
				} else {
					b.WriteString("(.*/)?")
				}
				continue
			}
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			inClass = true
			b.WriteByte('[')
			if i+1 < len(p) && p[i+1] == '^' {
				i++
				b.WriteByte('^')
			}
		case c == '\\':
			if i+1 == len(p) {
				return nil, fmt.Errorf("the pattern ends with an escaping \\")
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if inClass {
		return nil, fmt.Errorf("unclosed character class [")
	}
	b.WriteByte('$')
	return regexp.Compile(b.String())
}

// excluded reports whether the slash-separated path rel (relative to the
// context root, never ".") stays out of the context.
func (m *ignoreMatcher) excluded(rel string) bool {
	if m == nil {
		return false
	}
	matched := false
	var parents []string // rel's ancestors, outermost first, computed on demand
	for _, p := range m.patterns {
		// A line can only change the outcome if it would flip it.
		if p.exception != matched {
			continue
		}
		hit := p.re.MatchString(rel)
		if !hit {
			if parents == nil {
				parents = ancestors(rel)
			}
			for _, d := range parents {
				if p.re.MatchString(d) {
					hit = true
					break
				}
			}
		}
		if hit {
			matched = !p.exception
		}
	}
	return matched
}

// ancestors returns "a", "a/b" for "a/b/c".
func ancestors(rel string) []string {
	out := []string{}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' {
			out = append(out, rel[:i])
		}
	}
	return out
}

// mayReinclude reports whether an exception could bring back something
// inside an excluded directory, so the walk must still descend into it.
func (m *ignoreMatcher) mayReinclude() bool {
	return m != nil && m.hasExceptions
}
