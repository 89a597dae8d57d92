package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// What users keep for their workspaces: SSH public keys, environment
// secrets, and their git identity with a GitHub token. Secret values arrive
// here already encrypted (internal/secretbox) and are stored and returned
// as ciphertext; this package never sees a plaintext secret.

// SSHKey is a user's SSH public key (the seed's SSHKey model). Fingerprint
// (SHA256:…) is unique in the installation.
type SSHKey struct {
	ID          string
	UserID      string
	Name        string
	PublicKey   string // authorized_keys format
	Fingerprint string
	CreatedAt   time.Time
}

// UserSecret is one of a user's environment secrets. Ciphertext is filled
// in only by the methods that say so.
type UserSecret struct {
	UserID     string
	Name       string
	Ciphertext []byte
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// GitSettings is a user's git identity and GitHub token. A user who never
// set anything has the zero value (with UserID).
type GitSettings struct {
	UserID string
	Name   string
	Email  string
	// GitHubToken is the token's ciphertext; nil when none is set.
	GitHubToken      []byte
	GitHubTokenSetAt *time.Time
	UpdatedAt        time.Time
}

// CreateSSHKey stores a key, assigning ID (unless set) and CreatedAt.
// ErrConflict if a key with the same fingerprint exists (anyone's).
func (db *DB) CreateSSHKey(ctx context.Context, k SSHKey) (SSHKey, error) {
	if k.Fingerprint == "" || k.PublicKey == "" {
		return SSHKey{}, errors.New("store: create ssh key: empty key or fingerprint")
	}
	if k.ID == "" {
		k.ID = newID("key_")
	}
	k.CreatedAt = now()
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO ssh_keys (id, user_id, name, public_key, fingerprint, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`),
		k.ID, k.UserID, k.Name, k.PublicKey, k.Fingerprint, db.timeArg(k.CreatedAt))
	if err != nil {
		return SSHKey{}, wrapErr("create ssh key", err)
	}
	return k, nil
}

// ListSSHKeys returns a user's keys, oldest first.
func (db *DB) ListSSHKeys(ctx context.Context, userID string) ([]SSHKey, error) {
	rows, err := db.query(ctx, db.reader, db.q(`
		SELECT id, user_id, name, public_key, fingerprint, created_at
		FROM ssh_keys WHERE user_id = ? ORDER BY created_at, id`), userID)
	out, err := collect(rows, err, func(s scanner) (SSHKey, error) {
		var k SSHKey
		err := s.Scan(&k.ID, &k.UserID, &k.Name, &k.PublicKey, &k.Fingerprint, timeCol{&k.CreatedAt})
		return k, err
	})
	return out, wrapErr("list ssh keys", err)
}

// DeleteSSHKey removes the user's key id. ErrNotFound if there is no such
// key or it belongs to someone else.
func (db *DB) DeleteSSHKey(ctx context.Context, userID, id string) error {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM ssh_keys WHERE id = ? AND user_id = ?`), id, userID)
	return affectedOne("delete ssh key", res, err)
}

// PutUserSecret creates or replaces the user's secret name. created reports
// whether it is new; a replaced secret keeps its CreatedAt. The returned
// value carries no ciphertext.
func (db *DB) PutUserSecret(ctx context.Context, userID, name string, ciphertext []byte) (s UserSecret, created bool, err error) {
	if len(ciphertext) == 0 {
		return UserSecret{}, false, errors.New("store: put user secret: empty ciphertext")
	}
	t := now()
	s = UserSecret{UserID: userID, Name: name, CreatedAt: t, UpdatedAt: t}
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		var createdAt time.Time
		err := tx.QueryRowContext(ctx, db.q(`SELECT created_at FROM user_secrets WHERE user_id = ? AND name = ?`),
			userID, name).Scan(timeCol{&createdAt})
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			_, err = tx.ExecContext(ctx, db.q(`
				INSERT INTO user_secrets (user_id, name, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`),
				userID, name, ciphertext, db.timeArg(t), db.timeArg(t))
			return err
		case err != nil:
			return err
		}
		s.CreatedAt = createdAt
		_, err = tx.ExecContext(ctx, db.q(`UPDATE user_secrets SET ciphertext = ?, updated_at = ? WHERE user_id = ? AND name = ?`),
			ciphertext, db.timeArg(t), userID, name)
		return err
	})
	if err != nil {
		return UserSecret{}, false, wrapErr("put user secret", err)
	}
	return s, created, nil
}

// ListUserSecrets returns the user's secrets by name; their ciphertext only
// when withCiphertext is set (what lists them for people never needs it).
func (db *DB) ListUserSecrets(ctx context.Context, userID string, withCiphertext bool) ([]UserSecret, error) {
	cols := "user_id, name, created_at, updated_at"
	if withCiphertext {
		cols += ", ciphertext"
	}
	rows, err := db.query(ctx, db.reader, db.q(`SELECT `+cols+` FROM user_secrets WHERE user_id = ? ORDER BY name`), userID)
	out, err := collect(rows, err, func(s scanner) (UserSecret, error) {
		var u UserSecret
		dst := []any{&u.UserID, &u.Name, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}}
		if withCiphertext {
			dst = append(dst, &u.Ciphertext)
		}
		err := s.Scan(dst...)
		return u, err
	})
	return out, wrapErr("list user secrets", err)
}

// DeleteUserSecret removes the user's secret name; ErrNotFound if there is
// none.
func (db *DB) DeleteUserSecret(ctx context.Context, userID, name string) error {
	res, err := db.exec(ctx, db.writer, db.q(`DELETE FROM user_secrets WHERE user_id = ? AND name = ?`), userID, name)
	return affectedOne("delete user secret", res, err)
}

// GetGitSettings returns the user's git settings: the zero value (with
// UserID) if they never set any.
func (db *DB) GetGitSettings(ctx context.Context, userID string) (GitSettings, error) {
	g, err := db.getGitSettings(ctx, db.reader, userID)
	return g, wrapErr("get git settings", err)
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) getGitSettings(ctx context.Context, q rowQuerier, userID string) (GitSettings, error) {
	g := GitSettings{UserID: userID}
	err := q.QueryRowContext(ctx, db.q(`
		SELECT name, email, github_token, github_token_set_at, updated_at FROM user_git WHERE user_id = ?`), userID).
		Scan(&g.Name, &g.Email, &g.GitHubToken, nullTimeCol{&g.GitHubTokenSetAt}, timeCol{&g.UpdatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return GitSettings{UserID: userID}, nil
	}
	if len(g.GitHubToken) == 0 {
		g.GitHubToken = nil
	}
	return g, err
}

// UpdateGitSettings applies fn to the user's git settings (the zero value
// the first time) and stores the result, in one transaction. UpdatedAt is
// set; GitHubTokenSetAt is set whenever fn changes the token, and cleared
// with it.
func (db *DB) UpdateGitSettings(ctx context.Context, userID string, fn func(*GitSettings) error) (GitSettings, error) {
	var out GitSettings
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		g, err := db.getGitSettings(ctx, tx, userID)
		if err != nil {
			return err
		}
		oldToken := g.GitHubToken
		if err := fn(&g); err != nil {
			return err
		}
		g.UserID = userID
		g.UpdatedAt = now()
		switch {
		case len(g.GitHubToken) == 0:
			g.GitHubToken, g.GitHubTokenSetAt = nil, nil
		case string(g.GitHubToken) != string(oldToken):
			t := g.UpdatedAt
			g.GitHubTokenSetAt = &t
		}
		g.GitHubTokenSetAt = normTimePtr(g.GitHubTokenSetAt)
		var token any
		if g.GitHubToken != nil {
			token = g.GitHubToken
		}
		_, err = tx.ExecContext(ctx, db.q(`
			INSERT INTO user_git (user_id, name, email, github_token, github_token_set_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, email = excluded.email,
				github_token = excluded.github_token, github_token_set_at = excluded.github_token_set_at,
				updated_at = excluded.updated_at`),
			userID, g.Name, g.Email, token, db.nullTimeArg(g.GitHubTokenSetAt), db.timeArg(g.UpdatedAt))
		if err != nil {
			return err
		}
		out = g
		return nil
	})
	if err != nil {
		return GitSettings{}, wrapErr("update git settings", err)
	}
	return out, nil
}
