package s3store

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/snapshot/s3store/miniotest"
	"dev8.dev/dev8/internal/snapshot/storetest"
	"dev8.dev/dev8/internal/testutil/wait"
)

func TestContractMinIO(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "team/repo"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, newStore(t, prefix), nil)
		})
	}
}

// TestContractS3 runs the contract and the Delete races against any S3
// server, AWS S3 included: DEV8_TEST_S3_URL (s3://bucket/prefix?...) names
// an existing bucket and the AWS_* variables hold credentials. Each store
// writes under a fresh prefix below the URL's and removes what it wrote.
func TestContractS3(t *testing.T) {
	raw := os.Getenv("DEV8_TEST_S3_URL")
	if raw == "" {
		t.Skip("DEV8_TEST_S3_URL is not set (s3://bucket/prefix?region=..., with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	t.Parallel()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	newS3Store := func(t *testing.T) *Store {
		cfg := cfg
		cfg.Prefix = strings.Trim(cfg.Prefix+"/dev8-test-"+randomHex(6), "/")
		st, err := New(wait.Context(t, wait.VeryLong), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for obj := range st.client.ListObjectsIter(ctx, st.bucket, minio.ListObjectsOptions{Prefix: st.prefix, Recursive: true}) {
				if obj.Err != nil {
					t.Errorf("clean up: %v", obj.Err)
					return
				}
				if err := st.client.RemoveObject(ctx, st.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
					t.Errorf("clean up %s: %v", obj.Key, err)
				}
			}
		})
		return st
	}
	t.Run("contract", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, newS3Store(t), nil)
	})
	t.Run("races", func(t *testing.T) {
		t.Parallel()
		deleteRaces(t, newS3Store)
	})
}

// TestRepositoryRoundTrip drives the snapshot engine on MinIO (see
// storetest.RoundTrip); the prune leaves no delete intents behind.
func TestRepositoryRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t, "repo")
	storetest.RoundTrip(t, st)
	if n, err := st.RemoveTemp(wait.Context(t, wait.VeryLong), time.Now().Add(time.Hour)); n != 0 || err != nil {
		t.Errorf("delete intents left after prune: %d %v", n, err)
	}
}

// TestConcurrentSnapshotAndPrune: see storetest.ConcurrentSnapshotAndPrune.
func TestConcurrentSnapshotAndPrune(t *testing.T) {
	t.Parallel()
	storetest.ConcurrentSnapshotAndPrune(t, newStore(t, ""), storetest.PruneRace{Files: 60, Variants: 10, Rounds: 6})
}

// TestDeleteRaces provokes, with the store's hooks, each interleaving of
// Delete with Missing and Put that could lose a blob a writer relies on.
func TestDeleteRaces(t *testing.T) {
	t.Parallel()
	deleteRaces(t, func(t *testing.T) *Store { return newStore(t, "") })
}

func deleteRaces(t *testing.T, newStore func(t *testing.T) *Store) {
	data := []byte("a blob a snapshot in progress reuses")
	id := snapshot.Hash(data)
	// Delete's cutoff is in the future, so its check always passes: only
	// the intent protocol can keep the blob.
	notAfter := func() time.Time { return time.Now().Add(time.Hour) }

	// Missing runs entirely between Delete's check and its removal: it
	// must report the blob missing (so the writer uploads it again).
	t.Run("missing inside delete", func(t *testing.T) {
		t.Parallel()
		ctx := wait.Context(t, wait.VeryLong)
		st := newStore(t)
		put(t, st, id, data)
		var during []snapshot.ID
		st.hookDeleteChecked = func(snapshot.ID) {
			var err error
			if during, err = st.Missing(ctx, []snapshot.ID{id}); err != nil {
				t.Error(err)
			}
		}
		if deleted, err := st.Delete(ctx, id, notAfter()); !deleted || err != nil {
			t.Fatalf("Delete = %v, %v", deleted, err)
		}
		if !slices.Equal(during, []snapshot.ID{id}) {
			t.Fatalf("Missing during Delete = %v, want the blob reported missing", during)
		}
		put(t, st, id, data) // what the writer does
		mustHave(t, st, id, data)
	})

	// Missing refreshes the blob between Delete's check and its removal,
	// and looks for intents only after Delete has finished.
	t.Run("missing across delete", func(t *testing.T) {
		t.Parallel()
		ctx := wait.Context(t, wait.VeryLong)
		st := newStore(t)
		put(t, st, id, data)
		refreshed, deleteDone := make(chan struct{}), make(chan struct{})
		st.hookRefreshed = func(snapshot.ID) {
			close(refreshed)
			<-deleteDone
		}
		result := make(chan []snapshot.ID, 1)
		st.hookDeleteChecked = func(snapshot.ID) {
			go func() {
				m, err := st.Missing(ctx, []snapshot.ID{id})
				if err != nil {
					t.Error(err)
				}
				result <- m
			}()
			<-refreshed
		}
		deleted, err := st.Delete(ctx, id, notAfter())
		close(deleteDone)
		if !deleted || err != nil {
			t.Fatalf("Delete = %v, %v", deleted, err)
		}
		if m := <-result; !slices.Equal(m, []snapshot.ID{id}) {
			t.Fatalf("Missing = %v, want the blob reported missing: Delete removed it after the refresh", m)
		}
	})

	// A writer told the blob is missing uploads it while Delete is between
	// its check and its removal: Put must not return before the blob is
	// safely stored.
	t.Run("put inside delete", func(t *testing.T) {
		t.Parallel()
		ctx := wait.Context(t, wait.VeryLong)
		st := newStore(t)
		put(t, st, id, data)
		waiting := make(chan struct{})
		st.hookPutWaiting = func(snapshot.ID) { close(waiting) }
		putErr := make(chan error, 1)
		st.hookDeleteChecked = func(snapshot.ID) {
			go func() { putErr <- st.Put(ctx, id, data) }()
			select {
			case <-waiting: // Put has uploaded and seen the intent
			case err := <-putErr: // Put returned without waiting
				putErr <- err
			}
		}
		if deleted, err := st.Delete(ctx, id, notAfter()); !deleted || err != nil {
			t.Fatalf("Delete = %v, %v", deleted, err)
		}
		if err := <-putErr; err != nil {
			t.Fatal(err)
		}
		mustHave(t, st, id, data)
	})

	// Without any race, a Delete leaves no intent behind and a later
	// Missing reports the blob absent.
	t.Run("plain delete", func(t *testing.T) {
		t.Parallel()
		ctx := wait.Context(t, wait.VeryLong)
		st := newStore(t)
		put(t, st, id, data)
		storetest.DeleteThenMissing(t, st, id)
		if intents, err := st.intents(ctx, ""); err != nil || len(intents) != 0 {
			t.Fatalf("intents left: %v %v", intents, err)
		}
	})
}

// TestMissingMany: Missing asks in parallel but answers in the order given.
func TestMissingMany(t *testing.T) {
	t.Parallel()
	storetest.MissingInOrder(t, newStore(t, ""), 50)
}

// TestRemoveTemp: intents left by a crashed Delete are removed by Prune's
// RemoveTemp once old enough, and until then make Missing report the blob
// missing (the safe side).
func TestRemoveTemp(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, wait.VeryLong)
	st := newStore(t, "p")
	data := []byte("blob")
	id := snapshot.Hash(data)
	put(t, st, id, data)
	if err := st.put(ctx, st.intentPrefix()+id.String()+".crashed", nil); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Missing(ctx, []snapshot.ID{id}); err != nil || !slices.Equal(m, []snapshot.ID{id}) {
		t.Fatalf("Missing with a fresh intent = %v, %v; want the blob reported missing", m, err)
	}
	if n, err := st.RemoveTemp(ctx, time.Now().Add(-time.Hour)); n != 0 || err != nil {
		t.Fatalf("RemoveTemp of nothing old enough = %d, %v", n, err)
	}
	if n, err := st.RemoveTemp(ctx, time.Now().Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("RemoveTemp = %d, %v; want 1", n, err)
	}
	if m, err := st.Missing(ctx, []snapshot.ID{id}); err != nil || len(m) != 0 {
		t.Fatalf("Missing after RemoveTemp = %v, %v; want none missing", m, err)
	}
}

func TestLive(t *testing.T) {
	t.Parallel()
	ref := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		intents []time.Time
		want    bool
	}{
		{nil, false},
		{[]time.Time{ref.Add(-intentTTL - time.Second)}, false},
		{[]time.Time{ref.Add(-intentTTL + time.Second)}, true},
		{[]time.Time{ref.Add(time.Minute)}, true},
		{[]time.Time{ref.Add(-time.Hour), ref}, true},
	} {
		if got := live(c.intents, ref); got != c.want {
			t.Errorf("live(%v) = %v, want %v", c.intents, got, c.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url  string
		want Config
		err  string
	}{
		{url: "s3://bucket", want: Config{Bucket: "bucket"}},
		{url: "s3://my-bucket/team/repo/?region=eu-west-1", want: Config{Bucket: "my-bucket", Prefix: "team/repo", Region: "eu-west-1"}},
		{url: "s3://b-1/p?endpoint=127.0.0.1:9000&region=us-east-1&insecure=true", want: Config{Bucket: "b-1", Prefix: "p", Endpoint: "127.0.0.1:9000", Region: "us-east-1", Insecure: true}},
		{url: "s3://b-1?endpoint=http://minio.local:9000", want: Config{Bucket: "b-1", Endpoint: "minio.local:9000", Insecure: true}},
		{url: "s3://b-1?endpoint=https://s3.example.com", want: Config{Bucket: "b-1", Endpoint: "s3.example.com"}},
		{url: "s3://key:secret@bucket", err: "credentials do not belong in the URL"},
		{url: "s3:///prefix", err: "no bucket"},
		{url: "s3://ab", err: "bucket"},
		{url: "azblob://x", err: "scheme"},
		{url: "s3://b-1?access_key=x", err: `unknown URL parameter "access_key"`},
		{url: "s3://b-1?insecure=maybe", err: "insecure"},
		{url: "s3://b-1?endpoint=ftp://x", err: "endpoint"},
		{url: "s3://b-1?endpoint=host/path", err: "endpoint"},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseURL(u)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseURL(%s) = %+v, %v; want an error about %q", c.url, got, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURL(%s): the error shows the secret: %v", c.url, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseURL(%s) = %+v, %v; want %+v", c.url, got, err, c.want)
		}
	}
}

// TestOpen opens stores from URLs with credentials from the environment,
// as the server does. It sets environment variables, so it is not parallel.
func TestOpen(t *testing.T) {
	srv := startMinio(t)
	bucket := srv.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.User)
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.Password)
	t.Setenv("AWS_SESSION_TOKEN", "")
	ctx := wait.Context(t, wait.VeryLong)
	open := func(raw string) (*Store, error) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return Open(ctx, u)
	}

	st, err := open("s3://" + bucket + "/repo?insecure=true&endpoint=" + srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.String(); !strings.Contains(s, bucket) || !strings.Contains(s, srv.Endpoint) || strings.Contains(s, miniotest.Password) {
		t.Errorf("String() = %q, want bucket and endpoint and no secret", s)
	}
	if _, err := snapshot.Open(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetRecord(ctx, snapshot.KindConfig, "config"); err != nil {
		t.Fatalf("the repository config is not where expected: %v", err)
	}

	if _, err := open("s3://no-such-bucket?endpoint=http://" + srv.Endpoint); err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("Open of a missing bucket: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-password")
	if _, err := open("s3://" + bucket + "?endpoint=http://" + srv.Endpoint); err == nil || !strings.Contains(err.Error(), "refused the credentials") || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("Open with a wrong secret: %v", err)
	}
}

func put(t *testing.T, st *Store, id snapshot.ID, data []byte) {
	t.Helper()
	if err := st.Put(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
}

func mustHave(t *testing.T, st *Store, id snapshot.ID, data []byte) {
	t.Helper()
	got, err := st.Get(context.Background(), id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob %s after the race: %q, %v; want it stored", id.Short(), got, err)
	}
}
