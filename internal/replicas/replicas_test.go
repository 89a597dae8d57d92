package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/internal/tunnel"
	"dev8.dev/dev8/sdk"
)

// forEachEngine runs fn against a fresh store of each engine.
func forEachEngine(t *testing.T, fn func(t *testing.T, ctx context.Context, db *store.DB)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := wait.Context(t, wait.Medium)
			var url, path string
			if engine == "postgres" {
				url = pgtest.NewDatabase(t)
			} else {
				path = filepath.Join(t.TempDir(), "dev8.db")
			}
			db, err := store.Open(ctx, url, path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			fn(t, ctx, db)
		})
	}
}

var testKey = bytes.Repeat([]byte{42}, 32)

// node is one replica in a test: its registry of tunnels, its Replica, and
// an HTTP server with the tunnel endpoint (any token "good") and the relay.
type node struct {
	rep     *Replica
	tunnels *tunnel.Registry
	srv     *httptest.Server
	relays  atomic.Int32 // relay requests that reached the handler
}

func newNode(t *testing.T, db *store.DB) *node {
	t.Helper()
	n := &node{tunnels: tunnel.NewRegistry(slog.New(slog.DiscardHandler))}
	relay := http.Handler(nil)
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == tunnel.Path("env_1") && r.Header.Get("Authorization") == "Bearer good" {
			ws, err := websocket.Accept(w, r, nil)
			if err == nil {
				_ = n.tunnels.Serve(r.Context(), "env_1", websocket.NetConn(r.Context(), ws, websocket.MessageBinary))
			}
			return
		}
		n.relays.Add(1)
		relay.ServeHTTP(w, r)
	}))
	t.Cleanup(n.srv.Close)
	rep, err := New(Config{Store: db, URL: n.srv.URL, Key: testKey, Local: n.tunnels.Local, Logger: slog.New(slog.DiscardHandler), Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.rep = rep
	relay = rep.RelayHandler(n.tunnels)
	n.tunnels.SetHolders(rep, 20*time.Millisecond)
	if err := rep.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n
}

// echoes serves ServiceTCP by echoing; streams counts what it accepted.
type echoes struct{ streams atomic.Int32 }

func (e *echoes) ServeStream(_ context.Context, h tunnel.Header, conn net.Conn) {
	e.streams.Add(1)
	defer conn.Close()
	if h.Service != tunnel.ServiceTCP {
		_ = tunnel.WriteReply(conn, tunnel.Reply{Error: "no such service"})
		return
	}
	_ = tunnel.WriteReply(conn, tunnel.Reply{OK: true})
	_, _ = io.Copy(conn, conn)
}

func connectSupervisor(t *testing.T, ctx context.Context, url string, h tunnel.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tunnel.Connect(ctx, tunnel.AgentConfig{ServerURL: url, EnvironmentID: "env_1", Token: "good", Handler: h,
			Logger: slog.New(slog.DiscardHandler), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// awaitHeld waits until n sees env_1's tunnel held by another replica
// (the holder notes it just after taking it).
func awaitHeld(t *testing.T, ctx context.Context, n *node) {
	t.Helper()
	wait.Eventually(ctx, t, "the tunnel noted as another replica's", func() bool {
		held, err := n.rep.Held(ctx, "env_1", time.Time{})
		return err == nil && held
	})
}

func roundTrip(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

// TestRelayBetweenReplicas: a stream to a supervisor connected to replica
// a, dialed at replica b, is relayed by a; a's relay endpoint refuses
// every request without a valid credential for a and the environment,
// opening nothing.
func TestRelayBetweenReplicas(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		a, b := newNode(t, db), newNode(t, db)
		sup := &echoes{}
		connectSupervisor(t, ctx, a.srv.URL, sup)
		if err := a.tunnels.Await(ctx, "env_1"); err != nil {
			t.Fatal(err)
		}
		awaitHeld(t, ctx, b)
		conn, err := b.tunnels.Dial(ctx, "env_1", tunnel.Header{Service: tunnel.ServiceTCP})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, "via a")
		conn.Close()
		if a.relays.Load() != 1 || sup.streams.Load() != 1 {
			t.Fatalf("relays at a %d, streams at the supervisor %d; want 1, 1", a.relays.Load(), sup.streams.Load())
		}

		now := time.Now()
		for name, token := range map[string]string{
			"none":              "",
			"garbage":           "Bearer x.y",
			"forged":            "Bearer " + tokens{key: bytes.Repeat([]byte{1}, 32)}.issue(a.rep.ID(), "env_1", now.Add(tokenTTL)),
			"expired":           "Bearer " + a.rep.tokens.issue(a.rep.ID(), "env_1", now.Add(-time.Second)),
			"for b":             "Bearer " + a.rep.tokens.issue(b.rep.ID(), "env_1", now.Add(tokenTTL)),
			"other environment": "Bearer " + a.rep.tokens.issue(a.rep.ID(), "env_2", now.Add(tokenTTL)),
		} {
			ws, resp, err := websocket.Dial(ctx, a.srv.URL+RelayPath("env_1"), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {token}}})
			if err == nil {
				ws.CloseNow()
				t.Fatalf("%s credential: the relay was opened", name)
			}
			if resp == nil || resp.StatusCode != http.StatusNotFound {
				t.Fatalf("%s credential: %v, want 404", name, resp)
			}
		}
		// The refusals carry the standard error body.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+RelayPath("env_1"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body sdk.ErrorResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusNotFound || body.Code != sdk.CodeNotFound || body.Error == "" {
			t.Fatalf("refusal: %d %+v %v", resp.StatusCode, body, err)
		}
		resp.Body.Close()
		if n := sup.streams.Load(); n != 1 {
			t.Fatalf("refused relays opened %d streams at the supervisor", n-1)
		}
	})
}

// TestReplicaLiveness: a replica whose heartbeat is old is dead to the
// others (not dialed); one whose registration was lost registers again
// with its tunnels (and still draining, once it drains); one that stops
// deregisters, its tunnels with it.
func TestReplicaLiveness(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		a, b := newNode(t, db), newNode(t, db)
		sup := &echoes{}
		connectSupervisor(t, ctx, a.srv.URL, sup)
		awaitHeld(t, ctx, b)
		if held, _ := a.rep.Held(ctx, "env_1", time.Time{}); held {
			t.Fatal("a takes its own tunnel for another replica's")
		}
		if held, _ := b.rep.Held(ctx, "env_1", time.Now().Add(time.Minute)); held {
			t.Fatal("Held for a tunnel from after the one there is")
		}

		// a falls silent.
		if err := db.HeartbeatReplica(ctx, a.rep.ID(), time.Now().Add(-deadAfterBeats*a.rep.cfg.Heartbeat)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.rep.DialHolder(ctx, "env_1"); !errors.Is(err, tunnel.ErrNoHolder) {
			t.Fatalf("DialHolder with the holder dead = %v, want ErrNoHolder", err)
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := b.tunnels.Dial(short, "env_1", tunnel.Header{Service: tunnel.ServiceTCP}); !errors.Is(err, tunnel.ErrNotConnected) {
			t.Fatalf("Dial with the holder dead = %v, want ErrNotConnected", err)
		}
		if a.relays.Load() != 0 || b.tunnels.Reachable(ctx, "env_1") {
			t.Fatalf("a dead replica was dialed (%d relays) or counted reachable", a.relays.Load())
		}
		// Its next heartbeat brings it back.
		a.rep.beat(ctx)
		if !b.tunnels.Reachable(ctx, "env_1") {
			t.Fatal("not reachable after a's heartbeat")
		}

		// a's registration is pruned (as another replica does after
		// pruneAfter) while it is cut off: its next beat registers it
		// again, with its tunnel.
		if err := db.DeleteReplica(ctx, a.rep.ID()); err != nil {
			t.Fatal(err)
		}
		if b.tunnels.Reachable(ctx, "env_1") {
			t.Fatal("reachable with a's registration gone")
		}
		a.rep.beat(ctx)
		conn, err := b.tunnels.Dial(ctx, "env_1", tunnel.Header{Service: tunnel.ServiceTCP})
		if err != nil {
			t.Fatalf("Dial after a registered again: %v", err)
		}
		roundTrip(t, conn, "back")
		conn.Close()

		// A replica dead for long is pruned by a live one's beat.
		if _, err := db.RegisterReplica(ctx, store.Replica{ID: "rep_gone", URL: "http://127.0.0.1:1", HeartbeatAt: time.Now().Add(-pruneAfter - time.Minute)}); err != nil {
			t.Fatal(err)
		}
		b.rep.beat(ctx)
		if _, err := db.GetReplica(ctx, "rep_gone"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a long-dead replica was not pruned: %v", err)
		}

		// a begins to drain: the others see it so, and a registration
		// made again (pruned meanwhile) still says so.
		if err := a.rep.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if got, err := db.GetReplica(ctx, a.rep.ID()); err != nil || !got.Draining {
				t.Fatalf("a after Drain: %+v, %v; want draining", got, err)
			}
			if err := db.DeleteReplica(ctx, a.rep.ID()); err != nil {
				t.Fatal(err)
			}
			a.rep.beat(ctx)
		}

		// a shuts down: Run deregisters it.
		runCtx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- a.rep.Run(runCtx) }()
		stop()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetReplica(ctx, a.rep.ID()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a is still registered after Run: %v", err)
		}
		if _, err := db.GetTunnelHolder(ctx, "env_1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a's tunnel outlived its registration: %v", err)
		}
	})
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://10.0.0.1:3000":    "http://10.0.0.1:3000",
		"https://dev8-0.dev8:80/": "https://dev8-0.dev8:80",
	} {
		if got, err := CheckURL(in); err != nil || got != want {
			t.Errorf("CheckURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.1:3000", "ftp://h", "http://", "http://u:p@h", "http://h/x", "http://h?q=1", "http://h#f"} {
		if _, err := CheckURL(in); err == nil {
			t.Errorf("CheckURL(%q) accepted", in)
		}
	}
}
