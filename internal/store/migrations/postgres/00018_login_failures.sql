-- +goose Up
-- Login failures per throttle key (an account from an address, an
-- address, an account), kept here so that every replica counts the same
-- failures and honours the same lock (see ratelimit.Failures for the
-- rules). The key is stored as its SHA-256 in hex: it holds email and
-- client addresses. Times are milliseconds since the epoch (0: never);
-- expires_ms is when the record stops counting, after which it is pruned.
CREATE TABLE login_failures (
    key_hash TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_ms BIGINT NOT NULL,
    locked_until_ms BIGINT NOT NULL,
    reported_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_expiry ON login_failures (expires_ms);

-- +goose Down
DROP TABLE login_failures;
