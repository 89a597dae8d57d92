package kubernetes_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"dev8.dev/dev8/internal/runtime/kubernetes"
	"dev8.dev/dev8/internal/testutil/k8stest"
	"dev8.dev/dev8/internal/testutil/serverproc"
)

// What the end-to-end tests share: a real dev8 server process on the
// kubernetes runtime, in a namespace of the test's own, and a view of the
// objects in that namespace kept by informers.

func needCluster(t *testing.T) *k8stest.Cluster {
	t.Helper()
	k8stest.Need(t, kubernetes.TestUnavailable())
	return kubernetes.TestCluster()
}

func dev8Binary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	bin, err := kubernetes.TestDev8Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// serverAddr is an address on the cluster's host side that pods reach,
// with a port free now: a server restarted on it keeps the URL its
// workspaces' supervisors dial.
func serverAddr(t *testing.T, c *k8stest.Cluster) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(c.HostIP, "0"))
	if err != nil {
		t.Fatalf("listen on the cluster's host address: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServer runs `dev8 server --runtime kubernetes` on addr with its
// workspaces in namespace ns, as an operator outside the cluster would:
// the test images (loaded into the node, so never pulled), and the
// NetworkPolicy opened to this host's address.
func startServer(t *testing.T, ctx context.Context, c *k8stest.Cluster, ns, dataDir, addr string) *serverproc.Process {
	t.Helper()
	return serverproc.Start(t, ctx, dev8Binary(t), serverproc.Options{
		Args: []string{
			"--runtime", "kubernetes", "--addr", addr, "--data-dir", dataDir, "--resync-interval", "200ms",
			"--kubeconfig", c.Kubeconfig, "--kubernetes-namespace", ns,
			"--kubernetes-supervisor-image", kubernetes.TestSupervisorImage,
			"--kubernetes-image-pull-policy", "Never",
			"--kubernetes-server-egress", c.HostIP,
			// The node has 2 CPUs, which whole-CPU requests would
			// hand to the tests' workspaces one or two at a time.
			"--kubernetes-cpu-request-ratio", "0.1",
		},
		Dir: dataDir,
	})
}

// The kinds of object a workspace may leave behind, as objectWatch names
// them.
const (
	kindPod     = "pod"
	kindClaim   = "pvc"
	kindSecret  = "secret"
	kindService = "service"
)

// objectWatch keeps the pods, claims, secrets and services of a namespace
// in memory (informers), and wakes waiters at every change.
type objectWatch struct {
	informers map[string]cache.SharedIndexInformer

	mu      sync.Mutex
	changed chan struct{}
}

func watchObjects(t *testing.T, c *k8stest.Cluster, ns string) *objectWatch {
	t.Helper()
	factory := informers.NewSharedInformerFactoryWithOptions(c.Client, 0, informers.WithNamespace(ns))
	w := &objectWatch{changed: make(chan struct{}), informers: map[string]cache.SharedIndexInformer{
		kindPod:     factory.Core().V1().Pods().Informer(),
		kindClaim:   factory.Core().V1().PersistentVolumeClaims().Informer(),
		kindSecret:  factory.Core().V1().Secrets().Informer(),
		kindService: factory.Core().V1().Services().Informer(),
	}}
	for _, inf := range w.informers {
		wake := func(any) { w.wake() }
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: wake, DeleteFunc: wake, UpdateFunc: func(_, n any) { w.wake() },
		}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	factory.Start(stop)
	t.Cleanup(func() {
		close(stop)
		factory.Shutdown()
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for kind, inf := range w.informers {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			t.Fatalf("the %ss of namespace %s could not be listed and watched", kind, ns)
		}
	}
	return w
}

func (w *objectWatch) wake() {
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// names are the sorted names of every object by kind, those being deleted
// (a claim waiting for its pod to go) included: they are not gone yet.
func (w *objectWatch) names() map[string][]string {
	out := map[string][]string{}
	for kind, inf := range w.informers {
		for _, key := range inf.GetStore().ListKeys() {
			_, name, _ := strings.Cut(key, "/")
			out[kind] = append(out[kind], name)
		}
		slices.Sort(out[kind])
	}
	return out
}

// await waits until check, given names(), returns nil at a change (or
// now), and fails t with check's last error when ctx ends first.
func (w *objectWatch) await(ctx context.Context, t *testing.T, what string, check func(map[string][]string) error) {
	t.Helper()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		err := check(w.names())
		if err == nil {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%s: %v (%v)", what, err, ctx.Err())
		}
	}
}

// exactly is a check that the namespace holds the objects want by kind,
// and nothing else of those kinds.
func exactly(want map[string][]string) func(map[string][]string) error {
	return func(got map[string][]string) error {
		for _, kind := range []string{kindPod, kindClaim, kindSecret, kindService} {
			w := slices.Clone(want[kind])
			slices.Sort(w)
			if !slices.Equal(got[kind], w) {
				return fmt.Errorf("%ss %v, want %v (all: %v)", kind, got[kind], w, got)
			}
		}
		return nil
	}
}
