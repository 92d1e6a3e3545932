package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/berthpaas/berth/internal/auth"
)

// The API reference is rendered on the server from the OpenAPI document, so it
// needs no JavaScript, no CDN and no third-party renderer, and always matches
// the running server.

type apiDocsView struct {
	Layout
	Doc apiDoc
}

type apiDoc struct {
	Title       string
	Version     string
	Description richText
	Groups      []opGroup
	Count       int
	Err         string
}

type opGroup struct {
	ID, Name    string
	Description richText
	Ops         []operation
}

type operation struct {
	Anchor      string
	Method      string
	Path        string
	Summary     string
	Description richText
	Deprecated  bool
	Params      []paramRow
	Body        *bodyView
	Responses   []responseView
}

type paramRow struct {
	Name, In, Type string
	Required       bool
	Deprecated     bool
	Description    string
	Constraints    []string
}

type bodyView struct {
	Required    bool
	MediaType   string
	Description string
	Schema      schemaView
}

type responseView struct {
	Status      string
	Tone        string // ok|warn|fail|neutral
	Description string
	MediaType   string
	Schema      *schemaView
}

// schemaView is a schema flattened into rows, nested fields indented by Depth.
type schemaView struct {
	Name   string // the component name, when it came from a $ref
	Type   string
	Fields []fieldRow
}

type fieldRow struct {
	Name        string
	Depth       int
	Type        string
	Required    bool
	ReadOnly    bool
	Deprecated  bool
	Description string
	Constraints []string
}

// richText is plain text split into paragraphs, with `code` spans kept apart
// so the template can mark them up without trusting any HTML in the document.
type richText []paragraph

type paragraph []span

type span struct {
	Code bool
	Text string
}

func (u *ui) apiDocs(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v := apiDocsView{Layout: u.layout(r, &p, "API reference", "api")}
	if u.d.OpenAPI == nil {
		v.Doc.Err = "This server was started without an API description."
	} else if doc, err := buildAPIDoc(u.d.OpenAPI()); err != nil {
		u.d.Log.ErrorContext(r.Context(), "web: read OpenAPI document", "err", err)
		v.Doc.Err = "The API description could not be read. The raw document is still available."
	} else {
		v.Doc = doc
	}
	u.render(w, r, http.StatusOK, "apidocs", v)
}

// --- the subset of OpenAPI 3.1 the page shows ---

type oaDoc struct {
	Info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas       map[string]*oaSchema   `json:"schemas"`
		Parameters    map[string]*oaParam    `json:"parameters"`
		Responses     map[string]*oaResponse `json:"responses"`
		RequestBodies map[string]*oaBody     `json:"requestBodies"`
	} `json:"components"`
}

type oaOperation struct {
	OperationID string                 `json:"operationId"`
	Summary     string                 `json:"summary"`
	Description string                 `json:"description"`
	Tags        []string               `json:"tags"`
	Deprecated  bool                   `json:"deprecated"`
	Parameters  []*oaParam             `json:"parameters"`
	RequestBody *oaBody                `json:"requestBody"`
	Responses   map[string]*oaResponse `json:"responses"`
}

type oaParam struct {
	Ref         string    `json:"$ref"`
	Name        string    `json:"name"`
	In          string    `json:"in"`
	Description string    `json:"description"`
	Required    bool      `json:"required"`
	Deprecated  bool      `json:"deprecated"`
	Schema      *oaSchema `json:"schema"`
}

type oaBody struct {
	Ref         string             `json:"$ref"`
	Description string             `json:"description"`
	Required    bool               `json:"required"`
	Content     map[string]oaMedia `json:"content"`
}

type oaResponse struct {
	Ref         string             `json:"$ref"`
	Description string             `json:"description"`
	Content     map[string]oaMedia `json:"content"`
}

type oaMedia struct {
	Schema *oaSchema `json:"schema"`
}

type oaSchema struct {
	Ref              string          `json:"$ref"`
	Type             oaTypes         `json:"type"`
	Format           string          `json:"format"`
	Description      string          `json:"description"`
	Properties       oaProperties    `json:"properties"`
	Required         []string        `json:"required"`
	Items            *oaSchema       `json:"items"`
	Enum             []any           `json:"enum"`
	Const            any             `json:"const"`
	Default          any             `json:"default"`
	Pattern          string          `json:"pattern"`
	MinLength        *int64          `json:"minLength"`
	MaxLength        *int64          `json:"maxLength"`
	MinItems         *int64          `json:"minItems"`
	MaxItems         *int64          `json:"maxItems"`
	Minimum          *float64        `json:"minimum"`
	Maximum          *float64        `json:"maximum"`
	ExclusiveMinimum *float64        `json:"exclusiveMinimum"`
	ExclusiveMaximum *float64        `json:"exclusiveMaximum"`
	ReadOnly         bool            `json:"readOnly"`
	WriteOnly        bool            `json:"writeOnly"`
	Deprecated       bool            `json:"deprecated"`
	Nullable         bool            `json:"nullable"` // OpenAPI 3.0
	OneOf            []*oaSchema     `json:"oneOf"`
	AnyOf            []*oaSchema     `json:"anyOf"`
	AllOf            []*oaSchema     `json:"allOf"`
	AdditionalProps  json.RawMessage `json:"additionalProperties"`
}

// oaTypes is "type", a string or (3.1) a list of strings.
type oaTypes []string

func (t *oaTypes) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		return json.Unmarshal(b, (*[]string)(t))
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*t = oaTypes{s}
	return nil
}

// oaProperties keeps properties in document order, which is the order the
// API's authors chose (a Go map would scramble it).
type oaProperties struct {
	names []string
	byKey map[string]*oaSchema
}

func (p *oaProperties) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("properties: want an object")
	}
	p.byKey = map[string]*oaSchema{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		var s oaSchema
		if err := dec.Decode(&s); err != nil {
			return fmt.Errorf("property %s: %w", name, err)
		}
		if _, dup := p.byKey[name]; !dup {
			p.names = append(p.names, name)
		}
		p.byKey[name] = &s
	}
	return nil
}

var methodOrder = []string{"get", "post", "put", "patch", "delete", "head", "options", "trace"}

func buildAPIDoc(raw []byte) (apiDoc, error) {
	var d oaDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return apiDoc{}, err
	}
	out := apiDoc{Title: d.Info.Title, Version: d.Info.Version, Description: parseRichText(d.Info.Description)}
	if out.Title == "" {
		out.Title = "Berth API"
	}
	groups := map[string]*opGroup{}
	var order []string
	group := func(name string) *opGroup {
		if g, ok := groups[name]; ok {
			return g
		}
		g := &opGroup{ID: "tag-" + slug(name), Name: name}
		groups[name] = g
		order = append(order, name)
		return g
	}
	for _, t := range d.Tags {
		group(t.Name).Description = parseRichText(t.Description)
	}
	paths := make([]string, 0, len(d.Paths))
	for p := range d.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	r := resolver{d: &d}
	for _, path := range paths {
		item := d.Paths[path]
		var shared []*oaParam
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return apiDoc{}, fmt.Errorf("%s parameters: %w", path, err)
			}
		}
		for _, m := range methodOrder {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var o oaOperation
			if err := json.Unmarshal(raw, &o); err != nil {
				return apiDoc{}, fmt.Errorf("%s %s: %w", strings.ToUpper(m), path, err)
			}
			op := r.operation(m, path, o, shared)
			tag := "Other"
			if len(o.Tags) > 0 {
				tag = o.Tags[0]
			}
			g := group(tag)
			g.Ops = append(g.Ops, op)
			out.Count++
		}
	}
	for _, name := range order {
		if g := groups[name]; len(g.Ops) > 0 {
			out.Groups = append(out.Groups, *g)
		}
	}
	return out, nil
}

type resolver struct{ d *oaDoc }

func refName(ref string) string { return ref[strings.LastIndex(ref, "/")+1:] }

func (r resolver) schema(s *oaSchema) (*oaSchema, string) {
	name := ""
	for i := 0; s != nil && s.Ref != "" && i < 8; i++ {
		name = refName(s.Ref)
		s = r.d.Components.Schemas[name]
	}
	return s, name
}

func (r resolver) operation(method, path string, o oaOperation, shared []*oaParam) operation {
	op := operation{Method: strings.ToUpper(method), Path: path, Summary: o.Summary, Description: parseRichText(o.Description), Deprecated: o.Deprecated}
	op.Anchor = "op-" + slug(o.OperationID)
	if o.OperationID == "" {
		op.Anchor = "op-" + slug(method+"-"+path)
	}
	if op.Summary == "" {
		op.Summary = op.Method + " " + path
	}
	seen := map[string]bool{}
	for _, p := range append(append([]*oaParam{}, o.Parameters...), shared...) {
		if p != nil && p.Ref != "" {
			p = r.d.Components.Parameters[refName(p.Ref)]
		}
		if p == nil || seen[p.In+":"+p.Name] {
			continue
		}
		seen[p.In+":"+p.Name] = true
		s, _ := r.schema(p.Schema)
		op.Params = append(op.Params, paramRow{
			Name: p.Name, In: p.In, Required: p.Required || p.In == "path", Deprecated: p.Deprecated,
			Description: p.Description, Type: r.typeName(p.Schema), Constraints: constraints(s),
		})
	}
	if b := o.RequestBody; b != nil {
		if b.Ref != "" {
			b = r.d.Components.RequestBodies[refName(b.Ref)]
		}
		if b != nil {
			mt, m := pickMedia(b.Content)
			bv := &bodyView{Required: b.Required, MediaType: mt, Description: b.Description}
			if m.Schema != nil {
				bv.Schema = r.schemaView(m.Schema, true)
			}
			op.Body = bv
		}
	}
	codes := make([]string, 0, len(o.Responses))
	for c := range o.Responses {
		codes = append(codes, c)
	}
	sort.Strings(codes) // "200" < "4XX" < "default"
	for _, c := range codes {
		resp := o.Responses[c]
		if resp != nil && resp.Ref != "" {
			resp = r.d.Components.Responses[refName(resp.Ref)]
		}
		if resp == nil {
			continue
		}
		rv := responseView{Status: c, Tone: statusTone(c), Description: resp.Description}
		if mt, m := pickMedia(resp.Content); m.Schema != nil {
			sv := r.schemaView(m.Schema, false)
			rv.MediaType, rv.Schema = mt, &sv
		}
		op.Responses = append(op.Responses, rv)
	}
	return op
}

// pickMedia prefers JSON flavours, then any content type, deterministically.
func pickMedia(c map[string]oaMedia) (string, oaMedia) {
	for _, mt := range []string{"application/json", "application/problem+json"} {
		if m, ok := c[mt]; ok {
			return mt, m
		}
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "", oaMedia{}
	}
	return keys[0], c[keys[0]]
}

func statusTone(code string) string {
	switch {
	case strings.HasPrefix(code, "2"):
		return "ok"
	case strings.HasPrefix(code, "3"):
		return "info"
	case strings.HasPrefix(code, "4"):
		return "warn"
	case strings.HasPrefix(code, "5"):
		return "fail"
	}
	return "neutral"
}

// maxSchemaDepth stops recursive schemas (a tree of nodes) from unrolling forever.
const maxSchemaDepth = 4

// schemaView flattens s. Request bodies leave out read-only fields, which a
// client does not send.
func (r resolver) schemaView(s *oaSchema, request bool) schemaView {
	res, name := r.schema(s)
	v := schemaView{Name: name, Type: r.typeName(s)}
	if res == nil {
		return v
	}
	r.fields(&v.Fields, res, 0, request, map[*oaSchema]bool{})
	return v
}

func (r resolver) fields(out *[]fieldRow, s *oaSchema, depth int, request bool, active map[*oaSchema]bool) {
	s = r.objectOf(s)
	if s == nil || depth >= maxSchemaDepth || active[s] {
		return
	}
	active[s] = true
	defer delete(active, s)
	req := map[string]bool{}
	for _, n := range s.Required {
		req[n] = true
	}
	for _, name := range s.Properties.names {
		ps := s.Properties.byKey[name]
		res, _ := r.schema(ps)
		if res == nil {
			res = &oaSchema{}
		}
		if request && res.ReadOnly || !request && res.WriteOnly {
			continue
		}
		desc := ps.Description
		if desc == "" {
			desc = res.Description
		}
		*out = append(*out, fieldRow{
			Name: name, Depth: depth, Type: r.typeName(ps), Required: req[name],
			ReadOnly: res.ReadOnly, Deprecated: res.Deprecated, Description: desc, Constraints: constraints(res),
		})
		r.fields(out, res, depth+1, request, active)
	}
}

// objectOf returns the object schema whose properties describe s: s itself,
// the items of an array of objects, or the merged members of an allOf.
func (r resolver) objectOf(s *oaSchema) *oaSchema {
	s, _ = r.schema(s)
	if s == nil {
		return nil
	}
	if len(s.Properties.names) > 0 {
		return s
	}
	if s.Items != nil {
		return r.objectOf(s.Items)
	}
	if len(s.AllOf) > 0 {
		merged := &oaSchema{Properties: oaProperties{byKey: map[string]*oaSchema{}}}
		for _, part := range s.AllOf {
			if p := r.objectOf(part); p != nil {
				for _, n := range p.Properties.names {
					if _, dup := merged.Properties.byKey[n]; !dup {
						merged.Properties.names = append(merged.Properties.names, n)
					}
					merged.Properties.byKey[n] = p.Properties.byKey[n]
				}
				merged.Required = append(merged.Required, p.Required...)
			}
		}
		return merged
	}
	return nil
}

// typeName describes a schema's type the way people write it: string,
// integer (int64), array of Project, string | null, Project.
func (r resolver) typeName(s *oaSchema) string {
	return r.typeNameDepth(s, 0)
}

func (r resolver) typeNameDepth(s *oaSchema, depth int) string {
	if s == nil {
		return "any"
	}
	if depth > 4 {
		return "…"
	}
	if s.Ref != "" {
		return refName(s.Ref)
	}
	var alts []*oaSchema
	sep := " | "
	switch {
	case len(s.OneOf) > 0:
		alts = s.OneOf
	case len(s.AnyOf) > 0:
		alts = s.AnyOf
	case len(s.AllOf) > 0:
		alts, sep = s.AllOf, " & "
	}
	if alts != nil {
		names := make([]string, len(alts))
		for i, a := range alts {
			names[i] = r.typeNameDepth(a, depth+1)
		}
		return strings.Join(names, sep)
	}
	var parts []string
	for _, t := range s.Type {
		switch t {
		case "array":
			parts = append(parts, "array of "+r.typeNameDepth(s.Items, depth+1))
		case "object":
			if len(s.AdditionalProps) > 0 && s.AdditionalProps[0] == '{' {
				var ap oaSchema
				if json.Unmarshal(s.AdditionalProps, &ap) == nil {
					parts = append(parts, "map of "+r.typeNameDepth(&ap, depth+1))
					continue
				}
			}
			parts = append(parts, "object")
		default:
			if s.Format != "" && t != "null" {
				t += " (" + s.Format + ")"
			}
			parts = append(parts, t)
		}
	}
	if s.Nullable {
		parts = append(parts, "null")
	}
	if len(parts) == 0 {
		if len(s.Properties.names) > 0 {
			return "object"
		}
		return "any"
	}
	return strings.Join(parts, " | ")
}

// constraints lists what a schema allows, in words.
func constraints(s *oaSchema) []string {
	if s == nil {
		return nil
	}
	var c []string
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	switch {
	case s.MinLength != nil && s.MaxLength != nil:
		c = append(c, fmt.Sprintf("%d–%d characters", *s.MinLength, *s.MaxLength))
	case s.MinLength != nil:
		c = append(c, fmt.Sprintf("at least %d characters", *s.MinLength))
	case s.MaxLength != nil:
		c = append(c, fmt.Sprintf("at most %d characters", *s.MaxLength))
	}
	if s.Minimum != nil {
		c = append(c, "≥ "+num(*s.Minimum))
	}
	if s.ExclusiveMinimum != nil {
		c = append(c, "> "+num(*s.ExclusiveMinimum))
	}
	if s.Maximum != nil {
		c = append(c, "≤ "+num(*s.Maximum))
	}
	if s.ExclusiveMaximum != nil {
		c = append(c, "< "+num(*s.ExclusiveMaximum))
	}
	if s.MinItems != nil {
		c = append(c, fmt.Sprintf("at least %d items", *s.MinItems))
	}
	if s.MaxItems != nil {
		c = append(c, fmt.Sprintf("at most %d items", *s.MaxItems))
	}
	if s.Pattern != "" {
		c = append(c, "pattern "+s.Pattern)
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			vals[i] = jsonText(e)
		}
		c = append(c, "one of "+strings.Join(vals, ", "))
	}
	if s.Const != nil {
		c = append(c, "always "+jsonText(s.Const))
	}
	if s.Default != nil {
		c = append(c, "default "+jsonText(s.Default))
	}
	return c
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

var slugRE = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

func slug(s string) string {
	return strings.Trim(slugRE.ReplaceAllString(s, "-"), "-")
}

// parseRichText splits text into paragraphs at blank lines and marks `code`.
func parseRichText(s string) richText {
	var out richText
	for _, para := range strings.Split(strings.ReplaceAll(strings.TrimSpace(s), "\r\n", "\n"), "\n\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		var p paragraph
		for i, part := range strings.Split(para, "`") {
			if part != "" {
				// Odd parts sit between backticks; an unclosed backtick leaves
				// the rest as plain text.
				p = append(p, span{Code: i%2 == 1, Text: part})
			}
		}
		out = append(out, p)
	}
	return out
}
