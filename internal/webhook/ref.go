package webhook

import (
	"errors"
	"fmt"
	"strings"
)

// checkRefName applies git's ref-name rules (git check-ref-format) to a
// full ref, plus Berth's own: the short branch or tag name may not start
// with "-", so it can never be read as an option by git or docker. short
// is the name under refs/heads/ or refs/tags/, or "" for other refs.
func checkRefName(full, short string) error {
	if !strings.HasPrefix(full, "refs/") {
		return fmt.Errorf("%q does not start with refs/", full)
	}
	if strings.HasPrefix(full, "refs/heads/") || strings.HasPrefix(full, "refs/tags/") {
		if short == "" {
			return fmt.Errorf("%q has an empty branch or tag name", full)
		}
		if err := checkName(short); err != nil {
			return fmt.Errorf("%q: %w", full, err)
		}
	}
	if err := checkRefFormat(full); err != nil {
		return fmt.Errorf("%q: %w", full, err)
	}
	return nil
}

// checkName validates a short branch or tag name.
func checkName(name string) error {
	if strings.HasPrefix(name, "-") {
		return errors.New("name starts with \"-\"")
	}
	return checkRefFormat(name)
}

func checkRefFormat(s string) error {
	switch {
	case s == "":
		return errors.New("name is empty")
	case len(s) > 255:
		return errors.New("name is longer than 255 bytes")
	case s == "@":
		return errors.New("name is \"@\"")
	case strings.Contains(s, ".."):
		return errors.New("name contains \"..\"")
	case strings.Contains(s, "@{"):
		return errors.New("name contains \"@{\"")
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		return errors.New("name has an empty path component")
	case strings.HasSuffix(s, "."):
		return errors.New("name ends with \".\"")
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return fmt.Errorf("name contains %q, which git does not allow in ref names", rune(c))
		}
	}
	for _, part := range strings.Split(s, "/") {
		if strings.HasPrefix(part, ".") {
			return errors.New("a path component starts with \".\"")
		}
		if strings.HasSuffix(part, ".lock") {
			return errors.New("a path component ends with \".lock\"")
		}
	}
	return nil
}
