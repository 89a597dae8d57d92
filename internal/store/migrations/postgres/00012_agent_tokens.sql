-- +goose Up
-- Installation secrets are sealed with the key kept outside the database
-- (secret.key): a copy of the database alone no longer yields them. Rows
-- written before this version are plaintext (sealed = FALSE) until the server
-- seals them at its next start.
ALTER TABLE installation_secrets ADD COLUMN sealed BOOLEAN NOT NULL DEFAULT FALSE;

-- Each start of a workspace issues its supervisor a fresh agent token, made
-- from this nonce; '' means none is valid (stopped, deleted). Workspaces
-- whose compute may be running at the upgrade keep the token they were
-- given before ('legacy': valid until their next stop or start).
ALTER TABLE environments ADD COLUMN agent_token_nonce TEXT NOT NULL DEFAULT '';
UPDATE environments SET agent_token_nonce = 'legacy'
    WHERE deleted_at IS NULL AND status IN ('CREATING', 'STARTING', 'RUNNING', 'STOPPING', 'ERROR');

-- +goose Down
ALTER TABLE environments DROP COLUMN agent_token_nonce;
ALTER TABLE installation_secrets DROP COLUMN sealed;
