package docker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/loopback"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// codeServerImage is built by scripts/code-server-test-image.sh from this
// machine's Node and code-server.
const codeServerImage = "dev8-test/code-server:latest"

// TestIDEInContainer runs real code-server in two containers at once (host
// networking: each on its own unix socket, so they cannot collide) and opens
// each one's workbench through the server's IDE proxy, the supervisor's
// tunnel and the socket, websocket included. It needs DEV8_CODE_SERVER (what
// scripts/install-code-server.sh prints; .ci/run sets it).
func TestIDEInContainer(t *testing.T) {
	needDocker(t)
	cs := os.Getenv("DEV8_CODE_SERVER")
	if cs == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but DEV8_CODE_SERVER is not")
		}
		t.Skip("DEV8_CODE_SERVER is not set (scripts/install-code-server.sh installs code-server)")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "bash", "../../../scripts/code-server-test-image.sh", cs, codeServerImage)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", codeServerImage, err, out)
	}
	srv := startDockerServer(t, "")
	c := serverproc.SignUpAdmin(t, ctx, srv.URL)
	var envs []*sdk.Environment
	for _, name := range []string{"ide-one", "ide-two"} {
		env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: name, BaseImage: codeServerImage, InstanceType: "lightweight"})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	// As a browser: the IDE is on an origin of its own
	// (ide--env-….localhost), which the links reach with a one-time ticket
	// that leaves a cookie for it in the jar.
	client := loopback.Client()
	get := func(url string) (int, []byte) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+c.Token())
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	for _, env := range envs {
		got, err := srv.Manager.WaitFor(ctx, env.ID, func(e store.Environment) bool {
			return e.Status == store.StatusError || e.Status == store.StatusRunning && e.VSCodeURL != ""
		})
		if err != nil || got.Status != store.StatusRunning {
			t.Fatalf("%s: %s %q %v", env.Name, got.Status, got.StatusReason, err)
		}
		healthz := srv.URL + "/w/" + env.ID + "/ide/healthz"
		wait.Succeeds(ctx, t, env.Name+": code-server to answer through the proxy", func() error {
			code, body := get(healthz)
			var health struct{ Status string }
			if code == 200 && json.Unmarshal(body, &health) == nil && health.Status != "" {
				return nil
			}
			return fmt.Errorf("%d %s", code, body)
		})
		if code, body := get(got.VSCodeURL); code != 200 || !bytes.Contains(body, []byte("workbench")) {
			t.Fatalf("%s: GET vs_code_url = %d, want code-server's workbench page", env.Name, code)
		}
		u, _ := url.Parse(srv.URL)
		ideOrigin := "http://ide--" + strings.Replace(env.ID, "_", "-", 1) + ".localhost:" + u.Port()
		wsURL := strings.Replace(ideOrigin, "http", "ws", 1) + "/?reconnectionToken=dev8-test&reconnection=false&skipWebSocketFrames=false"
		ws, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"Origin": {ideOrigin}}})
		if err != nil {
			t.Fatalf("%s: workbench websocket through the proxy: %v (%v)", env.Name, err, resp)
		}
		ws.CloseNow()
	}
	for _, env := range envs {
		if _, err := c.Delete(ctx, env.ID); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitForDeleted(ctx, env.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
}
