-- +goose Up
-- A user's environments, newest first, as the list endpoint pages them.
CREATE INDEX environments_user_recent ON environments (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX environments_user_recent;
