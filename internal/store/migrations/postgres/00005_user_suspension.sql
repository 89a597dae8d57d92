-- +goose Up
-- A suspended user's tokens and sessions stop working at once: the lookup
-- that authenticates a request reads this column with the token.
ALTER TABLE users ADD COLUMN suspended_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE users DROP COLUMN suspended_at;
