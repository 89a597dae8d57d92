package sdk

import (
	"encoding/json"
	"time"
)

// Status is an environment's lifecycle status.
type Status string

// Status values. CREATING, STARTING, STOPPING and DELETING are transitional:
// the server is working towards RUNNING, STOPPED or gone; ERROR carries the
// reason in Environment.StatusReason.
const (
	StatusCreating Status = "CREATING"
	StatusStarting Status = "STARTING"
	StatusRunning  Status = "RUNNING"
	StatusStopping Status = "STOPPING"
	StatusStopped  Status = "STOPPED"
	StatusError    Status = "ERROR"
	StatusDeleting Status = "DELETING"
)

// Transitional reports whether the server still has work to do for an
// environment in status s.
func (s Status) Transitional() bool {
	switch s {
	case StatusCreating, StatusStarting, StatusStopping, StatusDeleting:
		return true
	}
	return false
}

// User is an account.
type User struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"` // "admin" or "member"
	// DefaultAutoStopMinutes is the user's own default for new
	// environments; nil takes the server's.
	DefaultAutoStopMinutes *int      `json:"default_auto_stop_minutes"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

// Port is a port a workspace serves.
type Port struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// Environment is a workspace as the API shows it (the server renders this
// type). The API sends null for StatusReason, VSCodeURL and
// SSHConnectionString when they have no value; they are empty strings here.
// VSCodeURL (<access URL>/w/{id}/ide/?folder=…) is where a browser opens
// the workspace's VS Code: it leads, with a one-time sign-in ticket, to the
// IDE on an origin of its own (ide--env-<id>.<domain>), never the
// dashboard's.
// LastAccessedAt is null on the wire (zero here) for an environment that
// has never run.
type Environment struct {
	ID            string  `json:"id"`
	UserID        string  `json:"user_id"`
	Name          string  `json:"name"`
	Status        Status  `json:"status"`
	StatusReason  string  `json:"status_reason"`
	CloudProvider string  `json:"cloud_provider"`
	Runtime       string  `json:"runtime"`
	CloudRegion   string  `json:"cloud_region"`
	TemplateName  string  `json:"template_name"`
	BaseImage     string  `json:"base_image"`
	InstanceType  string  `json:"instance_type"`
	CPUCores      float64 `json:"cpu_cores"` // vCPUs; may be fractional (0.5)
	MemoryGB      int     `json:"memory_gb"`
	StorageGB     int     `json:"storage_gb"`
	// Resources and NodeSelector are the extended resources (GPUs) and
	// node labels the environment was made with, from its instance type
	// at the time; never null.
	Resources            map[string]string `json:"resources"`
	NodeSelector         map[string]string `json:"node_selector"`
	EnvironmentVariables map[string]string `json:"environment_variables"`
	Ports                []Port            `json:"ports"`
	AutoStopMinutes      int               `json:"auto_stop_minutes"`
	VSCodeURL            string            `json:"vs_code_url"`
	SSHConnectionString  string            `json:"ssh_connection_string"`
	EstimatedCostPerHour float64           `json:"estimated_cost_per_hour"`
	TotalCost            float64           `json:"total_cost"`
	LastAccessedAt       time.Time         `json:"last_accessed_at"`
	StoppedAt            *time.Time        `json:"stopped_at"`
	CreatedAt            time.Time         `json:"created_at"`
	UpdatedAt            time.Time         `json:"updated_at"`
	// RestoringSnapshot is the snapshot whose files are being restored
	// into the workspace — a fork's, from its create until they are all
	// there, or a lost volume's — and null on the wire otherwise: its
	// files are not all there yet while it is set.
	RestoringSnapshot string `json:"restoring_snapshot"`
}

// MarshalJSON writes StatusReason, VSCodeURL, SSHConnectionString and
// RestoringSnapshot as null when they are empty, and LastAccessedAt when
// it is zero, so clients can tell "not yet" from a value.
func (e Environment) MarshalJSON() ([]byte, error) {
	type plain Environment // without this method
	var lastAccessed *time.Time
	if !e.LastAccessedAt.IsZero() {
		lastAccessed = &e.LastAccessedAt
	}
	return json.Marshal(struct {
		plain
		StatusReason        *string    `json:"status_reason"`
		VSCodeURL           *string    `json:"vs_code_url"`
		SSHConnectionString *string    `json:"ssh_connection_string"`
		LastAccessedAt      *time.Time `json:"last_accessed_at"`
		RestoringSnapshot   *string    `json:"restoring_snapshot"`
	}{plain(e), nullIfEmpty(e.StatusReason), nullIfEmpty(e.VSCodeURL), nullIfEmpty(e.SSHConnectionString), lastAccessed, nullIfEmpty(e.RestoringSnapshot)})
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateEnvironmentRequest is the body of POST /environments; the server
// decodes this type. Fields left out (zero strings, nil pointers) take the
// server's defaults: sizes come from the request, then the instance type,
// then the template. An explicit size of 0 is refused.
type CreateEnvironmentRequest struct {
	// Name is required: a DNS label (1–63 lower-case letters, digits, '-'),
	// unique among the user's live environments.
	Name string `json:"name"`
	// TemplateName defaults to "base" on the server.
	TemplateName string `json:"template_name,omitempty"`
	// Template is an older name for TemplateName; when both are sent they
	// must agree.
	Template     string `json:"template,omitempty"`
	InstanceType string `json:"instance_type,omitempty"`
	// BaseImage overrides the template's image.
	BaseImage string `json:"base_image,omitempty"`
	// CPUCores is vCPUs from 0.25 to 16 in steps of 0.25 (0.5, 2);
	// whole numbers are sent as before.
	CPUCores  *float64 `json:"cpu_cores,omitempty"`
	MemoryGB  *int     `json:"memory_gb,omitempty"`  // 1–64
	StorageGB *int     `json:"storage_gb,omitempty"` // 1–500
	// Runtime names the runtime to create it on (local, docker, ...: one
	// of the server's, as GET /templates lists them per template); empty:
	// the server's default, which is the first on which the template can
	// run now unless the server names one.
	Runtime string `json:"runtime,omitempty"`
	// CloudProvider is the seed's name for Runtime (case does not matter);
	// when both are sent they must agree.
	CloudProvider        string            `json:"cloud_provider,omitempty"`
	CloudRegion          string            `json:"cloud_region,omitempty"`
	EnvironmentVariables map[string]string `json:"environment_variables,omitempty"`
	Ports                []Port            `json:"ports,omitempty"`
	// AutoStopMinutes: nil takes the user's or the server's default; 0
	// never stops.
	AutoStopMinutes *int `json:"auto_stop_minutes,omitempty"`
	// UserID creates the environment for another user (admins only).
	UserID string `json:"user_id,omitempty"`
	// FromSnapshot forks: the new environment's workspace starts as this
	// COMPLETED snapshot (one of the caller's) holds it.
	FromSnapshot string `json:"from_snapshot,omitempty"`
}

// Int returns a pointer to v, for the optional sizes of a request.
func Int(v int) *int { return &v }

// Float returns a pointer to v, for optional fractional fields (cpu_cores).
func Float(v float64) *float64 { return &v }

// ActionResult answers start, stop and delete: the request is recorded and
// the work goes on in the background; Status says where it stands.
type ActionResult struct {
	Message string `json:"message"`
	ID      string `json:"id"`
	Status  Status `json:"status"`
}

// EnvironmentFilter selects environments to list.
type EnvironmentFilter struct {
	// Statuses keeps only these (empty: all).
	Statuses []Status
	// All lists every user's environments (admins only).
	All bool
	// UserID lists another user's environments (admins only).
	UserID string
	// Limit is the page size (server default 50, at most 100); Offset skips.
	Limit  int
	Offset int
}

// EnvironmentList is one page of environments.
type EnvironmentList struct {
	Environments []Environment `json:"environments"`
	Total        int           `json:"total"`
	Limit        int           `json:"limit"`
	Offset       int           `json:"offset"`
}

// Template is a catalog template.
type Template struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	DisplayName          string            `json:"display_name"`
	Description          string            `json:"description"`
	BaseImage            string            `json:"base_image"`
	DefaultCPU           float64           `json:"default_cpu"` // vCPUs
	DefaultMemory        int               `json:"default_memory"`
	DefaultStorage       int               `json:"default_storage"`
	Category             string            `json:"category"`
	Tags                 []string          `json:"tags"`
	Icon                 string            `json:"icon"`
	IsPopular            bool              `json:"is_popular"`
	DefaultPorts         []Port            `json:"default_ports"`
	DefaultEnvVars       map[string]string `json:"default_env_vars"`
	Extensions           []string          `json:"extensions"`
	EstimatedCostPerHour float64           `json:"estimated_cost_per_hour"`
	// State is whether a create from this template that names no runtime
	// can go ahead now: TemplateReady, TemplatePreparing (an image being
	// pulled: the create waits for it) or TemplateUnavailable, with
	// StateReason saying why and what to run. Runtime is where such a
	// create would run.
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`
	Runtime     string `json:"runtime"`
	// Runtimes says the same for each runtime new environments may use, in
	// the server's order of preference.
	Runtimes []TemplateRuntime `json:"runtimes"`
}

// Template states.
const (
	TemplateReady       = "ready"
	TemplatePreparing   = "preparing"
	TemplateUnavailable = "unavailable"
)

// TemplateRuntime is whether a template can run on one runtime now.
type TemplateRuntime struct {
	Runtime string `json:"runtime"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	// HostTools is true where workspaces are processes of the server's
	// machine (the local runtime): the template's image is not used, and
	// its tools are whatever that machine has installed.
	HostTools bool `json:"host_tools"`
	// AdminOnly is true (and State unavailable) where workspaces would
	// share the server's host without isolation and the caller is not an
	// admin: only admins may run workspaces there.
	AdminOnly bool `json:"admin_only,omitempty"`
}

// InstanceType is a catalog size.
type InstanceType struct {
	Name                 string  `json:"name"`
	DisplayName          string  `json:"display_name"`
	Description          string  `json:"description"`
	CPUCores             float64 `json:"cpu_cores"` // vCPUs; may be fractional (0.5)
	MemoryGB             int     `json:"memory_gb"`
	StorageGB            int     `json:"storage_gb"`
	EstimatedCostPerHour float64 `json:"estimated_cost_per_hour"`
	// Resources are extended resources a workspace of this type gets
	// ({"nvidia.com/gpu": "1"}) and NodeSelector the node labels it runs
	// on; only runtimes that schedule on a cluster's nodes (kubernetes)
	// can create such a workspace. Never null.
	Resources    map[string]string `json:"resources"`
	NodeSelector map[string]string `json:"node_selector"`
	// IsActive is false for a retired type: no new environment may use
	// it (only admins listing with all=true see it).
	IsActive bool `json:"is_active"`
}

// CreateInstanceTypeRequest is POST /instance-types (admins). Sizes are
// required and bounded as in a create request.
type CreateInstanceTypeRequest struct {
	Name         string            `json:"name"`
	DisplayName  string            `json:"display_name,omitempty"`
	Description  string            `json:"description,omitempty"`
	CPUCores     float64           `json:"cpu_cores"` // 0.25–16 in steps of 0.25
	MemoryGB     int               `json:"memory_gb"`
	StorageGB    int               `json:"storage_gb"`
	SortOrder    int               `json:"sort_order,omitempty"`
	Resources    map[string]string `json:"resources,omitempty"`
	NodeSelector map[string]string `json:"node_selector,omitempty"`
}

// UpdateInstanceTypeRequest is PATCH /instance-types/{name} (admins):
// fields left nil are kept; Resources and NodeSelector, when sent,
// replace the type's whole map ({} clears it). Environments made from the
// type keep what they were made with.
type UpdateInstanceTypeRequest struct {
	DisplayName  *string            `json:"display_name,omitempty"`
	Description  *string            `json:"description,omitempty"`
	CPUCores     *float64           `json:"cpu_cores,omitempty"`
	MemoryGB     *int               `json:"memory_gb,omitempty"`
	StorageGB    *int               `json:"storage_gb,omitempty"`
	SortOrder    *int               `json:"sort_order,omitempty"`
	Resources    *map[string]string `json:"resources,omitempty"`
	NodeSelector *map[string]string `json:"node_selector,omitempty"`
	IsActive     *bool              `json:"is_active,omitempty"`
}
