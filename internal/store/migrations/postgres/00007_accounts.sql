-- +goose Up
-- Sign-in identities at OAuth providers (the seed's Account model): one
-- provider account belongs to one user; a user may have several. The
-- provider's tokens are not kept: Dev8 only needs who signed in.
CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider            TEXT NOT NULL,
    provider_account_id TEXT NOT NULL,
    email               TEXT NOT NULL DEFAULT '',
    created_at          TIMESTAMPTZ NOT NULL,
    last_login_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX accounts_provider_account_key ON accounts (provider, provider_account_id);
CREATE INDEX accounts_user_id_idx ON accounts (user_id);

-- +goose Down
DROP TABLE accounts;
