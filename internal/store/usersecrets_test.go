package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"dev8.dev/dev8/internal/store"
)

func TestSSHKeys(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		k1, err := db.CreateSSHKey(ctx, store.SSHKey{UserID: ada.ID, Name: "laptop", PublicKey: "ssh-ed25519 AAAA1", Fingerprint: "SHA256:one"})
		if err != nil {
			t.Fatal(err)
		}
		checkID(t, k1.ID, "key_")
		k2, err := db.CreateSSHKey(ctx, store.SSHKey{UserID: ada.ID, Name: "desktop", PublicKey: "ssh-ed25519 AAAA2", Fingerprint: "SHA256:two"})
		if err != nil {
			t.Fatal(err)
		}
		// A fingerprint is unique in the installation, not only per user.
		if _, err := db.CreateSSHKey(ctx, store.SSHKey{UserID: bob.ID, PublicKey: "ssh-ed25519 AAAA1", Fingerprint: "SHA256:one"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate fingerprint: %v, want ErrConflict", err)
		}
		keys, err := db.ListSSHKeys(ctx, ada.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 || keys[0] != k1 || keys[1] != k2 {
			t.Fatalf("ListSSHKeys = %+v, want [%+v %+v]", keys, k1, k2)
		}
		if keys, _ := db.ListSSHKeys(ctx, bob.ID); len(keys) != 0 {
			t.Fatalf("bob has %d keys", len(keys))
		}
		if err := db.DeleteSSHKey(ctx, bob.ID, k1.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete another user's key: %v, want ErrNotFound", err)
		}
		if err := db.DeleteSSHKey(ctx, ada.ID, k1.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSSHKey(ctx, ada.ID, k1.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		// Freed fingerprints may be added again, by anyone.
		if _, err := db.CreateSSHKey(ctx, store.SSHKey{UserID: bob.ID, PublicKey: "ssh-ed25519 AAAA1", Fingerprint: "SHA256:one"}); err != nil {
			t.Fatalf("re-add a deleted key: %v", err)
		}
	})
}

func TestUserSecrets(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		s1, created, err := db.PutUserSecret(ctx, ada.ID, "NPM_TOKEN", []byte{1, 2, 3})
		if err != nil || !created {
			t.Fatalf("first put: created=%v, %v", created, err)
		}
		if s1.Ciphertext != nil || !s1.CreatedAt.Equal(s1.UpdatedAt) {
			t.Fatalf("put returned %+v", s1)
		}
		s2, created, err := db.PutUserSecret(ctx, ada.ID, "NPM_TOKEN", []byte{4, 5})
		if err != nil || created {
			t.Fatalf("replace: created=%v, %v", created, err)
		}
		if !s2.CreatedAt.Equal(s1.CreatedAt) || s2.UpdatedAt.Before(s1.UpdatedAt) {
			t.Fatalf("replace times %+v after %+v", s2, s1)
		}
		if _, _, err := db.PutUserSecret(ctx, ada.ID, "A_FIRST", []byte{9}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.PutUserSecret(ctx, bob.ID, "NPM_TOKEN", []byte{7}); err != nil {
			t.Fatal(err)
		}

		meta, err := db.ListUserSecrets(ctx, ada.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(meta) != 2 || meta[0].Name != "A_FIRST" || meta[1].Name != "NPM_TOKEN" || meta[0].Ciphertext != nil || meta[1].Ciphertext != nil {
			t.Fatalf("metadata list = %+v", meta)
		}
		if !meta[1].CreatedAt.Equal(s2.CreatedAt) || !meta[1].UpdatedAt.Equal(s2.UpdatedAt) {
			t.Fatalf("listed times %+v, want %+v", meta[1], s2)
		}
		full, err := db.ListUserSecrets(ctx, ada.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(full) != 2 || !bytes.Equal(full[1].Ciphertext, []byte{4, 5}) {
			t.Fatalf("list with ciphertext = %+v", full)
		}

		if err := db.DeleteUserSecret(ctx, bob.ID, "A_FIRST"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete another user's secret: %v", err)
		}
		if err := db.DeleteUserSecret(ctx, ada.ID, "NPM_TOKEN"); err != nil {
			t.Fatal(err)
		}
		if left, _ := db.ListUserSecrets(ctx, bob.ID, true); len(left) != 1 || !bytes.Equal(left[0].Ciphertext, []byte{7}) {
			t.Fatalf("bob's secret after ada's delete: %+v", left)
		}
		if _, _, err := db.PutUserSecret(ctx, ada.ID, "EMPTY", nil); err == nil {
			t.Fatal("an empty ciphertext was stored")
		}
	})
}

func TestGitSettings(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		g, err := db.GetGitSettings(ctx, ada.ID)
		if err != nil || g.UserID != ada.ID || g.Name != "" || g.GitHubToken != nil || !g.UpdatedAt.IsZero() {
			t.Fatalf("never set: %+v, %v", g, err)
		}
		g1, err := db.UpdateGitSettings(ctx, ada.ID, func(g *store.GitSettings) error {
			g.Name, g.Email = "Ada Lovelace", "ada@example.com"
			return nil
		})
		if err != nil || g1.Name != "Ada Lovelace" || g1.GitHubTokenSetAt != nil {
			t.Fatalf("set identity: %+v, %v", g1, err)
		}
		g2, err := db.UpdateGitSettings(ctx, ada.ID, func(g *store.GitSettings) error {
			g.GitHubToken = []byte{1, 2, 3}
			return nil
		})
		if err != nil || g2.Name != "Ada Lovelace" || g2.GitHubTokenSetAt == nil || !bytes.Equal(g2.GitHubToken, []byte{1, 2, 3}) {
			t.Fatalf("set token: %+v, %v", g2, err)
		}
		got, err := db.GetGitSettings(ctx, ada.ID)
		if err != nil || got.Email != "ada@example.com" || !bytes.Equal(got.GitHubToken, g2.GitHubToken) ||
			!got.GitHubTokenSetAt.Equal(*g2.GitHubTokenSetAt) || !got.UpdatedAt.Equal(g2.UpdatedAt) {
			t.Fatalf("read back %+v, %v; want %+v", got, err, g2)
		}
		// Changing the identity keeps the token and its time.
		g3, err := db.UpdateGitSettings(ctx, ada.ID, func(g *store.GitSettings) error { g.Email = "a@l.dev"; return nil })
		if err != nil || !g3.GitHubTokenSetAt.Equal(*g2.GitHubTokenSetAt) || !bytes.Equal(g3.GitHubToken, g2.GitHubToken) {
			t.Fatalf("identity change touched the token: %+v", g3)
		}
		// An error from fn stores nothing.
		boom := errors.New("boom")
		if _, err := db.UpdateGitSettings(ctx, ada.ID, func(g *store.GitSettings) error { g.Name = "x"; return boom }); !errors.Is(err, boom) {
			t.Fatalf("fn error: %v", err)
		}
		g4, err := db.UpdateGitSettings(ctx, ada.ID, func(g *store.GitSettings) error { g.GitHubToken = nil; return nil })
		if err != nil || g4.GitHubToken != nil || g4.GitHubTokenSetAt != nil || g4.Name != "Ada Lovelace" {
			t.Fatalf("clear token: %+v, %v", g4, err)
		}
		if got, _ := db.GetGitSettings(ctx, ada.ID); got.GitHubToken != nil || got.GitHubTokenSetAt != nil {
			t.Fatalf("cleared token read back as %+v", got)
		}
	})
}
