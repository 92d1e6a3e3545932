package main

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// mkdocs 1.4 (Debian's) checks that links name existing pages but not that
// their #fragments exist, so a renamed heading would break links silently;
// and Python-Markdown leaves a fenced code block inside a list item as
// literal backticks, without a warning. CheckSite finds both in the built
// site.

var (
	htmlID   = regexp.MustCompile(`\sid="([^"]+)"`)
	htmlHref = regexp.MustCompile(`\shref="([^"]*)"`)
)

// CheckSite returns one line per problem in the built site at dir: a link
// whose page or #fragment does not exist (external links are not followed),
// or a code fence that was not rendered.
func CheckSite(dir string) ([]string, error) {
	pages := map[string]string{} // slash path relative to dir → content
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".html") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		pages[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("no HTML pages in %s", dir)
	}
	ids := map[string]map[string]bool{}
	for p, text := range pages {
		ids[p] = map[string]bool{}
		for _, m := range htmlID.FindAllStringSubmatch(text, -1) {
			ids[p][m[1]] = true
		}
	}
	var broken []string
	for p, text := range pages {
		if strings.Contains(text, "```") {
			broken = append(broken, fmt.Sprintf("%s: a code fence was not rendered (a fence inside a list item?)", p))
		}
		for _, m := range htmlHref.FindAllStringSubmatch(text, -1) {
			href := m[1]
			if href == "" || strings.Contains(href, ":") || strings.HasPrefix(href, "/") {
				continue // external, or absolute (the theme's own)
			}
			file, frag, _ := strings.Cut(href, "#")
			target := p
			if file != "" {
				target = path.Clean(path.Join(path.Dir(p), file))
				if strings.HasSuffix(file, "/") || path.Ext(target) == "" {
					target = path.Join(target, "index.html")
				}
			}
			if path.Ext(target) != ".html" {
				continue // assets: mkdocs copies them
			}
			switch {
			case ids[target] == nil:
				broken = append(broken, fmt.Sprintf("%s: link to missing page %s", p, href))
			case frag != "" && !ids[target][frag]:
				broken = append(broken, fmt.Sprintf("%s: link to missing anchor %s", p, href))
			}
		}
	}
	sort.Strings(broken)
	return broken, nil
}
