package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/client"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	k8srt "dev8.dev/dev8/internal/runtime/kubernetes"
)

// k8sScript is the test cluster's script, relative to the repository root
// (make bench runs there).
const k8sScript = "scripts/k8s-test-cluster.sh"

// kubeCluster is the test cluster as `k8s-test-cluster.sh env` describes it.
type kubeCluster struct {
	kubeconfig string
	// hostIP is this host's address on the cluster's network: pods reach
	// a server listening there.
	hostIP string
	// containerd is the node's containerd socket (its images).
	containerd string
	cli        kubernetes.Interface
}

// findCluster returns the test cluster, or why there is none (a reason to
// skip the figures, not an error).
func findCluster(ctx context.Context) (*kubeCluster, string) {
	if _, err := os.Stat(k8sScript); err != nil {
		return nil, "run from the repository root (needs " + k8sScript + ")"
	}
	if out, err := exec.CommandContext(ctx, "bash", k8sScript, "status").CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("no test cluster (%s up starts one): %s", k8sScript, strings.TrimSpace(string(out)))
	}
	out, err := exec.CommandContext(ctx, "bash", k8sScript, "env").Output()
	if err != nil {
		return nil, fmt.Sprintf("%s env: %v", k8sScript, err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	k := &kubeCluster{kubeconfig: env["KUBECONFIG"], hostIP: env["DEV8_K8S_HOST_IP"], containerd: env["DEV8_K8S_CONTAINERD"]}
	if k.kubeconfig == "" || k.hostIP == "" || k.containerd == "" {
		return nil, fmt.Sprintf("%s env lacks KUBECONFIG, DEV8_K8S_HOST_IP or DEV8_K8S_CONTAINERD: %q", k8sScript, out)
	}
	rc, err := k8srt.RESTConfig(k.kubeconfig, "")
	if err == nil {
		k.cli, err = kubernetes.NewForConfig(rc)
	}
	if err != nil {
		return nil, fmt.Sprintf("cluster client: %v", err)
	}
	return k, ""
}

// ensureImage makes the node's containerd hold ref as the Docker engine has
// it: when the node already has that image under that name (the same image
// ID), nothing is copied (dev8/base is ~740 MB: a load takes ~25 s).
func (k *kubeCluster) ensureImage(ctx context.Context, dc *client.Client, ref string) error {
	insp, err := dc.ImageInspect(ctx, ref)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	name := reference.TagNameOnly(named).String()
	// The CRI plugin names every image also by its ID (the config's
	// digest, which is Docker's image ID): both names must point at the
	// same manifest.
	out, err := exec.CommandContext(ctx, "ctr", "-a", k.containerd, "-n", "k8s.io", "images", "ls").Output()
	if err != nil {
		return fmt.Errorf("list the node's images: %w", err)
	}
	digests := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			digests[f[0]] = f[2]
		}
	}
	if d := digests[name]; d != "" && d == digests[insp.ID] {
		return nil
	}
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, "bash", k8sScript, "load-image", ref).CombinedOutput(); err != nil {
		return fmt.Errorf("load %s into the node: %v\n%s", ref, err, out)
	}
	fmt.Printf("   loaded %s into the node in %s\n", ref, time.Since(t0).Round(100*time.Millisecond))
	return nil
}

// buildSupervisorImage builds tag as `make supervisor-image` does: FROM
// scratch with the static small supervisor as /dev8-supervisor.
func buildSupervisorImage(ctx context.Context, dc *client.Client, tag string) error {
	dir, err := os.MkdirTemp("", "dev8bench-supervisor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "dev8-supervisor")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/dev8-supervisor")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build dev8-supervisor: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	return buildImage(ctx, dc, tag, []buildFile{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY dev8-supervisor /dev8-supervisor\nUSER 1000:1000\n")},
		{"dev8-supervisor", 0o755, data},
	})
}

// createNamespace makes a namespace of this run's own that enforces Pod
// Security "restricted", as a Dev8 workspace namespace should.
func (k *kubeCluster) createNamespace(ctx context.Context) (string, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "dev8-bench-" + hex.EncodeToString(b[:]),
		Labels: map[string]string{
			"dev8.bench":                         "true",
			"pod-security.kubernetes.io/enforce": "restricted",
		},
	}}
	if _, err := k.cli.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create namespace: %w", err)
	}
	return ns.Name, nil
}

// removeNamespace deletes ns and waits (a watch) until it is gone, with
// everything in it.
func (k *kubeCluster) removeNamespace(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nss := k.cli.CoreV1().Namespaces()
	if err := nss.Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	for {
		got, err := nss.Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		w, err := nss.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", ns).String(), ResourceVersion: got.ResourceVersion})
		if err != nil {
			return err
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				w.Stop()
				return nil
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return fmt.Errorf("namespace %s is still there: %w", ns, ctx.Err())
		}
		// The watch ended (the server closes them now and then): look again.
	}
}

// dev8Process is a `dev8 server` this bench started.
type dev8Process struct {
	url  string
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startDev8 starts `dev8 server` (the built binary) with args, listening on
// a random port of host, and returns once it says it is ready. Its log goes
// to dir/server.log.
func startDev8(ctx context.Context, dev8, dir, host string, args ...string) (*dev8Process, error) {
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args = append([]string{"server", "--addr", host + ":0", "--data-dir", filepath.Join(dir, "data")}, args...)
	cmd := exec.Command(dev8, args...)
	// Its configuration is the flags alone: none of this environment's
	// DEV8_* variables or DATABASE_URL (make bench sets DEV8_CODE_SERVER).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEV8_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stderr = logFile
	// Killed with this bench, even when the bench is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", dev8, err)
	}
	p := &dev8Process{cmd: cmd, log: logPath, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Dev8 is ready: open "); ok {
				ready <- strings.Fields(rest)[0]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	select {
	case p.url = <-ready:
		return p, nil
	case err := <-p.done:
		p.done <- err
		return nil, fmt.Errorf("dev8 server exited before it was ready (%v):\n%s", err, p.logTail())
	case <-time.After(time.Minute):
		p.stop()
		return nil, fmt.Errorf("dev8 server not ready within a minute:\n%s", p.logTail())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop ends the server with SIGTERM (a clean shutdown), SIGKILL after 30 s.
func (p *dev8Process) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			return nil
		}
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("dev8 server did not stop within 30 s of SIGTERM: killed")
	}
}

// logTail is the end of the server's log, for errors.
func (p *dev8Process) logTail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}
