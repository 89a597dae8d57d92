package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/testutil/wait"
)

// echoHandler serves ServiceTCP by echoing and refuses everything else.
type echoHandler struct{}

func (echoHandler) ServeStream(ctx context.Context, h Header, conn net.Conn) {
	defer conn.Close()
	if h.Service != ServiceTCP {
		_ = WriteReply(conn, Reply{Error: "no such service: " + h.Service})
		return
	}
	_ = WriteReply(conn, Reply{OK: true})
	_, _ = io.Copy(conn, conn)
}

// testServer is the server's end: an HTTP endpoint that accepts tunnels for
// one environment with one token, like the real API does.
func testServer(t *testing.T, reg *Registry, token string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path("env_a") || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = reg.Serve(r.Context(), "env_a", websocket.NetConn(r.Context(), ws, websocket.MessageBinary))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func startAgent(t *testing.T, ctx context.Context, url, token string) <-chan struct{} {
	t.Helper()
	up := make(chan struct{}, 10)
	agentCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Connect(agentCtx, AgentConfig{
			ServerURL: url, EnvironmentID: "env_a", Token: token, Handler: echoHandler{},
			Logger: slog.New(slog.DiscardHandler), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			Connected: func() { up <- struct{}{} },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Connect: %v", err)
		}
	})
	return up
}

func echo(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestDialWaitsForAgentAndReconnects(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	srv := testServer(t, reg, "secret")

	// Dial before the agent exists: it waits for it.
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := reg.Dial(ctx, "env_a", Header{Service: ServiceTCP})
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	up := startAgent(t, ctx, srv.URL, "secret")
	conn := <-dialed
	if conn == nil {
		t.FailNow()
	}
	echo(t, conn, "hello")
	// A large payload crosses several yamux frames and window updates.
	big := strings.Repeat("0123456789abcdef", 1<<16)
	go func() { _, _ = conn.Write([]byte(big)) }()
	buf := make([]byte, len(big))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != big {
		t.Fatalf("1 MiB echo: %v", err)
	}
	conn.Close()
	<-up

	// The server drops the tunnel (as a restart would): the agent comes back.
	reg.Disconnect("env_a")
	select {
	case <-up:
	case <-ctx.Done():
		t.Fatal("agent did not reconnect")
	}
	conn, err := reg.Dial(ctx, "env_a", Header{Service: ServiceTCP})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, conn, "again")
	conn.Close()
	if !reg.Connected("env_a") {
		t.Fatal("Connected = false with a live agent")
	}
}

func TestRefusedService(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	srv := testServer(t, reg, "secret")
	startAgent(t, ctx, srv.URL, "secret")
	_, err := reg.Dial(ctx, "env_a", Header{Service: "telnet"})
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "telnet") {
		t.Fatalf("Dial(unknown service) = %v, want RefusedError", err)
	}
}

func TestDialTimesOutWithoutAgent(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := reg.Dial(ctx, "env_nobody", Header{Service: ServiceTCP}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Dial = %v, want ErrNotConnected", err)
	}
}

func TestAgentWithWrongTokenKeepsTrying(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	startAgent(t, ctx, srv.URL, "wrong")
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := reg.Dial(dctx, "env_a", Header{Service: ServiceTCP}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Dial = %v, want ErrNotConnected", err)
	}
	if attempts.Load() < 2 {
		t.Fatalf("agent tried %d times; it must keep retrying with backoff", attempts.Load())
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	want := Header{Service: ServicePTY, Reconnect: "r1", Width: 80, Height: 24}
	go func() {
		_ = WriteHeader(a, want)
		_, _ = a.Write([]byte("rest"))
	}()
	got, err := ReadHeader(b)
	if err != nil || got != want {
		t.Fatalf("ReadHeader = %+v, %v", got, err)
	}
	rest := make([]byte, 4)
	if _, err := io.ReadFull(b, rest); err != nil || string(rest) != "rest" {
		t.Fatalf("bytes after the header were consumed: %q %v", rest, err)
	}
}

func TestAwaitWaitsForAgent(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := reg.Await(short, "env_a"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Await without an agent = %v, want ErrNotConnected", err)
	}
	srv := testServer(t, reg, "secret")
	awaited := make(chan error, 1)
	go func() { awaited <- reg.Await(ctx, "env_a") }()
	startAgent(t, ctx, srv.URL, "secret")
	if err := <-awaited; err != nil {
		t.Fatalf("Await = %v", err)
	}
	if !reg.Connected("env_a") {
		t.Fatal("Await returned before the agent was connected")
	}
}

// TestAwaitSinceWantsANewTunnel: a tunnel that was there before since
// does not answer AwaitSince (it may be a workspace's earlier run); the
// next one does.
func TestAwaitSinceWantsANewTunnel(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.Medium)
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	srv := testServer(t, reg, "secret")
	startAgent(t, ctx, srv.URL, "secret")
	if err := reg.AwaitSince(ctx, "env_a", time.Time{}); err != nil {
		t.Fatalf("AwaitSince(zero) = %v", err)
	}
	since := time.Now()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := reg.AwaitSince(short, "env_a", since); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("AwaitSince with only a tunnel from before = %v, want ErrNotConnected", err)
	}
	if !reg.Connected("env_a") {
		t.Fatal("the earlier tunnel went away")
	}
	awaited := make(chan error, 1)
	go func() { awaited <- reg.AwaitSince(ctx, "env_a", since) }()
	reg.Disconnect("env_a") // the agent redials
	if err := <-awaited; err != nil {
		t.Fatalf("AwaitSince after the agent redialed = %v", err)
	}
	if !reg.Connected("env_a") {
		t.Fatal("AwaitSince returned before the agent was connected")
	}
}

// TestClosedRegistryTurnsTunnelsAway: once the server shuts down, a
// supervisor that redials it before its listener closes is not taken in
// (its tunnel would outlive the server, and it would never redial the next
// one): it keeps trying, and nothing is registered.
func TestClosedRegistryTurnsTunnelsAway(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(slog.New(slog.DiscardHandler))
	srv := testServer(t, reg, "tok")
	up := startAgent(t, t.Context(), srv.URL, "tok")
	wait := func(what string) {
		t.Helper()
		select {
		case <-up:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the agent did not connect", what)
		}
	}
	wait("first connection")
	reg.Close()
	// It redials at once and is turned away, again and again.
	wait("redial after Close")
	wait("redial after being turned away")
	if reg.Connected("env_a") {
		t.Fatal("a tunnel that arrived after Close is registered")
	}
}
