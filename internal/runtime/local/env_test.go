package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
)

// TestEnv is not parallel: it sets a server variable that must not reach
// the workspace.
func TestEnv(t *testing.T) {
	t.Setenv("DEV8_TEST_SERVER_SECRET", "hunter2")
	t.Setenv("LC_TIME", "C.UTF-8")
	ctx := wait.Context(t, time.Minute)
	exe := testExe(t)
	rt := newRuntime(t, t.TempDir(), func(c *Config) {
		c.Command = []string{"/bin/sh", "-c", `env > "$DEV8_WORKSPACE_DIR/env.txt" && exec "$0"`, exe}
		c.ExtraEnv = append(c.ExtraEnv, "EXTRA=from-config")
	})
	inst := createStarted(t, ctx, rt, runtime.Spec{Env: map[string]string{
		"FOO":                  "bar baz",
		"DEV8_ENVIRONMENT_ID":  "spoofed",
		"DEV8_SUPERVISOR_ADDR": "127.0.0.1:1",
		"HOME":                 "/nope",
	}})
	data, err := os.ReadFile(filepath.Join(inst.WorkspaceDir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	dir := rt.envDir(inst.EnvironmentID)
	for k, want := range map[string]string{
		"FOO":                      "bar baz",
		"EXTRA":                    "from-config",
		"LC_TIME":                  "C.UTF-8",
		agentapi.EnvEnvironmentID:  inst.EnvironmentID,
		agentapi.EnvWorkspaceDir:   inst.WorkspaceDir,
		agentapi.EnvSupervisorAddr: mustState(t, rt, inst.EnvironmentID).SupervisorAddr,
		"HOME":                     filepath.Join(dir, homeDir),
		"PATH":                     os.Getenv("PATH"),
	} {
		if env[k] != want {
			t.Errorf("workspace sees %s=%q, want %q", k, env[k], want)
		}
	}
	if v, ok := env["DEV8_TEST_SERVER_SECRET"]; ok {
		t.Errorf("a server variable leaked into the workspace: %q", v)
	}
}
