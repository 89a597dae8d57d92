package agentapi

import (
	"slices"
	"testing"
	"time"
)

func TestLaunchEnviron(t *testing.T) {
	t.Parallel()
	got := Launch{
		Inherit: []string{"PATH=/bin", "LANG=C"},
		Extra:   []string{"EXTRA=1", "LANG=C.UTF-8"},
		Env: map[string]string{
			"FOO": "bar", "DEV8_ENVIRONMENT_ID": "spoofed", "HOME": "/nope",
			"": "x", "A=B": "x", "N\x00": "x",
		},
		Home:           "/home/dev8",
		EnvironmentID:  "env_1",
		WorkspaceDir:   "/workspace",
		KillAfter:      10 * time.Second,
		AgentURL:       "http://127.0.0.1:9",
		AgentToken:     "tok",
		AgentSocket:    "/run/dev8-agent/agent.sock",
		AgentTokenFile: "/.dev8/agent-token",
		CodeServer:     "/opt/cs",
		CodeServerAddr: "unix:/run/cs.sock",
		WorkspaceUser:  "dev8",
	}.Environ()
	want := []string{
		"PATH=/bin", "LANG=C.UTF-8", "EXTRA=1", "FOO=bar", "HOME=/home/dev8",
		"DEV8_ENVIRONMENT_ID=env_1", "DEV8_WORKSPACE_DIR=/workspace", "DEV8_SUPERVISOR_ADDR=",
		"DEV8_STOP_TIMEOUT=5s", "DEV8_AGENT_URL=http://127.0.0.1:9", "DEV8_AGENT_TOKEN=tok",
		"DEV8_AGENT_SOCKET=/run/dev8-agent/agent.sock", "DEV8_AGENT_TOKEN_FILE=/.dev8/agent-token",
		"DEV8_WORKSPACE_USER=dev8", "DEV8_CODE_SERVER=/opt/cs", "DEV8_CODE_SERVER_ADDR=unix:/run/cs.sock",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Environ()\n got %q\nwant %q", got, want)
	}
}

// Unused parts are set empty, so nothing inherited configures the
// supervisor, except the two that mean something only when set.
func TestLaunchEnvironEmpty(t *testing.T) {
	t.Parallel()
	got := Launch{
		Inherit:       []string{"DEV8_AGENT_URL=http://inherited", "DEV8_CODE_SERVER=/inherited", "DEV8_AGENT_SOCKET=/inherited.sock"},
		EnvironmentID: "env_1", SupervisorAddr: "127.0.0.1:1234",
	}.Environ()
	want := []string{
		"DEV8_AGENT_URL=", "DEV8_CODE_SERVER=", "DEV8_AGENT_SOCKET=", "HOME=", "DEV8_ENVIRONMENT_ID=env_1",
		"DEV8_WORKSPACE_DIR=", "DEV8_SUPERVISOR_ADDR=127.0.0.1:1234", "DEV8_STOP_TIMEOUT=0s",
		"DEV8_AGENT_TOKEN=", "DEV8_AGENT_TOKEN_FILE=",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Environ()\n got %q\nwant %q", got, want)
	}
	for _, kv := range got {
		if kv == EnvWorkspaceUser+"=" || kv == EnvCodeServerAddr+"=" {
			t.Errorf("%s set although unused", kv)
		}
	}
}
