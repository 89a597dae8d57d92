package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
)

// InstallationSecret returns the installation-wide value called name,
// creating it from size random bytes the first time. Concurrent first calls
// (several servers starting at once) all get the one value that was stored.
// It is kept in the clear: it is for values a reader of the database may
// see (the installation id). Keys are kept with SealedInstallationSecret.
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
	var (
		v      []byte
		sealed bool
	)
	// The writer, not a reader: right after the insert above a SQLite read
	// connection must not miss it.
	err := db.queryRow(ctx, db.writer, db.q(`SELECT value, sealed FROM installation_secrets WHERE name = ?`), name).Scan(&v, &sealed)
	if err == nil && sealed {
		return nil, fmt.Errorf("store: installation secret %s is sealed: read it with SealedInstallationSecret", name)
	}
	return v, err
}

// Sealer encrypts installation secrets with a key kept outside the store
// (secretbox.Box is one), bound to additional data that names the secret.
type Sealer interface {
	Seal(plaintext, aad []byte) []byte
	Open(ciphertext, aad []byte) ([]byte, error)
}

// SealOutcome says what SealedInstallationSecret found.
type SealOutcome int

const (
	// SecretFound: the sealed secret was there and opened.
	SecretFound SealOutcome = iota
	// SecretCreated: there was none; a new one is stored sealed.
	SecretCreated
	// SecretSealedNow: it was stored in the clear (before sealing
	// existed); it is the same value, sealed now.
	SecretSealedNow
	// SecretReplaced: it was sealed under a key the Sealer does not have
	// (the secret key changed or was lost), or was damaged; a new value
	// replaces it, and whatever the old one protected is void.
	SecretReplaced
)

// SealedSecret is what SealedInstallationSecret returns.
type SealedSecret struct {
	Value   []byte
	Outcome SealOutcome
	// OpenErr is why the stored value could not be opened, when Outcome
	// is SecretReplaced.
	OpenErr error
}

// sealAAD binds a sealed secret to its name: a row copied under another
// name does not open.
func sealAAD(name string) []byte { return []byte("dev8 installation secret\x00" + name) }

// SealedInstallationSecret returns the installation-wide secret called
// name, kept in the store only sealed by s, so that a copy of the database
// alone does not yield it. It is created from size random bytes the first
// time; a value stored in the clear by an earlier version is sealed in
// place, keeping its value. Concurrent first calls (several servers
// starting at once) all get the one value that was stored. When the stored
// value cannot be opened, a new one replaces it (SecretReplaced, with
// OpenErr): the caller says so loudly.
func (db *DB) SealedInstallationSecret(ctx context.Context, name string, size int, s Sealer) (SealedSecret, error) {
	var out SealedSecret
	aad := sealAAD(name)
	fresh := func() ([]byte, error) {
		v := make([]byte, size)
		if _, err := rand.Read(v); err != nil {
			return nil, fmt.Errorf("generate secret %s: %w", name, err)
		}
		return v, nil
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		query := `SELECT value, sealed FROM installation_secrets WHERE name = ?`
		if db.engine == enginePostgres {
			// SQLite needs no row lock: the transaction began IMMEDIATE.
			query += " FOR UPDATE"
		}
		reseal := func(v []byte) error {
			_, err := tx.ExecContext(ctx, db.q(`UPDATE installation_secrets SET value = ?, sealed = ? WHERE name = ?`), s.Seal(v, aad), true, name)
			return err
		}
		// Twice at most: a first read finds nothing when another server is
		// inserting; the insert then finds its row, read again.
		for range 2 {
			var (
				stored []byte
				sealed bool
			)
			switch err := tx.QueryRowContext(ctx, db.q(query), name).Scan(&stored, &sealed); {
			case errors.Is(err, sql.ErrNoRows):
				v, err := fresh()
				if err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, db.q(`
					INSERT INTO installation_secrets (name, value, sealed, created_at) VALUES (?, ?, ?, ?)
					ON CONFLICT (name) DO NOTHING`), name, s.Seal(v, aad), true, db.timeArg(now()))
				if err != nil {
					return err
				}
				if n, err := res.RowsAffected(); err != nil || n == 1 {
					out = SealedSecret{Value: v, Outcome: SecretCreated}
					return err
				}
				continue
			case err != nil:
				return err
			case !sealed:
				out = SealedSecret{Value: stored, Outcome: SecretSealedNow}
				return reseal(stored)
			}
			plain, oerr := s.Open(stored, aad)
			if oerr == nil {
				out = SealedSecret{Value: plain, Outcome: SecretFound}
				return nil
			}
			v, err := fresh()
			if err != nil {
				return err
			}
			out = SealedSecret{Value: v, Outcome: SecretReplaced, OpenErr: oerr}
			return reseal(v)
		}
		return fmt.Errorf("installation secret %s: neither found nor stored", name)
	})
	if err != nil {
		return SealedSecret{}, wrapErr("sealed installation secret "+name, err)
	}
	return out, nil
}
