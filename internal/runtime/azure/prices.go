package azure

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Price is Container Instances' Linux pay-as-you-go list price in one
// region, per second as Azure lists it. A container group is billed for
// the vCPUs and memory it requests, per second, while it runs (a stopped
// group costs nothing); its Azure Files share is priced by the
// installation's --price-storage-gb-hour.
type Price struct {
	VCPUSecond float64 // per vCPU per second
	GBSecond   float64 // per GB of memory per second
}

// DefaultPrices are the regions whose list prices this package knows:
// East US, $0.0000113 per vCPU-second and $0.0000012 per GB-second, the
// figures of https://azure.microsoft.com/pricing/details/container-instances/
// that lifecycle.DefaultPricing was made from (USD; not re-checked when
// this table was written, on 2026-12-07: the price list was out of reach
// of the machine it was written on). Every other region an installation
// uses is priced with --azure-prices (the same page, or the Retail Prices
// API: serviceName 'Container Instances', meters "Standard vCPU Duration"
// and "Standard Memory Duration" per armRegionName); without one, its
// workspaces cost what --price-cpu-hour and --price-memory-gb-hour say,
// and the server warns at start.
var DefaultPrices = map[string]Price{
	"eastus": {VCPUSecond: 0.0000113, GBSecond: 0.0000012},
}

// ParsePrices parses --azure-prices: comma-separated
// region=vCPU-second/GB-second list prices,
// "westeurope=0.0000124/0.0000014,eastus2=0.0000113/0.0000012".
func ParsePrices(s string) (map[string]Price, error) {
	out := map[string]Price{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		region, pair, ok := strings.Cut(item, "=")
		cpu, mem, ok2 := strings.Cut(pair, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%q: want region=vCPU-second/GB-second, such as westeurope=0.0000124/0.0000014", item)
		}
		region = strings.TrimSpace(region)
		if !validRegion.MatchString(region) {
			return nil, fmt.Errorf("%q: want a region name as Azure spells it (westeurope, eastus2)", region)
		}
		if _, dup := out[region]; dup {
			return nil, fmt.Errorf("%s is priced twice", region)
		}
		var p Price
		var err error
		if p.VCPUSecond, err = parsePrice(cpu); err != nil {
			return nil, fmt.Errorf("%s: vCPU-second price: %w", region, err)
		}
		if p.GBSecond, err = parsePrice(mem); err != nil {
			return nil, fmt.Errorf("%s: GB-second price: %w", region, err)
		}
		out[region] = p
	}
	return out, nil
}

func parsePrice(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("%q: want a price in USD of at least 0, such as 0.0000124", s)
	}
	// ACI's list prices are around $0.00001 a second; one above $0.001
	// ($3.60 an hour) is a price per hour given by mistake.
	if f > 0.001 {
		return 0, fmt.Errorf("%q: Azure lists these prices per second (0.0000124), not per hour", s)
	}
	return f, nil
}

// prices is DefaultPrices with cfg.Prices over them, checked: every region
// given must be one of cfg.Regions (a price for any other is a typo that
// would leave the intended region unpriced). It returns the regions of
// cfg.Regions that have no price.
func prices(cfg Config) (map[string]Price, []string, error) {
	out := maps.Clone(DefaultPrices)
	var errs []error
	for _, region := range slices.Sorted(maps.Keys(cfg.Prices)) {
		p := cfg.Prices[region]
		if !slices.Contains(cfg.Regions, region) {
			errs = append(errs, fmt.Errorf("a price for region %q, which is not one of --azure-regions (%s)", region, strings.Join(cfg.Regions, ", ")))
		}
		for _, f := range []float64{p.VCPUSecond, p.GBSecond} {
			if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				errs = append(errs, fmt.Errorf("region %s: price %v: want a number of at least 0", region, f))
			}
		}
		out[region] = p
	}
	var unpriced []string
	for _, r := range cfg.Regions {
		if _, ok := out[r]; !ok {
			unpriced = append(unpriced, r)
		}
	}
	return out, unpriced, errors.Join(errs...)
}

// ComputePrices implements runtime.RegionPricer: the group's list prices
// in region, per hour.
func (r *Runtime) ComputePrices(region string) (cpuHour, memoryGBHour float64, ok bool) {
	p, ok := r.prices[region]
	if !ok {
		return 0, 0, false
	}
	return p.VCPUSecond * 3600, p.GBSecond * 3600, true
}
