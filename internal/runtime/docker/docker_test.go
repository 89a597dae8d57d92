package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
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
	stdout, stderr, code := execRun(t, ctx, containerID, argv...)
	if code != 0 {
		t.Fatalf("exec %q: exit code %d, stderr %q", argv, code, stderr)
	}
	return stdout
}

// execRun runs argv in the container (as its configured user) and returns
// its output and exit code.
func execRun(t *testing.T, ctx context.Context, containerID string, argv ...string) (stdout, stderr string, code int) {
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
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, hr.Reader); err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	ei, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	return out.String(), errOut.String(), ei.ExitCode
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
