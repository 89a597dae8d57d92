package docker

import (
	"path/filepath"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
)

// env is the container's environment (agentapi.Launch.Environ): ExtraEnv,
// then Spec.Env, then the supervisor's DEV8_* variables. agentSocket: the
// supervisor dials the agent socket mounted at AgentSocketDir. wsUser, if
// not empty, is the user the supervisor becomes; codeServer, if not empty,
// the code-server it runs on CodeServerSocket. The supervisor binds no
// status endpoint: nothing outside the container would reach it.
func (r *Runtime) env(spec runtime.Spec, agentSocket bool, wsUser, codeServer string) []string {
	var socket string
	if agentSocket {
		socket = AgentSocketDir + "/" + filepath.Base(spec.AgentSocket)
	}
	return agentapi.Launch{
		Extra:         r.cfg.ExtraEnv,
		Env:           spec.Env,
		Home:          r.cfg.HomeDir,
		EnvironmentID: spec.EnvironmentID,
		WorkspaceDir:  WorkspaceDir,
		KillAfter:     r.cfg.StopTimeout,
		AgentURL:      spec.AgentURL,
		// The token is this start's: a file (copyAgentToken), as the
		// environment is fixed when the container is made.
		AgentTokenFile: AgentTokenPath,
		AgentSocket:    socket,
		CodeServer:     codeServer,
		// Only read when CodeServer is set.
		CodeServerAddr: CodeServerSocket,
		WorkspaceUser:  wsUser,
	}.Environ()
}
