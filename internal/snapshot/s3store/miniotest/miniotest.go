// Package miniotest runs a real MinIO server (an S3-compatible object
// store) for tests: the binary named by DEV8_MINIO, else "minio" on PATH.
// .ci/run installs the pinned version and sets DEV8_MINIO.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"dev8.dev/dev8/internal/testutil/extserver"
)

// Version is the MinIO the tests are known to pass with; Install gets it.
const (
	Version = "v0.0.0-20260212201848-7aac2a2c5b7c"
	Install = "go install github.com/minio/minio@" + Version
)

// The root credentials every test server is started with.
const (
	User     = "dev8test"
	Password = "dev8test-password"
)

// Server is a running MinIO.
type Server struct {
	Endpoint string // host:port, plain HTTP

	proc *extserver.Process
	log  *lockedBuffer
}

// Binary returns the minio binary to run, or skips t (fails it under CI,
// where .ci/run must have provided one) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	return extserver.Binary(t, "DEV8_MINIO", "minio",
		"no MinIO server binary: set DEV8_MINIO to one or put minio on PATH ("+Install+")")
}

// Start runs a MinIO server for the rest of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	return extserver.Start(t, Binary(t), Launch)
}

// Launch starts a MinIO server from bin on a free loopback port and waits
// until it is ready. The caller must Close it.
func Launch(bin string) (*Server, error) {
	return extserver.Retry("MinIO", bin, launch, nil)
}

func launch(bin string) (*Server, error) {
	proc, err := extserver.NewProcess("dev8-minio-")
	if err != nil {
		return nil, err
	}
	srv := &Server{proc: proc, log: &lockedBuffer{}}
	port, err := extserver.FreePort()
	if err != nil {
		proc.Close()
		return nil, err
	}
	srv.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", filepath.Join(proc.Dir, "data"), "--address", srv.Endpoint)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+User, "MINIO_ROOT_PASSWORD="+Password,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+proc.Dir)
	cmd.Stdout, cmd.Stderr = srv.log, srv.log
	if err := proc.Start(cmd); err != nil {
		return nil, err
	}

	// MinIO says nothing when it is ready; its health endpoint does.
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get("http://" + srv.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv, nil
			}
		}
		select {
		case <-proc.Exited:
			srv.Close()
			return nil, fmt.Errorf("minio exited: %s", srv.log)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			srv.Close()
			return nil, fmt.Errorf("minio not ready after a minute: %s", srv.log)
		}
	}
}

// Close stops the server and removes its data.
func (s *Server) Close() { s.proc.Close() }

// Creds are the server's root credentials.
func (s *Server) Creds() *credentials.Credentials {
	return credentials.NewStaticV4(User, Password, "")
}

// NewBucket creates an empty bucket with a fresh name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: s.Creds()})
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

// lockedBuffer collects MinIO's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
