package store

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"dev8.dev/dev8/internal/testutil/pgtest"
)

// openAt opens a new database of engine with its schema at version, not
// further, closed when the test ends.
func openAt(t *testing.T, ctx context.Context, engine string, version int64) *DB {
	t.Helper()
	var (
		db  *DB
		err error
	)
	if engine == enginePostgres {
		db, err = openPostgres(ctx, pgtest.NewDatabase(t))
	} else {
		db, err = openSQLite(ctx, filepath.Join(t.TempDir(), "dev8.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir, err := fs.Sub(migrations, "migrations/"+db.engine)
	if err != nil {
		t.Fatal(err)
	}
	dialect := goose.DialectSQLite3
	if db.engine == enginePostgres {
		dialect = goose.DialectPostgres
	}
	p, err := goose.NewProvider(dialect, db.writer, dir, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return db
}

// execNow runs each statement on db, its placeholders all the present
// time (rows written below the store's API, as an older Dev8 wrote them).
func execNow(t *testing.T, ctx context.Context, db *DB, statements ...string) {
	t.Helper()
	at := db.timeArg(time.Now())
	for _, q := range statements {
		args := make([]any, strings.Count(q, "?"))
		for i := range args {
			args[i] = at
		}
		if _, err := db.writer.ExecContext(ctx, db.q(q), args...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrationMarksLegacyAgentTokens: upgrading to per-start agent tokens
// lets the workspaces whose compute may be running keep the token they were
// given (LegacyAgentToken, until their next stop or start); stopped and
// deleted ones get none.
func TestMigrationMarksLegacyAgentTokens(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{engineSQLite, enginePostgres} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			db := openAt(t, ctx, engine, 11)
			at := db.timeArg(time.Now())
			if _, err := db.writer.ExecContext(ctx, db.q(`INSERT INTO users (id, email, created_at, updated_at) VALUES ('usr_1', 'ada@example.com', ?, ?)`), at, at); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for i, status := range Statuses {
				id := fmt.Sprintf("env_%d", i)
				if _, err := db.writer.ExecContext(ctx, db.q(`INSERT INTO environments (id, user_id, name, status, last_accessed_at, created_at, updated_at) VALUES (?, 'usr_1', ?, ?, ?, ?, ?)`),
					id, id, string(status), at, at, at); err != nil {
					t.Fatal(err)
				}
				want[id] = LegacyAgentToken
				if status == StatusStopped || status == StatusDeleting {
					want[id] = ""
				}
			}
			// A deleted one, whatever its last status.
			if _, err := db.writer.ExecContext(ctx, db.q(`INSERT INTO environments (id, user_id, name, status, last_accessed_at, created_at, updated_at, deleted_at) VALUES ('env_gone', 'usr_1', 'gone', 'ERROR', ?, ?, ?, ?)`),
				at, at, at, at); err != nil {
				t.Fatal(err)
			}
			if err := db.migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for id, nonce := range want {
				env, err := db.GetEnvironment(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if env.AgentTokenNonce != nonce {
					t.Errorf("%s (%s): agent token nonce %q after the upgrade, want %q", id, env.Status, env.AgentTokenNonce, nonce)
				}
			}
			var gone string
			if err := db.writer.QueryRowContext(ctx, `SELECT agent_token_nonce FROM environments WHERE id = 'env_gone'`).Scan(&gone); err != nil || gone != "" {
				t.Errorf("deleted environment: nonce %q (%v), want none", gone, err)
			}
		})
	}
}

// TestMigrationKeepsInstanceTypesActive: instance types and environments
// made before placement existed come through the upgrade active, without
// extended resources or node selectors.
func TestMigrationKeepsInstanceTypesActive(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{engineSQLite, enginePostgres} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			db := openAt(t, ctx, engine, 13)
			execNow(t, ctx, db,
				`INSERT INTO instance_types (name, cpu_cores, memory_gb, storage_gb) VALUES ('old', 2, 4, 20)`,
				`INSERT INTO users (id, email, created_at, updated_at) VALUES ('usr_1', 'ada@example.com', ?, ?)`,
				`INSERT INTO environments (id, user_id, name, status, instance_type, last_accessed_at, created_at, updated_at) VALUES ('env_1', 'usr_1', 'one', 'STOPPED', 'old', ?, ?, ?)`,
			)
			if err := db.migrate(ctx); err != nil {
				t.Fatal(err)
			}
			it, err := db.GetInstanceType(ctx, "old")
			if err != nil || !it.IsActive || it.Resources != nil || it.NodeSelector != nil || it.CPUCores != 2 {
				t.Errorf("instance type after the upgrade: %+v, %v", it, err)
			}
			env, err := db.GetEnvironment(ctx, "env_1")
			if err != nil || env.Resources != nil || env.NodeSelector != nil || env.InstanceType != "old" {
				t.Errorf("environment after the upgrade: %+v, %v", env, err)
			}
		})
	}
}
