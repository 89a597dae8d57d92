// Package kubernetes_test deploys the manifests of this folder on the
// real test cluster (scripts/k8s-test-cluster.sh), as a user would.
package kubernetes_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/k8stest"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/serverproc"
	"dev8.dev/dev8/internal/testutil/wsssh"
	"dev8.dev/dev8/sdk"
)

// The namespaces the manifests make, as they are: the test deploys exactly
// what a user applies (the test cluster is the tests' own).
const (
	controlNamespace   = "dev8"
	workspaceNamespace = "dev8-workspaces"
	serverImage        = "dev8-test/server:deploy"
	workspaceImage     = "dev8-test/deploy-busybox:latest"
)

// TestDeploy applies deploy/kubernetes through an overlay that only names
// the test's images and the test cluster's addresses (people reach the
// server at a node port; supervisors at the manifests' own in-cluster URL,
// http://dev8.dev8.svc.cluster.local:3000, through the cluster's DNS) and
// gives it a PostgreSQL URL in the Secret "dev8". The server comes up with
// the Role confined to the workspaces' namespace (it checks its rights at
// start), may do nothing elsewhere, and a workspace made through it runs
// as a non-root pod whose bootstrap fetches the supervisor from the server
// and whose supervisor reaches it, both through its Service (past the
// workspaces' NetworkPolicy); delete leaves nothing.
func TestDeploy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cluster, err := k8stest.Find(ctx)
	if err != nil {
		k8stest.Need(t, err.Error())
	}
	dbURL := pgtest.NewDatabase(t)
	root, err := k8stest.RepoRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := buildImages(ctx, cluster, root, t.TempDir()); err != nil {
		t.Fatal(err)
	}

	// A run that died before its cleanup left the namespaces: start clean.
	for _, ns := range []string{controlNamespace, workspaceNamespace} {
		if err := cluster.DeleteNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		// What a failure needs to be understood: the workspace's pod
		// (its bootstrap's and supervisor's output, its states and
		// events) and the server's, read before they are deleted.
		if t.Failed() {
			t.Logf("the workspaces' pods:\n%s", cluster.PodReport(ctx, workspaceNamespace, runtime.LabelManaged+"=true"))
			t.Logf("the server's pods:\n%s", cluster.PodReport(ctx, controlNamespace, "app.kubernetes.io/name=dev8"))
		}
		// The server first, so it makes nothing more.
		for _, ns := range []string{controlNamespace, workspaceNamespace} {
			if err := cluster.DeleteNamespace(ctx, ns); err != nil {
				t.Errorf("remove %s: %v", ns, err)
			}
		}
	})

	// PostgreSQL listens on loopback; the server's pod reaches it through
	// a forwarder on the host's address on the cluster's network.
	db, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	fwd := forward(t, net.JoinHostPort(cluster.HostIP, "0"), db.Host)
	db.Host = fwd
	key := make([]byte, 32)
	_, _ = rand.Read(key)

	nodePort, err := freeNodePort(ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	accessURL := fmt.Sprintf("http://%s:%d", nodeIP(cluster), nodePort)
	overlay := writeOverlay(t, root, nodePort, accessURL)

	// The Secret's namespace comes with the manifests: apply them, then
	// the Secret, which the server's pod waits for.
	if out, err := cluster.Run(ctx, nil, "apply", "-k", overlay); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "dev8", Namespace: controlNamespace},
		StringData: map[string]string{"DATABASE_URL": db.String(), "DEV8_SECRET_KEY": hex.EncodeToString(key)},
	}
	if _, err := cluster.Client.CoreV1().Secrets(controlNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := cluster.Run(ctx, nil, "-n", controlNamespace, "rollout", "status", "deploy/dev8", "--timeout", "4m"); err != nil {
		t.Fatalf("the server did not become ready: %v\n%s", err, out)
	}

	// The server's account may do nothing outside the workspaces'
	// namespace but read pods of its own.
	as := "system:serviceaccount:" + controlNamespace + ":dev8"
	for _, q := range []struct {
		ns, verb, resource string
		want               string
	}{
		{workspaceNamespace, "create", "pods", "yes"},
		{workspaceNamespace, "update", "networkpolicies.networking.k8s.io", "yes"},
		{controlNamespace, "get", "pods", "yes"},
		{controlNamespace, "get", "secrets", "no"},
		{controlNamespace, "create", "pods", "no"},
		{"default", "list", "pods", "no"},
		{"kube-system", "get", "secrets", "no"},
		{workspaceNamespace, "create", "rolebindings.rbac.authorization.k8s.io", "no"},
	} {
		out, _ := cluster.Run(ctx, nil, "auth", "can-i", "--as", as, "-n", q.ns, q.verb, q.resource)
		if got := strings.TrimSpace(string(out)); got != q.want {
			t.Errorf("may the server %s %s in %s: %q, want %q", q.verb, q.resource, q.ns, got, q.want)
		}
	}

	c := serverproc.SignUpAdmin(t, ctx, accessURL)
	env, err := c.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "deployed", InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForStatus(ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		e, _ := c.GetEnvironment(ctx, env.ID)
		t.Fatalf("the workspace: %v (%s)", err, e.StatusReason)
	}
	pods, err := cluster.Client.CoreV1().Pods(workspaceNamespace).List(ctx, metav1.ListOptions{LabelSelector: runtime.LabelEnvironment + "=" + env.ID})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("the workspace's pods: %v %v", pods, err)
	}
	// Its supervisor came from the server (the default,
	// --kubernetes-supervisor-from server): no init container, the
	// workspace container fetched it as it started.
	if ic := pods.Items[0].Spec.InitContainers; len(ic) != 0 {
		t.Errorf("the workspace pod has init containers %+v, want none (the supervisor fetched from the server)", ic)
	}
	if cmd := pods.Items[0].Spec.Containers[0].Command; len(cmd) < 4 || cmd[3] != "dev8-bootstrap" {
		t.Errorf("the workspace container's command is %q, want the bootstrap that fetches the supervisor", cmd)
	}
	if got := strings.TrimSpace(wsssh.Run(t, ctx, c, env.ID, "id -u; cat /proc/self/status | grep CapEff")); !strings.HasPrefix(got, "1000\n") || !strings.HasSuffix(got, "0000000000000000") {
		t.Errorf("the workspace runs as %q, want uid 1000 and no capabilities", got)
	}

	// Through each replica past the Service (the test reaches pod
	// addresses): the supervisor's tunnel is with one of them, so the
	// other relays to it.
	servers, err := cluster.Client.CoreV1().Pods(controlNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=dev8"})
	if err != nil || len(servers.Items) != 2 {
		t.Fatalf("the server's pods: %v %v, want 2 replicas", podNames(servers), err)
	}
	for _, p := range servers.Items {
		direct := sdk.New("http://"+net.JoinHostPort(p.Status.PodIP, "3000"), c.Token())
		if got := strings.TrimSpace(wsssh.Run(t, ctx, direct, env.ID, "echo through-$((40+2))")); got != "through-42" {
			t.Errorf("SSH through replica %s said %q", p.Name, got)
		}
	}

	if _, err := c.Delete(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForDeleted(ctx, env.ID, nil); err != nil {
		t.Fatal(err)
	}
	sel := metav1.ListOptions{LabelSelector: runtime.LabelEnvironment + "=" + env.ID}
	if pods, err := cluster.Client.CoreV1().Pods(workspaceNamespace).List(ctx, sel); err != nil || len(pods.Items) != 0 {
		t.Errorf("pods left: %v %v", pods, err)
	}
	if pvcs, err := cluster.Client.CoreV1().PersistentVolumeClaims(workspaceNamespace).List(ctx, sel); err != nil || len(pvcs.Items) != 0 {
		t.Errorf("claims left: %v %v", pvcs, err)
	}
	if secs, err := cluster.Client.CoreV1().Secrets(workspaceNamespace).List(ctx, sel); err != nil || len(secs.Items) != 0 {
		t.Errorf("secrets left: %v %v", secs, err)
	}
}

// buildImages builds the server's image from deploy/Dockerfile, as make
// server-image does, and a busybox workspace image, and loads both into
// the node.
func buildImages(ctx context.Context, cluster *k8stest.Cluster, root, tmp string) error {
	var files []k8stest.File
	for _, b := range []struct{ pkg, name string }{{"./cmd/dev8", "dev8"}, {"./cmd/dev8-supervisor", "dev8-supervisor"}} {
		out := filepath.Join(tmp, b.name)
		if err := k8stest.BuildStatic(ctx, b.pkg, out); err != nil {
			return err
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		files = append(files, k8stest.File{Name: b.name, Mode: 0o755, Data: data})
	}
	for _, f := range []struct{ name, path string }{{"Dockerfile", filepath.Join(root, "deploy", "Dockerfile")}, {"ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt"}} {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		files = append(files, k8stest.File{Name: f.name, Mode: 0o644, Data: data})
	}
	ws, err := k8stest.WorkspaceImage(workspaceImage)
	if err != nil {
		return err
	}
	return cluster.BuildAndLoad(ctx, k8stest.Image{Tag: serverImage, Files: files}, ws)
}

// writeOverlay writes a kustomization over deploy/kubernetes (copied: a
// kustomization may not reach outside its root) and returns its folder.
func writeOverlay(t *testing.T, root string, nodePort int, accessURL string) string {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if err := os.CopyFS(base, os.DirFS(filepath.Join(root, "deploy", "kubernetes"))); err != nil {
		t.Fatal(err)
	}
	name, tag, _ := strings.Cut(serverImage, ":")
	files := map[string]string{
		"kustomization.yaml": `resources:
  - base
images:
  - name: dev8/dev8
    newName: ` + name + `
    newTag: ` + tag + `
configMapGenerator:
  - name: dev8
    namespace: dev8
    behavior: merge
    literals:
      - DEV8_ACCESS_URL=` + accessURL + `
      - DEV8_TEMPLATE_IMAGES=base=` + workspaceImage + `
      - DEV8_KUBERNETES_IMAGE_PULL_POLICY=Never
      - DEV8_CODE_SERVER=off
      - DEV8_KUBERNETES_CPU_REQUEST_RATIO=0.1
patches:
  - path: service.yaml
`,
		"service.yaml": fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: dev8
  namespace: dev8
spec:
  type: NodePort
  ports:
    - name: http
      port: 3000
      nodePort: %d
`, nodePort),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// nodeIP is the node's address, which this host reaches (the host's own
// address on the cluster's network is HostIP).
func nodeIP(cluster *k8stest.Cluster) string {
	nodes, err := cluster.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err == nil && len(nodes.Items) > 0 {
		for _, a := range nodes.Items[0].Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address
			}
		}
	}
	return "10.200.0.1"
}

// freeNodePort picks a node port (30000-32767) no Service has.
func freeNodePort(ctx context.Context, cluster *k8stest.Cluster) (int, error) {
	svcs, err := cluster.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	used := map[int32]bool{}
	for _, s := range svcs.Items {
		for _, p := range s.Spec.Ports {
			used[p.NodePort] = true
		}
	}
	for range 100 {
		p, _ := rand.Int(rand.Reader, big.NewInt(2767))
		if port := int32(30000 + p.Int64()); !used[port] {
			return int(port), nil
		}
	}
	return 0, errors.New("no free node port")
}

// forward accepts connections on listen and joins each to one to target,
// until the test ends.
func forward(t *testing.T, listen, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in, true)
			track(out, true)
			wg.Add(2)
			for _, pair := range [][2]net.Conn{{in, out}, {out, in}} {
				go func() {
					defer wg.Done()
					_, _ = io.Copy(pair[0], pair[1])
					pair[0].Close()
					pair[1].Close()
					track(pair[0], false)
				}()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func podNames(pods *corev1.PodList) []string {
	if pods == nil {
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name+" ("+p.Status.PodIP+")")
	}
	return out
}
