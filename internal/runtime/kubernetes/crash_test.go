package kubernetes_test

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime/kubernetes"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/sdk"
)

// TestServerKilledDuringCreate kills the real dev8 server (SIGKILL) while
// it creates and deletes workspaces on the real cluster, and restarts it:
// every environment ends RUNNING with exactly its pod, claim and Secret,
// every deleted one leaves nothing behind, and nothing in the namespace is
// left without an environment. Then a workspace whose supervisor is killed
// behind Dev8's back shows as ERROR with Kubernetes' account of it.
func TestServerKilledDuringCreate(t *testing.T) {
	c := needCluster(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ns := c.NewNamespace(t)
	objects := watchObjects(t, c, ns)
	dataDir, addr := t.TempDir(), serverAddr(t, c)
	// Whatever happens, the servers are killed before the namespace is
	// deleted (their cleanups were registered after its), so they make
	// nothing more in it.
	srv := startServer(t, ctx, c, ns, dataDir, addr)
	client := serverproc.SignUpAdmin(t, ctx, srv.URL)

	// Each workspace asks for a whole CPU, of the node's two (shared with
	// the other tests): two survive.
	const n = 4
	var ids []string
	for i := range n {
		env, err := client.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{
			Name: fmt.Sprintf("crash-%d", i), BaseImage: kubernetes.TestImage,
			CPUCores: sdk.Float(1), MemoryGB: sdk.Int(1), StorageGB: sdk.Int(1),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.ID)
	}
	// Half of them are deleted while they are being created.
	deleted := map[string]bool{}
	for _, id := range ids[:n/2] {
		if _, err := client.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		deleted[id] = true
	}
	// Killed once the runtime is at work: the first pod made (its
	// environment's Secret and claim before it), others on the way.
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	objects.await(wctx, t, "a first pod", func(got map[string][]string) error {
		if len(got[kindPod]) == 0 {
			return fmt.Errorf("no pod yet: %v", got)
		}
		return nil
	})
	srv.Kill()
	t.Logf("killed mid-operation; in the namespace: %v", objects.names())

	// On the same address: the workspaces' supervisors dial it.
	srv = startServer(t, ctx, c, ns, dataDir, addr)
	client = sdk.New(srv.URL, client.Token())
	want := map[string][]string{}
	for _, id := range ids {
		if deleted[id] {
			if err := client.WaitForDeleted(ctx, id, nil); err != nil {
				t.Fatalf("deleted %s: %v\n%s", id, err, srv.Logs())
			}
			continue
		}
		if _, err := client.WaitForStatus(ctx, id, sdk.StatusRunning, nil); err != nil {
			t.Fatalf("%s: %v\n%s", id, err, srv.Logs())
		}
		name := kubernetes.ObjectName(id)
		for _, kind := range []string{kindPod, kindClaim, kindSecret} {
			want[kind] = append(want[kind], name)
		}
	}
	// A create the killed server had sent can still land after the new
	// server converged; the resync (every 200 ms here) removes such an
	// orphan, so the namespace must come to exactly the surviving
	// environments' objects.
	wctx, wcancel = context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	objects.await(wctx, t, "the namespace to hold the surviving environments' objects after the restart", exactly(want))

	// The supervisor (PID 1 of the workspace container) crashes behind
	// Dev8's back: ERROR, with the exit Kubernetes recorded.
	victim := ids[n-1]
	// RUNNING says the workspace container runs, not yet that it is the
	// supervisor: PID 1 may still be the bootstrap's shell fetching it
	// (after the restart its download is retried), and a signal that a
	// shell as PID 1 does not handle is ignored. The supervisor answers
	// SSH through its tunnel once it is PID 1.
	conn, err := client.DialSSH(ctx, victim)
	if err != nil {
		t.Fatalf("SSH to %s: %v\n%s", victim, err, srv.Logs())
	}
	banner, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Fatalf("SSH to %s: banner %q, %v", victim, banner, err)
	}
	if _, err := c.Run(ctx, nil, "exec", "-n", ns, kubernetes.ObjectName(victim), "-c", "workspace", "--", "sh", "-c", "kill -ABRT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitForStatus(ctx, victim, sdk.StatusError, nil); err != nil {
		t.Fatal(err)
	}
	e, err := client.GetEnvironment(ctx, victim)
	if err != nil || !strings.Contains(e.StatusReason, "exited with code 2") {
		t.Fatalf("crashed supervisor: %+v %v; want ERROR with exit code 2 as the reason", e, err)
	}

	for _, id := range ids[n/2:] {
		if _, err := client.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids[n/2:] {
		if err := client.WaitForDeleted(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel = context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	objects.await(wctx, t, "the namespace to be empty after deleting everything", exactly(nil))
}
