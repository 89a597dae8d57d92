package kubernetes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"

	"dev8.dev/dev8/internal/runtime"
)

// TestPodFetchesSupervisor: with SupervisorFromServer (the default) the
// pod has no init container; its workspace container runs Bootstrap with
// the supervisor's emptyDir writable, and a first start on a claim seeds
// the home by a container of the workspace image beside it, telling
// Bootstrap on a FIFO in the pod's run directory. Every container stays
// restricted.
func TestPodFetchesSupervisor(t *testing.T) {
	t.Parallel()
	rt := fakeRuntime(t, func(c *Config) { c.SupervisorImage = "" })
	if rt.cfg.SupervisorFrom != SupervisorFromServer {
		t.Fatalf("default: supervisor from %q", rt.cfg.SupervisorFrom)
	}
	spec := runtime.Spec{EnvironmentID: "env_abc123", UserID: "usr_1", Image: "dev8/nodejs", CPUCores: 2, MemoryGB: 4, StorageGB: 10,
		AgentURL: "https://dev8.example.com", AgentToken: "dev8a_tok"}
	sec, err := rt.instanceSecret(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []bool{true, false} {
		p, err := rt.pod(spec, sec, seed)
		if err != nil {
			t.Fatal(err)
		}
		ps := p.Spec
		if len(ps.InitContainers) != 0 {
			t.Errorf("seed %v: init containers %+v", seed, ps.InitContainers)
		}
		wantFIFO := ""
		if seed {
			wantFIFO = seededFIFO
		}
		ws := ps.Containers[0]
		if ws.Name != containerWorkspace || ws.Image != "dev8/nodejs" ||
			strings.Join(ws.Command, "\x00") != strings.Join([]string{"/bin/sh", "-c", Bootstrap, "dev8-bootstrap", SupervisorPath, wantFIFO}, "\x00") {
			t.Errorf("seed %v: workspace container %s %s %q", seed, ws.Name, ws.Image, ws.Command)
		}
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range ws.VolumeMounts {
			mounts[m.MountPath] = m
		}
		if m := mounts[SupervisorDir]; m.Name != volumeSupervisor || m.ReadOnly {
			t.Errorf("seed %v: the supervisor's directory: %+v", seed, m)
		}
		if m := mounts[AgentTokenDir]; !m.ReadOnly || mounts[DefaultHomeDir].SubPath != "home" || mounts[RunDir].Name != volumeRun {
			t.Errorf("seed %v: mounts %+v", seed, mounts)
		}
		if !seed {
			if len(ps.Containers) != 1 {
				t.Errorf("a start on a seeded home: containers %+v", ps.Containers)
			}
			continue
		}
		if len(ps.Containers) != 2 {
			t.Fatalf("a first start: containers %+v", ps.Containers)
		}
		home := ps.Containers[1]
		if home.Name != containerHome || home.Image != "dev8/nodejs" ||
			strings.Join(home.Command, "\x00") != strings.Join([]string{"/bin/sh", "-c", SeedHome, "dev8-seed-home", DefaultHomeDir, HomeVolumeDir, seededFIFO}, "\x00") {
			t.Errorf("home container %s %s %q", home.Name, home.Image, home.Command)
		}
		if len(home.VolumeMounts) != 2 || home.VolumeMounts[0].MountPath != HomeVolumeDir || home.VolumeMounts[0].SubPath != "home" || home.VolumeMounts[1].MountPath != RunDir {
			t.Errorf("home container mounts %+v", home.VolumeMounts)
		}
		// The workspace's size is the workspace container's alone: the
		// home's container adds nothing to the pod's requests.
		if _, ok := home.Resources.Limits[corev1.ResourceCPU]; ok || home.Resources.Limits.Memory().String() != "256Mi" ||
			!home.Resources.Requests.Cpu().IsZero() || !home.Resources.Requests.Memory().IsZero() {
			t.Errorf("home container resources %+v", home.Resources)
		}
		for _, c := range ps.Containers {
			sc := c.SecurityContext
			if sc == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != 1000 || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
				sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || sc.Privileged != nil {
				t.Errorf("container %s security context: %+v", c.Name, sc)
			}
		}
	}
	// Without a server URL there is nothing to fetch from.
	spec.AgentURL = ""
	if _, err := rt.Create(t.Context(), spec); err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "no server URL") {
		t.Errorf("create without an agent URL: %v", err)
	}
}

// TestSupervisorFromConfig: the image mode needs an image; an unknown
// mode is refused.
func TestSupervisorFromConfig(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Client: fake.NewClientset(), SupervisorFrom: SupervisorFromImage}); err == nil || !strings.Contains(err.Error(), "--kubernetes-supervisor-image") {
		t.Errorf("image mode without an image: %v", err)
	}
	if _, err := New(Config{Client: fake.NewClientset(), SupervisorFrom: "registry"}); err == nil || !strings.Contains(err.Error(), `"registry"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

// TestBootstrapReasons: a workspace whose Bootstrap failed says why in
// words, and so does one whose image has no shell to run it; the same
// exit codes of a supervisor started otherwise are the supervisor's.
func TestBootstrapReasons(t *testing.T) {
	t.Parallel()
	rt := fakeRuntime(t, func(c *Config) { c.SupervisorImage = "" })
	spec := runtime.Spec{EnvironmentID: "e1", UserID: "u1", Image: "img", AgentURL: "http://dev8:3000"}
	sec, err := rt.instanceSecret(spec)
	if err != nil {
		t.Fatal(err)
	}
	fetching, err := rt.pod(spec, sec, true)
	if err != nil {
		t.Fatal(err)
	}
	withStatus := func(p *corev1.Pod, st ...corev1.ContainerStatus) *corev1.Pod {
		p = p.DeepCopy()
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: st}
		return p
	}
	term := func(name string, code int32, reason, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, Image: "img", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg}}}
	}
	runningSt := corev1.ContainerStatus{Name: containerWorkspace, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{withStatus(fetching, term(containerWorkspace, exitNoDownloader, "Error", "the workspace image has neither curl nor wget to fetch the supervisor\n")),
			"the workspace image has neither curl nor wget to fetch the supervisor from the server: use --kubernetes-supervisor-from image"},
		{withStatus(fetching, term(containerWorkspace, exitDownload, "Error", "dev8: a warning\ncould not download the supervisor from http://dev8:3000/api/v1/environments/e1/supervisor: wget: server returned error: HTTP/1.1 401 Unauthorized\n")),
			"could not download the supervisor from http://dev8:3000/api/v1/environments/e1/supervisor: wget: server returned error: HTTP/1.1 401 Unauthorized"},
		{withStatus(fetching, term(containerWorkspace, exitVerify, "Error", "the supervisor downloaded from u does not match its checksum (sha256 1, the server sent 2)")),
			"does not match its checksum"},
		{withStatus(fetching, term(containerWorkspace, 128, "StartError", `failed to create containerd task: exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown`)),
			"the workspace image has no /bin/sh to fetch the supervisor with"},
		// The home container failed: the workspace waits in vain.
		{withStatus(fetching, runningSt, term(containerHome, 1, "Error", "cannot make the FIFO")),
			"the image's home could not be copied into the home volume"},
		// Not Bootstrap's: the supervisor's own exit.
		{withStatus(fetching, term(containerWorkspace, 2, "Error", "")), "the workspace's supervisor exited with code 2"},
	} {
		if got := exitReason(tc.pod); got != tc.want && !strings.Contains(got, tc.want) {
			t.Errorf("exitReason = %q, want ~%q", got, tc.want)
		}
		if running(tc.pod) || startFailure(tc.pod, "img") == nil {
			t.Errorf("%q: running %v, start failure %v", tc.want, running(tc.pod), startFailure(tc.pod, "img"))
		}
	}
	// Exit code 81 of a supervisor the image mode started is its own.
	imageMode := fetching.DeepCopy()
	imageMode.Spec.Containers = []corev1.Container{{Name: containerWorkspace, Command: []string{SupervisorPath, "supervisor"}}}
	if got := exitReason(withStatus(imageMode, term(containerWorkspace, exitNoDownloader, "Error", ""))); got != "the workspace's supervisor exited with code 81" {
		t.Errorf("exit 81 in image mode: %q", got)
	}
	// A home container done, the workspace running: running.
	ok := withStatus(fetching, runningSt, term(containerHome, 0, "Completed", ""))
	if !running(ok) || startFailure(ok, "img") != nil {
		t.Errorf("seeded and running: running %v, %v", running(ok), startFailure(ok, "img"))
	}
}
