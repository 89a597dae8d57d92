package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/sdk"
)

// TestDNSRebindingRefused: a page whose name re-resolves to the server's
// loopback address sends that name as Host; the server refuses it before
// anything runs (no account is made), while its address, localhost and its
// access URL's host are served.
func TestDNSRebindingRefused(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) {
		c.AccessURL = "https://dev8.example.com"
		c.AllowedHosts = []string{"proxy.example.net"} // --allowed-hosts
		// Kubernetes workspaces' supervisors dial an in-cluster name.
		c.Kubernetes.AgentURL = "http://dev8.dev8.svc.cluster.local:3000"
	})
	port := ts.url[strings.LastIndex(ts.url, ":")+1:]
	send := func(host, method, path, body string) (int, sdk.ErrorResponse) {
		t.Helper()
		req, err := http.NewRequestWithContext(ts.ctx, method, ts.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e sdk.ErrorResponse
		if resp.StatusCode == http.StatusMisdirectedRequest {
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, e
	}
	signup := `{"email":"eve@example.com","password":"correct horse","name":"Eve"}`
	for _, host := range []string{"rebind.evil.example:" + port, "rebind.evil.example", "localhost.evil.example:" + port} {
		code, e := send(host, http.MethodPost, "/api/v1/auth/signup", signup)
		if code != http.StatusMisdirectedRequest || e.Code != sdk.CodeMisdirected || !strings.Contains(e.Details, "rebind.evil.example") && !strings.Contains(e.Details, "localhost.evil.example") {
			t.Fatalf("signup with Host %s: %d %+v", host, code, e)
		}
		if code, _ := send(host, http.MethodGet, "/", ""); code != http.StatusMisdirectedRequest {
			t.Fatalf("GET / with Host %s: %d", host, code)
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "dev8.example.com", "proxy.example.net", "PROXY.example.net:443", "dev8.dev8.svc.cluster.local:3000"} {
		if code, _ := send(host, http.MethodGet, "/health", ""); code != http.StatusOK {
			t.Errorf("GET /health with Host %s: %d", host, code)
		}
	}
	// Workspace apps' names under the access URL's host pass, well-formed
	// labels only: an app of no workspace is the apps' 404, anything else
	// under that host is refused like any other name.
	if code, _ := send("ide--env-aaaaaaaaaaaaaaaaaaaa.dev8.example.com", http.MethodGet, "/", ""); code != http.StatusNotFound {
		t.Errorf("an app's name of no workspace: %d, want 404", code)
	}
	for _, host := range []string{"evil.dev8.example.com", "ide--nope.dev8.example.com", "ide--env-aaaa.evil.example"} {
		if code, _ := send(host, http.MethodGet, "/", ""); code != http.StatusMisdirectedRequest {
			t.Errorf("GET / with Host %s: %d, want 421", host, code)
		}
	}
	// Nothing the refused signups carried was done: the first account made
	// now is the admin.
	token, _ := ts.user("ada@example.com")
	me, err := ts.client(token).Me(ts.ctx)
	if err != nil || me.Role != "admin" {
		t.Fatalf("first account after the refused signups: %+v, %v", me, err)
	}
}
