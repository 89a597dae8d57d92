-- +goose Up
-- Instance types may place a workspace: extended resources it asks for
-- (JSON {"nvidia.com/gpu":"1"}) and node labels it must run on (JSON
-- {"pool":"gpu"}), honoured by runtimes that schedule on a cluster's
-- nodes (kubernetes). is_active: a retired type is no longer offered for
-- new environments; those made from it keep running as they are.
-- Environments keep a copy of the type's placement, made at create (as
-- they keep its sizes), so editing the type changes no existing workspace.
-- NULL: none.
ALTER TABLE instance_types ADD COLUMN resources JSONB;
ALTER TABLE instance_types ADD COLUMN node_selector JSONB;
ALTER TABLE instance_types ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE environments ADD COLUMN resources JSONB;
ALTER TABLE environments ADD COLUMN node_selector JSONB;

-- +goose Down
ALTER TABLE environments DROP COLUMN node_selector;
ALTER TABLE environments DROP COLUMN resources;
ALTER TABLE instance_types DROP COLUMN is_active;
ALTER TABLE instance_types DROP COLUMN node_selector;
ALTER TABLE instance_types DROP COLUMN resources;
