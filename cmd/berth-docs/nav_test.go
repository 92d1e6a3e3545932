package main

import (
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestWithCLINavListsEveryGroup(t *testing.T) {
	config := []byte(`site_name: Berth
docs_dir: docs
nav:
  - Home: index.md
  - Reference:
      - CLI: reference/cli/index.md
      - API: reference/api.md
`)
	root := &Command{Path: []string{"berth"}, Commands: []*Command{
		{Path: []string{"berth", "app"}}, {Path: []string{"berth", "domain"}},
	}}
	out, err := WithCLINav(config, root, "docs")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		DocsDir string                 `yaml:"docs_dir"`
		Nav     []map[string]yaml.Node `yaml:"nav"`
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(got.DocsDir) || !strings.HasSuffix(got.DocsDir, "docs") {
		t.Errorf("docs_dir = %q, want an absolute path to docs", got.DocsDir)
	}
	text := string(out)
	for _, want := range []string{
		"- CLI:\n          - Overview: reference/cli/index.md\n          - berth app: reference/cli/app.md\n          - berth domain: reference/cli/domain.md\n",
		"- API: reference/api.md",
		"- Home: index.md",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}

	if _, err := WithCLINav([]byte("nav:\n  - Home: index.md\n"), root, "docs"); err == nil {
		t.Error("a nav without the CLI entry was accepted")
	}
}
