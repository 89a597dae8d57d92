package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/sdk"
)

func TestMain(m *testing.M) {
	devserver.RunSupervisorIfAsked()
	os.Exit(m.Run())
}

type testServer struct {
	ctx context.Context
	srv *server.Server
	url string
	dev *devserver.Server
}

// startServer runs a real server (SQLite, local runtime) on a loopback port.
func startServer(t *testing.T, mutate func(*server.Config)) *testServer {
	t.Helper()
	srv := devserver.Start(t, devserver.Options{Config: mutate})
	return &testServer{ctx: srv.Ctx, srv: srv.Server, url: srv.URL, dev: srv}
}

// login signs a new user up (the first by themself, the others with an
// invite) and returns a client with their token.
func (ts *testServer) login(t *testing.T, email string) *sdk.Client {
	t.Helper()
	anon := sdk.New(ts.url, "")
	if _, err := ts.dev.Signup(t, anon, email, "correct horse", "Ada"); err != nil {
		t.Fatal(err)
	}
	token, _, err := anon.Login(ts.ctx, email, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	return sdk.New(ts.url, token)
}

func apiError(t *testing.T, err error) *sdk.Error {
	t.Helper()
	var e *sdk.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *sdk.Error", err, err)
	}
	return e
}

func TestErrors(t *testing.T) {
	t.Parallel()
	// Open signup, so that signing up twice is the conflict it is about
	// (under invite an uninvited second signup is INVITE_REQUIRED).
	ts := startServer(t, func(c *server.Config) { c.Signup = signup.Open })
	anon := sdk.New(ts.url, "")

	_, _, err := anon.Login(ts.ctx, "nobody@example.com", "wrong password")
	e := apiError(t, err)
	if e.Status != 401 || e.Code != sdk.CodeUnauthorized || e.Message != "Invalid email or password" || e.RequestID == "" || !sdk.IsUnauthorized(err) {
		t.Fatalf("bad login: %#v", e)
	}
	_, err = anon.Me(ts.ctx)
	if e := apiError(t, err); e.Status != 401 || !strings.Contains(e.Details, "Bearer") || e.Error() != e.Message+": "+e.Details {
		t.Fatalf("me without a token: %#v", e)
	}
	_, err = anon.Signup(ts.ctx, "not an email", "correct horse", "")
	if e := apiError(t, err); e.Status != 400 || e.Code != sdk.CodeValidation || !strings.HasPrefix(e.Details, "email:") {
		t.Fatalf("signup with a bad email: %#v", e)
	}
	c := ts.login(t, "ada@example.com")
	_, err = anon.Signup(ts.ctx, "ada@example.com", "correct horse", "")
	if e := apiError(t, err); e.Status != 409 || !sdk.IsCode(err, sdk.CodeConflict) {
		t.Fatalf("signup twice: %#v", e)
	}

	_, err = c.GetEnvironment(ts.ctx, "env_doesnotexist")
	if e := apiError(t, err); e.Status != 404 || e.Code != sdk.CodeNotFound || !sdk.IsNotFound(err) {
		t.Fatalf("get a missing environment: %#v", e)
	}
	_, err = c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "big", CPUCores: sdk.Float(99)})
	if e := apiError(t, err); e.Code != sdk.CodeValidation || !strings.Contains(e.Details, "cpu_cores") {
		t.Fatalf("create with 99 CPUs: %#v", e)
	}
	_, err = c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "Not A Label"})
	if e := apiError(t, err); e.Code != sdk.CodeValidation {
		t.Fatalf("create with a bad name: %#v", e)
	}
	_, err = c.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{Statuses: []sdk.Status{"SLEEPING"}})
	if e := apiError(t, err); e.Code != sdk.CodeValidation || !strings.Contains(e.Details, "SLEEPING") {
		t.Fatalf("list with a bad status: %#v", e)
	}
	// The first user is the admin: all=true is allowed, not for others.
	if _, err = c.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{All: true}); err != nil {
		t.Fatalf("admin lists all: %v", err)
	}
	member := ts.login(t, "bob@example.com")
	if _, err = member.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{All: true}); apiError(t, err).Code != sdk.CodeForbidden {
		t.Fatalf("member lists all: %v", err)
	}
	_, err = c.FindEnvironment(ts.ctx, "nope")
	var nf *sdk.EnvironmentNotFoundError
	if !errors.As(err, &nf) || err.Error() != `environment "nope" not found` {
		t.Fatalf("find nope: %v", err)
	}

	// Answers that are not the API's own: status and an excerpt.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>upstream is down</html>\n<body>...</body>")
	}))
	defer proxy.Close()
	_, err = sdk.New(proxy.URL, "t").Me(ts.ctx)
	if e := apiError(t, err); e.Status != 502 || e.Message != "Bad Gateway" || e.Details != "<html>upstream is down</html>" || e.Code != "" {
		t.Fatalf("HTML 502: %#v", e)
	}

	// A bad base URL is reported by every call.
	for _, u := range []string{"ftp://example.com", "example.com", "http://", "http://h/?q=1"} {
		if _, err := sdk.New(u, "").Me(ts.ctx); err == nil || !strings.Contains(err.Error(), "server URL") {
			t.Errorf("base URL %q: %v", u, err)
		}
	}
}

// TestPathPrefix: a server behind a proxy under a path.
func TestPathPrefix(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.login(t, "ada@example.com")
	proxy := httptest.NewServer(http.StripPrefix("/dev8", ts.srv.Handler()))
	defer proxy.Close()
	for _, base := range []string{proxy.URL + "/dev8", proxy.URL + "/dev8/"} {
		me, err := sdk.New(base, c.Token()).Me(ts.ctx)
		if err != nil || me.Email != "ada@example.com" {
			t.Fatalf("me through %s: %+v, %v", base, me, err)
		}
	}
}

func TestEnvironments(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	anon := sdk.New(ts.url, "")
	if _, err := anon.Signup(ts.ctx, "ada@example.com", "correct horse", "Ada"); err != nil {
		t.Fatal(err)
	}
	token, user, err := anon.Login(ts.ctx, "ada@example.com", "correct horse")
	// A login is a session; its secret is the CLI's bearer token.
	if err != nil || !strings.HasPrefix(token, "dev8s_") || user.Email != "ada@example.com" || user.Role != "admin" {
		t.Fatalf("login = %q %+v, %v", token, user, err)
	}
	c := sdk.New(ts.url, token, sdk.WithUserAgent("sdk-test"))
	if c.BaseURL() != ts.url || c.Token() != token {
		t.Fatalf("client = %s %s", c.BaseURL(), c.Token())
	}
	me, err := c.Me(ts.ctx)
	if err != nil || me.ID != user.ID || me.Name != "Ada" || me.CreatedAt.IsZero() {
		t.Fatalf("me = %+v, %v", me, err)
	}

	tpls, err := c.Templates(ts.ctx)
	if err != nil || !slices.ContainsFunc(tpls, func(t sdk.Template) bool { return t.Name == "nodejs" && t.DefaultCPU > 0 && t.EstimatedCostPerHour > 0 }) {
		t.Fatalf("templates = %+v, %v", tpls, err)
	}
	its, err := c.InstanceTypes(ts.ctx)
	if err != nil || !slices.ContainsFunc(its, func(i sdk.InstanceType) bool { return i.Name == "balanced" && i.CPUCores == 2 && i.MemoryGB == 4 }) {
		t.Fatalf("instance types = %+v, %v", its, err)
	}

	never := 0
	env, err := c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{
		Name: "one", TemplateName: "nodejs", InstanceType: "lightweight", AutoStopMinutes: &never,
		EnvironmentVariables: map[string]string{"A": "b"}, Ports: []sdk.Port{{Port: 3000, Protocol: "tcp"}},
	})
	if err != nil || env.Status != sdk.StatusCreating || !strings.HasPrefix(env.ID, "env_") || env.AutoStopMinutes != 0 || env.CPUCores != 1 || env.EnvironmentVariables["A"] != "b" {
		t.Fatalf("create = %+v, %v", env, err)
	}
	var seen []sdk.Status
	running, err := c.WaitForStatus(ts.ctx, env.ID, sdk.StatusRunning, func(e sdk.Environment) { seen = append(seen, e.Status) })
	if err != nil || running.Status != sdk.StatusRunning || running.ID != env.ID {
		t.Fatalf("wait for RUNNING = %+v, %v", running, err)
	}
	if len(seen) == 0 || seen[len(seen)-1] != sdk.StatusRunning || len(slices.Compact(slices.Clone(seen))) != len(seen) {
		t.Fatalf("statuses seen: %v (each change once, ending RUNNING)", seen)
	}

	two, err := c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "two"})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{Limit: 1})
	if err != nil || page.Total != 2 || len(page.Environments) != 1 || page.Limit != 1 {
		t.Fatalf("page 1 = %+v, %v", page, err)
	}
	page2, err := c.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{Limit: 1, Offset: 1})
	if err != nil || len(page2.Environments) != 1 || page2.Offset != 1 || page2.Environments[0].ID == page.Environments[0].ID {
		t.Fatalf("page 2 = %+v, %v", page2, err)
	}
	all, err := c.AllEnvironments(ts.ctx, sdk.EnvironmentFilter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("all = %d, %v", len(all), err)
	}
	if got, err := c.FindEnvironment(ts.ctx, "two"); err != nil || got.ID != two.ID {
		t.Fatalf("find two by name = %+v, %v", got, err)
	}
	if got, err := c.FindEnvironment(ts.ctx, two.ID); err != nil || got.Name != "two" {
		t.Fatalf("find two by id = %+v, %v", got, err)
	}
	if _, err := c.WaitForStatus(ts.ctx, two.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	running2, err := c.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{Statuses: []sdk.Status{sdk.StatusRunning, sdk.StatusStopped}})
	if err != nil || running2.Total != 2 {
		t.Fatalf("list RUNNING,STOPPED = %+v, %v", running2, err)
	}

	res, err := c.Stop(ts.ctx, env.ID)
	if err != nil || res.Status != sdk.StatusStopping || res.ID != env.ID || res.Message == "" {
		t.Fatalf("stop = %+v, %v", res, err)
	}
	stopped, err := c.WaitForStatus(ts.ctx, env.ID, sdk.StatusStopped, nil)
	if err != nil || stopped.StoppedAt == nil {
		t.Fatalf("wait for STOPPED = %+v, %v", stopped, err)
	}
	if res, err := c.Stop(ts.ctx, env.ID); err != nil || res.Status != sdk.StatusStopped {
		t.Fatalf("stop again = %+v, %v", res, err)
	}
	if res, err := c.Start(ts.ctx, env.ID); err != nil || res.Status != sdk.StatusStarting {
		t.Fatalf("start = %+v, %v", res, err)
	}
	if _, err := c.WaitForStatus(ts.ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ReportActivity(ts.ctx, env.ID); err != nil {
		t.Fatal(err)
	}

	// A wait that cannot end ends with its context.
	short, cancel := context.WithTimeout(ts.ctx, 600*time.Millisecond)
	_, err = c.WaitForStatus(short, env.ID, sdk.StatusStopped, nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for a status that never comes: %v", err)
	}

	if res, err := c.Delete(ts.ctx, env.ID); err != nil || res.Status != sdk.StatusDeleting {
		t.Fatalf("delete = %+v, %v", res, err)
	}
	if err := c.WaitForDeleted(ts.ctx, env.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetEnvironment(ts.ctx, env.ID); !sdk.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
	// The name is free; FindEnvironment finds the new one.
	again, err := c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.FindEnvironment(ts.ctx, "one"); err != nil || got.ID != again.ID {
		t.Fatalf("find the recreated one = %+v, %v", got, err)
	}
}

func TestWaitForStatusError(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-supervisor")
	ts := startServer(t, func(c *server.Config) { c.SupervisorCommand = []string{missing} })
	c := ts.login(t, "ada@example.com")
	env, err := c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "broken"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []sdk.Status
	_, err = c.WaitForStatus(ts.ctx, env.ID, sdk.StatusRunning, func(e sdk.Environment) { seen = append(seen, e.Status) })
	var envErr *sdk.EnvironmentError
	if !errors.As(err, &envErr) || envErr.Environment.Status != sdk.StatusError || !strings.Contains(envErr.Environment.StatusReason, "no-such-supervisor") ||
		err.Error() != `environment "broken" failed: `+envErr.Environment.StatusReason {
		t.Fatalf("wait for RUNNING of a broken environment: %v", err)
	}
	if seen[len(seen)-1] != sdk.StatusError {
		t.Fatalf("statuses seen: %v", seen)
	}
	// Waiting for ERROR itself is fine.
	if e, err := c.WaitForStatus(ts.ctx, env.ID, sdk.StatusError, nil); err != nil || e.StatusReason == "" {
		t.Fatalf("wait for ERROR = %+v, %v", e, err)
	}
	if _, err := c.Delete(ts.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDeleted(ts.ctx, env.ID, nil); err != nil {
		t.Fatalf("delete from ERROR: %v", err)
	}
}

// TestDialPTY needs the server's /pty endpoint and the supervisor's tunnel.
func TestDialPTY(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.login(t, "ada@example.com")
	env, err := c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "term"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForStatus(ts.ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	pty, err := c.DialPTY(ts.ctx, env.ID, sdk.PTYOptions{Width: 100, Height: 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(pty.ID()) != 36 {
		t.Fatalf("reconnect id %q is not a UUID", pty.ID())
	}
	if err := pty.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := pty.Write([]byte("stty size; echo pty-$((40+2))\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, ts.ctx, pty, "pty-42")
	pty.Close()

	// Resumed by id: the same shell, its scrollback replayed.
	again, err := c.DialPTY(ts.ctx, env.ID, sdk.PTYOptions{Reconnect: pty.ID()})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	out := readUntil(t, ts.ctx, again, "pty-42")
	if !strings.Contains(out, "40 120") {
		t.Fatalf("terminal size after resize: %q", out)
	}
}

// readUntil reads r until want appears; the end of ctx closes r.
func readUntil(t *testing.T, ctx context.Context, r io.ReadCloser, want string) string {
	t.Helper()
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	var buf bytes.Buffer
	b := make([]byte, 4096)
	for !strings.Contains(buf.String(), want) {
		n, err := r.Read(b)
		buf.Write(b[:n])
		if err != nil {
			t.Fatalf("read %q so far, want %q: %v", buf.String(), want, err)
		}
	}
	return buf.String()
}

// TestWatchRidesOutServerErrors: a few 5xx answers (a restarting server
// behind a proxy) do not end a wait; a 4xx does.
func TestWatchRidesOutServerErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	c := ts.login(t, "ada@example.com")
	env, err := c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	failures := 3
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := failures > 0
		failures--
		mu.Unlock()
		if fail {
			http.Error(w, "restarting", http.StatusBadGateway)
			return
		}
		ts.srv.Handler().ServeHTTP(w, r)
	}))
	defer proxy.Close()
	flaky := sdk.New(proxy.URL, c.Token())
	if _, err := flaky.WaitForStatus(ts.ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatalf("wait through 502s: %v", err)
	}
	if _, err := flaky.WaitForStatus(ts.ctx, "env_doesnotexist", sdk.StatusRunning, nil); !sdk.IsNotFound(err) {
		t.Fatalf("wait for a missing environment: %v", err)
	}
}
