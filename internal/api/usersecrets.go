package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/ssh"

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

type sshKeyJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	PublicKey   string    `json:"public_key"`
	Fingerprint string    `json:"fingerprint"`
	Type        string    `json:"type"`
	Comment     string    `json:"comment"`
	CreatedAt   time.Time `json:"created_at"`
}

func toSSHKeyJSON(k store.SSHKey) sshKeyJSON {
	j := sshKeyJSON{ID: k.ID, Name: k.Name, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt}
	if pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey)); err == nil {
		j.Type, j.Comment = pub.Type(), comment
	}
	return j
}

type createSSHKeyRequest struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
}

// parsePublicKey accepts exactly one OpenSSH public key line (as in a .pub
// file or authorized_keys, without options) and returns it normalised,
// with its comment. What it refuses is never echoed back: a pasted private
// key must not travel further.
func parsePublicKey(text string) (ssh.PublicKey, string, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return nil, "", httpapi.Validation("public_key: is required")
	case len(text) > maxPublicKeyLength:
		return nil, "", httpapi.Validation(fmt.Sprintf("public_key: at most %d bytes", maxPublicKeyLength))
	case strings.Contains(text, "PRIVATE KEY"):
		return nil, "", httpapi.Validation("public_key: this is a private key; send the public key (the .pub file) and keep the private key to yourself")
	}
	if _, err := ssh.ParseRawPrivateKey([]byte(text)); err == nil {
		return nil, "", httpapi.Validation("public_key: this is a private key; send the public key (the .pub file)")
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	switch {
	case err != nil:
		return nil, "", httpapi.Validation(`public_key: not an OpenSSH public key (expected one line such as "ssh-ed25519 AAAA… you@host")`)
	case len(strings.TrimSpace(string(rest))) > 0:
		return nil, "", httpapi.Validation("public_key: send one key per request")
	case len(options) > 0:
		return nil, "", httpapi.Validation("public_key: authorized_keys options are not accepted; send the key alone")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, "", httpapi.Validation("public_key: certificates are not accepted; send the public key itself")
	}
	switch pub.Type() {
	case ssh.KeyAlgoDSA:
		return nil, "", httpapi.Validation("public_key: DSA keys are not accepted (they are insecure); use ssh-ed25519")
	case ssh.KeyAlgoRSA:
		if cpk, ok := pub.(ssh.CryptoPublicKey); ok {
			if rsaKey, ok := cpk.CryptoPublicKey().(interface{ Size() int }); ok && rsaKey.Size()*8 < minRSAKeyBits {
				return nil, "", httpapi.Validation(fmt.Sprintf("public_key: RSA keys need at least %d bits; use ssh-ed25519", minRSAKeyBits))
			}
		}
	}
	return pub, strings.TrimSpace(comment), nil
}

// validLabel checks a display name: at most max characters, no control
// characters.
func validLabel(field, v string, maxLen int) error {
	switch {
	case utf8.RuneCountInString(v) > maxLen:
		return httpapi.Validation(fmt.Sprintf("%s: at most %d characters", field, maxLen))
	case !utf8.ValidString(v):
		return httpapi.Validation(field + ": must be UTF-8")
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return httpapi.Validation(field + ": must not contain control characters")
	}
	return nil
}

func (a *API) createSSHKey(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req createSSHKeyRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	pub, comment, err := parsePublicKey(req.PublicKey)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = comment
	}
	if name == "" {
		name = pub.Type()
	}
	if err := validLabel("name", name, maxSSHKeyNameLength); err != nil {
		a.writeError(w, r, err)
		return
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" && validLabel("comment", comment, 256) == nil {
		line += " " + comment
	}
	k, err := st.CreateSSHKey(r.Context(), store.SSHKey{UserID: caller.ID, Name: name, PublicKey: line, Fingerprint: ssh.FingerprintSHA256(pub)})
	if errors.Is(err, store.ErrConflict) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "SSH key already registered",
			Details: "a key with this fingerprint is registered already; each key may belong to one account"})
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("create ssh key: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "ssh key added", "user", caller.ID, "key", k.ID, "fingerprint", k.Fingerprint)
	a.audit(r, "ssh_key.create", "ssh_key", k.ID, true, map[string]any{"name": k.Name, "fingerprint": k.Fingerprint})
	w.Header().Set("Location", "/api/v1/ssh-keys")
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"ssh_key": toSSHKeyJSON(k)})
}

func (a *API) listSSHKeys(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	keys, err := st.ListSSHKeys(r.Context(), caller.ID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list ssh keys: %w", err))
		return
	}
	out := make([]sshKeyJSON, len(keys))
	for i, k := range keys {
		out[i] = toSSHKeyJSON(k)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"ssh_keys": out})
}

func (a *API) deleteSSHKey(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	id := chi.URLParam(r, "id")
	err = st.DeleteSSHKey(r.Context(), caller.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("SSH key"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("delete ssh key: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "ssh key removed", "user", caller.ID, "key", id)
	a.audit(r, "ssh_key.delete", "ssh_key", id, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "SSH key removed", "id": id})
}

// ---- environment secrets ----

type secretJSON struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type putSecretRequest struct {
	Value *string `json:"value"`
}

// validateSecretName checks a secret's name (from the path).
func validateSecretName(name string) error {
	if !secretNamePattern.MatchString(name) {
		return httpapi.Validation("name: must look like an environment variable: a letter or _, then letters, digits or _, at most 64 characters")
	}
	upper := strings.ToUpper(name)
	if strings.HasPrefix(upper, "DEV8_") {
		return httpapi.Validation("name: names starting with DEV8_ are reserved for the platform")
	}
	if why, ok := reservedSecretNames[upper]; ok {
		return httpapi.Validation(fmt.Sprintf("name: %s is set by the platform; %s", name, why))
	}
	return nil
}

func validateSecretValue(v *string) error {
	switch {
	case v == nil || *v == "":
		return httpapi.Validation("value: is required")
	case len(*v) > maxSecretValueBytes:
		return httpapi.Validation(fmt.Sprintf("value: at most %d bytes", maxSecretValueBytes))
	case strings.IndexByte(*v, 0) >= 0:
		return httpapi.Validation("value: must not contain NUL bytes (an environment variable cannot hold them)")
	}
	return nil
}

// putSecret stores a secret's value, encrypted. The answer is its metadata:
// the value is never shown again.
func (a *API) putSecret(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, box, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "name")
	if err := validateSecretName(name); err != nil {
		a.writeError(w, r, err)
		return
	}
	var req putSecretRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := validateSecretValue(req.Value); err != nil {
		a.writeError(w, r, err)
		return
	}
	existing, err := st.ListUserSecrets(r.Context(), caller.ID, false)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list secrets: %w", err))
		return
	}
	if len(existing) >= maxSecretsPerUser && !hasSecret(existing, name) {
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("you have %d secrets, the most there may be; delete one first", len(existing))))
		return
	}
	ct := box.Seal([]byte(*req.Value), userSecretAAD(caller.ID, name))
	s, created, err := st.PutUserSecret(r.Context(), caller.ID, name, ct)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("store secret: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "user secret stored", "user", caller.ID, "name", name, "created", created)
	a.audit(r, "secret.put", "secret", name, true, map[string]any{"created": created})
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, map[string]any{"secret": secretJSON{Name: s.Name, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}})
}

func hasSecret(list []store.UserSecret, name string) bool {
	for _, s := range list {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	list, err := st.ListUserSecrets(r.Context(), caller.ID, false)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list secrets: %w", err))
		return
	}
	out := make([]secretJSON, len(list))
	for i, s := range list {
		out[i] = secretJSON{Name: s.Name, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"secrets": out})
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "name")
	err = st.DeleteUserSecret(r.Context(), caller.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("Secret"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("delete secret: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "user secret deleted", "user", caller.ID, "name", name)
	a.audit(r, "secret.delete", "secret", name, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Secret deleted", "name": name})
}

// ---- git identity and GitHub token ----

type gitJSON struct {
	Name             string     `json:"name"`
	Email            string     `json:"email"`
	GitHubTokenSet   bool       `json:"github_token_set"`
	GitHubTokenSetAt *time.Time `json:"github_token_set_at"`
	UpdatedAt        *time.Time `json:"updated_at"`
}

func toGitJSON(g store.GitSettings) gitJSON {
	j := gitJSON{Name: g.Name, Email: g.Email, GitHubTokenSet: g.GitHubToken != nil, GitHubTokenSetAt: g.GitHubTokenSetAt}
	if !g.UpdatedAt.IsZero() {
		t := g.UpdatedAt
		j.UpdatedAt = &t
	}
	return j
}

type putGitRequest struct {
	Name        *string `json:"name"`
	Email       *string `json:"email"`
	GitHubToken *string `json:"github_token"`
}

func validateGitRequest(req *putGitRequest) error {
	if req.Name == nil && req.Email == nil && req.GitHubToken == nil {
		return httpapi.Validation("send at least one of name, email, github_token")
	}
	if req.Name != nil {
		*req.Name = strings.TrimSpace(*req.Name)
		if err := validLabel("name", *req.Name, maxGitNameLength); err != nil {
			return err
		}
		if strings.ContainsAny(*req.Name, "<>") {
			return httpapi.Validation("name: must not contain < or >")
		}
	}
	if req.Email != nil {
		e := strings.TrimSpace(*req.Email)
		*req.Email = e
		switch {
		case len(e) > maxGitEmailLength:
			return httpapi.Validation(fmt.Sprintf("email: at most %d characters", maxGitEmailLength))
		case e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, "<> \t") || strings.IndexFunc(e, unicode.IsControl) >= 0):
			return httpapi.Validation("email: must be an email address such as ada@example.com (or empty to clear it)")
		}
	}
	if req.GitHubToken != nil {
		t := *req.GitHubToken
		switch {
		case t == "":
			return httpapi.Validation("github_token: must not be empty; DELETE /api/v1/git/github-token removes the token")
		case len(t) > maxGitHubTokenBytes:
			return httpapi.Validation(fmt.Sprintf("github_token: at most %d bytes", maxGitHubTokenBytes))
		case strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			return httpapi.Validation("github_token: must be printable ASCII without spaces")
		}
	}
	return nil
}

func (a *API) getGit(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	g, err := st.GetGitSettings(r.Context(), caller.ID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("get git settings: %w", err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"git": toGitJSON(g)})
}

// putGit changes the fields the request names; the others keep their
// values. The token is write-only.
func (a *API) putGit(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, box, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req putGitRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := validateGitRequest(&req); err != nil {
		a.writeError(w, r, err)
		return
	}
	changed := []string{}
	g, err := st.UpdateGitSettings(r.Context(), caller.ID, func(g *store.GitSettings) error {
		if req.Name != nil {
			g.Name = *req.Name
			changed = append(changed, "name")
		}
		if req.Email != nil {
			g.Email = *req.Email
			changed = append(changed, "email")
		}
		if req.GitHubToken != nil {
			g.GitHubToken = box.Seal([]byte(*req.GitHubToken), githubTokenAAD(caller.ID))
			changed = append(changed, "github_token")
		}
		return nil
	})
	if err != nil {
		a.writeError(w, r, fmt.Errorf("update git settings: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "git settings updated", "user", caller.ID, "fields", changed)
	a.audit(r, "git.update", "user", caller.ID, true, map[string]any{"fields": changed})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"git": toGitJSON(g)})
}

func (a *API) deleteGitHubToken(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	errNoToken := httpapi.NotFound("GitHub token")
	_, err = st.UpdateGitSettings(r.Context(), caller.ID, func(g *store.GitSettings) error {
		if g.GitHubToken == nil {
			return errNoToken
		}
		g.GitHubToken = nil
		return nil
	})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "github token removed", "user", caller.ID)
	a.audit(r, "git.github_token.delete", "user", caller.ID, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "GitHub token removed"})
}

// ---- the supervisor's manifest ----

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
