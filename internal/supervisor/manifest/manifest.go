// Package manifest fetches and applies the workspace's manifest
// (agentapi.Manifest).
//
// The manifest carries the workspace owner's secrets, git identity, GitHub
// token and SSH public keys (GET /api/v1/environments/{id}/manifest, agent
// token only). The supervisor fetches it at start and after every tunnel
// reconnect and applies it:
//
//   - env (the user's secrets, GITHUB_TOKEN, GIT_USER_NAME, GIT_USER_EMAIL)
//     goes into the environment of SSH sessions, web terminals and
//     code-server (userenv); variables the workspace's own environment sets
//     win. Values live only in this process's memory and in the
//     environments of the processes it starts: never in a file, never on
//     a command line, never in a log line.
//   - git identity: `git config --global user.name/user.email`.
//   - the GitHub token: a credential helper for https://github.com in
//     ~/.gitconfig that prints $GITHUB_TOKEN from the environment of the
//     git that asks, so the token itself is not written anywhere.
//   - SSH public keys: a managed block of ~/.ssh/authorized_keys (0600, in
//     ~/.ssh 0700), for images that run their own sshd; the user's own
//     lines are kept.
package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/userenv"
)

// maxManifestBytes bounds the answer: 100 secrets of 32 KiB and the keys.
const maxManifestBytes = 8 << 20

// gitCredentialHelper answers git's "get" for github.com with the token in
// the asking process's environment, and nothing when there is none (git
// then asks elsewhere). The token never leaves the environment.
const gitCredentialHelper = `!f() { test "$1" = get && test -n "$GITHUB_TOKEN" && echo username=x-access-token && echo "password=$GITHUB_TOKEN"; }; f`

const gitCredentialKey = "credential.https://github.com.helper"

// Markers of the block of authorized_keys the supervisor owns.
const (
	authorizedKeysBegin = "# dev8: keys from your Dev8 account (managed: this block is rewritten at every start)"
	authorizedKeysEnd   = "# dev8: end of managed keys"
)

// Config configures New.
type Config struct {
	// AgentURL and AgentToken reach the server.
	AgentURL      string
	AgentToken    string
	EnvironmentID string
	// HomeDir is the workspace user's home: ~/.gitconfig and
	// ~/.ssh/authorized_keys are there.
	HomeDir string
	// HTTPClient reaches the server (default: a plain client); its
	// Timeout, if zero, becomes 30 s.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Client fetches and applies the manifest.
type Client struct {
	url     string
	token   string
	envID   string
	home    string
	client  *http.Client
	log     *slog.Logger
	trigger chan struct{}
	// ready is closed after the first attempt at start, successful or not.
	ready     chan struct{}
	readyOnce sync.Once

	mu     sync.Mutex
	lastOK time.Time
	// connects counts the tunnel's connections.
	connects int
	// busy serialises refreshes (two gits writing ~/.gitconfig at once
	// would fail on its lock); a channel so a waiter can give up.
	busy chan struct{}
}

// New returns a Client; Run fetches.
func New(cfg Config) *Client {
	hc := &http.Client{Timeout: 30 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		if c.Timeout == 0 {
			c.Timeout = 30 * time.Second
		}
		hc = &c
	}
	return &Client{
		url:     strings.TrimSuffix(cfg.AgentURL, "/") + "/api/v1/environments/" + url.PathEscape(cfg.EnvironmentID) + "/manifest",
		token:   cfg.AgentToken,
		envID:   cfg.EnvironmentID,
		home:    cfg.HomeDir,
		client:  hc,
		log:     cfg.Logger.With("component", "manifest"),
		trigger: make(chan struct{}, 1),
		ready:   make(chan struct{}),
		busy:    make(chan struct{}, 1),
	}
}

// Reconnected fetches and applies a fresh manifest (the tunnel came up
// again: the server may have restarted, the user may have changed their
// secrets). The tunnel calls it before it accepts the first stream, so the
// sessions that follow see the result; it gives up after
// reconnectFetchTimeout and leaves retrying to run. The tunnel's first
// connection follows the fetch at start, which is not repeated if it
// succeeded.
func (c *Client) Reconnected(ctx context.Context) {
	c.mu.Lock()
	c.connects++
	fresh := c.connects == 1 && !c.lastOK.IsZero()
	c.mu.Unlock()
	if fresh {
		return
	}
	fetchCtx, cancel := context.WithTimeout(ctx, reconnectFetchTimeout)
	defer cancel()
	if err := c.refresh(fetchCtx); err != nil {
		c.log.Warn("fetch manifest after reconnecting; retrying in the background", "err", err)
		select {
		case c.trigger <- struct{}{}:
		default:
		}
	}
}

// reconnectFetchTimeout bounds how long a reconnected tunnel waits for the
// manifest before it serves streams.
const reconnectFetchTimeout = 5 * time.Second

// WaitReady waits until the first attempt is over or at most d, so that
// code-server starts with the secrets when the server answers quickly and
// without them (until its next start) when it does not.
func (c *Client) WaitReady(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ready:
	case <-t.C:
		c.log.Warn("no manifest yet; starting without the user's secrets", "waited", d)
	case <-ctx.Done():
	}
}

// Run fetches at start and whenever Reconnected asks, retrying failures
// with backoff, until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	first := true
	for {
		backoff := 500 * time.Millisecond
		for {
			err := c.refresh(ctx)
			if first {
				first = false
				c.readyOnce.Do(func() { close(c.ready) })
			}
			if err == nil || ctx.Err() != nil {
				break
			}
			c.log.Warn("fetch manifest", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.trigger:
		}
	}
}

// refresh fetches the manifest and applies it.
func (c *Client) refresh(ctx context.Context) error {
	select {
	case c.busy <- struct{}{}:
		defer func() { <-c.busy }()
	case <-ctx.Done():
		return ctx.Err()
	}
	m, err := c.fetch(ctx)
	if err != nil {
		return err
	}
	applyErr := applyManifest(ctx, m, c.envID, c.home, c.log)
	c.mu.Lock()
	c.lastOK = time.Now()
	c.mu.Unlock()
	if len(m.Unavailable) > 0 {
		c.log.Warn("the server could not decrypt some secrets; they are left out", "names", m.Unavailable)
	}
	if applyErr != nil {
		// Partly applied (e.g. the home directory is read-only): the
		// environment is set; retrying would not help.
		c.log.Warn("apply manifest", "err", applyErr)
	}
	c.log.Info("manifest applied", "variables", len(m.Env), "ssh_keys", len(m.SSHPublicKeys), "github_token", m.GitHubToken != "")
	return nil
}

func (c *Client) fetch(ctx context.Context) (agentapi.Manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return agentapi.Manifest{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return agentapi.Manifest{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return agentapi.Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// Error answers carry no secrets: the code says what went wrong.
		var e struct{ Code string }
		_ = json.Unmarshal(body, &e)
		return agentapi.Manifest{}, fmt.Errorf("manifest: server answered %d %s", resp.StatusCode, e.Code)
	}
	if len(body) > maxManifestBytes {
		return agentapi.Manifest{}, errors.New("manifest: answer too large")
	}
	var m agentapi.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		// Not the error's text: it could quote the answer.
		return agentapi.Manifest{}, errors.New("manifest: the answer is not valid JSON")
	}
	return m, nil
}

// applyManifest puts m into effect for environment envID whose user's home
// is home. The environment is always set; errors from git and
// authorized_keys are joined.
func applyManifest(ctx context.Context, m agentapi.Manifest, envID, home string, log *slog.Logger) error {
	userenv.SetInjected(envID, m.Env)
	if home == "" {
		return errors.New("no home directory: git and SSH keys not configured")
	}
	return errors.Join(configureGit(ctx, m, home, log), writeAuthorizedKeys(home, m.SSHPublicKeys))
}

// configureGit sets the identity and credential helper in the user's
// global git configuration, with git itself so the user's own settings
// stay as they are. Without git in the workspace there is nothing to
// configure, except that a missing ~/.gitconfig is written for a git
// installed later.
func configureGit(ctx context.Context, m agentapi.Manifest, home string, log *slog.Logger) error {
	wantHelper := m.GitHubToken != ""
	if m.Git.Name == "" && m.Git.Email == "" && !wantHelper {
		return nil
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		path := filepath.Join(home, ".gitconfig")
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			log.Info("git is not installed; ~/.gitconfig left as it is")
			return nil
		}
		return writeFileAtomic(path, []byte(gitConfigFile(m.Git.Name, m.Git.Email, wantHelper)), 0o644)
	}
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, gitPath, append([]string{"config", "--global"}, args...)...)
		// Only what git needs: HOME says where --global is.
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1"}
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			return out.String(), fmt.Errorf("git config %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
		}
		return out.String(), nil
	}
	var errs []error
	if m.Git.Name != "" {
		_, err := git("user.name", m.Git.Name)
		errs = append(errs, err)
	}
	if m.Git.Email != "" {
		_, err := git("user.email", m.Git.Email)
		errs = append(errs, err)
	}
	if wantHelper {
		// --get-all exits 1 when the key is unset.
		have, _ := git("--get-all", gitCredentialKey)
		if !slices.Contains(strings.Split(strings.TrimSpace(have), "\n"), gitCredentialHelper) {
			_, err := git("--add", gitCredentialKey, gitCredentialHelper)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// gitConfigFile is a fresh ~/.gitconfig (for workspaces without git).
func gitConfigFile(name, email string, helper bool) string {
	var b strings.Builder
	if name != "" || email != "" {
		b.WriteString("[user]\n")
		if name != "" {
			b.WriteString("\tname = " + gitQuote(name) + "\n")
		}
		if email != "" {
			b.WriteString("\temail = " + gitQuote(email) + "\n")
		}
	}
	if helper {
		b.WriteString("[credential \"https://github.com\"]\n\thelper = " + gitQuote(gitCredentialHelper) + "\n")
	}
	return b.String()
}

// gitQuote quotes a value for a git config file.
func gitQuote(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	v = strings.ReplaceAll(v, `"`, `\"`)
	return `"` + v + `"`
}

// writeAuthorizedKeys replaces the managed block of ~/.ssh/authorized_keys
// with keys (removing the block when there are none) and keeps every other
// line. ~/.ssh is made 0700 and the file 0600, as sshd's StrictModes wants.
func writeAuthorizedKeys(home string, keys []string) error {
	dir := filepath.Join(home, ".ssh")
	path := filepath.Join(dir, "authorized_keys")
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("authorized_keys: %w", err)
	}
	if len(keys) == 0 && len(old) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("authorized_keys: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("authorized_keys: %w", err)
	}
	var kept []string
	inBlock := false
	for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		switch {
		case line == authorizedKeysBegin:
			inBlock = true
		case line == authorizedKeysEnd:
			inBlock = false
		case !inBlock && line != "":
			kept = append(kept, line)
		}
	}
	var b strings.Builder
	for _, line := range kept {
		b.WriteString(line + "\n")
	}
	if len(keys) > 0 {
		b.WriteString(authorizedKeysBegin + "\n")
		for _, k := range keys {
			// One key per line: a key with a line break would smuggle a
			// second entry (the server never sends one; this is belt and
			// braces).
			if k = strings.TrimSpace(k); k != "" && !strings.ContainsAny(k, "\r\n") {
				b.WriteString(k + "\n")
			}
		}
		b.WriteString(authorizedKeysEnd + "\n")
	}
	return writeFileAtomic(path, []byte(b.String()), 0o600)
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// StartWait is how long code-server's start waits for the first
// manifest.
const StartWait = 10 * time.Second
