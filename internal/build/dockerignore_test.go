package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIgnoreMatcher(t *testing.T) {
	tests := []struct {
		patterns string
		path     string
		excluded bool
	}{
		{"secret.txt", "secret.txt", true},
		{"secret.txt", "sub/secret.txt", false}, // patterns are anchored at the root
		{"/secret.txt", "secret.txt", true},
		{"./secret.txt", "secret.txt", true},
		{"*.log", "a.log", true},
		{"*.log", "logs/a.log", false}, // "*" stays in one segment
		{"**/*.log", "logs/deep/a.log", true},
		{"**/*.log", "a.log", true},       // "**/" may match no directory
		{"logs", "logs/deep/a.log", true}, // a directory excludes its content
		{"logs/**", "logs/a", true},
		{"logs/**", "logs", false},
		{"a?c", "abc", true},
		{"a?c", "a/c", false},
		{"[a-c].txt", "b.txt", true},
		{"[^a-c].txt", "b.txt", false},
		{"[^a-c].txt", "d.txt", true},
		{"*.log\n!keep.log", "keep.log", false},
		{"*.log\n!keep.log", "other.log", true},
		{"*.log\n!keep.log\nkeep.log", "keep.log", true}, // the last matching line wins
		{"logs\n!logs/keep.log", "logs/keep.log", false},
		{"logs\n!logs/keep.log", "logs/other.log", true},
		{"# comment\n\n  spaced.txt  ", "spaced.txt", true},
		{"# comment", "# comment", false},
		{"file.with.dots", "filexwithxdots", false}, // "." is literal
		{"a+b(c)", "a+b(c)", true},
		{`\*.txt`, "*.txt", true},
		{`\*.txt`, "a.txt", false},
		{"*", "anything/below", true},
		{"\xEF\xBB\xBFbom.txt", "bom.txt", true},
	}
	for _, tt := range tests {
		m, err := parseIgnore(strings.NewReader(tt.patterns))
		if err != nil {
			t.Fatalf("parseIgnore(%q): %v", tt.patterns, err)
		}
		if got := m.excluded(tt.path); got != tt.excluded {
			t.Errorf("patterns %q, path %q: excluded = %v; want %v", tt.patterns, tt.path, got, tt.excluded)
		}
	}
}

func TestIgnoreMatcherRefusesBrokenPatterns(t *testing.T) {
	for _, p := range []string{"[abc", "!", `trailing\`} {
		if _, err := parseIgnore(strings.NewReader(p)); err == nil {
			t.Errorf("parseIgnore(%q) accepted it", p)
		}
	}
}

// TestContextTar checks what the tar sent to the engine holds: ignored
// files left out, exceptions kept, the Dockerfile and .dockerignore always
// there, symlinks as symlinks, files owned by root.
func TestContextTar(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"docker/app.Dockerfile": "FROM scratch\n",
		".dockerignore":         "docker\n.dockerignore\nsecret.env\nlogs\n!logs/keep.log\n.git\n",
		"secret.env":            "TOKEN=1",
		"main.go":               "package main\n",
		"logs/keep.log":         "keep",
		"logs/drop.log":         "drop",
		".git/HEAD":             "ref: refs/heads/main\n",
		"docker/other":          "excluded with its directory",
	})
	if err := os.Symlink("main.go", filepath.Join(dir, "link.go")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	entries, size, err := contextFiles(root, "docker/app.Dockerfile", DefaultMaxContextBytes)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeContext(&buf, root, entries); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	got := map[string]string{}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q; want root without names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		names = append(names, h.Name)
		switch h.Typeflag {
		case tar.TypeSymlink:
			got[h.Name] = "-> " + h.Linkname
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			got[h.Name] = string(b)
		}
	}
	want := []string{".dockerignore", "docker/app.Dockerfile", "link.go", "logs/keep.log", "main.go"}
	if !slices.Equal(names, want) {
		t.Errorf("tar holds %q; want %q", names, want)
	}
	if got["link.go"] != "-> main.go" {
		t.Errorf("link.go is %q; want a symlink to main.go", got["link.go"])
	}
	if got["logs/keep.log"] != "keep" {
		t.Errorf("logs/keep.log holds %q", got["logs/keep.log"])
	}
	var wantSize int64
	for _, n := range want {
		if c, ok := got[n]; ok && !strings.HasPrefix(c, "-> ") {
			wantSize += int64(len(c))
		}
	}
	if size != wantSize {
		t.Errorf("context size %d; want %d (the files sent)", size, wantSize)
	}
}

// TestContextLimitCountsOnlyWhatIsSent: ignored files do not count.
func TestContextLimitCountsOnlyWhatIsSent(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":          "FROM scratch\n",
		".dockerignore":       "node_modules\n",
		"node_modules/big.js": strings.Repeat("x", 10000),
	})
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, _, err := contextFiles(root, "Dockerfile", 1000); err != nil {
		t.Fatalf("ignored files counted against the limit: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, ".dockerignore")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := contextFiles(root, "Dockerfile", 1000); !errors.Is(err, ErrContextTooLarge) {
		t.Fatalf("error %v; want ErrContextTooLarge", err)
	}
}
