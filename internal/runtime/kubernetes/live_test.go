package kubernetes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"dev8.dev/dev8/internal/runtime"
)

// TestLiveBeforeTheKubelet: a pod the kubelet has not yet reported
// running runs when the instance's Secret records that its supervisor
// dialed in (a new Runtime, e.g. a restarted server, sees it so too), and
// only that pod, and only while nothing says it is ending.
func TestLiveBeforeTheKubelet(t *testing.T) {
	t.Parallel()
	rt, err := New(Config{Client: fake.NewClientset(), Namespace: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	pending := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: ObjectName("e1"), UID: "pod-2", Labels: map[string]string{runtime.LabelEnvironment: "e1"}},
			Status: corev1.PodStatus{Phase: corev1.PodPending}}
	}
	secret := func(dialedIn string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: ObjectName("e1"), Labels: map[string]string{runtime.LabelEnvironment: "e1"},
			Annotations: map[string]string{AnnotationRunning: "true"}}}
		if dialedIn != "" {
			s.Annotations[AnnotationDialedIn] = dialedIn
		}
		return s
	}
	deleting, failed, exitedPod := pending(), pending(), pending()
	deleting.DeletionTimestamp = &metav1.Time{}
	failed.Status.Phase = corev1.PodFailed
	exitedPod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerWorkspace, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}}}}
	for _, tc := range []struct {
		name string
		sec  *corev1.Secret
		pod  *corev1.Pod
		want bool
	}{
		{"not reported, no dial-in recorded", secret(""), pending(), false},
		{"not reported, its supervisor dialed in", secret("pod-2"), pending(), true},
		{"an earlier pod's dial-in", secret("pod-1"), pending(), false},
		{"dialed in, being deleted", secret("pod-2"), deleting, false},
		{"dialed in, failed", secret("pod-2"), failed, false},
		{"dialed in, its workspace exited", secret("pod-2"), exitedPod, false},
	} {
		if got := live(tc.sec, tc.pod); got != tc.want {
			t.Errorf("%s: live = %v, want %v", tc.name, got, tc.want)
		}
		inst := rt.instance(tc.sec, tc.pod)
		if (inst.State == runtime.StateRunning) != tc.want {
			t.Errorf("%s: instance %+v", tc.name, inst)
		}
		if tc.want && inst.StartedAt != tc.pod.CreationTimestamp.Time {
			t.Errorf("%s: started at %v, want the pod's creation", tc.name, inst.StartedAt)
		}
	}
}
