package httpmw

import (
	"log/slog"
	"net/http"
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

// Throttles are the server's rate limiters; a nil limiter allows everything.
type Throttles struct {
	principal *ratelimit.Limiter
	ip        *ratelimit.Limiter
	loginAcct *ratelimit.Backoff
	loginIP   *ratelimit.Backoff
	proxies   TrustedProxies
	log       *slog.Logger
}

// NewThrottles builds the limiters rl asks for. Clients are told apart by
// address as proxies report it; now is the clock.
func NewThrottles(rl RateLimits, proxies TrustedProxies, now func() time.Time, log *slog.Logger) *Throttles {
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
	t := &Throttles{
		principal: ratelimit.NewLimiter(ratelimit.LimiterConfig{Rate: rate(rl.PrincipalRate, DefaultPrincipalRate), Burst: burst(rl.PrincipalBurst, DefaultPrincipalBurst), MaxKeys: rl.MaxKeys, Now: now}),
		ip:        ratelimit.NewLimiter(ratelimit.LimiterConfig{Rate: rate(rl.IPRate, DefaultIPRate), Burst: burst(rl.IPBurst, DefaultIPBurst), MaxKeys: rl.MaxKeys, Now: now}),
		proxies:   proxies,
		log:       log,
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
	return t
}

// isHealthPath names the probes, which are never throttled: a load
// balancer polling them must not be refused because of other traffic.
func isHealthPath(p string) bool { return p == "/health" || p == "/live" || p == "/ready" }

// ByAddress throttles every request but the health probes by client
// address. It counts request starts only: a websocket (tunnel, terminal,
// IDE) is one request however long it lives and however much it carries.
func (t *Throttles) ByAddress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isHealthPath(r.URL.Path) {
			if ok, retry := t.ip.Allow(t.proxies.ClientKey(r)); !ok {
				httpapi.WriteError(t.log, w, r, httpapi.RateLimited(retry, "too many requests from this address; retry after the time in Retry-After"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ByPrincipal throttles per authenticated user (all of a user's tokens
// share one bucket, so minting tokens does not buy requests) or workspace
// agent. It runs after authentication.
func (t *Throttles) ByPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var key string
		if u, ok := auth.UserFrom(r.Context()); ok {
			key = "user:" + u.ID
		} else if envID, ok := auth.AgentFrom(r.Context()); ok {
			key = "agent:" + envID
		}
		if key != "" {
			if ok, retry := t.principal.Allow(key); !ok {
				httpapi.WriteError(t.log, w, r, httpapi.RateLimited(retry, "too many requests with this account's credentials; retry after the time in Retry-After"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// LoginThrottled is the refusal of a locked-out login. It says the same
// whether or not the account exists, so the lockout cannot be used to find
// out which emails are registered.
func LoginThrottled(retry time.Duration) *httpapi.Error {
	return httpapi.RateLimited(retry, "too many failed login attempts; retry after the time in Retry-After")
}

func loginAccountKey(email string) string {
	return "email:" + strings.ToLower(strings.TrimSpace(email))
}

// LoginLocked reports whether a login for email from r must be refused
// now, and for how long.
func (t *Throttles) LoginLocked(r *http.Request, email string) (time.Duration, bool) {
	var retry time.Duration
	if t.loginAcct != nil {
		if locked, d := t.loginAcct.Locked(loginAccountKey(email)); locked {
			retry = max(retry, d)
		}
	}
	if t.loginIP != nil {
		if locked, d := t.loginIP.Locked(t.proxies.ClientKey(r)); locked {
			retry = max(retry, d)
		}
	}
	return retry, retry > 0
}

// LoginFailed counts a wrong password (or unknown email: counted alike).
func (t *Throttles) LoginFailed(r *http.Request, email string) {
	if t.loginAcct != nil {
		t.loginAcct.Fail(loginAccountKey(email))
	}
	if t.loginIP != nil {
		t.loginIP.Fail(t.proxies.ClientKey(r))
	}
}

// LoginSucceeded forgets the account's failures. The address keeps its
// count: otherwise a guesser could reset it with a login of their own.
func (t *Throttles) LoginSucceeded(email string) {
	if t.loginAcct != nil {
		t.loginAcct.Reset(loginAccountKey(email))
	}
}

// Remembered is how many clients the address limiter and the two login
// throttles hold, which their MaxKeys bounds.
func (t *Throttles) Remembered() (addresses, loginAccounts, loginAddresses int) {
	if t.ip != nil {
		addresses = t.ip.Len()
	}
	if t.loginAcct != nil {
		loginAccounts = t.loginAcct.Len()
	}
	if t.loginIP != nil {
		loginAddresses = t.loginIP.Len()
	}
	return addresses, loginAccounts, loginAddresses
}
