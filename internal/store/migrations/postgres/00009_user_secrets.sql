-- +goose Up
-- Users' SSH public keys (the seed's SSHKey model). A key belongs to one
-- account in the whole installation: the fingerprint is unique.
CREATE TABLE ssh_keys (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL DEFAULT '',
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX ssh_keys_fingerprint_key ON ssh_keys (fingerprint);
CREATE INDEX ssh_keys_user_id_idx ON ssh_keys (user_id);

-- Users' environment secrets. ciphertext is AES-256-GCM (internal/secretbox)
-- bound to (user_id, name); the plaintext is never stored.
CREATE TABLE user_secrets (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- A user's git identity (not secret) and GitHub token (ciphertext bound to
-- the user, NULL when none is set).
CREATE TABLE user_git (
    user_id             TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    name                TEXT NOT NULL DEFAULT '',
    email               TEXT NOT NULL DEFAULT '',
    github_token        BYTEA,
    github_token_set_at TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE user_git;
DROP TABLE user_secrets;
DROP TABLE ssh_keys;
