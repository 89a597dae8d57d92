package httpmw

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
