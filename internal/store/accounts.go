package store

import (
	"context"
	"time"
)

// Account links a user to an identity at an OAuth provider (the seed's
// Account model). A provider account belongs to one user; a user may have
// several. The provider's tokens are not kept.
type Account struct {
	ID                string
	UserID            string
	Provider          string // "github", "google"
	ProviderAccountID string // the provider's stable id for the person
	// Email is the verified address the provider gave when the account was
	// linked or last signed in.
	Email       string
	CreatedAt   time.Time
	LastLoginAt *time.Time
}

const accountColumns = `a.id, a.user_id, a.provider, a.provider_account_id, a.email, a.created_at, a.last_login_at`

func accountDest(a *Account) []any {
	return []any{&a.ID, &a.UserID, &a.Provider, &a.ProviderAccountID, &a.Email, timeCol{&a.CreatedAt}, nullTimeCol{&a.LastLoginAt}}
}

// CreateAccount links a provider account to a user. It assigns the ID
// (unless set) and CreatedAt. ErrConflict if the provider account is linked
// already (to anyone).
func (db *DB) CreateAccount(ctx context.Context, a Account) (Account, error) {
	if a.ID == "" {
		a.ID = newID("acc_")
	}
	a.CreatedAt = now()
	a.LastLoginAt = normTimePtr(a.LastLoginAt)
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO accounts (id, user_id, provider, provider_account_id, email, created_at, last_login_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`),
		a.ID, a.UserID, a.Provider, a.ProviderAccountID, a.Email, db.timeArg(a.CreatedAt), db.nullTimeArg(a.LastLoginAt))
	if err != nil {
		return Account{}, wrapErr("create account", err)
	}
	return a, nil
}

// GetAccount returns the account for a provider's account id and the user
// it belongs to, or ErrNotFound.
func (db *DB) GetAccount(ctx context.Context, provider, providerAccountID string) (Account, User, error) {
	var a Account
	row := db.queryRow(ctx, db.reader, db.q(`
		SELECT `+userColumnsOf("u")+`, `+accountColumns+`
		FROM accounts a JOIN users u ON u.id = a.user_id
		WHERE a.provider = ? AND a.provider_account_id = ?`), provider, providerAccountID)
	u, err := scanUser(row, accountDest(&a)...)
	if err != nil {
		return Account{}, User{}, lookupErr("get account", err)
	}
	return a, u, nil
}

// TouchAccount records a sign-in with account id at at, with the email the
// provider gave this time. ErrNotFound if there is no such account.
func (db *DB) TouchAccount(ctx context.Context, id string, at time.Time, email string) error {
	res, err := db.exec(ctx, db.writer, db.q(`UPDATE accounts SET last_login_at = ?, email = ? WHERE id = ?`),
		db.timeArg(at), email, id)
	return affectedOne("touch account", res, err)
}

// ListAccounts returns the user's linked provider accounts, oldest first.
func (db *DB) ListAccounts(ctx context.Context, userID string) ([]Account, error) {
	rows, err := db.query(ctx, db.reader, db.q(`
		SELECT `+accountColumns+` FROM accounts a WHERE a.user_id = ? ORDER BY a.created_at, a.id`), userID)
	out, err := collect(rows, err, func(s scanner) (Account, error) {
		var a Account
		err := s.Scan(accountDest(&a)...)
		return a, err
	})
	return out, wrapErr("list accounts", err)
}
