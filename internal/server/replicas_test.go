package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// startReplicas starts n servers on one PostgreSQL database with one
// secret key, each with its own data directory and address, as replicas
// behind a load balancer run.
func startReplicas(t *testing.T, n int, mutate func(*server.Config)) []*testServer {
	t.Helper()
	url := pgtest.NewDatabase(t)
	key := make([]byte, 32)
	rand.Read(key)
	out := make([]*testServer, n)
	for i := range out {
		out[i] = startServer(t, url, func(c *server.Config) {
			c.SecretKey = hex.EncodeToString(key)
			if mutate != nil {
				mutate(c)
			}
		})
	}
	return out
}

// TestEventsAcrossReplicas: a dashboard's event stream on one replica
// shows the changes made through another.
func TestEventsAcrossReplicas(t *testing.T) {
	t.Parallel()
	rs := startReplicas(t, 2, nil)
	maker, watcher := rs[0], rs[1]
	ada, _ := maker.user("ada@example.com")
	ctx, cancel := context.WithCancel(watcher.ctx)
	defer cancel()
	events, _ := watcher.openEvents(ctx, ada, "")

	env := maker.create(ada, sdk.CreateEnvironmentRequest{Name: "elsewhere"})
	for {
		ev, ok := <-events
		if !ok {
			t.Fatal("the stream ended before the other replica's create showed")
		}
		if ev.name == "environment" && strings.Contains(ev.data, `"id":"`+env.ID+`"`) {
			break
		}
		t.Fatalf("unexpected event %+v", ev)
	}
	if _, err := maker.client(ada).Delete(maker.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok := <-events
		if !ok {
			t.Fatal("the stream ended before the other replica's delete showed")
		}
		if ev.name == "deleted" {
			if !strings.Contains(ev.data, env.ID) {
				t.Fatalf("deleted event %q", ev.data)
			}
			break
		}
	}
}

// TestDrain: a server told to stop first says so on /ready, goes on
// answering for its drain delay (a load balancer is still sending it what
// it routed before its next health check), turns supervisors' tunnels
// away so they move to another replica, and only then stops.
func TestDrain(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second
	ts := startServer(t, "", func(c *server.Config) { c.DrainDelay = delay })
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "moving"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	agent := ts.agentToken(env.ID)
	if code := ts.call("GET", "/ready", "", nil, nil); code != http.StatusOK {
		t.Fatalf("/ready = %d before the stop", code)
	}

	stopped := make(chan time.Time, 1)
	begun := time.Now()
	go func() { ts.stop(); stopped <- time.Now() }()
	wait.Eventually(ts.ctx, t, "/ready to say the server is going", func() bool {
		return ts.call("GET", "/ready", "", nil, nil) == http.StatusServiceUnavailable
	}, wait.Every(10*time.Millisecond))
	// Still answering, for anyone and for the API.
	var me struct{ User sdk.User }
	if code := ts.call("GET", "/api/v1/auth/me", token, nil, &me); code != http.StatusOK || me.User.Email != "ada@example.com" {
		t.Fatalf("GET /api/v1/auth/me while draining = %d %+v, want 200 and Ada", code, me)
	}
	// A supervisor is turned away before its websocket opens, and told
	// to come back (to whichever replica the balancer then picks).
	_, resp, err := ts.dialWS(t, agent, "/api/v1/environments/"+env.ID+"/tunnel")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("tunnel while draining: %v %v, want 503 with Retry-After", resp, err)
	}
	select {
	case at := <-stopped:
		t.Fatalf("the server stopped %s after it was told to, before its drain delay (%s)", at.Sub(begun), delay)
	default:
	}
	at := <-stopped
	if took := at.Sub(begun); took < delay {
		t.Fatalf("stopped after %s, before the drain delay %s", took, delay)
	}
	if _, err := http.Get(ts.url + "/live"); err == nil {
		t.Fatal("the server still answers after it stopped")
	}
}

// TestLocalRuntimeRefusedBesideReplicas: a second replica does not start
// while environments on the local runtime exist (their workspaces are the
// first server's processes, which it would find missing and fail).
func TestLocalRuntimeRefusedBesideReplicas(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	key := strings.Repeat("ab", 32)
	first := startServer(t, url, func(c *server.Config) { c.SecretKey = key })
	ada, _ := first.user("ada@example.com")
	env := first.create(ada, sdk.CreateEnvironmentRequest{Name: "mine"})
	first.waitStatus(ada, env.ID, sdk.StatusRunning)

	ctx := wait.Context(t, time.Minute)
	second, err := server.New(ctx, server.Config{DataDir: t.TempDir(), DatabaseURL: url, SecretKey: key, Runtime: "local"})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = second.Serve(ctx, ln)
	if err == nil || !strings.Contains(err.Error(), "local runtime") {
		t.Fatalf("a second replica beside local workspaces: Serve = %v, want a refusal naming the local runtime", err)
	}
	// The first server's workspace is untouched.
	if got := first.waitStatus(ada, env.ID, sdk.StatusRunning); got.Status != sdk.StatusRunning {
		t.Fatalf("the first server's workspace is %s", got.Status)
	}
}
