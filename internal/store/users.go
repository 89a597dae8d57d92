package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

const userColumns = `id, email, name, password_hash, role, created_at, updated_at, suspended_at, default_auto_stop_minutes`

// userColumnsOf is userColumns qualified by a table alias, for joins that
// scan a user with scanUser.
func userColumnsOf(alias string) string {
	cols := strings.Split(userColumns, ", ")
	for i, c := range cols {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

func scanUser(s scanner, extra ...any) (User, error) {
	var (
		u        User
		autoStop sql.NullInt64
	)
	dest := append([]any{&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Role,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, nullTimeCol{&u.SuspendedAt}, &autoStop}, extra...)
	err := s.Scan(dest...)
	if autoStop.Valid {
		n := int(autoStop.Int64)
		u.DefaultAutoStopMinutes = &n
	}
	return u, err
}

// CreateUser stores a new user. It assigns the ID (unless set), lower-cases
// the email and sets the timestamps. The role is decided here, not by the
// caller: the first user of an installation becomes RoleAdmin, everyone after
// RoleMember. A duplicate email (in any case) returns ErrConflict.
func (db *DB) CreateUser(ctx context.Context, u User) (User, error) {
	u = newUser(u)
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockUsers(ctx, tx); err != nil {
			return err
		}
		return db.insertUser(ctx, tx, &u, RoleMember)
	})
	if err != nil {
		return User{}, wrapErr("create user", err)
	}
	return u, nil
}

// ErrUsersExist is CreateFirstUser's refusal: the installation has a user
// already.
var ErrUsersExist = errors.New("the installation already has users")

// CreateFirstUser is CreateUser for an installation without users only: the
// user becomes its admin, or, when anyone else was first (even by a moment),
// nothing is stored and the error is ErrUsersExist.
func (db *DB) CreateFirstUser(ctx context.Context, u User) (User, error) {
	u = newUser(u)
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockUsers(ctx, tx); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return ErrUsersExist
		}
		return db.insertUser(ctx, tx, &u, RoleAdmin)
	})
	if err != nil {
		return User{}, wrapErr("create first user", err)
	}
	return u, nil
}

// HasUsers reports whether the installation has any user.
func (db *DB) HasUsers(ctx context.Context) (bool, error) {
	var exists bool
	err := db.queryRow(ctx, db.reader, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&exists)
	return exists, wrapErr("has users", err)
}

// newUser fills in what the store decides for a new user: the ID (unless
// set), the lower-cased email and the timestamps.
func newUser(u User) User {
	if u.ID == "" {
		u.ID = newID("usr_")
	}
	u.Email = strings.ToLower(u.Email)
	u.CreatedAt = now()
	u.UpdatedAt = u.CreatedAt
	return u
}

// lockUsers makes the transactions that create users take turns on
// PostgreSQL: two concurrent first signups would each see an empty table
// under READ COMMITTED and both become admin. This lock mode conflicts with
// itself. On SQLite the single writer connection already serialises them.
func (db *DB) lockUsers(ctx context.Context, tx *sql.Tx) error {
	if db.engine != enginePostgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`)
	return err
}

// insertUser inserts u (see newUser) with role, except that the first user
// of an installation is always its admin; u.Role is set to the role stored.
// The caller holds lockUsers.
func (db *DB) insertUser(ctx context.Context, tx *sql.Tx, u *User, role Role) error {
	return tx.QueryRowContext(ctx, db.q(`
		INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at)
		VALUES (?, ?, ?, ?,
			CASE WHEN EXISTS (SELECT 1 FROM users) THEN ? ELSE 'admin' END,
			?, ?)
		RETURNING role`),
		u.ID, u.Email, u.Name, u.PasswordHash, string(role), db.timeArg(u.CreatedAt), db.timeArg(u.UpdatedAt),
	).Scan(&u.Role)
}

// GetUser returns the user with the given ID, or ErrNotFound.
func (db *DB) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(db.queryRow(ctx, db.reader,
		db.q(`SELECT `+userColumns+` FROM users WHERE id = ?`), id))
	if err != nil {
		return User{}, lookupErr("get user", err)
	}
	return u, nil
}

// GetUserByEmail finds a user by email, ignoring case, or returns ErrNotFound.
func (db *DB) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(db.queryRow(ctx, db.reader,
		db.q(`SELECT `+userColumns+` FROM users WHERE email = ?`), strings.ToLower(email)))
	if err != nil {
		return User{}, lookupErr("get user by email", err)
	}
	return u, nil
}
