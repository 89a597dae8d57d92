// Package storetest checks that a snapshot.Store behaves as the interface
// says. Every store (the directory store, S3, Azure Blob) runs it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/snapshot"
)

// Run checks the behaviour every store must have (see the
// snapshot.Store interface). age moves a stored blob's last touch back to when, so
// that the refresh done by Missing can be observed; a store whose times
// cannot be set passes nil and the contract waits for its clock to move on
// instead (object stores keep times to the second).
//
// st must be empty.
func Run(t *testing.T, st snapshot.Store, age func(t *testing.T, id snapshot.ID, when time.Time)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := []byte("blob a"), []byte("blob b")
	ida, idb := snapshot.Hash(a), snapshot.Hash(b)
	if ok, err := st.Has(ctx, ida); ok || err != nil {
		t.Fatalf("Has before Put: %v %v", ok, err)
	}
	if _, err := st.Get(ctx, ida); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("Get before Put: %v, want ErrNotFound", err)
	}
	for range 2 { // idempotent
		if err := st.Put(ctx, ida, a); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := st.Has(ctx, ida); !ok || err != nil {
		t.Fatalf("Has after Put: %v %v", ok, err)
	}
	got, err := st.Get(ctx, ida)
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("Get: %q %v", got, err)
	}

	// Missing reports absent blobs, in the order given, and refreshes
	// present ones.
	var old time.Time
	if age != nil {
		old = time.Now().Add(-3 * time.Hour)
		age(t, ida, old)
	} else {
		old = time.Now().Add(-time.Second)
		WaitForClock(t, time.Now().Add(2*time.Second))
	}
	before := time.Now().Add(-time.Second)
	missing, err := st.Missing(ctx, []snapshot.ID{idb, ida})
	if err != nil || !slices.Equal(missing, []snapshot.ID{idb}) {
		t.Fatalf("Missing = %v, %v; want [b]", missing, err)
	}
	var infos []snapshot.BlobInfo
	if err := st.List(ctx, func(bi snapshot.BlobInfo) error { infos = append(infos, bi); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].ID != ida || infos[0].Size != int64(len(a)) || infos[0].Touched.Before(before) {
		t.Fatalf("List = %+v, want blob a (%d bytes) touched after %v", infos, len(a), before)
	}

	// Delete is conditional on the last touch.
	if deleted, err := st.Delete(ctx, ida, old); deleted || err != nil {
		t.Fatalf("Delete of a refreshed blob: %v %v", deleted, err)
	}
	if ok, _ := st.Has(ctx, ida); !ok {
		t.Fatal("a refreshed blob was deleted")
	}
	if deleted, err := st.Delete(ctx, ida, time.Now().Add(2*time.Second)); !deleted || err != nil {
		t.Fatalf("Delete: %v %v", deleted, err)
	}
	if ok, _ := st.Has(ctx, ida); ok {
		t.Fatal("deleted blob still there")
	}
	if _, err := st.Get(ctx, ida); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if deleted, err := st.Delete(ctx, ida, time.Time{}); deleted || err != nil {
		t.Fatalf("Delete of an absent blob: %v %v", deleted, err)
	}
	if err := st.Put(ctx, idb, b); err != nil {
		t.Fatal(err)
	}
	if deleted, err := st.Delete(ctx, idb, time.Time{}); !deleted || err != nil {
		t.Fatalf("unconditional Delete: %v %v", deleted, err)
	}

	// Records.
	for _, r := range []struct{ name, data string }{{"s2", "two"}, {"s1", "one"}, {"s1", "one!"}} {
		if err := st.PutRecord(ctx, snapshot.KindSnapshot, r.name, []byte(r.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutRecord(ctx, snapshot.KindLock, "l1", []byte("lock")); err != nil {
		t.Fatal(err)
	}
	names, err := st.ListRecords(ctx, snapshot.KindSnapshot)
	if err != nil || !slices.Equal(names, []string{"s1", "s2"}) {
		t.Fatalf("ListRecords = %v %v", names, err)
	}
	if r, err := st.GetRecord(ctx, snapshot.KindSnapshot, "s1"); err != nil || string(r) != "one!" {
		t.Fatalf("GetRecord = %q %v", r, err)
	}
	if err := st.DeleteRecord(ctx, snapshot.KindSnapshot, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteRecord(ctx, snapshot.KindSnapshot, "s1"); err != nil {
		t.Fatalf("deleting an absent record: %v", err)
	}
	if _, err := st.GetRecord(ctx, snapshot.KindSnapshot, "s1"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("GetRecord after delete: %v, want ErrNotFound", err)
	}
	if names, err := st.ListRecords(ctx, snapshot.KindLock); err != nil || !slices.Equal(names, []string{"l1"}) {
		t.Fatalf("ListRecords(locks) = %v %v", names, err)
	}
	for _, bad := range []struct{ kind, name string }{
		{snapshot.KindSnapshot, "../config"}, {snapshot.KindSnapshot, ""}, {snapshot.KindSnapshot, ".hidden"}, {"data", "x"}, {snapshot.KindLock, "a/b"},
	} {
		if err := st.PutRecord(ctx, bad.kind, bad.name, nil); err == nil || !strings.Contains(err.Error(), "invalid") && !strings.Contains(err.Error(), "unknown") {
			t.Errorf("PutRecord(%q, %q) = %v, want a refusal", bad.kind, bad.name, err)
		}
	}

	// A repository works on it end to end.
	repo, err := snapshot.Open(ctx, st)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	again, err := snapshot.Open(ctx, st)
	if err != nil || again.Config().Polynomial != repo.Config().Polynomial {
		t.Fatalf("reopen: %v", err)
	}
}
