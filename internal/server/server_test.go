package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
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
	return &testServer{t: t, ctx: s.Ctx, srv: s.Server, url: s.URL, dataDir: s.DataDir, clock: s.Clock, stop: s.Stop}
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

// user signs up and logs in, returning the token and user id.
func (ts *testServer) user(email string) (token, id string) {
	ts.t.Helper()
	var signup struct {
		User struct{ ID, Role string } `json:"user"`
	}
	if code := ts.call("POST", "/api/v1/auth/signup", "", map[string]string{"email": email, "password": "correct horse", "name": "Test"}, &signup); code != http.StatusCreated {
		ts.t.Fatalf("signup %s: %d", email, code)
	}
	var login struct {
		Token string `json:"token"`
	}
	if code := ts.call("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": "correct horse"}, &login); code != http.StatusOK || login.Token == "" {
		ts.t.Fatalf("login %s: %d", email, code)
	}
	return login.Token, signup.User.ID
}

type envJSON struct {
	ID              string  `json:"id"`
	UserID          string  `json:"user_id"`
	Name            string  `json:"name"`
	Status          string  `json:"status"`
	StatusReason    *string `json:"status_reason"`
	TemplateName    string  `json:"template_name"`
	InstanceType    string  `json:"instance_type"`
	CPUCores        int     `json:"cpu_cores"`
	MemoryGB        int     `json:"memory_gb"`
	VSCodeURL       *string `json:"vs_code_url"`
	AutoStopMinutes int     `json:"auto_stop_minutes"`
	TotalCost       float64 `json:"total_cost"`
}

type errJSON struct {
	Error   string `json:"error"`
	Details string `json:"details"`
	Code    string `json:"code"`
}

func (ts *testServer) create(token string, body any) envJSON {
	ts.t.Helper()
	var out struct {
		Environment envJSON `json:"environment"`
		Message     string  `json:"message"`
	}
	if code := ts.call("POST", "/api/v1/environments", token, body, &out); code != http.StatusCreated {
		ts.t.Fatalf("create: status %d", code)
	}
	if out.Environment.Status != "CREATING" || !strings.HasPrefix(out.Environment.ID, "env_") || out.Message == "" {
		ts.t.Fatalf("create answered %+v", out)
	}
	return out.Environment
}

// waitStatus waits (on the lifecycle's change feed, not by sleeping) until
// the environment reaches want, then returns it as the API shows it.
func (ts *testServer) waitStatus(token, id, want string) envJSON {
	ts.t.Helper()
	_, err := ts.srv.Manager.WaitFor(ts.ctx, id, func(e store.Environment) bool {
		return string(e.Status) == want || e.Status == store.StatusError && want != "ERROR"
	})
	if err != nil {
		ts.t.Fatalf("waiting for %s to be %s: %v", id, want, err)
	}
	var out struct {
		Environment envJSON `json:"environment"`
	}
	if code := ts.call("GET", "/api/v1/environments/"+id, token, nil, &out); code != http.StatusOK {
		ts.t.Fatalf("get %s: %d", id, code)
	}
	if out.Environment.Status != want {
		reason := ""
		if out.Environment.StatusReason != nil {
			reason = *out.Environment.StatusReason
		}
		ts.t.Fatalf("environment %s is %s (%s), want %s", id, out.Environment.Status, reason, want)
	}
	return out.Environment
}

func (ts *testServer) workspaceDir(id string) string {
	inst, err := ts.srv.Runtime.Inspect(ts.ctx, id)
	if err != nil {
		ts.t.Fatalf("inspect %s: %v", id, err)
	}
	return inst.WorkspaceDir
}

// checkIDE waits until code-server answers through the server's IDE proxy
// at the environment's vs_code_url, and checks that only its owner gets
// through. code-server takes about a second to boot after the environment
// is RUNNING; only asking can tell when it is up.
func checkIDE(t *testing.T, ts *testServer, env envJSON, ownerToken, otherToken string) {
	t.Helper()
	wantPrefix := ts.url + "/w/" + env.ID + "/ide/?folder="
	if env.VSCodeURL == nil || !strings.HasPrefix(*env.VSCodeURL, wantPrefix) {
		t.Fatalf("vs_code_url = %v, want %s…", env.VSCodeURL, wantPrefix)
	}
	get := func(rawURL, token string) (int, []byte) {
		req, _ := http.NewRequestWithContext(ts.ctx, "GET", rawURL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	healthz := ts.url + "/w/" + env.ID + "/ide/healthz"
	wait.Succeeds(ts.ctx, t, "code-server to answer through the proxy", func() error {
		code, body := get(healthz, ownerToken)
		var health struct{ Status string }
		if code == 200 && json.Unmarshal(body, &health) == nil && health.Status != "" {
			return nil
		}
		return fmt.Errorf("%d %s", code, body)
	})
	if code, body := get(*env.VSCodeURL, ownerToken); code != 200 || !bytes.Contains(body, []byte("workbench")) {
		t.Fatalf("GET vs_code_url as owner = %d, want code-server's workbench page", code)
	}
	// The workbench talks to its server over a websocket; the upgrade must
	// pass through the proxy (and the tunnel) to code-server.
	wsURL := strings.Replace(ts.url, "http", "ws", 1) + "/w/" + env.ID + "/ide/?reconnectionToken=dev8-test&reconnection=false&skipWebSocketFrames=false"
	ws, resp, err := websocket.Dial(ts.ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + ownerToken}}})
	if err != nil {
		t.Fatalf("workbench websocket through the proxy: %v (%v)", err, resp)
	}
	ws.CloseNow()
	if code, _ := get(*env.VSCodeURL, ""); code != http.StatusUnauthorized {
		t.Fatalf("GET vs_code_url without credentials = %d, want 401", code)
	}
	if code, _ := get(*env.VSCodeURL, otherToken); code != http.StatusNotFound {
		t.Fatalf("GET vs_code_url as another user = %d, want 404", code)
	}
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
			env := ts.create(token, map[string]any{"name": "my-dev-env", "template_name": "nodejs"})
			if env.UserID != userID || env.TemplateName != "nodejs" || env.InstanceType != "balanced" {
				t.Fatalf("created %+v", env)
			}
			running := ts.waitStatus(token, env.ID, "RUNNING")
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

			var action struct{ Message, ID, Status string }
			if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/stop", token, nil, &action); code != 200 || action.ID != env.ID || action.Status != "STOPPING" {
				t.Fatalf("stop = %d %+v", code, action)
			}
			ts.waitStatus(token, env.ID, "STOPPED")
			if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/stop", token, nil, &action); code != 200 || action.Status != "STOPPED" {
				t.Fatalf("stop again = %d %+v; want an idempotent 200", code, action)
			}
			if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/start", token, nil, &action); code != 200 || action.Status != "STARTING" {
				t.Fatalf("start = %d %+v", code, action)
			}
			ts.waitStatus(token, env.ID, "RUNNING")
			if data, err := os.ReadFile(filepath.Join(dir, "hello.txt")); err != nil || string(data) != "kept" {
				t.Fatalf("file after stop/start = %q, %v", data, err)
			}

			var ok map[string]string
			if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/activity", token, nil, &ok); code != 200 || ok["status"] != "ok" {
				t.Fatalf("activity = %d %v", code, ok)
			}

			var list struct {
				Environments []envJSON `json:"environments"`
				Total        int       `json:"total"`
			}
			if code := ts.call("GET", "/api/v1/environments?status=RUNNING", token, nil, &list); code != 200 || list.Total != 1 || list.Environments[0].ID != env.ID {
				t.Fatalf("list running = %d %+v", code, list)
			}
			if code := ts.call("GET", "/api/v1/environments?status=STOPPED", token, nil, &list); code != 200 || list.Total != 0 {
				t.Fatalf("list stopped = %d %+v", code, list)
			}

			if code := ts.call("DELETE", "/api/v1/environments/"+env.ID, token, nil, &action); code != 200 || action.Status != "DELETING" {
				t.Fatalf("delete = %d %+v", code, action)
			}
			_, err = ts.srv.Manager.WaitFor(ts.ctx, env.ID, func(e store.Environment) bool { return e.DeletedAt != nil })
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
			var e errJSON
			if code := ts.call("GET", "/api/v1/environments/"+env.ID, token, nil, &e); code != 404 || e.Code != "NOT_FOUND" {
				t.Fatalf("get after delete = %d %+v", code, e)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("workspace dir after delete: %v", err)
			}
			// The name is free again.
			ts.create(token, map[string]any{"name": "my-dev-env"})
		})
	}
}
