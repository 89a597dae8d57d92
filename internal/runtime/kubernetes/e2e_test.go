package kubernetes_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime/kubernetes"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/sdk"
)

// TestEndToEnd is the user's path on the real cluster, with the real
// binaries: `dev8 server --runtime kubernetes`; the dev8 CLI logs in and
// creates a workspace → its pod and claim appear → RUNNING → `dev8 ssh NAME
// -- cmd` and OpenSSH's `ssh dev8.NAME cmd` (through `dev8 config-ssh`)
// run commands in it, as a non-root user → a file in /workspace survives
// stop (pod gone, claim kept) and start → its pod deleted behind Dev8's
// back puts it in ERROR with the reason → `dev8 rm` leaves no pod, claim,
// Secret or Service of it.
func TestEndToEnd(t *testing.T) {
	c := needCluster(t)
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must test with OpenSSH: apt-get install -y openssh-client")
		}
		t.Skip("no ssh on PATH (apt-get install -y openssh-client)")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ns := c.NewNamespace(t)
	objects := watchObjects(t, c, ns)
	dataDir := t.TempDir()
	srv := startServer(t, ctx, c, ns, dataDir, serverAddr(t, c))
	api := serverproc.SignUpAdmin(t, ctx, srv.URL)

	// The CLI as a person runs it: its own config directory and HOME,
	// none of the test's DEV8_* settings.
	home := t.TempDir()
	env := []string{"HOME=" + home, "DEV8_CONFIG_DIR=" + filepath.Join(home, ".config", "dev8")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEV8_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	dev8 := dev8Binary(t)
	run := func(stdin string, name string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env, cmd.Dir = env, home
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), &cmdError{args: append([]string{name}, args...), err: err, stderr: stderr.String(), logs: srv.Logs()}
		}
		return string(out), nil
	}
	must := func(stdin, name string, args ...string) string {
		t.Helper()
		out, err := run(stdin, name, args...)
		if err != nil {
			t.Fatalf("%v\nstdout: %s", err, out)
		}
		return out
	}

	must(serverproc.AdminEmail+"\n"+serverproc.AdminPassword+"\n", dev8, "login", srv.URL)
	out := must("", dev8, "create", "box", "--image", kubernetes.TestImage, "--cpu", "1", "--memory", "1", "--storage", "1", "--timeout", "3m")
	m := regexp.MustCompile(`\((env_[a-z0-9_-]+)\)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "RUNNING") {
		t.Fatalf("dev8 create: %s", out)
	}
	id, name := m[1], kubernetes.ObjectName(m[1])
	if e, err := api.GetEnvironment(ctx, id); err != nil || e.Status != sdk.StatusRunning {
		t.Fatalf("after dev8 create: %+v, %v", e, err)
	}

	// Its pod runs, restricted, and its claim is bound.
	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the workspace's pod: %v", err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.Spec.SecurityContext == nil || pod.Spec.SecurityContext.RunAsNonRoot == nil || !*pod.Spec.SecurityContext.RunAsNonRoot {
		t.Fatalf("the workspace's pod: phase %s, security %+v", pod.Status.Phase, pod.Spec.SecurityContext)
	}
	if pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{}); err != nil || pvc.Status.Phase != corev1.ClaimBound {
		t.Fatalf("the workspace's claim: %+v, %v", pvc, err)
	}

	// dev8 ssh: commands run as the workspace user (uid 1000, the
	// supervisor too), in /workspace.
	if out := must("", dev8, "ssh", "box", "--", "id -u; id -g; grep ^Uid /proc/1/status; pwd; echo kept > /workspace/note"); out != "1000\n1000\nUid:\t1000\t1000\t1000\t1000\n/workspace\n" {
		t.Fatalf("dev8 ssh box: %q", out)
	}
	// OpenSSH through config-ssh's block, in a config file of the test's
	// own (OpenSSH reads ~/.ssh of the passwd entry, not $HOME: -F keeps
	// it away from this machine's).
	sshConfig := filepath.Join(home, ".ssh", "config")
	if out := must("", dev8, "config-ssh", "--ssh-config", sshConfig); !strings.Contains(out, "1 host") {
		t.Fatalf("dev8 config-ssh: %q", out)
	}
	if out := must("", sshBin, "-F", sshConfig, "-o", "BatchMode=yes", "dev8.box", "id -u; cat /workspace/note"); out != "1000\nkept\n" {
		t.Fatalf("ssh dev8.box: %q", out)
	}

	// Stop: the pod goes, the claim (and the Secret) stay.
	must("", dev8, "stop", "box", "--timeout", "2m")
	if _, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the pod of a stopped workspace: %v", err)
	}
	if pvc, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{}); err != nil || pvc.DeletionTimestamp != nil {
		t.Fatalf("the claim of a stopped workspace: %+v, %v", pvc, err)
	}
	if _, err := c.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the Secret of a stopped workspace: %v", err)
	}
	must("", dev8, "start", "box", "--timeout", "3m")
	if out := must("", dev8, "ssh", "box", "--", "cat", "/workspace/note"); out != "kept\n" {
		t.Fatalf("after stop and start: %q", out)
	}

	// The pod deleted behind Dev8's back: ERROR, with the reason.
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e, err := api.WaitForStatus(ctx, id, sdk.StatusError, nil)
	if err != nil || !strings.Contains(e.StatusReason, "deleted by something other than Dev8") {
		t.Fatalf("pod deleted behind Dev8's back: %+v, %v", e, err)
	}
	if out := must("", dev8, "ls"); !regexp.MustCompile(`(?m)^box\s+ERROR\b`).MatchString(out) {
		t.Fatalf("dev8 ls:\n%s", out)
	}

	must("", dev8, "rm", "box", "--timeout", "2m")
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	objects.await(wctx, t, "nothing of the workspace to be left after dev8 rm", exactly(nil))
}

// cmdError is a command that failed, with what explains it.
type cmdError struct {
	args   []string
	err    error
	stderr string
	logs   string
}

func (e *cmdError) Error() string {
	return strings.Join(e.args, " ") + ": " + e.err.Error() + "\nstderr: " + e.stderr + "\nserver log:\n" + e.logs
}
