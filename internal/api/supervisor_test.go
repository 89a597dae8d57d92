package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/supervisorbin"
)

// TestSupervisorBinary: GET /environments/{id}/supervisor gives the
// environment's own supervisor (its agent token) the served file, byte
// for byte, with its length and SHA-256; a user's token, another
// environment's agent and no token at all get nothing. A replaced file is
// hashed again. Without a supervisor the answer says why.
func TestSupervisorBinary(t *testing.T) {
	t.Parallel()
	bin := make([]byte, 3<<20+17)
	if _, err := rand.Read(bin); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dev8-supervisor")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	served, err := supervisorbin.NewServed(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newSecretsFixture(t)
	f.api.supervisor = served
	adaUser, ada := f.user("ada@example.com", "pw")
	bobUser, _ := f.user("bob@example.com", "pw")
	ctx := t.Context()
	env, err := f.db.CreateEnvironment(ctx, store.Environment{UserID: adaUser.ID, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	bobEnv, err := f.db.CreateEnvironment(ctx, store.Environment{UserID: bobUser.ID, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	url := "/api/v1/environments/" + env.ID + "/supervisor"
	f.wantError("GET", url, "", nil, http.StatusUnauthorized, httpapi.CodeUnauthorized)
	f.wantError("GET", url, ada, nil, http.StatusForbidden, httpapi.CodeForbidden)
	f.wantError("GET", url, f.agentToken(bobEnv.ID), nil, http.StatusNotFound, httpapi.CodeNotFound)
	f.wantError("GET", url, "dev8a_"+env.ID+".forged.AAAA", nil, http.StatusUnauthorized, httpapi.CodeUnauthorized)

	check := func(want []byte) {
		t.Helper()
		rec := f.do("GET", url, reqOpts{token: f.agentToken(env.ID)})
		sum := sha256.Sum256(want)
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) || rec.Header().Get("Content-Length") != strconv.Itoa(len(want)) ||
			rec.Header().Get(supervisorbin.HeaderSHA256) != hex.EncodeToString(sum[:]) || rec.Header().Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("GET %s: %d, %d bytes (want %d), headers %v", url, rec.Code, rec.Body.Len(), len(want), rec.Header())
		}
	}
	check(bin)
	// A new version in its place (a restarted server's, a new file): its
	// own checksum, not the one computed before.
	other := append(bytes.Clone(bin[:1000]), "a new build"...)
	if err := os.WriteFile(path+".new", other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	check(other)

	// No supervisor: the reason, not a file.
	f.api.supervisor, f.api.supervisorMissing = nil, "this server has no linux/amd64 supervisor for workspaces to fetch: dev8 is dynamically linked"
	rec := f.do("GET", url, reqOpts{token: f.agentToken(env.ID)})
	if rec.Code != http.StatusServiceUnavailable || !bytes.Contains(rec.Body.Bytes(), []byte("dynamically linked")) {
		t.Fatalf("without a supervisor: %d %s", rec.Code, rec.Body.String())
	}
	// The file gone: a 503 that does not name the server's paths.
	f.api.supervisor = served
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	rec = f.do("GET", url, reqOpts{token: f.agentToken(env.ID)})
	if rec.Code != http.StatusServiceUnavailable || bytes.Contains(rec.Body.Bytes(), []byte(path)) {
		t.Fatalf("file gone: %d %s", rec.Code, rec.Body.String())
	}
}
