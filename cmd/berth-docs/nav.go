package main

import (
	"bytes"
	"fmt"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// cliNavEntry is the nav item of mkdocs.yml that becomes the CLI section: its
// page list follows the command groups, so a new group needs no nav edit.
const cliNavEntry = "reference/cli/index.md"

// WithCLINav returns the mkdocs configuration config with the nav item that
// names cliNavEntry expanded into a section (the overview, then one page per
// command group of root) and docs_dir made absolute, so the result works from
// any directory.
func WithCLINav(config []byte, root *Command, docsDir string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(config, &doc); err != nil {
		return nil, fmt.Errorf("mkdocs config: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("mkdocs config: not a mapping")
	}
	top := doc.Content[0]
	abs, err := filepath.Abs(docsDir)
	if err != nil {
		return nil, err
	}
	setKey(top, "docs_dir", abs)

	nav := valueOf(top, "nav")
	if nav == nil || !expandCLI(nav, root) {
		return nil, fmt.Errorf("mkdocs config: no nav item names %s", cliNavEntry)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// expandCLI finds "- Title: reference/cli/index.md" under n and replaces its
// value with the CLI pages.
func expandCLI(n *yaml.Node, root *Command) bool {
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if expandCLI(item, root) {
				return true
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			v := n.Content[i]
			if v.Kind == yaml.ScalarNode && v.Value == cliNavEntry {
				section := &yaml.Node{Kind: yaml.SequenceNode}
				add := func(title, page string) {
					section.Content = append(section.Content, &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
						{Kind: yaml.ScalarNode, Value: title}, {Kind: yaml.ScalarNode, Value: page},
					}})
				}
				add("Overview", cliNavEntry)
				for _, c := range root.Commands {
					add(c.Name(), "reference/cli/"+pageName(c))
				}
				n.Content[i] = section
				return true
			}
			if expandCLI(v, root) {
				return true
			}
		}
	}
	return false
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setKey(m *yaml.Node, key, value string) {
	if v := valueOf(m, key); v != nil {
		*v = yaml.Node{Kind: yaml.ScalarNode, Value: value}
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
}
