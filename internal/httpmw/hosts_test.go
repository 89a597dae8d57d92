package httpmw

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAllowHosts(t *testing.T) {
	t.Parallel()
	h := AllowHosts(slog.New(slog.NewTextHandler(io.Discard, nil)), "https://Dev8.Example.com", "http://host.docker.internal:3000", "::not a url")(
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
