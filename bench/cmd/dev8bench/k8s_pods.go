package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// podTimeline is when this bench first saw each step of one pod (one UID)
// through its informer. The API's own timestamps (conditions, container
// states, events) have whole seconds only, too coarse for sub-second
// figures; a watch's arrival time is within milliseconds of the change.
type podTimeline struct {
	name  string
	added time.Time
	// scheduled: the pod has a node.
	scheduled time.Time
	// initDone: when each init container was first seen terminated.
	initDone map[string]time.Time
	// started: when each container was first seen running.
	started map[string]time.Time
	// running: phase Running with every container running (what Dev8's
	// runtime waits for).
	running time.Time
	gone    time.Time
	// failure, if the pod cannot start (a container waiting with an error
	// reason, or the pod failed).
	failure string
}

// podEvents records the timelines of every pod of a namespace.
type podEvents struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	pods   map[types.UID]*podTimeline
	// changed is closed, and replaced, at every change.
	changed chan struct{}
}

func watchPods(ctx context.Context, cli kubernetes.Interface, ns string) (*podEvents, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &podEvents{cancel: cancel, pods: map[types.UID]*podTimeline{}, changed: make(chan struct{})}
	factory := informers.NewSharedInformerFactoryWithOptions(cli, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.saw(obj, false) },
		UpdateFunc: func(_, obj any) { w.saw(obj, false) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			w.saw(obj, true)
		},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("pod informer of %s did not sync", ns)
	}
	return w, nil
}

func (w *podEvents) stop() { w.cancel() }

func (w *podEvents) saw(obj any, deleted bool) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.pods[p.UID]
	if t == nil {
		t = &podTimeline{name: p.Name, added: now, initDone: map[string]time.Time{}, started: map[string]time.Time{}}
		w.pods[p.UID] = t
	}
	if deleted && t.gone.IsZero() {
		t.gone = now
	}
	if p.Spec.NodeName != "" && t.scheduled.IsZero() {
		t.scheduled = now
	}
	for _, s := range p.Status.InitContainerStatuses {
		if _, seen := t.initDone[s.Name]; !seen && s.State.Terminated != nil {
			t.initDone[s.Name] = now
		}
	}
	all := len(p.Status.ContainerStatuses) == len(p.Spec.Containers)
	for _, s := range p.Status.ContainerStatuses {
		if _, seen := t.started[s.Name]; !seen && s.State.Running != nil {
			t.started[s.Name] = now
		}
		all = all && s.State.Running != nil
	}
	if all && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && t.running.IsZero() {
		t.running = now
	}
	if t.failure == "" {
		t.failure = podFailure(p)
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// podFailure says why p cannot start, or "".
func podFailure(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("pod failed: %s %s", p.Status.Reason, p.Status.Message)
	}
	for _, s := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if w := s.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
			return fmt.Sprintf("container %s: %s: %s", s.Name, w.Reason, w.Message)
		}
		if t := s.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("container %s exited %d: %s %s", s.Name, t.ExitCode, t.Reason, t.Message)
		}
	}
	return ""
}

// await waits until done holds for the timeline of uid (a copy is passed),
// or, with failFast, the pod cannot start.
func (w *podEvents) await(ctx context.Context, uid types.UID, failFast bool, done func(t podTimeline) bool) (podTimeline, error) {
	for {
		w.mu.Lock()
		var t podTimeline
		if p := w.pods[uid]; p != nil {
			t = *p
		}
		ch := w.changed
		w.mu.Unlock()
		if done(t) {
			return t, nil
		}
		if failFast && t.failure != "" {
			return t, fmt.Errorf("pod %s: %s", t.name, t.failure)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return t, fmt.Errorf("pod %s (%s): %w", t.name, uid, ctx.Err())
		}
	}
}

// timelines are the timelines of the pods named name, oldest first.
func (w *podEvents) timelines(name string) []podTimeline {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []podTimeline
	for _, t := range w.pods {
		if t.name == name {
			out = append(out, *t)
		}
	}
	slices.SortFunc(out, func(a, b podTimeline) int { return a.added.Compare(b.added) })
	return out
}

// floorPod is the bare pod of the floor: the workspace image kept running by
// sleep, with a workspace pod's security context and the resources of size
// (requests = limits), and claim mounted at /workspace when it is not empty.
func floorPod(ns, name, image, claim string, cpu, memGB int) *corev1.Pod {
	uid := int64(1000)
	res := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(cpu), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(int64(memGB)<<30, resource.BinarySI),
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"dev8.bench": "floor"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(0)),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: &uid, RunAsGroup: &uid, FSGroup: &uid,
				FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "workspace",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"sleep", "infinity"},
				Resources:       corev1.ResourceRequirements{Requests: res.DeepCopy(), Limits: res},
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot: ptr.To(true), RunAsUser: &uid, RunAsGroup: &uid,
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
			}},
		},
	}
	if claim != "" {
		p.Spec.Volumes = []corev1.Volume{{Name: "storage", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "storage", MountPath: "/workspace"}}
	}
	return p
}

// floorClaim is a claim like a workspace's (the default storage class).
func floorClaim(ns, name string, gb int) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"dev8.bench": "floor"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: *resource.NewQuantity(int64(gb)<<30, resource.BinarySI),
			}},
		},
	}
}

// applyToRunning creates pod and waits until it runs: the time from the
// create call to the informer's news of it running, with its timeline.
func (w *podEvents) applyToRunning(ctx context.Context, cli kubernetes.Interface, pod *corev1.Pod) (time.Time, podTimeline, types.UID, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	p, err := cli.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return t0, podTimeline{}, "", fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
	t, err := w.await(ctx, p.UID, true, func(t podTimeline) bool { return !t.running.IsZero() })
	return t0, t, p.UID, err
}

// deletePod deletes a pod at once and waits until it is gone.
func (w *podEvents) deletePod(ctx context.Context, cli kubernetes.Interface, ns, name string, uid types.UID) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := cli.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	_, err = w.await(ctx, uid, false, func(t podTimeline) bool { return !t.gone.IsZero() })
	return err
}
