package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthpaas/berth/internal/cli"
)

// inProcessHelp runs `PATH... --help` on a fresh tree from newRoot, as the
// binary would.
func inProcessHelp(newRoot func() *cobra.Command) HelpFunc {
	return func(_ context.Context, path []string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(slices.Clone(path), "--help"))
		if err := root.Execute(); err != nil {
			return "", err
		}
		return out.String(), nil
	}
}

// The client commands of the real CLI: every command and flag must be in the
// pages generated from their help.
func TestCLIReferenceCoversClientCommands(t *testing.T) {
	newRoot := func() *cobra.Command {
		root := &cobra.Command{Use: "berth", Short: "Berth turns a server with Docker into your own platform-as-a-service"}
		cli.AddCommands(root)
		return root
	}
	checkCLIReference(t, newRoot, "")
}

// A tree with what the real one lacks today: persistent (global) flags,
// hidden commands and flags, deep nesting, a multi-line flag usage, text
// that Markdown would misread.
func TestCLIReferenceCoversEdgeCases(t *testing.T) {
	newRoot := func() *cobra.Command {
		root := &cobra.Command{Use: "tool", Short: "A tool"}
		root.PersistentFlags().StringP("context", "c", "", "which `NAME`d context | any")
		root.AddCommand(&cobra.Command{Use: "secret", Short: "hidden", Hidden: true, Run: func(*cobra.Command, []string) {}})
		group := &cobra.Command{Use: "group", Aliases: []string{"groups", "g"}, Short: "A group of *things*"}
		leaf := &cobra.Command{
			Use: "leaf NAME", Short: "A leaf", Run: func(*cobra.Command, []string) {},
			Long:    "Does <things> with [brackets] and `a|b` code.\n\nLaid out:\n\n  A   first\n  B   second",
			Example: "  tool group leaf x\n  tool group leaf y --force",
		}
		leaf.Flags().Bool("force", false, "do it\neven when it hurts")
		leaf.Flags().Int("n", 3, "how many")
		leaf.Flags().String("host", "builder", "which host")
		leaf.Flags().String("gone", "", "hidden flag")
		leaf.Flags().MarkHidden("gone")
		deeper := &cobra.Command{Use: "deeper", Short: "Deeper"}
		deeper.AddCommand(&cobra.Command{Use: "deepest", Short: "Deepest", Run: func(*cobra.Command, []string) {}})
		group.AddCommand(leaf, deeper)
		root.AddCommand(group)
		return root
	}
	pages := checkCLIReference(t, newRoot, "builder")
	page := string(pages["group.md"])
	for _, want := range []string{
		"| `--force` | do it<br>even when it hurts |",
		"| `--host string` | which host (default: the host name) |",
		"| `-c, --context NAME` | which NAMEd context &#124; any |",
		"Does &lt;things&gt; with \\[brackets\\] and `a|b` code.",
		"```text\nA   first\nB   second\n```",
		"```sh\ntool group leaf x\ntool group leaf y --force\n```",
		"Aliases: `group`, `groups`, `g`",
		"[`tool group deeper deepest`](#tool-group-deeper-deepest)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("group.md lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(string(pages["index.md"]), "secret") || pages["secret.md"] != nil {
		t.Error("the hidden command is documented")
	}
	if strings.Contains(page, "--gone") {
		t.Error("the hidden flag is documented")
	}
}

// checkCLIReference generates the reference of the tree newRoot builds and
// walks the tree: every available command must have a section on its
// group's page with its usage line, and every visible flag must be a row of
// that section.
func checkCLIReference(t *testing.T, newRoot func() *cobra.Command, hostname string) map[string][]byte {
	t.Helper()
	parsed, err := LoadCLI(context.Background(), inProcessHelp(newRoot))
	if err != nil {
		t.Fatal(err)
	}
	pages := RenderCLI(parsed, hostname)
	root := newRoot()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	index := string(pages["index.md"])

	var walk func(c *cobra.Command, page string)
	walk = func(c *cobra.Command, page string) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.Name() == "help" {
				continue
			}
			p := page
			if c == root {
				p = sub.Name() + ".md"
				if !strings.Contains(index, "[`"+sub.CommandPath()+"`]("+p+")") {
					t.Errorf("index.md does not link %s", sub.CommandPath())
				}
			}
			text, ok := pages[p]
			if !ok {
				t.Errorf("no page %s for %s", p, sub.CommandPath())
				continue
			}
			section, ok := sectionOf(string(text), sub.CommandPath())
			if !ok {
				t.Errorf("%s has no section for %s", p, sub.CommandPath())
				continue
			}
			if sub.Runnable() && !strings.Contains(section, sub.UseLine()) {
				t.Errorf("%s: section %s lacks the usage line %q", p, sub.CommandPath(), sub.UseLine())
			}
			checkFlags := func(fs *pflag.FlagSet) {
				fs.VisitAll(func(f *pflag.Flag) {
					if f.Hidden || f.Name == "help" {
						return
					}
					row := "| `--" + f.Name
					if f.Shorthand != "" {
						row = "| `-" + f.Shorthand + ", --" + f.Name
					}
					if !strings.Contains(section, row) {
						t.Errorf("%s: section %s lacks flag --%s", p, sub.CommandPath(), f.Name)
					}
				})
			}
			checkFlags(sub.LocalFlags())
			checkFlags(sub.InheritedFlags())
			walk(sub, p)
		}
	}
	walk(root, "")
	return pages
}

// sectionOf returns the text under the heading naming a command, up to the
// next heading.
func sectionOf(page, name string) (string, bool) {
	for _, prefix := range []string{"# ", "## "} {
		if i := strings.Index(page, "\n"+prefix+name+"\n"); i >= 0 {
			rest := page[i+len(prefix)+len(name)+2:]
			if j := strings.Index(rest, "\n## "); j >= 0 {
				rest = rest[:j]
			}
			return rest, true
		}
	}
	return "", false
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		line string
		want Flag
	}{
		{"  -o, --output string   output format (default \"text\")", Flag{Shorthand: "o", Name: "output", Type: "string", Usage: `output format (default "text")`}},
		{"      --wait            follow the deployment", Flag{Name: "wait", Usage: "follow the deployment"}},
		{"      --env stringArray   variable KEY=VALUE (repeatable)", Flag{Name: "env", Type: "stringArray", Usage: "variable KEY=VALUE (repeatable)"}},
		{"      --color string[=\"always\"]   colour", Flag{Name: "color", Type: `string[="always"]`, Usage: "colour"}},
		{"  -v, --verbose   more", Flag{Shorthand: "v", Name: "verbose", Usage: "more"}},
	}
	for _, tt := range tests {
		got, err := parseFlags([]string{tt.line})
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.line, got, tt.want)
		}
	}
	if _, err := parseFlags([]string{"stray text"}); err == nil {
		t.Error("a line that is no flag was accepted")
	}
}

func TestParseHelpRejectsOtherText(t *testing.T) {
	if _, _, err := ParseHelp("not a help text\n"); err == nil {
		t.Error("help without a Usage: section was accepted")
	}
}
