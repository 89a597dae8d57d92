package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestBackups(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		alice := mustUser(t, ctx, db, "alice@example.com")
		env := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "web"})
		other := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "api"})

		if _, err := db.LatestCompletedBackup(ctx, env.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LatestCompletedBackup with none: %v, want ErrNotFound", err)
		}
		b1, err := db.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: alice.ID})
		if err != nil {
			t.Fatal(err)
		}
		if b1.Status != store.BackupPending || b1.Trigger != store.BackupManual || b1.ID == "" {
			t.Fatalf("created %+v", b1)
		}
		if err := db.StartBackup(ctx, b1.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.StartBackup(ctx, b1.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("StartBackup twice: %v, want ErrNotFound", err)
		}
		res := store.BackupResult{SnapshotID: "s1", SizeBytes: 100, ChangedBytes: 40, FileCount: 3, Duration: 1500 * time.Millisecond}
		if err := db.FinishBackup(ctx, b1.ID, res); err != nil {
			t.Fatal(err)
		}
		if err := db.FinishBackup(ctx, b1.ID, res); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("FinishBackup twice: %v, want ErrNotFound", err)
		}
		got, err := db.GetBackup(ctx, b1.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != store.BackupCompleted || got.SnapshotID != "s1" || got.SizeBytes != 100 || got.ChangedBytes != 40 ||
			got.FileCount != 3 || got.Duration != 1500*time.Millisecond || got.CompletedAt == nil || got.Error != "" {
			t.Fatalf("finished backup = %+v", got)
		}

		b2, err := db.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: alice.ID, Trigger: store.BackupScheduled})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.FinishBackup(ctx, b2.ID, store.BackupResult{Error: "disk on fire"}); err != nil {
			t.Fatal(err)
		}
		if err := db.FinishBackup(ctx, "nope", store.BackupResult{SnapshotID: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("FinishBackup unknown: %v", err)
		}
		if err := db.FinishBackup(ctx, b2.ID, store.BackupResult{}); err == nil {
			t.Fatal("FinishBackup without snapshot id or error succeeded")
		}
		b3, err := db.CreateBackup(ctx, store.Backup{EnvironmentID: env.ID, UserID: alice.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateBackup(ctx, store.Backup{EnvironmentID: other.ID, UserID: alice.ID}); err != nil {
			t.Fatal(err)
		}
		list, err := db.ListBackups(ctx, env.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("ListBackups = %d, want 3", len(list))
		}
		byID := map[string]store.Backup{}
		for i, b := range list {
			byID[b.ID] = b
			if i > 0 && b.CreatedAt.After(list[i-1].CreatedAt) {
				t.Fatalf("ListBackups not newest first: %+v", list)
			}
		}
		if f := byID[b2.ID]; f.Status != store.BackupFailed || f.Error != "disk on fire" || f.Trigger != store.BackupScheduled || byID[b1.ID].ID == "" || byID[b3.ID].ID == "" {
			t.Fatalf("ListBackups contents: %+v", list)
		}
		latest, err := db.LatestCompletedBackup(ctx, env.ID)
		if err != nil || latest.ID != b1.ID {
			t.Fatalf("LatestCompletedBackup = %+v, %v; want %s", latest, err, b1.ID)
		}
		n, err := db.FailUnfinishedBackups(ctx, "server restarted")
		if err != nil || n != 2 {
			t.Fatalf("FailUnfinishedBackups = %d, %v; want 2", n, err)
		}
		if got, _ := db.GetBackup(ctx, b3.ID); got.Status != store.BackupFailed || got.Error != "server restarted" {
			t.Fatalf("after FailUnfinishedBackups: %+v", got)
		}
		if l, err := db.LatestBackup(ctx, env.ID); err != nil || l.EnvironmentID != env.ID || l.CreatedAt.Before(b3.CreatedAt) {
			t.Fatalf("LatestBackup = %+v, %v", l, err)
		}
		if n, err := db.DeleteBackupsBySnapshot(ctx, []string{"s1", "", "unknown"}); err != nil || n != 1 {
			t.Fatalf("DeleteBackupsBySnapshot = %d, %v; want 1", n, err)
		}
		if _, err := db.GetBackup(ctx, b1.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted backup: %v", err)
		}
		if _, err := db.GetBackup(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetBackup unknown: %v", err)
		}
	})
}
