package azure

import (
	"strings"
	"testing"

	"dev8.dev/dev8/internal/runtime"
)

// TestGroupSpec: a create with 0.5 vCPU, westeurope and a secret, started,
// sends ARM a group with CPU 0.5 in that region, the secret as a secure
// value only, no IP address and no ports, the share at /workspace, the
// supervisor injected and the registry's credentials; what ARM keeps to
// read has none of the secrets.
func TestGroupSpec(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv, func(c *Config) {
		c.Registries = []Registry{{Server: "team.azurecr.io", Username: "puller", Password: "registry-pw"}}
	})
	ctx := t.Context()
	spec := runtime.Spec{
		EnvironmentID: "env-1", UserID: "u1", Image: "team.azurecr.io/ws:1",
		CPUCores: 0.5, MemoryGB: 2, StorageGB: 7, Region: "westeurope",
		Env: map[string]string{"GITHUB_TOKEN": "ghp_s3cret"}, AgentURL: "https://dev8.example.com", AgentToken: "tok-9f8e7d6c",
	}
	if _, err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	share, ok := srv.Share("dev8-env-1")
	if !ok || *share.FileShareProperties.ShareQuota != 7 {
		t.Fatalf("share %+v, %v; want one with quota 7", share.FileShareProperties, ok)
	}
	if _, sent := srv.Sent("dev8-env-1"); sent {
		t.Fatalf("Create made a container group (ACI runs a group when it is made)")
	}
	if _, err := rt.Start(ctx, "env-1"); err != nil {
		t.Fatal(err)
	}
	g, ok := srv.Sent("dev8-env-1")
	if !ok {
		t.Fatal("no container group sent")
	}
	p := g.Properties
	if *g.Location != "westeurope" {
		t.Errorf("location %q", *g.Location)
	}
	if p.IPAddress != nil {
		t.Errorf("IP address %+v; want none", p.IPAddress)
	}
	if len(p.Containers) != 1 {
		t.Fatalf("%d containers", len(p.Containers))
	}
	c := p.Containers[0].Properties
	if got := *c.Resources.Requests.CPU; got != 0.5 {
		t.Errorf("CPU %v, want 0.5", got)
	}
	if got := *c.Resources.Requests.MemoryInGB; got != 2 {
		t.Errorf("memory %v GB, want 2", got)
	}
	if len(c.Ports) != 0 {
		t.Errorf("ports %+v; want none", c.Ports)
	}
	if *c.Image != "team.azurecr.io/ws:1" || strings.Join(derefs(c.Command), " ") != SupervisorPath+" supervisor" {
		t.Errorf("image %q command %q", *c.Image, derefs(c.Command))
	}
	var found bool
	for _, e := range c.EnvironmentVariables {
		switch {
		case *e.Name == "GITHUB_TOKEN":
			found = true
			if e.Value != nil || e.SecureValue == nil || *e.SecureValue != "ghp_s3cret" {
				t.Errorf("GITHUB_TOKEN: value %v secure %v; want the secret as a secure value only", e.Value, e.SecureValue)
			}
		case e.Value != nil && strings.Contains(*e.Value, "tok-9f8e7d6c"):
			t.Errorf("the agent token is in plain variable %s", *e.Name)
		}
	}
	if !found {
		t.Error("GITHUB_TOKEN not in the environment")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[*m.MountPath] = *m.Name
	}
	vols := map[string]bool{}
	for _, v := range p.Volumes {
		vols[*v.Name] = true
		switch {
		case *v.Name == mounts[WorkspaceDir]:
			if v.AzureFile == nil || *v.AzureFile.ShareName != "dev8-env-1" || *v.AzureFile.StorageAccountName != testAccount || *v.AzureFile.StorageAccountKey != srv.Key {
				t.Errorf("/workspace volume %+v; want the share dev8-env-1", v)
			}
		case *v.Name == mounts[DefaultHomeDir]:
			if v.AzureFile == nil || *v.AzureFile.ShareName != "dev8-env-1-home" || *v.AzureFile.StorageAccountName != testAccount || *v.AzureFile.StorageAccountKey != srv.Key {
				t.Errorf("home volume %+v; want the share dev8-env-1-home", v)
			}
		case *v.Name == mounts[AgentTokenDir]:
			if v.Secret[agentTokenFile] == nil {
				t.Errorf("agent token volume %+v", v)
			}
		}
	}
	if mounts[WorkspaceDir] == "" || mounts[DefaultHomeDir] == "" || mounts[SupervisorDir] == "" || mounts[AgentTokenDir] == "" {
		t.Errorf("mounts %v", mounts)
	}
	if len(p.InitContainers) != 2 || *p.InitContainers[0].Properties.Image != "dev8.azurecr.io/dev8-supervisor:test" ||
		*p.InitContainers[0].Properties.VolumeMounts[0].Name != mounts[SupervisorDir] {
		t.Fatalf("init containers %+v: want the supervisor copied into the shared volume, then the home seeded", p.InitContainers)
	}
	// The home share is filled from the image's home by the copied
	// supervisor, run from the workspace image.
	seed := p.InitContainers[1].Properties
	seedMounts := map[string]string{}
	for _, m := range seed.VolumeMounts {
		seedMounts[*m.MountPath] = *m.Name
	}
	if *seed.Image != *c.Image || strings.Join(derefs(seed.Command), " ") != SupervisorPath+" seed-home "+DefaultHomeDir+" "+HomeVolumeDir ||
		seedMounts[SupervisorDir] != mounts[SupervisorDir] || seedMounts[HomeVolumeDir] != mounts[DefaultHomeDir] {
		t.Errorf("home seeding init container %+v, mounts %v", seed, seedMounts)
	}
	if p.SubnetIDs != nil {
		t.Errorf("subnets %+v without --azure-subnets", p.SubnetIDs)
	}
	if len(p.ImageRegistryCredentials) != 1 || *p.ImageRegistryCredentials[0].Server != "team.azurecr.io" ||
		*p.ImageRegistryCredentials[0].Username != "puller" || *p.ImageRegistryCredentials[0].Password != "registry-pw" {
		t.Errorf("registry credentials %+v", p.ImageRegistryCredentials)
	}
	if *p.RestartPolicy != "Never" || *p.OSType != "Linux" {
		t.Errorf("restart policy %s, OS %s", *p.RestartPolicy, *p.OSType)
	}
	for k, want := range map[string]string{runtime.LabelManaged: "true", runtime.LabelInstallation: "test", runtime.LabelEnvironment: "env-1", runtime.LabelUser: "u1"} {
		if g.Tags[k] == nil || *g.Tags[k] != want {
			t.Errorf("tag %s = %v, want %s", k, g.Tags[k], want)
		}
	}
}

func derefs(ps []*string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

func TestSizes(t *testing.T) {
	t.Parallel()
	rt := newFakeRuntime(t, newFake())
	for _, tc := range []struct {
		name     string
		spec     runtime.Spec
		cpu, mem float64
		err      string
	}{
		{"half a CPU", runtime.Spec{CPUCores: 0.5, MemoryGB: 1}, 0.5, 1, ""},
		{"whole CPUs", runtime.Spec{CPUCores: 2, MemoryGB: 4}, 2, 4, ""},
		{"one and a half", runtime.Spec{CPUCores: 1.5, MemoryGB: 3}, 1.5, 3, ""},
		{"defaults", runtime.Spec{}, 1, 2, ""},
		{"largest", runtime.Spec{CPUCores: 4, MemoryGB: 16, StorageGB: 5120}, 4, 16, ""},
		{"too many CPUs", runtime.Spec{CPUCores: 5, MemoryGB: 4}, 0, 0, "5 vCPU is more than"},
		{"too fine", runtime.Spec{CPUCores: 0.333, MemoryGB: 1}, 0, 0, "steps of 0.01"},
		{"too much memory", runtime.Spec{CPUCores: 2, MemoryGB: 32}, 0, 0, "32 GB of memory"},
		{"too much storage", runtime.Spec{CPUCores: 1, StorageGB: 6000}, 0, 0, "6000 GB of storage"},
	} {
		cpu, mem, err := rt.size(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: size = %v, %v, %v; want an error with %q", tc.name, cpu, mem, err, tc.err)
			}
			continue
		}
		if err != nil || cpu != tc.cpu || mem != tc.mem {
			t.Errorf("%s: size = %v, %v, %v; want %v, %v", tc.name, cpu, mem, err, tc.cpu, tc.mem)
		}
	}
	if q := shareQuota(runtime.Spec{}); q != 1 {
		t.Errorf("quota of no storage = %d, want 1", q)
	}
}

// TestRegions: the default region for none (and for "azure", what an
// environment created without one records), a configured one as is, and
// an unknown one refused with the list — by Create before any request.
func TestRegions(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv)
	for in, want := range map[string]string{"": "westeurope", "azure": "westeurope", "westeurope": "westeurope", "eastus": "eastus"} {
		if got, err := rt.Region(in); err != nil || got != want {
			t.Errorf("Region(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := rt.Region("northeurope")
	if err == nil || !strings.Contains(err.Error(), "westeurope, eastus") {
		t.Errorf("Region(northeurope) = %v; want an error naming the configured regions", err)
	}
	_, err = rt.Create(t.Context(), runtime.Spec{EnvironmentID: "env-r", Region: "northeurope"})
	if err == nil || !runtime.IsPermanent(err) {
		t.Fatalf("Create in an unknown region = %v; want a permanent error", err)
	}
	if calls := srv.Calls(); len(calls) != 0 {
		t.Fatalf("Create in an unknown region called ARM: %v", calls)
	}
	// eastus is used when asked for.
	if _, err := rt.Create(t.Context(), runtime.Spec{EnvironmentID: "env-e", Region: "eastus"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(t.Context(), "env-e"); err != nil {
		t.Fatal(err)
	}
	if g, _ := srv.Sent("dev8-env-e"); *g.Location != "eastus" {
		t.Fatalf("location %q, want eastus", *g.Location)
	}
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	srv := newFake()
	good := Config{SubscriptionID: "s", ResourceGroup: "rg", StorageAccount: "acct1", Regions: []string{"westeurope"},
		SupervisorImage: "img", Credential: srv.Credential(), ClientOptions: srv.ClientOptions()}
	if _, err := New(good); err != nil {
		t.Fatalf("New(good) = %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"no subscription":          {func(c *Config) { c.SubscriptionID = "" }, "--azure-subscription"},
		"no resource group":        {func(c *Config) { c.ResourceGroup = "" }, "--azure-resource-group"},
		"bad account":              {func(c *Config) { c.StorageAccount = "Bad_Account" }, "--azure-storage-account"},
		"no regions":               {func(c *Config) { c.Regions = nil }, "--azure-regions"},
		"bad region":               {func(c *Config) { c.Regions = []string{"West Europe"} }, `region "West Europe"`},
		"no supervisor image":      {func(c *Config) { c.SupervisorImage = "" }, "--azure-supervisor-image"},
		"registry no secret":       {func(c *Config) { c.Registries = []Registry{{Server: "r.io", Username: "u"}} }, "registry r.io"},
		"subnet of another region": {func(c *Config) { c.Subnets = map[string]string{"eastus": testSubnet} }, `subnet for region "eastus" (--azure-subnets): not one of the regions`},
		"subnet not a resource id": {func(c *Config) { c.Subnets = map[string]string{"westeurope": "vnet1/sub1"} }, `subnet for region westeurope (--azure-subnets): "vnet1/sub1" is not a resource id`},
		"subnet a virtual network": {func(c *Config) {
			c.Subnets = map[string]string{"westeurope": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet1"}
		}, "is a Microsoft.Network/virtualNetworks, not a subnet"},
	} {
		cfg := good
		tc.edit(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v; want an error with %q", name, err, tc.want)
		}
	}
}

const testSubnet = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/aci"

// TestVirtualNetwork: groups of a region given a subnet are put in it
// (still without ports); those of other regions are not.
func TestVirtualNetwork(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv, func(c *Config) { c.Subnets = map[string]string{"westeurope": testSubnet} })
	ctx := t.Context()
	for _, region := range []string{"westeurope", "eastus"} {
		id := "env-" + region
		if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: id, Region: region}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		g, _ := srv.Sent(ObjectName(id))
		p := g.Properties
		if p.IPAddress != nil || len(p.Containers[0].Properties.Ports) != 0 {
			t.Errorf("%s: IP address %+v, ports %+v; want none", region, p.IPAddress, p.Containers[0].Properties.Ports)
		}
		switch {
		case region == "westeurope" && (len(p.SubnetIDs) != 1 || *p.SubnetIDs[0].ID != testSubnet):
			t.Errorf("%s: subnets %+v, want %s", region, p.SubnetIDs, testSubnet)
		case region == "eastus" && p.SubnetIDs != nil:
			t.Errorf("%s: subnets %+v, want none", region, p.SubnetIDs)
		}
	}
}
