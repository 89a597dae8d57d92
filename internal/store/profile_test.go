package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestUpdateUserName(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		got, err := db.UpdateUserName(ctx, ada.ID, "Ada Lovelace")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Ada Lovelace" || got.Email != ada.Email || got.Role != ada.Role || got.UpdatedAt.Before(ada.UpdatedAt) {
			t.Errorf("after UpdateUserName: %+v (before %+v)", got, ada)
		}
		if again, _ := db.GetUser(ctx, ada.ID); again.Name != "Ada Lovelace" {
			t.Errorf("stored name %q", again.Name)
		}
		if _, err := db.UpdateUserName(ctx, "usr_missing", "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing user: err = %v, want ErrNotFound", err)
		}
	})
}

func TestChangePasswordRevokesOtherSessions(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		now := time.Now()
		mk := func(u store.User, secret string) store.Session {
			t.Helper()
			h := sha256.Sum256([]byte(secret))
			s, err := db.CreateSession(ctx, store.Session{UserID: u.ID, Hash: h[:], ExpiresAt: now.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		keep, _, _ := mk(ada, "a1"), mk(ada, "a2"), mk(ada, "a3")
		bobs := mk(bob, "b1")

		revoked, err := db.ChangePassword(ctx, ada.ID, "$2a$new-hash", keep.ID)
		if err != nil || revoked != 2 {
			t.Fatalf("ChangePassword = %d, %v; want 2 revoked", revoked, err)
		}
		if u, _ := db.GetUser(ctx, ada.ID); u.PasswordHash != "$2a$new-hash" {
			t.Errorf("hash %q after the change", u.PasswordHash)
		}
		left, err := db.ListSessions(ctx, ada.ID, now)
		if err != nil || len(left) != 1 || left[0].ID != keep.ID {
			t.Errorf("ada's sessions after the change: %+v, %v; want only %s", left, err, keep.ID)
		}
		if other, _ := db.ListSessions(ctx, bob.ID, now); len(other) != 1 || other[0].ID != bobs.ID {
			t.Errorf("bob's sessions were touched: %+v", other)
		}
		// No session to keep (an API token made the request): all go.
		if revoked, err := db.ChangePassword(ctx, ada.ID, "$2a$newer", ""); err != nil || revoked != 1 {
			t.Errorf("ChangePassword keeping none = %d, %v; want 1", revoked, err)
		}
		if _, err := db.ChangePassword(ctx, "usr_missing", "x", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing user: err = %v, want ErrNotFound", err)
		}
	})
}
