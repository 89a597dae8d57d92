package store

import (
	"context"
	"errors"
	"time"
)

// CreateAPIToken stores a token. It assigns the ID (unless set) and sets
// CreatedAt. Hash must be the SHA-256 of the secret; the secret itself is
// never stored. A zero ExpiresAt means the token does not expire.
func (db *DB) CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error) {
	if len(t.Hash) == 0 {
		return APIToken{}, errors.New("store: create api token: empty hash")
	}
	if t.ID == "" {
		t.ID = newID("tok_")
	}
	t.CreatedAt = now()
	t.ExpiresAt = normTime(t.ExpiresAt)
	t.LastUsedAt = normTimePtr(t.LastUsedAt)
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO api_tokens (id, user_id, name, hash, created_at, expires_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.UserID, t.Name, t.Hash, db.timeArg(t.CreatedAt),
		db.zeroNullTimeArg(t.ExpiresAt), db.nullTimeArg(t.LastUsedAt))
	if err != nil {
		return APIToken{}, wrapErr("create api token", err)
	}
	return t, nil
}

// GetAPITokenByHash returns the token with the given hash and its user, or
// ErrNotFound. It does not check expiry: ExpiresAt is returned for the caller
// to judge.
func (db *DB) GetAPITokenByHash(ctx context.Context, hash []byte) (APIToken, User, error) {
	var t APIToken
	row := db.queryRow(ctx, db.reader, db.q(`
		SELECT `+userColumnsOf("u")+`,
			t.id, t.user_id, t.name, t.hash, t.created_at, t.expires_at, t.last_used_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.hash = ?`), hash)
	u, err := scanUser(row, &t.ID, &t.UserID, &t.Name, &t.Hash,
		timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, nullTimeCol{&t.LastUsedAt})
	if err != nil {
		return APIToken{}, User{}, lookupErr("get api token", err)
	}
	return t, u, nil
}

// GetAPIToken returns the token id and its user, or ErrNotFound. Like
// GetAPITokenByHash it does not check expiry.
func (db *DB) GetAPIToken(ctx context.Context, id string) (APIToken, User, error) {
	var t APIToken
	row := db.queryRow(ctx, db.reader, db.q(`
		SELECT `+userColumnsOf("u")+`,
			t.id, t.user_id, t.name, t.hash, t.created_at, t.expires_at, t.last_used_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.id = ?`), id)
	u, err := scanUser(row, &t.ID, &t.UserID, &t.Name, &t.Hash,
		timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, nullTimeCol{&t.LastUsedAt})
	if err != nil {
		return APIToken{}, User{}, lookupErr("get api token", err)
	}
	return t, u, nil
}

// TouchAPIToken records that the token was used at at. ErrNotFound if there
// is no such token.
func (db *DB) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`),
		db.timeArg(at), id)
	return affectedOne("touch api token", res, err)
}

// ListAPITokens returns a user's tokens, newest first. Hash is not filled
// in: nothing that lists tokens needs it.
func (db *DB) ListAPITokens(ctx context.Context, userID string) ([]APIToken, error) {
	rows, err := db.query(ctx, db.reader, db.q(`
		SELECT id, user_id, name, created_at, expires_at, last_used_at
		FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC, id DESC`), userID)
	out, err := collect(rows, err, func(s scanner) (APIToken, error) {
		var t APIToken
		err := s.Scan(&t.ID, &t.UserID, &t.Name, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, nullTimeCol{&t.LastUsedAt})
		return t, err
	})
	return out, wrapErr("list api tokens", err)
}

// DeleteAPIToken revokes the user's token id. ErrNotFound if there is no
// such token or it belongs to someone else.
func (db *DB) DeleteAPIToken(ctx context.Context, userID, id string) error {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM api_tokens WHERE id = ? AND user_id = ?`), id, userID)
	return affectedOne("delete api token", res, err)
}
