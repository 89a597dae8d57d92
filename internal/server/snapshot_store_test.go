package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/minio/minio-go/v7"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/snapshot/azblobstore/azuritetest"
	"dev8.dev/dev8/internal/snapshot/s3store/miniotest"
	"dev8.dev/dev8/sdk"
)

// cloudStore is one remote snapshot store that runCloudStore puts a
// workspace's snapshots on.
type cloudStore struct {
	spec    string // --snapshot-store
	logged  string // what the startup log line must name
	secret  string // what the log must not hold
	kind    string // "s3" or "azblob": the environment's name and the scheme
	where   string // "bucket" or "container", for messages
	pattern string // 16 bytes the 1 MiB file repeats
	// blobs counts the objects under the prefix's data/.
	blobs func(t *testing.T) int
}

// TestSnapshotsOnS3: with --snapshot-store s3://…, a workspace's snapshot
// goes to the bucket (nothing to <data-dir>/backups) and restores from it;
// the startup log names the store without the credentials. It sets the
// AWS_* variables, so it is not parallel.
func TestSnapshotsOnS3(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.User)
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.Password)
	t.Setenv("AWS_SESSION_TOKEN", "")
	runCloudStore(t, cloudStore{
		spec:    "s3://" + bucket + "/dev8?endpoint=http://" + srv.Endpoint,
		logged:  "s3://" + bucket + "/dev8 at " + srv.Endpoint,
		secret:  miniotest.Password,
		kind:    "s3",
		where:   "bucket",
		pattern: "0123456789abcdef",
		blobs: func(t *testing.T) int {
			c, err := minio.New(srv.Endpoint, &minio.Options{Creds: srv.Creds()})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for obj := range c.ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "dev8/data/", Recursive: true}) {
				if obj.Err != nil {
					t.Fatal(obj.Err)
				}
				n++
			}
			return n
		},
	})
}

// TestSnapshotsOnAzureBlob: with --snapshot-store azblob://…, a workspace's
// snapshot goes to the container (nothing to <data-dir>/backups) and
// restores from it; the startup log names the store without the key. It
// sets the AZURE_STORAGE_* variables, so it is not parallel.
func TestSnapshotsOnAzureBlob(t *testing.T) {
	srv := azuritetest.Start(t)
	name := srv.NewContainer(t)
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
	t.Setenv("AZURE_STORAGE_KEY", azuritetest.Key)
	runCloudStore(t, cloudStore{
		spec:    "azblob://" + name + "/dev8?account=" + azuritetest.Account + "&endpoint=" + url.QueryEscape(srv.Endpoint),
		logged:  "azblob://" + name + "/dev8 at " + srv.Endpoint,
		secret:  azuritetest.Key,
		kind:    "azblob",
		where:   "container",
		pattern: "fedcba9876543210",
		blobs: func(t *testing.T) int {
			n := 0
			pager := srv.ContainerClient(t, name).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr("dev8/data/")})
			for pager.More() {
				page, err := pager.NextPage(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				n += len(page.Segment.BlobItems)
			}
			return n
		},
	})
}

// runCloudStore starts a server on the store, checks its startup log line,
// snapshots a workspace twice (the second storing nothing), restores the
// first, and checks that the blobs are in the store and not on disk.
func runCloudStore(t *testing.T, st cloudStore) {
	t.Helper()
	logs := &syncBuffer{}
	ts := startServer(t, "", func(c *server.Config) {
		c.SnapshotStore = st.spec
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "snapshot repository") {
			line = l
		}
	}
	if !strings.Contains(line, st.logged) || strings.Contains(logs.String(), st.secret) {
		t.Errorf("startup log line %q: want the %s and endpoint, and no secret anywhere in the log", line, st.where)
	}

	token, _ := ts.user("ada@example.com")
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: st.kind})
	ts.waitStatus(token, env.ID, sdk.StatusRunning)
	dir := ts.workspaceDir(env.ID)
	big := bytes.Repeat([]byte(st.pattern), 1<<16) // 1 MiB
	writeFiles(t, dir, map[string]string{"README.md": "hello\n", "src/data.bin": string(big)})
	before := readFiles(t, dir)
	first := ts.takeSnapshot(t, token, env.ID)
	if first.ChangedBytes == 0 || first.FileCount < 2 {
		t.Fatalf("snapshot %+v", first)
	}
	if second := ts.takeSnapshot(t, token, env.ID); second.ChangedBytes != 0 {
		t.Errorf("unchanged workspace: second snapshot stored %d bytes", second.ChangedBytes)
	}

	writeFiles(t, dir, map[string]string{"README.md": "changed\n", "extra.txt": "new\n"})
	if rr, err := ts.client(token).RestoreSnapshot(ts.ctx, env.ID, first.ID, ""); err != nil || len(rr.Failures) != 0 {
		t.Fatalf("restore: %+v, %v", rr, err)
	}
	sameFiles(t, "after restore", before, readFiles(t, dir))

	// The blobs are in the store, under the prefix, and not on disk.
	if n := st.blobs(t); n < 3 { // README, data.bin's chunk(s), the trees
		t.Errorf("%d blobs in the %s, want the snapshot's", n, st.where)
	}
	if _, err := os.Stat(filepath.Join(ts.dataDir, "backups")); !os.IsNotExist(err) {
		t.Errorf("<data-dir>/backups exists with an %s store: %v", st.kind, err)
	}
}

// TestSnapshotStoreRefused: a store that cannot be opened stops the server
// at start with a message saying why.
func TestSnapshotStoreRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ spec, want string }{
		{"ftp://host/x", `unknown scheme "ftp"`},
		{"file://host/x", "want file:///absolute/path"},
		{"s3:///prefix", "no bucket"},
		{"s3://bucket?access_key=x", `unknown URL parameter "access_key"`},
		{"azblob://", "azblob"},
	} {
		_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), Runtime: "local", SnapshotStore: c.spec, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "snapshot repository") {
			t.Errorf("--snapshot-store %s: %v, want an error about %q", c.spec, err, c.want)
		}
	}
}

// TestSnapshotStoreDirectory: a path or file:// URL is a directory store
// there, not in the data dir.
func TestSnapshotStoreDirectory(t *testing.T) {
	t.Parallel()
	for _, spec := range []func(dir string) string{
		func(dir string) string { return dir },
		func(dir string) string { return "file://" + dir },
	} {
		dir := filepath.Join(t.TempDir(), "repo")
		ts := startServer(t, "", func(c *server.Config) { c.SnapshotStore = spec(dir) })
		if _, err := os.Stat(filepath.Join(dir, "config", "config")); err != nil {
			t.Errorf("--snapshot-store %s: no repository there: %v", spec(dir), err)
		}
		if _, err := os.Stat(filepath.Join(ts.dataDir, "backups")); !os.IsNotExist(err) {
			t.Errorf("--snapshot-store %s: <data-dir>/backups was made too: %v", spec(dir), err)
		}
		ts.stop()
	}
}
