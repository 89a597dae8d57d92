package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
)

// InstallationSecret returns the installation-wide secret called name,
// creating it from size random bytes the first time. Concurrent first calls
// (several servers starting at once) all get the one value that was stored.
func (db *DB) InstallationSecret(ctx context.Context, name string, size int) ([]byte, error) {
	if v, err := db.installationSecret(ctx, name); err == nil || !errors.Is(err, sql.ErrNoRows) {
		return v, err
	}
	fresh := make([]byte, size)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("store: generate secret %s: %w", name, err)
	}
	// ON CONFLICT DO NOTHING: a racing server may have stored its own first;
	// then its value is the one everybody reads below.
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO installation_secrets (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`), name, fresh, db.timeArg(now()))
	if err != nil {
		return nil, wrapErr("store secret", err)
	}
	v, err := db.installationSecret(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("store: read secret %s: %w", name, err)
	}
	return v, nil
}

func (db *DB) installationSecret(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	// The writer, not a reader: right after the insert above a SQLite read
	// connection must not miss it.
	err := db.queryRow(ctx, db.writer, db.q(`SELECT value FROM installation_secrets WHERE name = ?`), name).Scan(&v)
	return v, err
}
