-- +goose Up
-- CPUs may be fractional (0.5 vCPU): sizes are multiples of 0.25
-- (catalog.CPUStep), which a REAL holds exactly. The tables are STRICT,
-- so an INTEGER column refuses 0.5, and SQLite cannot change a column's
-- type: each column is replaced by a REAL one of the same name (added
-- last; the store names its columns, so their order does not matter).
ALTER TABLE environments ADD COLUMN cpu_cores_real REAL NOT NULL DEFAULT 2;
UPDATE environments SET cpu_cores_real = cpu_cores;
ALTER TABLE environments DROP COLUMN cpu_cores;
ALTER TABLE environments RENAME COLUMN cpu_cores_real TO cpu_cores;

ALTER TABLE instance_types ADD COLUMN cpu_cores_real REAL NOT NULL DEFAULT 1;
UPDATE instance_types SET cpu_cores_real = cpu_cores;
ALTER TABLE instance_types DROP COLUMN cpu_cores;
ALTER TABLE instance_types RENAME COLUMN cpu_cores_real TO cpu_cores;

ALTER TABLE templates ADD COLUMN default_cpu_real REAL NOT NULL DEFAULT 2;
UPDATE templates SET default_cpu_real = default_cpu;
ALTER TABLE templates DROP COLUMN default_cpu;
ALTER TABLE templates RENAME COLUMN default_cpu_real TO default_cpu;

-- +goose Down
-- Rounds fractions up (without ceil(), which not every SQLite build has):
-- an environment keeps at least what it had.
ALTER TABLE templates ADD COLUMN default_cpu_int INTEGER NOT NULL DEFAULT 2;
UPDATE templates SET default_cpu_int = CAST(default_cpu AS INTEGER) + (default_cpu > CAST(default_cpu AS INTEGER));
ALTER TABLE templates DROP COLUMN default_cpu;
ALTER TABLE templates RENAME COLUMN default_cpu_int TO default_cpu;

ALTER TABLE instance_types ADD COLUMN cpu_cores_int INTEGER NOT NULL DEFAULT 1;
UPDATE instance_types SET cpu_cores_int = CAST(cpu_cores AS INTEGER) + (cpu_cores > CAST(cpu_cores AS INTEGER));
ALTER TABLE instance_types DROP COLUMN cpu_cores;
ALTER TABLE instance_types RENAME COLUMN cpu_cores_int TO cpu_cores;

ALTER TABLE environments ADD COLUMN cpu_cores_int INTEGER NOT NULL DEFAULT 2;
UPDATE environments SET cpu_cores_int = CAST(cpu_cores AS INTEGER) + (cpu_cores > CAST(cpu_cores AS INTEGER));
ALTER TABLE environments DROP COLUMN cpu_cores;
ALTER TABLE environments RENAME COLUMN cpu_cores_int TO cpu_cores;
