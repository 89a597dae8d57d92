package kubernetes

import (
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime"
)

// TestSpecPlacementOnThePod: a spec asking for nvidia.com/gpu: 1 on nodes
// labelled pool=gpu (its instance type's) gets a pod that requests and is
// limited to that GPU and selects those nodes, merged with the server's
// --kubernetes-resources and --kubernetes-node-selector (the spec winning
// for a name both give), through Create's Secret as Start reads it back.
// A spec whose placement Kubernetes would refuse is refused by Create,
// permanently, before anything is made.
func TestSpecPlacementOnThePod(t *testing.T) {
	t.Parallel()
	rt := fakeRuntime(t, func(c *Config) {
		c.Resources = map[string]string{"nvidia.com/gpu": "2", "example.com/fpga": "1"}
		c.NodeSelector = map[string]string{"pool": "general", "zone": "a"}
	})
	ctx := t.Context()
	spec := runtime.Spec{EnvironmentID: "env_gpu1", UserID: "usr_1", Image: "dev8/base", CPUCores: 2, MemoryGB: 8, StorageGB: 5,
		AgentURL: "http://dev8.test:3000", Resources: map[string]string{"nvidia.com/gpu": "1"}, NodeSelector: map[string]string{"pool": "gpu"}}
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	sec, err := rt.cli.CoreV1().Secrets("ws").Get(ctx, ObjectName(spec.EnvironmentID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := specOf(sec)
	if err != nil || !maps.Equal(recorded.Resources, spec.Resources) || !maps.Equal(recorded.NodeSelector, spec.NodeSelector) {
		t.Fatalf("the Secret records %+v, %v", recorded, err)
	}
	p, err := rt.pod(recorded, sec, false)
	if err != nil {
		t.Fatal(err)
	}
	ws := p.Spec.Containers[0]
	want := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"),
		"nvidia.com/gpu": resource.MustParse("1"), "example.com/fpga": resource.MustParse("1"),
	}
	if len(ws.Resources.Limits) != len(want) || len(ws.Resources.Requests) != len(want) {
		t.Errorf("resources: limits %v requests %v, want %v", ws.Resources.Limits, ws.Resources.Requests, want)
	}
	for name, q := range want {
		if l, r := ws.Resources.Limits[name], ws.Resources.Requests[name]; l.Cmp(q) != 0 || r.Cmp(q) != 0 {
			t.Errorf("%s: limit %s request %s, want %s", name, l.String(), r.String(), q.String())
		}
	}
	if sel := p.Spec.NodeSelector; !maps.Equal(sel, map[string]string{"pool": "gpu", "zone": "a"}) {
		t.Errorf("node selector %v, want pool=gpu (the spec's) and zone=a (the server's)", sel)
	}
	// The server's configuration is untouched by a spec's placement.
	if rt.cfg.NodeSelector["pool"] != "general" || rt.cfg.Resources["nvidia.com/gpu"] != "2" {
		t.Errorf("config changed: %v %v", rt.cfg.NodeSelector, rt.cfg.Resources)
	}
	// A spec without placement gets the server's.
	plain := spec
	plain.Resources, plain.NodeSelector = nil, nil
	if p, err := rt.pod(plain, sec, false); err != nil || p.Spec.NodeSelector["pool"] != "general" || p.Spec.Containers[0].Resources.Limits.Name("nvidia.com/gpu", resource.DecimalSI).Value() != 2 {
		t.Errorf("plain spec: %v %v, %v", p.Spec.NodeSelector, p.Spec.Containers[0].Resources.Limits, err)
	}

	for i, bad := range []runtime.Spec{
		{Resources: map[string]string{"nvidia.com/gpu": "half"}},
		{Resources: map[string]string{"gpu": "1"}},
		{NodeSelector: map[string]string{"pool": "not a label"}},
	} {
		bad.EnvironmentID, bad.UserID, bad.Image = "env_bad"+string(rune('a'+i)), "usr_1", "dev8/base"
		if _, err := rt.Create(ctx, bad); !runtime.IsPermanent(err) {
			t.Errorf("Create(%+v): %v, want a permanent error", bad, err)
		}
		if _, err := rt.cli.CoreV1().Secrets("ws").Get(ctx, ObjectName(bad.EnvironmentID), metav1.GetOptions{}); err == nil {
			t.Errorf("a refused Create made the Secret of %s", bad.EnvironmentID)
		}
	}
	if !runtime.PlacesOnNodes(rt) {
		t.Error("the kubernetes runtime does not say it places workspaces on nodes")
	}
}

// TestSchedulingProblem: the scheduler's reasons in users' words.
func TestSchedulingProblem(t *testing.T) {
	t.Parallel()
	withSelector := &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: map[string]string{"pool": "gpu"}}}
	for _, tc := range []struct {
		msg  string
		want []string
	}{
		{"0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
			[]string{"no node has a free nvidia.com/gpu (0/1 nodes are available"}},
		{"0/3 nodes are available: 2 Insufficient nvidia.com/gpu, 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector.",
			[]string{"no node has a free nvidia.com/gpu; no node has a free memory; no node has the labels pool=gpu"}},
		{"0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}.", []string{"taints the workspace does not tolerate"}},
		{"0/1 nodes are available: 1 node(s) were unschedulable.", []string{"0/1 nodes are available: 1 node(s) were unschedulable."}},
	} {
		got := schedulingProblem(withSelector, tc.msg)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("schedulingProblem(%q) = %q, want ~%q", tc.msg, got, w)
			}
		}
	}
}
