package docker

import (
	"maps"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/supervisor"
)

// env is the container's environment: ExtraEnv, then Spec.Env, then the
// supervisor's DEV8_* variables, each key once (the last one wins). wsUser,
// if not empty, is the user the supervisor becomes; codeServer, if not
// empty, the code-server it runs on CodeServerSocket.
func (r *Runtime) env(spec runtime.Spec, wsUser, codeServer string) []string {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, kv := range r.cfg.ExtraEnv {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		set(k, spec.Env[k])
	}
	set("HOME", r.cfg.HomeDir)
	set(supervisor.EnvEnvironmentID, spec.EnvironmentID)
	set(supervisor.EnvWorkspaceDir, WorkspaceDir)
	set(supervisor.EnvAddr, "") // host network: bind nothing of our own
	set(supervisor.EnvStopTimeout, (r.cfg.StopTimeout / 2).String())
	set(supervisor.EnvAgentURL, spec.AgentURL)
	set(supervisor.EnvAgentToken, spec.AgentToken)
	if wsUser != "" {
		set(supervisor.EnvWorkspaceUser, wsUser)
	}
	set(supervisor.EnvCodeServer, codeServer)
	if codeServer != "" {
		set(supervisor.EnvCodeServerAddr, CodeServerSocket)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}
