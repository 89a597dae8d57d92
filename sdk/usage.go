package sdk

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// UsageSample is one measurement of a workspace, taken by its supervisor,
// with what it cost.
type UsageSample struct {
	Timestamp time.Time `json:"timestamp"`
	// CPUUsagePercent is CPU time over wall time since the previous sample,
	// in percent of one core (250: two and a half cores busy).
	CPUUsagePercent float64 `json:"cpu_usage_percent"`
	MemoryUsageMB   int64   `json:"memory_usage_mb"` // in use now, MiB
	DiskUsageMB     int64   `json:"disk_usage_mb"`   // used on the workspace's filesystem, MiB
	// NetworkInMB and NetworkOutMB are the MiB received and sent since the
	// previous sample.
	NetworkInMB   float64 `json:"network_in_mb"`
	NetworkOutMB  float64 `json:"network_out_mb"`
	CostAmount    float64 `json:"cost_amount"`
	BillingPeriod string  `json:"billing_period"` // YYYY-MM
}

// Usage returns an environment's usage samples, oldest first: those taken
// after since (zero: the server's default, the last 24 hours), at most limit
// of them (<= 0: the server's default, 1000).
func (c *Client) Usage(ctx context.Context, envID string, since time.Time, limit int) ([]UsageSample, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Usage []UsageSample `json:"usage"`
	}
	if err := c.do(ctx, "GET", envPath(envID, "/usage"), q, nil, &out); err != nil {
		return nil, err
	}
	return out.Usage, nil
}
