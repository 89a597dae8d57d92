package store

import (
	"context"
	"testing"
	"time"
)

// TestFractionalCPU: the upgrade to fractional CPUs keeps every whole size
// as it was, and afterwards environments, instance types and templates
// hold 0.5 vCPU exactly, on both engines (SQLite's STRICT tables refused
// a REAL in the INTEGER columns; PostgreSQL's INTEGER rounded it).
func TestFractionalCPU(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{engineSQLite, enginePostgres} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			db := openAt(t, ctx, engine, 14)
			execNow(t, ctx, db,
				`INSERT INTO instance_types (name, cpu_cores, memory_gb, storage_gb) VALUES ('old', 3, 4, 20)`,
				`INSERT INTO templates (id, name, default_cpu, created_at, updated_at) VALUES ('tpl_1', 'old', 4, ?, ?)`,
				`INSERT INTO users (id, email, created_at, updated_at) VALUES ('usr_1', 'ada@example.com', ?, ?)`,
				`INSERT INTO environments (id, user_id, name, status, cpu_cores, last_accessed_at, created_at, updated_at) VALUES ('env_1', 'usr_1', 'one', 'STOPPED', 2, ?, ?, ?)`,
			)
			if err := db.migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if env, err := db.GetEnvironment(ctx, "env_1"); err != nil || env.CPUCores != 2 || env.Name != "one" {
				t.Errorf("environment after the upgrade: %v vCPU (%v), want 2", env.CPUCores, err)
			}
			if it, err := db.GetInstanceType(ctx, "old"); err != nil || it.CPUCores != 3 || it.MemoryGB != 4 {
				t.Errorf("instance type after the upgrade: %+v (%v), want 3 vCPU", it, err)
			}
			if tpl, err := db.GetTemplate(ctx, "old"); err != nil || tpl.DefaultCPU != 4 {
				t.Errorf("template after the upgrade: %v vCPU (%v), want 4", tpl.DefaultCPU, err)
			}

			env, err := db.CreateEnvironment(ctx, Environment{UserID: "usr_1", Name: "half", CPUCores: 0.5})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := db.GetEnvironment(ctx, env.ID); err != nil || got.CPUCores != 0.5 {
				t.Errorf("environment of 0.5 vCPU read back as %v (%v)", got.CPUCores, err)
			}
			if got, err := db.UpdateEnvironment(ctx, env.ID, func(e *Environment) error { e.CPUCores = 1.25; return nil }); err != nil || got.CPUCores != 1.25 {
				t.Errorf("update to 1.25 vCPU: %v (%v)", got.CPUCores, err)
			}
			if err := db.CreateInstanceType(ctx, InstanceType{Name: "quarter", CPUCores: 0.25, MemoryGB: 1, StorageGB: 1, IsActive: true}); err != nil {
				t.Fatal(err)
			}
			if it, err := db.GetInstanceType(ctx, "quarter"); err != nil || it.CPUCores != 0.25 {
				t.Errorf("instance type of 0.25 vCPU read back as %v (%v)", it.CPUCores, err)
			}
			if err := db.EnsureTemplate(ctx, Template{Name: "halftpl", DefaultCPU: 0.5, DefaultMemory: 1, DefaultStorage: 1, IsActive: true}); err != nil {
				t.Fatal(err)
			}
			if tpl, err := db.GetTemplate(ctx, "halftpl"); err != nil || tpl.DefaultCPU != 0.5 {
				t.Errorf("template of 0.5 vCPU read back as %v (%v)", tpl.DefaultCPU, err)
			}
		})
	}
}
