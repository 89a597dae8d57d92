// Package k8stest gives tests the real single-node Kubernetes cluster that
// scripts/k8s-test-cluster.sh runs on this machine: where it is (Find),
// images built with the local Docker engine and copied into the node, as
// there is no registry (BuildAndLoad), and namespaces of a test's own that
// enforce Pod Security "restricted" (NewNamespace).
//
// Tests that need the cluster skip without it, unless CI is set: then they
// fail (Need). The cluster is shared by every test on the machine: never
// bring it down, and make only objects of your own, in your own namespace.
package k8stest

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
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is the test cluster as this host reaches it.
type Cluster struct {
	// Kubeconfig is the path of its admin kubeconfig.
	Kubeconfig string
	// Kubectl is the path of a kubectl of the cluster's version.
	Kubectl string
	// HostIP is this host's address on the cluster's network: a listener
	// there is reached by pods (a dev8 server under test listens there).
	HostIP string
	// Client talks to the cluster as its admin.
	Client kubernetes.Interface

	script string // scripts/k8s-test-cluster.sh
}

// Find returns the cluster scripts/k8s-test-cluster.sh runs, or an error
// saying why there is none (for Need).
func Find(ctx context.Context) (*Cluster, error) {
	root, err := RepoRoot(ctx)
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "scripts", "k8s-test-cluster.sh")
	if out, err := exec.CommandContext(ctx, "bash", script, "status").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("no test cluster (run scripts/k8s-test-cluster.sh up): %s", strings.TrimSpace(string(out)))
	}
	out, err := exec.CommandContext(ctx, "bash", script, "env").Output()
	if err != nil {
		return nil, fmt.Errorf("k8s-test-cluster.sh env: %w", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	c := &Cluster{Kubeconfig: env["KUBECONFIG"], Kubectl: env["DEV8_K8S_KUBECTL"], HostIP: env["DEV8_K8S_HOST_IP"], script: script}
	if c.Kubeconfig == "" || c.Kubectl == "" || c.HostIP == "" {
		return nil, fmt.Errorf("k8s-test-cluster.sh env printed no KUBECONFIG, DEV8_K8S_KUBECTL or DEV8_K8S_HOST_IP:\n%s", out)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("the test cluster's kubeconfig: %w", err)
	}
	if c.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, fmt.Errorf("the test cluster's client: %w", err)
	}
	return c, nil
}

// Need skips t when unavailable says why the cluster cannot be used, or
// fails it when CI is set (CI must run the Kubernetes tests).
func Need(t testing.TB, unavailable string) {
	t.Helper()
	if unavailable == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but the Kubernetes tests cannot run: %s", unavailable)
	}
	t.Skip(unavailable)
}

// RepoRoot is the directory of the module's go.mod.
func RepoRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	if strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", fmt.Errorf("not inside the dev8 module")
	}
	return filepath.Dir(strings.TrimSpace(string(gomod))), nil
}

// BuildStatic builds the module's package pkg ("./cmd/dev8") as a static
// linux/amd64 binary at out: what runs in a scratch image.
func BuildStatic(ctx context.Context, pkg, out string) error {
	root, err := RepoRoot(ctx)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// Image is an image to build: a Docker build context (a Dockerfile among
// its Files) and the tag to give the result.
type Image struct {
	Tag   string
	Files []File
}

// File is one entry of a build context.
type File struct {
	Name string // path in the context; a directory's ends in "/"
	Mode int64
	Data []byte
	Dir  bool
}

// BuildAndLoad builds images with the docker CLI (labelled dev8.test=true)
// and copies them into the node's containerd, where pods with pull policy
// Never (or IfNotPresent) find them.
func (c *Cluster) BuildAndLoad(ctx context.Context, images ...Image) error {
	tags := make([]string, 0, len(images))
	for _, img := range images {
		if err := dockerBuild(ctx, img); err != nil {
			return err
		}
		tags = append(tags, img.Tag)
	}
	if out, err := exec.CommandContext(ctx, "bash", append([]string{c.script, "load-image"}, tags...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("load %s into the cluster: %v\n%s", strings.Join(tags, " "), err, out)
	}
	return nil
}

func dockerBuild(ctx context.Context, img Image) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range img.Files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: time.Now(), Typeflag: tar.TypeReg}
		if f.Dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", "build", "-q", "--label", "dev8.test=true", "-t", img.Tag, "-")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %v\n%s", img.Tag, err, out)
	}
	return nil
}

// CreateNamespace makes a namespace with a random name (dev8-test-…,
// labelled dev8.test=true) that enforces Pod Security "restricted", as
// Dev8's own namespace does.
func (c *Cluster) CreateNamespace(ctx context.Context) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "dev8-test-" + hex.EncodeToString(b[:]),
		Labels: map[string]string{
			"dev8.test":                          "true",
			"pod-security.kubernetes.io/enforce": "restricted",
		},
	}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create a test namespace: %w", err)
	}
	return ns.Name, nil
}

// DeleteNamespace deletes ns and waits until it is gone (its pods, claims
// and secrets with it), for at most 3 minutes.
func (c *Cluster) DeleteNamespace(ctx context.Context, ns string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := c.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	// A namespace has no finer event than its own; its finalization
	// takes seconds.
	for {
		_, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
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

// NewNamespace makes a namespace for t (see CreateNamespace) and deletes
// it when t ends, failing t if it does not go.
func (c *Cluster) NewNamespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := c.CreateNamespace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.DeleteNamespace(context.Background(), ns); err != nil {
			t.Errorf("remove the test namespace: %v", err)
		}
	})
	return ns
}

// Run runs kubectl on the cluster with args (and stdin, if not nil), and
// returns its standard output; the error holds its standard error.
func (c *Cluster) Run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
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

// WorkspaceImage is the smallest image a Dev8 workspace runs in: busybox
// (busybox-static's /bin/busybox, which scripts/dockerd.sh installs) as
// /bin/sh, a /tmp, and a home for uid 1000 holding extra files (named
// under "home/").
func WorkspaceImage(tag string, extra ...File) (Image, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return Image{}, fmt.Errorf("busybox-static is needed for the test image (run scripts/dockerd.sh): %w", err)
	}
	files := []File{
		{Name: "Dockerfile", Mode: 0o644, Data: []byte(strings.Join([]string{
			"FROM scratch",
			"COPY busybox /bin/busybox",
			"COPY busybox /bin/sh",
			"COPY tmp /tmp",
			"COPY --chown=1000:1000 home /home/dev8",
			"ENV PATH=/bin",
			"",
		}, "\n"))},
		{Name: "busybox", Mode: 0o755, Data: bb},
		{Name: "tmp/", Mode: 0o1777, Dir: true},
		{Name: "home/", Mode: 0o755, Dir: true},
	}
	return Image{Tag: tag, Files: append(files, extra...)}, nil
}
