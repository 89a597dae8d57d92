package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
)

// TestBaseImageIsAReference: a create's base_image is a template name or an
// image reference by the distribution grammar; a URL, a bad digest or other
// non-references are 400 VALIDATION_ERROR naming base_image, and nothing is
// created.
func TestBaseImageIsAReference(t *testing.T) {
	t.Parallel()
	f := newLifecycleFixture(t, nil)
	_, token := f.user("ada@example.com", "correct horse")
	for i, image := range []string{
		"http://evil.example/image", "https://registry.example/team/app:1", "evil.example/app@sha256:zzz",
		"app@sha256:0123", "app@md5:0123456789abcdef0123456789abcdef", "App:1", "app:", ":1", "app:tag with space",
		"app:1\n", " app:1", "../../etc/passwd", "app//x", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"app\x00:1", "-app", strings.Repeat("a", 300),
	} {
		body, _ := json.Marshal(map[string]any{"name": "img" + string(rune('a'+i)), "base_image": image})
		rec := f.do("POST", "/api/v1/environments", reqOpts{token: token, body: string(body)})
		wantError(t, rec, http.StatusBadRequest, httpapi.CodeValidation)
		if e := decodeError(t, rec); !strings.HasPrefix(e.Details, "base_image: ") {
			t.Errorf("base_image %q: details %q do not name the field", image, e.Details)
		}
	}
	if envs, _, err := f.db.ListEnvironments(t.Context(), store.EnvironmentFilter{}); err != nil || len(envs) != 0 {
		t.Fatalf("refused creates left %d environments (%v)", len(envs), err)
	}
	for i, image := range []string{"busybox", "busybox:1.36", "registry.example:5000/team/app:1.2-RC",
		"ghcr.io/acme/node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "nodejs"} {
		body, _ := json.Marshal(map[string]any{"name": "ok" + string(rune('a'+i)), "base_image": image})
		if rec := f.do("POST", "/api/v1/environments", reqOpts{token: token, body: string(body)}); rec.Code != http.StatusCreated {
			t.Errorf("base_image %q: %d %s", image, rec.Code, rec.Body)
		}
	}
}

// TestNamesWithControlCharacters: every name a person gives something
// passes one rule (httpapi.CheckLabel): control characters, line separators and
// direction overrides are 400 VALIDATION_ERROR naming the field, and
// nothing is stored.
func TestNamesWithControlCharacters(t *testing.T) {
	t.Parallel()
	box, err := secretbox.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := newLifecycleFixture(t, func(c *Config) { c.SecretBox = box })
	_, token := f.user("ada@example.com", "correct horse")
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for _, bad := range []string{"a\nb", "a\rb", "a\tb", "a\x00b", "a\x1b[31mb", "a\x7fb", "a\u0085b", "a\u2028b", "a\u2029b", "a\u202eb", "a\u2066b", "a\u200fb", "\ufeffab"} {
		for _, c := range []struct {
			method, path string
			body         map[string]any
		}{
			{"POST", "/api/v1/auth/signup", map[string]any{"email": "eve@example.com", "password": "correct horse", "name": bad}},
			{"PATCH", "/api/v1/auth/me", map[string]any{"name": bad}},
			{"POST", "/api/v1/tokens", map[string]any{"name": bad}},
			{"POST", "/api/v1/ssh-keys", map[string]any{"public_key": key, "name": bad}},
			{"PUT", "/api/v1/git", map[string]any{"name": bad}},
		} {
			body, _ := json.Marshal(c.body)
			o := reqOpts{body: string(body)}
			if c.path != "/api/v1/auth/signup" {
				o.token = token
			}
			rec := f.do(c.method, c.path, o)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("%s %s with name %q: %d %s", c.method, c.path, bad, rec.Code, rec.Body)
				continue
			}
			if e := decodeError(t, rec); e.Code != httpapi.CodeValidation || !strings.HasPrefix(e.Details, "name: ") {
				t.Errorf("%s %s with name %q: %+v, want VALIDATION_ERROR naming name", c.method, c.path, bad, e)
			}
		}
	}
	if _, err := f.db.GetUserByEmail(t.Context(), "eve@example.com"); err == nil {
		t.Error("a signup with a control character in its name made an account")
	}
	// Text that is only unusual passes: accents, scripts, emoji with joiners.
	for i, good := range []string{"Ada Lovelace", "Zoë Ñúñez", "李小龍", "👩\u200d💻 dev", "नमस्\u200dते"} {
		body, _ := json.Marshal(map[string]any{"name": good + string(rune('a'+i))})
		if rec := f.do("POST", "/api/v1/tokens", reqOpts{token: token, body: string(body)}); rec.Code != http.StatusCreated {
			t.Errorf("token name %q: %d %s", good, rec.Code, rec.Body)
		}
	}
}
