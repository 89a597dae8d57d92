package kubernetes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"dev8.dev/dev8/internal/testutil/k8stest"
)

// The cluster tests run on the real single-node cluster of
// scripts/k8s-test-cluster.sh (up), with a Docker engine to build their
// images, which they copy into the node's containerd (no registry). Without
// them they skip, unless CI is set: then they fail.
//
// TestMain builds the small supervisor (static) into supervisorImage (FROM
// scratch, /dev8-supervisor) and the workspace image testImage (FROM
// scratch with busybox as /bin/sh), loads both into the node, and makes a
// namespace of its own that enforces Pod Security "restricted", which it
// deletes at the end. (internal/testutil/k8stest does the cluster's part.)

const (
	testImage       = "dev8-test/k8s-busybox:latest"
	supervisorImage = "dev8-test/k8s-supervisor:latest"
)

var (
	// unavailable says why the cluster tests cannot run; empty when they can.
	unavailable string
	cluster     *k8stest.Cluster
	cli         kubernetes.Interface
	// testNamespace is the namespace this run made.
	testNamespace string
	// hostIP is this host's address on the cluster's network, which pods
	// reach.
	hostIP string
	// buildDir holds what the run builds; removed at its end.
	buildDir string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "dev8-k8s-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	buildDir = tmp
	if err := setup(tmp); err != nil {
		unavailable = err.Error()
	}
	code := m.Run()
	if testNamespace != "" {
		if err := cluster.DeleteNamespace(context.Background(), testNamespace); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: remove the test namespace %s: %v\n", testNamespace, err)
			code = 1
		}
	}
	return code
}

func setup(tmp string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := k8stest.Find(ctx)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("docker is needed to build the test images: %w", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return fmt.Errorf("busybox-static is needed for the test image (run scripts/dockerd.sh): %w", err)
	}
	images, err := testImages(ctx, tmp)
	if err != nil {
		return err
	}
	if err := c.BuildAndLoad(ctx, images...); err != nil {
		return err
	}
	ns, err := c.CreateNamespace(ctx)
	if err != nil {
		return err
	}
	cluster, cli, hostIP, testNamespace = c, c.Client, c.HostIP, ns
	return nil
}

// testImages are the supervisor image and the test workspace image.
func testImages(ctx context.Context, tmp string) ([]k8stest.Image, error) {
	sup := filepath.Join(tmp, "dev8-supervisor")
	if err := k8stest.BuildStatic(ctx, "./cmd/dev8-supervisor", sup); err != nil {
		return nil, err
	}
	supBin, err := os.ReadFile(sup)
	if err != nil {
		return nil, err
	}
	// Shows that a new home volume starts with the image's home.
	ws, err := k8stest.WorkspaceImage(testImage, k8stest.File{Name: "home/seeded-by-image", Mode: 0o644, Data: []byte("from the image\n")})
	if err != nil {
		return nil, err
	}
	return []k8stest.Image{
		{Tag: supervisorImage, Files: []k8stest.File{
			{Name: "Dockerfile", Mode: 0o644, Data: []byte("FROM scratch\nCOPY dev8-supervisor /dev8-supervisor\n")},
			{Name: "dev8-supervisor", Mode: 0o755, Data: supBin},
		}},
		ws,
	}, nil
}

// needCluster skips the test when no cluster can run it (fails it under CI).
func needCluster(t *testing.T) {
	t.Helper()
	k8stest.Need(t, unavailable)
}

// kubectl runs kubectl on the test cluster.
func kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	return cluster.Run(ctx, stdin, args...)
}

// For the end-to-end tests in package kubernetes_test, which drive a whole
// dev8 server and so cannot live in this package (the server imports it).
var (
	// TestCluster is the test cluster, nil when TestUnavailable says why.
	TestCluster = func() *k8stest.Cluster { return cluster }
	// TestUnavailable says why the cluster tests cannot run ("" if they can).
	TestUnavailable = func() string { return unavailable }
	// TestImage is the busybox workspace image loaded into the node.
	TestImage = testImage
	// TestSupervisorImage is the supervisor image loaded into the node.
	TestSupervisorImage = supervisorImage
	// TestDev8Binary builds the static dev8 (server and CLI) once, at the
	// first call: only the tests that run it wait for it.
	TestDev8Binary = dev8Binary
)

var dev8Build struct {
	once sync.Once
	path string
	err  error
}

func dev8Binary(ctx context.Context) (string, error) {
	dev8Build.once.Do(func() {
		path := filepath.Join(buildDir, "dev8")
		dev8Build.err = k8stest.BuildStatic(ctx, "./cmd/dev8", path)
		dev8Build.path = path
	})
	return dev8Build.path, dev8Build.err
}
