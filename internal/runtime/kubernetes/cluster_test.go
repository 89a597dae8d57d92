package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime"
)

// testID is a fresh environment id of these tests.
func testID(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "ktt-" + hex.EncodeToString(b[:])
}

// created creates an environment on rt and deletes it when the test ends.
func created(t *testing.T, rt *Runtime, edit ...func(*runtime.Spec)) runtime.Spec {
	t.Helper()
	spec := runtime.Spec{EnvironmentID: testID(t), UserID: "usr_test", Name: "k", MemoryGB: 1, StorageGB: 1,
		Env: map[string]string{"TEAM_SECRET": "hunter2"}, AgentToken: testAgentToken}
	for _, e := range edit {
		e(&spec)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Delete(ctx, spec.EnvironmentID); err != nil {
			t.Errorf("cleanup: delete %s: %v", spec.EnvironmentID, err)
		}
	})
	if _, err := rt.Create(t.Context(), spec); err != nil {
		t.Fatalf("create: %v", err)
	}
	return spec
}

// TestWorkspacePod: a started workspace is a pod running as uid 1000 with
// no capabilities, its variables from the Secret, its volume writable;
// stop removes the pod and keeps the claim; delete removes everything.
// With the supervisor from the server (the default) and from an image.
func TestWorkspacePod(t *testing.T) {
	needCluster(t)
	t.Parallel()
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		workspacePod(t, newTestRuntime(t, fromServer))
	})
	t.Run("image", func(t *testing.T) {
		t.Parallel()
		workspacePod(t, newTestRuntime(t))
	})
}

func workspacePod(t *testing.T, rt *Runtime) {
	ctx := t.Context()
	spec := created(t, rt)
	id, name := spec.EnvironmentID, ObjectName(spec.EnvironmentID)
	inst, err := rt.Start(ctx, id)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if inst.State != runtime.StateRunning || inst.StartedAt.IsZero() {
		t.Fatalf("started: %+v", inst)
	}
	// The container's first process becomes the supervisor (with the
	// server mode, once the bootstrap has fetched it and the home is
	// seeded: nothing to be told of but by looking, for 30 s at most).
	out, err := kubectl(ctx, nil, "exec", "-n", testNamespace, name, "-c", containerWorkspace, "--", "sh", "-c",
		`i=0; until tr '\0' ' ' </proc/1/cmdline | grep -q ' supervisor'; do i=$((i+1)); [ $i -lt 300 ] || break; sleep 0.1; done
		id -u; id -g; grep CapEff /proc/self/status; echo "$TEAM_SECRET"; touch /workspace/w ~/h && echo writable; ls /.dev8/agent; cat ~/seeded-by-image
		tr '\0' ' ' </proc/1/cmdline`)
	if err != nil {
		t.Fatal(err)
	}
	// The home volume starts with the image's home; the files written
	// stay through a restart, and the home is not seeded over them.
	got := strings.Fields(string(out))
	if len(got) != 12 || got[0] != "1000" || got[1] != "1000" || got[3] != "0000000000000000" || got[4] != "hunter2" || got[5] != "writable" || got[6] != secretToken ||
		strings.Join(got[7:10], " ") != "from the image" || got[10] != SupervisorPath || got[11] != "supervisor" {
		t.Fatalf("inside the pod: %q", out)
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatalf("start again: %v", err)
	}
	if out, err := kubectl(ctx, nil, "exec", "-n", testNamespace, name, "-c", containerWorkspace, "--", "sh", "-c", `ls -a ~ /workspace | tr '\n' ' '`); err != nil ||
		!strings.Contains(string(out), " h ") || !strings.Contains(string(out), " w") || !strings.Contains(string(out), "seeded-by-image") {
		t.Fatalf("after a restart: %q, %v", out, err)
	}
	// The home was seeded on this claim: the restart's pod does not seed it.
	checkSeeding(t, name, false)
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := cli.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the pod after stop: %v", err)
	}
	if _, err := cli.CoreV1().PersistentVolumeClaims(testNamespace).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the claim after stop: %v", err)
	}
	if inst, err := rt.Inspect(ctx, id); err != nil || inst.State != runtime.StateStopped || inst.ExitReason != "" {
		t.Fatalf("inspect after stop: %+v, %v", inst, err)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := rt.Inspect(ctx, id); !errorsIsNotFound(err) {
		t.Fatalf("inspect after delete: %v", err)
	}
	for what, get := range map[string]func() error{
		"secret": func() error {
			_, err := cli.CoreV1().Secrets(testNamespace).Get(ctx, name, metav1.GetOptions{})
			return err
		},
		"pod": func() error {
			_, err := cli.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); !apierrors.IsNotFound(err) {
			t.Errorf("the %s after delete: %v", what, err)
		}
	}
	// The claim goes once the volume's protection lets it.
	if pvc, err := cli.CoreV1().PersistentVolumeClaims(testNamespace).Get(ctx, name, metav1.GetOptions{}); err == nil && pvc.DeletionTimestamp == nil {
		t.Errorf("the claim after delete is not being deleted: %+v", pvc.ObjectMeta)
	}
}

func errorsIsNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), runtime.ErrNotFound.Error())
}

// TestPodGoneBehindDevsBack: a pod deleted with kubectl, or whose
// supervisor dies, is an exit: NotifyExits says so at once and Inspect
// gives the reason.
func TestPodGoneBehindDevsBack(t *testing.T) {
	needCluster(t)
	t.Parallel()
	rt := newTestRuntime(t)
	exits := make(chan string, 8)
	rt.NotifyExits(exits)
	ctx := t.Context()
	spec := created(t, rt)
	id, name := spec.EnvironmentID, ObjectName(spec.EnvironmentID)
	awaitExit := func(what string) {
		t.Helper()
		for {
			select {
			case got := <-exits:
				if got == id {
					return
				}
			case <-time.After(time.Minute):
				t.Fatalf("%s: no exit notification", what)
			}
		}
	}

	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	if _, err := kubectl(ctx, nil, "delete", "pod", "-n", testNamespace, name, "--wait=false"); err != nil {
		t.Fatal(err)
	}
	awaitExit("kubectl delete pod")
	// The reason outlives this Runtime: a new one (a restarted server)
	// reads it off the Secret.
	if inst, err := newTestRuntime(t).Inspect(ctx, id); err != nil || inst.State != runtime.StateStopped || !strings.Contains(inst.ExitReason, "deleted by something other than Dev8") {
		t.Fatalf("after kubectl delete: %+v, %v", inst, err)
	}

	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatalf("start again: %v", err)
	}
	// The deleted pod may have been told of twice (ended, then gone).
	for len(exits) > 0 {
		<-exits
	}
	// PID 1 is the supervisor: crashing it (SIGABRT, which Go answers by
	// exiting 2; a SIGKILL from inside its own PID namespace is ignored)
	// ends the workspace.
	if _, err := kubectl(ctx, nil, "exec", "-n", testNamespace, name, "-c", containerWorkspace, "--", "sh", "-c", "kill -ABRT 1"); err != nil {
		t.Fatal(err)
	}
	awaitExit("supervisor crashed")
	inst, err := rt.Inspect(ctx, id)
	if err != nil || inst.State != runtime.StateStopped || !strings.Contains(inst.ExitReason, "exited with code 2") {
		t.Fatalf("after the supervisor was killed: %+v, %v", inst, err)
	}
	// Start brings it back over the same volume.
	if inst, err := rt.Start(ctx, id); err != nil || inst.State != runtime.StateRunning {
		t.Fatalf("start after the crash: %+v, %v", inst, err)
	}
}

// TestStartFailures: an image the node does not have (pull policy Never)
// fails the start with the image named, permanently, and leaves no pod.
func TestStartFailures(t *testing.T) {
	needCluster(t)
	t.Parallel()
	rt := newTestRuntime(t)
	ctx := t.Context()
	spec := created(t, rt, func(s *runtime.Spec) { s.Image = "dev8-test/not-there:1" })
	_, err := rt.Start(ctx, spec.EnvironmentID)
	if err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "dev8-test/not-there:1") {
		t.Fatalf("start with a missing image: %v (permanent %v)", err, runtime.IsPermanent(err))
	}
	if _, err := cli.CoreV1().Pods(testNamespace).Get(ctx, ObjectName(spec.EnvironmentID), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a failed start left its pod: %v", err)
	}
}

// TestWorkspacesIsolated: the NetworkPolicy keeps one workspace from
// another (a web server in B answers B itself, not A), while a workspace
// still reaches the Dev8 server's address (ServerEgress: a listener of
// this test on the host's side of the cluster's network).
func TestWorkspacesIsolated(t *testing.T) {
	needCluster(t)
	t.Parallel()
	ln, err := net.Listen("tcp", hostIP+":0")
	if err != nil {
		t.Fatalf("listen on the cluster's host address: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "dev8 server") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// An installation of its own: the NetworkPolicy is one per
	// installation, and the other tests' runtimes would put theirs
	// (without ServerEgress) in its place.
	rt := newTestRuntime(t, func(c *Config) {
		c.ServerEgress = []string{hostIP}
		c.Installation = "dev8-isolation-test"
	})
	ctx := t.Context()
	a, b := created(t, rt), created(t, rt)
	for _, s := range []runtime.Spec{a, b} {
		if _, err := rt.Start(ctx, s.EnvironmentID); err != nil {
			t.Fatalf("start: %v", err)
		}
	}
	exec := func(spec runtime.Spec, script string) (string, error) {
		out, err := kubectl(ctx, nil, "exec", "-n", testNamespace, ObjectName(spec.EnvironmentID), "-c", containerWorkspace, "--", "sh", "-c", script)
		return strings.TrimSpace(string(out)), err
	}
	if _, err := exec(b, "echo from-b > /workspace/index.html && httpd -p 8080 -h /workspace"); err != nil {
		t.Fatal(err)
	}
	pod, err := cli.CoreV1().Pods(testNamespace).Get(ctx, ObjectName(b.EnvironmentID), metav1.GetOptions{})
	if err != nil || pod.Status.PodIP == "" {
		t.Fatalf("B's address: %v %v", pod, err)
	}
	// busybox's nc (its wget crashes as a user /etc/passwd does not name).
	get := func(spec runtime.Spec, addr string) (string, error) {
		return exec(spec, fmt.Sprintf(`printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 5 %s`, addr))
	}
	if out, err := get(b, "127.0.0.1 8080"); err != nil || !strings.HasSuffix(out, "from-b") {
		t.Fatalf("B's web server from B: %q, %v", out, err)
	}
	if out, err := get(a, fmt.Sprintf("%s %d", hostIP, ln.Addr().(*net.TCPAddr).Port)); err != nil || !strings.HasSuffix(out, "dev8 server") {
		t.Fatalf("the server's address from A: %q, %v", out, err)
	}
	if out, _ := get(a, pod.Status.PodIP+" 8080"); strings.Contains(out, "from-b") {
		t.Fatalf("A reached B's web server at %s: %q", pod.Status.PodIP, out)
	}

	// The cluster's DNS still answers A once A's own policy is in force:
	// the test cluster's CoreDNS listens on port 1053 (named dns), which
	// a rule for port 53 alone denies, and only after the policy reaches
	// the pod, so a first lookup passes. In force when the API server's
	// cluster IP, a private address, is refused (nothing tells when
	// kube-router has applied a policy: polled, with a deadline).
	api, err := cli.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := exec(a, fmt.Sprintf("nc -w 3 %s 443 </dev/null", api.Spec.ClusterIP))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A still reaches the API server at %s:443 a minute after its start: the policy denies private addresses", api.Spec.ClusterIP)
		}
		time.Sleep(500 * time.Millisecond)
	}
	out, err := exec(a, "nslookup kubernetes.default.svc.cluster.local")
	if err != nil || !slices.Contains(strings.Split(out, "\n"), "Address: "+api.Spec.ClusterIP) {
		t.Fatalf("A looking up the API server's Service under the policy: %q, %v (want %s)", out, err, api.Spec.ClusterIP)
	}
}

// TestNewClaimIsSeededAgain: a claim removed while the workspace was
// stopped comes back new at the next Create, and the next start seeds its
// home from the image again (the Secret's record names the old claim).
func TestNewClaimIsSeededAgain(t *testing.T) {
	needCluster(t)
	t.Parallel()
	rt := newTestRuntime(t)
	ctx := t.Context()
	spec := created(t, rt)
	id, name := spec.EnvironmentID, ObjectName(spec.EnvironmentID)
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	checkSeeding(t, name, true)
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	claims := cli.CoreV1().PersistentVolumeClaims(testNamespace)
	old, err := claims.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := claims.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := rt.awaitClaimGone(ctx, name, old.UID); err != nil {
		t.Fatal(err)
	}
	if inst, err := rt.Create(ctx, spec); err != nil || !inst.StorageCreated {
		t.Fatalf("create after the claim went: %+v, %v", inst, err)
	}
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatalf("start on the new claim: %v", err)
	}
	checkSeeding(t, name, true)
	if out, err := kubectl(ctx, nil, "exec", "-n", testNamespace, name, "-c", containerWorkspace, "--", "sh", "-c", "cat /home/dev8/seeded-by-image"); err != nil || string(out) != "from the image\n" {
		t.Fatalf("the new home: %q, %v", out, err)
	}
}

// checkSeeding checks whether the running pod name seeds the home (its
// dev8-home init container), and that the Secret records its claim as
// seeded either way.
func checkSeeding(t *testing.T, name string, seeds bool) {
	t.Helper()
	ctx := t.Context()
	pod, err := cli.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The image mode: init containers that copy the supervisor, then
	// seed; the server mode: none, the seeding beside the workspace.
	var inits, containers []string
	for _, c := range pod.Spec.InitContainers {
		inits = append(inits, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		containers = append(containers, c.Name)
	}
	wantInits, wantContainers := []string{containerSupervisor}, []string{containerWorkspace}
	if fetches(pod) {
		wantInits = nil
		if seeds {
			wantContainers = append(wantContainers, containerHome)
		}
	} else if seeds {
		wantInits = append(wantInits, containerHome)
	}
	if strings.Join(inits, " ") != strings.Join(wantInits, " ") || strings.Join(containers, " ") != strings.Join(wantContainers, " ") {
		t.Errorf("init containers %v, containers %v; want %v, %v", inits, containers, wantInits, wantContainers)
	}
	sec, err := cli.CoreV1().Secrets(testNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvc, err := cli.CoreV1().PersistentVolumeClaims(testNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sec.Annotations[AnnotationHomeSeeded]; got != string(pvc.UID) {
		t.Errorf("%s = %q, want the claim's UID %s", AnnotationHomeSeeded, got, pvc.UID)
	}
}
