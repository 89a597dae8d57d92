package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime"
)

// TestGPUWorkspaceOnTheCluster: a workspace whose instance type asks for
// nvidia.com/gpu: 1 (and a node label) becomes, on the real API server, a
// pod that requests and is limited to one GPU and selects that label; the
// test node has no GPU, so the scheduler marks it Unschedulable for want
// of nvidia.com/gpu. Start tells its caller so at once, in words
// ("no node has a free nvidia.com/gpu"), and gives up after
// ScheduleTimeout with that reason, permanently, leaving no pod behind.
func TestGPUWorkspaceOnTheCluster(t *testing.T) {
	needCluster(t)
	t.Parallel()
	const scheduleTimeout = 15 * time.Second
	rt := newTestRuntime(t, func(c *Config) { c.ScheduleTimeout = scheduleTimeout })
	spec := created(t, rt, func(s *runtime.Spec) {
		s.Resources = map[string]string{"nvidia.com/gpu": "1"}
		// A label the test node has: the selector is on the pod, and the
		// GPU alone is what no node can give.
		s.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	})
	id, name := spec.EnvironmentID, ObjectName(spec.EnvironmentID)

	reports := make(chan string, 16)
	ctx, cancel := context.WithTimeout(t.Context(), scheduleTimeout+2*time.Minute)
	defer cancel()
	started := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := rt.Start(runtime.WithReporter(ctx, func(s string) {
			select {
			case reports <- s:
			default:
			}
		}), id)
		done <- err
	}()

	var report string
	select {
	case report = <-reports:
	case err := <-done:
		t.Fatalf("start ended before saying what it waits on: %v", err)
	case <-ctx.Done():
		t.Fatal("start reported nothing while the pod was unschedulable")
	}
	if !strings.Contains(report, "no node has a free nvidia.com/gpu") {
		t.Errorf("report while waiting: %q", report)
	}

	// The pod as the API server has it while Start waits.
	pod, err := cli.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the pod while unschedulable: %v", err)
	}
	ws := pod.Spec.Containers[0]
	one := resource.MustParse("1")
	if l, r := ws.Resources.Limits["nvidia.com/gpu"], ws.Resources.Requests["nvidia.com/gpu"]; l.Cmp(one) != 0 || r.Cmp(one) != 0 {
		t.Errorf("nvidia.com/gpu: limit %s request %s, want 1", l.String(), r.String())
	}
	if pod.Spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("node selector: %v", pod.Spec.NodeSelector)
	}
	if pod.Spec.NodeName != "" || pod.Status.Phase != corev1.PodPending {
		t.Errorf("the pod was scheduled on %q (%s): the test node has no GPU", pod.Spec.NodeName, pod.Status.Phase)
	}
	msg, ok := unschedulable(pod)
	if !ok || !strings.Contains(msg, "Insufficient nvidia.com/gpu") {
		t.Errorf("PodScheduled condition: %q (unschedulable %v), want Insufficient nvidia.com/gpu", msg, ok)
	}

	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("start did not give up on a pod no node can take")
	}
	took := time.Since(started)
	if err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "no node has a free nvidia.com/gpu") {
		t.Fatalf("start: %v (permanent %v), want a permanent error naming the GPU", err, runtime.IsPermanent(err))
	}
	// Not before the timeout (nodes may come), and promptly after it.
	if took < scheduleTimeout || took > scheduleTimeout+time.Minute {
		t.Errorf("start gave up after %s, want about %s", took, scheduleTimeout)
	}
	if _, err := cli.CoreV1().Pods(testNamespace).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the pod of the failed start: %v, want it removed", err)
	}
	// Dev8 removed that pod itself: no exit, no "deleted behind Dev8's
	// back", also for a Runtime that did not see it happen.
	for _, r := range []*Runtime{rt, newTestRuntime(t)} {
		if inst, err := r.Inspect(ctx, id); err != nil || inst.State != runtime.StateStopped || inst.ExitReason != "" {
			t.Errorf("inspect after the failed start: %+v, %v", inst, err)
		}
	}
}
