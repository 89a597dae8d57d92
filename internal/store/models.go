package store

import (
	"errors"
	"time"
)

// Errors every engine returns, so callers never see driver errors for the
// cases they are expected to handle.
var (
	// ErrNotFound: no row matched (or the row is soft-deleted).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique constraint was violated (duplicate email,
	// duplicate environment name for the same user, ...).
	ErrConflict = errors.New("conflict")
)

// Role is a user's role in the installation.
type Role string

const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// User is an account (the seed's User model).
type User struct {
	ID           string
	Email        string // stored lower-cased
	Name         string
	PasswordHash string // bcrypt; empty for accounts without a password
	Role         Role
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// SuspendedAt is set while an admin has suspended the user: nothing
	// they hold authenticates.
	SuspendedAt *time.Time
	// DefaultAutoStopMinutes is the auto-stop of environments the user
	// creates without naming one; nil: the server's default.
	DefaultAutoStopMinutes *int
}

// APIToken is a bearer token. Only the SHA-256 of the secret is stored.
type APIToken struct {
	ID         string
	UserID     string
	Name       string
	Hash       []byte // sha256 of the secret
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt *time.Time
}

// Status is an environment's lifecycle status (the seed's EnvironmentStatus).
type Status string

const (
	StatusCreating Status = "CREATING"
	StatusStarting Status = "STARTING"
	StatusRunning  Status = "RUNNING"
	StatusStopping Status = "STOPPING"
	StatusStopped  Status = "STOPPED"
	StatusError    Status = "ERROR"
	StatusDeleting Status = "DELETING"
)

// Statuses lists every status in the seed's order.
var Statuses = []Status{StatusCreating, StatusStarting, StatusRunning, StatusStopping, StatusStopped, StatusError, StatusDeleting}

// Port is a port the workspace exposes.
type Port struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// Environment is a workspace (the seed's Environment model).
type Environment struct {
	ID           string
	UserID       string
	Name         string
	Status       Status
	StatusReason string // why it is in ERROR (or was stopped); empty otherwise

	Runtime     string // runtime engine name: local, docker, kubernetes, azure
	CloudRegion string
	RuntimeRef  string // the runtime's own id for the instance (container id, pid, ...)

	TemplateName string
	BaseImage    string
	InstanceType string
	CPUCores     float64 // vCPUs, a multiple of catalog.CPUStep (0.5)
	MemoryGB     int
	StorageGB    int
	// Resources and NodeSelector are the instance type's placement, copied
	// at create like its sizes (InstanceType): extended resources the
	// workspace asks for ({"nvidia.com/gpu": "1"}) and node labels it
	// runs on. nil: none.
	Resources    map[string]string
	NodeSelector map[string]string

	EnvironmentVariables map[string]string
	Ports                []Port
	AutoStopMinutes      int

	VSCodeURL           string
	SSHConnectionString string

	EstimatedCostPerHour float64
	// TotalCost is the cost accrued up to RunningSince (or up to the last stop
	// when not running). The cost of the current run is added on read.
	TotalCost    float64
	RunningSince *time.Time

	LastAccessedAt time.Time
	StoppedAt      *time.Time
	DeletedAt      *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time

	// AgentTokenNonce makes the agent token of the environment's current
	// run (see auth.AgentTokens): a fresh one each start, "" while no
	// token is valid (stopped, deleted). It is not a secret: a token also
	// needs the installation's key, which is not in the store in the clear.
	// LegacyAgentToken marks a run started before tokens had nonces.
	AgentTokenNonce string
}

// LegacyAgentToken is the AgentTokenNonce of an environment whose compute
// was (or may have been) running when the store was upgraded to per-start
// agent tokens: its supervisor keeps the token it was given, of the old
// form, until the environment's next stop or start.
const LegacyAgentToken = "legacy"

// EnvironmentFilter selects environments for List.
type EnvironmentFilter struct {
	UserID   string   // empty: every user
	Statuses []Status // empty: every status
	Limit    int      // <= 0: no limit
	Offset   int
}

// Template is a workspace template (the seed's Template model).
type Template struct {
	ID             string
	Name           string
	DisplayName    string
	Description    string
	BaseImage      string
	DefaultCPU     float64 // vCPUs
	DefaultMemory  int     // GB
	DefaultStorage int     // GB
	Category       string
	Tags           []string
	Icon           string
	IsPopular      bool
	IsActive       bool
	DefaultPorts   []Port
	DefaultEnvVars map[string]string
	Extensions     []string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// InstanceType is a named size (the seed's lightweight/balanced/compute/memory).
type InstanceType struct {
	Name        string
	DisplayName string
	Description string
	CPUCores    float64 // vCPUs
	MemoryGB    int
	StorageGB   int // default storage for this type
	SortOrder   int
	// Resources are extended resources a workspace of this type asks for
	// ({"nvidia.com/gpu": "1"}) and NodeSelector the node labels it runs
	// on ({"pool": "gpu"}); only runtimes that schedule on a cluster's
	// nodes honour them. nil: none.
	Resources    map[string]string
	NodeSelector map[string]string
	// IsActive: offered for new environments. A retired type stays for
	// the environments made from it (they keep a copy of what it was).
	IsActive bool
}

// ResourceUsage is one sample of a workspace's resource use (the seed's
// ResourceUsage model).
type ResourceUsage struct {
	ID              int64
	EnvironmentID   string
	Timestamp       time.Time
	CPUUsagePercent float64
	MemoryUsageMB   int64
	DiskUsageMB     int64
	NetworkInMB     float64
	NetworkOutMB    float64
	CostAmount      float64
	BillingPeriod   string // e.g. "2026-11"
}

// Activity is an event in an environment's history: lifecycle changes, idle
// stops, errors. Plain activity pings only bump last_accessed_at.
type Activity struct {
	ID            int64
	EnvironmentID string
	UserID        string
	Kind          string // created, started, stopped, idle_stopped, error, deleted, ...
	Detail        string
	CreatedAt     time.Time
}
