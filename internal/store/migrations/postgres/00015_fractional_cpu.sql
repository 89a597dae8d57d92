-- +goose Up
-- CPUs may be fractional (0.5 vCPU): sizes are multiples of 0.25
-- (catalog.CPUStep), which a binary double holds exactly, so sums and
-- comparisons of them are exact too. Whole values convert as they are.
ALTER TABLE environments ALTER COLUMN cpu_cores TYPE DOUBLE PRECISION;
ALTER TABLE instance_types ALTER COLUMN cpu_cores TYPE DOUBLE PRECISION;
ALTER TABLE templates ALTER COLUMN default_cpu TYPE DOUBLE PRECISION;

-- +goose Down
-- Rounds fractions up: an environment keeps at least what it had.
ALTER TABLE templates ALTER COLUMN default_cpu TYPE INTEGER USING CEIL(default_cpu)::INTEGER;
ALTER TABLE instance_types ALTER COLUMN cpu_cores TYPE INTEGER USING CEIL(cpu_cores)::INTEGER;
ALTER TABLE environments ALTER COLUMN cpu_cores TYPE INTEGER USING CEIL(cpu_cores)::INTEGER;
