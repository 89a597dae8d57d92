package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/internal/testutil/loopback"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

func TestMain(m *testing.M) {
	devserver.RunSupervisorIfAsked()
	os.Exit(m.Run())
}

type testServer struct {
	t       *testing.T
	ctx     context.Context
	srv     *server.Server
	url     string
	dataDir string
	clock   *devserver.Clock
	// stop shuts the server down (gracefully: workspaces keep running).
	stop func()
	dev  *devserver.Server
}

type engine struct {
	name string
	url  func(t *testing.T) string
}

// engines are the stores every end-to-end test runs against.
var engines = []engine{
	{"sqlite", func(*testing.T) string { return "" }},
	{"postgres", func(t *testing.T) string { return pgtest.NewDatabase(t) }},
}

func startServer(t *testing.T, databaseURL string, mutate func(*server.Config)) *testServer {
	t.Helper()
	return wrap(t, devserver.Start(t, devserver.Options{Config: func(c *server.Config) {
		c.DatabaseURL = databaseURL
		if mutate != nil {
			mutate(c)
		}
	}}))
}

// startServerAt starts a server over an existing data dir on a fixed
// address, as a restarted server would be.
func startServerAt(t *testing.T, dataDir, addr string) *testServer {
	t.Helper()
	return wrap(t, devserver.Start(t, devserver.Options{DataDir: dataDir, Addr: addr}))
}

func wrap(t *testing.T, s *devserver.Server) *testServer {
	return &testServer{t: t, ctx: s.Ctx, srv: s.Server, url: s.URL, dataDir: s.DataDir, clock: s.Clock, stop: s.Stop, dev: s}
}

// call sends a JSON request and decodes the JSON answer into out (if not
// nil). body may be a string (sent as is) or a value (marshalled).
func (ts *testServer) call(method, path, token string, body any, out any) int {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ts.ctx, method, ts.url+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			ts.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// client is an sdk client for the server that authenticates with token
// (empty: none). Tests of behaviour talk to the server through it, as every
// program does; tests of the wire itself use call.
func (ts *testServer) client(token string) *sdk.Client {
	return sdk.New(ts.url, token)
}

// user signs up and logs in, returning the token and user id. Under the
// default signup policy the first user signs up by themself (and is the
// admin); the others use an invite, as people do.
func (ts *testServer) user(email string) (token, id string) {
	ts.t.Helper()
	anon := ts.client("")
	u, err := ts.dev.Signup(ts.t, anon, email, "correct horse", "Test")
	if err != nil {
		ts.t.Fatalf("signup %s: %v", email, err)
	}
	token, _, err = anon.Login(ts.ctx, email, "correct horse")
	if err != nil || token == "" {
		ts.t.Fatalf("login %s: %q, %v", email, token, err)
	}
	return token, u.ID
}

// isAPIError reports whether err is the API's answer with status and,
// unless code is empty, code.
func isAPIError(err error, status int, code string) bool {
	var e *sdk.Error
	return errors.As(err, &e) && e.Status == status && (code == "" || e.Code == code)
}

// minutes is n as the optional minutes of a request.
func minutes(n int) *int { return &n }

func (ts *testServer) create(token string, req sdk.CreateEnvironmentRequest) sdk.Environment {
	ts.t.Helper()
	env, err := ts.client(token).CreateEnvironment(ts.ctx, req)
	if err != nil {
		ts.t.Fatalf("create %s: %v", req.Name, err)
	}
	if env.Status != sdk.StatusCreating || !strings.HasPrefix(env.ID, "env_") {
		ts.t.Fatalf("create answered %+v", env)
	}
	return *env
}

// waitStatus waits (on the lifecycle's change feed, not by sleeping) until
// the environment reaches want, then returns it as the API shows it.
func (ts *testServer) waitStatus(token, id string, want sdk.Status) sdk.Environment {
	ts.t.Helper()
	_, err := ts.srv.Manager.WaitFor(ts.ctx, id, func(e store.Environment) bool {
		return string(e.Status) == string(want) || e.Status == store.StatusError && want != sdk.StatusError
	})
	if err != nil {
		ts.t.Fatalf("waiting for %s to be %s: %v", id, want, err)
	}
	env, err := ts.client(token).GetEnvironment(ts.ctx, id)
	if err != nil {
		ts.t.Fatalf("get %s: %v", id, err)
	}
	if env.Status != want {
		ts.t.Fatalf("environment %s is %s (%s), want %s", id, env.Status, env.StatusReason, want)
	}
	return *env
}

// stopEnv asks for the environment to stop, failing the test if the API
// refuses.
func (ts *testServer) stopEnv(token, id string) *sdk.ActionResult {
	ts.t.Helper()
	res, err := ts.client(token).Stop(ts.ctx, id)
	if err != nil {
		ts.t.Fatalf("stop %s: %v", id, err)
	}
	return res
}

// startEnv asks for the environment to start, failing the test if the API
// refuses.
func (ts *testServer) startEnv(token, id string) *sdk.ActionResult {
	ts.t.Helper()
	res, err := ts.client(token).Start(ts.ctx, id)
	if err != nil {
		ts.t.Fatalf("start %s: %v", id, err)
	}
	return res
}

func (ts *testServer) workspaceDir(id string) string {
	env, err := ts.srv.Store.GetEnvironment(ts.ctx, id)
	if err != nil {
		ts.t.Fatalf("get %s: %v", id, err)
	}
	inst, err := ts.srv.Runtimes[env.Runtime].Inspect(ts.ctx, id)
	if err != nil {
		ts.t.Fatalf("inspect %s: %v", id, err)
	}
	return inst.WorkspaceDir
}

// checkIDE waits until code-server answers at the environment's
// vs_code_url, which leads (a ticket, then a cookie) to the IDE on its own
// origin, and checks that only its owner gets through. code-server takes
// about a second to boot after the environment is RUNNING; only asking can
// tell when it is up.
func checkIDE(t *testing.T, ts *testServer, env sdk.Environment, ownerToken, otherToken string) {
	t.Helper()
	wantPrefix := ts.url + "/w/" + env.ID + "/ide/?folder="
	if !strings.HasPrefix(env.VSCodeURL, wantPrefix) {
		t.Fatalf("vs_code_url = %v, want %s…", env.VSCodeURL, wantPrefix)
	}
	// Like a browser: a jar for the IDE's own cookie, and *.localhost on
	// loopback.
	client := loopback.Client()
	get := func(rawURL, token string) (int, []byte, *url.URL) {
		req, _ := http.NewRequestWithContext(ts.ctx, "GET", rawURL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body, resp.Request.URL
	}
	ideOrigin := ideOriginOf(t, ts, env.ID)
	healthz := ts.url + "/w/" + env.ID + "/ide/healthz"
	wait.Succeeds(ts.ctx, t, "code-server to answer through the proxy", func() error {
		code, body, at := get(healthz, ownerToken)
		var health struct{ Status string }
		if code == 200 && json.Unmarshal(body, &health) == nil && health.Status != "" {
			if at.Scheme+"://"+at.Host != ideOrigin || at.Path != "/healthz" {
				t.Fatalf("code-server answered at %s, want %s/healthz", at, ideOrigin)
			}
			return nil
		}
		return fmt.Errorf("%d %s", code, body)
	})
	if code, body, at := get(env.VSCodeURL, ownerToken); code != 200 || !bytes.Contains(body, []byte("workbench")) || at.Host != strings.TrimPrefix(ideOrigin, "http://") {
		t.Fatalf("GET vs_code_url as owner = %d at %s, want code-server's workbench page on %s", code, at, ideOrigin)
	}
	// The workbench talks to its server over a websocket; the upgrade must
	// pass through the proxy (and the tunnel) to code-server, on the IDE's
	// origin with its own session cookie.
	wsURL := strings.Replace(ideOrigin, "http", "ws", 1) + "/?reconnectionToken=dev8-test&reconnection=false&skipWebSocketFrames=false"
	ws, resp, err := websocket.Dial(ts.ctx, wsURL, &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"Origin": {ideOrigin}}})
	if err != nil {
		t.Fatalf("workbench websocket through the proxy: %v (%v)", err, resp)
	}
	ws.CloseNow()
	if code, _, _ := get(env.VSCodeURL, ""); code != http.StatusUnauthorized {
		t.Fatalf("GET vs_code_url without credentials = %d, want 401", code)
	}
	if code, _, _ := get(env.VSCodeURL, otherToken); code != http.StatusNotFound {
		t.Fatalf("GET vs_code_url as another user = %d, want 404", code)
	}
}

// ideOriginOf is the origin the server serves environment id's IDE on:
// *.localhost on the server's port, since test servers' access URL is on
// loopback.
func ideOriginOf(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	u, err := url.Parse(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	return "http://ide--" + strings.Replace(id, "_", "-", 1) + ".localhost:" + u.Port()
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			codeServer := os.Getenv("DEV8_CODE_SERVER")
			if codeServer == "" && os.Getenv("CI") != "" {
				t.Fatal("CI must test the IDE: set DEV8_CODE_SERVER (scripts/install-code-server.sh)")
			}
			ts := startServer(t, eng.url(t), func(c *server.Config) { c.CodeServer = codeServer })

			resp, err := http.Get(ts.url + "/health")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.Header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id on the response")
			}
			var health map[string]string
			if code := ts.call("GET", "/health", "", nil, &health); code != 200 || health["status"] != "healthy" {
				t.Fatalf("/health = %d %v", code, health)
			}
			for path, want := range map[string]string{"/ready": "ready", "/live": "alive"} {
				var body map[string]string
				if code := ts.call("GET", path, "", nil, &body); code != 200 || body["status"] != want {
					t.Fatalf("%s = %d %v", path, code, body)
				}
			}

			token, userID := ts.user("ada@example.com")
			ada := ts.client(token)
			env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "my-dev-env", TemplateName: "nodejs"})
			if env.UserID != userID || env.TemplateName != "nodejs" || env.InstanceType != "balanced" {
				t.Fatalf("created %+v", env)
			}
			running := ts.waitStatus(token, env.ID, sdk.StatusRunning)
			if codeServer == "" {
				t.Log("DEV8_CODE_SERVER not set: the IDE is not checked")
			} else {
				otherToken, _ := ts.user("mallory@example.com")
				checkIDE(t, ts, running, token, otherToken)
			}

			dir := ts.workspaceDir(env.ID)
			if !strings.HasPrefix(dir, ts.dataDir) {
				t.Fatalf("workspace dir %s is outside the data dir %s", dir, ts.dataDir)
			}
			if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("kept"), 0o600); err != nil {
				t.Fatal(err)
			}

			action, err := ada.Stop(ts.ctx, env.ID)
			if err != nil || action.ID != env.ID || action.Status != sdk.StatusStopping {
				t.Fatalf("stop = %+v, %v", action, err)
			}
			ts.waitStatus(token, env.ID, sdk.StatusStopped)
			if action, err := ada.Stop(ts.ctx, env.ID); err != nil || action.Status != sdk.StatusStopped {
				t.Fatalf("stop again = %+v, %v; want an idempotent 200", action, err)
			}
			if action, err := ada.Start(ts.ctx, env.ID); err != nil || action.Status != sdk.StatusStarting {
				t.Fatalf("start = %+v, %v", action, err)
			}
			ts.waitStatus(token, env.ID, sdk.StatusRunning)
			if data, err := os.ReadFile(filepath.Join(dir, "hello.txt")); err != nil || string(data) != "kept" {
				t.Fatalf("file after stop/start = %q, %v", data, err)
			}

			// The body of the activity answer is wire, not behaviour.
			var ok map[string]string
			if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/activity", token, nil, &ok); code != 200 || ok["status"] != "ok" {
				t.Fatalf("activity = %d %v", code, ok)
			}

			list, err := ada.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{Statuses: []sdk.Status{sdk.StatusRunning}})
			if err != nil || list.Total != 1 || list.Environments[0].ID != env.ID {
				t.Fatalf("list running = %+v, %v", list, err)
			}
			if list, err := ada.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{Statuses: []sdk.Status{sdk.StatusStopped}}); err != nil || list.Total != 0 {
				t.Fatalf("list stopped = %+v, %v", list, err)
			}

			if action, err := ada.Delete(ts.ctx, env.ID); err != nil || action.Status != sdk.StatusDeleting {
				t.Fatalf("delete = %+v, %v", action, err)
			}
			_, err = ts.srv.Manager.WaitFor(ts.ctx, env.ID, func(e store.Environment) bool { return e.DeletedAt != nil })
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			if _, err := ada.GetEnvironment(ts.ctx, env.ID); !isAPIError(err, http.StatusNotFound, sdk.CodeNotFound) {
				t.Fatalf("get after delete = %v", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("workspace dir after delete: %v", err)
			}
			// The name is free again. This create is checked on the wire: the
			// answer is a 201 with the environment and a message.
			var created struct {
				Environment sdk.Environment `json:"environment"`
				Message     string          `json:"message"`
			}
			if code := ts.call("POST", "/api/v1/environments", token, map[string]any{"name": "my-dev-env"}, &created); code != http.StatusCreated {
				t.Fatalf("create again: status %d", code)
			}
			if created.Environment.Status != sdk.StatusCreating || !strings.HasPrefix(created.Environment.ID, "env_") || created.Message == "" {
				t.Fatalf("create again answered %+v", created)
			}
		})
	}
}
