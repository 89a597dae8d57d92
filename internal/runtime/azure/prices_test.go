package azure

import (
	"math"
	"strings"
	"testing"
)

// TestParsePrices: --azure-prices takes region=vCPU-second/GB-second
// pairs and refuses, naming the item, anything else.
func TestParsePrices(t *testing.T) {
	t.Parallel()
	got, err := ParsePrices(" westeurope=0.0000124/0.0000014, eastus2=0.0000113/0.0000012 ,")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Price{"westeurope": {0.0000124, 0.0000014}, "eastus2": {0.0000113, 0.0000012}}
	if len(got) != len(want) || got["westeurope"] != want["westeurope"] || got["eastus2"] != want["eastus2"] {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ParsePrices(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	for in, why := range map[string]string{
		"westeurope":                      "want region=vCPU-second/GB-second",
		"westeurope=0.0000124":            "want region=vCPU-second/GB-second",
		"West Europe=0.0000124/0.0000014": "region name as Azure spells it",
		"westeurope=abc/0.0000014":        "vCPU-second price",
		"westeurope=0.0000124/-1":         "GB-second price",
		"westeurope=NaN/0.0000014":        "vCPU-second price",
		"westeurope=Inf/0.0000014":        "vCPU-second price",
		"westeurope=0.0446/0.0000014":     "per second",
		"westeurope=0.001/0":              "",
		"westeurope=1.5/0.0000014":        "per second",
		"northeurope=1e-6/1e-7,westeurope=1e-6/1e-7,northeurope=2e-6/1e-7": "priced twice",
	} {
		_, err := ParsePrices(in)
		if why == "" {
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v; want an error saying %q", in, err, why)
		}
	}
}

// TestPriceTable: a Runtime prices its regions from DefaultPrices and
// Config.Prices, per hour; a region without a price has none (the
// installation's prices apply); a price for a region the runtime does
// not run in, or a negative one, stops New.
func TestPriceTable(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv, func(c *Config) {
		c.Regions = []string{"westeurope", "eastus", "northeurope"}
		c.Prices = map[string]Price{"westeurope": {VCPUSecond: 0.00002, GBSecond: 0.000002}}
	})
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	if cpu, mem, ok := rt.ComputePrices("westeurope"); !ok || !near(cpu, 0.072) || !near(mem, 0.0072) {
		t.Errorf("westeurope: %v, %v, %v; want 0.072 and 0.0072 per hour", cpu, mem, ok)
	}
	if cpu, mem, ok := rt.ComputePrices("eastus"); !ok || !near(cpu, 0.04068) || !near(mem, 0.00432) {
		t.Errorf("eastus: %v, %v, %v; want the built-in 0.04068 and 0.00432 per hour", cpu, mem, ok)
	}
	if _, _, ok := rt.ComputePrices("northeurope"); ok {
		t.Error("northeurope has a price; it was given none")
	}

	for name, edit := range map[string]func(*Config){
		"region not configured": func(c *Config) { c.Prices = map[string]Price{"westeurpe": {1e-5, 1e-6}} },
		"negative":              func(c *Config) { c.Prices = map[string]Price{"westeurope": {-1e-5, 1e-6}} },
		"NaN":                   func(c *Config) { c.Prices = map[string]Price{"westeurope": {1e-5, math.NaN()}} },
	} {
		cfg := Config{SubscriptionID: "s", ResourceGroup: "rg", StorageAccount: "acct1", SupervisorImage: "img",
			Regions: []string{"westeurope", "eastus"}, Credential: srv.Credential(), ClientOptions: srv.ClientOptions()}
		edit(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "--azure-prices") {
			t.Errorf("%s: %v; want New to refuse, naming --azure-prices", name, err)
		}
	}
}
