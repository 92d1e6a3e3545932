package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
)

// BuildOpenAPI returns the OpenAPI document the server serves at
// /api/openapi.json, built in-process: registering the operations needs no
// database, Docker Engine or listener. api.Register mounts some operations
// only when their dependency is set, so each is set to a stand-in, as
// internal/server sets them all; no operation runs here.
func BuildOpenAPI() ([]byte, error) {
	h := api.Register(http.NewServeMux(), api.Deps{
		Apps: &deploy.Manager{},
		ProxyStatus: func(context.Context, string) (edge.ProxyStatus, error) {
			return edge.ProxyStatus{}, errors.New("not a server")
		},
		Requests: func(string, time.Duration) edge.AppRequests { return edge.AppRequests{} },
	})
	return json.Marshal(h.OpenAPI())
}

// The subset of OpenAPI 3.1 the reference shows.
type oaDoc struct {
	Info struct {
		Title       string `json:"title"`
		Description string `json:"description"`
	} `json:"info"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas         map[string]*oaSchema `json:"schemas"`
		SecuritySchemes map[string]struct {
			Type        string `json:"type"`
			Scheme      string `json:"scheme"`
			In          string `json:"in"`
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"securitySchemes"`
	} `json:"components"`
}

type oaOperation struct {
	OperationID string                 `json:"operationId"`
	Summary     string                 `json:"summary"`
	Description string                 `json:"description"`
	Tags        []string               `json:"tags"`
	Deprecated  bool                   `json:"deprecated"`
	Parameters  []oaParam              `json:"parameters"`
	RequestBody *oaBody                `json:"requestBody"`
	Responses   map[string]oaResponse  `json:"responses"`
	Security    *[]map[string][]string `json:"security"`
}

type oaParam struct {
	Name        string    `json:"name"`
	In          string    `json:"in"`
	Description string    `json:"description"`
	Required    bool      `json:"required"`
	Schema      *oaSchema `json:"schema"`
}

type oaBody struct {
	Required bool                   `json:"required"`
	Content  map[string]oaMediaType `json:"content"`
}

type oaResponse struct {
	Description string                 `json:"description"`
	Content     map[string]oaMediaType `json:"content"`
}

type oaMediaType struct {
	Schema *oaSchema `json:"schema"`
}

type oaSchema struct {
	Ref                  string               `json:"$ref"`
	Type                 json.RawMessage      `json:"type"` // a name or, in 3.1, a list of names
	Format               string               `json:"format"`
	Description          string               `json:"description"`
	Enum                 []any                `json:"enum"`
	Items                *oaSchema            `json:"items"`
	Properties           map[string]*oaSchema `json:"properties"`
	Required             []string             `json:"required"`
	AdditionalProperties json.RawMessage      `json:"additionalProperties"`
	ReadOnly             bool                 `json:"readOnly"`
	OneOf                []*oaSchema          `json:"oneOf"`
	AnyOf                []*oaSchema          `json:"anyOf"`
}

var methodOrder = []string{"get", "post", "put", "patch", "delete", "head", "options"}

type renderedOp struct {
	method, path string
	op           oaOperation
}

// RenderOpenAPI renders an OpenAPI 3.1 document as one page: operations
// grouped by tag in the document's tag order, each with its method, path,
// summary, authentication, parameters, and the fields of its request and
// response bodies.
func RenderOpenAPI(raw []byte) ([]byte, error) {
	var doc oaDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("read OpenAPI document: %w", err)
	}
	byTag := map[string][]renderedOp{}
	for path, item := range doc.Paths {
		for method, rawOp := range item {
			if !slices.Contains(methodOrder, method) {
				continue
			}
			var op oaOperation
			if err := json.Unmarshal(rawOp, &op); err != nil {
				return nil, fmt.Errorf("operation %s %s: %w", method, path, err)
			}
			tag := "Other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			byTag[tag] = append(byTag[tag], renderedOp{method: method, path: path, op: op})
		}
	}
	if len(byTag) == 0 {
		return nil, fmt.Errorf("the document has no operations")
	}
	// Tags in the document's order, then any used but not declared.
	var tags []string
	tagDesc := map[string]string{}
	for _, t := range doc.Tags {
		if _, ok := byTag[t.Name]; ok {
			tags = append(tags, t.Name)
			tagDesc[t.Name] = t.Description
		}
	}
	var rest []string
	for t := range byTag {
		if !slices.Contains(tags, t) {
			rest = append(rest, t)
		}
	}
	sort.Strings(rest)
	tags = append(tags, rest...)

	r := &oaRenderer{schemas: doc.Components.Schemas}
	var b bytes.Buffer
	b.WriteString(generatedBy("GET " + api.SpecPath))
	b.WriteString("# API reference\n\n")
	fmt.Fprintf(&b, "Generated from the OpenAPI 3.1 document every server serves at `%s` "+
		"(browsable on a running server at `/api/docs`). Operations are under `%s`.\n\n", api.SpecPath, api.Prefix)
	writeMarkdown(&b, doc.Info.Description)
	if len(doc.Components.SecuritySchemes) > 0 {
		b.WriteString("## Authentication schemes\n\n| Scheme | Kind | Description |\n|---|---|---|\n")
		names := make([]string, 0, len(doc.Components.SecuritySchemes))
		for n := range doc.Components.SecuritySchemes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := doc.Components.SecuritySchemes[n]
			kind := s.Type
			switch {
			case s.Scheme != "":
				kind += " " + s.Scheme
			case s.In != "":
				kind += " in " + s.In + " `" + s.Name + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", n, kind, markdownCell(s.Description))
		}
		b.WriteString("\n")
	}

	b.WriteString("## Operations\n\n| Method | Path | Summary |\n|---|---|---|\n")
	for _, t := range tags {
		sortOps(byTag[t])
		for _, o := range byTag[t] {
			fmt.Fprintf(&b, "| %s | [`%s`](#%s) | %s |\n", strings.ToUpper(o.method), o.path, opAnchor(o), mdCell(o.op.Summary))
		}
	}
	b.WriteString("\n")

	for _, t := range tags {
		fmt.Fprintf(&b, "## %s\n\n", mdText(t))
		writeMarkdown(&b, tagDesc[t])
		for _, o := range byTag[t] {
			r.writeOperation(&b, o)
		}
	}
	return b.Bytes(), nil
}

func sortOps(ops []renderedOp) {
	sort.SliceStable(ops, func(i, j int) bool {
		if ops[i].path != ops[j].path {
			return ops[i].path < ops[j].path
		}
		return slices.Index(methodOrder, ops[i].method) < slices.Index(methodOrder, ops[j].method)
	})
}

// opAnchor is the operation id, which is unique, set as the heading's id.
func opAnchor(o renderedOp) string {
	if o.op.OperationID != "" {
		return "op-" + o.op.OperationID
	}
	return "op-" + o.method + strings.NewReplacer("/", "-", "{", "", "}", "").Replace(o.path)
}

type oaRenderer struct {
	schemas map[string]*oaSchema
}

func (r *oaRenderer) writeOperation(b *bytes.Buffer, o renderedOp) {
	op := o.op
	title := op.Summary
	if title == "" {
		title = strings.ToUpper(o.method) + " " + o.path
	}
	// attr_list sets the id, so links do not depend on how the summary slugifies.
	fmt.Fprintf(b, "### %s { #%s }\n\n", mdText(title), opAnchor(o))
	fmt.Fprintf(b, "```text\n%s %s\n```\n\n", strings.ToUpper(o.method), o.path)
	if op.Deprecated {
		b.WriteString("**Deprecated.**\n\n")
	}
	writeMarkdown(b, op.Description)
	fmt.Fprintf(b, "Authentication: %s\n\n", authText(op.Security))

	if len(op.Parameters) > 0 {
		b.WriteString("**Parameters**\n\n| Name | In | Type | Required | Description |\n|---|---|---|---|---|\n")
		for _, p := range op.Parameters {
			fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", p.Name, p.In, mdCell(r.typeName(p.Schema)), yesNo(p.Required || p.In == "path"), mdCell(p.Description))
		}
		b.WriteString("\n")
	}
	if op.RequestBody != nil {
		for _, mt := range sortedKeys(op.RequestBody.Content) {
			s := op.RequestBody.Content[mt].Schema
			fmt.Fprintf(b, "**Request body** (`%s`%s)\n\n", mt, map[bool]string{true: ", required"}[op.RequestBody.Required])
			r.writeSchema(b, s)
		}
	}
	b.WriteString("**Responses**\n\n")
	for _, code := range sortedKeys(op.Responses) {
		resp := op.Responses[code]
		mts := sortedKeys(resp.Content)
		media := ""
		if len(mts) > 0 {
			media = " (`" + strings.Join(mts, "`, `") + "`)"
		}
		fmt.Fprintf(b, "- `%s` %s%s\n", code, mdText(resp.Description), media)
	}
	b.WriteString("\n")
	for _, code := range sortedKeys(op.Responses) {
		c := code[0]
		if c != '2' {
			continue // errors are problem documents, described once above
		}
		for _, mt := range sortedKeys(op.Responses[code].Content) {
			s := op.Responses[code].Content[mt].Schema
			if s == nil {
				continue
			}
			fmt.Fprintf(b, "**Response `%s`** (`%s`)\n\n", code, mt)
			r.writeSchema(b, s)
		}
	}
}

func authText(sec *[]map[string][]string) string {
	if sec != nil && len(*sec) == 0 {
		return "none (public operation)."
	}
	if sec == nil {
		return "as the document's default."
	}
	var alts []string
	for _, req := range *sec {
		alts = append(alts, "`"+strings.Join(sortedKeys(req), "` + `")+"`")
	}
	return strings.Join(alts, " or ") + "."
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// maxDepth bounds how deep nested fields are listed.
const maxDepth = 6

type fieldRow struct {
	name, typ, desc string
	required        bool
	readOnly        bool
}

// writeSchema lists a body's fields, nested ones by dotted path
// (spec.volumes[].name), as a table.
func (r *oaRenderer) writeSchema(b *bytes.Buffer, s *oaSchema) {
	s, name := r.resolve(s)
	var rows []fieldRow
	r.fields(&rows, "", s, map[string]bool{name: name != ""}, 0)
	if len(rows) == 0 {
		fmt.Fprintf(b, "%s\n\n", mdText(r.typeName(s)))
		return
	}
	b.WriteString("| Field | Type | Required | Description |\n|---|---|---|---|\n")
	for _, f := range rows {
		desc := f.desc
		if f.readOnly {
			desc = strings.TrimSpace("(read-only) " + desc)
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", f.name, mdCell(f.typ), yesNo(f.required), mdCell(desc))
	}
	b.WriteString("\n")
}

func (r *oaRenderer) fields(rows *[]fieldRow, prefix string, s *oaSchema, seen map[string]bool, depth int) {
	if s == nil || depth > maxDepth {
		return
	}
	if s.Items != nil && len(s.Properties) == 0 {
		item, name := r.resolve(s.Items)
		if name != "" && seen[name] {
			return
		}
		r.fields(rows, prefix+"[]", item, with(seen, name), depth+1)
		return
	}
	for _, p := range sortedKeys(s.Properties) {
		prop := s.Properties[p]
		resolved, name := r.resolve(prop)
		full := p
		if prefix != "" {
			full = prefix + "." + p
		}
		desc := prop.Description
		if desc == "" && resolved != nil {
			desc = resolved.Description
		}
		*rows = append(*rows, fieldRow{name: full, typ: r.typeName(prop), desc: desc,
			required: slices.Contains(s.Required, p), readOnly: prop.ReadOnly})
		if name != "" && seen[name] {
			continue // recursive type: listed once
		}
		r.fields(rows, full, resolved, with(seen, name), depth+1)
	}
}

func with(seen map[string]bool, name string) map[string]bool {
	if name == "" {
		return seen
	}
	out := make(map[string]bool, len(seen)+1)
	for k := range seen {
		out[k] = true
	}
	out[name] = true
	return out
}

const refPrefix = "#/components/schemas/"

// resolve follows a $ref into the components, returning the schema and its
// component name ("" when s is inline).
func (r *oaRenderer) resolve(s *oaSchema) (*oaSchema, string) {
	if s == nil || s.Ref == "" {
		return s, ""
	}
	name := strings.TrimPrefix(s.Ref, refPrefix)
	if t, ok := r.schemas[name]; ok {
		return t, name
	}
	return s, name
}

// typeName is a short description of a schema's type: string, integer
// (int64), array of Deployment, object, one of …
func (r *oaRenderer) typeName(s *oaSchema) string {
	if s == nil {
		return ""
	}
	if s.Ref != "" {
		return "object " + strings.TrimPrefix(s.Ref, refPrefix)
	}
	var types []string
	if len(s.Type) > 0 {
		var one string
		if json.Unmarshal(s.Type, &one) == nil {
			types = []string{one}
		} else {
			json.Unmarshal(s.Type, &types)
		}
	}
	types = slices.DeleteFunc(types, func(t string) bool { return t == "null" })
	t := strings.Join(types, " or ")
	switch {
	case t == "array" && s.Items != nil:
		t = "array of " + r.typeName(s.Items)
	case t == "object" && len(s.Properties) == 0 && len(s.AdditionalProperties) > 0 && string(s.AdditionalProperties) != "false":
		var ap oaSchema
		if json.Unmarshal(s.AdditionalProperties, &ap) == nil && (len(ap.Type) > 0 || ap.Ref != "") {
			t = "map of " + r.typeName(&ap)
		} else {
			t = "map"
		}
	case t == "" && len(s.OneOf)+len(s.AnyOf) > 0:
		var alts []string
		for _, a := range append(slices.Clone(s.OneOf), s.AnyOf...) {
			alts = append(alts, r.typeName(a))
		}
		t = "one of " + strings.Join(alts, ", ")
	}
	if s.Format != "" {
		t += " (" + s.Format + ")"
	}
	if len(s.Enum) > 0 {
		var vs []string
		for _, v := range s.Enum {
			vs = append(vs, fmt.Sprint(v))
		}
		t += ": " + strings.Join(vs, ", ")
	}
	return t
}

// writeMarkdown writes a description of the document, which OpenAPI defines
// as CommonMark, as it is, except that it cannot carry raw HTML.
func writeMarkdown(b *bytes.Buffer, text string) {
	if text = strings.TrimSpace(text); text != "" {
		fmt.Fprintf(b, "%s\n\n", outsideCode(text, func(s string) string { return strings.ReplaceAll(s, "<", "&lt;") }))
	}
}

// markdownCell is writeMarkdown's text for a table cell: one line, pipes
// outside code spans as entities.
func markdownCell(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	return outsideCode(text, strings.NewReplacer("<", "&lt;", "|", "&#124;").Replace)
}
