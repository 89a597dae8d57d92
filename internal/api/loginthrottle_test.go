package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
)

func TestLoginThrottling(t *testing.T) {
	t.Parallel()
	const password = "correct horse battery"
	login := func(f *hardenedFixture, email, pw, remote string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(map[string]string{"email": email, "password": pw})
		return f.do("POST", "/api/v1/auth/login", reqOpts{body: string(body), remote: remote})
	}

	t.Run("account", func(t *testing.T) {
		t.Parallel()
		// The ceiling per account (all addresses together) lowered to the
		// per-address limit, so that five failures lock it.
		f := newHardenedFixture(t, func(c *Config) { c.RateLimits.LoginAccountFailures = 5 })
		f.user("ada@example.com", password)
		var known, unknown []string
		for _, c := range []struct {
			email string
			out   *[]string
		}{{"ada@example.com", &known}, {"nobody@example.com", &unknown}} {
			// Each attempt from a fresh address: this is the account's
			// counter, not the address's.
			for i := range 5 {
				rec := login(f, c.email, "wrong password!", fmt.Sprintf("198.51.100.%d:1", i))
				if rec.Code != http.StatusUnauthorized {
					t.Fatalf("%s failure %d: %d", c.email, i+1, rec.Code)
				}
			}
			rec := login(f, c.email, "wrong password!", "198.51.100.99:1")
			e := want429(t, rec, "1")
			*c.out = append(*c.out, fmt.Sprint(rec.Code, rec.Header().Get("Retry-After"), e))
		}
		// The lock looks the same whether the account exists or not.
		if fmt.Sprint(known) != fmt.Sprint(unknown) {
			t.Fatalf("locked answers differ: known %v, unknown %v", known, unknown)
		}
		// Even the right password is refused while locked.
		want429(t, login(f, "ADA@example.com", password, "198.51.100.100:1"), "1")
		// Each further failure doubles the lock.
		f.clock.Advance(time.Second)
		if rec := login(f, "ada@example.com", "wrong password!", "198.51.100.101:1"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("after the lock: %d", rec.Code)
		}
		want429(t, login(f, "ada@example.com", password, "198.51.100.102:1"), "2")
		f.clock.Advance(2 * time.Second)
		// A success resets the account: five more failures before a lock.
		if rec := login(f, "ada@example.com", password, "198.51.100.103:1"); rec.Code != http.StatusOK {
			t.Fatalf("right password after the lock: %d %s", rec.Code, rec.Body.String())
		}
		for i := range 5 {
			if rec := login(f, "ada@example.com", "wrong password!", fmt.Sprintf("198.51.100.%d:1", 110+i)); rec.Code != http.StatusUnauthorized {
				t.Fatalf("after success, failure %d: %d", i+1, rec.Code)
			}
		}
		want429(t, login(f, "ada@example.com", password, "198.51.100.120:1"), "1")
	})

	t.Run("address", func(t *testing.T) {
		t.Parallel()
		// Fewer failures than the default: each one costs a bcrypt.
		const maxFailures = 3
		f := newHardenedFixture(t, func(c *Config) { c.RateLimits.LoginIPFailures = maxFailures })
		f.user("ada@example.com", password)
		const attacker = "203.0.113.66:4444"
		for i := range maxFailures {
			if rec := login(f, fmt.Sprintf("u%d@example.com", i), "wrong password!", attacker); rec.Code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i+1, rec.Code)
			}
		}
		want429(t, login(f, "ada@example.com", password, attacker), "1")
		// Ada from her own address is not affected.
		if rec := login(f, "ada@example.com", password, "192.0.2.10:1"); rec.Code != http.StatusOK {
			t.Fatalf("another address: %d", rec.Code)
		}
	})

	t.Run("backoff is capped", func(t *testing.T) {
		t.Parallel()
		f := newHardenedFixture(t, func(c *Config) {
			c.RateLimits.LoginMaxDelay, c.RateLimits.LoginAccountFailures = 8*time.Second, 5
		})
		want := []string{"1", "2", "4", "8", "8", "8"}
		for i := range 4 {
			login(f, "x@example.com", "wrong password!", fmt.Sprintf("192.0.2.%d:1", i))
		}
		for i, retry := range want {
			if rec := login(f, "x@example.com", "wrong password!", fmt.Sprintf("192.0.2.%d:1", 50+i)); rec.Code != http.StatusUnauthorized {
				t.Fatalf("round %d: %d", i, rec.Code)
			}
			want429(t, login(f, "x@example.com", "wrong password!", "192.0.2.99:1"), retry)
			f.clock.Advance(8 * time.Second)
		}
	})

	// An attacker hammering an account from one address locks that
	// address out of the account, not its owner (issue 15 finding 13).
	t.Run("account from one address", func(t *testing.T) {
		t.Parallel()
		// Fewer failures than the default: each one costs a bcrypt.
		const maxFailures = 2
		f := newHardenedFixture(t, func(c *Config) { c.RateLimits.LoginFailures = maxFailures })
		f.user("ada@example.com", password)
		const attacker, owner = "203.0.113.66:4444", "192.0.2.10:1"
		for i := range maxFailures {
			if rec := login(f, "ada@example.com", "wrong password!", attacker); rec.Code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i+1, rec.Code)
			}
		}
		want429(t, login(f, "ada@example.com", password, attacker), "1")
		// Hammering on while locked changes nothing for the owner.
		for range 50 {
			want429(t, login(f, "ada@example.com", "wrong password!", attacker), "1")
		}
		if rec := login(f, "ada@example.com", password, owner); rec.Code != http.StatusOK {
			t.Fatalf("the owner from another address: %d %s", rec.Code, rec.Body.String())
		}
		// Nor does the attacker's next round, which doubles their lock.
		f.clock.Advance(time.Second)
		if rec := login(f, "ada@example.com", "wrong password!", attacker); rec.Code != http.StatusUnauthorized {
			t.Fatalf("after the lock: %d", rec.Code)
		}
		want429(t, login(f, "ada@example.com", password, attacker), "2")
		if rec := login(f, "ada@example.com", password, owner); rec.Code != http.StatusOK {
			t.Fatalf("the owner after the second lock: %d", rec.Code)
		}
		// Another account from the attacker's address is not locked by
		// this one (the address limit is higher).
		f.user("bob@example.com", password)
		if rec := login(f, "bob@example.com", password, attacker); rec.Code != http.StatusOK {
			t.Fatalf("another account from the attacker's address: %d", rec.Code)
		}
	})

	// Behind a trusted proxy the address is the one X-Forwarded-For names,
	// so clients behind one proxy are told apart.
	t.Run("account from one address behind a proxy", func(t *testing.T) {
		t.Parallel()
		const maxFailures = 2
		f := newHardenedFixture(t, func(c *Config) {
			c.TrustedProxies, c.RateLimits.LoginFailures = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, maxFailures
		})
		f.user("ada@example.com", password)
		viaProxy := func(pw, client string) *httptest.ResponseRecorder {
			body, _ := json.Marshal(map[string]string{"email": "ada@example.com", "password": pw})
			return f.do("POST", "/api/v1/auth/login", reqOpts{body: string(body), remote: "10.0.0.1:5555", headers: map[string]string{"X-Forwarded-For": client}})
		}
		for range maxFailures {
			viaProxy("wrong password!", "203.0.113.66")
		}
		want429(t, viaProxy(password, "203.0.113.66"), "1")
		// A client cannot pick its own key: what it puts left of the
		// proxy's entry is ignored.
		want429(t, viaProxy(password, "192.0.2.10, 203.0.113.66"), "1")
		if rec := viaProxy(password, "192.0.2.10"); rec.Code != http.StatusOK {
			t.Fatalf("the owner behind the same proxy: %d", rec.Code)
		}
	})

	// Guessing spread over many addresses meets the ceiling per account,
	// which then holds for every address, the owner's too.
	t.Run("account ceiling", func(t *testing.T) {
		t.Parallel()
		const ceiling = 4
		f := newHardenedFixture(t, func(c *Config) { c.RateLimits.LoginAccountFailures = ceiling })
		f.user("ada@example.com", password)
		for i := range ceiling {
			// Two addresses, two failures each: neither reaches the
			// per-address limit (5).
			if rec := login(f, "ada@example.com", "wrong password!", fmt.Sprintf("198.51.100.%d:1", i%2)); rec.Code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i+1, rec.Code)
			}
		}
		want429(t, login(f, "ada@example.com", password, "192.0.2.10:1"), "1")
		f.clock.Advance(time.Second)
		if rec := login(f, "ada@example.com", password, "192.0.2.10:1"); rec.Code != http.StatusOK {
			t.Fatalf("after the ceiling's lock: %d", rec.Code)
		}
	})

	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		f := newHardenedFixture(t, func(c *Config) { c.RateLimits.LoginFailures, c.RateLimits.LoginIPFailures = -1, -1 })
		f2 := newHardenedFixture(t, func(c *Config) { c.RateLimits.LoginFailures, c.RateLimits.LoginIPFailures = -1, 2 })
		for i := range httpmw.DefaultLoginFailures + 2 {
			if rec := login(f, "x@example.com", "wrong password!", "192.0.2.1:1"); rec.Code != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d", i+1, rec.Code)
			}
		}
		// With only the account limit off, the address limit still works.
		for i := range 2 {
			if rec := login(f2, fmt.Sprintf("x%d@example.com", i), "wrong password!", "192.0.2.1:1"); rec.Code != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d", i+1, rec.Code)
			}
		}
		want429(t, login(f2, "y@example.com", "wrong password!", "192.0.2.1:1"), "1")
	})
}

// TestThrottledLoginsAuditOncePerLock: attempts refused by a login lock
// leave one audit row per lock, however many there are (issue 15 finding
// 12); the wrong passwords themselves are each recorded, as before.
func TestThrottledLoginsAuditOncePerLock(t *testing.T) {
	t.Parallel()
	// Few failures before a lock: each one costs a bcrypt.
	const maxFailures = 2
	f := newHardenedFixture(t, func(c *Config) { c.RateLimits.LoginFailures = maxFailures })
	const attacker = "203.0.113.66:4444"
	login := func(email string) int {
		body, _ := json.Marshal(map[string]string{"email": email, "password": "wrong password!"})
		return f.do("POST", "/api/v1/auth/login", reqOpts{body: string(body), remote: attacker}).Code
	}
	rows := func(reason string) []store.AuditEvent {
		t.Helper()
		events, _, err := f.db.ListAuditEvents(t.Context(), store.AuditFilter{Action: "auth.login"})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.AuditEvent
		for _, e := range events {
			if e.Detail["reason"] == reason {
				out = append(out, e)
			}
		}
		return out
	}
	for range maxFailures {
		login("ada@example.com")
	}
	for i := range 200 {
		if c := login("ada@example.com"); c != http.StatusTooManyRequests {
			t.Fatalf("refused attempt %d: %d, want 429", i+1, c)
		}
	}
	throttled := rows("throttled")
	if len(throttled) != 1 {
		t.Fatalf("200 refused attempts during one lock: %d throttled rows, want 1", len(throttled))
	}
	if e := throttled[0]; e.Success || e.IP != "203.0.113.66" || e.Detail["email"] != "ada@example.com" ||
		e.Detail["locked_for_seconds"] != float64(1) || fmt.Sprint(e.Detail["limits"]) != "[account from this address]" {
		t.Fatalf("throttled row %+v", e)
	}
	if n := len(rows("bad credentials")); n != maxFailures {
		t.Fatalf("%d bad-credentials rows, want one per wrong password (%d)", n, maxFailures)
	}
	// The next lock is recorded once more.
	f.clock.Advance(time.Second)
	login("ada@example.com")
	for range 50 {
		login("ada@example.com")
	}
	if n := len(rows("throttled")); n != 2 {
		t.Fatalf("after a second lock: %d throttled rows, want 2", n)
	}
}

// TestThrottleMemoryIsBounded hammers the real router from 100k distinct
// addresses: the address limiter never remembers more than its cap, and
// the login throttle neither.
func TestThrottleMemoryIsBounded(t *testing.T) {
	t.Parallel()
	const maxKeys = 500
	f := newHardenedFixture(t, func(c *Config) { c.RateLimits.MaxKeys = maxKeys })
	for i := range 100_000 {
		req := httptest.NewRequest("GET", "/nope", nil)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1", i>>16&0xff, i>>8&0xff, i&0xff)
		f.handler.ServeHTTP(httptest.NewRecorder(), req)
		if n, _, _ := f.api.throttles.Remembered(); n > maxKeys {
			t.Fatalf("after %d addresses the limiter holds %d, cap %d", i+1, n, maxKeys)
		}
	}
	// Login failures run bcrypt, so a smaller cap and fewer of them, enough
	// to overflow it (the 100k case is in package ratelimit).
	const loginKeys = 4
	f = newHardenedFixture(t, func(c *Config) { c.RateLimits.MaxKeys = loginKeys })
	for i := range 3 * loginKeys {
		body := fmt.Sprintf(`{"email":"u%d@example.com","password":"wrong password!"}`, i)
		f.do("POST", "/api/v1/auth/login", reqOpts{body: body, remote: fmt.Sprintf("172.16.%d.%d:1", i>>8&0xff, i&0xff)})
		if _, a, ip := f.api.throttles.Remembered(); a > loginKeys || ip > loginKeys {
			t.Fatalf("after %d logins: %d accounts, %d addresses remembered, cap %d", i+1, a, ip, loginKeys)
		}
	}
}
