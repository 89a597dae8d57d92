package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"dev8.dev/dev8/internal/runtime"
)

// podWatch keeps the installation's pods in memory (a client-go informer)
// and wakes whoever waits for one of them to change.
type podWatch struct {
	ns       string
	informer cache.SharedIndexInformer
	factory  informers.SharedInformerFactory
	cancel   context.CancelFunc

	mu      sync.Mutex
	changed chan struct{} // closed, and replaced, at every change
}

// startPodWatch starts the informer of the pods selector selects in ns;
// onChange is told of every change (old nil: added; new nil: deleted).
func startPodWatch(cli kubernetes.Interface, ns, selector string, log *slog.Logger, onChange func(old, new *corev1.Pod)) *podWatch {
	factory := informers.NewSharedInformerFactoryWithOptions(cli, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	w := &podWatch{ns: ns, factory: factory, informer: factory.Core().V1().Pods().Informer(), changed: make(chan struct{})}
	_, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				onChange(nil, p)
			}
			w.wake()
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Pod)
			n, ok2 := newObj.(*corev1.Pod)
			if ok1 && ok2 {
				onChange(o, n)
			}
			w.wake()
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				onChange(p, nil)
			}
			w.wake()
		},
	})
	if err != nil {
		log.Error("pod informer: add handler", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_ = w.informer.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		if ctx.Err() == nil {
			log.Warn("watching the workspaces' pods", "err", err)
		}
	})
	w.cancel = cancel
	factory.Start(ctx.Done())
	return w
}

// stop ends the informer and waits for its goroutines.
func (w *podWatch) stop() {
	w.cancel()
	w.factory.Shutdown()
}

func (w *podWatch) wake() {
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

func (w *podWatch) signal() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// errNotSynced: the informer never listed the pods (RBAC, the cluster
// unreachable) before the wait's end.
var errNotSynced = errors.New("the workspaces' pods could not be listed and watched (is the cluster reachable, and may this server list and watch pods in the namespace?)")

// get is the pod named name as the informer has it.
func (w *podWatch) get(name string) (*corev1.Pod, bool) {
	obj, ok, err := w.informer.GetStore().GetByKey(w.ns + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	p, ok := obj.(*corev1.Pod)
	return p, ok
}

// list is every pod the informer has.
func (w *podWatch) list() []*corev1.Pod {
	var out []*corev1.Pod
	for _, obj := range w.informer.GetStore().List() {
		if p, ok := obj.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// waitFor calls check with the pod named name (nil when there is none) now
// and at each change until it says done, and returns its error, or ctx's.
func (w *podWatch) waitFor(ctx context.Context, name string, check func(*corev1.Pod) (done bool, err error)) error {
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", errNotSynced, context.Cause(ctx))
		}
		return errNotSynced
	}
	for {
		ch := w.signal()
		p, _ := w.get(name)
		if done, err := check(p); done {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// NotifyExits implements runtime.ExitNotifier: a pod that ends on its own
// (its workspace exited, was OOM-killed or evicted) or disappears without a
// Stop (kubectl delete, a drained or lost node) is sent at once.
func (r *Runtime) NotifyExits(ch chan<- string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notify = append(r.notify, ch)
}

// podChanged is the informer's news: an exit to tell of, or none.
func (r *Runtime) podChanged(old, new *corev1.Pod) {
	var id string
	switch {
	case new != nil && (ended(new) || exited(new)) && (old == nil || !(ended(old) || exited(old))):
		id = new.Labels[runtime.LabelEnvironment]
	case new == nil && old != nil:
		id = old.Labels[runtime.LabelEnvironment]
	default:
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == "" || r.stopped[id] {
		return
	}
	for _, ch := range r.notify {
		select {
		case ch <- id:
		default:
			r.log.Warn("exit notification dropped: receiver busy", "environment", id)
		}
	}
}

// ended: the pod's compute is over (restartPolicy Never: for good).
func ended(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}
