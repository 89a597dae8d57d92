// Package agentapi is the contract between a workspace's supervisor and the
// Dev8 server, in one place: the DEV8_* variables a runtime starts the
// supervisor with (and Launch, which builds them for every runtime), the
// manifest the supervisor applies, the usage samples it reports and the
// answers of its loopback status endpoint.
//
// It is a leaf: the supervisor, the runtimes and the server import it, and
// it imports nothing of Dev8's, so linking it costs the small supervisor
// binary nothing.
package agentapi

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// The supervisor's configuration, set by the runtime that starts it.
const (
	// EnvEnvironmentID is the environment's id (required).
	EnvEnvironmentID = "DEV8_ENVIRONMENT_ID"
	// EnvWorkspaceDir is the persistent workspace directory (default: the
	// supervisor's current directory); code-server opens it.
	EnvWorkspaceDir = "DEV8_WORKSPACE_DIR"
	// EnvSupervisorAddr is the loopback host:port of the status endpoint
	// (GET /health, GET /status); empty disables it.
	EnvSupervisorAddr = "DEV8_SUPERVISOR_ADDR"
	// EnvCodeServer is the path of the code-server executable; empty means
	// the workspace has no IDE.
	EnvCodeServer = "DEV8_CODE_SERVER"
	// EnvCodeServerAddr is the host:port code-server binds (default
	// DefaultCodeServerAddr), or unix:/path of a socket it listens on.
	EnvCodeServerAddr = "DEV8_CODE_SERVER_ADDR"
	// EnvStopTimeout is how long a child gets between SIGTERM and SIGKILL
	// when the supervisor shuts down (a Go duration, default 5s).
	EnvStopTimeout = "DEV8_STOP_TIMEOUT"
	// EnvAgentURL is the server's URL as the workspace reaches it; with
	// EnvAgentToken the supervisor dials its tunnel there and reports usage
	// and activity.
	EnvAgentURL = "DEV8_AGENT_URL"
	// EnvAgentSocket, if set, is the path (inside the workspace) of a unix
	// socket where the server answers: the supervisor then dials it for
	// EnvAgentURL's requests, whatever that URL's host.
	EnvAgentSocket = "DEV8_AGENT_SOCKET"
	// EnvAgentTokenFile, when EnvAgentToken is empty, names a file holding
	// the credential: the supervisor reads it, and removes it, before it
	// becomes the workspace user (a container's environment is fixed when
	// it is made, while the credential is new at every start).
	EnvAgentTokenFile = "DEV8_AGENT_TOKEN_FILE"
	// EnvAgentToken is the supervisor's credential (never passed on to user
	// processes).
	EnvAgentToken = "DEV8_AGENT_TOKEN"
	// EnvMetricsInterval is how often resources are sampled (default 30s).
	EnvMetricsInterval = "DEV8_METRICS_INTERVAL"
	// EnvActivityInterval is how often activity is reported when there was
	// some (default 30s).
	EnvActivityInterval = "DEV8_ACTIVITY_INTERVAL"
	// EnvWorkspaceUser names the user the supervisor becomes when it is
	// started as root ("dev8", or a name the image's /etc/passwd knows).
	EnvWorkspaceUser = "DEV8_WORKSPACE_USER"
)

// DefaultCodeServerAddr is where code-server binds when EnvCodeServerAddr is
// unset: code-server's own default port, on loopback only.
const DefaultCodeServerAddr = "127.0.0.1:13337"

// Launch is what a runtime tells the supervisor it starts. Environ turns it
// into the process's environment; every runtime builds it this way, so the
// supervisor sees the same variables wherever it runs.
type Launch struct {
	// Inherit is the base of the environment (local: the few server
	// variables a workspace may see; docker: nothing, the image's ENV is
	// the base).
	Inherit []string
	// Extra is the operator's additional "K=V" entries (the runtime's
	// ExtraEnv). They are taken as they are: an operator may configure the
	// supervisor through them.
	Extra []string
	// Env is the environment's own variables (runtime.Spec.Env). Keys that
	// are not valid names, and the keys Launch sets itself (HOME and
	// DEV8_*), are dropped: a workspace's settings cannot reconfigure its
	// supervisor.
	Env map[string]string

	Home          string
	EnvironmentID string
	WorkspaceDir  string
	// SupervisorAddr is the status endpoint's address; empty binds none.
	SupervisorAddr string
	// KillAfter is the runtime's own SIGTERM→SIGKILL bound. The supervisor
	// is given half of it, so it finishes its shutdown (children stopped,
	// final usage report sent) before the runtime's SIGKILL.
	KillAfter  time.Duration
	AgentURL   string
	AgentToken string
	// AgentSocket is EnvAgentSocket; empty: dial AgentURL.
	AgentSocket string
	// AgentTokenFile is EnvAgentTokenFile, for AgentToken empty.
	AgentTokenFile string
	// CodeServer is the code-server executable, CodeServerAddr where it
	// binds; empty CodeServer runs the workspace without an IDE.
	CodeServer     string
	CodeServerAddr string
	// WorkspaceUser, if not empty, is the user the supervisor becomes.
	WorkspaceUser string
}

// Environ is the supervisor's environment: Inherit, then Extra, then Env
// (sorted by key), then HOME and the DEV8_* variables, each key once in the
// place it first appeared, with the last value given. The core DEV8_*
// variables are always set, to empty when unused, so that nothing the
// supervisor would otherwise inherit (an image's ENV, the server's own
// environment) configures it; EnvCodeServerAddr and EnvWorkspaceUser are
// set only when they mean something.
func (l Launch) Environ() []string {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, list := range [][]string{l.Inherit, l.Extra} {
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			set(k, v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(l.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.HasPrefix(k, "DEV8_") || k == "HOME" {
			continue
		}
		set(k, l.Env[k])
	}
	set("HOME", l.Home)
	set(EnvEnvironmentID, l.EnvironmentID)
	set(EnvWorkspaceDir, l.WorkspaceDir)
	set(EnvSupervisorAddr, l.SupervisorAddr)
	set(EnvStopTimeout, (l.KillAfter / 2).String())
	set(EnvAgentURL, l.AgentURL)
	set(EnvAgentToken, l.AgentToken)
	set(EnvAgentSocket, l.AgentSocket)
	set(EnvAgentTokenFile, l.AgentTokenFile)
	if l.WorkspaceUser != "" {
		set(EnvWorkspaceUser, l.WorkspaceUser)
	}
	set(EnvCodeServer, l.CodeServer)
	if l.CodeServer != "" {
		set(EnvCodeServerAddr, l.CodeServerAddr)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vars[k])
	}
	return out
}
