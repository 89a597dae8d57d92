package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"

	"dev8.dev/dev8/internal/catalog"
)

//go:embed docs/*.md
var docFiles embed.FS

// docPage is one page of the docs at /docs/{slug}.
type docPage struct {
	Slug, Title string
	HTML        template.HTML
}

// docOrder is the docs' table of contents.
var docOrder = []struct{ slug, title string }{
	{"getting-started", "Getting started"},
	{"cli", "CLI reference"},
	{"api", "API reference"},
	{"templates", "Templates"},
	{"runtimes", "Runtimes"},
	{"configuration", "Configuration"},
	{"security", "Security model"},
	{"self-hosting", "Self-hosting"},
}

// markdown renders the docs: GitHub's tables, ids on headings. Raw HTML in
// the Markdown is not passed through (goldmark's default).
var markdown = goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithParserOptions(parser.WithAutoHeadingID()))

func renderMarkdown(src string) (template.HTML, error) {
	var buf bytes.Buffer
	if err := markdown.Convert([]byte(src), &buf); err != nil {
		return "", err
	}
	return template.HTML(buf.String()), nil // goldmark escapes everything it does not render itself
}

// loadDocs renders every page once, at start; openAPI is rendered as the
// API reference.
func loadDocs(openAPI []byte) (map[string]*docPage, []*docPage, error) {
	bySlug := map[string]*docPage{}
	var toc []*docPage
	for _, d := range docOrder {
		src, err := docFiles.ReadFile("docs/" + d.slug + ".md")
		if err != nil {
			return nil, nil, err
		}
		text := string(src)
		switch d.slug {
		case "templates":
			text += catalogMarkdown()
		}
		html, err := renderMarkdown(text)
		if err != nil {
			return nil, nil, fmt.Errorf("docs %s: %w", d.slug, err)
		}
		if d.slug == "api" {
			ref, err := renderOpenAPI(openAPI)
			if err != nil {
				return nil, nil, fmt.Errorf("docs: API reference: %w", err)
			}
			html += ref
		}
		p := &docPage{Slug: d.slug, Title: d.title, HTML: html}
		bySlug[d.slug] = p
		toc = append(toc, p)
	}
	return bySlug, toc, nil
}

// catalogMarkdown lists the templates and instance types an installation
// is seeded with (internal/catalog), so the page cannot drift from them.
func catalogMarkdown() string {
	var b strings.Builder
	b.WriteString("\n\n## Templates\n\n| name | | default size | ports | tags |\n|---|---|---|---|---|\n")
	for _, t := range catalog.Templates {
		var ports []string
		for _, p := range t.DefaultPorts {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
		popular := ""
		if t.IsPopular {
			popular = " (popular)"
		}
		fmt.Fprintf(&b, "| `%s` | **%s**%s: %s | %s vCPU, %d GB, %d GB disk | %s | %s |\n", t.Name, t.DisplayName, popular, t.Description,
			catalog.FormatCPU(t.DefaultCPU), t.DefaultMemory, t.DefaultStorage, orDash(strings.Join(ports, ", ")), strings.Join(t.Tags, ", "))
	}
	b.WriteString("\n## Instance types\n\n| name | | vCPU | memory | storage |\n|---|---|---|---|---|\n")
	for _, it := range catalog.InstanceTypes {
		fmt.Fprintf(&b, "| `%s` | **%s**: %s | %s | %d GB | %d GB |\n", it.Name, it.DisplayName, it.Description, catalog.FormatCPU(it.CPUCores), it.MemoryGB, it.StorageGB)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// The part of an OpenAPI 3 document the reference shows.
type oaDoc struct {
	Tags       []struct{ Name, Description string }  `json:"tags"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters map[string]oaParam    `json:"parameters"`
		Responses  map[string]oaResponse `json:"responses"`
		Schemas    map[string]oaSchema   `json:"schemas"`
	} `json:"components"`
}

type oaParam struct {
	Ref         string   `json:"$ref"`
	Name        string   `json:"name"`
	In          string   `json:"in"`
	Required    bool     `json:"required"`
	Description string   `json:"description"`
	Schema      oaSchema `json:"schema"`
}

type oaSchema struct {
	Ref         string              `json:"$ref"`
	Type        string              `json:"type"`
	Description string              `json:"description"`
	Required    []string            `json:"required"`
	Properties  map[string]oaSchema `json:"properties"`
	Items       *oaSchema           `json:"items"`
	Enum        []any               `json:"enum"`
	Minimum     *float64            `json:"minimum"`
	Maximum     *float64            `json:"maximum"`
	MinLength   *int                `json:"minLength"`
	MaxLength   *int                `json:"maxLength"`
	Default     any                 `json:"default"`
}

type oaResponse struct {
	Ref         string                               `json:"$ref"`
	Description string                               `json:"description"`
	Content     map[string]struct{ Schema oaSchema } `json:"content"`
}

type oaOperation struct {
	OperationID string    `json:"operationId"`
	Tags        []string  `json:"tags"`
	Summary     string    `json:"summary"`
	Description string    `json:"description"`
	Parameters  []oaParam `json:"parameters"`
	Security    *[]any    `json:"security"`
	RequestBody *struct {
		Content map[string]struct{ Schema oaSchema } `json:"content"`
	} `json:"requestBody"`
	Responses map[string]oaResponse `json:"responses"`
}

// What the reference template gets.
type refTag struct {
	Name        string
	Description string
	Operations  []refOperation
}

type refOperation struct {
	ID, Method, Path, Summary string
	Description               template.HTML
	Public                    bool
	Params                    []refField
	Body                      string // the body schema's name
	BodyFields                []refField
	Responses                 []refResponse
}

type refField struct {
	Name, In, Type, Bounds string
	Required               bool
	Description            template.HTML
}

type refResponse struct {
	Status      string
	Description template.HTML
	Schema      string
}

var methodOrder = map[string]int{"get": 0, "head": 1, "post": 2, "put": 3, "patch": 4, "delete": 5, "options": 6, "trace": 7}

func renderOpenAPI(raw []byte) (template.HTML, error) {
	var doc oaDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", err
	}
	tags := map[string]*refTag{}
	var order []*refTag
	for _, t := range doc.Tags {
		rt := &refTag{Name: t.Name, Description: t.Description}
		tags[t.Name] = rt
		order = append(order, rt)
	}
	for path, item := range doc.Paths {
		var shared []oaParam
		if p, ok := item["parameters"]; ok {
			if err := json.Unmarshal(p, &shared); err != nil {
				return "", fmt.Errorf("%s parameters: %w", path, err)
			}
		}
		for method, rawOp := range item {
			if _, ok := methodOrder[method]; !ok {
				continue
			}
			var op oaOperation
			if err := json.Unmarshal(rawOp, &op); err != nil {
				return "", fmt.Errorf("%s %s: %w", method, path, err)
			}
			ro, err := doc.operation(strings.ToUpper(method), path, op, shared)
			if err != nil {
				return "", err
			}
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			rt := tags[tag]
			if rt == nil {
				rt = &refTag{Name: tag}
				tags[tag] = rt
				order = append(order, rt)
			}
			rt.Operations = append(rt.Operations, ro)
		}
	}
	var shown []*refTag
	for _, t := range order {
		if len(t.Operations) == 0 {
			continue
		}
		sort.Slice(t.Operations, func(i, j int) bool {
			a, b := t.Operations[i], t.Operations[j]
			if a.Path != b.Path {
				return a.Path < b.Path
			}
			return methodOrder[strings.ToLower(a.Method)] < methodOrder[strings.ToLower(b.Method)]
		})
		shown = append(shown, t)
	}
	var buf bytes.Buffer
	if err := apiRefTemplate.Execute(&buf, shown); err != nil {
		return "", err
	}
	return template.HTML(buf.String()), nil
}

func (doc *oaDoc) operation(method, path string, op oaOperation, shared []oaParam) (refOperation, error) {
	desc, err := renderMarkdown(op.Description)
	if err != nil {
		return refOperation{}, err
	}
	ro := refOperation{ID: op.OperationID, Method: method, Path: path, Summary: op.Summary, Description: desc,
		Public: op.Security != nil && len(*op.Security) == 0}
	for _, p := range append(append([]oaParam{}, shared...), op.Parameters...) {
		if p.Ref != "" {
			p = doc.Components.Parameters[refName(p.Ref)]
		}
		f, err := doc.field(p.Name, p.Schema, p.Required, p.Description)
		if err != nil {
			return refOperation{}, err
		}
		f.In = p.In
		ro.Params = append(ro.Params, f)
	}
	if op.RequestBody != nil {
		if mt, ok := op.RequestBody.Content["application/json"]; ok {
			s := mt.Schema
			ro.Body = "JSON object"
			if s.Ref != "" {
				ro.Body = refName(s.Ref)
				s = doc.Components.Schemas[ro.Body]
			}
			names := make([]string, 0, len(s.Properties))
			for n := range s.Properties {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				f, err := doc.field(n, s.Properties[n], contains(s.Required, n), s.Properties[n].Description)
				if err != nil {
					return refOperation{}, err
				}
				ro.BodyFields = append(ro.BodyFields, f)
			}
		}
	}
	codes := make([]string, 0, len(op.Responses))
	for c := range op.Responses {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		r := op.Responses[c]
		if r.Ref != "" {
			r = doc.Components.Responses[refName(r.Ref)]
		}
		d, err := renderMarkdown(r.Description)
		if err != nil {
			return refOperation{}, err
		}
		rr := refResponse{Status: c, Description: d}
		for _, mt := range r.Content {
			rr.Schema = schemaName(mt.Schema)
		}
		ro.Responses = append(ro.Responses, rr)
	}
	return ro, nil
}

func (doc *oaDoc) field(name string, s oaSchema, required bool, description string) (refField, error) {
	d, err := renderMarkdown(description)
	if err != nil {
		return refField{}, err
	}
	if s.Ref != "" {
		if target, ok := doc.Components.Schemas[refName(s.Ref)]; ok && target.Type != "object" {
			s = target
		}
	}
	var bounds []string
	if s.Minimum != nil {
		bounds = append(bounds, fmt.Sprintf("≥ %g", *s.Minimum))
	}
	if s.Maximum != nil {
		bounds = append(bounds, fmt.Sprintf("≤ %g", *s.Maximum))
	}
	if s.MinLength != nil {
		bounds = append(bounds, fmt.Sprintf("at least %d characters", *s.MinLength))
	}
	if s.MaxLength != nil {
		bounds = append(bounds, fmt.Sprintf("at most %d characters", *s.MaxLength))
	}
	if len(s.Enum) > 0 {
		var vs []string
		for _, v := range s.Enum {
			vs = append(vs, fmt.Sprint(v))
		}
		bounds = append(bounds, "one of "+strings.Join(vs, ", "))
	}
	if s.Default != nil {
		bounds = append(bounds, fmt.Sprintf("default %v", s.Default))
	}
	return refField{Name: name, Type: schemaName(s), Required: required, Bounds: strings.Join(bounds, "; "), Description: d}, nil
}

func schemaName(s oaSchema) string {
	switch {
	case s.Ref != "":
		return refName(s.Ref)
	case s.Type == "array" && s.Items != nil:
		return schemaName(*s.Items) + "[]"
	case s.Type != "":
		return s.Type
	}
	return "any"
}

func refName(ref string) string { return ref[strings.LastIndexByte(ref, '/')+1:] }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var apiRefTemplate = template.Must(template.New("apiref").Parse(`
<h2 id="reference">Routes</h2>
<p>Rendered from <a href="/api/v1/openapi.json">the OpenAPI document</a> this server serves.</p>
<nav aria-label="API sections" class="doc-tags">{{range .}}<a href="#tag-{{.Name}}">{{.Name}}</a> {{end}}</nav>
{{range .}}
<section class="api-tag" aria-labelledby="tag-{{.Name}}">
<h3 id="tag-{{.Name}}">{{.Name}}</h3>
{{with .Description}}<p class="muted">{{.}}</p>{{end}}
{{range .Operations}}
<article class="op" id="op-{{.ID}}">
<h4><span class="method" data-method="{{.Method}}">{{.Method}}</span> <code>{{.Path}}</code></h4>
<p class="op-summary"><strong>{{.Summary}}</strong>{{if .Public}} <span class="tag">no authentication</span>{{end}}</p>
{{.Description}}
{{if .Params}}<table class="doc-table"><caption>Parameters</caption><thead><tr><th scope="col">name</th><th scope="col">in</th><th scope="col">type</th><th scope="col">description</th></tr></thead><tbody>
{{range .Params}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td>{{.Type}}{{with .Bounds}}<br><small>{{.}}</small>{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</tbody></table>{{end}}
{{if .Body}}<table class="doc-table"><caption>Body: {{.Body}}</caption><thead><tr><th scope="col">field</th><th scope="col">type</th><th scope="col">description</th></tr></thead><tbody>
{{range .BodyFields}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.Type}}{{with .Bounds}}<br><small>{{.}}</small>{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</tbody></table>{{end}}
<table class="doc-table"><caption>Responses</caption><thead><tr><th scope="col">status</th><th scope="col">description</th></tr></thead><tbody>
{{range .Responses}}<tr><td><code>{{.Status}}</code>{{with .Schema}}<br><small>{{.}}</small>{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</tbody></table>
</article>
{{end}}
</section>
{{end}}`))

// serveDocs renders /docs and /docs/{slug}.
func (s *Site) serveDocs(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "slug")
	if slug == "" {
		slug = docOrder[0].slug
	}
	p, ok := s.docs[slug]
	if !ok {
		s.NotFound(w, r)
		return
	}
	data := s.newPageData(r, "docs", p.Title)
	data.Doc, data.DocTOC = p, s.docTOC
	s.render(w, r, http.StatusOK, "docs", data)
}
