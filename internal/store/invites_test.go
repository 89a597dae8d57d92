package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func inviteHash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// errNotPending is what the tests' check answers for an invite that is not
// pending: the store must hand it back as is.
type errNotPending struct{ state store.InviteState }

func (e errNotPending) Error() string { return "invite is " + string(e.state) }

func pendingAt(at time.Time) func(store.Invite) error {
	return func(i store.Invite) error {
		if s := i.State(at); s != store.InvitePending {
			return errNotPending{s}
		}
		return nil
	}
}

func TestInvites(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		admin := mustUser(t, ctx, db, "admin@example.com")
		t0 := time.Date(2026, 12, 1, 9, 0, 0, 123456789, time.UTC)
		mk := func(secret, email string, role store.Role, created time.Time) store.Invite {
			t.Helper()
			i, err := db.CreateInvite(ctx, store.Invite{Hash: inviteHash(secret), Email: email, Role: role, CreatedBy: admin.ID,
				CreatedAt: created, ExpiresAt: created.Add(7 * 24 * time.Hour)})
			if err != nil {
				t.Fatalf("CreateInvite: %v", err)
			}
			return i
		}
		bound := mk("i1", "Bob@Example.com", store.RoleMember, t0)
		checkID(t, bound.ID, "inv_")
		if bound.Email != "bob@example.com" || bound.CreatedAt.Nanosecond()%1000 != 0 || bound.State(t0) != store.InvitePending {
			t.Errorf("created %+v: want a lower-cased email, microsecond times, pending", bound)
		}
		open := mk("i2", "", store.RoleAdmin, t0.Add(time.Minute))
		old := mk("i3", "", store.RoleMember, t0.Add(-8*24*time.Hour)) // expired at t0

		for _, bad := range []store.Invite{
			{Hash: inviteHash("i1"), Role: store.RoleMember, ExpiresAt: t0}, // duplicate hash
		} {
			if _, err := db.CreateInvite(ctx, bad); !errors.Is(err, store.ErrConflict) {
				t.Errorf("duplicate hash: err = %v, want ErrConflict", err)
			}
		}
		for name, bad := range map[string]store.Invite{
			"no hash":   {Role: store.RoleMember, ExpiresAt: t0},
			"no expiry": {Hash: inviteHash("x"), Role: store.RoleMember},
			"bad role":  {Hash: inviteHash("y"), Role: "owner", ExpiresAt: t0},
		} {
			if _, err := db.CreateInvite(ctx, bad); err == nil {
				t.Errorf("%s: stored", name)
			}
		}

		got, err := db.GetInviteByHash(ctx, inviteHash("i1"))
		if err != nil || !reflect.DeepEqual(got, bound) {
			t.Errorf("GetInviteByHash = %+v, %v; want %+v", got, err, bound)
		}
		if got, err := db.GetInvite(ctx, open.ID); err != nil || !reflect.DeepEqual(got, open) {
			t.Errorf("GetInvite = %+v, %v; want %+v", got, err, open)
		}
		if _, err := db.GetInviteByHash(ctx, inviteHash("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown hash: err = %v, want ErrNotFound", err)
		}
		if old.State(t0) != store.InviteExpired {
			t.Errorf("old invite is %s at t0, want expired", old.State(t0))
		}

		// Pending ones only, newest first; or all of them.
		list, total, err := db.ListInvites(ctx, store.InviteFilter{PendingAt: t0})
		if err != nil || total != 2 || len(list) != 2 || list[0].ID != open.ID || list[1].ID != bound.ID {
			t.Fatalf("ListInvites(pending) = %+v, %d, %v", list, total, err)
		}
		list, total, err = db.ListInvites(ctx, store.InviteFilter{Limit: 1, Offset: 2})
		if err != nil || total != 3 || len(list) != 1 || list[0].ID != old.ID {
			t.Fatalf("ListInvites(all, page 3) = %+v, %d, %v", list, total, err)
		}

		// Signing up with one: the user gets its role, the invite is used
		// by them, in one step.
		bob, used, err := db.CreateInvitedUser(ctx, store.User{Email: "bob@example.com", Name: "Bob"}, inviteHash("i1"), t0.Add(time.Hour), pendingAt(t0.Add(time.Hour)))
		if err != nil {
			t.Fatalf("CreateInvitedUser: %v", err)
		}
		if bob.Role != store.RoleMember || used.UsedBy != bob.ID || used.UsedAt == nil || !used.UsedAt.Equal(t0.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("invited user %+v, invite %+v", bob, used)
		}
		if got, _ := db.GetInvite(ctx, bound.ID); !reflect.DeepEqual(got, used) || got.State(t0) != store.InviteUsed {
			t.Errorf("stored invite %+v, want %+v (used)", got, used)
		}
		// Used: the check sees it so, and nothing is created.
		_, _, err = db.CreateInvitedUser(ctx, store.User{Email: "eve@example.com"}, inviteHash("i1"), t0, pendingAt(t0))
		if e := (errNotPending{}); !errors.As(err, &e) || e.state != store.InviteUsed {
			t.Errorf("second use: err = %v, want the check's used", err)
		}
		if _, err := db.GetUserByEmail(ctx, "eve@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused invite made a user: %v", err)
		}
		if _, _, err := db.CreateInvitedUser(ctx, store.User{Email: "eve@example.com"}, inviteHash("nope"), t0, pendingAt(t0)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown invite: err = %v, want ErrNotFound", err)
		}
		// An email already registered leaves the invite unused.
		if _, _, err := db.CreateInvitedUser(ctx, store.User{Email: "ADMIN@example.com"}, inviteHash("i2"), t0, pendingAt(t0)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate email: err = %v, want ErrConflict", err)
		}
		if got, _ := db.GetInvite(ctx, open.ID); got.State(t0) != store.InvitePending {
			t.Errorf("after a conflict the invite is %s, want pending", got.State(t0))
		}
		// An admin invite makes an admin.
		carol, _, err := db.CreateInvitedUser(ctx, store.User{Email: "carol@example.com"}, inviteHash("i2"), t0, pendingAt(t0))
		if err != nil || carol.Role != store.RoleAdmin {
			t.Errorf("admin invite: %+v, %v", carol, err)
		}

		// Revoking: a pending or expired invite; not a used or revoked one.
		rev, err := db.RevokeInvite(ctx, old.ID, t0)
		if err != nil || rev.RevokedAt == nil || rev.State(t0) != store.InviteRevoked {
			t.Fatalf("RevokeInvite(expired) = %+v, %v", rev, err)
		}
		if _, err := db.RevokeInvite(ctx, old.ID, t0); !errors.Is(err, store.ErrInviteSpent) {
			t.Errorf("revoke twice: err = %v, want ErrInviteSpent", err)
		}
		if _, err := db.RevokeInvite(ctx, bound.ID, t0); !errors.Is(err, store.ErrInviteSpent) {
			t.Errorf("revoke used: err = %v, want ErrInviteSpent", err)
		}
		if _, err := db.RevokeInvite(ctx, "inv_missing", t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoke missing: err = %v, want ErrNotFound", err)
		}
		revoked := mk("i4", "", store.RoleMember, t0)
		if _, err := db.RevokeInvite(ctx, revoked.ID, t0); err != nil {
			t.Fatal(err)
		}
		_, _, err = db.CreateInvitedUser(ctx, store.User{Email: "dan@example.com"}, inviteHash("i4"), t0, pendingAt(t0))
		if e := (errNotPending{}); !errors.As(err, &e) || e.state != store.InviteRevoked {
			t.Errorf("revoked invite: err = %v, want the check's revoked", err)
		}
	})
}

// TestInviteUsedOnce races many signups on one invite: exactly one gets an
// account.
func TestInviteUsedOnce(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		admin := mustUser(t, ctx, db, "admin@example.com")
		now := time.Now()
		if _, err := db.CreateInvite(ctx, store.Invite{Hash: inviteHash("race"), Role: store.RoleMember, CreatedBy: admin.ID, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		// Warm n connections, so the signups really overlap.
		for range n {
			wg.Go(func() { db.ListEnvironments(ctx, store.EnvironmentFilter{}) })
		}
		wg.Wait()
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, _, errs[i] = db.CreateInvitedUser(ctx, store.User{Email: fmt.Sprintf("racer%d@example.com", i)}, inviteHash("race"), now, pendingAt(now))
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if e := (errNotPending{}); !errors.As(err, &e) {
				t.Errorf("a losing signup failed otherwise: %v", err)
			}
		}
		if _, total, _ := db.ListUsers(ctx, store.UserFilter{}); ok != 1 || total != 2 {
			t.Errorf("%d signups succeeded and there are %d users, want 1 and 2", ok, total)
		}
	})
}

func TestCreateFirstUser(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		if has, err := db.HasUsers(ctx); err != nil || has {
			t.Fatalf("HasUsers on an empty store = %v, %v", has, err)
		}
		const n = 6
		var wg sync.WaitGroup
		users := make([]store.User, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				users[i], errs[i] = db.CreateFirstUser(ctx, store.User{Email: fmt.Sprintf("first%d@example.com", i)})
			})
		}
		close(start)
		wg.Wait()
		firsts := 0
		for i := range n {
			switch {
			case errs[i] == nil && users[i].Role == store.RoleAdmin:
				firsts++
			case errors.Is(errs[i], store.ErrUsersExist):
			default:
				t.Errorf("first signup %d: %+v, %v", i, users[i], errs[i])
			}
		}
		if _, total, _ := db.ListUsers(ctx, store.UserFilter{}); firsts != 1 || total != 1 {
			t.Errorf("%d first users, %d users stored; want 1 and 1", firsts, total)
		}
		if has, err := db.HasUsers(ctx); err != nil || !has {
			t.Errorf("HasUsers = %v, %v; want true", has, err)
		}
	})
}
