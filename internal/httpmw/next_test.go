package httpmw

import (
	"net/url"
	"strings"
	"testing"
)

func TestSafeNext(t *testing.T) {
	t.Parallel()
	// Kept from oauth.SafeNext, whose rule this is now.
	for in, want := range map[string]string{
		"":                                       "/",
		"/":                                      "/",
		"/environments?tab=mine":                 "/environments?tab=mine",
		"/w/env_1/ide/#frag":                     "/w/env_1/ide/#frag",
		"//evil.example/x":                       "/",
		"/\\evil.example":                        "/",
		"https://evil.example/":                  "/",
		"javascript:alert(1)":                    "/",
		"evil.example":                           "/",
		"/ok\r\nSet-Cookie: x=1":                 "/",
		"/%2F%2Fevil.example":                    "/%2F%2Fevil.example",
		"/a\\b":                                  "/",
		"http:/evil.example":                     "/",
		"/" + strings.Repeat("a", MaxNextLength): "/",
	} {
		if got := SafeNext(in, "/"); got != want {
			t.Errorf("SafeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSafeNextHostile: values an attacker puts in ?next= (as the browser
// decodes the query) never leave the site.
func TestSafeNextHostile(t *testing.T) {
	t.Parallel()
	const fallback = "/dashboard"
	for _, in := range []string{
		"/\\evil.example", "/\\/evil.example", "\\\\evil.example", "/\\\\evil.example",
		"/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "\t//evil.example", " //evil.example",
		"/ /evil.example", "/\x00/evil.example", "/\x0b/evil.example", "/\x0c/evil.example", "/\x1f/evil.example", "/\x7f/evil.example",
		"/\u0085/evil.example", "/\u00a0/evil.example", "/\u2028/evil.example", "/\u2029/evil.example", "/\u3000/evil.example",
		"/\u200b/evil.example", "/\u202e/evil.example", "/\ufeff/evil.example",
		"//evil.example", "///evil.example", "//\\evil.example", "/\\\t/evil.example",
		"https://evil.example", "HTTPS://evil.example", "http:evil.example", "http:/evil.example", "//user@evil.example",
		"javascript:alert(document.cookie)", "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:x",
		"evil.example", "./evil", "../evil", "?next=//evil", "#//evil", "@evil.example", "%2F%2Fevil.example",
		"/%09/evil.example", "/%0a/evil.example", "/%0D/evil.example", "/%00", "/%e2%80%a8/evil.example",
		"/\xff/evil.example", "/\xc0\xaf/evil.example",
		"/" + strings.Repeat("a", MaxNextLength),
	} {
		got := SafeNext(in, fallback)
		if got != fallback {
			t.Errorf("SafeNext(%q) = %q, want the fallback", in, got)
			continue
		}
	}
	// And every answer, hostile or not, resolves to this site.
	base, _ := url.Parse("https://dev8.example.com/signin")
	for _, in := range []string{"/dashboard", "/environments/env_1?x=1#y", "/%5Cevil.example", "/%2F%2Fevil.example", "/a/../b", "/w/env_1/ide/?folder=/workspace"} {
		got := SafeNext(in, fallback)
		if got != in {
			t.Errorf("SafeNext(%q) = %q, want it kept", in, got)
		}
		u, err := base.Parse(got)
		if err != nil || u.Host != base.Host || u.Scheme != base.Scheme {
			t.Errorf("SafeNext(%q) = %q resolves to %v (%v)", in, got, u, err)
		}
	}
}
