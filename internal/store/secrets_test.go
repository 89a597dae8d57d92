package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"sync"
	"testing"

	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
)

func newBox(t *testing.T, b byte) *secretbox.Box {
	t.Helper()
	box, err := secretbox.New(bytes.Repeat([]byte{b}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// rawSecret reads an installation secret's row as a copy of the database
// would show it.
func rawSecret(t *testing.T, ctx context.Context, databaseURL, sqlitePath, name string) (value []byte, sealed bool) {
	t.Helper()
	driver, dsn := "sqlite", sqlitePath
	if databaseURL != "" {
		driver, dsn = "pgx", databaseURL
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// The name is a constant of the test: no placeholder, so one query
	// serves both engines.
	if err := raw.QueryRowContext(ctx, `SELECT value, sealed FROM installation_secrets WHERE name = '`+name+`'`).Scan(&value, &sealed); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return value, sealed
}

// TestSealedInstallationSecret: a key is created sealed, a plaintext one
// from an earlier version is sealed in place keeping its value, concurrent
// first calls agree, and a key sealed under another secret key is replaced
// (the database alone does not open it).
func TestSealedInstallationSecret(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url, path := location(t, engine)
			db := openAt(t, url, path)
			ctx := t.Context()
			box := newBox(t, 1)

			const n = 8
			got := make([]store.SealedSecret, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					v, err := db.SealedInstallationSecret(ctx, "agent-token-key", 32, box)
					if err != nil {
						t.Error(err)
					}
					got[i] = v
				})
			}
			wg.Wait()
			created := 0
			for i := range n {
				if len(got[i].Value) != 32 || !bytes.Equal(got[i].Value, got[0].Value) {
					t.Fatalf("concurrent first reads disagree: %x vs %x", got[i].Value, got[0].Value)
				}
				if got[i].Outcome == store.SecretCreated {
					created++
				} else if got[i].Outcome != store.SecretFound {
					t.Fatalf("outcome %v, want created or found", got[i].Outcome)
				}
			}
			if created != 1 {
				t.Fatalf("%d calls created the secret, want 1", created)
			}
			key := got[0].Value
			stored, sealed := rawSecret(t, ctx, url, path, "agent-token-key")
			if !sealed || bytes.Contains(stored, key) {
				t.Fatalf("stored %x (sealed %v): the key %x is readable in the database", stored, sealed, key)
			}
			if _, err := db.InstallationSecret(ctx, "agent-token-key", 32); err == nil {
				t.Fatal("InstallationSecret read a sealed secret as plaintext")
			}

			// A key stored in the clear by an earlier version.
			legacy, err := db.InstallationSecret(ctx, "session-key", 32)
			if err != nil {
				t.Fatal(err)
			}
			if stored, sealed := rawSecret(t, ctx, url, path, "session-key"); sealed || !bytes.Equal(stored, legacy) {
				t.Fatalf("plaintext secret stored as %x (sealed %v)", stored, sealed)
			}
			v, err := db.SealedInstallationSecret(ctx, "session-key", 32, box)
			if err != nil || v.Outcome != store.SecretSealedNow || !bytes.Equal(v.Value, legacy) {
				t.Fatalf("sealing the plaintext secret: %+v, %v; want its value, sealed now", v, err)
			}
			if stored, sealed := rawSecret(t, ctx, url, path, "session-key"); !sealed || bytes.Contains(stored, legacy) {
				t.Fatalf("after sealing, stored %x (sealed %v)", stored, sealed)
			}
			if v, err := db.SealedInstallationSecret(ctx, "session-key", 32, box); err != nil || v.Outcome != store.SecretFound || !bytes.Equal(v.Value, legacy) {
				t.Fatalf("reading it again: %+v, %v", v, err)
			}

			// Another secret key (the database copied without secret.key)
			// does not open it: a new key replaces it.
			other := newBox(t, 2)
			v, err = db.SealedInstallationSecret(ctx, "agent-token-key", 32, other)
			if err != nil || v.Outcome != store.SecretReplaced || v.OpenErr == nil || bytes.Equal(v.Value, key) {
				t.Fatalf("with another secret key: %+v, %v; want a new value replacing it", v, err)
			}
		})
	}
}
