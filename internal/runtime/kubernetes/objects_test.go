package kubernetes

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"dev8.dev/dev8/internal/runtime"
)

// fakeRuntime is a Runtime on client-go's fake clientset: for what the
// objects look like, not for how the cluster runs them (TestContract).
func fakeRuntime(t *testing.T, edit ...func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{Client: fake.NewClientset(), Namespace: "ws", SupervisorImage: "dev8/supervisor:1", DefaultImage: "dev8/base", Installation: "inst"}
	for _, e := range edit {
		e(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// TestPodIsRestricted: the workspace pod meets Pod Security "restricted"
// (non-root, no privilege escalation, no capabilities, seccomp), mounts no
// service account token, and carries the size, the labels, the owner and
// the placement the configuration gives.
func TestPodIsRestricted(t *testing.T) {
	t.Parallel()
	rt := fakeRuntime(t, func(c *Config) {
		c.SupervisorFrom = SupervisorFromImage
		c.NodeSelector = map[string]string{"pool": "gpu"}
		c.Tolerations = []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		c.RuntimeClass = "gvisor"
		c.ImagePullSecrets = []string{"regcred"}
		c.Resources = map[string]string{"nvidia.com/gpu": "1"}
	})
	spec := runtime.Spec{EnvironmentID: "env_abc123", UserID: "usr_1", Image: "dev8/nodejs", CPUCores: 2, MemoryGB: 4, StorageGB: 10,
		Env: map[string]string{"GITHUB_TOKEN": "s3cret", "EDITOR": "vim"}, AgentURL: "https://dev8.example.com", AgentToken: "dev8a_tok"}
	sec, err := rt.instanceSecret(spec)
	if err != nil {
		t.Fatal(err)
	}
	sec.UID = "secret-uid"
	p, err := rt.pod(spec, sec, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "dev8-env-abc123" || p.Namespace != "ws" || p.Labels[runtime.LabelEnvironment] != "env_abc123" ||
		p.Labels[runtime.LabelInstallation] != "inst" || p.Labels[runtime.LabelUser] != "usr_1" || p.Labels[runtime.LabelManaged] != "true" {
		t.Errorf("name/labels: %s/%s %v", p.Namespace, p.Name, p.Labels)
	}
	if len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "Secret" || p.OwnerReferences[0].UID != "secret-uid" {
		t.Errorf("owner: %+v", p.OwnerReferences)
	}
	ps := p.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever || *ps.AutomountServiceAccountToken || *ps.EnableServiceLinks {
		t.Errorf("restart %s, service account token %v, service links %v", ps.RestartPolicy, *ps.AutomountServiceAccountToken, *ps.EnableServiceLinks)
	}
	if sc := ps.SecurityContext; !*sc.RunAsNonRoot || *sc.RunAsUser != 1000 || *sc.FSGroup != 1000 || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context: %+v", sc)
	}
	if ps.NodeSelector["pool"] != "gpu" || len(ps.Tolerations) != 1 || *ps.RuntimeClassName != "gvisor" || ps.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("placement: %v %v %v %v", ps.NodeSelector, ps.Tolerations, ps.RuntimeClassName, ps.ImagePullSecrets)
	}
	if len(ps.InitContainers) != 2 || ps.InitContainers[0].Image != "dev8/supervisor:1" || strings.Join(ps.InitContainers[0].Command, " ") != strings.Join(SupervisorInstall, " ") ||
		ps.InitContainers[1].Image != "dev8/nodejs" || strings.Join(ps.InitContainers[1].Command, " ") != SupervisorPath+" seed-home /home/dev8 "+HomeVolumeDir {
		t.Errorf("init containers: %+v", ps.InitContainers)
	}
	// A start on a home seeded before copies the supervisor only.
	again, err := rt.pod(spec, sec, false)
	if err != nil {
		t.Fatal(err)
	}
	if ic := again.Spec.InitContainers; len(ic) != 1 || ic[0].Name != containerSupervisor {
		t.Errorf("init containers of a start on a seeded home: %+v", ic)
	}
	for _, c := range append(append([]corev1.Container{}, ps.InitContainers...), ps.Containers...) {
		sc := c.SecurityContext
		if sc == nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
			len(sc.Capabilities.Add) != 0 || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || sc.Privileged != nil {
			t.Errorf("container %s security context: %+v", c.Name, sc)
		}
	}
	ws := ps.Containers[0]
	if ws.Image != "dev8/nodejs" || strings.Join(ws.Command, " ") != SupervisorPath+" supervisor" {
		t.Errorf("workspace container: image %s command %v", ws.Image, ws.Command)
	}
	want := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), "nvidia.com/gpu": resource.MustParse("1")}
	for name, q := range want {
		if l, r := ws.Resources.Limits[name], ws.Resources.Requests[name]; l.Cmp(q) != 0 || r.Cmp(q) != 0 {
			t.Errorf("%s: limit %s request %s, want %s", name, l.String(), r.String(), q.String())
		}
	}
	// Secrets stay in the Secret: the pod names them only.
	js, _ := json.Marshal(p)
	for _, secret := range []string{"s3cret", "dev8a_tok"} {
		if strings.Contains(string(js), secret) {
			t.Errorf("the pod's spec holds %q", secret)
		}
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range ws.Env {
		env[e.Name] = e
	}
	if e := env["GITHUB_TOKEN"]; e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "dev8-env-abc123" || string(sec.Data[e.ValueFrom.SecretKeyRef.Key]) != "s3cret" {
		t.Errorf("GITHUB_TOKEN: %+v", e)
	}
	if env["DEV8_AGENT_URL"].Value != "https://dev8.example.com" || env["DEV8_AGENT_TOKEN"].Value != "" || env["DEV8_AGENT_TOKEN_FILE"].Value != AgentTokenDir+"/"+secretToken {
		t.Errorf("supervisor variables: %+v %+v %+v", env["DEV8_AGENT_URL"], env["DEV8_AGENT_TOKEN"], env["DEV8_AGENT_TOKEN_FILE"])
	}
	if string(sec.Data[secretToken]) != "dev8a_tok" || strings.Contains(string(sec.Data[secretSpec]), "dev8a_tok") {
		t.Errorf("token: %q; spec.json %s", sec.Data[secretToken], sec.Data[secretSpec])
	}
	back, err := specOf(sec)
	if err != nil || back.AgentToken != "dev8a_tok" || back.Env["GITHUB_TOKEN"] != "s3cret" || back.StorageGB != 10 {
		t.Errorf("specOf: %+v, %v", back, err)
	}
	pvc := rt.claim(spec, sec)
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse("10Gi")) != 0 || pvc.Spec.StorageClassName != nil {
		t.Errorf("claim: %s, class %v", q.String(), pvc.Spec.StorageClassName)
	}
}

// TestNames: ids become DNS names; what cannot is refused before anything
// is made.
func TestNames(t *testing.T) {
	t.Parallel()
	if got := ObjectName("env_k3xq7w2m9p4r8t6y1z0a"); got != "dev8-env-k3xq7w2m9p4r8t6y1z0a" {
		t.Errorf("ObjectName = %s", got)
	}
	for _, id := range []string{"", "Env_Upper", "env.dot", "-lead", "trail-", strings.Repeat("a", 59), "env/x"} {
		if checkID(id) == nil {
			t.Errorf("checkID(%q) accepted", id)
		}
	}
	rt := fakeRuntime(t)
	if _, err := rt.Create(t.Context(), runtime.Spec{EnvironmentID: "Bad_ID"}); !runtime.IsPermanent(err) {
		t.Errorf("Create with a bad id: %v, want a permanent error", err)
	}
	if list, err := rt.cli.CoreV1().Secrets("ws").List(t.Context(), metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("a refused Create made %v (%v)", list, err)
	}
	if _, err := New(Config{Client: fake.NewClientset(), SupervisorFrom: SupervisorFromImage}); err == nil {
		t.Error("New without a supervisor image to copy it from: no error")
	}
	if _, err := New(Config{Client: fake.NewClientset(), SupervisorImage: "s", Resources: map[string]string{"nvidia.com/gpu": "lots"}}); err == nil {
		t.Error("New with a bad resource quantity: no error")
	}
}

// TestNetworkPolicy: workspaces take no connection in; they go out to the
// internet but not to private or link-local ranges, except to the server
// and DNS.
func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	rt := fakeRuntime(t, func(c *Config) {
		c.ServerEgress = []string{"10.200.0.2", "10.96.0.0/16"}
		c.ServerPodLabels = map[string]string{"app.kubernetes.io/name": "dev8"}
		c.ServerNamespace = "dev8"
	})
	if err := rt.ensureNetworkPolicy(t.Context()); err != nil {
		t.Fatal(err)
	}
	np, err := rt.cli.NetworkingV1().NetworkPolicies("ws").Get(t.Context(), rt.NetworkPolicyName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := np.Spec
	if s.PodSelector.MatchLabels[runtime.LabelInstallation] != "inst" || len(s.Ingress) != 0 || len(s.PolicyTypes) != 2 {
		t.Errorf("selector %v, ingress %v, types %v", s.PodSelector, s.Ingress, s.PolicyTypes)
	}
	if len(s.Egress) != 3 {
		t.Fatalf("egress rules: %+v", s.Egress)
	}
	internet := s.Egress[0].To[0].IPBlock
	if internet.CIDR != "0.0.0.0/0" || !contains(internet.Except, "169.254.0.0/16") || !contains(internet.Except, "10.0.0.0/8") {
		t.Errorf("internet rule: %+v", internet)
	}
	server := s.Egress[1].To
	if server[0].IPBlock.CIDR != "10.200.0.2/32" || server[1].IPBlock.CIDR != "10.96.0.0/16" || server[2].PodSelector.MatchLabels["app.kubernetes.io/name"] != "dev8" {
		t.Errorf("server rule: %+v", server)
	}
	if ns := server[2].NamespaceSelector; ns == nil || len(ns.MatchLabels) != 1 || ns.MatchLabels[corev1.LabelMetadataName] != "dev8" {
		t.Errorf("the server's pods are looked for in other namespaces than its own: %+v", ns)
	}
	if len(s.Egress[2].Ports) != 4 || s.Egress[2].Ports[0].Port.IntValue() != 53 {
		t.Errorf("DNS rule: %+v", s.Egress[2])
	}
	// The DNS pods' ports named as CoreDNS's manifests name them, when
	// they listen on another port than 53.
	var named []string
	for _, p := range s.Egress[2].Ports {
		if p.Port.Type == intstr.String {
			named = append(named, string(*p.Protocol)+"/"+p.Port.StrVal)
		}
	}
	if !slices.Equal(named, []string{"UDP/dns", "TCP/dns-tcp"}) {
		t.Errorf("the DNS rule's named ports: %v, want UDP/dns and TCP/dns-tcp", named)
	}
	bad := fakeRuntime(t, func(c *Config) { c.DenyEgress = []string{"not-a-cidr"} })
	if err := bad.ensureNetworkPolicy(t.Context()); !runtime.IsPermanent(err) {
		t.Errorf("a bad range: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPodReasons: what an ended or stuck pod's status becomes in words.
func TestPodReasons(t *testing.T) {
	t.Parallel()
	terminated := func(name string, code int32, reason string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{
			Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}},
		}}}}
	}
	waiting := func(name, reason, msg string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: name, Image: "img", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
		}}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{terminated(containerWorkspace, 137, "OOMKilled"), "out of memory"},
		{terminated(containerWorkspace, 2, "Error"), "exited with code 2"},
		{&corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."}}, "evicted by Kubernetes: The node was low"},
	} {
		if got := exitReason(tc.pod); !strings.Contains(got, tc.want) {
			t.Errorf("exitReason = %q, want ~%q", got, tc.want)
		}
	}
	for _, tc := range []struct {
		pod       *corev1.Pod
		want      string
		permanent bool
	}{
		{waiting(containerWorkspace, "ErrImagePull", "rpc error: manifest unknown"), "the workspace image dev8/x cannot be pulled", true},
		{waiting(containerWorkspace, "ImagePullBackOff", "Back-off pulling image: i/o timeout"), "cannot be pulled", false},
		{waiting(containerWorkspace, "ErrImageNeverPull", "image not present with pull policy of Never"), "cannot be pulled", true},
		{waiting(containerSupervisor, "InvalidImageName", "bad"), "the supervisor image img", true},
		{waiting(containerWorkspace, "CreateContainerConfigError", `secret "x" not found`), "cannot be created", true},
		{terminated(containerWorkspace, 1, "Error"), "ended as it started", false},
	} {
		err := startFailure(tc.pod, "dev8/x")
		if err == nil || !strings.Contains(err.Error(), tc.want) || runtime.IsPermanent(err) != tc.permanent {
			t.Errorf("startFailure = %v (permanent %v), want ~%q (permanent %v)", err, runtime.IsPermanent(err), tc.want, tc.permanent)
		}
	}
	if err := startFailure(waiting(containerWorkspace, "ContainerCreating", ""), "x"); err != nil {
		t.Errorf("a container being created: %v", err)
	}
	// The kubelet records the container's end before the pod's phase: an
	// Inspect between the two tells why it ended all the same.
	rt := fakeRuntime(t)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: ObjectName("e1"), Labels: rt.labels("e1", "u1"),
		Annotations: map[string]string{AnnotationRunning: "true"}}}
	exitedRunning := terminated(containerWorkspace, 2, "Error")
	exitedRunning.Status.Phase = corev1.PodRunning
	if inst := rt.instance(sec, exitedRunning); inst.State != runtime.StateStopped || !strings.Contains(inst.ExitReason, "exited with code 2") {
		t.Errorf("a pod whose workspace exited, phase still Running: %+v", inst)
	}
	pending := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
	}}}}
	if msg, ok := unschedulable(pending); !ok || !strings.Contains(msg, "Insufficient nvidia.com/gpu") {
		t.Errorf("unschedulable = %q, %v", msg, ok)
	}
}

// TestPingNamesMissingRights: a server whose account lacks rights in the
// namespace is told which, at start.
func TestPingNamesMissingRights(t *testing.T) {
	t.Parallel()
	cli := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ws"}})
	cli.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		attr := r.Spec.ResourceAttributes
		// The account may do anything there but delete pods and update
		// secrets, and nothing elsewhere.
		r.Status.Allowed = attr.Namespace == "ws" && !(attr.Resource == "pods" && attr.Verb == "delete") && !(attr.Resource == "secrets" && attr.Verb == "update")
		return true, r, nil
	})
	rt, err := New(Config{Client: cli, Namespace: "ws", SupervisorImage: "s", Installation: "inst"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	err = rt.Ping(t.Context())
	if err == nil || !strings.Contains(err.Error(), "may not delete pods, update secrets in namespace ws") || !strings.Contains(err.Error(), "rbac.yaml") {
		t.Fatalf("Ping: %v", err)
	}
	other, err := New(Config{Client: cli, Namespace: "elsewhere", SupervisorImage: "s", Installation: "inst"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	if err := other.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "delete pods") || !strings.Contains(err.Error(), "get pods") {
		t.Fatalf("Ping of a namespace with no rights: %v", err)
	}
}

// TestPingNamespace: a namespace that is not there is a clear error at
// start; an account that may not read namespaces (a Role confined to
// its namespace cannot grant that) passes once its NetworkPolicy is in
// place.
func TestPingNamespace(t *testing.T) {
	t.Parallel()
	allowAll := func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		r.Status.Allowed = true
		return true, r, nil
	}
	cli := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ws"}})
	cli.PrependReactor("create", "selfsubjectaccessreviews", allowAll)
	missing, err := New(Config{Client: cli, Namespace: "nope", SupervisorImage: "s", Installation: "inst"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { missing.Close() })
	if err := missing.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "namespace nope does not exist") {
		t.Fatalf("Ping of a missing namespace: %v", err)
	}

	confined := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ws"}})
	confined.PrependReactor("create", "selfsubjectaccessreviews", allowAll)
	confined.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("namespaces"), "ws", errors.New("cluster-scoped"))
	})
	rt, err := New(Config{Client: confined, Namespace: "ws", SupervisorImage: "s", Installation: "inst"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	if err := rt.Ping(t.Context()); err != nil {
		t.Fatalf("Ping with a Role confined to the namespace: %v", err)
	}
	if _, err := confined.NetworkingV1().NetworkPolicies("ws").Get(t.Context(), rt.NetworkPolicyName(), metav1.GetOptions{}); err != nil {
		t.Fatalf("the NetworkPolicy after Ping: %v", err)
	}
}

// TestContainerImage: the server's own image is its container's, by name
// when its pod has several (a sidecar).
func TestContainerImage(t *testing.T) {
	t.Parallel()
	one := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "reg/dev8:1"}}}}
	if img, err := containerImage(one, "dev8"); err != nil || img != "reg/dev8:1" {
		t.Errorf("one container: %q %v", img, err)
	}
	two := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "proxy", Image: "envoy"}, {Name: "dev8", Image: "reg/dev8:2"}}}}
	if img, err := containerImage(two, "dev8"); err != nil || img != "reg/dev8:2" {
		t.Errorf("two containers: %q %v", img, err)
	}
	if _, err := containerImage(two, "other"); err == nil {
		t.Error("no container of that name: no error")
	}
}

// TestCPURequestRatio: a workspace may request a share of its CPUs while
// its limit stays its size; memory is requested whole.
func TestCPURequestRatio(t *testing.T) {
	t.Parallel()
	spec := runtime.Spec{EnvironmentID: "env_abc123", UserID: "usr_1", CPUCores: 2, MemoryGB: 4, StorageGB: 10}
	for _, c := range []struct {
		ratio float64
		want  string
	}{{0, "2"}, {1, "2"}, {0.25, "500m"}, {0.01, "20m"}} {
		rt := fakeRuntime(t, func(cfg *Config) { cfg.CPURequestRatio = c.ratio })
		pod, err := rt.pod(spec, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dev8-env_abc123"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		var ws corev1.Container
		for _, ct := range pod.Spec.Containers {
			if ct.Name == containerWorkspace {
				ws = ct
			}
		}
		req, lim := ws.Resources.Requests[corev1.ResourceCPU], ws.Resources.Limits[corev1.ResourceCPU]
		if req.Cmp(resource.MustParse(c.want)) != 0 || lim.Cmp(resource.MustParse("2")) != 0 {
			t.Errorf("ratio %v: CPU request %s limit %s, want %s and 2", c.ratio, req.String(), lim.String(), c.want)
		}
		mreq, mlim := ws.Resources.Requests[corev1.ResourceMemory], ws.Resources.Limits[corev1.ResourceMemory]
		if mreq.Cmp(mlim) != 0 || mlim.Cmp(resource.MustParse("4Gi")) != 0 {
			t.Errorf("ratio %v: memory request %s limit %s", c.ratio, mreq.String(), mlim.String())
		}
	}
	for _, bad := range []float64{-1, 0.001, 1.5} {
		if _, err := New(Config{Client: fake.NewClientset(), SupervisorImage: "s", CPURequestRatio: bad}); err == nil {
			t.Errorf("ratio %v: no error", bad)
		}
	}
}

// TestFractionalCPU: half a vCPU is a limit of 500m (shared by
// --kubernetes-cpu-request-ratio like a whole one); a size finer than a
// millicore is refused by Create before it makes anything.
func TestFractionalCPU(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cpu, ratio     float64
		limit, request string
	}{{0.5, 1, "500m", "500m"}, {0.5, 0.5, "500m", "250m"}, {1.25, 1, "1250m", "1250m"}, {0.25, 0.01, "250m", "3m"}} {
		rt := fakeRuntime(t, func(cfg *Config) { cfg.CPURequestRatio = c.ratio })
		spec := runtime.Spec{EnvironmentID: "env_abc123", UserID: "usr_1", CPUCores: c.cpu, MemoryGB: 1, StorageGB: 1}
		pod, err := rt.pod(spec, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dev8-env_abc123"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range pod.Spec.Containers {
			if ct.Name != containerWorkspace {
				continue
			}
			req, lim := ct.Resources.Requests[corev1.ResourceCPU], ct.Resources.Limits[corev1.ResourceCPU]
			if lim.Cmp(resource.MustParse(c.limit)) != 0 || req.Cmp(resource.MustParse(c.request)) != 0 {
				t.Errorf("%v vCPU, ratio %v: limit %s request %s, want %s and %s", c.cpu, c.ratio, lim.String(), req.String(), c.limit, c.request)
			}
		}
	}
	client := fake.NewClientset()
	rt := fakeRuntime(t, func(cfg *Config) { cfg.Client = client })
	_, err := rt.Create(t.Context(), runtime.Spec{EnvironmentID: "env_fine", UserID: "usr_1", Image: "img", AgentURL: "https://dev8.example.com", CPUCores: 0.0005, MemoryGB: 1, StorageGB: 1})
	if err == nil || !strings.Contains(err.Error(), "whole millicores") || !runtime.IsPermanent(err) {
		t.Errorf("create with 0.0005 vCPU: %v; want a permanent error about millicores", err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("the refused create did %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}
