package agentapi

import "time"

// UsageSample is one measurement of a workspace, in the usage API's units,
// as the supervisor reports it (POST /api/v1/environments/{id}/usage) and
// the server lists it.
type UsageSample struct {
	// Timestamp is when the sample was taken; the figures that are rates or
	// deltas cover the time since the previous sample.
	Timestamp time.Time `json:"timestamp"`
	// CPUUsagePercent is CPU time over wall time since the previous sample,
	// in percent of one core: 250 means two and a half cores were busy.
	CPUUsagePercent float64 `json:"cpu_usage_percent"`
	// MemoryUsageMB is the memory in use now, in MiB.
	MemoryUsageMB int64 `json:"memory_usage_mb"`
	// DiskUsageMB is the space the workspace directory's files take (as du
	// counts it, not the used space of the file system holding them), in
	// MiB. Large workspaces are measured less often than every sample.
	DiskUsageMB int64 `json:"disk_usage_mb"`
	// NetworkInMB and NetworkOutMB are the MiB received and sent since the
	// previous sample.
	NetworkInMB  float64 `json:"network_in_mb"`
	NetworkOutMB float64 `json:"network_out_mb"`
}

// UsageReport is the body of a usage report.
type UsageReport struct {
	Samples []UsageSample `json:"samples"`
}
