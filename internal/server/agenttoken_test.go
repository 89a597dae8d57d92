package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/sdk"
)

// agentRoutes are what an agent token opens: reports, the manifest (the
// owner's secrets) and the tunnel.
func (ts *testServer) agentAccess(t *testing.T, envID, token string) map[string]int {
	t.Helper()
	out := map[string]int{
		"activity": ts.call("POST", "/api/v1/environments/"+envID+"/activity", token, nil, nil),
		"manifest": ts.call("GET", "/api/v1/environments/"+envID+"/manifest", token, nil, nil),
		"usage": ts.call("POST", "/api/v1/environments/"+envID+"/usage", token, map[string]any{"samples": []any{map[string]any{
			"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "cpu_usage_percent": 1.5, "memory_usage_mb": 64, "disk_usage_mb": 1,
		}}}, nil),
	}
	return out
}

// wantAgentRefused checks that token opens none of the agent routes, the
// tunnel included (refused before any upgrade).
func (ts *testServer) wantAgentRefused(t *testing.T, envID, token, when string) {
	t.Helper()
	for route, code := range ts.agentAccess(t, envID, token) {
		if code != http.StatusUnauthorized {
			t.Errorf("%s: %s with the old agent token = %d, want 401", when, route, code)
		}
	}
	if _, resp, err := ts.dialWS(t, token, "/api/v1/environments/"+envID+"/tunnel"); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("%s: tunnel with the old agent token: %v %v, want 401", when, resp, err)
	}
}

// TestAgentTokenPerStart: each start of a workspace gives its supervisor a
// token of its own; a token taken from a workspace is refused on every
// agent route and the tunnel once the workspace stops, and stays refused
// after it starts again with a new one (issue 15 finding 7).
func TestAgentTokenPerStart(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "rotating"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	first := ts.agentToken(env.ID)
	for route, code := range ts.agentAccess(t, env.ID, first) {
		if code/100 != 2 {
			t.Fatalf("running: %s with its agent token = %d", route, code)
		}
	}

	ts.stopEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusStopped)
	ts.wantAgentRefused(t, env.ID, first, "stopped")

	ts.startEnv(token, env.ID)
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	second := ts.agentToken(env.ID)
	if second == first {
		t.Fatal("the restarted workspace got the same agent token")
	}
	ts.wantAgentRefused(t, env.ID, first, "started again")
	for route, code := range ts.agentAccess(t, env.ID, second) {
		if code/100 != 2 {
			t.Fatalf("restarted: %s with its new agent token = %d", route, code)
		}
	}
	// The supervisor came back with the new token: its tunnel works.
	if out := ts.sshRun(t, token, env.ID, "echo back"); out != "back\n" {
		t.Fatalf("ssh after the restart: %q", out)
	}

	if _, err := ts.client(token).Delete(ts.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if code := ts.call("POST", "/api/v1/environments/"+env.ID+"/activity", second, nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("deleting: activity with its agent token = %d, want 401", code)
	}
}

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDatabaseCopyCannotMakeAgentTokens: a copy of dev8.db without the
// secret key yields no agent token key. No value stored in it, nor any
// 32-byte stretch of one, makes or checks a workspace's token, and a
// server started on the copy (with a key of its own) mints tokens the real
// server refuses, and refuses the real ones (issue 15 finding 7).
func TestDatabaseCopyCannotMakeAgentTokens(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ts := startServerAt(t, dataDir, addr)
	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "copied"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	real := ts.agentToken(env.ID)
	stored, err := ts.srv.Store.GetEnvironment(ts.ctx, env.ID)
	if err != nil {
		t.Fatal(err)
	}
	ts.stop() // the workspace keeps running; the file is whole once closed

	copyDir := t.TempDir()
	copyFile(t, filepath.Join(dataDir, "dev8.db"), filepath.Join(copyDir, "dev8.db"))
	raw, err := sql.Open("sqlite", filepath.Join(copyDir, "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := raw.QueryContext(ts.ctx, `SELECT name, value, sealed FROM installation_secrets`)
	if err != nil {
		t.Fatal(err)
	}
	var candidates [][]byte
	for rows.Next() {
		var (
			name   string
			value  []byte
			sealed bool
		)
		if err := rows.Scan(&name, &value, &sealed); err != nil {
			t.Fatal(err)
		}
		if (name == "agent-token-key" || name == "session-key") && !sealed {
			t.Errorf("%s is stored in the clear", name)
		}
		candidates = append(candidates, value)
		for i := 0; i+auth.AgentKeySize <= len(value); i++ {
			candidates = append(candidates, value[i:i+auth.AgentKeySize])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if len(candidates) == 0 {
		t.Fatal("no installation secrets in the copy: the test looks in the wrong place")
	}
	for _, key := range candidates {
		a := auth.NewAgentTokens(key)
		if a.Verify(real, stored) || a.Issue(env.ID, stored.AgentTokenNonce) == real {
			t.Fatalf("a value from the database copy (%x…) is the agent token key", key[:4])
		}
	}

	// A server on the copy, with a secret key of its own.
	thief := wrap(t, devserver.Start(t, devserver.Options{DataDir: copyDir}))
	forged := thief.srv.AgentTokens.Issue(env.ID, stored.AgentTokenNonce)
	if code := thief.call("POST", "/api/v1/environments/"+env.ID+"/activity", real, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("the copy's server accepted the real agent token: %d", code)
	}
	thief.stop()

	back := startServerAt(t, dataDir, addr)
	if code := back.call("POST", "/api/v1/environments/"+env.ID+"/activity", forged, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("a token minted from the database copy = %d, want 401", code)
	}
	if code := back.call("POST", "/api/v1/environments/"+env.ID+"/activity", real, nil, nil); code != http.StatusOK {
		t.Errorf("the real agent token after the restart = %d, want 200", code)
	}
}

// legacyAgentToken is a token as servers made them before per-start
// tokens: an HMAC of the environment id alone.
func legacyAgentToken(key []byte, envID string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("dev8 agent token v1\x00" + envID))
	return auth.AgentTokenPrefix + envID + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// TestUpgradeSealsAgentKey: a data dir from before sealed keys and
// per-start tokens (the key in the clear, a workspace running with a token
// of the old form) is upgraded at start: the key is sealed with its value
// kept, the running workspace's old token goes on working until it stops,
// and the next start issues a token of the new form (issue 15 finding 7).
func TestUpgradeSealsAgentKey(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	first := startServerAt(t, dataDir, "127.0.0.1:0")
	token, _ := first.user("ada@example.com")
	env := first.create(token, sdk.CreateEnvironmentRequest{Name: "upgraded"})
	first.waitStatus(token, env.ID, sdk.StatusRunning)
	first.stop()

	// Turn the data dir into an old one: the key back in the clear, the
	// workspace marked as running since before the upgrade.
	keyBytes, _, err := secretbox.LoadKeyFile(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(keyBytes)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dataDir, "dev8.db")
	raw, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	var sealedKey []byte
	if err := raw.QueryRowContext(ctx, `SELECT value FROM installation_secrets WHERE name = 'agent-token-key' AND sealed = 1`).Scan(&sealedKey); err != nil {
		t.Fatal(err)
	}
	agentKey, err := box.Open(sealedKey, []byte("dev8 installation secret\x00agent-token-key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []struct {
		q    string
		args []any
	}{
		{`UPDATE installation_secrets SET value = ?, sealed = 0 WHERE name = 'agent-token-key'`, []any{agentKey}},
		{`UPDATE environments SET agent_token_nonce = ? WHERE id = ?`, []any{store.LegacyAgentToken, env.ID}},
	} {
		if _, err := raw.ExecContext(ctx, stmt.q, stmt.args...); err != nil {
			t.Fatal(err)
		}
	}
	old := legacyAgentToken(agentKey, env.ID)

	second := startServerAt(t, dataDir, "127.0.0.1:0")
	var (
		value  []byte
		sealed bool
	)
	if err := raw.QueryRowContext(ctx, `SELECT value, sealed FROM installation_secrets WHERE name = 'agent-token-key'`).Scan(&value, &sealed); err != nil {
		t.Fatal(err)
	}
	if !sealed || bytes.Contains(value, agentKey) {
		t.Fatalf("after the upgrade the agent token key is stored as %x (sealed %v)", value, sealed)
	}
	if code := second.call("POST", "/api/v1/environments/"+env.ID+"/activity", old, nil, nil); code != http.StatusOK {
		t.Fatalf("the running workspace's token from before the upgrade = %d, want 200", code)
	}
	second.stopEnv(token, env.ID)
	second.waitStatus(token, env.ID, sdk.StatusStopped)
	second.wantAgentRefused(t, env.ID, old, "stopped after the upgrade")
	second.startEnv(token, env.ID)
	second.waitStatus(token, env.ID, sdk.StatusRunning)
	fresh := second.agentToken(env.ID)
	if code := second.call("POST", "/api/v1/environments/"+env.ID+"/activity", fresh, nil, nil); code != http.StatusOK {
		t.Fatalf("the new run's token = %d, want 200", code)
	}
	second.wantAgentRefused(t, env.ID, old, "started after the upgrade")
	if out := second.sshRun(t, token, env.ID, "echo upgraded"); out != "upgraded\n" {
		t.Fatalf("ssh after the upgrade and a restart: %q", out)
	}
}
