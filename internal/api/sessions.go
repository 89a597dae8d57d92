package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/oauth"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// SessionStore is the persistence of browser sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s store.Session) (store.Session, error)
	GetSessionByHash(ctx context.Context, hash []byte) (store.Session, store.User, error)
	GetSession(ctx context.Context, id string) (store.Session, store.User, error)
	TouchSession(ctx context.Context, id string, seen, expires time.Time, ip string) error
	ListSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error)
	DeleteSession(ctx context.Context, userID, id string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

const (
	// DefaultSessionPruneInterval is how often expired sessions are deleted.
	DefaultSessionPruneInterval = time.Hour
	// maxUserAgentLength bounds the user agent a session keeps (bytes).
	maxUserAgentLength = 256
)

// authState is what sessions and OAuth sign-in share.
type authState struct {
	cookies     *httpmw.Cookies
	oauthStates *oauth.StateSigner
	oauth       map[string]oauth.Provider
	oauthOrder  []string // as configured, for the sign-in buttons
}

// initAuth sets up sessions and OAuth from cfg. Without a SessionKey a
// random one is made: sessions still work, but CSRF tokens and sign-ins in
// progress do not survive a restart.
func (a *API) initAuth(cfg Config) {
	key := cfg.SessionKey
	if len(key) == 0 {
		key = make([]byte, auth.SessionKeySize)
		rand.Read(key)
	}
	a.cookies = httpmw.NewCookies(key, cfg.CORSOrigins)
	a.initApps(cfg, key)
	a.oauthStates = oauth.NewStateSigner(auth.DeriveKey(key, "oauth-state"), a.now)
	a.oauth = map[string]oauth.Provider{}
	for _, p := range cfg.OAuthProviders {
		if _, dup := a.oauth[p.Name()]; !dup {
			a.oauthOrder = append(a.oauthOrder, p.Name())
		}
		a.oauth[p.Name()] = p
	}
}

// startSession creates a session for user, sets its cookies and returns the
// secret (for the answer body, once) with the session.
func (a *API) startSession(w http.ResponseWriter, r *http.Request, user store.User) (string, store.Session, error) {
	secret, hash, err := auth.NewSessionSecret()
	if err != nil {
		return "", store.Session{}, err
	}
	now := a.now()
	ua := truncateUTF8(r.UserAgent(), maxUserAgentLength)
	sess, err := a.store.CreateSession(r.Context(), store.Session{
		UserID:     user.ID,
		Hash:       hash,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(a.tokenTTL),
		IP:         a.clientIP(r),
		UserAgent:  ua,
	})
	if err != nil {
		return "", store.Session{}, fmt.Errorf("create session: %w", err)
	}
	a.cookies.Set(w, r, secret, sess)
	return secret, sess, nil
}

// truncateUTF8 cuts s to at most n bytes of valid UTF-8, at a character
// boundary.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (a *API) clientIP(r *http.Request) string { return a.proxies.ClientIP(r) }

// listSessions lists the caller's live sessions, the one in use marked:
// metadata only, never a secret.
func (a *API) listSessions(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	current, _ := auth.SessionFrom(r.Context())
	sessions, err := a.store.ListSessions(r.Context(), caller.ID, a.now())
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list sessions: %w", err))
		return
	}
	out := make([]sdk.Session, len(sessions))
	for i, s := range sessions {
		out[i] = sdk.Session{ID: s.ID, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt, LastSeenAt: s.LastSeenAt,
			IP: s.IP, UserAgent: s.UserAgent, Current: s.ID == current.ID}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// deleteSession revokes one of the caller's sessions, at once. Another
// user's session is answered like a missing one.
func (a *API) deleteSession(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	id := chi.URLParam(r, "id")
	err := a.store.DeleteSession(r.Context(), caller.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("Session"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("revoke session: %w", err))
		return
	}
	if cur, ok := auth.SessionFrom(r.Context()); ok && cur.ID == id && cur.Cookie {
		a.cookies.Clear(w, r)
	}
	ended := a.liveConns.RevokeCredential(liveconn.Session(id))
	a.log.InfoContext(r.Context(), "session revoked", "user", caller.ID, "session", id, "connections_ended", ended)
	a.audit(r, "session.revoke", "session", id, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Session revoked", "id": id})
}

// logout ends the session the request came with (cookie or bearer) and
// clears the cookies. An API token is not a session: revoke it with
// DELETE /api/v1/tokens/{id}.
func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	cur, ok := auth.SessionFrom(r.Context())
	if !ok {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeValidation, Message: "Not a session",
			Details: "this request used an API token; revoke it with DELETE /api/v1/tokens/{id}"})
		return
	}
	if err := a.store.DeleteSession(r.Context(), caller.ID, cur.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, fmt.Errorf("end session: %w", err))
		return
	}
	a.cookies.Clear(w, r)
	// The session's terminals, SSH sessions and streams end with it.
	ended := a.liveConns.RevokeCredential(liveconn.Session(cur.ID))
	a.log.InfoContext(r.Context(), "user logged out", "user", caller.ID, "session", cur.ID, "connections_ended", ended)
	a.audit(r, "auth.logout", "session", cur.ID, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "Logged out"})
}

// RunSessionPruning deletes expired sessions every interval (default
// DefaultSessionPruneInterval) until ctx is done. Lookups refuse expired
// sessions anyway; this keeps the table from growing with abandoned ones.
func (a *API) RunSessionPruning(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSessionPruneInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		a.pruneSessions(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pruneSessions is one pass of RunSessionPruning.
func (a *API) pruneSessions(ctx context.Context) {
	n, err := a.store.DeleteExpiredSessions(ctx, a.now())
	switch {
	case err != nil && ctx.Err() == nil:
		a.log.WarnContext(ctx, "prune expired sessions", "err", err)
	case n > 0:
		a.log.InfoContext(ctx, "pruned expired sessions", "count", n)
	}
}
