package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/replicas"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/internal/tunnel"
	"dev8.dev/dev8/sdk"
)

// echoSupervisor stands for a workspace's supervisor: it echoes
// ServiceTCP streams and counts every stream it is offered.
type echoSupervisor struct{ streams atomic.Int32 }

func (e *echoSupervisor) ServeStream(_ context.Context, h tunnel.Header, conn net.Conn) {
	e.streams.Add(1)
	defer conn.Close()
	if h.Service != tunnel.ServiceTCP {
		_ = tunnel.WriteReply(conn, tunnel.Reply{Error: "no such service: " + h.Service})
		return
	}
	_ = tunnel.WriteReply(conn, tunnel.Reply{OK: true})
	_, _ = io.Copy(conn, conn)
}

// startSupervisor runs a supervisor (an echoSupervisor) for envID that
// dials url and redials between min and max apart, until the test ends;
// connected (optional) is called each time its tunnel is up.
func startSupervisor(t *testing.T, ctx context.Context, url, envID, token string, min, max time.Duration, connected func()) {
	t.Helper()
	supCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tunnel.Connect(supCtx, tunnel.AgentConfig{ServerURL: url, EnvironmentID: envID, Token: token,
			Handler: &echoSupervisor{}, Logger: slog.New(slog.DiscardHandler), MinBackoff: min, MaxBackoff: max, Connected: connected})
	}()
	t.Cleanup(func() { stop(); <-done })
}

// supervisorAt starts a supervisor for envID that dials ts, and returns
// once ts holds its tunnel.
func supervisorAt(t *testing.T, ctx context.Context, ts *testServer, envID, token string) {
	t.Helper()
	startSupervisor(t, ctx, ts.url, envID, token, 20*time.Millisecond, 200*time.Millisecond, nil)
	if err := ts.srv.Tunnels.Await(ctx, envID); err != nil {
		t.Fatal(err)
	}
}

// switchProxy is the load balancer in front of the replicas, as the
// supervisor sees it: a TCP proxy whose backend the test switches.
type switchProxy struct {
	ln     net.Listener
	target atomic.Value // string: host:port
	wg     sync.WaitGroup
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln}
	p.target.Store(target)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				d, err := net.Dial("tcp", p.target.Load().(string))
				if err != nil {
					c.Close()
					return
				}
				tunnel.Join(c, d)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("no host in %q: %v", rawURL, err)
	}
	return u.Host
}

// replicaPair starts two servers on one PostgreSQL database with one
// secret key, as replicas behind a load balancer are run, and a workspace
// (in the store, stopped, so neither lifecycle drives it) whose supervisor
// may connect with the token returned.
func replicaPair(t *testing.T) (a, b *testServer, envID, agentToken string) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	var key [32]byte
	_, _ = rand.Read(key[:])
	secret := hex.EncodeToString(key[:])
	a = startServer(t, dbURL, func(c *server.Config) { c.SecretKey = secret })
	b = startServer(t, dbURL, func(c *server.Config) { c.SecretKey = secret })
	ctx := a.ctx
	u, err := a.srv.Store.CreateUser(ctx, store.User{Email: "ada@example.com", Name: "Ada", PasswordHash: "$2a$10$notreal"})
	if err != nil {
		t.Fatal(err)
	}
	env, err := a.srv.Store.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: "relayed", Status: store.StatusStopped, Runtime: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.srv.Store.UpdateEnvironment(ctx, env.ID, func(e *store.Environment) error {
		e.AgentTokenNonce = auth.NewAgentNonce()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := b.srv.AgentToken(ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, env.ID, tok
}

// TestReplicasRelayTunnels: two replicas on one database. A supervisor
// connected to replica a is reached through replica b (b relays to a);
// a's relay refuses a forged credential and opens nothing; when a stops,
// the supervisor redials the load balancer, now b, which then dials it
// itself.
func TestReplicasRelayTunnels(t *testing.T) {
	t.Parallel()
	a, b, envID, token := replicaPair(t)
	ctx := wait.Context(t, wait.Long)
	lb := newSwitchProxy(t, hostPort(t, a.url))

	sup := &echoSupervisor{}
	up := make(chan struct{}, 10)
	supCtx, stopSup := context.WithCancel(ctx)
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		_ = tunnel.Connect(supCtx, tunnel.AgentConfig{ServerURL: "http://" + lb.ln.Addr().String(), EnvironmentID: envID, Token: token,
			Handler: sup, Logger: slog.New(slog.DiscardHandler), MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			Connected: func() { up <- struct{}{} }})
	}()
	t.Cleanup(func() { stopSup(); <-supDone })

	select {
	case <-up:
	case <-ctx.Done():
		t.Fatal("the supervisor did not connect to a")
	}
	// The supervisor is up a moment before a has registered its tunnel.
	if err := a.srv.Tunnels.Await(ctx, envID); err != nil {
		t.Fatal(err)
	}
	if !a.srv.Tunnels.Connected(envID) || b.srv.Tunnels.Connected(envID) {
		t.Fatal("the tunnel is not a's alone")
	}
	// A snapshot asked of b (backup: Reachable) would go through too.
	wait.Eventually(ctx, t, "b to see the tunnel at a", func() bool { return b.srv.Tunnels.Reachable(ctx, envID) })

	echoThrough := func(ts *testServer, msg string) {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, wait.Medium)
		defer cancel()
		conn, err := ts.srv.Tunnels.Dial(dctx, envID, tunnel.Header{Service: tunnel.ServiceTCP})
		if err != nil {
			t.Fatalf("Dial through %s: %v", ts.url, err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo through %s = %q, %v", ts.url, buf, err)
		}
	}
	echoThrough(b, "relayed by a")
	// The supervisor's refusal comes back through the relay as it is.
	var refused *tunnel.RefusedError
	if _, err := b.srv.Tunnels.Dial(ctx, envID, tunnel.Header{Service: "telnet"}); !errors.As(err, &refused) {
		t.Fatalf("Dial(telnet) through b = %v, want RefusedError", err)
	}
	streams := sup.streams.Load()

	// a's relay, asked without a valid credential: a 404 with the
	// standard error body, and nothing opened at the supervisor.
	for name, header := range map[string]string{
		"none":   "",
		"forged": "Bearer " + strconv.FormatInt(time.Now().Add(20*time.Second).Unix(), 10) + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"agent":  "Bearer " + token,
	} {
		ws, resp, err := websocket.Dial(ctx, a.url+replicas.RelayPath(envID), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {header}}})
		if err == nil {
			ws.CloseNow()
			t.Fatalf("%s credential: a opened the relay", name)
		}
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s credential: %v, want 404", name, resp)
		}
	}
	var body sdk.ErrorResponse
	if code := a.call("GET", replicas.RelayPath(envID), "", nil, &body); code != http.StatusNotFound || body.Code != sdk.CodeNotFound {
		t.Fatalf("plain GET of the relay: %d %+v", code, body)
	}
	if got := sup.streams.Load(); got != streams {
		t.Fatalf("refused relays opened %d streams at the supervisor", got-streams)
	}

	// a goes away; the load balancer sends the supervisor to b.
	lb.target.Store(hostPort(t, b.url))
	a.stop()
	select {
	case <-up:
	case <-ctx.Done():
		t.Fatal("the supervisor did not redial b")
	}
	if err := b.srv.Tunnels.Await(ctx, envID); err != nil {
		t.Fatal(err)
	}
	if !b.srv.Tunnels.Connected(envID) {
		t.Fatal("b does not hold the tunnel the supervisor redialed")
	}
	echoThrough(b, "local to b")
	// b notes the tunnel just after taking it.
	h := holderOf(t, ctx, b, envID)
	if rs, err := b.srv.Store.ListReplicas(ctx); err != nil || len(rs) != 1 || rs[0].ID != h.Replica.ID {
		t.Fatalf("replicas after a stopped: %+v, %v; want b alone", rs, err)
	}
}

// TestStoppingReplicaHandsOffTunnels: a replica that stops tells its
// supervisors to move and exits once they have: when a's Serve returns,
// the supervisor (slower to redial than a is to shut down) is connected to
// b, where the load balancer sent it. A server alone does not wait.
func TestStoppingReplicaHandsOffTunnels(t *testing.T) {
	t.Parallel()
	a, b, envID, token := replicaPair(t)
	ctx := wait.Context(t, wait.Long)
	lb := newSwitchProxy(t, hostPort(t, a.url))
	startSupervisor(t, ctx, "http://"+lb.ln.Addr().String(), envID, token, time.Second, 2*time.Second, nil)
	if err := a.srv.Tunnels.Await(ctx, envID); err != nil {
		t.Fatal(err)
	}
	wait.Eventually(ctx, t, "b to see the tunnel at a", func() bool { return b.srv.Tunnels.Reachable(ctx, envID) })

	lb.target.Store(hostPort(t, b.url))
	a.stop()
	if !b.srv.Tunnels.Connected(envID) {
		t.Fatal("a exited before its supervisor had reached b")
	}

	// b is alone now: it stops without waiting for a supervisor that
	// has nowhere else to go.
	stopsAtOnce(t, b, "alone")
}

// stopsAtOnce stops ts, which has nowhere to send its supervisors (why),
// and fails if it waited for them to move.
func stopsAtOnce(t *testing.T, ts *testServer, why string) {
	t.Helper()
	start := time.Now()
	ts.stop()
	if took := time.Since(start); took > handoffWait/2 {
		t.Fatalf("a replica %s took %s to stop with a supervisor connected: it waited for the supervisor to move", why, took)
	}
}

// handoffWait is how long at most a stopping replica waits for its
// supervisors to move (server.handoffTimeout).
const handoffWait = 10 * time.Second

// holderOf waits until envID's tunnel is noted in ts's store as some
// replica's, and returns the note.
func holderOf(t *testing.T, ctx context.Context, ts *testServer, envID string) store.TunnelHolder {
	t.Helper()
	var h store.TunnelHolder
	wait.Succeeds(ctx, t, "the tunnel noted as a replica's", func() error {
		var err error
		h, err = ts.srv.Store.GetTunnelHolder(ctx, envID)
		return err
	})
	return h
}

// TestReplicasStoppingTogether: replicas stopped at once (compose down)
// do not wait for each other's supervisors: a replica whose others are all
// draining drops its tunnels and exits without waiting for them to move.
func TestReplicasStoppingTogether(t *testing.T) {
	t.Parallel()
	a, b, envID, token := replicaPair(t)
	ctx := wait.Context(t, wait.Long)
	supervisorAt(t, ctx, a, envID, token)
	h := holderOf(t, ctx, a, envID)
	rs, err := a.srv.Store.ListReplicas(ctx)
	if err != nil || len(rs) != 2 {
		t.Fatalf("replicas: %+v, %v", rs, err)
	}
	for _, r := range rs {
		if r.ID != h.Replica.ID {
			// b, as it marks itself when it begins to drain.
			if err := b.srv.Store.SetReplicaDraining(ctx, r.ID, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopsAtOnce(t, a, "whose other is draining")
}

// TestReplicaDeadHolderNotDialed: a tunnel noted as a replica's whose
// heartbeat is stale is not dialed (Dial waits, then reports the workspace
// unreachable); the same note with a fresh heartbeat is (the check can
// fail).
func TestReplicaDeadHolderNotDialed(t *testing.T) {
	t.Parallel()
	_, b, envID, _ := replicaPair(t)
	ctx := wait.Context(t, wait.Medium)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dialed atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })

	st := b.srv.Store
	if _, err := st.RegisterReplica(ctx, store.Replica{ID: "rep_gone", URL: "http://" + ln.Addr().String(), HeartbeatAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetTunnelHolder(ctx, envID, "rep_gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := b.srv.Tunnels.Dial(short, envID, tunnel.Header{Service: tunnel.ServiceTCP}); !errors.Is(err, tunnel.ErrNotConnected) {
		t.Fatalf("Dial with the holder dead = %v, want ErrNotConnected", err)
	}
	if n := dialed.Load(); n != 0 || b.srv.Tunnels.Reachable(ctx, envID) {
		t.Fatalf("the dead replica was dialed %d times, or counted reachable", n)
	}

	// Alive again: now it is dialed (and fails: it is no replica).
	if err := st.HeartbeatReplica(ctx, "rep_gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	short2, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if _, err := b.srv.Tunnels.Dial(short2, envID, tunnel.Header{Service: tunnel.ServiceTCP}); !errors.Is(err, tunnel.ErrNotConnected) {
		t.Fatalf("Dial with a holder that is no replica = %v, want ErrNotConnected", err)
	}
	if dialed.Load() == 0 {
		t.Fatal("a live holder was not dialed: the dead one's check proves nothing")
	}
}

// TestStopElsewhereDropsTunnel: a workspace stopped through one replica
// loses its supervisor's tunnel on another: the token it was revoked there
// and the tunnel must not outlive it.
func TestStopElsewhereDropsTunnel(t *testing.T) {
	t.Parallel()
	a, b, envID, token := replicaPair(t)
	ctx := wait.Context(t, wait.Long)
	supervisorAt(t, ctx, a, envID, token)
	// Running, as far as the store knows; b stops it.
	if _, err := b.srv.Store.UpdateEnvironment(ctx, envID, func(e *store.Environment) error {
		e.Status = store.StatusRunning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.srv.Manager.Stop(ctx, envID); err != nil {
		t.Fatal(err)
	}
	wait.Eventually(ctx, t, "a to drop the tunnel of the workspace b stopped", func() bool { return !a.srv.Tunnels.Connected(envID) })
	// And the supervisor's old token opens no new one.
	if _, resp, err := a.dialWS(t, token, tunnel.Path(envID)); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the stopped workspace's old token: %v %v, want 401", resp, err)
	}
}
