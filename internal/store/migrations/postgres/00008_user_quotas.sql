-- +goose Up
-- Per-user overrides of the server's quotas. NULL takes the server's
-- default (dev8 server --quota-*); 0 means unlimited.
ALTER TABLE users ADD COLUMN max_environments INTEGER CHECK (max_environments >= 0);
ALTER TABLE users ADD COLUMN max_running_environments INTEGER CHECK (max_running_environments >= 0);
ALTER TABLE users ADD COLUMN monthly_budget_usd DOUBLE PRECISION CHECK (monthly_budget_usd >= 0);

-- +goose Down
ALTER TABLE users DROP COLUMN monthly_budget_usd;
ALTER TABLE users DROP COLUMN max_running_environments;
ALTER TABLE users DROP COLUMN max_environments;
