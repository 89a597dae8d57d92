package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// wrapErr prefixes err with the operation and turns a unique violation of
// either engine into ErrConflict. The message names the constraint but never
// the values: PostgreSQL's detail text would echo the duplicate key, which
// can be a token hash.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if constraint, ok := uniqueViolation(err); ok {
		return fmt.Errorf("store: %s: %w (%s)", op, ErrConflict, constraint)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// lookupErr is wrapErr for single-row reads: no row is ErrNotFound.
func lookupErr(op string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	return wrapErr(op, err)
}

// uniqueViolation reports whether err is a unique (or primary key) violation
// and which constraint it hit.
func uniqueViolation(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if pgErr.Code == "23505" { // unique_violation
			return pgErr.ConstraintName, true
		}
		return "", false
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			// SQLite names the columns ("UNIQUE constraint failed:
			// users.email"), not the index, and never the values.
			msg := sqErr.Error()
			if i := strings.Index(msg, "constraint failed: "); i >= 0 {
				msg = msg[i+len("constraint failed: "):]
			}
			msg = strings.TrimPrefix(msg, "UNIQUE constraint failed: ")
			if i := strings.LastIndex(msg, " ("); i >= 0 {
				msg = msg[:i]
			}
			return msg, true
		}
	}
	return "", false
}

// affectedOne finishes an UPDATE aimed at a single row: hitting none means the
// row does not exist, ErrNotFound.
func affectedOne(op string, res sql.Result, err error) error {
	if err != nil {
		return wrapErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrapErr(op, err)
	}
	if n == 0 {
		return wrapErr(op, ErrNotFound)
	}
	return nil
}
