-- +goose Up
-- A user's default auto-stop (minutes) for environments they create
-- without naming one; NULL: the server's default.
ALTER TABLE users ADD COLUMN default_auto_stop_minutes INTEGER;

-- +goose Down
ALTER TABLE users DROP COLUMN default_auto_stop_minutes;
