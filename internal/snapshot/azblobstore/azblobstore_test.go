package azblobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/snapshot/storetest"
	"dev8.dev/dev8/internal/testutil/wait"
)

func TestContractAzurite(t *testing.T) {
	t.Parallel()
	t.Run("container root", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, newStore(t, ""), nil)
	})
	t.Run("prefix", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, "backups/dev8")
		// Objects outside the prefix, shaped like a repository's, are
		// not the store's: the contract (which wants an empty store)
		// would fail if List or ListRecords saw them.
		other := &Store{c: st.c, prefix: "backups/dev8-old/"} // shares "backups/dev8" as a string prefix
		if err := other.Put(wait.Context(t, wait.VeryLong), snapshot.Hash([]byte("x")), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := other.PutRecord(wait.Context(t, wait.VeryLong), snapshot.KindSnapshot, "s0", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		storetest.Run(t, st, nil)
	})
}

// TestManyBlobs covers what the contract's two blobs do not: List and
// ListRecords paging through several pages, and Missing keeping the given
// order across its concurrent refreshes (storetest.MissingInOrder).
func TestManyBlobs(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	st := newStore(t, "many")
	st.pageSize = 3
	stored := storetest.MissingInOrder(t, st, 60)
	seen := map[snapshot.ID]int64{}
	err := st.List(ctx, func(bi snapshot.BlobInfo) error {
		if _, dup := seen[bi.ID]; dup {
			t.Errorf("List gave %s twice", bi.ID.Short())
		}
		seen[bi.ID] = bi.Size
		return nil
	})
	if err != nil || !maps.Equal(seen, stored) {
		t.Fatalf("List saw %d blobs, %v; want %d", len(seen), err, len(stored))
	}
	stop := errors.New("stop")
	n := 0
	if err := st.List(ctx, func(snapshot.BlobInfo) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("List with fn failing = %v after %d calls", err, n)
	}

	var names []string
	for i := range 8 {
		names = append(names, fmt.Sprintf("s%02d", i))
	}
	for _, n := range slices.Backward(names) {
		if err := st.PutRecord(ctx, snapshot.KindSnapshot, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := st.ListRecords(ctx, snapshot.KindSnapshot); err != nil || !slices.Equal(got, names) {
		t.Fatalf("ListRecords = %v, %v; want %v", got, err, names)
	}
	if got, err := st.ListRecords(ctx, snapshot.KindLock); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListRecords(locks) = %#v, %v; want an empty list", got, err)
	}
}

// TestRefreshMovesETag checks what Delete's safety rests on, on the
// emulator: setting a blob's metadata changes its ETag and moves its
// Last-Modified time, and a delete conditional on the old ETag is refused.
func TestRefreshMovesETag(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	st := newStore(t, "")
	data := []byte("refreshed blob")
	id := snapshot.Hash(data)
	if err := st.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	bc := st.c.NewBlobClient(st.blobName(id))
	before, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Last-Modified has one-second resolution: let the clock pass it.
	storetest.WaitForClock(t, before.LastModified.Add(time.Second+10*time.Millisecond))
	if missing, err := st.Missing(ctx, []snapshot.ID{id}); err != nil || len(missing) != 0 {
		t.Fatalf("Missing = %v, %v", missing, err)
	}
	after, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *after.ETag == *before.ETag {
		t.Errorf("ETag %s did not change on refresh", *after.ETag)
	}
	if !after.LastModified.After(*before.LastModified) {
		t.Errorf("Last-Modified %v did not move past %v", after.LastModified, before.LastModified)
	}
	if after.Metadata["touched"] == nil && after.Metadata["Touched"] == nil {
		t.Errorf("metadata = %v, want touched", after.Metadata)
	}
	_, err = bc.Delete(ctx, &blob.DeleteOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: before.ETag},
	}})
	if !bloberror.HasCode(err, bloberror.ConditionNotMet) {
		t.Fatalf("delete conditional on the old ETag: %v, want ConditionNotMet", err)
	}
	if ok, err := st.Has(ctx, id); !ok || err != nil {
		t.Fatalf("Has = %v, %v after a refused delete", ok, err)
	}
}

// TestDeleteRace refreshes (or rewrites) a blob between Delete's read of its
// properties and its conditional delete: the blob must survive.
func TestDeleteRace(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	st := newStore(t, "race")
	data := []byte("contended blob")
	id := snapshot.Hash(data)
	if err := st.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(time.Hour) // the time check alone would delete it
	for _, tc := range []struct {
		name string
		hook func(t *testing.T)
	}{
		{"Missing", func(t *testing.T) {
			if missing, err := st.Missing(ctx, []snapshot.ID{id}); err != nil || len(missing) != 0 {
				t.Errorf("Missing in the window = %v, %v", missing, err)
			}
		}},
		{"Put", func(t *testing.T) {
			if err := st.Put(ctx, id, data); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			st.beforeDelete = func(got snapshot.ID) {
				calls++
				if got != id {
					t.Errorf("hook got %s", got.Short())
				}
				tc.hook(t)
			}
			deleted, err := st.Delete(ctx, id, cutoff)
			st.beforeDelete = nil
			if deleted || err != nil {
				t.Fatalf("Delete with a %s in between = %v, %v; want false, nil", tc.name, deleted, err)
			}
			if calls != 1 {
				t.Fatalf("hook ran %d times", calls)
			}
			got, err := st.Get(ctx, id)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("blob after the race: %q, %v", got, err)
			}
		})
	}
	// Without interference the same call deletes it, and a Missing that
	// comes after reports it missing (so a writer uploads it again).
	storetest.DeleteThenMissing(t, st, id)
}

// TestDeleteSecondResolution: a blob modified within the second before the
// cutoff may have been touched after it (Last-Modified is truncated), so it
// is kept.
func TestDeleteSecondResolution(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	st := newStore(t, "")
	data := []byte("young blob")
	id := snapshot.Hash(data)
	if err := st.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	props, err := st.c.NewBlobClient(st.blobName(id)).GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	lm := *props.LastModified
	if deleted, err := st.Delete(ctx, id, lm.Add(500*time.Millisecond)); deleted || err != nil {
		t.Fatalf("Delete with the cutoff inside the Last-Modified second = %v, %v", deleted, err)
	}
	if deleted, err := st.Delete(ctx, id, lm.Add(time.Second)); !deleted || err != nil {
		t.Fatalf("Delete with the cutoff after the Last-Modified second = %v, %v", deleted, err)
	}
}

// TestConcurrentSnapshotAndPrune: see storetest.ConcurrentSnapshotAndPrune.
func TestConcurrentSnapshotAndPrune(t *testing.T) {
	t.Parallel()
	storetest.ConcurrentSnapshotAndPrune(t, newStore(t, "prune"), storetest.PruneRace{Files: 60, Variants: 10, Rounds: 6})
}

// TestRepositoryRoundTrip drives the snapshot engine on Azurite (see
// storetest.RoundTrip).
func TestRepositoryRoundTrip(t *testing.T) {
	t.Parallel()
	storetest.RoundTrip(t, newStore(t, "repo"))
}

// TestOpen covers the configuration against the emulator: each kind of
// credential, and the errors for a missing container and a wrong key.
func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	srv := azurite(t)
	endpoint, name := srv.Endpoint, srv.NewContainer(t)
	base := "azblob://" + name + "/p?account=" + devAccount + "&endpoint=" + url.QueryEscape(endpoint)
	cc := srv.ContainerClient(t, name)
	perms := sas.ContainerPermissions{Read: true, Write: true, Delete: true, List: true}
	sasURL, err := cc.GetSASURL(perms, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	token := sasURL[strings.Index(sasURL, "?")+1:]

	for _, c := range []struct {
		name string
		url  string
		env  map[string]string
	}{
		{"shared key", base, map[string]string{EnvKey: devKey}},
		{"SAS", base, map[string]string{EnvSASToken: "?" + token}},
		{"connection string", "azblob://" + name + "/p", map[string]string{EnvConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + devAccount + ";AccountKey=" + devKey + ";BlobEndpoint=" + endpoint + ";"}},
		{"connection string with a SAS", "azblob://" + name + "/p", map[string]string{EnvConnectionString: "BlobEndpoint=" + endpoint + ";SharedAccessSignature=" + token}},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			st, err := open(ctx, u, envMap(c.env))
			if err != nil {
				t.Fatal(err)
			}
			if want := "azblob://" + name + "/p at " + endpoint; st.String() != want {
				t.Errorf("String() = %q, want %q", st.String(), want)
			}
			if strings.Contains(st.String(), "sig=") {
				t.Errorf("String() = %q", st.String())
			}
			data := []byte("via " + c.name)
			id := snapshot.Hash(data)
			if err := st.Put(ctx, id, data); err != nil {
				t.Fatal(err)
			}
			if got, err := st.Get(ctx, id); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get = %q, %v", got, err)
			}
			n := 0
			if err := st.List(ctx, func(bi snapshot.BlobInfo) error { n++; return nil }); err != nil || n == 0 {
				t.Fatalf("List: %d blobs, %v", n, err)
			}
			if deleted, err := st.Delete(ctx, id, time.Time{}); !deleted || err != nil {
				t.Fatalf("Delete = %v, %v", deleted, err)
			}
		})
	}

	t.Run("missing container", func(t *testing.T) {
		u, _ := url.Parse("azblob://no-such-container?account=" + devAccount + "&endpoint=" + url.QueryEscape(endpoint))
		_, err := open(ctx, u, envMap(map[string]string{EnvKey: devKey}))
		if err == nil || !strings.Contains(err.Error(), `container "no-such-container" does not exist`) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
	t.Run("wrong key", func(t *testing.T) {
		wrong := strings.Repeat("A", 86) + "=="
		u, _ := url.Parse(base)
		_, err := open(ctx, u, envMap(map[string]string{EnvKey: wrong}))
		if err == nil || !strings.Contains(err.Error(), "AuthorizationFailure") && !strings.Contains(err.Error(), "AuthenticationFailed") {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("err = %q: multi-line or holds the key", err)
		}
		t.Log(err)
	})
	t.Run("bad SAS is not echoed", func(t *testing.T) {
		u, _ := url.Parse(base)
		bad := "sv=2020-01-01&sig=c2VjcmV0c2VjcmV0"
		_, err := open(ctx, u, envMap(map[string]string{EnvSASToken: bad}))
		if err == nil || strings.Contains(err.Error(), "c2VjcmV0c2VjcmV0") {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + l.Addr().String() + "/" + devAccount
		l.Close() // nothing listens there now
		u, _ := url.Parse("azblob://" + name + "?account=" + devAccount + "&endpoint=" + url.QueryEscape(dead))
		_, err = open(ctx, u, envMap(map[string]string{EnvSASToken: "sv=2020-01-01&sig=c2VjcmV0c2VjcmV0"}))
		if err == nil || !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "c2VjcmV0c2VjcmV0") {
			t.Fatalf("err = %v", err)
		}
		t.Log(err)
	})
}

// TestOpenEnvironment runs the exported Open, which reads the process's
// environment (so this test is not parallel).
func TestOpenEnvironment(t *testing.T) {
	srv := azurite(t)
	endpoint, name := srv.Endpoint, srv.NewContainer(t)
	t.Setenv(EnvConnectionString, "")
	t.Setenv(EnvSASToken, "")
	t.Setenv(EnvKey, devKey)
	u, err := url.Parse("azblob://" + name + "?account=" + devAccount + "&endpoint=" + url.QueryEscape(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(wait.Context(t, wait.VeryLong), u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ListRecords(wait.Context(t, wait.VeryLong), snapshot.KindSnapshot); err != nil {
		t.Fatal(err)
	}
}

// TestContractAzure runs the contract against a real Azure Storage account
// when DEV8_TEST_AZBLOB_URL (an azblob:// URL) and its credentials are set,
// under a fresh prefix that it removes afterwards.
func TestContractAzure(t *testing.T) {
	raw := os.Getenv("DEV8_TEST_AZBLOB_URL")
	if raw == "" {
		t.Skip("set DEV8_TEST_AZBLOB_URL=azblob://<container>/<prefix>?account=<name> and AZURE_STORAGE_KEY (or AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING) to test against Azure")
	}
	t.Parallel()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	u.Path = strings.TrimSuffix(u.Path, "/") + "/dev8-test-" + hex.EncodeToString(b[:])
	st, err := Open(wait.Context(t, wait.VeryLong), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(t, st) })
	storetest.Run(t, st, nil)
}

// removeAll deletes every object under the store's prefix. It runs as a
// cleanup, after the test's own context has ended.
func removeAll(t *testing.T, st *Store) {
	ctx, cancel := context.WithTimeout(context.Background(), wait.Long)
	defer cancel()
	pager := st.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &st.prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Errorf("clean up %s: %v", st, err)
			return
		}
		for _, item := range page.Segment.BlobItems {
			if _, err := st.c.NewBlobClient(*item.Name).Delete(ctx, nil); err != nil {
				t.Errorf("clean up %s: %v", *item.Name, err)
			}
		}
	}
}
