package httpmw

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// hstsMaxAge is one year, the usual minimum for preload lists. Subdomains
// are left out: they may be other services this server does not speak for.
const hstsMaxAge = "max-age=31536000"

// isIDEPath is code-server's territory, which sets its own framing policy.
func isIDEPath(p string) bool { return strings.HasPrefix(p, "/w/") }

// SecurityHeaders sets the browser protections every response gets. The
// IDE under /w/ is code-server's page: it keeps its own policy (the proxy
// sets frame-ancestors 'self'), since a strict CSP would break it.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if isIDEPath(r.URL.Path) {
			h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		} else {
			// The API serves data, never pages: nothing may load from it,
			// frame it or learn where its links led.
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		}
		if r.TLS != nil {
			// Only over TLS: an HSTS header on plain HTTP is ignored by
			// browsers, and promising HTTPS there would be a lie.
			h.Set("Strict-Transport-Security", hstsMaxAge)
		}
		next.ServeHTTP(w, r)
	})
}

// AppSecurityHeaders is SecurityHeaders for workspace apps' own origins:
// their pages are the workspace's (code-server's, or a server on one of its
// ports), which set their own policies, so only what never breaks a page is
// added (no sniffing, the referrer's origin only, HSTS over TLS). The
// proxy adds frame-ancestors 'self' to what it passes on.
func AppSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", hstsMaxAge)
		}
		next.ServeHTTP(w, r)
	})
}

// NormalizeOrigin checks that o is an origin (scheme://host[:port], nothing
// more) and returns it in the form browsers send in Origin.
func NormalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(o), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("CORS origin %q: want scheme://host[:port], such as https://app.example.com", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// ParseCORSOrigins parses a comma-separated allow-list of origins.
func ParseCORSOrigins(list string) ([]string, error) {
	var out []string
	var errs []error
	for _, o := range strings.Split(list, ",") {
		if strings.TrimSpace(o) == "" {
			continue
		}
		n, err := NormalizeOrigin(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, n)
	}
	return out, errors.Join(errs...)
}

// originSet is origins normalized; ones that are not origins are left out
// (the server's flags have refused them already).
func originSet(origins []string) map[string]bool {
	set := map[string]bool{}
	for _, o := range origins {
		if n, err := NormalizeOrigin(o); err == nil {
			set[n] = true
		}
	}
	return set
}

// CORS answers for the allowed origins.
const (
	corsAllowMethods  = "GET, HEAD, POST, PUT, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, X-Request-Id"
	corsExposeHeaders = "X-Request-Id, Retry-After, WWW-Authenticate"
)

// CORS lets origins (a web front end on another host) call the API with
// bearer tokens. Credentials (cookies) are never allowed cross origin:
// only the IDE takes the session cookie, and it is same-origin. Other
// origins get no CORS headers, so browsers keep them out; their preflights
// fall through to the router and fail there.
func CORS(origins []string) func(http.Handler) http.Handler {
	allowed := originSet(origins)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(allowed) == 0 || isIDEPath(r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			// The answer depends on Origin: caches must not serve one
			// origin's answer to another.
			h.Add("Vary", "Origin")
			origin := r.Header.Get("Origin")
			if origin == "" || !allowed[strings.ToLower(origin)] {
				next.ServeHTTP(w, r)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				h.Set("Access-Control-Allow-Methods", corsAllowMethods)
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			next.ServeHTTP(w, r)
		})
	}
}
