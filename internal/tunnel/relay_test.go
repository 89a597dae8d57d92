package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
)

// fabric stands for the store and network between replicas in these
// tests: who holds which tunnel, which replicas are alive, and a relay
// connection to each (a pipe to its ServeRelay). internal/replicas is the
// real one; internal/server tests it end to end.
type fabric struct {
	mu       sync.Mutex
	held     map[string]holding
	replicas map[string]*Registry
	dead     map[string]bool
	relays   map[string]int // relay connections each replica served
	forgot   chan holding
}

type holding struct {
	replica string
	since   time.Time
}

func newFabric() *fabric {
	return &fabric{held: map[string]holding{}, replicas: map[string]*Registry{}, dead: map[string]bool{}, relays: map[string]int{}, forgot: make(chan holding, 10)}
}

// replica makes a Registry that is replica name of f.
func (f *fabric) replica(t *testing.T, name string) *Registry {
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	reg.SetHolders(&fabricView{f: f, self: name, t: t}, 20*time.Millisecond)
	f.mu.Lock()
	f.replicas[name] = reg
	f.mu.Unlock()
	return reg
}

type fabricView struct {
	f    *fabric
	self string
	t    *testing.T
}

func (v *fabricView) Record(_ context.Context, env string, since time.Time) error {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	v.f.held[env] = holding{v.self, since}
	return nil
}

func (v *fabricView) Forget(_ context.Context, env string, since time.Time) error {
	v.f.mu.Lock()
	if v.f.held[env] == (holding{v.self, since}) {
		delete(v.f.held, env)
	}
	v.f.mu.Unlock()
	v.f.forgot <- holding{v.self, since}
	return nil
}

// holder is the live other replica holding env, if any.
func (v *fabricView) holder(env string) (string, time.Time, bool) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	h, ok := v.f.held[env]
	if !ok || h.replica == v.self || v.f.dead[h.replica] {
		return "", time.Time{}, false
	}
	return h.replica, h.since, true
}

func (v *fabricView) Held(_ context.Context, env string, since time.Time) (bool, error) {
	_, at, ok := v.holder(env)
	return ok && !at.Before(since), nil
}

func (v *fabricView) HeldHere(context.Context) (int, error) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	n := 0
	for _, h := range v.f.held {
		if h.replica == v.self {
			n++
		}
	}
	return n, nil
}

func (v *fabricView) DialHolder(ctx context.Context, env string) (net.Conn, error) {
	name, _, ok := v.holder(env)
	if !ok {
		return nil, ErrNoHolder
	}
	v.f.mu.Lock()
	remote := v.f.replicas[name]
	v.f.relays[name]++
	v.f.mu.Unlock()
	here, there := net.Pipe()
	go func() {
		if err := remote.ServeRelay(context.WithoutCancel(ctx), env, there); err != nil && !errors.Is(err, ErrNotHere) {
			v.t.Errorf("ServeRelay: %v", err)
		}
	}()
	return here, nil
}

func (f *fabric) relaysServed(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.relays[name]
}

// TestDialRelaysToTheHolder: a supervisor connected to replica a is
// reached through replica b with the same semantics as a local stream:
// bytes both ways, a large payload, a half-close answered, a refusal
// reported as a RefusedError.
func TestDialRelaysToTheHolder(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	f := newFabric()
	a, b := f.replica(t, "a"), f.replica(t, "b")
	startAgent(t, ctx, testServer(t, a, "secret").URL, "secret")
	if err := a.Await(ctx, "env_a"); err != nil {
		t.Fatal(err)
	}
	if b.Connected("env_a") || !b.Reachable(ctx, "env_a") {
		t.Fatalf("b: Connected %v, Reachable %v; want false (not here), true (at a)", b.Connected("env_a"), b.Reachable(ctx, "env_a"))
	}
	if err := b.Await(ctx, "env_a"); err != nil {
		t.Fatalf("b.Await with the tunnel at a: %v", err)
	}

	conn, err := b.Dial(ctx, "env_a", Header{Service: ServiceTCP})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, conn, "through b")
	big := strings.Repeat("0123456789abcdef", 1<<16)
	go func() { _, _ = conn.Write([]byte(big)) }()
	buf := make([]byte, len(big))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != big {
		t.Fatalf("1 MiB echo through the relay: %v", err)
	}
	// Close ends what this side sends, as a local stream's does: the
	// answer to what was sent still comes back, then EOF.
	if _, err := conn.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(conn)
	if err != nil || string(rest) != "last" {
		t.Fatalf("after Close: %q, %v; want \"last\" then EOF", rest, err)
	}
	// The far end let go of the relay connection once both sides ended.
	select {
	case <-conn.(*relayedConn).sess.CloseChan():
	case <-ctx.Done():
		t.Fatal("the relay connection outlived its stream")
	}

	_, err = b.Dial(ctx, "env_a", Header{Service: "telnet"})
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "telnet") {
		t.Fatalf("Dial(unknown service) through the relay = %v, want RefusedError", err)
	}
	if n := f.relaysServed("a"); n != 2 {
		t.Fatalf("a served %d relays, want 2", n)
	}
}

// TestRelayedDialWaitsAndLocalWins: a Dial for a tunnel nobody holds
// waits; one another replica takes meanwhile is found by polling, and one
// that arrives here is taken at once, relay or not.
func TestRelayedDialWaitsAndLocalWins(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	f := newFabric()
	a, b := f.replica(t, "a"), f.replica(t, "b")

	dialed := make(chan error, 1)
	go func() {
		conn, err := b.Dial(ctx, "env_a", Header{Service: ServiceTCP})
		if err == nil {
			echo(t, conn, "found at a")
			conn.Close()
		}
		dialed <- err
	}()
	up := startAgent(t, ctx, testServer(t, a, "secret").URL, "secret")
	<-up
	if err := <-dialed; err != nil {
		t.Fatalf("Dial waiting for the tunnel, which came to a: %v", err)
	}
	if f.relaysServed("a") == 0 {
		t.Fatal("b's Dial did not go through a")
	}

	// The supervisor moves to b (a dropped it): b dials it locally, and
	// a's end of the old tunnel, forgotten, does not erase b's note.
	srvB := testServer(t, b, "secret")
	upB := startAgent(t, ctx, srvB.URL, "secret")
	<-upB
	// The agent is up a moment before b has registered its tunnel.
	wait.Eventually(ctx, t, "b to hold the tunnel", func() bool { return b.Connected("env_a") })
	before := f.relaysServed("a")
	conn, err := b.Dial(ctx, "env_a", Header{Service: ServiceTCP})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, conn, "local")
	conn.Close()
	if f.relaysServed("a") != before {
		t.Fatal("b relayed to a for a tunnel it holds itself")
	}
	a.Disconnect("env_a") // the first agent redials a: it keeps running
	if got := <-f.forgot; got.replica != "a" {
		t.Fatalf("forgot %+v, want a's tunnel", got)
	}
	<-up // the first agent is back at a, which records it
	if err := b.AwaitSince(ctx, "env_a", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// TestDeadHolderIsNotDialed: a tunnel noted as a dead replica's is not
// dialed; Dial waits and reports ErrNotConnected.
func TestDeadHolderIsNotDialed(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	f := newFabric()
	a, b := f.replica(t, "a"), f.replica(t, "b")
	startAgent(t, ctx, testServer(t, a, "secret").URL, "secret")
	if err := a.Await(ctx, "env_a"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.dead["a"] = true
	f.mu.Unlock()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := b.Dial(short, "env_a", Header{Service: ServiceTCP}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Dial with the holder dead = %v, want ErrNotConnected", err)
	}
	if b.Reachable(ctx, "env_a") {
		t.Fatal("Reachable through a dead replica")
	}
	if n := f.relaysServed("a"); n != 0 {
		t.Fatalf("the dead replica was dialed %d times", n)
	}
}

// TestServeRelayWithoutTheTunnel: a relay for a tunnel this replica does
// not hold opens nothing and says so.
func TestServeRelayWithoutTheTunnel(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	here, there := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- reg.ServeRelay(ctx, "env_a", there) }()
	stream, err := openRelayed(here, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if err := handshake(ctx, stream, Header{Service: ServiceTCP}); err == nil {
		t.Fatal("a relay without the tunnel answered the handshake")
	}
	if err := <-done; !errors.Is(err, ErrNotHere) {
		t.Fatalf("ServeRelay = %v, want ErrNotHere", err)
	}
}

// TestHandoff: Handoff drops the tunnels and returns once each is held by
// another replica by a connection newer than the one dropped; when ctx
// ends first, it says how many had not moved.
func TestHandoff(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	f := newFabric()
	// The agents redial the replicas that dropped them, which turn them
	// away: each time they say they are up.
	drain := func(up <-chan struct{}) {
		go func() {
			for {
				select {
				case <-up:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	a := f.replica(t, "a")
	drain(startAgent(t, ctx, testServer(t, a, "secret").URL, "secret"))
	if err := a.Await(ctx, "env_a"); err != nil {
		t.Fatal(err)
	}
	type result struct{ dropped, stayed int }
	done := make(chan result, 1)
	go func() {
		dropped, stayed := a.Handoff(ctx)
		done <- result{dropped, stayed}
	}()
	wait.Eventually(ctx, t, "a to drop the tunnel", func() bool { return !a.Connected("env_a") })
	// Its agent redials a, which turns it away: nothing has moved yet.
	select {
	case r := <-done:
		t.Fatalf("Handoff returned %+v before the supervisor was anywhere else", r)
	default:
	}
	f.mu.Lock()
	f.held["env_a"] = holding{"b", time.Now()}
	f.mu.Unlock()
	if r := <-done; r != (result{1, 0}) {
		t.Fatalf("Handoff = %+v, want 1 dropped, all moved", r)
	}

	// A supervisor that never moves: Handoff gives up when ctx ends.
	f.mu.Lock()
	delete(f.held, "env_a")
	f.mu.Unlock()
	c := f.replica(t, "c")
	drain(startAgent(t, ctx, testServer(t, c, "secret").URL, "secret"))
	if err := c.Await(ctx, "env_a"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if dropped, stayed := c.Handoff(short); dropped != 1 || stayed != 1 {
		t.Fatalf("Handoff with nowhere to go = %d dropped, %d not moved; want 1, 1", dropped, stayed)
	}
}
