package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/ratelimit"
)

// Rate limit defaults. An agent reports every 30 s and a CLI user makes a
// few requests a second, so the per-principal bucket only bites on runaway
// scripts. The per-address bucket is larger because an address may be a
// whole office behind NAT, and code-server fetches its assets in bursts of a
// hundred or more when the IDE opens.
const (
	DefaultPrincipalRate  = 20
	DefaultPrincipalBurst = 60
	DefaultIPRate         = 50
	DefaultIPBurst        = 200
	// DefaultLoginFailures is how many wrong passwords an account may see
	// before it is locked out; DefaultLoginIPFailures the same per client
	// address, higher because an address may be shared.
	DefaultLoginFailures   = 5
	DefaultLoginIPFailures = 20
	// DefaultLoginMaxDelay caps the doubling lockout (1 s, 2 s, 4 s …).
	DefaultLoginMaxDelay = 15 * time.Minute
)

// RateLimits configures request throttling. Zero fields take the defaults;
// a negative rate turns that limiter off.
type RateLimits struct {
	// PrincipalRate and PrincipalBurst are requests per second and burst per
	// authenticated user or workspace agent, on /api/v1.
	PrincipalRate  float64
	PrincipalBurst int
	// IPRate and IPBurst are per client address, on every route but the
	// health probes.
	IPRate  float64
	IPBurst int
	// LoginFailures and LoginIPFailures are the wrong passwords allowed per
	// account and per address before login is refused with 429.
	LoginFailures   int
	LoginIPFailures int
	LoginMaxDelay   time.Duration
	// MaxKeys caps how many clients each throttle remembers (default
	// ratelimit.DefaultMaxKeys).
	MaxKeys int
}

// throttles are the API's rate limiters; a nil limiter allows everything.
type throttles struct {
	principal   *ratelimit.Limiter
	ip          *ratelimit.Limiter
	loginAcct   *ratelimit.Backoff
	loginIP     *ratelimit.Backoff
	trusted     []netip.Prefix
	corsOrigins map[string]bool
}

func newThrottles(cfg Config, now func() time.Time) *throttles {
	rl := cfg.RateLimits
	rate := func(v, def float64) float64 {
		if v == 0 {
			return def
		}
		return v // negative: NewLimiter returns nil, no limit
	}
	burst := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	t := &throttles{
		principal:   ratelimit.NewLimiter(ratelimit.LimiterConfig{Rate: rate(rl.PrincipalRate, DefaultPrincipalRate), Burst: burst(rl.PrincipalBurst, DefaultPrincipalBurst), MaxKeys: rl.MaxKeys, Now: now}),
		ip:          ratelimit.NewLimiter(ratelimit.LimiterConfig{Rate: rate(rl.IPRate, DefaultIPRate), Burst: burst(rl.IPBurst, DefaultIPBurst), MaxKeys: rl.MaxKeys, Now: now}),
		trusted:     cfg.TrustedProxies,
		corsOrigins: map[string]bool{},
	}
	maxDelay := rl.LoginMaxDelay
	if maxDelay <= 0 {
		maxDelay = DefaultLoginMaxDelay
	}
	if rl.LoginFailures >= 0 {
		t.loginAcct = ratelimit.NewBackoff(ratelimit.BackoffConfig{MaxFailures: burst(rl.LoginFailures, DefaultLoginFailures), MaxDelay: maxDelay, MaxKeys: rl.MaxKeys, Now: now})
	}
	if rl.LoginIPFailures >= 0 {
		t.loginIP = ratelimit.NewBackoff(ratelimit.BackoffConfig{MaxFailures: burst(rl.LoginIPFailures, DefaultLoginIPFailures), MaxDelay: maxDelay, MaxKeys: rl.MaxKeys, Now: now})
	}
	for _, o := range cfg.CORSOrigins {
		if n, err := NormalizeOrigin(o); err == nil {
			t.corsOrigins[n] = true
		}
	}
	return t
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

// ParseTrustedProxies parses a comma-separated list of addresses and CIDR
// prefixes whose X-Forwarded-For is believed.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		} else {
			errs = append(errs, fmt.Errorf("trusted proxy %q: not an address or CIDR prefix", s))
		}
	}
	return out, errors.Join(errs...)
}

func (t *throttles) isTrusted(a netip.Addr) bool {
	for _, p := range t.trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// clientAddr is the address the request came from: the peer, unless the
// peer is a trusted proxy, in which case X-Forwarded-For is read from the
// right (the entries the proxies appended) to the first address that is not
// itself a trusted proxy. Entries left of it are the client's own word and
// are ignored, or a client could pick its own rate limit key.
func (t *throttles) clientAddr(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// Not ip:port (e.g. a test's or a unix socket's RemoteAddr).
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	addr := peer.Addr().Unmap()
	if len(t.trusted) == 0 || !t.isTrusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: trust nothing further left
		}
		addr = hop.Unmap()
		if !t.isTrusted(addr) {
			break
		}
	}
	return addr
}

// clientKey is the rate limit key for r's address. IPv6 clients are keyed
// by their /64, which one subscriber usually holds whole: otherwise each
// request could come from a fresh address.
func (t *throttles) clientKey(r *http.Request) string {
	a := t.clientAddr(r)
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// isHealthPath names the probes, which are never throttled: a load
// balancer polling them must not be refused because of other traffic.
func isHealthPath(p string) bool { return p == "/health" || p == "/live" || p == "/ready" }

// isIDEPath is code-server's territory, which sets its own framing policy.
func isIDEPath(p string) bool { return strings.HasPrefix(p, "/w/") }

// limitByAddress throttles every request but the health probes by client
// address. It counts request starts only: a websocket (tunnel, terminal,
// IDE) is one request however long it lives and however much it carries.
func (a *API) limitByAddress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isHealthPath(r.URL.Path) {
			if ok, retry := a.limits.ip.Allow(a.limits.clientKey(r)); !ok {
				a.writeError(w, r, httpapi.RateLimited(retry, "too many requests from this address; retry after the time in Retry-After"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitPrincipal throttles per authenticated user (all of a user's tokens
// share one bucket, so minting tokens does not buy requests) or workspace
// agent. It runs after authentication.
func (a *API) limitPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var key string
		if u, ok := auth.UserFrom(r.Context()); ok {
			key = "user:" + u.ID
		} else if envID, ok := auth.AgentFrom(r.Context()); ok {
			key = "agent:" + envID
		}
		if key != "" {
			if ok, retry := a.limits.principal.Allow(key); !ok {
				a.writeError(w, r, httpapi.RateLimited(retry, "too many requests with this account's credentials; retry after the time in Retry-After"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// errLoginThrottled says the same whether or not the account exists, so the
// lockout cannot be used to find out which emails are registered.
func errLoginThrottled(retry time.Duration) *httpapi.Error {
	return httpapi.RateLimited(retry, "too many failed login attempts; retry after the time in Retry-After")
}

func loginAccountKey(email string) string {
	return "email:" + strings.ToLower(strings.TrimSpace(email))
}

// loginLocked reports whether a login for email from r must be refused now.
func (a *API) loginLocked(r *http.Request, email string) (time.Duration, bool) {
	var retry time.Duration
	if a.limits.loginAcct != nil {
		if locked, d := a.limits.loginAcct.Locked(loginAccountKey(email)); locked {
			retry = max(retry, d)
		}
	}
	if a.limits.loginIP != nil {
		if locked, d := a.limits.loginIP.Locked(a.limits.clientKey(r)); locked {
			retry = max(retry, d)
		}
	}
	return retry, retry > 0
}

// loginFailed counts a wrong password (or unknown email: counted alike).
func (a *API) loginFailed(r *http.Request, email string) {
	if a.limits.loginAcct != nil {
		a.limits.loginAcct.Fail(loginAccountKey(email))
	}
	if a.limits.loginIP != nil {
		a.limits.loginIP.Fail(a.limits.clientKey(r))
	}
}

// loginSucceeded forgets the account's failures. The address keeps its
// count: otherwise a guesser could reset it with a login of their own.
func (a *API) loginSucceeded(email string) {
	if a.limits.loginAcct != nil {
		a.limits.loginAcct.Reset(loginAccountKey(email))
	}
}

// hstsMaxAge is one year, the usual minimum for preload lists. Subdomains
// are left out: they may be other services this server does not speak for.
const hstsMaxAge = "max-age=31536000"

// securityHeaders sets the browser protections every response gets. The
// IDE under /w/ is code-server's page: it keeps its own policy (the proxy
// sets frame-ancestors 'self'), since a strict CSP would break it.
func securityHeaders(next http.Handler) http.Handler {
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

// CORS answers for the allowed origins.
const (
	corsAllowMethods  = "GET, HEAD, POST, PUT, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, X-Request-Id"
	corsExposeHeaders = "X-Request-Id, Retry-After, WWW-Authenticate"
)

// cors lets the configured origins (a web front end on another host) call
// the API with bearer tokens. Credentials (cookies) are never allowed cross
// origin: only the IDE takes the session cookie, and it is same-origin.
// Other origins get no CORS headers, so browsers keep them out; their
// preflights fall through to the router and fail there.
func (a *API) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(a.limits.corsOrigins) == 0 || isIDEPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		// The answer depends on Origin: caches must not serve one origin's
		// answer to another.
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" || !a.limits.corsOrigins[strings.ToLower(origin)] {
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
