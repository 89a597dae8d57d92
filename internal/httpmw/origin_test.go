package httpmw

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func handshake(origin string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://dev8.internal:3000/api/v1/environments/e/pty", nil)
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func TestCheckWebsocketOrigin(t *testing.T) {
	t.Parallel()
	c := NewCookies(make([]byte, 32), []string{"https://app.example.com"})
	c.SetPublicURL("https://dev8.example.com/")
	for origin, ok := range map[string]bool{
		"":                                       true, // a program
		"http://dev8.internal:3000":              true, // the request's own host
		"https://DEV8.internal:3000":             true,
		"https://dev8.example.com":               true, // the access URL, Host rewritten by a proxy
		"http://dev8.example.com":                false,
		"https://dev8.example.com:8443":          false,
		"https://app.example.com":                false, // CORS origins carry no CSRF token into a websocket
		"https://evil.example":                   false,
		"http://dev8.internal":                   false,
		"http://dev8.internal:3001":              false,
		"null":                                   false,
		"dev8.internal:3000":                     false,
		"ftp://dev8.internal:3000":               false,
		"http://dev8.internal:3000.evil.example": false,
	} {
		if err := c.CheckWebsocketOrigin(handshake(origin)); (err == nil) != ok {
			t.Errorf("Origin %q: %v, want ok=%v", origin, err, ok)
		}
	}
}

func TestCheckWebsocketHandshake(t *testing.T) {
	t.Parallel()
	if err := CheckWebsocketHandshake(handshake("")); err != nil {
		t.Fatalf("a good handshake: %v", err)
	}
	for name, mutate := range map[string]func(r *http.Request){
		"plain GET":      func(r *http.Request) { r.Header.Del("Connection"); r.Header.Del("Upgrade") },
		"no Upgrade":     func(r *http.Request) { r.Header.Del("Upgrade") },
		"other protocol": func(r *http.Request) { r.Header.Set("Upgrade", "h2c") },
		"POST":           func(r *http.Request) { r.Method = http.MethodPost },
		"HTTP/1.0":       func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 1, 0 },
		"version 8":      func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") },
		"no key":         func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") },
		"two keys":       func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") },
		"short key":      func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") },
		"key not base64": func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "not base64 at all!!!!!!!") },
	} {
		r := handshake("")
		mutate(r)
		if err := CheckWebsocketHandshake(r); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
}

// TestRefuseCrossOrigin: the rule before routing, on its own.
func TestRefuseCrossOrigin(t *testing.T) {
	t.Parallel()
	c := NewCookies(make([]byte, 32), nil)
	a := NewAuth(AuthConfig{Cookies: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := a.RefuseCrossOrigin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	serve := func(r *http.Request) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	post := func(h map[string]string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://dev8.internal:3000/api/v1/auth/signup", nil)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return r
	}
	for name, c := range map[string]struct {
		r    *http.Request
		want int
	}{
		"program POST":                {post(nil), http.StatusNoContent},
		"same-origin POST":            {post(map[string]string{"Sec-Fetch-Site": "same-origin"}), http.StatusNoContent},
		"cross-site POST":             {post(map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden},
		"cross-origin POST, no Fetch": {post(map[string]string{"Origin": "https://evil.example"}), http.StatusForbidden},
		"GET from anywhere":           {httptest.NewRequest(http.MethodGet, "http://dev8.internal:3000/", nil), http.StatusNoContent},
		"own websocket":               {handshake("http://dev8.internal:3000"), http.StatusNoContent},
		"program websocket":           {handshake(""), http.StatusNoContent},
		"cross-origin websocket":      {handshake("https://evil.example"), http.StatusForbidden},
		"cross-origin other upgrade": {func() *http.Request {
			r := handshake("https://evil.example")
			r.Header.Set("Upgrade", "h2c")
			return r
		}(), http.StatusForbidden},
		"Connection split over two lines": {func() *http.Request {
			r := handshake("https://evil.example")
			r.Header["Connection"] = []string{"keep-alive", "Upgrade"}
			return r
		}(), http.StatusForbidden},
	} {
		if got := serve(c.r); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
}
