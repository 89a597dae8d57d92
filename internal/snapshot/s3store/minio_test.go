package s3store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"dev8.dev/dev8/internal/snapshot/s3store/miniotest"
	"dev8.dev/dev8/internal/testutil/extserver"
)

// One MinIO serves every test of the package; each test uses a bucket of
// its own.
var shared extserver.Shared[*miniotest.Server]

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// startMinio returns the package's MinIO server, starting it on first use;
// without a minio binary the test is skipped (failed under CI).
func startMinio(t *testing.T) *miniotest.Server {
	t.Helper()
	return shared.Get(t, miniotest.Binary(t), miniotest.Launch)
}

// newStore opens a Store in a new bucket of the test server.
func newStore(t *testing.T, prefix string) *Store {
	t.Helper()
	srv := startMinio(t)
	st, err := New(context.Background(), Config{
		Bucket: srv.NewBucket(t), Prefix: prefix, Endpoint: srv.Endpoint, Insecure: true, Creds: srv.Creds(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
