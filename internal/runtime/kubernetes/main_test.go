package kubernetes

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
// deletes at the end.

const (
	testImage       = "dev8-test/k8s-busybox:latest"
	supervisorImage = "dev8-test/k8s-supervisor:latest"
)

var (
	// unavailable says why the cluster tests cannot run; empty when they can.
	unavailable string
	cli         kubernetes.Interface
	// testNamespace is the namespace this run made.
	testNamespace string
	kubeconfig    string
	kubectlBin    string
	// hostIP is this host's address on the cluster's network, which pods
	// reach.
	hostIP   string
	repoRoot string
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
	if err := setup(tmp); err != nil {
		unavailable = err.Error()
	}
	code := m.Run()
	if testNamespace != "" {
		if err := removeNamespace(testNamespace); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: remove the test namespace %s: %v\n", testNamespace, err)
			code = 1
		}
	}
	return code
}

func setup(tmp string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	repoRoot = filepath.Dir(strings.TrimSpace(string(gomod)))
	script := filepath.Join(repoRoot, "scripts", "k8s-test-cluster.sh")
	if out, err := exec.CommandContext(ctx, "bash", script, "status").CombinedOutput(); err != nil {
		return fmt.Errorf("no test cluster (run scripts/k8s-test-cluster.sh up): %s", strings.TrimSpace(string(out)))
	}
	out, err := exec.CommandContext(ctx, "bash", script, "env").Output()
	if err != nil {
		return fmt.Errorf("k8s-test-cluster.sh env: %w", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	kubeconfig, kubectlBin, hostIP = env["KUBECONFIG"], env["DEV8_K8S_KUBECTL"], env["DEV8_K8S_HOST_IP"]
	rc, err := RESTConfig(kubeconfig, "")
	if err != nil {
		return err
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("docker is needed to build the test images: %w", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return fmt.Errorf("busybox-static is needed for the test image (run scripts/dockerd.sh): %w", err)
	}
	if err := buildImages(ctx, tmp); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "bash", script, "load-image", testImage, supervisorImage).CombinedOutput(); err != nil {
		return fmt.Errorf("load the test images into the cluster: %v\n%s", err, out)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "dev8-test-" + hex.EncodeToString(b[:]),
		Labels: map[string]string{
			"dev8.test":                          "true",
			"pod-security.kubernetes.io/enforce": "restricted",
		},
	}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the test namespace: %w", err)
	}
	testNamespace, cli = ns.Name, c
	return nil
}

// buildImages builds the supervisor and the test workspace image with the
// docker CLI (a tar context on stdin).
func buildImages(ctx context.Context, tmp string) error {
	sup := filepath.Join(tmp, "dev8-supervisor")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", sup, "./cmd/dev8-supervisor")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build dev8-supervisor: %v\n%s", err, out)
	}
	supBin, err := os.ReadFile(sup)
	if err != nil {
		return err
	}
	if err := dockerBuild(ctx, supervisorImage, []tarFile{
		{name: "Dockerfile", mode: 0o644, data: []byte("FROM scratch\nCOPY dev8-supervisor /dev8-supervisor\n")},
		{name: "dev8-supervisor", mode: 0o755, data: supBin},
	}); err != nil {
		return err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	return dockerBuild(ctx, testImage, []tarFile{
		{name: "Dockerfile", mode: 0o644, data: []byte(strings.Join([]string{
			"FROM scratch",
			"COPY busybox /bin/busybox",
			"COPY busybox /bin/sh",
			"COPY tmp /tmp",
			"COPY --chown=1000:1000 home /home/dev8",
			"ENV PATH=/bin",
			"",
		}, "\n"))},
		{name: "busybox", mode: 0o755, data: bb},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "home/", mode: 0o755, dir: true},
		// Shows that a new home volume starts with the image's home.
		{name: "home/seeded-by-image", mode: 0o644, data: []byte("from the image\n")},
	})
}

type tarFile struct {
	name string
	mode int64
	data []byte
	dir  bool
}

func dockerBuild(ctx context.Context, tag string, files []tarFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Now(), Typeflag: tar.TypeReg}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", "build", "-q", "--label", "dev8.test=true", "-t", tag, "-")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", tag, err, out)
	}
	return nil
}

// removeNamespace deletes ns and waits until it is gone (its pods, claims
// and secrets with it).
func removeNamespace(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cli.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	for {
		_, err := cli.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s is still there: %w", ns, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// needCluster skips the test when no cluster can run it (fails it under CI).
func needCluster(t *testing.T) {
	t.Helper()
	if unavailable == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but the Kubernetes tests cannot run: %s", unavailable)
	}
	t.Skip(unavailable)
}

// kubectl runs kubectl on the test cluster.
func kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}
