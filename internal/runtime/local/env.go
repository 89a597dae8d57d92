package local

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
)

// env builds the supervisor's environment (agentapi.Launch.Environ). The
// server's own variables are not passed on wholesale: they hold its secrets
// (database URL, OAuth secrets), and a workspace must not see them; only
// passEnv and LC_* are.
func (r *Runtime) env(id, dir string, spec runtime.Spec, supAddr, csAddr string) []string {
	var inherit []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(passEnv, k) || strings.HasPrefix(k, "LC_") {
			inherit = append(inherit, kv)
		}
	}
	if os.Getenv("PATH") == "" {
		inherit = append(inherit, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	l := agentapi.Launch{
		Inherit:        inherit,
		Extra:          r.cfg.ExtraEnv,
		Env:            spec.Env,
		Home:           filepath.Join(dir, homeDir),
		EnvironmentID:  id,
		WorkspaceDir:   filepath.Join(dir, workspaceDir),
		SupervisorAddr: supAddr,
		KillAfter:      r.cfg.StopTimeout,
		AgentURL:       spec.AgentURL,
		AgentToken:     spec.AgentToken,
	}
	if csAddr != "" {
		l.CodeServer, l.CodeServerAddr = r.cfg.CodeServer, csAddr
	}
	return l.Environ()
}

// passEnv are the server's variables a workspace inherits.
var passEnv = []string{"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM"}
