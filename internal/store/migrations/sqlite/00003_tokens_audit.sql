-- +goose Up
-- Named API tokens are unique per user. Tokens from login all share the
-- name 'login' (one per login, any number of them), so they are left out.
CREATE UNIQUE INDEX api_tokens_user_name_key ON api_tokens (user_id, name) WHERE name <> 'login';

-- The audit log: who did what to which object, from where. Append-only:
-- the store inserts and lists, it never updates or deletes. actor_user_id
-- has no foreign key so an event outlives the account it names.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT NOT NULL,
    actor_user_id TEXT,
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('user', 'agent', 'system')),
    action        TEXT NOT NULL,
    object_type   TEXT NOT NULL DEFAULT '',
    object_id     TEXT NOT NULL DEFAULT '',
    ip            TEXT NOT NULL DEFAULT '',
    request_id    TEXT NOT NULL DEFAULT '',
    detail        TEXT,
    success       INTEGER NOT NULL CHECK (success IN (0, 1))
) STRICT;
CREATE INDEX audit_events_created_idx ON audit_events (created_at);
CREATE INDEX audit_events_actor_created_idx ON audit_events (actor_user_id, created_at);
CREATE INDEX audit_events_object_idx ON audit_events (object_type, object_id);

-- +goose Down
DROP TABLE audit_events;
DROP INDEX api_tokens_user_name_key;
