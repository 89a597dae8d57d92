-- +goose Up
-- Invitations an admin makes for people to sign up under the invite or
-- closed signup policy. Like API tokens only the SHA-256 of the secret is
-- kept. An invite is single use: used_at/used_by are set, in the same
-- transaction that creates the user, and never cleared. email, when not
-- empty, is the only address that may use it (lower-cased).
CREATE TABLE invites (
    id         TEXT PRIMARY KEY,
    hash       BLOB NOT NULL,
    email      TEXT NOT NULL DEFAULT '',
    role       TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    used_by    TEXT REFERENCES users (id) ON DELETE SET NULL,
    revoked_at TEXT
) STRICT;
CREATE UNIQUE INDEX invites_hash_key ON invites (hash);
CREATE INDEX invites_created_at_idx ON invites (created_at);

-- +goose Down
DROP TABLE invites;
