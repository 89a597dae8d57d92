package userenv

import (
	"slices"
	"strings"
	"testing"
)

func TestUserEnv(t *testing.T) {
	t.Parallel()
	env := Build([]string{
		"PATH=/bin", "DEV8_AGENT_TOKEN=x", "DEV8_CODE_SERVER=/cs", "DEV8_ENVIRONMENT_ID=e1",
		"FOO=bar", "HOME=/h",
	}, "/home/other", "e1", "/ws")
	joined := strings.Join(env, "\n")
	for _, bad := range []string{"DEV8_AGENT_TOKEN", "DEV8_CODE_SERVER"} {
		if strings.Contains(joined, bad) {
			t.Errorf("%s leaked: %q", bad, env)
		}
	}
	for _, want := range []string{"FOO=bar", "HOME=/h", "DEV8_ENVIRONMENT_ID=e1", "DEV8_WORKSPACE_DIR=/ws", "PATH=/bin"} {
		if !strings.Contains("\n"+joined+"\n", "\n"+want+"\n") {
			t.Errorf("missing %s in %q", want, env)
		}
	}
}

func TestUserEnvInjected(t *testing.T) {
	t.Parallel()
	SetInjected("env_userenvtest", map[string]string{
		"NPM_TOKEN": "npm-secret", "EDITOR": "from-manifest", "DEV8_AGENT_TOKEN": "never", "BAD=NAME": "x",
	})
	env := Build([]string{"EDITOR=nano", "DEV8_AGENT_TOKEN=agent", "PATH=/bin"}, "/home/x", "env_userenvtest", "/ws")
	has := func(kv string) bool { return slices.Contains(env, kv) }
	if !has("NPM_TOKEN=npm-secret") {
		t.Errorf("the secret is missing: %q", env)
	}
	if !has("EDITOR=nano") || has("EDITOR=from-manifest") {
		t.Errorf("the workspace's own variable should win: %q", env)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "DEV8_AGENT_TOKEN=") || strings.HasPrefix(kv, "BAD=") {
			t.Errorf("%q reached the user environment", kv)
		}
	}
	// Another environment's supervisor (tests run several in one process)
	// does not see them.
	if other := Build(nil, "/home/x", "env_other", "/ws"); slices.ContainsFunc(other, func(kv string) bool { return strings.HasPrefix(kv, "NPM_TOKEN=") }) {
		t.Errorf("another environment got the secret: %q", other)
	}
}
