-- +goose Up
-- Snapshots of environments' workspaces (the seed's Backup model). The
-- snapshot itself lives in the server's snapshot repository
-- (internal/snapshot); snapshot_id names it there once it is COMPLETED.
CREATE TABLE backups (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    trigger_kind   TEXT NOT NULL CHECK (trigger_kind IN ('MANUAL', 'PRE_SHUTDOWN', 'SCHEDULED')),
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
    snapshot_id    TEXT NOT NULL DEFAULT '',
    size_bytes     BIGINT NOT NULL DEFAULT 0,
    changed_bytes  BIGINT NOT NULL DEFAULT 0,
    file_count     BIGINT NOT NULL DEFAULT 0,
    duration_ms    BIGINT NOT NULL DEFAULT 0,
    error          TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL,
    completed_at   TIMESTAMPTZ
);
CREATE INDEX backups_environment_idx ON backups (environment_id, created_at);
CREATE INDEX backups_user_idx ON backups (user_id);

-- +goose Down
DROP TABLE backups;
