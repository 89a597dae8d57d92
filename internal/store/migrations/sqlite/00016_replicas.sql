-- +goose Up
-- The dev8 server replicas running on this database (several on
-- PostgreSQL; the one server on SQLite registers too). Each registers at
-- start under a random id, renews heartbeat_at every few seconds and
-- deletes its row when it shuts down cleanly; a row whose heartbeat is older
-- than a few intervals is a dead replica's. url is where the other replicas
-- reach it (the relay of workspace tunnels).
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    draining     INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1))
) STRICT;
CREATE INDEX replicas_heartbeat_at_idx ON replicas (heartbeat_at);

-- Which replica holds each workspace's tunnel, and since when: the other
-- replicas relay streams to it. A row goes with its replica.
CREATE TABLE tunnel_holders (
    environment_id TEXT PRIMARY KEY,
    replica_id     TEXT NOT NULL REFERENCES replicas (id) ON DELETE CASCADE,
    since          TEXT NOT NULL
) STRICT;
CREATE INDEX tunnel_holders_replica_id_idx ON tunnel_holders (replica_id);

-- +goose Down
DROP TABLE tunnel_holders;
DROP TABLE replicas;
