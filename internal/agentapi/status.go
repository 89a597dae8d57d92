package agentapi

import "time"

// The supervisor's loopback status endpoint (EnvSupervisorAddr) answers
// GET /health with Health and GET /status with Status. The local runtime
// polls /health to know the supervisor is up.

// HealthHealthy is Health.Status of a supervisor that is up.
const HealthHealthy = "healthy"

// Health is the body of GET /health.
type Health struct {
	Status string `json:"status"`
}

// Status is the body of GET /status.
type Status struct {
	EnvironmentID string           `json:"environmentId"`
	Status        string           `json:"status"`
	StartedAt     time.Time        `json:"startedAt"`
	UptimeSeconds float64          `json:"uptimeSeconds"`
	WorkspaceDir  string           `json:"workspaceDir"`
	PID           int              `json:"pid"`
	CodeServer    CodeServerStatus `json:"codeServer"`
	// Sessions is how many tunnel streams (SSH connections, terminals,
	// forwarded connections, IDE connections) are open.
	Sessions int `json:"sessions"`
	// LastActivity is when a person last used the workspace, and how.
	LastActivity     *time.Time `json:"lastActivity,omitempty"`
	LastActivityKind string     `json:"lastActivityKind,omitempty"`
	// TunnelUpAt is when the tunnel to the server last came up;
	// TunnelConnects counts how often it did (reconnects after server
	// restarts included).
	TunnelUpAt     *time.Time      `json:"tunnelUpAt,omitempty"`
	TunnelConnects int             `json:"tunnelConnects"`
	Reporter       *ReporterStatus `json:"reporter,omitempty"`
}

// Code-server states reported in CodeServerStatus.State.
const (
	CodeServerAbsent     = "absent"     // not configured
	CodeServerStarting   = "starting"   // launched, /healthz not answered yet
	CodeServerRunning    = "running"    // /healthz answered
	CodeServerRestarting = "restarting" // exited; waiting out the backoff
	CodeServerStopped    = "stopped"    // supervisor is shutting down
)

// CodeServerStatus is code-server's part of Status.
type CodeServerStatus struct {
	State    string `json:"state"`
	Address  string `json:"address,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	// LastExit describes how the previous code-server process ended.
	LastExit   string     `json:"lastExit,omitempty"`
	LastExitAt *time.Time `json:"lastExitAt,omitempty"`
	// LastHealthyAt is when /healthz last answered.
	LastHealthyAt *time.Time `json:"lastHealthyAt,omitempty"`
	// Health and LastHeartbeat are copied from code-server's /healthz:
	// "alive" or "expired", and when a client last showed activity (zero if
	// none has).
	Health        string     `json:"health,omitempty"`
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
}

// ReporterStatus is the usage and activity reporter's part of Status.
type ReporterStatus struct {
	// LastReportAt is when usage was last accepted by the server.
	LastReportAt *time.Time `json:"lastReportAt,omitempty"`
	// LastActivityReportAt is when activity was last accepted.
	LastActivityReportAt *time.Time `json:"lastActivityReportAt,omitempty"`
	// LastError is the last failure to report, cleared by the next success
	// of the same kind of report.
	LastError   string     `json:"lastError,omitempty"`
	LastErrorAt *time.Time `json:"lastErrorAt,omitempty"`
	// PendingSamples are taken and not yet accepted.
	PendingSamples int `json:"pendingSamples"`
	// DroppedSamples were discarded: the oldest when the pending bound was
	// exceeded, or a batch the server rejected as invalid.
	DroppedSamples int64 `json:"droppedSamples"`
	// MonitorScope is what the CPU and memory figures cover.
	MonitorScope string       `json:"monitorScope,omitempty"`
	LastSample   *UsageSample `json:"lastSample,omitempty"`
}
