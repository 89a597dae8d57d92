package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recordingCall is ts.call that keeps every answer body.
func (ts *testServer) recordingCall(answers *[]string, method, path, token string, body any, out any) int {
	ts.t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
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
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	*answers = append(*answers, method+" "+path+" → "+string(data))
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			ts.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// TestUserSecretsEndToEnd: a user's secret, git identity, GitHub token and
// SSH key reach their workspace (environment of an SSH session, git's
// global config and credential helper, authorized_keys), while no secret
// value appears in any API answer, any server or supervisor log line, the
// audit log, or any file the server keeps (the SQLite database and its
// WAL, the runtime's state and logs): those hold ciphertext only.
func TestUserSecretsEndToEnd(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			testUserSecretsEndToEnd(t, eng)
		})
	}
}

func testUserSecretsEndToEnd(t *testing.T, eng engine) {
	logs := &syncBuffer{}
	ts := startServer(t, eng.url(t), func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	token, _ := ts.user("ada@example.com") // the first user: an admin, so the audit log can be read
	// Every answer body is kept and searched for the secrets below: the
	// wire is what this test is about, so it talks raw HTTP.
	var answers []string
	call := func(method, path string, body, out any) int {
		t.Helper()
		return ts.recordingCall(&answers, method, path, token, body, out)
	}

	// Values no test fixture would contain by chance.
	const (
		secretValue = "e2e-secret-Zq81vNw3Lr"
		githubToken = "ghp_e2eTokenXy7Kp2Mv9Qa"
		gitName     = "Ada E2E Lovelace"
		gitEmail    = "ada.e2e@example.com"
	)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " ada@e2e"

	if code := call("PUT", "/api/v1/secrets/E2E_SECRET", map[string]string{"value": secretValue}, nil); code != http.StatusCreated {
		t.Fatalf("put secret: %d", code)
	}
	if code := call("PUT", "/api/v1/git", map[string]string{"name": gitName, "email": gitEmail, "github_token": githubToken}, nil); code != http.StatusOK {
		t.Fatalf("put git: %d", code)
	}
	if code := call("POST", "/api/v1/ssh-keys", map[string]string{"public_key": pubLine}, nil); code != http.StatusCreated {
		t.Fatalf("add ssh key: %d", code)
	}
	// A refused request whose body holds the value does not echo it.
	if code := call("PUT", "/api/v1/secrets/DEV8_X", map[string]string{"value": secretValue}, nil); code != http.StatusBadRequest {
		t.Fatalf("reserved name: %d", code)
	}

	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "secrets"})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)

	out := ts.sshRun(t, token, env.ID, `printf '%s|%s|%s|%s\n' "$E2E_SECRET" "$GITHUB_TOKEN" "$GIT_USER_NAME" "$GIT_USER_EMAIL"; `+
		`git config --global user.name; git config --global user.email; `+
		`printf 'protocol=https\nhost=github.com\n\n' | GIT_TERMINAL_PROMPT=0 git credential fill | grep '^password='; `+
		`stat -c %a ~/.ssh ~/.ssh/authorized_keys; cat ~/.ssh/authorized_keys; `+
		`grep -c "$GITHUB_TOKEN" ~/.gitconfig || true`)
	want := []string{
		secretValue + "|" + githubToken + "|" + gitName + "|" + gitEmail,
		gitName, gitEmail,
		"password=" + githubToken,
		"700", "600",
	}
	lines := strings.Split(out, "\n")
	if len(lines) < len(want) {
		t.Fatalf("in the workspace:\n%s", out)
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d in the workspace = %q, want %q\n%s", i, lines[i], w, out)
		}
	}
	if !strings.Contains(out, "\n"+pubLine+"\n") {
		t.Errorf("authorized_keys lacks the key:\n%s", out)
	}
	if !strings.HasSuffix(out, "\n0\n") {
		t.Errorf("the GitHub token is in ~/.gitconfig:\n%s", out)
	}

	// What people can read back: metadata only.
	call("GET", "/api/v1/secrets", nil, nil)
	call("GET", "/api/v1/git", nil, nil)
	call("GET", "/api/v1/ssh-keys", nil, nil)
	call("GET", "/api/v1/environments/"+env.ID, nil, nil)
	call("GET", "/api/v1/environments", nil, nil)
	var audit sdk.AuditEventList
	call("GET", "/api/v1/audit?limit=500", nil, &audit)
	delivered := false
	for _, e := range audit.Events {
		if e.Action == "secrets.deliver" && e.ObjectID == env.ID {
			delivered = true
		}
	}
	if !delivered {
		t.Error("the manifest fetch is not in the audit log")
	}
	// A person cannot fetch the manifest, even the owner.
	if code := call("GET", "/api/v1/environments/"+env.ID+"/manifest", nil, nil); code != http.StatusForbidden {
		t.Errorf("owner fetching the manifest: %d, want 403", code)
	}

	// The store holds ciphertext.
	rows, err := ts.srv.Store.ListUserSecrets(ts.ctx, env.UserID, true)
	if err != nil || len(rows) != 1 || bytes.Contains(rows[0].Ciphertext, []byte(secretValue)) {
		t.Fatalf("secret rows: %d, %v (plaintext stored?)", len(rows), err)
	}
	g, err := ts.srv.Store.GetGitSettings(ts.ctx, env.UserID)
	if err != nil || len(g.GitHubToken) == 0 || bytes.Contains(g.GitHubToken, []byte(githubToken)) {
		t.Fatalf("git row: %v (plaintext stored?)", err)
	}

	// Stop the workspace so its supervisor has logged all it will, then
	// look everywhere.
	if code := call("POST", "/api/v1/environments/"+env.ID+"/stop", nil, nil); code != http.StatusOK {
		t.Fatalf("stop: %d", code)
	}
	ts.waitStatus(token, env.ID, sdk.StatusStopped)

	secrets := []string{secretValue, githubToken}
	for _, a := range answers {
		for _, s := range secrets {
			if strings.Contains(a, s) {
				t.Errorf("an API answer holds a secret value: %s", a)
			}
		}
	}
	serverLog := logs.String()
	if !strings.Contains(serverLog, "key_id=") {
		t.Error("the server log does not say which secret key it uses (is the log captured?)")
	}
	for _, s := range secrets {
		if strings.Contains(serverLog, s) {
			t.Errorf("the server log holds a secret value")
		}
	}
	// Every file under the data dir: the SQLite file and WAL (when the
	// store is SQLite), the key file, the runtime's state.json and the supervisor's log, the
	// workspace's home (.gitconfig, authorized_keys). Values live only in
	// process memory.
	supervisorLogged := false
	err = filepath.WalkDir(ts.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte("manifest applied")) {
			supervisorLogged = true
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds a secret value", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !supervisorLogged {
		t.Error("no supervisor log under the data dir says the manifest was applied (is its log captured?)")
	}
	fi, err := os.Stat(filepath.Join(ts.dataDir, "secret.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v, %v", fi, err)
	}
}

// TestSecretKeyRefused: a bad DEV8_SECRET_KEY or a key file others can read
// stops the server at start with a message that says what to do.
func TestSecretKeyRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := server.New(t.Context(), server.Config{DataDir: dir, SecretKey: "not-a-key"})
	if err == nil || !strings.Contains(err.Error(), "DEV8_SECRET_KEY") {
		t.Fatalf("bad DEV8_SECRET_KEY: %v", err)
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = server.New(t.Context(), server.Config{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
}

// TestSecretsRefreshOnReconnect: a secret changed while the workspace runs
// reaches its new sessions once its supervisor reconnects (here: to a
// restarted server), without restarting the workspace.
func TestSecretsRefreshOnReconnect(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	first := startServerAt(t, dataDir, addr)
	token, _ := first.user("ada@example.com")
	put := func(ts *testServer, value string) {
		t.Helper()
		if _, err := ts.client(token).SetSecret(ts.ctx, "ROTATING", value); err != nil {
			t.Fatalf("put secret: %v", err)
		}
	}
	put(first, "before-restart")
	env := first.create(token, sdk.CreateEnvironmentRequest{Name: "rotate"})
	first.waitStatus(token, env.ID, sdk.StatusRunning)
	if out := first.sshRun(t, token, env.ID, `echo "$ROTATING"`); out != "before-restart\n" {
		t.Fatalf("at start: %q", out)
	}
	put(first, "after-restart")
	// Sessions opened before a reconnect keep what the workspace had.
	if out := first.sshRun(t, token, env.ID, `echo "$ROTATING"`); out != "before-restart\n" {
		t.Fatalf("before reconnecting: %q", out)
	}
	first.stop()

	second := startServerAt(t, dataDir, addr)
	ctx, cancel := context.WithTimeout(second.ctx, 30*time.Second)
	defer cancel()
	if _, err := second.srv.Manager.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusRunning }); err != nil {
		t.Fatal(err)
	}
	if out := second.sshRun(t, token, env.ID, `echo "$ROTATING"`); out != "after-restart\n" {
		t.Fatalf("after reconnecting: %q", out)
	}
}
