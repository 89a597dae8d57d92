package pgtest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNewDatabaseIsFreshAndDropped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var first, second string
	t.Run("create", func(t *testing.T) {
		first = NewDatabase(t)
		second = NewDatabase(t)
		if first == second {
			t.Fatal("two calls returned the same database")
		}
		db, err := sql.Open("pgx", first)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var tables int
		err = db.QueryRowContext(ctx,
			`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&tables)
		if err != nil {
			t.Fatalf("connect to new database: %v", err)
		}
		if tables != 0 {
			t.Errorf("new database has %d tables", tables)
		}
		// Left open on purpose: the drop must not be blocked by it.
		if _, err := db.ExecContext(ctx, `CREATE TABLE t (x int)`); err != nil {
			t.Fatal(err)
		}
	})
	if first == "" {
		t.Skip("no database was created")
	}

	admin, err := sql.Open("pgx", os.Getenv(EnvURL))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, u := range []string{first, second} {
		parsed, _ := url.Parse(u)
		name := strings.TrimPrefix(parsed.Path, "/")
		var n int
		if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test finished", name)
		}
	}
}
