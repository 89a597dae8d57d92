package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// secretsFixture is the real router and SQLite store with a secret box; it
// keeps every answer body and every log line (debug level) so a test can
// check that no secret value escaped.
type secretsFixture struct {
	*hardenedFixture
	box     *secretbox.Box
	logs    *lockedBuffer
	answers []string
}

func newSecretsFixture(t *testing.T) *secretsFixture {
	t.Helper()
	box, err := secretbox.New(bytes.Repeat([]byte{3}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	f := newHardenedFixture(t, func(c *Config) {
		c.SecretBox = box
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.RateLimits = httpmw.RateLimits{PrincipalRate: -1, IPRate: -1}
	})
	return &secretsFixture{hardenedFixture: f, box: box, logs: logs}
}

// call sends a request and decodes the answer into out (if not nil).
func (f *secretsFixture) call(method, path, token string, body any, out any) int {
	f.t.Helper()
	var raw string
	switch b := body.(type) {
	case nil:
	case string:
		raw = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		raw = string(data)
	}
	rec := f.do(method, path, reqOpts{token: token, body: raw})
	f.answers = append(f.answers, rec.Body.String())
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			f.t.Fatalf("%s %s: decode %q: %v", method, path, rec.Body.String(), err)
		}
	}
	return rec.Code
}

// wantError checks an error answer's status and code.
func (f *secretsFixture) wantError(method, path, token string, body any, status int, code string) sdk.ErrorResponse {
	f.t.Helper()
	var e sdk.ErrorResponse
	if got := f.call(method, path, token, body, &e); got != status || e.Code != code || e.Error == "" {
		f.t.Fatalf("%s %s = %d %+v, want %d %s", method, path, got, e, status, code)
	}
	return e
}

// noLeak fails if any answer so far, any log line or any audit event holds
// one of values.
func (f *secretsFixture) noLeak(values ...string) {
	f.t.Helper()
	events, _, err := f.db.ListAuditEvents(f.t.Context(), store.AuditFilter{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	audit, _ := json.Marshal(events)
	for _, v := range values {
		for i, a := range f.answers {
			if strings.Contains(a, v) {
				f.t.Errorf("answer %d holds a secret value: %s", i, a)
			}
		}
		if strings.Contains(f.logs.String(), v) {
			f.t.Errorf("the log holds a secret value:\n%s", f.logs.String())
		}
		if strings.Contains(string(audit), v) {
			f.t.Errorf("the audit log holds a secret value: %s", audit)
		}
	}
}

func newEd25519Key(t *testing.T, comment string) (authorized string, priv ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment, priv
}

func TestSSHKeysAPI(t *testing.T) {
	t.Parallel()
	f := newSecretsFixture(t)
	_, ada := f.user("ada@example.com", "pw")
	_, bob := f.user("bob@example.com", "pw")
	pubLine, priv := newEd25519Key(t, "ada@laptop")

	var created struct {
		SSHKey sshKeyJSON `json:"ssh_key"`
	}
	if code := f.call("POST", "/api/v1/ssh-keys", ada, map[string]string{"public_key": pubLine + "\n"}, &created); code != http.StatusCreated {
		t.Fatalf("add key: %d", code)
	}
	k := created.SSHKey
	pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(pubLine))
	if k.Fingerprint != ssh.FingerprintSHA256(pub) || k.Type != "ssh-ed25519" || k.Comment != "ada@laptop" || k.Name != "ada@laptop" || k.PublicKey != pubLine || !strings.HasPrefix(k.ID, "key_") {
		t.Fatalf("created %+v", k)
	}
	var list struct {
		SSHKeys []sshKeyJSON `json:"ssh_keys"`
	}
	if code := f.call("GET", "/api/v1/ssh-keys", ada, nil, &list); code != http.StatusOK || len(list.SSHKeys) != 1 || list.SSHKeys[0] != k {
		t.Fatalf("list: %d %+v", code, list)
	}
	if f.call("GET", "/api/v1/ssh-keys", bob, nil, &list); len(list.SSHKeys) != 0 {
		t.Fatalf("bob sees %+v", list.SSHKeys)
	}

	// The same key again, by anyone: 409.
	f.wantError("POST", "/api/v1/ssh-keys", bob, map[string]string{"public_key": pubLine}, http.StatusConflict, httpapi.CodeConflict)
	f.wantError("POST", "/api/v1/ssh-keys", ada, map[string]string{"public_key": pubLine, "name": "again"}, http.StatusConflict, httpapi.CodeConflict)

	// Private keys are refused and never echoed.
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(block))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallRSA, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
	other, _ := newEd25519Key(t, "x")
	for name, body := range map[string]any{
		"private openssh": map[string]string{"public_key": privPEM},
		"private no hdr":  map[string]string{"public_key": strings.ReplaceAll(privPEM, "PRIVATE KEY", "KEY")},
		"garbage":         map[string]string{"public_key": "hello world"},
		"empty":           map[string]string{"public_key": " "},
		"missing":         map[string]string{"name": "x"},
		"two keys":        map[string]string{"public_key": pubLine + "\n" + other},
		"options":         map[string]string{"public_key": `command="rm -rf /" ` + other},
		"short rsa":       map[string]string{"public_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(smallRSA)))},
		"long name":       map[string]string{"public_key": other, "name": strings.Repeat("n", maxSSHKeyNameLength+1)},
		"control name":    map[string]string{"public_key": other, "name": "a\x07b"},
		"unknown field":   map[string]string{"public_key": other, "admin": "yes"},
		"too long":        map[string]string{"public_key": "ssh-ed25519 " + strings.Repeat("A", maxPublicKeyLength)},
	} {
		e := f.wantError("POST", "/api/v1/ssh-keys", ada, body, http.StatusBadRequest, httpapi.CodeValidation)
		in := body.(map[string]string)["public_key"]
		if strings.Contains(e.Details, "BEGIN") || (len(in) > 24 && strings.Contains(e.Details, in[12:24])) {
			t.Errorf("%s: the refusal echoes the input: %+v", name, e)
		}
	}
	privBody := privPEM[strings.Index(privPEM, "\n")+1 : strings.Index(privPEM, "-----END")]
	f.noLeak(strings.TrimSpace(strings.Split(privBody, "\n")[1]))

	// Another user's key is 404, like a missing one.
	f.wantError("DELETE", "/api/v1/ssh-keys/"+k.ID, bob, nil, http.StatusNotFound, httpapi.CodeNotFound)
	f.wantError("DELETE", "/api/v1/ssh-keys/key_nope", ada, nil, http.StatusNotFound, httpapi.CodeNotFound)
	if code := f.call("DELETE", "/api/v1/ssh-keys/"+k.ID, ada, nil, nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	if f.call("GET", "/api/v1/ssh-keys", ada, nil, &list); len(list.SSHKeys) != 0 {
		t.Fatalf("after delete: %+v", list.SSHKeys)
	}
	events, _, err := f.db.ListAuditEvents(t.Context(), store.AuditFilter{ObjectType: "ssh_key", Limit: 10})
	if err != nil || len(events) != 2 || events[0].Action != "ssh_key.delete" || events[1].Action != "ssh_key.create" {
		t.Fatalf("audit: %+v, %v", events, err)
	}
}

func TestSecretsAPI(t *testing.T) {
	t.Parallel()
	f := newSecretsFixture(t)
	adaUser, ada := f.user("ada@example.com", "pw")
	_, bob := f.user("bob@example.com", "pw")
	const value = "npm_s3cr3t-value-ABC"

	var put struct {
		Secret sdk.Secret `json:"secret"`
	}
	if code := f.call("PUT", "/api/v1/secrets/NPM_TOKEN", ada, map[string]string{"value": "first-" + value}, &put); code != http.StatusCreated || put.Secret.Name != "NPM_TOKEN" {
		t.Fatalf("create: %d %+v", code, put)
	}
	first := put.Secret
	if code := f.call("PUT", "/api/v1/secrets/NPM_TOKEN", ada, map[string]string{"value": value}, &put); code != http.StatusOK || !put.Secret.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("replace: %d %+v", code, put)
	}
	var list struct {
		Secrets []map[string]any `json:"secrets"`
	}
	if code := f.call("GET", "/api/v1/secrets", ada, nil, &list); code != http.StatusOK || len(list.Secrets) != 1 || list.Secrets[0]["name"] != "NPM_TOKEN" || len(list.Secrets[0]) != 3 {
		t.Fatalf("list: %d %+v", code, list)
	}
	if f.call("GET", "/api/v1/secrets", bob, nil, &list); len(list.Secrets) != 0 {
		t.Fatalf("bob sees %+v", list)
	}

	// The row holds ciphertext bound to its user and name.
	rows, err := f.db.ListUserSecrets(t.Context(), adaUser.ID, true)
	if err != nil || len(rows) != 1 {
		t.Fatal(rows, err)
	}
	if bytes.Contains(rows[0].Ciphertext, []byte(value)) {
		t.Fatal("the store holds the plaintext")
	}
	if got, err := f.box.Open(rows[0].Ciphertext, userSecretAAD(adaUser.ID, "NPM_TOKEN")); err != nil || string(got) != value {
		t.Fatalf("open the row: %q, %v", got, err)
	}

	bad := []struct {
		name string
		path string
		body any
	}{
		{"lower-case ok but digit first", "/api/v1/secrets/1ABC", map[string]string{"value": "x"}},
		{"dash", "/api/v1/secrets/MY-TOKEN", map[string]string{"value": "x"}},
		{"too long name", "/api/v1/secrets/" + strings.Repeat("A", 65), map[string]string{"value": "x"}},
		{"reserved prefix", "/api/v1/secrets/DEV8_AGENT_TOKEN", map[string]string{"value": "x"}},
		{"reserved prefix lower", "/api/v1/secrets/dev8_x", map[string]string{"value": "x"}},
		{"platform name", "/api/v1/secrets/GITHUB_TOKEN", map[string]string{"value": "x"}},
		{"platform name 2", "/api/v1/secrets/PATH", map[string]string{"value": "x"}},
		{"no value", "/api/v1/secrets/OK_NAME", map[string]string{}},
		{"empty value", "/api/v1/secrets/OK_NAME", map[string]string{"value": ""}},
		{"nul", "/api/v1/secrets/OK_NAME", map[string]string{"value": "a\x00b"}},
		{"too big", "/api/v1/secrets/OK_NAME", map[string]string{"value": strings.Repeat("v", maxSecretValueBytes+1)}},
		{"wrong type", "/api/v1/secrets/OK_NAME", map[string]any{"value": 5}},
		{"unknown field", "/api/v1/secrets/OK_NAME", map[string]any{"value": "x", "name": "y"}},
	}
	for _, tc := range bad {
		f.wantError("PUT", tc.path, ada, tc.body, http.StatusBadRequest, httpapi.CodeValidation)
	}
	// The largest value is fine.
	if code := f.call("PUT", "/api/v1/secrets/BIG", ada, map[string]string{"value": strings.Repeat("v", maxSecretValueBytes)}, nil); code != http.StatusCreated {
		t.Fatalf("32 KiB value: %d", code)
	}

	// Another user's secret is 404; so is a missing one.
	f.wantError("DELETE", "/api/v1/secrets/NPM_TOKEN", bob, nil, http.StatusNotFound, httpapi.CodeNotFound)
	f.wantError("DELETE", "/api/v1/secrets/NOPE", ada, nil, http.StatusNotFound, httpapi.CodeNotFound)
	if code := f.call("DELETE", "/api/v1/secrets/BIG", ada, nil, nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	f.noLeak(value)
}

func TestSecretsLimit(t *testing.T) {
	t.Parallel()
	f := newSecretsFixture(t)
	_, ada := f.user("ada@example.com", "pw")
	for i := range maxSecretsPerUser {
		if code := f.call("PUT", "/api/v1/secrets/S"+strconv.Itoa(i), ada, map[string]string{"value": "v"}, nil); code != http.StatusCreated {
			t.Fatalf("secret %d: %d", i, code)
		}
	}
	f.wantError("PUT", "/api/v1/secrets/ONE_MORE", ada, map[string]string{"value": "v"}, http.StatusBadRequest, httpapi.CodeValidation)
	// Replacing one of them is still allowed.
	if code := f.call("PUT", "/api/v1/secrets/S7", ada, map[string]string{"value": "w"}, nil); code != http.StatusOK {
		t.Fatalf("replace at the limit: %d", code)
	}
}

func TestGitAPI(t *testing.T) {
	t.Parallel()
	f := newSecretsFixture(t)
	adaUser, ada := f.user("ada@example.com", "pw")
	_, bob := f.user("bob@example.com", "pw")
	const token = "ghp_0123456789abcdefGITAPItest"

	var got struct {
		Git gitJSON `json:"git"`
	}
	if code := f.call("GET", "/api/v1/git", ada, nil, &got); code != http.StatusOK || got.Git.GitHubTokenSet || got.Git.Name != "" || got.Git.UpdatedAt != nil {
		t.Fatalf("never set: %d %+v", code, got)
	}
	if code := f.call("PUT", "/api/v1/git", ada, map[string]string{"name": " Ada Lovelace ", "email": "ada@example.com", "github_token": token}, &got); code != http.StatusOK {
		t.Fatalf("put: %d", code)
	}
	if got.Git.Name != "Ada Lovelace" || got.Git.Email != "ada@example.com" || !got.Git.GitHubTokenSet || got.Git.GitHubTokenSetAt == nil {
		t.Fatalf("after put: %+v", got.Git)
	}
	// Partial update keeps the rest.
	if f.call("PUT", "/api/v1/git", ada, map[string]string{"email": "a@l.dev"}, &got); got.Git.Name != "Ada Lovelace" || !got.Git.GitHubTokenSet {
		t.Fatalf("partial put: %+v", got.Git)
	}
	if f.call("GET", "/api/v1/git", bob, nil, &got); got.Git.GitHubTokenSet || got.Git.Name != "" {
		t.Fatalf("bob sees %+v", got.Git)
	}
	g, err := f.db.GetGitSettings(t.Context(), adaUser.ID)
	if err != nil || bytes.Contains(g.GitHubToken, []byte(token)) {
		t.Fatalf("stored token: %v (plaintext: %v)", err, bytes.Contains(g.GitHubToken, []byte(token)))
	}
	for _, body := range []any{
		map[string]string{},
		map[string]string{"email": "not-an-email"},
		map[string]string{"email": "a b@c"},
		map[string]string{"name": "a\nb"},
		map[string]string{"name": "<evil>"},
		map[string]string{"github_token": ""},
		map[string]string{"github_token": "has space"},
		map[string]string{"github_token": strings.Repeat("t", maxGitHubTokenBytes+1)},
		map[string]any{"name": 3},
	} {
		f.wantError("PUT", "/api/v1/git", ada, body, http.StatusBadRequest, httpapi.CodeValidation)
	}
	f.wantError("PUT", "/api/v1/git", ada, `{"name":`, http.StatusBadRequest, httpapi.CodeInvalidJSON)

	if code := f.call("DELETE", "/api/v1/git/github-token", ada, nil, nil); code != http.StatusOK {
		t.Fatalf("delete token: %d", code)
	}
	f.wantError("DELETE", "/api/v1/git/github-token", ada, nil, http.StatusNotFound, httpapi.CodeNotFound)
	if f.call("GET", "/api/v1/git", ada, nil, &got); got.Git.GitHubTokenSet || got.Git.Name != "Ada Lovelace" {
		t.Fatalf("after delete: %+v", got.Git)
	}
	f.noLeak(token)
}

func TestManifestAPI(t *testing.T) {
	t.Parallel()
	f := newSecretsFixture(t)
	adaUser, ada := f.user("ada@example.com", "pw")
	bobUser, bob := f.user("bob@example.com", "pw")
	ctx := t.Context()
	env, err := f.db.CreateEnvironment(ctx, store.Environment{UserID: adaUser.ID, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	bobEnv, err := f.db.CreateEnvironment(ctx, store.Environment{UserID: bobUser.ID, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	const secret, token = "manifest-secret-value", "ghp_manifest_token_value"
	pubLine, _ := newEd25519Key(t, "ada@laptop")
	f.call("PUT", "/api/v1/secrets/NPM_TOKEN", ada, map[string]string{"value": secret}, nil)
	f.call("PUT", "/api/v1/secrets/BOBS", bob, map[string]string{"value": "bob-only"}, nil)
	f.call("PUT", "/api/v1/git", ada, map[string]string{"name": "Ada", "email": "ada@example.com", "github_token": token}, nil)
	f.call("POST", "/api/v1/ssh-keys", ada, map[string]string{"public_key": pubLine}, nil)

	path := "/api/v1/environments/" + env.ID + "/manifest"
	// The owner's own token is not enough: only the supervisor.
	f.wantError("GET", path, ada, nil, http.StatusForbidden, httpapi.CodeForbidden)
	// Another environment's supervisor: 404.
	f.wantError("GET", path, f.agentToken(bobEnv.ID), nil, http.StatusNotFound, httpapi.CodeNotFound)
	f.noLeak(secret, token, "bob-only")

	rec := f.do("GET", path, reqOpts{token: f.agentToken(env.ID)})
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("manifest: %d %s", rec.Code, rec.Body.String())
	}
	var m agentapi.Manifest
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{"NPM_TOKEN": secret, "GITHUB_TOKEN": token, "GIT_USER_NAME": "Ada", "GIT_USER_EMAIL": "ada@example.com"}
	if len(m.Env) != len(wantEnv) || m.GitHubToken != token || m.Git.Name != "Ada" || len(m.SSHPublicKeys) != 1 || m.SSHPublicKeys[0] != pubLine || len(m.Unavailable) != 0 {
		t.Fatalf("manifest %+v", m)
	}
	for k, v := range wantEnv {
		if m.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, m.Env[k], v)
		}
	}
	// The fetch is audited, without values.
	events, _, err := f.db.ListAuditEvents(ctx, store.AuditFilter{Action: "secrets.deliver", Limit: 10})
	if err != nil || len(events) != 1 || events[0].ObjectID != env.ID || events[0].ActorKind != store.ActorAgent {
		t.Fatalf("audit: %+v, %v", events, err)
	}
	// The log holds no value even at debug level.
	f.answers = nil
	f.noLeak(secret, token)

	// A ciphertext moved to another row does not open: bob's row given
	// ada's ciphertext is reported unavailable, not delivered.
	rows, _ := f.db.ListUserSecrets(ctx, adaUser.ID, true)
	if _, _, err := f.db.PutUserSecret(ctx, bobUser.ID, "STOLEN", rows[0].Ciphertext); err != nil {
		t.Fatal(err)
	}
	rec = f.do("GET", "/api/v1/environments/"+bobEnv.ID+"/manifest", reqOpts{token: f.agentToken(bobEnv.ID)})
	m = agentapi.Manifest{}
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("bob's manifest: %d %v", rec.Code, err)
	}
	if _, ok := m.Env["STOLEN"]; ok || len(m.Unavailable) != 1 || m.Unavailable[0] != "STOLEN" || m.Env["BOBS"] != "bob-only" {
		t.Fatalf("swapped row: %+v", m)
	}
	if strings.Contains(rec.Body.String(), secret) {
		t.Fatal("a swapped ciphertext was delivered")
	}

	// A suspended owner's workspace gets nothing.
	now := f.clock.Now()
	if _, _, err := f.db.UpdateManagedUser(ctx, bobUser.ID, func(u *store.ManagedUser) error { u.SuspendedAt = &now; return nil }); err != nil {
		t.Fatal(err)
	}
	rec = f.do("GET", "/api/v1/environments/"+bobEnv.ID+"/manifest", reqOpts{token: f.agentToken(bobEnv.ID)})
	if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "bob-only") {
		t.Fatalf("suspended owner: %d %s", rec.Code, rec.Body.String())
	}
}

func TestSecretsWithoutBox(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	_, tok := f.user("ada@example.com", "pw")
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/secrets", ""},
		{"PUT", "/api/v1/secrets/A", `{"value":"x"}`},
		{"GET", "/api/v1/git", ""},
		{"GET", "/api/v1/ssh-keys", ""},
	} {
		rec := f.do(r.method, r.path, reqOpts{token: tok, body: r.body})
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s %s without a box: %d", r.method, r.path, rec.Code)
		}
	}
}

// TestOpenAPISecretsBounds keeps the document's limits for the secrets
// routes in step with the code.
func TestOpenAPISecretsBounds(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	schema := func(name, prop string) (minLen uint64, maxLen uint64) {
		t.Helper()
		s := doc.Components.Schemas[name]
		if s == nil || s.Value.Properties[prop] == nil {
			t.Fatalf("%s.%s is not documented", name, prop)
		}
		p := s.Value.Properties[prop].Value
		if p.MaxLength != nil {
			maxLen = *p.MaxLength
		}
		return p.MinLength, maxLen
	}
	for _, c := range []struct {
		schema, prop string
		min, max     uint64
	}{
		{"PutSecretRequest", "value", 1, maxSecretValueBytes},
		{"CreateSSHKeyRequest", "public_key", 1, maxPublicKeyLength},
		{"CreateSSHKeyRequest", "name", 0, maxSSHKeyNameLength},
		{"PutGitRequest", "name", 0, maxGitNameLength},
		{"PutGitRequest", "email", 0, maxGitEmailLength},
		{"PutGitRequest", "github_token", 1, maxGitHubTokenBytes},
	} {
		if gotMin, gotMax := schema(c.schema, c.prop); gotMin != c.min || gotMax != c.max {
			t.Errorf("%s.%s length %d..%d, want %d..%d", c.schema, c.prop, gotMin, gotMax, c.min, c.max)
		}
	}
	put := documentedOperations(doc)["PUT /api/v1/secrets/{name}"]
	if put == nil {
		t.Fatal("PUT /api/v1/secrets/{name} is not documented")
	}
	var param *openapi3.Parameter
	for _, p := range doc.Paths.Value("/api/v1/secrets/{name}").Parameters {
		if p.Value.Name == "name" {
			param = p.Value
		}
	}
	if param == nil || param.Schema.Value.Pattern != secretNamePattern.String() {
		t.Errorf("the secret name's documented pattern differs from %s", secretNamePattern)
	}
}
