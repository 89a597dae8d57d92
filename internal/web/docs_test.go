package web

import (
	"regexp"
	"strings"
	"testing"

	"os"
)

// Every link between docs pages names a page and a heading that exist.
func TestDocsLinksResolve(t *testing.T) {
	t.Parallel()
	pages, toc, err := loadDocs(openAPIDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(toc) != len(docOrder) {
		t.Fatalf("%d pages in the table of contents, want %d", len(toc), len(docOrder))
	}
	ids := map[string]map[string]bool{}
	idRE := regexp.MustCompile(` id="([^"]+)"`)
	for slug, p := range pages {
		ids[slug] = map[string]bool{}
		for _, m := range idRE.FindAllStringSubmatch(string(p.HTML), -1) {
			ids[slug][m[1]] = true
		}
	}
	linkRE := regexp.MustCompile(`href="(/docs/[^"#]*)(?:#([^"]*))?"`)
	for slug, p := range pages {
		if strings.Contains(string(p.HTML), `href="#`) && slug != "api" {
			t.Errorf("%s: a link to an anchor of the README that no page has", slug)
		}
		for _, m := range linkRE.FindAllStringSubmatch(string(p.HTML), -1) {
			target := strings.TrimPrefix(m[1], "/docs/")
			if _, ok := pages[target]; !ok {
				t.Errorf("%s: link to %s: no such page", slug, m[0])
				continue
			}
			if m[2] != "" && !ids[target][m[2]] {
				t.Errorf("%s: link to %s: no such heading", slug, m[0])
			}
		}
	}
}

// The API reference shows every operation of the OpenAPI document, and
// escapes what it renders.
func TestOpenAPIReference(t *testing.T) {
	t.Parallel()
	html, err := renderOpenAPI(openAPIDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="op-changePassword"`, `id="op-updateMe"`, `id="op-listUsers"`, `<code>/api/v1/auth/password</code>`, "new_password"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the reference has no %s", want)
		}
	}
	doc := []byte(`{"paths":{"/x":{"get":{"operationId":"x","summary":"<script>alert(1)</script>","description":"<img src=x onerror=alert(1)>","responses":{"200":{"description":"ok"}}}}}}`)
	html, err = renderOpenAPI(doc)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(html), "<script>") || strings.Contains(string(html), "<img") {
		t.Errorf("markup in the document reached the page:\n%s", html)
	}
}

func TestInitials(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, email, want string }{
		{"Ada Lovelace", "ada@example.com", "AL"},
		{"  grace  brewster hopper ", "g@example.com", "GB"},
		{"", "mallory@example.com", "M"},
		{"Élodie", "e@example.com", "É"},
		{"", "", "?"},
		{"!!! ???", "_x@example.com", "X"},
	} {
		if got := initials(c.name, c.email); got != c.want {
			t.Errorf("initials(%q, %q) = %q, want %q", c.name, c.email, got, c.want)
		}
	}
}

// openAPIDocument is the API's document as the server hands it to New. It
// is read from the API's source, not imported: web never imports api.
func openAPIDocument(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("../api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
