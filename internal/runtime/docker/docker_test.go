package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/runtimetest"
)

func volumeListOptions(f filters.Args) volume.ListOptions { return volume.ListOptions{Filters: f} }

func newRuntime(t *testing.T, mod func(*Config)) *Runtime {
	t.Helper()
	needDocker(t)
	cfg := Config{SupervisorBinary: dev8Bin, StopTimeout: 5 * time.Second, Installation: testInstallation}
	if mod != nil {
		mod(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func testSpec() runtime.Spec {
	return runtime.Spec{
		Name: "contract", Template: "base", Image: testImage,
		CPUCores: 1, MemoryGB: 2, StorageGB: 1,
		// Nothing listens here: the supervisor keeps retrying its tunnel,
		// which is what a workspace does while the server is away.
		AgentURL: "http://127.0.0.1:9", AgentToken: "test-token",
	}
}

// writeFile and readFile reach /workspace through the engine's archive API,
// as `docker cp` does: no shell or tools needed in the image.
func writeFile(ctx context.Context, _ runtime.Runtime, inst runtime.Instance, name string, data []byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return cli.CopyToContainer(ctx, inst.Ref, inst.WorkspaceDir, &buf, container.CopyToContainerOptions{})
}

func readFile(ctx context.Context, _ runtime.Runtime, inst runtime.Instance, name string) ([]byte, error) {
	rc, _, err := cli.CopyFromContainer(ctx, inst.Ref, path.Join(inst.WorkspaceDir, name))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		return nil, err
	}
	return io.ReadAll(tr)
}

// loseVolume removes a stopped environment's workspace volume. The engine
// refuses while the container that mounts it exists, stopped or not (a
// volume in use), so the container goes first: what an operator's `docker
// rm` + `docker volume rm`, or a new host, leaves.
func loseVolume(ctx context.Context, _ runtime.Runtime, inst runtime.Instance) error {
	name := ObjectName(inst.EnvironmentID)
	if err := cli.VolumeRemove(ctx, name, true); err == nil {
		return errors.New("the engine removed a volume a container still mounts")
	}
	if err := cli.ContainerRemove(ctx, name, container.RemoveOptions{}); err != nil {
		return err
	}
	return cli.VolumeRemove(ctx, name, false)
}

func TestContract(t *testing.T) {
	needDocker(t)
	runtimetest.RunWithOptions(t, func(t *testing.T) runtime.Runtime {
		return newRuntime(t, nil)
	}, runtimetest.Options{
		Timeout:     2 * time.Minute,
		Spec:        testSpec,
		WriteFile:   writeFile,
		ReadFile:    readFile,
		LoseStorage: loseVolume,
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newID(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return idPrefix + hex.EncodeToString(b[:])
}

// create creates an environment and removes its container and volume when
// the test ends, directly through the engine whatever the runtime did.
func create(t *testing.T, ctx context.Context, rt *Runtime, spec runtime.Spec) runtime.Instance {
	t.Helper()
	if spec.EnvironmentID == "" {
		spec.EnvironmentID = newID(t)
	}
	cleanupObjects(t, spec.EnvironmentID)
	inst, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return inst
}

func cleanupObjects(t *testing.T, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cli.ContainerRemove(ctx, ObjectName(id), container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			t.Errorf("cleanup: %v", err)
		}
		for _, v := range []string{ObjectName(id), homeVolume(id)} {
			if err := cli.VolumeRemove(ctx, v, true); err != nil && !isNotFound(err) {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such")
}

// objects lists the names of the containers (with their state) and volumes
// the engine has for environment id, as `docker ps -a` and `docker volume ls`
// filtered by its label would.
func objects(t *testing.T, ctx context.Context, id string) (containers, volumes []string) {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", runtime.LabelEnvironment+"="+id))
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		containers = append(containers, strings.TrimPrefix(c.Names[0], "/")+":"+c.State)
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Volumes {
		volumes = append(volumes, v.Name)
	}
	slices.Sort(containers)
	slices.Sort(volumes)
	return containers, volumes
}

func expectObjects(t *testing.T, ctx context.Context, id string, wantContainers, wantVolumes []string) {
	t.Helper()
	cs, vs := objects(t, ctx, id)
	if !slices.Equal(cs, wantContainers) || !slices.Equal(vs, wantVolumes) {
		t.Fatalf("engine has containers %q and volumes %q for %s; want %q and %q", cs, vs, id, wantContainers, wantVolumes)
	}
}

// execOut runs argv in the container and returns its stdout.
func execOut(t *testing.T, ctx context.Context, containerID string, argv ...string) string {
	t.Helper()
	ex, err := cli.ContainerExecCreate(ctx, containerID, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	hr, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	defer hr.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, hr.Reader); err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	ei, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	if ei.ExitCode != 0 {
		t.Fatalf("exec %q: exit code %d, stderr %q", argv, ei.ExitCode, stderr.String())
	}
	return stdout.String()
}

// waitLogs waits until the container's output contains want.
func waitLogs(t *testing.T, ctx context.Context, containerID, want string) string {
	t.Helper()
	var out string
	for {
		rc, err := cli.ContainerLogs(ctx, containerID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = stdcopy.StdCopy(&buf, &buf, rc)
		rc.Close()
		out = buf.String()
		if strings.Contains(out, want) {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container output never contained %q; got:\n%s", want, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestContainerConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
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
	if h.RestartPolicy.Name != container.RestartPolicyDisabled || h.NetworkMode != "host" {
		t.Errorf("RestartPolicy %q NetworkMode %q; want no, host", h.RestartPolicy.Name, h.NetworkMode)
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
		"DEV8_SUPERVISOR_ADDR=", "DEV8_AGENT_URL=http://127.0.0.1:9", "DEV8_AGENT_TOKEN=test-token",
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
	ctx := testCtx(t)
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
// without that user runs its workspace as root.
func TestWorkspaceUser(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
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

	// No dev8 user in the image: root, as before.
	plain := create(t, ctx, rt, testSpec())
	if plain, err = rt.Start(ctx, plain.EnvironmentID); err != nil {
		t.Fatal(err)
	}
	waitLogs(t, ctx, plain.Ref, "supervisor started")
	if status := execOut(t, ctx, plain.Ref, "/bin/busybox", "cat", "/proc/1/status"); !strings.Contains(status, "\nUid:\t0\t0\t0\t0\n") {
		t.Errorf("image without a dev8 user: supervisor is not root:\n%s", status)
	}
}

// TestImageRefs: a template's image name runs the reference the operator
// pointed it at; pointing it elsewhere recreates a stopped container.
func TestImageRefs(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
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

// TestStopRightAfterStart: a Stop that comes while the supervisor (PID 1)
// is still starting, before it handles SIGTERM, still ends it gracefully
// (exit code 0, no reason), not by SIGKILL at the timeout.
func TestStopRightAfterStart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, nil)
	inst := create(t, ctx, rt, testSpec())
	for range 3 {
		if _, err := rt.Start(ctx, inst.EnvironmentID); err != nil {
			t.Fatal(err)
		}
		// Killed at the timeout would read exit code 137, a SIGTERM
		// before the supervisor handles it exit code 2: both are reasons.
		if err := rt.Stop(ctx, inst.EnvironmentID); err != nil {
			t.Fatal(err)
		}
		got, err := newRuntime(t, nil).Inspect(ctx, inst.EnvironmentID)
		if err != nil || got.State != runtime.StateStopped || got.ExitReason != "" {
			t.Fatalf("after Stop: %+v %v; want stopped with no reason", got, err)
		}
	}
}

func TestStopKeepsVolumeDeleteRemovesAll(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, nil)
	inst := create(t, ctx, rt, testSpec())
	id, name := inst.EnvironmentID, ObjectName(inst.EnvironmentID)
	expectObjects(t, ctx, id, []string{name + ":created"}, []string{name, name + "-home"})
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	expectObjects(t, ctx, id, []string{name + ":running"}, []string{name, name + "-home"})
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	expectObjects(t, ctx, id, []string{name + ":exited"}, []string{name, name + "-home"})
	got, err := rt.Inspect(ctx, id)
	if err != nil || got.State != runtime.StateStopped || got.ExitReason != "" {
		t.Fatalf("Inspect after Stop = %+v, %v; want stopped without a reason", got, err)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	expectObjects(t, ctx, id, nil, nil)
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	for _, noPull := range []bool{true, false} {
		t.Run(fmt.Sprintf("NoPull=%v", noPull), func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			rt := newRuntime(t, func(c *Config) { c.NoPull = noPull })
			spec := testSpec()
			spec.EnvironmentID = newID(t)
			spec.Image = "dev8-test/does-not-exist:" + spec.EnvironmentID
			cleanupObjects(t, spec.EnvironmentID)
			_, err := rt.Create(ctx, spec)
			if err == nil {
				t.Fatal("Create with a missing image succeeded")
			}
			if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), spec.Image) {
				t.Fatalf("Create with a missing image: %v (permanent %v); want a permanent error naming the image", err, runtime.IsPermanent(err))
			}
			t.Logf("error: %v", err)
			expectObjects(t, ctx, spec.EnvironmentID, nil, nil)
			if _, err := rt.Inspect(ctx, spec.EnvironmentID); !errors.Is(err, runtime.ErrNotFound) {
				t.Fatalf("Inspect after a failed Create: %v; want ErrNotFound", err)
			}
		})
	}
}

func TestExitOnItsOwn(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, nil)
	inst := create(t, ctx, rt, testSpec())
	id := inst.EnvironmentID
	inst, err := rt.Start(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The supervisor dies without a Stop, as under the OOM killer.
	if err := cli.ContainerKill(ctx, inst.Ref, "KILL"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Runtime{rt, newRuntime(t, nil)} { // and after a server restart
		var got runtime.Instance
		for {
			got, err = r.Inspect(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.State == runtime.StateStopped || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got.State != runtime.StateStopped || !strings.Contains(got.ExitReason, "137") {
			t.Fatalf("Inspect after the supervisor was killed = %+v; want stopped with exit code 137 as the reason", got)
		}
		list, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(x runtime.Instance) bool { return x.EnvironmentID == id })
		if i < 0 || list[i].ExitReason != got.ExitReason {
			t.Fatalf("List does not report %s with reason %q: %+v", id, got.ExitReason, list)
		}
	}
	// It starts again, and the reason goes.
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, err := newRuntime(t, nil).Inspect(ctx, id); err != nil || got.ExitReason != "" {
		t.Fatalf("Inspect from a new runtime after Stop = %+v, %v; want no reason", got, err)
	}
}

func TestSupervisorFailsAtStart(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	// The supervisor refuses it. Through the operator's ExtraEnv: a
	// workspace's own Spec.Env cannot configure the supervisor
	// (agentapi.Launch drops its DEV8_* keys).
	rt := newRuntime(t, func(c *Config) { c.ExtraEnv = []string{"DEV8_METRICS_INTERVAL=bogus"} })
	spec := testSpec()
	id := create(t, ctx, rt, spec).EnvironmentID
	_, err := rt.Start(ctx, id) // may or may not see the exit yet
	t.Logf("Start: %v", err)
	var got runtime.Instance
	for {
		got, err = rt.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == runtime.StateStopped || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.State != runtime.StateStopped || !strings.Contains(got.ExitReason, "exit code 1") {
		t.Fatalf("Inspect = %+v; want stopped with exit code 1 as the reason", got)
	}
}

func TestCreateRecreatesOnSpecChange(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
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

func TestStartRecopiesMissingSupervisor(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, nil)
	spec := testSpec()
	spec.EnvironmentID = newID(t)
	cleanupObjects(t, spec.EnvironmentID)
	// As if the server died between ContainerCreate and the copy: a
	// container without the supervisor.
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerRemove(ctx, ObjectName(spec.EnvironmentID), container.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "dev8")
	if err := os.WriteFile(empty, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	bare := newRuntime(t, func(c *Config) { c.SupervisorBinary = empty })
	if _, err := bare.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Start(ctx, spec.EnvironmentID)
	if err != nil {
		t.Fatalf("Start over a container without the supervisor: %v", err)
	}
	waitLogs(t, ctx, inst.Ref, "supervisor started")
}

// TestAgentReachable checks that the supervisor in the container reaches the
// server at Spec.AgentURL: on loopback with host networking (the default),
// and at host.docker.internal with a bridge network when the server listens
// on the bridge's gateway address.
func TestAgentReachable(t *testing.T) {
	t.Parallel()
	needDocker(t)
	gateway := ""
	if nw, err := cli.NetworkInspect(testCtx(t), "bridge", network.InspectOptions{}); err == nil && len(nw.IPAM.Config) > 0 {
		gateway = nw.IPAM.Config[0].Gateway
	}
	if gateway == "" { // 20.10 does not always record it: the bridge's own address
		if ifi, err := net.InterfaceByName("docker0"); err == nil {
			addrs, _ := ifi.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					gateway = ipn.IP.String()
				}
			}
		}
	}
	for _, tc := range []struct {
		mode, listen, host string
	}{
		{"host", "127.0.0.1:0", "127.0.0.1"},
		{"bridge", net.JoinHostPort(gateway, "0"), "host.docker.internal"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			if gateway == "" && tc.mode == "bridge" {
				t.Skip("the engine has no bridge network with a gateway")
			}
			ctx := testCtx(t)
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 100)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case got <- r.Method + " " + r.URL.Path + " auth=" + r.Header.Get("Authorization"):
				default:
				}
				http.Error(w, "test server", http.StatusServiceUnavailable)
			}))
			srv.Listener.Close()
			srv.Listener = ln
			srv.Start()
			t.Cleanup(srv.Close)
			_, port, _ := net.SplitHostPort(ln.Addr().String())

			rt := newRuntime(t, func(c *Config) { c.NetworkMode = tc.mode })
			spec := testSpec()
			spec.AgentURL = "http://" + net.JoinHostPort(tc.host, port)
			spec.AgentToken = "tok-" + tc.mode
			id := create(t, ctx, rt, spec).EnvironmentID
			if _, err := rt.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			select {
			case req := <-got:
				t.Logf("the supervisor called %s", req)
				if !strings.Contains(req, id) || !strings.Contains(req, spec.AgentToken) {
					t.Errorf("request %q names neither the environment nor the token", req)
				}
			case <-ctx.Done():
				t.Fatalf("the supervisor never reached %s", spec.AgentURL)
			}
		})
	}
}

func TestNotifyExits(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	rt := newRuntime(t, nil)
	t.Cleanup(func() { _ = rt.Close() })
	ch := make(chan string, 16)
	rt.NotifyExits(ch)
	stopped := create(t, ctx, rt, testSpec()).EnvironmentID
	killed := create(t, ctx, rt, testSpec()).EnvironmentID
	if _, err := rt.Start(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Start(ctx, killed)
	if err != nil {
		t.Fatal(err)
	}
	// A requested stop is not an exit to report; a kill afterwards is. Ids
	// arrive in order, so seeing the killed one first means the stopped
	// one was not reported (other tests' ids may come through too).
	if err := rt.Stop(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerKill(ctx, inst.Ref, "KILL"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case id := <-ch:
			if id == stopped {
				t.Fatalf("NotifyExits reported %s, which was stopped on request", stopped)
			}
			if id == killed {
				if err := rt.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
		case <-ctx.Done():
			t.Fatalf("NotifyExits never reported %s", killed)
		}
	}
}

// TestInterruptedCreate: a server killed between creating the volume and the
// container leaves a volume only. The environment is not found; a retried
// Create completes it over the same volume, and Delete alone also clears it.
func TestInterruptedCreate(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
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

// TestInstallationsDoNotMeet: two Dev8 installations on one engine never
// list, inspect or remove each other's workspaces (a server converging after
// a restart removes what it lists as orphans).
func TestInstallationsDoNotMeet(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	mine := newRuntime(t, nil)
	theirs := newRuntime(t, func(c *Config) { c.Installation = testInstallation + "-other" })
	spec := testSpec()
	spec.EnvironmentID = newID(t)
	cleanupObjects(t, spec.EnvironmentID)
	if _, err := mine.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	list, err := theirs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range list {
		if inst.EnvironmentID == spec.EnvironmentID {
			t.Fatal("another installation lists this workspace")
		}
	}
	if _, err := theirs.Inspect(ctx, spec.EnvironmentID); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("another installation inspects it: %v", err)
	}
	if _, err := mine.Inspect(ctx, spec.EnvironmentID); err != nil {
		t.Fatalf("its own installation: %v", err)
	}
}

// TestHomePersists: the home directory (settings, history, extensions, the
// SSH host key) outlives the container, and starts with what the image put
// there.
func TestHomePersists(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
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
	ctx := testCtx(t)
	spec := testSpec()
	spec.EnvironmentID = newID(t)
	cleanupObjects(t, spec.EnvironmentID)
	bad := spec
	bad.CPUCores = 100000 // the engine refuses the container, after the volume is made
	if _, err := rt.Create(ctx, bad); err == nil {
		t.Fatal("Create with 100000 CPUs succeeded")
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
