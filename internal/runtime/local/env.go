package local

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/supervisor"
)

// env builds the supervisor's environment. The server's own variables are
// not passed on wholesale: they hold its secrets (database URL, OAuth
// secrets), and a workspace must not see them.
func (r *Runtime) env(id, dir string, spec runtime.Spec, supAddr, csAddr string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(passEnv, k) || strings.HasPrefix(k, "LC_") {
			env = append(env, kv)
		}
	}
	if os.Getenv("PATH") == "" {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	env = append(env, r.cfg.ExtraEnv...)
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		// DEV8_* and HOME are the runtime's; the later entries below would
		// win anyway, but dropping them keeps the environment unambiguous.
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.HasPrefix(k, "DEV8_") || k == "HOME" {
			continue
		}
		env = append(env, k+"="+spec.Env[k])
	}
	// The supervisor finishes its own shutdown before our SIGKILL.
	env = append(env,
		"HOME="+filepath.Join(dir, homeDir),
		supervisor.EnvEnvironmentID+"="+id,
		supervisor.EnvWorkspaceDir+"="+filepath.Join(dir, workspaceDir),
		supervisor.EnvAddr+"="+supAddr,
		supervisor.EnvStopTimeout+"="+(r.cfg.StopTimeout/2).String(),
	)
	if spec.AgentURL != "" {
		env = append(env, supervisor.EnvAgentURL+"="+spec.AgentURL, supervisor.EnvAgentToken+"="+spec.AgentToken)
	}
	if csAddr != "" {
		env = append(env,
			supervisor.EnvCodeServer+"="+r.cfg.CodeServer,
			supervisor.EnvCodeServerAddr+"="+csAddr,
		)
	}
	return env
}

// passEnv are the server's variables a workspace inherits.
var passEnv = []string{"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM"}
