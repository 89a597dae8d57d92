// Package azure is the runtime that runs each workspace as an Azure
// Container Instances container group with an Azure Files share as its
// /workspace, over the Azure SDK for Go (armcontainerinstance/v2,
// armstorage, azidentity).
//
// Per environment <id> it manages, named dev8-<id> (the id lower-case,
// "_" written "-"):
//
//	file share       in Config.StorageAccount: the persistent /workspace
//	                 (quota: Spec.StorageGB) and the instance's record: it
//	                 exists from Create to Delete, carries the metadata
//	                 dev8_managed, dev8_installation, dev8_environment and
//	                 dev8_user, and is what Inspect and List find. Stop
//	                 keeps it; Delete removes it.
//	container group  in Config.ResourceGroup, in the environment's region:
//	                 the compute, made by the first Start (ACI runs a group
//	                 as soon as it is made, so Create does not), stopped by
//	                 Stop (ACI releases the compute and stops billing, the
//	                 group stays) and started again by Start (BeginStart)
//	                 when its spec is unchanged, else made anew from the
//	                 spec the last Create recorded. Tagged dev8.managed,
//	                 dev8.installation, dev8.environment, dev8.user and
//	                 dev8.spec (a hash of the spec it runs).
//
// A group has no public IP address and exposes no port: the supervisor
// dials out to the server at Spec.AgentURL (the access URL) like on every
// other runtime, so the network only needs outbound HTTPS to the server.
// Groups are hypervisor-isolated from one another by ACI.
//
// The supervisor needs no custom workspace image: an init container of
// Config.SupervisorImage copies its binary into an emptyDir volume shared
// with the workspace container, whose command is that binary (ACI has init
// containers and emptyDir volumes since API version 2019-12-01; this
// package uses 2023-05-01). The agent token is a secret volume; the
// workspace's environment variables are secure values (ARM never returns
// them); the storage account key the Azure Files volume needs is read with
// the server's credential (ListKeys) when a group is made, never configured.
//
// Credentials: Config.Credential, else azidentity.DefaultAzureCredential
// (environment, workload identity, managed identity, Azure CLI). Requests
// are retried by the SDK's retry policy on 408, 429 and 5xx, honouring
// Retry-After; long-running operations are polled with the SDK's pollers
// under the caller's context.
//
// ACI has no event stream a server could watch without a public endpoint
// (Event Grid pushes to a webhook), so the Runtime is not an ExitNotifier:
// a workspace that exits is noticed by the lifecycle's periodic Inspect.
//
// Files: azure.go (Config, New, names), spec.go (the group's and share's
// specs, sizes), lifecycle.go (Create, Start, Stop, Delete), inspect.go
// (Inspect, List, states, errors), ping.go (the start-up checks).
package azure

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"

	"dev8.dev/dev8/internal/runtime"
)

// Paths inside every container group.
const (
	WorkspaceDir   = "/workspace"
	DefaultHomeDir = "/home/dev8"
	SupervisorDir  = "/.dev8/bin"
	SupervisorPath = SupervisorDir + "/dev8"
	AgentTokenDir  = "/.dev8/agent"
	RunDir         = "/run/dev8"
	// CodeServerSocket is code-server's address in a workspace.
	CodeServerSocket  = "unix:" + RunDir + "/code-server.sock"
	DefaultCodeServer = "/opt/code-server/node_modules/.bin/code-server"
)

// Registry is a private image registry's credentials, applied to every
// container group (ACI uses the one whose server an image names).
type Registry struct {
	// Server is the registry's host ("myteam.azurecr.io").
	Server string
	// Username and Password, or Identity: the resource id of a
	// user-assigned managed identity allowed to pull (AcrPull), which the
	// groups are given.
	Username, Password string
	Identity           string
}

// Config configures an azure Runtime.
type Config struct {
	// SubscriptionID and ResourceGroup are where container groups go.
	SubscriptionID string
	ResourceGroup  string
	// Regions the groups may run in; the first is the default (an
	// environment created without cloud_region). At least one.
	Regions []string
	// StorageAccount holds the workspaces' file shares; it is in
	// StorageResourceGroup (default ResourceGroup).
	StorageAccount       string
	StorageResourceGroup string
	// Subnets puts the groups of a region into a virtual network: region →
	// the resource id of a subnet delegated to
	// Microsoft.ContainerInstance/containerGroups in that region. The
	// groups get a private address there and still expose no port; the
	// subnet's routes must reach the server. Regions not named get no
	// virtual network.
	Subnets map[string]string
	// SupervisorImage is the image whose /dev8-supervisor the init
	// container copies into every workspace. Required.
	SupervisorImage string
	// DefaultImage is used when Spec.Image is empty; ImageRefs maps a
	// template's image name to the reference to run.
	DefaultImage string
	ImageRefs    map[string]string
	Registries   []Registry
	// AgentURL, if set, replaces Spec.AgentURL: where groups reach the
	// server.
	AgentURL string
	// MaxCPU and MaxMemoryGB bound a group's size (ACI's per-group limits
	// in most regions: 4 vCPU, 16 GB). Defaults 4 and 16.
	MaxCPU      float64
	MaxMemoryGB float64
	// Prices are Container Instances' list prices by region, over
	// DefaultPrices; each must be one of Regions. See Runtime.ComputePrices.
	Prices map[string]Price
	// CodeServer is code-server's path in the workspace images. Default
	// DefaultCodeServer; "none": workspaces have no IDE.
	CodeServer string
	HomeDir    string
	ExtraEnv   []string
	// Installation names this Dev8 installation. Default "default".
	Installation string
	StopTimeout  time.Duration
	// StartTimeout bounds how long Start waits for a group to run.
	// Default 10 minutes.
	StartTimeout time.Duration
	// PollInterval is how often long-running operations and a starting
	// group are polled when Azure gives no Retry-After. Default 2s (the
	// SDK refuses less than 1s outside tests).
	PollInterval time.Duration
	// Retry configures the SDK's retry policy (429, 5xx, Retry-After).
	// Zero fields: MaxRetries 6, RetryDelay 2s, MaxRetryDelay 60s.
	Retry policy.RetryOptions
	// Credential, if nil, is azidentity.DefaultAzureCredential.
	Credential azcore.TokenCredential
	// ClientOptions, if set, are the ARM clients' options (tests: a fake
	// transport); Retry is applied to them.
	ClientOptions *arm.ClientOptions
	Logger        *slog.Logger
}

// Runtime runs workspaces as ACI container groups. See the package doc.
type Runtime struct {
	cfg      Config
	log      *slog.Logger
	cred     azcore.TokenCredential
	groups   *armcontainerinstance.ContainerGroupsClient
	location *armcontainerinstance.LocationClient
	shares   *armstorage.FileSharesClient
	accounts *armstorage.AccountsClient

	mu sync.Mutex
	// pending is the spec each environment's last Create recorded for
	// its next Start (ARM keeps a group's secure values and secret
	// volumes write-only, so the group cannot give them back).
	pending map[string]runtime.Spec
	// newShare holds environments whose share a Create made but whose
	// Create failed after that: the retry still reports StorageCreated.
	newShare map[string]bool
	// started holds environments this Runtime started and did not stop
	// since: a group missing then was deleted behind its back.
	started map[string]bool
	// key is the storage account's key, read once (ListKeys).
	key string
	// prices are DefaultPrices and Config.Prices (read-only).
	prices map[string]Price
}

var (
	_ runtime.Runtime      = (*Runtime)(nil)
	_ runtime.Regioner     = (*Runtime)(nil)
	_ runtime.RegionPricer = (*Runtime)(nil)
)

// A region name as ARM spells it: "westeurope", "eastus2".
var validRegion = regexp.MustCompile(`^[a-z][a-z0-9]{1,40}$`)

// Storage account names: 3-24 lower-case letters and digits.
var validAccount = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// New checks cfg and returns a Runtime. It calls nothing: see Ping.
func New(cfg Config) (*Runtime, error) {
	var errs []error
	if cfg.SubscriptionID == "" {
		errs = append(errs, errors.New("no subscription (--azure-subscription)"))
	}
	if cfg.ResourceGroup == "" {
		errs = append(errs, errors.New("no resource group (--azure-resource-group)"))
	}
	if !validAccount.MatchString(cfg.StorageAccount) {
		errs = append(errs, fmt.Errorf("storage account %q (--azure-storage-account): want 3-24 lower-case letters and digits", cfg.StorageAccount))
	}
	if cfg.SupervisorImage == "" {
		errs = append(errs, errors.New("no supervisor image (--azure-supervisor-image)"))
	}
	if len(cfg.Regions) == 0 {
		errs = append(errs, errors.New("no region (--azure-regions)"))
	}
	for _, r := range cfg.Regions {
		if !validRegion.MatchString(r) {
			errs = append(errs, fmt.Errorf("region %q: want a region name as Azure spells it (westeurope, eastus2)", r))
		}
	}
	for _, region := range slices.Sorted(maps.Keys(cfg.Subnets)) {
		if !slices.Contains(cfg.Regions, region) {
			errs = append(errs, fmt.Errorf("subnet for region %q (--azure-subnets): not one of the regions (--azure-regions)", region))
		}
		if err := checkSubnet(cfg.Subnets[region]); err != nil {
			errs = append(errs, fmt.Errorf("subnet for region %s (--azure-subnets): %w", region, err))
		}
	}
	for _, reg := range cfg.Registries {
		if reg.Server == "" || strings.Contains(reg.Server, "/") {
			errs = append(errs, fmt.Errorf("registry %q: want a host name without scheme or path", reg.Server))
		}
		if reg.Identity == "" && (reg.Username == "" || reg.Password == "") {
			errs = append(errs, fmt.Errorf("registry %s: want a username and password, or a managed identity", reg.Server))
		}
	}
	table, unpriced, err := prices(cfg)
	if err != nil {
		errs = append(errs, fmt.Errorf("--azure-prices: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("azure: %w", err)
	}
	if cfg.StorageResourceGroup == "" {
		cfg.StorageResourceGroup = cfg.ResourceGroup
	}
	if cfg.MaxCPU <= 0 {
		cfg.MaxCPU = 4
	}
	if cfg.MaxMemoryGB <= 0 {
		cfg.MaxMemoryGB = 16
	}
	if cfg.CodeServer == "" {
		cfg.CodeServer = DefaultCodeServer
	} else if cfg.CodeServer == "none" {
		cfg.CodeServer = ""
	}
	if cfg.HomeDir == "" {
		cfg.HomeDir = DefaultHomeDir
	}
	if cfg.Installation == "" {
		cfg.Installation = "default"
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(unpriced) > 0 {
		cfg.Logger.Warn("azure: no Container Instances price for these regions: their workspaces cost what --price-cpu-hour and --price-memory-gb-hour say; give Azure's with --azure-prices",
			"regions", strings.Join(unpriced, ","))
	}
	cred := cfg.Credential
	if cred == nil {
		c, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("azure: credential: %w", err)
		}
		cred = c
	}
	opts := arm.ClientOptions{}
	if cfg.ClientOptions != nil {
		opts = *cfg.ClientOptions
	}
	opts.Retry = retryOptions(cfg.Retry)
	aci, err := armcontainerinstance.NewClientFactory(cfg.SubscriptionID, cred, &opts)
	if err != nil {
		return nil, fmt.Errorf("azure: container instances client: %w", err)
	}
	st, err := armstorage.NewClientFactory(cfg.SubscriptionID, cred, &opts)
	if err != nil {
		return nil, fmt.Errorf("azure: storage client: %w", err)
	}
	return &Runtime{
		cfg: cfg, cred: cred,
		log:      cfg.Logger.With("runtime", "azure", "resource_group", cfg.ResourceGroup),
		groups:   aci.NewContainerGroupsClient(),
		location: aci.NewLocationClient(),
		shares:   st.NewFileSharesClient(),
		accounts: st.NewAccountsClient(),
		prices:   table,
		pending:  map[string]runtime.Spec{},
		newShare: map[string]bool{},
		started:  map[string]bool{},
	}, nil
}

// retryOptions are the SDK retry policy's options: the SDK retries 408,
// 429 and 5xx, waits what Retry-After says (else backs off exponentially
// from RetryDelay), and gives up after MaxRetries; ARM throttles by
// subscription, so a few more tries than the SDK's 3 ride out a burst.
func retryOptions(o policy.RetryOptions) policy.RetryOptions {
	if o.MaxRetries == 0 {
		o.MaxRetries = 6
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = 2 * time.Second
	}
	if o.MaxRetryDelay == 0 {
		o.MaxRetryDelay = time.Minute
	}
	return o
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "azure" }

// Region implements runtime.Regioner.
func (r *Runtime) Region(name string) (string, error) {
	if name == "" || name == r.Name() {
		return r.cfg.Regions[0], nil
	}
	if slices.Contains(r.cfg.Regions, name) {
		return name, nil
	}
	return "", fmt.Errorf("region %q is not one the azure runtime is configured for (%s)", name, strings.Join(r.cfg.Regions, ", "))
}

// Environment ids become parts of group and share names: lower-case
// letters, digits, "_" and "-", short enough for "dev8-" and 63 bytes,
// without "--" (shares refuse it).
// At most 53 characters: a share's name has at most 63, and the home's
// is HomeShareName's.
var validID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,51}[a-z0-9]$`)

func checkID(id string) error {
	if !validID.MatchString(id) || strings.Contains(ObjectName(id), "--") {
		return fmt.Errorf("invalid environment id %q (lower-case letters, digits, _ and -, at most 53)", id)
	}
	return nil
}

// ObjectName is the name of an environment's container group and share.
func ObjectName(environmentID string) string {
	return "dev8-" + strings.ReplaceAll(environmentID, "_", "-")
}

// checkSubnet: id is a subnet's resource id.
func checkSubnet(id string) error {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return fmt.Errorf("%q is not a resource id: %w", id, err)
	}
	if !strings.EqualFold(rid.ResourceType.String(), "Microsoft.Network/virtualNetworks/subnets") {
		return fmt.Errorf("%q is a %s, not a subnet (/subscriptions/…/resourceGroups/…/providers/Microsoft.Network/virtualNetworks/VNET/subnets/SUBNET)", id, rid.ResourceType)
	}
	return nil
}

// HomeShareName is the name of the share that holds an environment's home.
func HomeShareName(environmentID string) string { return ObjectName(environmentID) + "-home" }

// Tags on container groups: the runtime's labels, and the spec hash.
const tagSpec = "dev8.spec"

// Share metadata names must be C# identifiers: the labels with "_".
func metaName(label string) string { return strings.ReplaceAll(label, ".", "_") }

func (r *Runtime) labels(environmentID, userID string) map[string]string {
	return map[string]string{
		runtime.LabelManaged:      "true",
		runtime.LabelInstallation: r.cfg.Installation,
		runtime.LabelEnvironment:  environmentID,
		runtime.LabelUser:         userID,
	}
}

// ours reports whether tags (a group's, or a share's metadata read back
// through metaName) are environmentID's, made by this installation.
func (r *Runtime) ours(get func(string) string, environmentID string) bool {
	return get(runtime.LabelManaged) == "true" && get(runtime.LabelInstallation) == r.cfg.Installation &&
		(environmentID == "" || get(runtime.LabelEnvironment) == environmentID)
}

func tagGetter(tags map[string]*string) func(string) string {
	return func(k string) string {
		if v := tags[k]; v != nil {
			return *v
		}
		return ""
	}
}

func metaGetter(meta map[string]*string) func(string) string {
	return func(k string) string {
		// ARM may hand metadata names back in another case.
		for mk, v := range meta {
			if strings.EqualFold(mk, metaName(k)) && v != nil {
				return *v
			}
		}
		return ""
	}
}
