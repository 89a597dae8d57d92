package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestSessions(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		t0 := time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)
		hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
		mk := func(u store.User, secret string, created time.Time) store.Session {
			t.Helper()
			s, err := db.CreateSession(ctx, store.Session{UserID: u.ID, Hash: hash(secret), CreatedAt: created,
				ExpiresAt: created.Add(30 * 24 * time.Hour), IP: "192.0.2.1", UserAgent: "curl/8"})
			if err != nil {
				t.Fatalf("CreateSession: %v", err)
			}
			return s
		}
		s1 := mk(ada, "s1", t0)
		checkID(t, s1.ID, "ses_")
		if !s1.LastSeenAt.Equal(s1.CreatedAt) || s1.CreatedAt.Nanosecond()%1000 != 0 {
			t.Errorf("created %+v: last seen should default to created, at microsecond precision", s1)
		}
		s2 := mk(ada, "s2", t0.Add(time.Minute))
		bobS := mk(bob, "s3", t0)

		if _, err := db.CreateSession(ctx, store.Session{UserID: ada.ID, Hash: hash("s1"), ExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate hash: err = %v, want ErrConflict", err)
		}
		if _, err := db.CreateSession(ctx, store.Session{UserID: ada.ID, Hash: hash("s9")}); err == nil {
			t.Error("a session without an expiry was stored")
		}

		got, u, err := db.GetSessionByHash(ctx, hash("s1"))
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != ada.ID || !reflect.DeepEqual(got, s1) {
			t.Errorf("GetSessionByHash = %+v, %s; want %+v, %s", got, u.ID, s1, ada.ID)
		}
		if _, _, err := db.GetSessionByHash(ctx, hash("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown hash: err = %v, want ErrNotFound", err)
		}
		// By id: the same session and user (workspace apps' sessions check
		// the dashboard session they came from this way).
		if got, u, err := db.GetSession(ctx, s1.ID); err != nil || u.ID != ada.ID || !reflect.DeepEqual(got, s1) {
			t.Errorf("GetSession = %+v, %s, %v; want %+v, %s", got, u.ID, err, s1, ada.ID)
		}
		if _, _, err := db.GetSession(ctx, "ses_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown id: err = %v, want ErrNotFound", err)
		}

		// Touch slides the expiry and records where from.
		seen, exp := t0.Add(2*time.Hour).Truncate(time.Microsecond), t0.Add(2*time.Hour+30*24*time.Hour).Truncate(time.Microsecond)
		if err := db.TouchSession(ctx, s1.ID, seen, exp, "198.51.100.7"); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchSession(ctx, "ses_missing", seen, exp, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("touch missing: err = %v, want ErrNotFound", err)
		}
		got, _, _ = db.GetSessionByHash(ctx, hash("s1"))
		if !got.LastSeenAt.Equal(seen) || !got.ExpiresAt.Equal(exp) || got.IP != "198.51.100.7" {
			t.Errorf("after touch %+v", got)
		}

		// The list: live sessions only, most recently used first, no hashes.
		list, err := db.ListSessions(ctx, ada.ID, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != s1.ID || list[1].ID != s2.ID || list[0].Hash != nil || list[1].UserAgent != "curl/8" {
			t.Fatalf("ListSessions = %+v", list)
		}
		// Past s2's expiry but not s1's (which slid).
		if list, _ := db.ListSessions(ctx, ada.ID, s2.ExpiresAt); len(list) != 1 || list[0].ID != s1.ID {
			t.Errorf("ListSessions after s2 expired = %+v", list)
		}

		if err := db.DeleteSession(ctx, ada.ID, bobS.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleting another user's session: err = %v, want ErrNotFound", err)
		}
		if err := db.DeleteSession(ctx, ada.ID, s2.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.GetSessionByHash(ctx, hash("s2")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted session still found: %v", err)
		}
		if _, _, err := db.GetSession(ctx, s2.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted session still found by id: %v", err)
		}

		// Pruning removes exactly the expired ones.
		n, err := db.DeleteExpiredSessions(ctx, bobS.ExpiresAt)
		if err != nil || n != 1 {
			t.Fatalf("DeleteExpiredSessions = %d, %v; want bob's one", n, err)
		}
		if _, _, err := db.GetSessionByHash(ctx, hash("s3")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expired session survived pruning: %v", err)
		}
		if _, _, err := db.GetSessionByHash(ctx, hash("s1")); err != nil {
			t.Errorf("live session pruned: %v", err)
		}
	})
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		gh, err := db.CreateAccount(ctx, store.Account{UserID: ada.ID, Provider: "github", ProviderAccountID: "42", Email: "ada@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		checkID(t, gh.ID, "acc_")
		// The same provider id at another provider is someone else.
		if _, err := db.CreateAccount(ctx, store.Account{UserID: bob.ID, Provider: "google", ProviderAccountID: "42"}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateAccount(ctx, store.Account{UserID: bob.ID, Provider: "github", ProviderAccountID: "42"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("linking a linked provider account: err = %v, want ErrConflict", err)
		}
		got, u, err := db.GetAccount(ctx, "github", "42")
		if err != nil || u.ID != ada.ID || !reflect.DeepEqual(got, gh) {
			t.Fatalf("GetAccount = %+v, %s, %v; want %+v for ada", got, u.ID, err, gh)
		}
		if _, _, err := db.GetAccount(ctx, "github", "43"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown account: err = %v, want ErrNotFound", err)
		}
		at := time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC)
		if err := db.TouchAccount(ctx, gh.ID, at, "ada@new.example.com"); err != nil {
			t.Fatal(err)
		}
		if err := db.TouchAccount(ctx, "acc_missing", at, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("touch missing: err = %v, want ErrNotFound", err)
		}
		list, err := db.ListAccounts(ctx, ada.ID)
		if err != nil || len(list) != 1 || list[0].LastLoginAt == nil || !list[0].LastLoginAt.Equal(at) || list[0].Email != "ada@new.example.com" {
			t.Fatalf("ListAccounts = %+v, %v", list, err)
		}
	})
}
