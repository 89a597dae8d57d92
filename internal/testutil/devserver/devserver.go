// Package devserver runs a real Dev8 server for tests: store, local runtime,
// lifecycle and API on a loopback port, with the test binary itself as the
// workspaces' supervisor, so no separately built dev8 is needed.
package devserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/supervisor"
	"dev8.dev/dev8/sdk"
)

// supervisorEnv marks a test binary started as a workspace's supervisor.
const supervisorEnv = "DEV8_TEST_SUPERVISOR"

// httpdEnv makes a test binary an HTTP server on that address (see
// HTTPDCommand).
const httpdEnv = "DEV8_TEST_HTTPD"

// HTTPDCommand is a shell command that runs, in a workspace, a small HTTP
// server on addr (host:port in the workspace) made of the test binary
// itself: a workspace's app for tests of apps' own origins, started inside
// the workspace (through a terminal) as a person's would be. The package's
// TestMain must call RunSupervisorIfAsked.
//
// It answers GET /page with an HTML page, and any other request with
// AppRequest as JSON: what reached the app. /set-cookie?name=…&value=…
// also sets that cookie.
func HTTPDCommand(addr string) string {
	return httpdEnv + "=" + addr + " exec '" + strings.ReplaceAll(os.Args[0], "'", `'\''`) + "'"
}

// AppRequest is what the test app saw of a request.
type AppRequest struct {
	Method, Path, Host, Cookie, Authorization, ForwardedHost string
}

func appHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/page" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!doctype html><title>workspace app</title><h1 id=app>a workspace's app</h1>")
			return
		}
		if r.URL.Path == "/set-cookie" {
			http.SetCookie(w, &http.Cookie{Name: r.URL.Query().Get("name"), Value: r.URL.Query().Get("value"), Path: "/"})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(AppRequest{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Cookie: r.Header.Get("Cookie"),
			Authorization: r.Header.Get("Authorization"), ForwardedHost: r.Header.Get("X-Forwarded-Host")})
	})
}

// RunSupervisorIfAsked must be the first thing a package's TestMain does
// when its tests use Start: if this process was started as a workspace's
// supervisor (or its stand-in code-server, FakeCodeServer), it runs as that
// and exits.
func RunSupervisorIfAsked() {
	// First: the code-server a supervisor starts may inherit its marker.
	if os.Getenv(fakeCodeServerEnv) == "1" {
		if err := runFakeCodeServer(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if addr := os.Getenv(httpdEnv); addr != "" {
		// Started in a workspace by HTTPDCommand.
		if err := http.ListenAndServe(addr, appHandler()); err != nil {
			fmt.Fprintln(os.Stderr, "test app:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(supervisorEnv) != "1" {
		return
	}
	if err := supervisor.Main(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "supervisor:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Clock is a server clock a test can move forward.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the real time plus every Advance so far.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Options adjust Start. The zero value is a fresh SQLite server on a random
// loopback port.
type Options struct {
	// DataDir to serve from (default: a new temp dir); reuse one to start
	// a server as a restarted one would.
	DataDir string
	// Addr to listen on (default 127.0.0.1:0).
	Addr string
	// Config adjusts the server's configuration before it starts.
	Config func(*server.Config)
}

// Server is a running test server.
type Server struct {
	*server.Server
	Ctx     context.Context
	URL     string
	DataDir string
	Clock   *Clock
	// Stop shuts the server down gracefully (workspaces keep running, as
	// in production). Cleanup calls it too.
	Stop func()
}

// Start runs a server until the test ends, then removes every workspace it
// made (they outlive a server by design) and stops it.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	clock := &Clock{}
	cfg := server.Config{
		DataDir:           opts.DataDir,
		Runtime:           "local",
		SupervisorCommand: []string{os.Args[0]},
		// atexit_sleep_ms=0: a race-enabled supervisor would otherwise
		// linger a second after every stop.
		SupervisorEnv:  []string{supervisorEnv + "=1", "GORACE=atexit_sleep_ms=0"},
		ReaperInterval: 20 * time.Millisecond,
		ResyncInterval: 200 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:            clock.Now,
		BcryptCost:     auth.MinBcryptCost,
		// Tests of several users on one machine run their workspaces on
		// the local runtime; the rule that only admins may is tested with
		// it off (TestLocalRuntimeAdminOnly).
		LocalForMembers: true,
	}
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, ln) }()
	s := &Server{Server: srv, Ctx: ctx, URL: "http://" + ln.Addr().String(), DataDir: opts.DataDir, Clock: clock}
	// Answering: Serve got past what it does before it serves (registering
	// among the replicas, and refusing to when it must). The listener
	// holds the request until then.
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/live", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			stop()
			srv.Close()
			t.Fatalf("the server does not answer: %v", err)
		}
	case err := <-done:
		srv.Close()
		t.Fatalf("serve: %v", err)
	}
	s.Stop = sync.OnceFunc(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	t.Cleanup(func() {
		envs, _, _ := srv.Store.ListEnvironments(context.Background(), store.EnvironmentFilter{})
		for _, e := range envs {
			_ = srv.RemoveInstance(context.Background(), e)
		}
		s.Stop()
	})
	return s
}

// Invite makes an invite for email (empty: any address), as an admin
// would, straight in the store, and returns its token.
func (s *Server) Invite(t testing.TB, email string) string {
	t.Helper()
	token, hash, err := signup.NewInviteToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateInvite(s.Ctx, store.Invite{Hash: hash, Email: email, Role: store.RoleMember, ExpiresAt: time.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	return token
}

// Signup signs email up through the API as a person would under the
// default signup policy (invite): the first user by themself (becoming
// the admin), everyone after with an invite made for them.
func (s *Server) Signup(t testing.TB, c *sdk.Client, email, password, name string) (*sdk.User, error) {
	t.Helper()
	has, err := s.Store.HasUsers(s.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !has {
		u, err := c.Signup(s.Ctx, email, password, name)
		if !sdk.IsCode(err, sdk.CodeInviteRequired) {
			return u, err
		}
		// Another signup was first a moment ago.
	}
	return c.SignupWithInvite(s.Ctx, email, password, name, s.Invite(t, email))
}
