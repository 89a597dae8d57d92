-- +goose Up
-- Leases say which replica does a piece of work that must happen once: an
-- environment's operation ("environment/<id>") or a singleton loop
-- ("leader"). A lease is taken when free or expired, kept by renewing it
-- before it expires, and given back by deleting it. Expiry is in
-- milliseconds of the database's own clock, so replicas whose clocks
-- disagree still agree on who holds what.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX leases_expiry ON leases (expires_at_ms);

-- +goose Down
DROP TABLE leases;
