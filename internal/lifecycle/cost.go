package lifecycle

import (
	"math"
	"strconv"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// Pricing turns an environment's size into money per hour. The defaults are
// Azure Container Instances' Linux pay-as-you-go list prices (East US) and
// Azure Files' hot tier, so that figures mean the same on every runtime; an
// operator sets their own with --price-* flags or DEV8_PRICE_* variables.
// A runtime that prices its own regions (runtime.RegionPricer: azure)
// replaces the compute prices for the environments it runs.
type Pricing struct {
	CPUHour       float64 // per vCPU per hour
	MemoryGBHour  float64 // per GB of memory per hour
	StorageGBHour float64 // per GB of workspace storage per hour
}

// DefaultPricing: ACI $0.0000113/vCPU-s and $0.0000012/GB-s; Azure Files
// $0.06/GB-month (730 h ≈ $0.0000822/GB-h).
var DefaultPricing = Pricing{
	CPUHour:       0.04068,
	MemoryGBHour:  0.00432,
	StorageGBHour: 0.0000822,
}

// HourlyCost is what an environment of that size costs per running hour,
// rounded to 1/10000 of a unit so list prices read cleanly.
func (p Pricing) HourlyCost(cpuCores float64, memoryGB, storageGB int) float64 {
	c := cpuCores*p.CPUHour + float64(memoryGB)*p.MemoryGBHour + float64(storageGB)*p.StorageGBHour
	return math.Round(c*10000) / 10000
}

// pricing is what an environment on runtime rt in region costs: the
// runtime's own compute prices for the region where it has them
// (runtime.RegionPricer), else the installation's; storage always at the
// installation's price.
func (m *Manager) pricing(rt, region string) Pricing {
	p := m.cfg.Pricing
	if rp, ok := m.runtimes[rt].(runtime.RegionPricer); ok {
		if cpu, mem, ok := rp.ComputePrices(region); ok {
			p.CPUHour, p.MemoryGBHour = cpu, mem
		}
	}
	return p
}

// ListPricing is the price table behind the estimated_cost_per_hour of
// template and instance type listings, which no environment has chosen a
// runtime or region for yet: the default runtime's (else the first
// offered runtime's) in its default region. An environment's own figure
// is priced where it runs.
func (m *Manager) ListPricing() Pricing {
	rt := m.cfg.DefaultRuntime
	if rt == "" && len(m.offered) > 0 {
		rt = m.offered[0]
	}
	region := ""
	if rg, ok := m.runtimes[rt].(runtime.Regioner); ok {
		region, _ = rg.Region("")
	}
	return m.pricing(rt, region)
}

// TotalCost is what env has cost up to now: the cost accrued over earlier runs
// plus the running one.
func TotalCost(env store.Environment, now time.Time) float64 {
	total := env.TotalCost
	if env.RunningSince != nil && now.After(*env.RunningSince) {
		total += now.Sub(*env.RunningSince).Hours() * env.EstimatedCostPerHour
	}
	return total
}

// RoundCost keeps six decimals of a cost: sub-cent precision without float
// noise, for figures shown to people.
func RoundCost(c float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(c, 'f', 6, 64), 64)
	return r
}

// settleCost folds the running period into TotalCost and clears RunningSince;
// called whenever compute stops being charged.
func settleCost(env *store.Environment, now time.Time) {
	env.TotalCost = TotalCost(*env, now)
	env.RunningSince = nil
}
