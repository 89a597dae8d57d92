package manifest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/supervisortest"
	"dev8.dev/dev8/internal/supervisor/userenv"
)

func manifestTestContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func needGit(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is not installed")
		}
		t.Skip("git is not installed")
	}
	return p
}

// gitIn runs git with HOME=home and extra environment.
func gitIn(t *testing.T, home, stdin string, extraEnv []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0"}, extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestApplyManifestGit(t *testing.T) {
	t.Parallel()
	needGit(t)
	ctx := manifestTestContext(t)
	home := t.TempDir()
	// The user's own setting survives.
	gitIn(t, home, "", nil, "config", "--global", "core.editor", "vim")

	var m agentapi.Manifest
	m.Git.Name, m.Git.Email = `Ada "Countess" Lovelace`, "ada@example.com"
	m.GitHubToken = "ghp_manifesttesttoken"
	m.Env = map[string]string{"GITHUB_TOKEN": m.GitHubToken}
	for range 2 { // applying twice adds the helper once
		if err := applyManifest(ctx, m, "env_gittest", home, supervisortest.Logger()); err != nil {
			t.Fatal(err)
		}
	}
	if got := gitIn(t, home, "", nil, "config", "--global", "user.name"); got != m.Git.Name+"\n" {
		t.Errorf("user.name = %q", got)
	}
	if got := gitIn(t, home, "", nil, "config", "--global", "user.email"); got != "ada@example.com\n" {
		t.Errorf("user.email = %q", got)
	}
	if got := gitIn(t, home, "", nil, "config", "--global", "core.editor"); got != "vim\n" {
		t.Errorf("the user's core.editor became %q", got)
	}
	if got := gitIn(t, home, "", nil, "config", "--global", "--get-all", gitCredentialKey); strings.Count(got, "\n") != 1 {
		t.Errorf("credential helpers: %q, want exactly one", got)
	}
	cfgFile, err := os.ReadFile(filepath.Join(home, ".gitconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfgFile), m.GitHubToken) {
		t.Fatal("the GitHub token was written to ~/.gitconfig")
	}

	// git asks the helper: with the token in the environment it gets it,
	// without, nothing (and git would prompt elsewhere).
	query := "protocol=https\nhost=github.com\npath=ada/repo.git\n\n"
	out := gitIn(t, home, query, []string{"GITHUB_TOKEN=" + m.GitHubToken}, "credential", "fill")
	if !strings.Contains(out, "username=x-access-token\n") || !strings.Contains(out, "password="+m.GitHubToken+"\n") {
		t.Fatalf("credential fill with the token: %q", out)
	}
	cmd := exec.Command("git", "credential", "fill")
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS="}
	cmd.Stdin = strings.NewReader(query)
	if out, err := cmd.CombinedOutput(); err == nil && strings.Contains(string(out), "password=") {
		t.Fatalf("without GITHUB_TOKEN the helper still answered: %q", out)
	}
	// Another host is not answered.
	// (--get-urlmatch exits 1 when nothing matches.)
	cmd = exec.Command("git", "config", "--global", "--get-urlmatch", "credential.helper", "https://gitlab.com/x")
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1"}
	if other, _ := cmd.CombinedOutput(); strings.Contains(string(other), "GITHUB_TOKEN") {
		t.Fatalf("the helper applies to gitlab.com: %q", other)
	}
	cmd = exec.Command("git", "config", "--global", "--get-urlmatch", "credential.helper", "https://github.com/x")
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1"}
	if match, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(match), "GITHUB_TOKEN") {
		t.Fatalf("the helper does not apply to github.com: %q, %v", match, err)
	}
}

func TestGitConfigFileWithoutGit(t *testing.T) {
	t.Parallel()
	needGit(t) // to read back what was written
	home := t.TempDir()
	path := filepath.Join(home, ".gitconfig")
	name := `Ada \ "Q" ; # Lovelace`
	if err := writeFileAtomic(path, []byte(gitConfigFile(name, "ada@example.com", true)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := gitIn(t, home, "", nil, "config", "--file", path, "user.name"); got != name+"\n" {
		t.Errorf("user.name read back as %q, want %q", got, name)
	}
	if got := gitIn(t, home, "", nil, "config", "--file", path, gitCredentialKey); got != gitCredentialHelper+"\n" {
		t.Errorf("helper read back as %q", got)
	}
}

func TestAuthorizedKeys(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "authorized_keys")
	own := "ssh-ed25519 AAAAown me@mine"
	if err := os.WriteFile(path, []byte(own+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	keys := []string{"ssh-ed25519 AAAAone a@b", "ssh-rsa AAAAtwo c@d", "ssh-ed25519 AAAAsmuggled\nssh-ed25519 AAAAevil"}
	if err := writeAuthorizedKeys(home, keys); err != nil {
		t.Fatal(err)
	}
	want := own + "\n" + authorizedKeysBegin + "\nssh-ed25519 AAAAone a@b\nssh-rsa AAAAtwo c@d\n" + authorizedKeysEnd + "\n"
	if got := read(); got != want {
		t.Fatalf("authorized_keys =\n%s\nwant\n%s", got, want)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %04o, want %04o", p, fi.Mode().Perm(), mode)
		}
	}
	// A later manifest replaces the block and keeps what the user added.
	if err := os.WriteFile(path, []byte(read()+"ssh-ed25519 AAAAlater me@later\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeAuthorizedKeys(home, keys[:1]); err != nil {
		t.Fatal(err)
	}
	want = own + "\nssh-ed25519 AAAAlater me@later\n" + authorizedKeysBegin + "\nssh-ed25519 AAAAone a@b\n" + authorizedKeysEnd + "\n"
	if got := read(); got != want {
		t.Fatalf("after the second write:\n%s\nwant\n%s", got, want)
	}
	// No keys: the block goes, the user's lines stay.
	if err := writeAuthorizedKeys(home, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != own+"\nssh-ed25519 AAAAlater me@later\n" {
		t.Fatalf("without keys: %q", got)
	}
	// Nothing to write and no file: no file is made.
	empty := t.TempDir()
	if err := writeAuthorizedKeys(empty, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(empty, ".ssh")); err == nil {
		t.Fatal("~/.ssh was created for no keys")
	}
}

func TestManifestFetch(t *testing.T) {
	t.Parallel()
	ctx := manifestTestContext(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/api/v1/environments/env_fetch/manifest" || r.Header.Get("Authorization") != "Bearer dev8a_good" {
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "Not allowed", "details": "secret-ish detail", "code": "FORBIDDEN"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"environment_id": "env_fetch", "env": map[string]string{"A": "1"},
			"git": map[string]string{"name": "Ada", "email": "a@b"}, "github_token": "", "ssh_public_keys": []string{}, "unavailable": []string{},
		})
	}))
	defer srv.Close()
	c := New(Config{AgentURL: srv.URL + "/", AgentToken: "dev8a_good", EnvironmentID: "env_fetch", HomeDir: t.TempDir(), Logger: supervisortest.Logger()})
	m, err := c.fetch(ctx)
	if err != nil || m.Env["A"] != "1" || m.Git.Name != "Ada" {
		t.Fatalf("fetch = %+v, %v", m, err)
	}
	bad := New(Config{AgentURL: srv.URL, AgentToken: "dev8a_bad", EnvironmentID: "env_fetch", Logger: supervisortest.Logger()})
	_, err = bad.fetch(ctx)
	if err == nil || !strings.Contains(err.Error(), "403 FORBIDDEN") || strings.Contains(err.Error(), "secret-ish") {
		t.Fatalf("refused fetch: %v", err)
	}
	if err := c.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := userenv.Injected("env_fetch"); !slices.Equal(got, []string{"A=1"}) {
		t.Fatalf("injected after refresh: %q", got)
	}
	// The first connection follows the fetch at start and does not fetch
	// again; a reconnection fetches before it returns.
	before := hits.Load()
	c.Reconnected(ctx)
	if hits.Load() != before {
		t.Fatal("the first connection fetched again")
	}
	c.Reconnected(ctx)
	if n := hits.Load() - before; n != 1 {
		t.Fatalf("a later reconnect made %d fetches, want 1", n)
	}
	// One that fails leaves a retry to the background loop.
	bad.Reconnected(ctx)
	select {
	case <-bad.trigger:
	default:
		t.Fatal("a failed fetch after a reconnect asked for no retry")
	}
}
