-- +goose Up
-- Installation-wide secrets (e.g. the key agent tokens are derived from).
-- They live in the store, not on one server's disk, so every server of an
-- installation sharing a PostgreSQL database agrees on them.
CREATE TABLE installation_secrets (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE installation_secrets;
