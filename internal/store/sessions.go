package store

import (
	"context"
	"errors"
	"time"
)

// Session is a browser sign-in (the seed's Session model). Only the SHA-256
// of its secret is stored. ExpiresAt slides forward while it is used.
type Session struct {
	ID        string
	UserID    string
	Hash      []byte // sha256 of the secret
	CreatedAt time.Time
	ExpiresAt time.Time
	// LastSeenAt is when the session was last used and its expiry last
	// moved (the two move together).
	LastSeenAt time.Time
	IP         string
	UserAgent  string
}

const sessionColumns = `s.id, s.user_id, s.hash, s.created_at, s.expires_at, s.last_seen_at, s.ip, s.user_agent`

func sessionDest(s *Session) []any {
	return []any{&s.ID, &s.UserID, &s.Hash, timeCol{&s.CreatedAt}, timeCol{&s.ExpiresAt}, timeCol{&s.LastSeenAt}, &s.IP, &s.UserAgent}
}

// CreateSession stores a session. It assigns the ID (unless set); a zero
// CreatedAt or LastSeenAt is now. Hash must be the SHA-256 of the secret and
// ExpiresAt is required.
func (db *DB) CreateSession(ctx context.Context, s Session) (Session, error) {
	if len(s.Hash) == 0 {
		return Session{}, errors.New("store: create session: empty hash")
	}
	if s.ExpiresAt.IsZero() {
		return Session{}, errors.New("store: create session: no expiry")
	}
	if s.ID == "" {
		s.ID = newID("ses_")
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now()
	}
	if s.LastSeenAt.IsZero() {
		s.LastSeenAt = s.CreatedAt
	}
	s.CreatedAt, s.ExpiresAt, s.LastSeenAt = normTime(s.CreatedAt), normTime(s.ExpiresAt), normTime(s.LastSeenAt)
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO sessions (id, user_id, hash, created_at, expires_at, last_seen_at, ip, user_agent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		s.ID, s.UserID, s.Hash, db.timeArg(s.CreatedAt), db.timeArg(s.ExpiresAt), db.timeArg(s.LastSeenAt), s.IP, s.UserAgent)
	if err != nil {
		return Session{}, wrapErr("create session", err)
	}
	return s, nil
}

// GetSessionByHash returns the session with the given hash and its user, or
// ErrNotFound. It does not check expiry: the caller judges ExpiresAt by its
// own clock.
func (db *DB) GetSessionByHash(ctx context.Context, hash []byte) (Session, User, error) {
	var s Session
	row := db.queryRow(ctx, db.reader, db.q(`
		SELECT `+userColumnsOf("u")+`, `+sessionColumns+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.hash = ?`), hash)
	u, err := scanUser(row, sessionDest(&s)...)
	if err != nil {
		return Session{}, User{}, lookupErr("get session", err)
	}
	return s, u, nil
}

// GetSession returns the session id and its user, or ErrNotFound. Like
// GetSessionByHash it does not check expiry. (Workspace apps' sessions
// name the dashboard session they came from and end with it.)
func (db *DB) GetSession(ctx context.Context, id string) (Session, User, error) {
	var s Session
	row := db.queryRow(ctx, db.reader, db.q(`
		SELECT `+userColumnsOf("u")+`, `+sessionColumns+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = ?`), id)
	u, err := scanUser(row, sessionDest(&s)...)
	if err != nil {
		return Session{}, User{}, lookupErr("get session", err)
	}
	return s, u, nil
}

// TouchSession records a use of session id at seen, from ip, and moves its
// expiry to expires. ErrNotFound if there is no such session.
func (db *DB) TouchSession(ctx context.Context, id string, seen, expires time.Time, ip string) error {
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE sessions SET last_seen_at = ?, expires_at = ?, ip = ? WHERE id = ?`),
		db.timeArg(seen), db.timeArg(expires), ip, id)
	return affectedOne("touch session", res, err)
}

// ListSessions returns the user's sessions that have not expired by now,
// most recently used first. Hash is not filled in.
func (db *DB) ListSessions(ctx context.Context, userID string, now time.Time) ([]Session, error) {
	rows, err := db.query(ctx, db.reader, db.q(`
		SELECT `+sessionColumns+` FROM sessions s
		WHERE s.user_id = ? AND s.expires_at > ?
		ORDER BY s.last_seen_at DESC, s.id DESC`), userID, db.timeArg(now))
	out, err := collect(rows, err, func(sc scanner) (Session, error) {
		var s Session
		err := sc.Scan(sessionDest(&s)...)
		s.Hash = nil
		return s, err
	})
	return out, wrapErr("list sessions", err)
}

// DeleteSession revokes the user's session id. ErrNotFound if there is no
// such session or it belongs to someone else.
func (db *DB) DeleteSession(ctx context.Context, userID, id string) error {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM sessions WHERE id = ? AND user_id = ?`), id, userID)
	return affectedOne("delete session", res, err)
}

// DeleteExpiredSessions removes every session that expired by now and
// returns how many.
func (db *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM sessions WHERE expires_at <= ?`), db.timeArg(now))
	if err != nil {
		return 0, wrapErr("delete expired sessions", err)
	}
	n, err := res.RowsAffected()
	return n, wrapErr("delete expired sessions", err)
}
