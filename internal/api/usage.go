package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/usage"
	"dev8.dev/dev8/sdk"
)

// UsageService takes the samples supervisors report and lists stored ones;
// *usage.Writer is one.
type UsageService interface {
	// Add queues an environment's samples priced at costPerHour; it does
	// not block on the database and fails only when shutting down
	// (usage.ErrClosed).
	Add(ctx context.Context, environmentID string, costPerHour float64, samples []agentapi.UsageSample) error
	// List returns stored samples at or after since, oldest first.
	List(ctx context.Context, environmentID string, since time.Time, limit int) ([]store.ResourceUsage, error)
	// Retention is how long samples are kept; older ones are refused.
	Retention() time.Duration
}

// Usage report bounds.
const (
	maxUsageSamples = 1000
	// usageClockSkew is how far in the future a sample may be dated: the
	// supervisor's clock is not the server's.
	usageClockSkew    = 5 * time.Minute
	defaultUsageLimit = 1000
	maxUsageLimit     = 10000
	defaultUsageSince = 24 * time.Hour
)

// errUsageUnavailable answers when usage is not being taken: not wired, or
// the server is shutting down. The supervisor keeps its samples and retries.
var errUsageUnavailable = &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeNotReady, Message: "Usage reporting is unavailable", Details: "the server is not taking usage reports right now; retry later"}

// ingestUsage takes a supervisor's report, {"samples":[...]}, and queues it
// for writing: 202 once queued.
func (a *API) ingestUsage(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	var req agentapi.UsageReport
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if a.usage == nil {
		a.writeError(w, r, errUsageUnavailable)
		return
	}
	samples, err := a.validateUsage(env, req.Samples)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.usage.Add(r.Context(), env.ID, env.EstimatedCostPerHour, samples); err != nil {
		if errors.Is(err, usage.ErrClosed) {
			err = errUsageUnavailable
		}
		a.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]any{"status": "accepted", "samples": len(samples)})
}

// validateUsage checks a report and converts it. CPU is in percent of one
// core, so its ceiling is 100 per core: the environment's cores or this
// machine's, whichever is more (the local runtime shares the server's
// machine and does not cap cores), plus 5% for measurement jitter.
func (a *API) validateUsage(env store.Environment, in []agentapi.UsageSample) ([]agentapi.UsageSample, error) {
	switch {
	case in == nil:
		return nil, httpapi.Validation("samples: required")
	case len(in) == 0:
		return nil, httpapi.Validation("samples: send at least one sample")
	case len(in) > maxUsageSamples:
		return nil, httpapi.Validation(fmt.Sprintf("samples: at most %d per report, got %d", maxUsageSamples, len(in)))
	}
	now := a.now()
	oldest := now.Add(-a.usage.Retention())
	maxCPU := 100 * max(env.CPUCores, float64(runtime.NumCPU()), 1) * 1.05
	out := make([]agentapi.UsageSample, len(in))
	for i, s := range in {
		field := func(name string) string { return fmt.Sprintf("samples[%d].%s", i, name) }
		switch {
		case s.Timestamp.IsZero():
			return nil, httpapi.Validation(field("timestamp") + ": required (RFC 3339)")
		case s.Timestamp.After(now.Add(usageClockSkew)):
			return nil, httpapi.Validation(fmt.Sprintf("%s: %s is in the future (at most %v ahead of the server's clock)", field("timestamp"), s.Timestamp.Format(time.RFC3339), usageClockSkew))
		case s.Timestamp.Before(oldest):
			return nil, httpapi.Validation(fmt.Sprintf("%s: %s is older than the %v retention", field("timestamp"), s.Timestamp.Format(time.RFC3339), a.usage.Retention()))
		case !finite(s.CPUUsagePercent) || s.CPUUsagePercent < 0 || s.CPUUsagePercent > maxCPU:
			return nil, httpapi.Validation(fmt.Sprintf("%s: must be between 0 and %.0f (percent of one core)", field("cpu_usage_percent"), maxCPU))
		case s.MemoryUsageMB < 0:
			return nil, httpapi.Validation(field("memory_usage_mb") + ": must not be negative")
		case s.DiskUsageMB < 0:
			return nil, httpapi.Validation(field("disk_usage_mb") + ": must not be negative")
		case !finite(s.NetworkInMB) || s.NetworkInMB < 0:
			return nil, httpapi.Validation(field("network_in_mb") + ": must not be negative")
		case !finite(s.NetworkOutMB) || s.NetworkOutMB < 0:
			return nil, httpapi.Validation(field("network_out_mb") + ": must not be negative")
		}
		out[i] = agentapi.UsageSample{
			Timestamp:       s.Timestamp.UTC(),
			CPUUsagePercent: s.CPUUsagePercent,
			MemoryUsageMB:   s.MemoryUsageMB,
			DiskUsageMB:     s.DiskUsageMB,
			NetworkInMB:     s.NetworkInMB,
			NetworkOutMB:    s.NetworkOutMB,
		}
	}
	return out, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// listUsage lists an environment's samples taken at or after since (RFC
// 3339; default 24 hours ago), oldest first, at most limit (1-10000,
// default 1000). To page, ask again with since set to the last timestamp
// received (the boundary sample comes again). Samples reach the listing
// within about a second of being reported.
func (a *API) listUsage(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	q := r.URL.Query()
	since := a.now().Add(-defaultUsageSince)
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			a.writeError(w, r, httpapi.Validation(fmt.Sprintf("since: %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", v)))
			return
		}
		since = t
	}
	limit, err := httpapi.IntParam(q.Get("limit"), "limit", defaultUsageLimit, 1, maxUsageLimit)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if a.usage == nil {
		a.writeError(w, r, errUsageUnavailable)
		return
	}
	rows, err := a.usage.List(r.Context(), env.ID, since, limit)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list usage: %w", err))
		return
	}
	// Rendered as the sdk's UsageSample: what the supervisor reported
	// (agentapi.UsageSample), with its price.
	out := make([]sdk.UsageSample, len(rows))
	for i, u := range rows {
		out[i] = sdk.UsageSample{
			Timestamp:       u.Timestamp.UTC(),
			CPUUsagePercent: u.CPUUsagePercent,
			MemoryUsageMB:   u.MemoryUsageMB,
			DiskUsageMB:     u.DiskUsageMB,
			NetworkInMB:     u.NetworkInMB,
			NetworkOutMB:    u.NetworkOutMB,
			CostAmount:      lifecycle.RoundCost(u.CostAmount),
			BillingPeriod:   u.BillingPeriod,
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"usage": out})
}
