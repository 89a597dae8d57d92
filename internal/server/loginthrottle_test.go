package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/testclock"
	"dev8.dev/dev8/internal/testutil/wait"
)

// TestLoginThrottleAcrossReplicas: wrong passwords sent by turns to two
// replicas on one PostgreSQL database lock the account (from this
// address) after DefaultLoginFailures in total, not per replica; the lock
// holds on both, doubles with a failure on either, and a success on one
// resets the count for both. The address's count is shared too, and the
// records are pruned once they no longer count.
func TestLoginThrottleAcrossReplicas(t *testing.T) {
	t.Parallel()
	// One clock for both replicas that moves only when the test says:
	// the locks below last a second or two, which a loaded machine could
	// otherwise let run out between a request and the next.
	clk := testclock.At(time.Now())
	rs := startReplicas(t, 2, func(c *server.Config) {
		c.Now = clk.Now
		c.SessionPruneInterval = 50 * time.Millisecond
	})
	const email, password = "ada@example.com", "correct horse"
	rs[0].user(email)
	// login answers the status, the error code and Retry-After.
	login := func(ts *testServer, pw string) (int, string, string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"email": email, "password": pw})
		req, err := http.NewRequestWithContext(ts.ctx, "POST", ts.url+"/api/v1/auth/login", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Code string `json:"code"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("login on %s: %d, decode: %v", ts.url, resp.StatusCode, err)
		}
		return resp.StatusCode, out.Code, resp.Header.Get("Retry-After")
	}
	locked := func(retry string) {
		t.Helper()
		for i, ts := range rs {
			// The right password too: a lock refuses every attempt.
			if status, code, after := login(ts, password); status != http.StatusTooManyRequests || code != "RATE_LIMITED" || after != retry {
				t.Fatalf("replica %d while locked: %d %s, Retry-After %q; want 429 RATE_LIMITED, %q", i, status, code, after, retry)
			}
		}
	}

	for i := range httpmw.DefaultLoginFailures {
		if status, _, _ := login(rs[i%2], "wrong password"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d on replica %d: %d, want 401", i+1, i%2, status)
		}
	}
	locked("1")

	// A failure on the other replica after the lock doubles it for both.
	clk.Advance(time.Second)
	if status, _, _ := login(rs[1], "wrong password"); status != http.StatusUnauthorized {
		t.Fatalf("failure after the lock: %d, want 401", status)
	}
	locked("2")

	// A success on one replica resets the account for both: four more
	// failures by turns do not lock it.
	clk.Advance(2 * time.Second)
	if status, _, _ := login(rs[0], password); status != http.StatusOK {
		t.Fatalf("right password after the lock: %d, want 200", status)
	}
	for i := range httpmw.DefaultLoginFailures - 1 {
		if status, _, _ := login(rs[(i+1)%2], "wrong password"); status != http.StatusUnauthorized {
			t.Fatalf("after the reset, failure %d: %d, want 401", i+1, status)
		}
	}
	if status, _, _ := login(rs[1], password); status != http.StatusOK {
		t.Fatalf("after the reset and %d failures: %d, want 200", httpmw.DefaultLoginFailures-1, status)
	}

	// The address kept every failure on either replica: 5 + 1 + 4.
	// httpmw's key of a client on loopback, under its limit's name.
	const address = "address\x00127.0.0.1"
	if f, err := rs[1].srv.Store.LoginFailure(rs[1].ctx, address); err != nil || f.Count != 10 {
		t.Fatalf("the address's shared count: %+v, %v; want 10 failures", f, err)
	}
	// Past the window (an hour), the replica that leads the prune
	// deletes the records.
	clk.Advance(2 * time.Hour)
	wait.Eventually(rs[0].ctx, t, "the stale login failures are pruned", func() bool {
		f, err := rs[0].srv.Store.LoginFailure(rs[0].ctx, address)
		return err == nil && f.IsZero()
	})
}
