package azure

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/runtime"
)

// Names of the group's containers and volumes.
const (
	containerWorkspace  = "workspace"
	containerSupervisor = "dev8-supervisor"
	volumeWorkspace     = "workspace"
	volumeSupervisor    = "dev8-bin"
	volumeAgent         = "dev8-agent"
	volumeRun           = "dev8-run"
	volumeHome          = "dev8-home"
	containerHome       = "dev8-home"
	agentTokenFile      = "agent-token"
	// HomeVolumeDir is where the dev8-home init container mounts the home
	// share to fill it from the image's home.
	HomeVolumeDir = "/.dev8/home-volume"
	// HomeShareGB is the home share's quota. Standard Azure Files bills
	// what is stored, not the quota.
	HomeShareGB = 5
)

// SupervisorInstall is the init container's command: the supervisor image's
// binary copies itself where the workspace container runs it.
var SupervisorInstall = []string{"/dev8-supervisor", "install", SupervisorPath}

// Sizes when a spec names none: the seed's lightweight size.
const (
	defaultCPU      = 1
	defaultMemoryGB = 2
	// Azure Files quotas are whole GiB, 1 to 5120 on a standard account.
	maxShareGB = 5120
)

// size is the group's vCPUs and memory for spec, or why ACI cannot give
// them. The CPU stays a float all the way: 0.5 vCPU is 0.5, not 0.
func (r *Runtime) size(spec runtime.Spec) (cpu, memGB float64, err error) {
	cpu = spec.CPUCores
	if cpu <= 0 {
		cpu = defaultCPU
	}
	memGB = float64(spec.MemoryGB)
	if memGB <= 0 {
		memGB = defaultMemoryGB
	}
	// ACI takes CPU in hundredths and memory in tenths of a GB.
	if math.IsNaN(cpu) || math.Abs(cpu*100-math.Round(cpu*100)) > 1e-9 {
		return 0, 0, fmt.Errorf("%g vCPU: Azure Container Instances takes CPUs in steps of 0.01", cpu)
	}
	if cpu > r.cfg.MaxCPU {
		return 0, 0, fmt.Errorf("%g vCPU is more than a container group may have here (%g; --azure-max-cpu)", cpu, r.cfg.MaxCPU)
	}
	if memGB > r.cfg.MaxMemoryGB {
		return 0, 0, fmt.Errorf("%g GB of memory is more than a container group may have here (%g GB; --azure-max-memory-gb)", memGB, r.cfg.MaxMemoryGB)
	}
	if spec.StorageGB > maxShareGB {
		return 0, 0, fmt.Errorf("%d GB of storage is more than an Azure Files share holds (%d GB)", spec.StorageGB, maxShareGB)
	}
	return cpu, memGB, nil
}

// shareQuota is the share's quota in GiB (at least 1).
func shareQuota(spec runtime.Spec) int32 { return int32(max(spec.StorageGB, 1)) }

// share is the file share of spec's environment with quota GiB: its
// /workspace (shareQuota) or its home (HomeShareGB).
func (r *Runtime) share(spec runtime.Spec, quota int32) armstorage.FileShare {
	meta := map[string]*string{}
	for k, v := range r.labels(spec.EnvironmentID, spec.UserID) {
		meta[metaName(k)] = to.Ptr(v)
	}
	return armstorage.FileShare{FileShareProperties: &armstorage.FileShareProperties{
		ShareQuota:       to.Ptr(quota),
		EnabledProtocols: to.Ptr(armstorage.EnabledProtocolsSMB),
		Metadata:         meta,
	}}
}

// launch is what the supervisor is told (agentapi.Launch).
func (r *Runtime) launch(spec runtime.Spec) agentapi.Launch {
	return agentapi.Launch{
		Extra:          r.cfg.ExtraEnv,
		Env:            spec.Env,
		Home:           r.cfg.HomeDir,
		EnvironmentID:  spec.EnvironmentID,
		WorkspaceDir:   WorkspaceDir,
		KillAfter:      r.cfg.StopTimeout,
		AgentURL:       spec.AgentURL,
		AgentTokenFile: AgentTokenDir + "/" + agentTokenFile,
		CodeServer:     r.cfg.CodeServer,
		CodeServerAddr: CodeServerSocket,
	}
}

// plainEnv: the supervisor's own variables hold nothing secret (the token
// is a file) and are plain values; everything else (the workspace's own
// variables, which may well be secrets) is a secure value.
func plainEnv(k string) bool { return k == "HOME" || strings.HasPrefix(k, "DEV8_") }

// specHash identifies the spec a group was made from (tag dev8.spec). It
// covers the agent token, whose entropy keeps the hash from revealing the
// environment's variables.
func specHash(spec runtime.Spec) string {
	js, _ := json.Marshal(spec)
	sum := sha256.Sum256(js)
	return hex.EncodeToString(sum[:16])
}

// group is the container group of spec in region, mounting the share
// with the storage account's key.
func (r *Runtime) group(spec runtime.Spec, region, accountKey string) (armcontainerinstance.ContainerGroup, error) {
	cpu, memGB, err := r.size(spec)
	if err != nil {
		return armcontainerinstance.ContainerGroup{}, err
	}
	var env []*armcontainerinstance.EnvironmentVariable
	for _, kv := range r.launch(spec).Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if plainEnv(k) {
			env = append(env, &armcontainerinstance.EnvironmentVariable{Name: to.Ptr(k), Value: to.Ptr(v)})
		} else {
			env = append(env, &armcontainerinstance.EnvironmentVariable{Name: to.Ptr(k), SecureValue: to.Ptr(v)})
		}
	}
	tags := map[string]*string{tagSpec: to.Ptr(specHash(spec))}
	for k, v := range r.labels(spec.EnvironmentID, spec.UserID) {
		tags[k] = to.Ptr(v)
	}
	g := armcontainerinstance.ContainerGroup{
		Location: to.Ptr(region),
		Tags:     tags,
		Properties: &armcontainerinstance.ContainerGroupPropertiesProperties{
			OSType: to.Ptr(armcontainerinstance.OperatingSystemTypesLinux),
			// As on Kubernetes: a workspace that exits stays exited, with
			// its reason, until the lifecycle decides.
			RestartPolicy: to.Ptr(armcontainerinstance.ContainerGroupRestartPolicyNever),
			SKU:           to.Ptr(armcontainerinstance.ContainerGroupSKUStandard),
			// No IPAddress and no ports: nothing reaches into a workspace.
			Volumes: []*armcontainerinstance.Volume{
				{Name: to.Ptr(volumeWorkspace), AzureFile: &armcontainerinstance.AzureFileVolume{
					ShareName:          to.Ptr(ObjectName(spec.EnvironmentID)),
					StorageAccountName: to.Ptr(r.cfg.StorageAccount),
					StorageAccountKey:  to.Ptr(accountKey),
				}},
				{Name: to.Ptr(volumeHome), AzureFile: &armcontainerinstance.AzureFileVolume{
					ShareName:          to.Ptr(HomeShareName(spec.EnvironmentID)),
					StorageAccountName: to.Ptr(r.cfg.StorageAccount),
					StorageAccountKey:  to.Ptr(accountKey),
				}},
				{Name: to.Ptr(volumeSupervisor), EmptyDir: map[string]any{}},
				{Name: to.Ptr(volumeRun), EmptyDir: map[string]any{}},
				{Name: to.Ptr(volumeAgent), Secret: map[string]*string{
					agentTokenFile: to.Ptr(base64.StdEncoding.EncodeToString([]byte(spec.AgentToken))),
				}},
			},
			InitContainers: []*armcontainerinstance.InitContainerDefinition{{
				Name: to.Ptr(containerSupervisor),
				Properties: &armcontainerinstance.InitContainerPropertiesDefinition{
					Image:   to.Ptr(r.cfg.SupervisorImage),
					Command: to.SliceOfPtrs(SupervisorInstall...),
					VolumeMounts: []*armcontainerinstance.VolumeMount{
						{Name: to.Ptr(volumeSupervisor), MountPath: to.Ptr(SupervisorDir)},
					},
				},
			}, {
				// The image's home into the home share when it is empty
				// (its first start), as Docker fills a new volume from
				// the image: run from the workspace image by the
				// supervisor just copied. Later starts find it full and
				// copy nothing.
				Name: to.Ptr(containerHome),
				Properties: &armcontainerinstance.InitContainerPropertiesDefinition{
					Image:   to.Ptr(spec.Image),
					Command: to.SliceOfPtrs(SupervisorPath, "seed-home", r.cfg.HomeDir, HomeVolumeDir),
					VolumeMounts: []*armcontainerinstance.VolumeMount{
						{Name: to.Ptr(volumeSupervisor), MountPath: to.Ptr(SupervisorDir), ReadOnly: to.Ptr(true)},
						{Name: to.Ptr(volumeHome), MountPath: to.Ptr(HomeVolumeDir)},
					},
				},
			}},
			Containers: []*armcontainerinstance.Container{{
				Name: to.Ptr(containerWorkspace),
				Properties: &armcontainerinstance.ContainerProperties{
					Image:                to.Ptr(spec.Image),
					Command:              to.SliceOfPtrs(SupervisorPath, "supervisor"),
					EnvironmentVariables: env,
					Resources: &armcontainerinstance.ResourceRequirements{
						Requests: &armcontainerinstance.ResourceRequests{CPU: to.Ptr(cpu), MemoryInGB: to.Ptr(memGB)},
					},
					VolumeMounts: []*armcontainerinstance.VolumeMount{
						{Name: to.Ptr(volumeWorkspace), MountPath: to.Ptr(WorkspaceDir)},
						{Name: to.Ptr(volumeHome), MountPath: to.Ptr(r.cfg.HomeDir)},
						{Name: to.Ptr(volumeSupervisor), MountPath: to.Ptr(SupervisorDir), ReadOnly: to.Ptr(true)},
						{Name: to.Ptr(volumeAgent), MountPath: to.Ptr(AgentTokenDir), ReadOnly: to.Ptr(true)},
						{Name: to.Ptr(volumeRun), MountPath: to.Ptr(RunDir)},
					},
				},
			}},
		},
	}
	if subnet := r.cfg.Subnets[region]; subnet != "" {
		// A private address in the team's network; still no port.
		g.Properties.SubnetIDs = []*armcontainerinstance.ContainerGroupSubnetID{{ID: to.Ptr(subnet)}}
	}
	identities := map[string]*armcontainerinstance.UserAssignedIdentities{}
	for _, reg := range r.cfg.Registries {
		cred := &armcontainerinstance.ImageRegistryCredential{Server: to.Ptr(reg.Server)}
		if reg.Identity != "" {
			cred.Identity = to.Ptr(reg.Identity)
			identities[reg.Identity] = &armcontainerinstance.UserAssignedIdentities{}
		} else {
			cred.Username, cred.Password = to.Ptr(reg.Username), to.Ptr(reg.Password)
		}
		g.Properties.ImageRegistryCredentials = append(g.Properties.ImageRegistryCredentials, cred)
	}
	if len(identities) > 0 {
		// A registry reached with a managed identity: the group has it.
		g.Identity = &armcontainerinstance.ContainerGroupIdentity{
			Type:                   to.Ptr(armcontainerinstance.ResourceIdentityTypeUserAssigned),
			UserAssignedIdentities: identities,
		}
	}
	return g, nil
}

// imageRef is the reference to run for a template's image.
func (r *Runtime) imageRef(image string) string {
	return runtime.ImageRef(image, r.cfg.DefaultImage, r.cfg.ImageRefs)
}
