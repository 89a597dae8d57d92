package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestPasswordFormsPost: every form of the pages with a password field
// says method="post", so that a browser submitting it without the page's
// script (which sends it to the API) puts the password in a request body,
// never in a URL — where it would land in history, logs and Referer.
func TestPasswordFormsPost(t *testing.T) {
	t.Parallel()
	forms := regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range names {
		page, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range forms.FindAllStringSubmatch(string(page), -1) {
			attrs, body := strings.ToLower(m[1]), strings.ToLower(m[2])
			if !strings.Contains(body, `type="password"`) {
				continue
			}
			checked++
			if !strings.Contains(attrs, `method="post"`) {
				t.Errorf("%s: a form with a password field without method=\"post\": <form%s>", name, m[1])
			}
		}
	}
	if checked < 3 { // sign-in, sign-up, the profile's password change
		t.Fatalf("found %d forms with a password field; the pattern is broken", checked)
	}
}
