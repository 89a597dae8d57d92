package store

import (
	"context"
	"database/sql"
)

// UpdateUserName sets the user's display name and returns the user as
// stored. ErrNotFound if there is no such user.
func (db *DB) UpdateUserName(ctx context.Context, id, name string) (User, error) {
	at := now()
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE users SET name = ?, updated_at = ? WHERE id = ?`), name, db.timeArg(at), id)
	if err := affectedOne("update user name", res, err); err != nil {
		return User{}, err
	}
	return db.GetUser(ctx, id)
}

// SetDefaultAutoStop sets the user's default auto-stop in minutes (nil:
// the server's default) and returns the user as stored. ErrNotFound if
// there is no such user.
func (db *DB) SetDefaultAutoStop(ctx context.Context, id string, minutes *int) (User, error) {
	var arg any
	if minutes != nil {
		arg = *minutes
	}
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE users SET default_auto_stop_minutes = ?, updated_at = ? WHERE id = ?`), arg, db.timeArg(now()), id)
	if err := affectedOne("set default auto-stop", res, err); err != nil {
		return User{}, err
	}
	return db.GetUser(ctx, id)
}

// ChangePassword replaces the user's password hash and, in the same
// transaction, deletes every session of theirs except keepSessionID (empty:
// all of them), so that a stolen session dies with the old password. It
// returns how many sessions were revoked; ErrNotFound if there is no such
// user.
func (db *DB) ChangePassword(ctx context.Context, userID string, hash, keepSessionID string) (revoked int64, err error) {
	at := now()
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(`UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`), hash, db.timeArg(at), userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		res, err = tx.ExecContext(ctx, db.q(`DELETE FROM sessions WHERE user_id = ? AND id <> ?`), userID, keepSessionID)
		if err != nil {
			return err
		}
		revoked, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrapErr("change password", err)
	}
	return revoked, nil
}
