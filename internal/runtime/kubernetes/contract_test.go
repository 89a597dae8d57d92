package kubernetes

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/runtimetest"
)

// testInstallation labels what these tests make.
const testInstallation = "dev8-runtime-tests"

// newTestRuntime is a Runtime on the test cluster's namespace; it is
// closed when t ends.
func newTestRuntime(t *testing.T, edit ...func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{
		Client:          cli,
		Namespace:       testNamespace,
		SupervisorFrom:  SupervisorFromImage,
		SupervisorImage: supervisorImage,
		DefaultImage:    testImage,
		ImagePullPolicy: "Never",
		CodeServer:      "none",
		Installation:    testInstallation,
		StopTimeout:     4 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
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

// fromServer makes a test runtime's pods fetch the supervisor from the
// test agent (SupervisorFromServer), which the NetworkPolicy lets them
// reach.
func fromServer(c *Config) {
	c.SupervisorFrom = SupervisorFromServer
	c.SupervisorImage = ""
	c.AgentURL = testAgentURL
	c.SupervisorConnected = testTunnels.AwaitSince
	c.ServerEgress = []string{hostIP}
	// The NetworkPolicy is one per installation: the image mode's has
	// no ServerEgress.
	c.Installation = testInstallation + "-fetch"
}

// TestContract runs the runtime contract on the real cluster, with the
// supervisor from the server (the default) and from an image.
func TestContract(t *testing.T) {
	needCluster(t)
	for _, mode := range []SupervisorSource{SupervisorFromServer, SupervisorFromImage} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			contract(t, func(c *Config) {
				if mode == SupervisorFromServer {
					fromServer(c)
				}
			})
		})
	}
}

func contract(t *testing.T, edit func(*Config)) {
	runtimetest.RunWithOptions(t, func(t *testing.T) runtime.Runtime { return newTestRuntime(t, edit) }, runtimetest.Options{
		Timeout: 3 * time.Minute,
		Spec: func() runtime.Spec {
			// The node has 2 CPUs: sizes small enough for the suite's
			// environments to run side by side.
			return runtime.Spec{Name: "contract", Template: "base", CPUCores: 0, MemoryGB: 1, StorageGB: 1, AgentToken: testAgentToken}
		},
		// The data goes in the command line, not kubectl's stdin: a
		// file written through `kubectl exec -i` was once found empty.
		WriteFile: func(ctx context.Context, rt runtime.Runtime, inst runtime.Instance, name string, data []byte) error {
			_, err := kubectl(ctx, nil, "exec", "-n", testNamespace, ObjectName(inst.EnvironmentID), "-c", containerWorkspace,
				"--", "sh", "-c", fmt.Sprintf("echo %s | base64 -d > %s/%s", base64.StdEncoding.EncodeToString(data), WorkspaceDir, name))
			return err
		},
		ReadFile: func(ctx context.Context, rt runtime.Runtime, inst runtime.Instance, name string) ([]byte, error) {
			return kubectl(ctx, nil, "exec", "-n", testNamespace, ObjectName(inst.EnvironmentID), "-c", containerWorkspace,
				"--", "sh", "-c", fmt.Sprintf("cat %s/%s", WorkspaceDir, name))
		},
		LoseStorage: func(ctx context.Context, rt runtime.Runtime, inst runtime.Instance) error {
			return cli.CoreV1().PersistentVolumeClaims(testNamespace).Delete(ctx, ObjectName(inst.EnvironmentID), metav1.DeleteOptions{})
		},
	})
}
