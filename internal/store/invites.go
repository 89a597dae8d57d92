package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Invite is an admin's invitation to sign up: single use, until ExpiresAt,
// optionally for one email address. Only the SHA-256 of its secret is
// stored.
type Invite struct {
	ID   string
	Hash []byte // sha256 of the secret
	// Email is the only address that may use the invite (lower-cased);
	// empty: any.
	Email string
	// Role is what the invited user becomes.
	Role Role
	// CreatedBy is the admin who made it; empty once that user is gone.
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt and UsedBy are set when someone signed up with it.
	UsedAt    *time.Time
	UsedBy    string
	RevokedAt *time.Time
}

// InviteState is where an invite stands at a given time.
type InviteState string

const (
	InvitePending InviteState = "pending"
	InviteUsed    InviteState = "used"
	InviteRevoked InviteState = "revoked"
	InviteExpired InviteState = "expired"
)

// State is where i stands at now: used and revoked are final; a pending
// invite expires at ExpiresAt.
func (i Invite) State(now time.Time) InviteState {
	switch {
	case i.UsedAt != nil:
		return InviteUsed
	case i.RevokedAt != nil:
		return InviteRevoked
	case !now.Before(i.ExpiresAt):
		return InviteExpired
	}
	return InvitePending
}

// ErrInviteSpent is RevokeInvite's refusal of an invite that was used or
// revoked already.
var ErrInviteSpent = errors.New("the invite was used or revoked already")

// InviteFilter selects invites for ListInvites.
type InviteFilter struct {
	// PendingAt, when not zero, keeps only the invites pending at that
	// time: not used, not revoked, not expired.
	PendingAt time.Time
	Limit     int // <= 0: no limit
	Offset    int
}

const inviteColumns = `id, hash, email, role, created_by, created_at, expires_at, used_at, used_by, revoked_at`

func scanInvite(s scanner) (Invite, error) {
	var (
		i                 Invite
		createdBy, usedBy sql.NullString
	)
	err := s.Scan(&i.ID, &i.Hash, &i.Email, &i.Role, &createdBy, timeCol{&i.CreatedAt}, timeCol{&i.ExpiresAt},
		nullTimeCol{&i.UsedAt}, &usedBy, nullTimeCol{&i.RevokedAt})
	i.CreatedBy, i.UsedBy = createdBy.String, usedBy.String
	return i, err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateInvite stores an invite. It assigns the ID (unless set) and
// lower-cases the email; a zero CreatedAt is now. Hash, Role and ExpiresAt
// are required.
func (db *DB) CreateInvite(ctx context.Context, i Invite) (Invite, error) {
	switch {
	case len(i.Hash) == 0:
		return Invite{}, errors.New("store: create invite: empty hash")
	case i.ExpiresAt.IsZero():
		return Invite{}, errors.New("store: create invite: no expiry")
	case i.Role != RoleAdmin && i.Role != RoleMember:
		return Invite{}, errors.New("store: create invite: role must be admin or member")
	}
	if i.ID == "" {
		i.ID = newID("inv_")
	}
	if i.CreatedAt.IsZero() {
		i.CreatedAt = now()
	}
	i.Email = strings.ToLower(i.Email)
	i.CreatedAt, i.ExpiresAt = normTime(i.CreatedAt), normTime(i.ExpiresAt)
	i.UsedAt, i.UsedBy, i.RevokedAt = nil, "", nil
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO invites (id, hash, email, role, created_by, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`),
		i.ID, i.Hash, i.Email, string(i.Role), nullString(i.CreatedBy), db.timeArg(i.CreatedAt), db.timeArg(i.ExpiresAt))
	if err != nil {
		return Invite{}, wrapErr("create invite", err)
	}
	return i, nil
}

// GetInvite returns the invite with the given ID, or ErrNotFound.
func (db *DB) GetInvite(ctx context.Context, id string) (Invite, error) {
	i, err := scanInvite(db.queryRow(ctx, db.reader, db.q(`SELECT `+inviteColumns+` FROM invites WHERE id = ?`), id))
	return i, lookupErr("get invite", err)
}

// GetInviteByHash returns the invite whose secret has the given hash,
// whatever its state, or ErrNotFound.
func (db *DB) GetInviteByHash(ctx context.Context, hash []byte) (Invite, error) {
	i, err := scanInvite(db.queryRow(ctx, db.reader, db.q(`SELECT `+inviteColumns+` FROM invites WHERE hash = ?`), hash))
	return i, lookupErr("get invite", err)
}

// ListInvites returns the invites matching f, newest first, and how many
// match in total before Limit and Offset.
func (db *DB) ListInvites(ctx context.Context, f InviteFilter) ([]Invite, int, error) {
	where := ""
	var args []any
	if !f.PendingAt.IsZero() {
		where = ` WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`
		args = append(args, db.timeArg(f.PendingAt))
	}
	var total int
	if err := db.queryRow(ctx, db.reader, db.q(`SELECT COUNT(*) FROM invites`+where), args...).Scan(&total); err != nil {
		return nil, 0, wrapErr("count invites", err)
	}
	query := `SELECT ` + inviteColumns + ` FROM invites` + where + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ? OFFSET ?`
		args = append(args, f.Limit, max(f.Offset, 0))
	}
	rows, err := db.query(ctx, db.reader, db.q(query), args...)
	out, err := collect(rows, err, scanInvite)
	if err != nil {
		return nil, 0, wrapErr("list invites", err)
	}
	return out, total, nil
}

// RevokeInvite marks the invite revoked at at, so it can no longer be
// used, and returns it. ErrNotFound if there is no such invite;
// ErrInviteSpent (with the invite) if it was used or revoked already. An
// expired invite may still be revoked.
func (db *DB) RevokeInvite(ctx context.Context, id string, at time.Time) (Invite, error) {
	var inv Invite
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		inv, err = scanInvite(tx.QueryRowContext(ctx, db.q(`SELECT `+inviteColumns+` FROM invites WHERE id = ?`), id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if inv.UsedAt != nil || inv.RevokedAt != nil {
			return ErrInviteSpent
		}
		at = normTime(at)
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE invites SET revoked_at = ? WHERE id = ?`), db.timeArg(at), id); err != nil {
			return err
		}
		inv.RevokedAt = &at
		return nil
	})
	if err != nil {
		return inv, wrapErr("revoke invite", err)
	}
	return inv, nil
}

// CreateInvitedUser creates u (as CreateUser does) with the role of the
// invite whose secret has the given hash, and marks the invite used by u at
// at, in one transaction: either both happen or neither. check judges the
// invite as stored (its state, the email it is for) inside the transaction;
// its error is returned as is, with nothing changed. An unknown hash is
// ErrNotFound; a duplicate email ErrConflict, which leaves the invite
// unused. The first user of an installation is its admin whatever the
// invite says.
func (db *DB) CreateInvitedUser(ctx context.Context, u User, hash []byte, at time.Time, check func(Invite) error) (User, Invite, error) {
	u = newUser(u)
	at = normTime(at)
	var inv Invite
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		// Signups take turns (lockUsers), so two uses of one invite are
		// judged one after the other, the second seeing the first's mark.
		if err := db.lockUsers(ctx, tx); err != nil {
			return err
		}
		var err error
		inv, err = scanInvite(tx.QueryRowContext(ctx, db.q(`SELECT `+inviteColumns+` FROM invites WHERE hash = ?`), hash))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := check(inv); err != nil {
			return err
		}
		// The user first: used_by refers to it.
		if err := db.insertUser(ctx, tx, &u, inv.Role); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, db.q(`UPDATE invites SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL`),
			db.timeArg(at), u.ID, inv.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			// Only if the lock above failed to serialise: never sign
			// someone up on an invite that is not pending.
			return errors.Join(ErrInviteSpent, err)
		}
		inv.UsedAt, inv.UsedBy = &at, u.ID
		return nil
	})
	if err != nil {
		return User{}, inv, wrapErr("create invited user", err)
	}
	return u, inv, nil
}
