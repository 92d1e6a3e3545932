package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The CLI reference is read from the commands' --help output rather than from
// the cobra tree: part of the tree (server, doctor, version, proxy) is built
// in package main of cmd/berth, which nothing can import. The help text is
// cobra's default template, so it parses reliably; the tests hold the parser
// to the tree it came from.

// HelpFunc returns the --help output of the command at path (empty: the root).
type HelpFunc func(ctx context.Context, path []string) (string, error)

// Command is one command as its help describes it.
type Command struct {
	Path        []string // from the root: ["berth", "app", "create"]
	Short       string   // the one-line summary its parent lists
	Description string   // Long, else Short
	Usage       []string
	Aliases     string
	Examples    string
	Flags       []Flag
	GlobalFlags []Flag
	Commands    []*Command
}

// Name is the command's full name, "berth app create".
func (c *Command) Name() string { return strings.Join(c.Path, " ") }

// Flag is one line of a Flags section.
type Flag struct {
	Shorthand string // "o" for -o
	Name      string // "output" for --output
	Type      string // "string"; empty for booleans
	Usage     string // with pflag's "(default …)" suffix when there is one
}

// LoadCLI reads the help of the root and, depth first, of every command it
// lists. cobra's own help command is left out.
func LoadCLI(ctx context.Context, help HelpFunc) (*Command, error) {
	root, children, err := loadOne(ctx, help, nil)
	if err != nil {
		return nil, err
	}
	if len(root.Usage) == 0 {
		return nil, fmt.Errorf("root help has no usage line")
	}
	root.Path = strings.Fields(root.Usage[0])[:1]
	if err := loadChildren(ctx, help, root, children); err != nil {
		return nil, err
	}
	return root, nil
}

func loadChildren(ctx context.Context, help HelpFunc, parent *Command, children []listed) error {
	for _, ch := range children {
		path := append(slices.Clone(parent.Path[1:]), ch.name)
		c, grand, err := loadOne(ctx, help, path)
		if err != nil {
			return err
		}
		c.Path = append(slices.Clone(parent.Path), ch.name)
		c.Short = ch.short
		if err := loadChildren(ctx, help, c, grand); err != nil {
			return err
		}
		parent.Commands = append(parent.Commands, c)
	}
	return nil
}

type listed struct{ name, short string }

func loadOne(ctx context.Context, help HelpFunc, path []string) (*Command, []listed, error) {
	text, err := help(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	c, children, err := ParseHelp(text)
	if err != nil {
		return nil, nil, fmt.Errorf("help of %q: %w", strings.Join(path, " "), err)
	}
	return c, children, nil
}

// Section headers of cobra's default usage template.
var sections = map[string]bool{
	"Usage:": true, "Aliases:": true, "Examples:": true, "Available Commands:": true,
	"Additional Commands:": true, "Flags:": true, "Global Flags:": true, "Additional help topics:": true,
}

// ParseHelp splits one command's help into its parts and the subcommands it
// lists (cobra's help command excluded).
func ParseHelp(text string) (*Command, []listed, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	start := slices.Index(lines, "Usage:")
	if start < 0 {
		return nil, nil, fmt.Errorf("no Usage: section")
	}
	c := &Command{Description: strings.TrimSpace(strings.Join(lines[:start], "\n"))}
	var children []listed
	body := map[string][]string{}
	section := ""
	for i := start; i < len(lines); i++ {
		l := lines[i]
		if sections[l] && (i == start || lines[i-1] == "") {
			section = l
			continue
		}
		if strings.HasPrefix(l, "Use \"") && strings.HasSuffix(l, "for more information about a command.") {
			section = ""
			continue
		}
		if section != "" {
			body[section] = append(body[section], l)
		}
	}
	for _, l := range trimBlank(body["Usage:"]) {
		c.Usage = append(c.Usage, strings.TrimSpace(l))
	}
	c.Aliases = strings.TrimSpace(strings.Join(body["Aliases:"], " "))
	c.Examples = dedent(trimBlank(body["Examples:"]))
	for _, s := range []string{"Available Commands:", "Additional Commands:"} {
		for _, l := range trimBlank(body[s]) {
			f := strings.Fields(l)
			if len(f) == 0 || f[0] == "help" {
				continue
			}
			children = append(children, listed{name: f[0], short: strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), f[0]))})
		}
	}
	var err error
	if c.Flags, err = parseFlags(trimBlank(body["Flags:"])); err != nil {
		return nil, nil, err
	}
	if c.GlobalFlags, err = parseFlags(trimBlank(body["Global Flags:"])); err != nil {
		return nil, nil, err
	}
	return c, children, nil
}

// flagLine is pflag's layout: "  -o, --output string   usage" or
// "      --wait   usage", the usage column aligned across the section.
var flagLine = regexp.MustCompile(`^(?:  -(\S), |      )--([A-Za-z0-9][-A-Za-z0-9_.]*)((?: \S+)?(?:\[=[^\]]*\])?)   *(.*)$`)

// parseFlags reads a Flags section. Continuation lines of a multi-line usage
// are indented to the usage column; they join the flag above.
func parseFlags(lines []string) ([]Flag, error) {
	var flags []Flag
	for _, l := range lines {
		if m := flagLine.FindStringSubmatch(l); m != nil {
			flags = append(flags, Flag{Shorthand: m[1], Name: m[2], Type: strings.TrimSpace(m[3]), Usage: strings.TrimSpace(m[4])})
			continue
		}
		if len(flags) == 0 || strings.TrimSpace(l) == "" {
			return nil, fmt.Errorf("unexpected line in a flags section: %q", l)
		}
		last := &flags[len(flags)-1]
		last.Usage += "\n" + strings.TrimSpace(l)
	}
	return flags, nil
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// dedent removes the indentation every non-blank line shares.
func dedent(lines []string) string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		out[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(out, "\n")
}

// RenderCLI renders the reference: index.md, listing the root's commands, and
// one page per command the root lists (a command group with every command
// under it). hostname is replaced where a flag's default is the generating
// machine's host name, so the pages do not depend on where they were built.
func RenderCLI(root *Command, hostname string) map[string][]byte {
	pages := map[string][]byte{}
	var idx bytes.Buffer
	idx.WriteString(generatedBy(root.Name() + " --help"))
	fmt.Fprintf(&idx, "# CLI reference\n\n")
	fmt.Fprintf(&idx, "%s\n\n", mdText(root.Description))
	fmt.Fprintf(&idx, "One binary holds the server, the edge proxy and the client. Every command takes "+
		"`-h`, `--help` for the text these pages are generated from.\n\n")
	writeUsage(&idx, root)
	idx.WriteString("| Command | What it does |\n|---|---|\n")
	for _, c := range root.Commands {
		fmt.Fprintf(&idx, "| [`%s`](%s) | %s |\n", c.Name(), pageName(c), mdCell(c.Short))
	}
	idx.WriteString("\n")
	writeFlags(&idx, "Flags", root.Flags, hostname)
	pages["index.md"] = idx.Bytes()

	for _, c := range root.Commands {
		var b bytes.Buffer
		b.WriteString(generatedBy(c.Name() + " --help"))
		fmt.Fprintf(&b, "# %s\n\n", c.Name())
		writeCommand(&b, c, hostname)
		var walk func(cs []*Command)
		walk = func(cs []*Command) {
			for _, sub := range cs {
				fmt.Fprintf(&b, "## %s\n\n", sub.Name())
				writeCommand(&b, sub, hostname)
				walk(sub.Commands)
			}
		}
		walk(c.Commands)
		pages[pageName(c)] = b.Bytes()
	}
	return pages
}

func pageName(c *Command) string { return c.Path[len(c.Path)-1] + ".md" }

func generatedBy(source string) string {
	return "<!-- Generated by cmd/berth-docs from `" + source + "` (scripts/docs.sh). Do not edit. -->\n\n"
}

func writeCommand(b *bytes.Buffer, c *Command, hostname string) {
	writeText(b, c.Description)
	writeUsage(b, c)
	if c.Aliases != "" {
		var as []string
		for _, a := range strings.Split(c.Aliases, ",") {
			as = append(as, "`"+strings.TrimSpace(a)+"`")
		}
		fmt.Fprintf(b, "Aliases: %s\n\n", strings.Join(as, ", "))
	}
	if c.Examples != "" {
		fmt.Fprintf(b, "**Examples**\n\n```sh\n%s\n```\n\n", c.Examples)
	}
	if len(c.Commands) > 0 {
		b.WriteString("**Commands**\n\n| Command | What it does |\n|---|---|\n")
		for _, sub := range c.Commands {
			fmt.Fprintf(b, "| [`%s`](#%s) | %s |\n", sub.Name(), anchor(sub.Name()), mdCell(sub.Short))
		}
		b.WriteString("\n")
	}
	writeFlags(b, "Flags", c.Flags, hostname)
	writeFlags(b, "Global flags", c.GlobalFlags, hostname)
}

func writeUsage(b *bytes.Buffer, c *Command) {
	if len(c.Usage) > 0 {
		fmt.Fprintf(b, "```text\n%s\n```\n\n", strings.Join(c.Usage, "\n"))
	}
}

func writeFlags(b *bytes.Buffer, title string, flags []Flag, hostname string) {
	var rows []string
	for _, f := range flags {
		if f.Name == "help" {
			continue // on every command; said once on the index
		}
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + ", " + name
		}
		if f.Type != "" {
			name += " " + f.Type
		}
		usage := f.Usage
		if hostname != "" {
			usage = strings.ReplaceAll(usage, `(default "`+hostname+`")`, "(default: the host name)")
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s |", name, mdCell(usage)))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "**%s**\n\n| Flag | Description |\n|---|---|\n%s\n\n", title, strings.Join(rows, "\n"))
}

// writeText renders help prose: paragraphs become Markdown paragraphs; a
// paragraph with indented lines (a table or list laid out with spaces) is
// kept as preformatted text.
func writeText(b *bytes.Buffer, text string) {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		para = strings.Trim(para, "\n")
		if para == "" {
			continue
		}
		if strings.Contains("\n"+para, "\n ") {
			fmt.Fprintf(b, "```text\n%s\n```\n\n", dedent(strings.Split(para, "\n")))
			continue
		}
		fmt.Fprintf(b, "%s\n\n", mdText(para))
	}
}

// anchor is the id Python-Markdown's toc extension gives a heading made of
// words: lower case, runs of spaces and hyphens as one hyphen.
func anchor(heading string) string {
	return strings.Join(strings.Fields(strings.ToLower(heading)), "-")
}

// mdText escapes plain text (help prose, field descriptions) for Markdown as
// one line, keeping `code spans` as they are: the help text uses backticks
// for code.
func mdText(s string) string {
	out := outsideCode(strings.Join(strings.Fields(s), " "), mdEscaper.Replace)
	if strings.HasPrefix(out, "#") || strings.HasPrefix(out, "+ ") || strings.HasPrefix(out, "- ") {
		out = `\` + out
	}
	return out
}

var mdEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;", "&", "&amp;", "`", "\\`")

// mdCell is mdText for a table cell: line breaks become <br> and pipes
// outside code spans are entities.
func mdCell(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = outsideCode(mdText(l), func(s string) string { return strings.ReplaceAll(s, "|", "&#124;") })
	}
	return strings.Join(lines, "<br>")
}

// outsideCode applies f to the parts of s outside `code spans`; with an
// unpaired backtick there are no code spans, and f sees all of s.
func outsideCode(s string, f func(string) string) string {
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 {
		return f(s)
	}
	for i := 0; i < len(parts); i += 2 {
		parts[i] = f(parts[i])
	}
	return strings.Join(parts, "`")
}
