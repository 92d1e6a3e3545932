package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// Every operation of the document the API package builds must have its
// section, with its method and path, every parameter and every top-level
// field of its request body.
func TestAPIReferenceCoversEveryOperation(t *testing.T) {
	raw, err := BuildOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	page, err := RenderOpenAPI(raw)
	if err != nil {
		t.Fatal(err)
	}
	var doc oaDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	text := string(page)
	ops := 0
	for path, item := range doc.Paths {
		for method, rawOp := range item {
			if !slices.Contains(methodOrder, method) {
				continue
			}
			ops++
			var op oaOperation
			if err := json.Unmarshal(rawOp, &op); err != nil {
				t.Fatal(err)
			}
			o := renderedOp{method: method, path: path, op: op}
			heading := "{ #" + opAnchor(o) + " }\n"
			i := strings.Index(text, heading)
			if i < 0 {
				t.Errorf("no section for %s %s", method, path)
				continue
			}
			section := text[i:]
			if j := strings.Index(section[1:], "\n### "); j >= 0 {
				section = section[:j+1]
			}
			if !strings.Contains(section, strings.ToUpper(method)+" "+path+"\n") {
				t.Errorf("%s %s: the section does not show the method and path", method, path)
			}
			for _, p := range op.Parameters {
				if !strings.Contains(section, "| `"+p.Name+"` | "+p.In+" |") {
					t.Errorf("%s %s: parameter %s missing", method, path, p.Name)
				}
			}
			if op.RequestBody != nil {
				for _, mt := range op.RequestBody.Content {
					s, _ := (&oaRenderer{schemas: doc.Components.Schemas}).resolve(mt.Schema)
					for name := range s.Properties {
						if !strings.Contains(section, "| `"+name+"` |") {
							t.Errorf("%s %s: request field %s missing", method, path, name)
						}
					}
				}
			}
		}
	}
	// Guards against an API package that mounts less than the server does.
	if ops < 50 {
		t.Errorf("only %d operations in the document; are operations left unmounted?", ops)
	}
	for _, tag := range doc.Tags {
		if !strings.Contains(text, "\n## "+tag.Name+"\n") {
			t.Errorf("no section for tag %s", tag.Name)
		}
	}
}
