package httpmw

import (
	"fmt"
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
	// from one client address before that address is locked out of it;
	// DefaultLoginIPFailures the same per client address whatever the
	// account, higher because an address may be shared. An attacker who
	// hammers an account from one address locks only themself out: its
	// owner signs in from their own address.
	DefaultLoginFailures   = 5
	DefaultLoginIPFailures = 20
	// DefaultLoginAccountFailures is the ceiling per account from every
	// address together, far above the per-address limit: it stops guessing
	// spread over many addresses, at the price of locking the owner out
	// too while it lasts.
	DefaultLoginAccountFailures = 100
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
	// LoginFailures, LoginIPFailures and LoginAccountFailures are the
	// wrong passwords allowed per account from one address, per address,
	// and per account from all addresses, before login is refused with 429.
	LoginFailures        int
	LoginIPFailures      int
	LoginAccountFailures int
	LoginMaxDelay        time.Duration
	// MaxKeys caps how many clients each throttle remembers (default
	// ratelimit.DefaultMaxKeys).
	MaxKeys int
}

// Throttles are the server's rate limiters; a nil limiter allows everything.
//
// The request limiters (ByAddress, ByPrincipal) are each server's own:
// with N replicas behind a load balancer a client may make up to N times
// the rate, as the balancer spreads it. The login throttles are shared by
// every replica when they keep their failures in a LoginFailureStore
// (loginlimit.go): a guesser gets no more guesses from more replicas.
type Throttles struct {
	principal *ratelimit.Limiter
	ip        *ratelimit.Limiter
	// The login throttles: per account and address, per address, and the
	// ceiling per account (see DefaultLoginFailures).
	loginPair *loginLimit
	loginIP   *loginLimit
	loginAcct *loginLimit
	proxies   TrustedProxies
	log       *slog.Logger
}

// NewThrottles builds the limiters rl asks for. Clients are told apart by
// address as proxies report it; now is the clock. shared, when not nil,
// keeps the login throttles' failures where every replica sees them (see
// StoredLoginFailures); nil keeps them in this server's memory, right for
// a server that runs alone.
func NewThrottles(rl RateLimits, shared ratelimit.FailureStore, proxies TrustedProxies, now func() time.Time, log *slog.Logger) *Throttles {
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
	backoff := func(name string, failures, def int) *loginLimit {
		if failures < 0 {
			return nil
		}
		return newLoginLimit(name, ratelimit.BackoffConfig{MaxFailures: burst(failures, def), MaxDelay: maxDelay, MaxKeys: rl.MaxKeys, Now: now}, shared, log)
	}
	t.loginPair = backoff("account from this address", rl.LoginFailures, DefaultLoginFailures)
	t.loginIP = backoff("address", rl.LoginIPFailures, DefaultLoginIPFailures)
	t.loginAcct = backoff("account", rl.LoginAccountFailures, DefaultLoginAccountFailures)
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

// loginPairKey is the key of email tried from r's address. NUL cannot be
// in either part, so no two pairs share a key.
func (t *Throttles) loginPairKey(r *http.Request, email string) string {
	return loginAccountKey(email) + "\x00" + t.proxies.ClientKey(r)
}

// LoginLockout is why a login is refused now.
type LoginLockout struct {
	// Retry is how long until a login may be tried again.
	Retry time.Duration
	// New is set for the first attempt refused by a lock, once per lock
	// of each limit: record that one, not every refused attempt, or a
	// flood of them floods the audit log.
	New bool
	// Limits names the limits that refused it, for the record: "account
	// from this address", "address", "account".
	Limits []string
}

// LoginLocked reports whether a login for email from r must be refused
// now, for how long, and whether this is the lock's first refusal. Call it
// only when about to refuse on its answer: each call counts as a refusal.
//
// When the shared failures cannot be read, it fails closed: the error is
// a 503 (ErrLoginThrottleUnavailable, wrapping the cause for the log) and
// the login must be refused, as no password may be checked without its
// limits. It costs nothing a working login would have had: without its
// database a server cannot look the account up either.
func (t *Throttles) LoginLocked(r *http.Request, email string) (LoginLockout, bool, error) {
	var out LoginLockout
	for _, l := range []struct {
		l   *loginLimit
		key string
	}{
		{t.loginPair, t.loginPairKey(r, email)},
		{t.loginIP, t.proxies.ClientKey(r)},
		{t.loginAcct, loginAccountKey(email)},
	} {
		if l.l == nil {
			continue
		}
		retry, first, err := l.l.refuse(r.Context(), l.key)
		if err != nil {
			return LoginLockout{}, false, fmt.Errorf("%w: %w", ErrLoginThrottleUnavailable, err)
		}
		if retry > 0 {
			out.Retry = max(out.Retry, retry)
			out.New = out.New || first
			out.Limits = append(out.Limits, l.l.name)
		}
	}
	return out, out.Retry > 0, nil
}

// LoginFailed counts a wrong password (or unknown email: counted alike)
// against the account from this address, the address, and the account.
// A failure the shared store cannot take is counted in this server's
// memory instead (see loginLimit.fail).
func (t *Throttles) LoginFailed(r *http.Request, email string) {
	ctx := r.Context()
	if t.loginPair != nil {
		t.loginPair.fail(ctx, t.loginPairKey(r, email))
	}
	if t.loginIP != nil {
		t.loginIP.fail(ctx, t.proxies.ClientKey(r))
	}
	if t.loginAcct != nil {
		t.loginAcct.fail(ctx, loginAccountKey(email))
	}
}

// LoginSucceeded forgets the account's failures, from this address and in
// all. The address keeps its count: otherwise a guesser could reset it
// with a login of their own.
func (t *Throttles) LoginSucceeded(r *http.Request, email string) {
	ctx := r.Context()
	if t.loginPair != nil {
		t.loginPair.reset(ctx, t.loginPairKey(r, email))
	}
	if t.loginAcct != nil {
		t.loginAcct.reset(ctx, loginAccountKey(email))
	}
}

// Remembered is how many clients the address limiter and the login
// throttles hold in this server's memory, which their MaxKeys bounds:
// accounts (per address and in all) and addresses. Failures kept in a
// shared store are not counted: the store prunes them instead.
func (t *Throttles) Remembered() (addresses, loginAccounts, loginAddresses int) {
	if t.ip != nil {
		addresses = t.ip.Len()
	}
	if t.loginPair != nil {
		loginAccounts = t.loginPair.memory.Len()
	}
	if t.loginAcct != nil {
		loginAccounts = max(loginAccounts, t.loginAcct.memory.Len())
	}
	if t.loginIP != nil {
		loginAddresses = t.loginIP.memory.Len()
	}
	return addresses, loginAccounts, loginAddresses
}
