package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
)

// What a user keeps for their workspaces: SSH public keys, environment
// secrets, git identity and a GitHub token. Secret values are write-only:
// they are encrypted (SecretBox) before they reach the store, no answer to a
// person ever carries them, and no log line or audit event names them. The
// one way out is the manifest, which only the supervisor of one of the
// owner's workspaces may fetch.

const (
	maxSSHKeyNameLength = 64
	maxPublicKeyLength  = 16 << 10
	maxSecretValueBytes = 32 << 10
	maxSecretsPerUser   = 100
	maxGitNameLength    = 256
	maxGitEmailLength   = 254
	maxGitHubTokenBytes = 4096
	minRSAKeyBits       = 2048
)

// secretNamePattern is what a secret may be called: an environment variable
// name.
var secretNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// reservedSecretNames are variables the platform sets in every workspace:
// a secret cannot take their place (the GitHub token and git identity have
// their own route, PUT /git).
var reservedSecretNames = map[string]string{
	"GITHUB_TOKEN":   "set it with PUT /api/v1/git (github_token)",
	"GIT_USER_NAME":  "set it with PUT /api/v1/git (name)",
	"GIT_USER_EMAIL": "set it with PUT /api/v1/git (email)",
	"SSH_PUBLIC_KEY": "add keys with POST /api/v1/ssh-keys",
	"HOME":           "the workspace sets it",
	"USER":           "the workspace sets it",
	"LOGNAME":        "the workspace sets it",
	"PATH":           "the workspace sets it",
	"SHELL":          "the workspace sets it",
	"TERM":           "the workspace sets it",
	"PWD":            "the workspace sets it",
}

// Additional data purposes: a ciphertext opens only for the row it was
// sealed for.
const (
	aadUserSecret  = "dev8 user secret"
	aadGitHubToken = "dev8 github token"
)

func userSecretAAD(userID, name string) []byte {
	return secretbox.AAD(aadUserSecret, userID, name)
}

func githubTokenAAD(userID string) []byte { return secretbox.AAD(aadGitHubToken, userID) }

// UserSecretStore is the persistence of users' keys and secrets.
type UserSecretStore interface {
	CreateSSHKey(ctx context.Context, k store.SSHKey) (store.SSHKey, error)
	ListSSHKeys(ctx context.Context, userID string) ([]store.SSHKey, error)
	DeleteSSHKey(ctx context.Context, userID, id string) error
	PutUserSecret(ctx context.Context, userID, name string, ciphertext []byte) (store.UserSecret, bool, error)
	ListUserSecrets(ctx context.Context, userID string, withCiphertext bool) ([]store.UserSecret, error)
	DeleteUserSecret(ctx context.Context, userID, name string) error
	GetGitSettings(ctx context.Context, userID string) (store.GitSettings, error)
	UpdateGitSettings(ctx context.Context, userID string, fn func(*store.GitSettings) error) (store.GitSettings, error)
}

var errSecretsUnavailable = &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeNotReady, Message: "Secrets are not available", Details: "the server has no secret key configured"}

// secretsReady returns the store and box the secret routes need.
func (a *API) secretsReady() (UserSecretStore, *secretbox.Box, error) {
	if a.userSecrets == nil || a.secretBox == nil {
		return nil, nil, errSecretsUnavailable
	}
	return a.userSecrets, a.secretBox, nil
}

// ---- SSH keys ----

// manifest answers the environment's own supervisor (requireAgent) with
// its owner's decrypted secrets. It is the only route that returns secret
// values; every fetch that delivers something is audited.
func (a *API) manifest(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	st, box, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	// A suspended owner's secrets stay where they are.
	owner, err := a.store.GetUser(ctx, env.UserID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("load environment owner: %w", err))
		return
	}
	if owner.SuspendedAt != nil {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "the workspace's owner is suspended"})
		return
	}
	m := agentapi.Manifest{EnvironmentID: env.ID, Env: map[string]string{}, SSHPublicKeys: []string{}, Unavailable: []string{}}
	secrets, err := st.ListUserSecrets(ctx, env.UserID, true)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list secrets: %w", err))
		return
	}
	for _, s := range secrets {
		v, err := box.Open(s.Ciphertext, userSecretAAD(env.UserID, s.Name))
		if err != nil {
			a.log.ErrorContext(ctx, "cannot decrypt a user secret", "user", env.UserID, "name", s.Name, "err", err)
			m.Unavailable = append(m.Unavailable, s.Name)
			continue
		}
		m.Env[s.Name] = string(v)
	}
	g, err := st.GetGitSettings(ctx, env.UserID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("get git settings: %w", err))
		return
	}
	m.Git = agentapi.ManifestGit{Name: g.Name, Email: g.Email}
	if g.Name != "" {
		m.Env["GIT_USER_NAME"] = g.Name
	}
	if g.Email != "" {
		m.Env["GIT_USER_EMAIL"] = g.Email
	}
	if g.GitHubToken != nil {
		v, err := box.Open(g.GitHubToken, githubTokenAAD(env.UserID))
		if err != nil {
			a.log.ErrorContext(ctx, "cannot decrypt a GitHub token", "user", env.UserID, "err", err)
			m.Unavailable = append(m.Unavailable, "GITHUB_TOKEN")
		} else {
			m.GitHubToken = string(v)
			m.Env["GITHUB_TOKEN"] = m.GitHubToken
		}
	}
	keys, err := st.ListSSHKeys(ctx, env.UserID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list ssh keys: %w", err))
		return
	}
	for _, k := range keys {
		m.SSHPublicKeys = append(m.SSHPublicKeys, k.PublicKey)
	}
	// Every delivery of secret values is on record; a manifest with
	// nothing in it (no secrets, token or keys) is not worth an event.
	if len(m.Env) > 0 || len(m.SSHPublicKeys) > 0 || len(m.Unavailable) > 0 {
		a.audit(r, "secrets.deliver", "environment", env.ID, true, map[string]any{
			"user_id": env.UserID, "variables": len(m.Env), "ssh_keys": len(m.SSHPublicKeys), "unavailable": m.Unavailable,
		})
	}
	httpapi.WriteJSON(w, http.StatusOK, m)
}

// userSecretStore is cfg.UserSecrets, else the Store when it has the
// methods (the real store does).
func userSecretStore(cfg Config) UserSecretStore {
	if cfg.UserSecrets != nil {
		return cfg.UserSecrets
	}
	if s, ok := cfg.Store.(UserSecretStore); ok {
		return s
	}
	return nil
}
