package httpmw

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/appurl"
)

func TestAllowHosts(t *testing.T) {
	t.Parallel()
	h := AllowHosts(slog.New(slog.NewTextHandler(io.Discard, nil)), Hosts{
		URLs:  []string{"https://Dev8.Example.com", "http://host.docker.internal:3000", "::not a url"},
		Names: []string{"dev8.corp.example", "Proxy.Example.NET."},
	})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for host, want := range map[string]int{
		"127.0.0.1:3000":          http.StatusNoContent,
		"127.0.0.53":              http.StatusNoContent,
		"[::1]:3000":              http.StatusNoContent,
		"10.1.2.3:443":            http.StatusNoContent,
		"localhost:3000":          http.StatusNoContent,
		"LOCALHOST":               http.StatusNoContent,
		"env-1.localhost:3000":    http.StatusNoContent,
		"dev8.example.com":        http.StatusNoContent,
		"dev8.example.com.:443":   http.StatusNoContent,
		"host.docker.internal":    http.StatusNoContent,
		"evil.example:3000":       http.StatusMisdirectedRequest,
		"localhost.evil.example":  http.StatusMisdirectedRequest,
		"dev8.example.com.evil":   http.StatusMisdirectedRequest,
		"xdev8.example.com":       http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:3000":   http.StatusMisdirectedRequest,
		"example.com":             http.StatusMisdirectedRequest,
		"evil.example:3000:extra": http.StatusMisdirectedRequest,
		"dev8.corp.example:8443":  http.StatusNoContent, // --allowed-hosts
		"proxy.example.net":       http.StatusNoContent,
		"PROXY.example.net.":      http.StatusNoContent,
		"x.dev8.corp.example":     http.StatusMisdirectedRequest,
		"corp.example":            http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/auth/signup", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d (%s)", host, w.Code, want, w.Body)
		}
	}
}

func TestParseAllowedHosts(t *testing.T) {
	t.Parallel()
	got, err := ParseAllowedHosts(" dev8.example.com, Proxy.Example.NET., ,10.0.0.5,intranet ")
	if err != nil || strings.Join(got, " ") != "dev8.example.com proxy.example.net 10.0.0.5 intranet" {
		t.Fatalf("ParseAllowedHosts = %q, %v", got, err)
	}
	for _, bad := range []string{"*.example.com", "https://dev8.example.com", "dev8.example.com:443", "dev8.example.com/x",
		"-dev8.example.com", "dev8..example.com", "dev 8.example.com", "dev8_x.example.com", strings.Repeat("a.", 127) + "com"} {
		if _, err := ParseAllowedHosts("ok.example.com," + bad); err == nil {
			t.Errorf("ParseAllowedHosts(%q) accepted it", bad)
		}
	}
}

// TestAllowHostsWorkspaceApps: with the workspace apps' domain under the
// access URL's host, well-formed app hosts pass and nothing else under it
// does (Hosts.Extra with appurl.Domain.Match).
func TestAllowHostsWorkspaceApps(t *testing.T) {
	t.Parallel()
	d, err := appurl.Resolve("https://dev8.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	match := func(hostport string) bool { _, ok := d.Match(hostport); return ok }
	h := AllowHosts(slog.New(slog.NewTextHandler(io.Discard, nil)), Hosts{URLs: []string{"https://dev8.example.com"}, Extra: match})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for host, want := range map[string]int{
		"dev8.example.com": http.StatusNoContent,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com":   http.StatusNoContent,
		"IDE--ENV-K3XQ7W2M9P4R8T6Y1Z0A.dev8.example.com.":  http.StatusNoContent,
		"3000--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com":  http.StatusNoContent,
		"ide--env-k3xq7w2m9p4r8t6y1z0a.dev8.example.com:8": http.StatusNoContent,
		"evil.dev8.example.com":                            http.StatusMisdirectedRequest,
		"ide--x.dev8.example.com":                          http.StatusMisdirectedRequest,
		"ide--env_k3xq.dev8.example.com":                   http.StatusMisdirectedRequest,
		"0--env-k3xq.dev8.example.com":                     http.StatusMisdirectedRequest,
		"65536--env-k3xq.dev8.example.com":                 http.StatusMisdirectedRequest,
		"a.ide--env-k3xq.dev8.example.com":                 http.StatusMisdirectedRequest,
		"ide--env-k3xq.dev8.example.com.evil":              http.StatusMisdirectedRequest,
		"ide--env-k3xq.example.com":                        http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d (%s)", host, w.Code, want, w.Body)
		}
	}
}
