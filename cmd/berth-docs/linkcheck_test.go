package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCheckSiteFindsBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", `<h1 id="top">x</h1>
<a href="#top">ok</a> <a href="ref/api.html#op-a">ok</a> <a href="https://example.com/#x">external</a>
<a href="ref/api.html#op-b">bad anchor</a> <a href="gone.html">bad page</a> <a href="css/theme.css">asset</a>`)
	write("ref/api.html", `<h3 id="op-a">a</h3><a href="../index.html#top">ok</a><a href="../index.html#nope">bad</a>`)
	write("list.html", "<ol><li><p>step</p><p><code>yaml\nkey: value</code>\n```</p></li></ol>")

	broken, err := CheckSite(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"index.html: link to missing anchor ref/api.html#op-b",
		"index.html: link to missing page gone.html",
		"list.html: a code fence was not rendered (a fence inside a list item?)",
		"ref/api.html: link to missing anchor ../index.html#nope",
	}
	if !slices.Equal(broken, want) {
		t.Errorf("broken = %q\nwant %q", broken, want)
	}
}
