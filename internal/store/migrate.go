package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Each engine has its own directory of migrations: the types differ enough
// (TIMESTAMPTZ and JSONB against TEXT) that one shared file would need
// templating. A new migration is added to both with the same version number.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// migrate brings the schema up to the newest embedded version. It is
// idempotent: already-applied versions are recorded in goose_db_version.
func (db *DB) migrate(ctx context.Context) error {
	dir, err := fs.Sub(migrations, "migrations/"+db.engine)
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if db.engine == enginePostgres {
		dialect = goose.DialectPostgres
		// Several dev8 processes may start against one database at once
		// (rolling deploys, replicas); an advisory lock lets exactly one
		// of them migrate while the others wait. The lock is scoped to the
		// database, so unrelated databases on one server do not contend.
		// Polled every second for up to five minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	// SQLite gets no migration lock: a SQLite file belongs to one dev8
	// server. Two processes opening a fresh file at the same instant could
	// both try version 1, and the loser fails (it does not corrupt anything).
	provider, err := goose.NewProvider(dialect, db.writer, dir, opts...)
	if err != nil {
		return err
	}
	// provider.Close would close db.writer, so it is deliberately not called.
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}
