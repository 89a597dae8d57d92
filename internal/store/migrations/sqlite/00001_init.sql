-- Initial schema, SQLite flavour. Keep it in step with
-- ../postgres/00001_init.sql: same tables, columns, constraints and index
-- names; only the types differ.
--
-- Tables are STRICT so a value of the wrong type is rejected instead of
-- stored. Times are TEXT in the fixed-width UTC layout
-- 2006-01-02T15:04:05.000000Z (see sqliteTimeLayout), which sorts and
-- compares as time. JSON is TEXT; booleans are INTEGER 0/1.

-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    hash         BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT
) STRICT;
CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (hash);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

CREATE TABLE environments (
    id                      TEXT PRIMARY KEY,
    user_id                 TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    status                  TEXT NOT NULL DEFAULT 'CREATING'
        CHECK (status IN ('CREATING', 'STARTING', 'RUNNING', 'STOPPING', 'STOPPED', 'ERROR', 'DELETING')),
    status_reason           TEXT NOT NULL DEFAULT '',
    runtime                 TEXT NOT NULL DEFAULT '',
    cloud_region            TEXT NOT NULL DEFAULT '',
    runtime_ref             TEXT NOT NULL DEFAULT '',
    template_name           TEXT NOT NULL DEFAULT '',
    base_image              TEXT NOT NULL DEFAULT '',
    instance_type           TEXT NOT NULL DEFAULT '',
    cpu_cores               INTEGER NOT NULL DEFAULT 2,
    memory_gb               INTEGER NOT NULL DEFAULT 4,
    storage_gb              INTEGER NOT NULL DEFAULT 20,
    environment_variables   TEXT,
    ports                   TEXT,
    auto_stop_minutes       INTEGER NOT NULL DEFAULT 0,
    vscode_url              TEXT NOT NULL DEFAULT '',
    ssh_connection_string   TEXT NOT NULL DEFAULT '',
    estimated_cost_per_hour REAL NOT NULL DEFAULT 0,
    total_cost              REAL NOT NULL DEFAULT 0,
    running_since           TEXT,
    last_accessed_at        TEXT NOT NULL,
    stopped_at              TEXT,
    deleted_at              TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
) STRICT;
-- A name is unique among a user's live environments; a soft-deleted one
-- frees its name.
CREATE UNIQUE INDEX environments_user_name_live_key ON environments (user_id, name) WHERE deleted_at IS NULL;
CREATE INDEX environments_user_status_runtime_created_idx ON environments (user_id, status, runtime, created_at);
CREATE INDEX environments_status_idx ON environments (status);
CREATE INDEX environments_created_at_idx ON environments (created_at);

CREATE TABLE templates (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    display_name       TEXT NOT NULL DEFAULT '',
    description        TEXT NOT NULL DEFAULT '',
    base_image         TEXT NOT NULL DEFAULT '',
    default_cpu        INTEGER NOT NULL DEFAULT 2,
    default_memory_gb  INTEGER NOT NULL DEFAULT 4,
    default_storage_gb INTEGER NOT NULL DEFAULT 20,
    category           TEXT NOT NULL DEFAULT 'language',
    tags               TEXT,
    icon               TEXT NOT NULL DEFAULT '',
    is_popular         INTEGER NOT NULL DEFAULT 0,
    is_active          INTEGER NOT NULL DEFAULT 1,
    default_ports      TEXT,
    default_env_vars   TEXT,
    extensions         TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX templates_name_key ON templates (name);
CREATE INDEX templates_category_popular_idx ON templates (category, is_popular);

CREATE TABLE instance_types (
    name         TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    cpu_cores    INTEGER NOT NULL,
    memory_gb    INTEGER NOT NULL,
    storage_gb   INTEGER NOT NULL,
    sort_order   INTEGER NOT NULL DEFAULT 0
) STRICT;

-- AUTOINCREMENT so ids are never reused after retention deletes rows, as
-- with PostgreSQL's identity column.
CREATE TABLE resource_usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id    TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    timestamp         TEXT NOT NULL,
    cpu_usage_percent REAL NOT NULL DEFAULT 0,
    memory_usage_mb   INTEGER NOT NULL DEFAULT 0,
    disk_usage_mb     INTEGER NOT NULL DEFAULT 0,
    network_in_mb     REAL NOT NULL DEFAULT 0,
    network_out_mb    REAL NOT NULL DEFAULT 0,
    cost_amount       REAL NOT NULL DEFAULT 0,
    billing_period    TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX resource_usage_environment_timestamp_idx ON resource_usage (environment_id, timestamp);
-- Retention deletes by time across every environment.
CREATE INDEX resource_usage_timestamp_idx ON resource_usage (timestamp);

CREATE TABLE activity_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    user_id        TEXT REFERENCES users (id) ON DELETE SET NULL,
    kind           TEXT NOT NULL,
    detail         TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL
) STRICT;
CREATE INDEX activity_events_environment_created_idx ON activity_events (environment_id, created_at);

-- +goose Down
DROP TABLE activity_events;
DROP TABLE resource_usage;
DROP TABLE instance_types;
DROP TABLE templates;
DROP TABLE environments;
DROP TABLE api_tokens;
DROP TABLE users;
