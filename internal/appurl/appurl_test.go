package appurl

import (
	"strings"
	"testing"
)

const envID = "env_k3xq7w2m9p4r8t6y1z0a"

func TestLabels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		app   App
		label string
	}{
		{App{EnvironmentID: envID}, "ide--env-k3xq7w2m9p4r8t6y1z0a"},
		{App{EnvironmentID: envID, Port: 3000}, "3000--env-k3xq7w2m9p4r8t6y1z0a"},
		{App{EnvironmentID: envID, Port: 65535}, "65535--env-k3xq7w2m9p4r8t6y1z0a"},
		{App{EnvironmentID: "env_1", Port: 1}, "1--env-1"},
	} {
		label, ok := tc.app.Label()
		if !ok || label != tc.label {
			t.Errorf("%+v: label %q %v, want %q", tc.app, label, ok, tc.label)
		}
		if got, ok := ParseLabel(label); !ok || got != tc.app {
			t.Errorf("ParseLabel(%q) = %+v %v, want %+v", label, got, ok, tc.app)
		}
		if len(label) > 63 {
			t.Errorf("%q is longer than a DNS label may be", label)
		}
	}
	for _, app := range []App{
		{EnvironmentID: "usr_k3xq"},                       // not an environment
		{EnvironmentID: "env_K3XQ"},                       // upper case
		{EnvironmentID: "env_"},                           // empty
		{EnvironmentID: "env_a-b"},                        // a hyphen would make labels ambiguous
		{EnvironmentID: "env_" + strings.Repeat("a", 41)}, // too long
		{EnvironmentID: envID, Port: 65536},
		{EnvironmentID: envID, Port: -1},
	} {
		if label, ok := app.Label(); ok {
			t.Errorf("%+v has label %q, want none", app, label)
		}
	}
	for _, label := range []string{
		"", "ide", "ide-env-k3xq", "ide--k3xq", "ide--env_k3xq", "ide--env-", "IDE--env-k3xq", "ide--env-K3XQ",
		"0--env-k3xq", "03000--env-k3xq", "65536--env-k3xq", "99999999--env-k3xq", "-1--env-k3xq", "x--env-k3xq",
		"ide--env-k3xq--x", "ide--env-k3.xq", "ide--env-" + strings.Repeat("a", 41),
	} {
		if app, ok := ParseLabel(label); ok {
			t.Errorf("ParseLabel(%q) = %+v, want no app", label, app)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	ide := App{EnvironmentID: envID}
	for _, tc := range []struct {
		access, wildcard string
		origin, pattern  string
		secure           bool
	}{
		// Loopback: *.localhost, which browsers resolve themselves, on the
		// same port.
		{"http://127.0.0.1:3000", "", "http://ide--env-k3xq7w2m9p4r8t6y1z0a.localhost:3000", "http://*.localhost:3000", false},
		{"http://[::1]:3000", "", "http://ide--env-k3xq7w2m9p4r8t6y1z0a.localhost:3000", "http://*.localhost:3000", false},
		{"http://localhost:8080", "", "http://ide--env-k3xq7w2m9p4r8t6y1z0a.localhost:8080", "http://*.localhost:8080", false},
		{"http://dev8.localhost:3000", "", "http://ide--env-k3xq7w2m9p4r8t6y1z0a.localhost:3000", "http://*.localhost:3000", false},
		// A name: its subdomains, default port left out.
		{"https://Dev8.Example.com", "", "https://ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com", "https://*.dev8.example.com", true},
		{"https://dev8.example.com:443/", "", "https://ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com", "https://*.dev8.example.com", true},
		{"http://dev8.example.com:8080", "", "http://ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com:8080", "http://*.dev8.example.com:8080", false},
		// A wildcard without a scheme takes the access URL's scheme and port.
		{"http://127.0.0.1:3000", "*.apps.example.com", "http://ide--env-k3xq7w2m9p4r8t6y1z0a.apps.example.com:3000", "http://*.apps.example.com:3000", false},
		{"http://127.0.0.1:3000", "*.apps.example.com:8443", "http://ide--env-k3xq7w2m9p4r8t6y1z0a.apps.example.com:8443", "http://*.apps.example.com:8443", false},
		// One with a scheme has its own port: behind a TLS proxy.
		{"http://127.0.0.1:3000", "https://*.apps.example.com", "https://ide--env-k3xq7w2m9p4r8t6y1z0a.apps.example.com", "https://*.apps.example.com", true},
		{"https://dev8.example.com", "HTTPS://*.Apps.Example.com:8443/", "https://ide--env-k3xq7w2m9p4r8t6y1z0a.apps.example.com:8443", "https://*.apps.example.com:8443", true},
	} {
		d, err := Resolve(tc.access, tc.wildcard)
		if err != nil {
			t.Errorf("Resolve(%q, %q): %v", tc.access, tc.wildcard, err)
			continue
		}
		if origin, ok := d.Origin(ide); !ok || origin != tc.origin || d.Pattern() != tc.pattern || d.Secure() != tc.secure {
			t.Errorf("Resolve(%q, %q): origin %q, pattern %q, secure %v; want %q, %q, %v", tc.access, tc.wildcard, origin, d.Pattern(), d.Secure(), tc.origin, tc.pattern, tc.secure)
		}
	}
	// An IP address that is not loopback has no names under it.
	if _, err := Resolve("http://192.0.2.10:3000", ""); err != ErrNoDomain {
		t.Errorf("an access URL on a LAN address: %v, want ErrNoDomain", err)
	}
	if _, err := Resolve("http://192.0.2.10:3000", "*.apps.example.com"); err != nil {
		t.Errorf("with a wildcard set: %v", err)
	}
	for _, bad := range []string{"dev8.example.com", "https://dev8.example.com/*", "*.", "*", "*.*.example.com", "*.10.0.0.1", "ftp://*.example.com",
		"*.exa_mple.com", "*.-bad.example.com", "*.example.com:0", "*.example.com:99999", "https://*.example.com/path"} {
		if _, err := ParseWildcard(bad); err == nil {
			t.Errorf("ParseWildcard(%q) accepted it", bad)
		}
	}
}

// TestMatch: a Host names an app only as a well-formed label directly
// under the domain, whatever its case, port or final dot; Claims takes
// every label with an app's "--" (for the apps' 404), and never the
// dashboard's own host.
func TestMatch(t *testing.T) {
	t.Parallel()
	d, err := Resolve("https://dev8.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]*App{
		"ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com":      {EnvironmentID: envID},
		"IDE--ENV-K3XQ7W2M9P4R8T6Y1Z0A.DEV8.EXAMPLE.COM.":     {EnvironmentID: envID},
		"8080--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com:443": {EnvironmentID: envID, Port: 8080},
		"dev8.example.com":                                    nil,
		"evil.dev8.example.com":                               nil,
		"x.ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com":    nil,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.example.com":           nil,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com.evil": nil,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.xdev8.example.com":     nil,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.localhost":             nil,
		"[::1]:3000":                 nil,
		"ide--nope.dev8.example.com": nil,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com:bad:bad": nil,
	} {
		got, ok := d.Match(host)
		if (want == nil) == ok || (want != nil && got != *want) {
			t.Errorf("Match(%q) = %+v %v, want %+v", host, got, ok, want)
		}
	}
	for host, want := range map[string]bool{
		"ide--nope.dev8.example.com":                     true,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com": true,
		"dev8.example.com":                               false,
		"www.dev8.example.com":                           false,
		"a--b.other.example.com":                         false,
		"a--b.x.dev8.example.com":                        false,
	} {
		if got := d.Claims(host); got != want {
			t.Errorf("Claims(%q) = %v, want %v", host, got, want)
		}
	}
	if (Domain{}).Claims("ide--env-a.localhost") {
		t.Error("no domain claims nothing")
	}
}
