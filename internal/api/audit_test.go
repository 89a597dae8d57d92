package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/store"
)

// brokenAudit is the real store whose audit log refuses every insert.
type brokenAudit struct {
	*store.DB
	mu       sync.Mutex
	attempts []string
}

func (b *brokenAudit) InsertAuditEvent(_ context.Context, e store.AuditEvent) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts = append(b.attempts, e.Action)
	return errors.New("audit table unavailable")
}

// TestAuditIsBestEffort: when the audit log cannot be written, requests
// still succeed and the failure is logged.
func TestAuditIsBestEffort(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &brokenAudit{DB: db}
	var logs syncBuf
	h := New(Config{Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil)), BcryptCost: auth.MinBcryptCost}).Handler()

	call := func(method, path, token string, body any) (int, []byte) {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			data, _ := json.Marshal(body)
			rd = bytes.NewReader(data)
		} else {
			rd = bytes.NewReader(nil)
		}
		req := httptest.NewRequestWithContext(ctx, method, path, rd)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	creds := map[string]string{"email": "ada@example.com", "password": "correct horse"}
	if code, body := call("POST", "/api/v1/auth/signup", "", creds); code != http.StatusCreated {
		t.Fatalf("signup = %d %s", code, body)
	}
	code, body := call("POST", "/api/v1/auth/login", "", creds)
	var login struct{ Token string }
	if code != http.StatusOK || json.Unmarshal(body, &login) != nil {
		t.Fatalf("login = %d %s", code, body)
	}
	code, body = call("POST", "/api/v1/tokens", login.Token, map[string]any{"name": "ci"})
	var created struct {
		APIToken struct{ ID string } `json:"api_token"`
	}
	if code != http.StatusCreated || json.Unmarshal(body, &created) != nil {
		t.Fatalf("create token = %d %s", code, body)
	}
	if code, body := call("DELETE", "/api/v1/tokens/"+created.APIToken.ID, login.Token, nil); code != http.StatusOK {
		t.Fatalf("revoke = %d %s", code, body)
	}
	st.mu.Lock()
	attempts := slices.Clone(st.attempts)
	st.mu.Unlock()
	if want := []string{"auth.signup", "auth.login", "token.create", "token.revoke"}; !slices.Equal(attempts, want) {
		t.Fatalf("audit attempts = %v, want %v", attempts, want)
	}
	if n := strings.Count(logs.String(), "record audit event"); n != 4 {
		t.Fatalf("%d audit failures logged, want 4:\n%s", n, logs.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
