package docker

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/volume"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
)

func TestContainerConfig(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, func(c *Config) { c.PidsLimit = 256 })
	spec := testSpec()
	spec.UserID = "user-42"
	spec.CPUCores, spec.MemoryGB = 2, 1
	spec.Env = map[string]string{"FOO": "bar", "DEV8_ENVIRONMENT_ID": "spoofed"}
	inst := create(t, ctx, rt, spec)
	if _, err := rt.Start(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	ci, err := cli.ContainerInspect(ctx, ObjectName(inst.EnvironmentID))
	if err != nil {
		t.Fatal(err)
	}
	h := ci.HostConfig
	if h.NanoCPUs != 2e9 || h.Memory != 1<<30 || h.MemorySwap != 1<<30 || h.PidsLimit == nil || *h.PidsLimit != 256 {
		t.Errorf("limits: NanoCPUs %d Memory %d MemorySwap %d PidsLimit %v; want 2e9, 1 GiB, 1 GiB, 256", h.NanoCPUs, h.Memory, h.MemorySwap, h.PidsLimit)
	}
	if h.Privileged || !slices.Contains(h.SecurityOpt, "no-new-privileges") {
		t.Errorf("Privileged %v SecurityOpt %q; want false and no-new-privileges", h.Privileged, h.SecurityOpt)
	}
	if h.RestartPolicy.Name != container.RestartPolicyDisabled || h.NetworkMode != IsolatedNetwork {
		t.Errorf("RestartPolicy %q NetworkMode %q; want no, %s", h.RestartPolicy.Name, h.NetworkMode, IsolatedNetwork)
	}
	if !slices.Equal(h.CapDrop, []string{"ALL"}) || !slices.Equal(h.CapAdd, []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID"}) {
		t.Errorf("CapDrop %q CapAdd %q; want ALL and only what becoming the workspace user needs", h.CapDrop, h.CapAdd)
	}
	mounts := map[string]string{}
	for _, m := range ci.Mounts {
		if m.Type != "volume" {
			t.Errorf("mount %+v is not a volume: no host paths go into a workspace", m)
		}
		mounts[m.Destination] = m.Name
	}
	if len(mounts) != 2 || mounts[WorkspaceDir] != ObjectName(inst.EnvironmentID) || mounts[DefaultHomeDir] != homeVolume(inst.EnvironmentID) {
		t.Errorf("mounts %+v; want volume %s at %s and %s at %s", ci.Mounts,
			ObjectName(inst.EnvironmentID), WorkspaceDir, homeVolume(inst.EnvironmentID), DefaultHomeDir)
	}
	wantLabels := map[string]string{
		runtime.LabelManaged: "true", runtime.LabelEnvironment: inst.EnvironmentID, runtime.LabelUser: "user-42",
	}
	for k, v := range wantLabels {
		if ci.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, ci.Config.Labels[k], v)
		}
	}
	if !slices.Equal(ci.Config.Entrypoint, []string{SupervisorPath, "supervisor"}) {
		t.Errorf("entrypoint %q", ci.Config.Entrypoint)
	}
	env := ci.Config.Env
	for _, kv := range []string{
		"FOO=bar", "DEV8_ENVIRONMENT_ID=" + inst.EnvironmentID, "DEV8_WORKSPACE_DIR=/workspace",
		"DEV8_SUPERVISOR_ADDR=", "DEV8_AGENT_URL=http://127.0.0.1:9",
		// The token is this start's: a file, not the container's environment.
		"DEV8_AGENT_TOKEN=", "DEV8_AGENT_TOKEN_FILE=" + AgentTokenPath,
	} {
		if !slices.Contains(env, kv) {
			t.Errorf("env lacks %s: %q", kv, env)
		}
	}
	if slices.Contains(env, "DEV8_ENVIRONMENT_ID=spoofed") {
		t.Errorf("Spec.Env overrode the runtime's DEV8_ENVIRONMENT_ID: %q", env)
	}
	// The supervisor (the real dev8 binary) is the entry process and runs.
	waitLogs(t, ctx, ci.ID, "supervisor started")
	if got := strings.TrimSpace(execOut(t, ctx, ci.ID, "/bin/busybox", "cat", "/proc/1/cmdline")); !strings.HasPrefix(got, SupervisorPath) {
		t.Errorf("pid 1 is %q, want the supervisor", got)
	}
	vi, err := cli.VolumeInspect(ctx, ObjectName(inst.EnvironmentID))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range wantLabels {
		if vi.Labels[k] != v {
			t.Errorf("volume label %s = %q, want %q", k, vi.Labels[k], v)
		}
	}
}

func TestNonRootUser(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, func(c *Config) { c.User = "1000:1000" })
	inst := create(t, ctx, rt, testSpec())
	inst, err := rt.Start(ctx, inst.EnvironmentID)
	if err != nil {
		t.Fatal(err)
	}
	waitLogs(t, ctx, inst.Ref, "supervisor started")
	status := execOut(t, ctx, inst.Ref, "/bin/busybox", "cat", "/proc/1/status")
	if !strings.Contains(status, "\nUid:\t1000\t1000\t1000\t1000") {
		t.Errorf("supervisor does not run as uid 1000:\n%s", status)
	}
	// The volume took the image's ownership of /workspace: the user can write.
	execOut(t, ctx, inst.Ref, "/bin/busybox", "touch", "/workspace/mine")
	if got := execOut(t, ctx, inst.Ref, "/bin/busybox", "stat", "-c", "%u", "/workspace/mine"); strings.TrimSpace(got) != "1000" {
		t.Errorf("file written by the workspace user is owned by %q", got)
	}
}

// TestWorkspaceUser: with an image that has a dev8 user, the supervisor
// starts as root, hands both volumes to uid 1000 (the image has no
// /workspace and a root-owned home), and drops to it for good; an image
// without that user runs its workspace as uid 1000 too, never as root.
func TestWorkspaceUser(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	spec := testSpec()
	spec.Image = userImage
	inst := create(t, ctx, rt, spec)
	ci, err := cli.ContainerInspect(ctx, inst.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Config.User != "0:0" || !slices.Contains(ci.Config.Env, "DEV8_WORKSPACE_USER=dev8") {
		t.Errorf("container user %q, env %q; want 0:0 and DEV8_WORKSPACE_USER=dev8", ci.Config.User, ci.Config.Env)
	}
	if inst, err = rt.Start(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	waitLogs(t, ctx, inst.Ref, "supervisor started")
	logs := waitLogs(t, ctx, inst.Ref, "running as the workspace user")
	if !strings.Contains(logs, "handed_over=\"[/workspace /home/dev8]\"") {
		t.Errorf("volumes not handed over:\n%s", logs)
	}
	status := execOut(t, ctx, inst.Ref, "/bin/busybox", "cat", "/proc/1/status")
	for _, want := range []string{"\nUid:\t1000\t1000\t1000\t1000\n", "\nGid:\t1000\t1000\t1000\t1000\n", "\nGroups:\t100 1000", "\nCapEff:\t0000000000000000\n", "\nNoNewPrivs:\t1\n"} {
		if !strings.Contains(status, want) {
			t.Errorf("supervisor status lacks %q:\n%s", want, status)
		}
	}
	for _, p := range []string{"/workspace", "/home/dev8", "/home/dev8/.profile"} {
		if got := strings.TrimSpace(execOut(t, ctx, inst.Ref, "/bin/busybox", "stat", "-c", "%u:%g", p)); got != "1000:1000" {
			t.Errorf("%s is owned by %s, want 1000:1000", p, got)
		}
	}
	// A second start finds them handed over already and says nothing.
	if err := rt.Stop(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if inst, err = rt.Start(ctx, inst.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	waitLogs(t, ctx, inst.Ref, "handed_over=[]")

	// No dev8 user in the image: never root, but uid and gid 1000 all the
	// same, with no capability left and the volumes theirs.
	plain := create(t, ctx, rt, testSpec())
	if plain, err = rt.Start(ctx, plain.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	waitLogs(t, ctx, plain.Ref, "running as the workspace user")
	status = execOut(t, ctx, plain.Ref, "/bin/busybox", "cat", "/proc/1/status")
	for _, want := range []string{"\nUid:\t1000\t1000\t1000\t1000\n", "\nGid:\t1000\t1000\t1000\t1000\n", "\nCapEff:\t0000000000000000\n", "\nCapPrm:\t0000000000000000\n", "\nNoNewPrivs:\t1\n"} {
		if !strings.Contains(status, want) {
			t.Errorf("image without a dev8 user: supervisor status lacks %q:\n%s", want, status)
		}
	}
	if got := strings.TrimSpace(execOut(t, ctx, plain.Ref, "/bin/busybox", "stat", "-c", "%u:%g", "/workspace")); got != "1000:1000" {
		t.Errorf("image without a dev8 user: /workspace is owned by %s, want 1000:1000", got)
	}
}

// TestImageRefs: a template's image name runs the reference the operator
// pointed it at; pointing it elsewhere recreates a stopped container.
func TestImageRefs(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, func(c *Config) { c.ImageRefs = map[string]string{"dev8/base": testImage} })
	spec := testSpec()
	spec.Image = "dev8/base"
	inst := create(t, ctx, rt, spec)
	spec.EnvironmentID = inst.EnvironmentID
	ci, err := cli.ContainerInspect(ctx, inst.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Config.Image != testImage {
		t.Fatalf("container runs %q, want %q", ci.Config.Image, testImage)
	}
	rt2 := newRuntime(t, func(c *Config) { c.ImageRefs = map[string]string{"dev8/base": userImage} })
	inst2, err := rt2.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if ci, err = cli.ContainerInspect(ctx, inst2.Ref); err != nil || ci.Config.Image != userImage || inst2.Ref == inst.Ref {
		t.Fatalf("after re-pointing: container %s runs %q (%v), want a new one on %q", inst2.Ref, ci.Config.Image, err, userImage)
	}
}

func TestCreateRecreatesOnSpecChange(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	spec := testSpec()
	first := create(t, ctx, rt, spec)
	spec.EnvironmentID = first.EnvironmentID
	first, err := rt.Start(ctx, spec.EnvironmentID)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(ctx, rt, first, "keep.txt", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	// A running instance keeps running as it is.
	spec.AgentURL = "http://127.0.0.1:10"
	again, err := rt.Create(ctx, spec)
	if err != nil || again.Ref != first.Ref || again.State != runtime.StateRunning {
		t.Fatalf("Create of a running instance with a new spec = %+v, %v; want it unchanged", again, err)
	}
	if err := rt.Stop(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	// A stopped one takes the new spec for its next start.
	again, err = rt.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.Ref == first.Ref {
		t.Fatal("Create with a new spec kept the old container")
	}
	started, err := rt.Start(ctx, spec.EnvironmentID)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cli.ContainerInspect(ctx, started.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ci.Config.Env, "DEV8_AGENT_URL=http://127.0.0.1:10") {
		t.Errorf("recreated container's env: %q", ci.Config.Env)
	}
	if got, err := readFile(ctx, rt, started, "keep.txt"); err != nil || string(got) != "kept" {
		t.Errorf("workspace after recreate: %q, %v", got, err)
	}
	name := ObjectName(spec.EnvironmentID)
	expectObjects(t, ctx, spec.EnvironmentID, []string{name + ":running"}, []string{name, name + "-home"})
}

// TestInterruptedCreate: a server killed between creating the volume and the
// container leaves a volume only. The environment is not found; a retried
// Create completes it over the same volume, and Delete alone also clears it.
func TestInterruptedCreate(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	for _, retry := range []bool{true, false} {
		spec := testSpec()
		spec.EnvironmentID = newID(t)
		id, name := spec.EnvironmentID, ObjectName(spec.EnvironmentID)
		cleanupObjects(t, id)
		if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: map[string]string{
			runtime.LabelManaged: "true", runtime.LabelEnvironment: id,
		}}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
			t.Fatalf("Inspect with only a volume: %v; want ErrNotFound", err)
		}
		if retry {
			if _, err := rt.Create(ctx, spec); err != nil {
				t.Fatalf("Create over a leftover volume: %v", err)
			}
			expectObjects(t, ctx, id, []string{name + ":created"}, []string{name, name + "-home"})
			if _, err := rt.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if err := rt.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		expectObjects(t, ctx, id, nil, nil)
	}
}

// TestHomePersists: the home directory (settings, history, extensions, the
// SSH host key) outlives the container, and starts with what the image put
// there.
func TestHomePersists(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	spec := testSpec()
	spec.EnvironmentID = newID(t)
	cleanupObjects(t, spec.EnvironmentID)
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	name := ObjectName(spec.EnvironmentID)
	if out := execOut(t, ctx, name, "sh", "-c", `echo "$HOME"; ls -a "$HOME"`); !strings.HasPrefix(out, DefaultHomeDir+"\n") || !strings.Contains(out, "seeded-by-image") {
		t.Fatalf("home = %q; want %s seeded from the image", out, DefaultHomeDir)
	}
	execOut(t, ctx, name, "sh", "-c", `echo history > "$HOME/.ash_history"`)
	// The supervisor keeps its SSH host key in the home volume.
	key := func() string {
		return execOut(t, ctx, name, "sh", "-c", `while [ ! -s "$HOME/.dev8/ssh_host_ed25519_key.pub" ]; do sleep 0.05; done; cat "$HOME/.dev8/ssh_host_ed25519_key.pub"`)
	}
	before := key()

	// A changed spec recreates the container over the same volumes.
	if err := rt.Stop(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	spec.Env = map[string]string{"CHANGED": "1"}
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	if out := execOut(t, ctx, name, "sh", "-c", `cat "$HOME/.ash_history"`); out != "history\n" {
		t.Fatalf("home after the container was recreated: %q", out)
	}
	if after := key(); after != before {
		t.Fatal("the SSH host key changed with the container")
	}
	if err := rt.Delete(ctx, spec.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	expectObjects(t, ctx, spec.EnvironmentID, nil, nil)
}

// TestNewVolumeReportedAfterFailedCreate: a Create that made the workspace
// volume and then failed still gets the volume reported as new by the
// Create that finally succeeds (the lifecycle retries Creates).
func TestNewVolumeReportedAfterFailedCreate(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, nil)
	ctx := wait.Context(t, 2*time.Minute)
	spec := testSpec()
	spec.EnvironmentID = newID(t)
	cleanupObjects(t, spec.EnvironmentID)
	// The engine refuses a container whose mount target is not an
	// absolute path, after the volumes are made.
	home := rt.cfg.HomeDir
	rt.cfg.HomeDir = "not/absolute"
	_, err := rt.Create(ctx, spec)
	rt.cfg.HomeDir = home
	if err == nil {
		t.Fatal("Create with a relative mount target succeeded")
	}
	if _, err := cli.VolumeInspect(ctx, ObjectName(spec.EnvironmentID)); err != nil {
		t.Fatalf("the failed Create made no volume (the test no longer tests anything): %v", err)
	}
	inst, err := rt.Create(ctx, spec)
	if err != nil || !inst.StorageCreated {
		t.Fatalf("Create after a failed one = %+v, %v; want StorageCreated", inst, err)
	}
	if inst, err = rt.Create(ctx, spec); err != nil || inst.StorageCreated {
		t.Fatalf("third Create = %+v, %v; want StorageCreated false", inst, err)
	}
}

// TestHalfCPU: half a vCPU is a limit of 0.5 CPU on the engine
// (NanoCPUs 5e8), not 0 (no limit) as an int cast would make it.
func TestHalfCPU(t *testing.T) {
	t.Parallel()
	needDocker(t)
	ctx := wait.Context(t, 2*time.Minute)
	rt := newRuntime(t, nil)
	spec := testSpec()
	spec.CPUCores = 0.5
	inst := create(t, ctx, rt, spec)
	ci, err := cli.ContainerInspect(ctx, inst.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if ci.HostConfig.NanoCPUs != 5e8 {
		t.Fatalf("NanoCPUs = %d, want 500000000", ci.HostConfig.NanoCPUs)
	}
}

// TestSizeBiggerThanTheMachine: a size with more vCPUs than the engine has
// (a template's default of 4 on a 2-core machine) is not refused by the
// engine: the workspace gets every CPU there is, and starts.
func TestSizeBiggerThanTheMachine(t *testing.T) {
	t.Parallel()
	needDocker(t)
	ctx := wait.Context(t, 2*time.Minute)
	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, nil)
	spec := testSpec()
	spec.CPUCores = float64(info.NCPU + 2)
	inst := create(t, ctx, rt, spec)
	ci, err := cli.ContainerInspect(ctx, inst.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if ci.HostConfig.NanoCPUs != int64(info.NCPU)*1e9 {
		t.Fatalf("NanoCPUs = %d, want the engine's %d CPUs", ci.HostConfig.NanoCPUs, info.NCPU)
	}
	if _, err := rt.Start(ctx, inst.EnvironmentID); err != nil {
		t.Fatalf("start: %v", err)
	}
}
