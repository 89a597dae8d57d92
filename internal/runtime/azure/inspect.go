package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"dev8.dev/dev8/internal/runtime"
)

// Inspect implements runtime.Runtime.
func (r *Runtime) Inspect(ctx context.Context, environmentID string) (runtime.Instance, error) {
	id := environmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, fmt.Errorf("azure: inspect: %w: %w", runtime.ErrNotFound, err)
	}
	g, err := r.getGroup(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("azure: inspect %s: %w", id, err)
	}
	share, err := r.getShare(ctx, id, ObjectName(id))
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("azure: inspect %s: %w", id, err)
	}
	if g == nil && share == nil {
		return runtime.Instance{}, fmt.Errorf("azure: inspect %s: %w", id, runtime.ErrNotFound)
	}
	return r.instance(id, g), nil
}

// List implements runtime.Runtime: this installation's groups (by tags)
// and shares (by metadata), one instance per environment.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	groups := map[string]*armcontainerinstance.ContainerGroup{}
	var order []string
	pager := r.groups.NewListByResourceGroupPager(r.cfg.ResourceGroup, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("azure: list container groups: %w", classify(err, ""))
		}
		for _, g := range page.Value {
			id := tag(g.Tags, runtime.LabelEnvironment)
			if g == nil || !r.ours(tagGetter(g.Tags), "") || checkID(id) != nil || g.Name == nil || *g.Name != ObjectName(id) {
				continue
			}
			if _, dup := groups[id]; !dup {
				order = append(order, id)
			}
			groups[id] = g
		}
	}
	shares := r.shares.NewListPager(r.cfg.StorageResourceGroup, r.cfg.StorageAccount, nil)
	for shares.More() {
		page, err := shares.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("azure: list file shares: %w", classify(err, ""))
		}
		for _, s := range page.Value {
			if s == nil || s.Properties == nil {
				continue
			}
			get := metaGetter(s.Properties.Metadata)
			id := get(runtime.LabelEnvironment)
			if !r.ours(get, "") || checkID(id) != nil || s.Name == nil || *s.Name != ObjectName(id) {
				continue
			}
			if _, dup := groups[id]; !dup {
				groups[id] = nil
				order = append(order, id)
			}
		}
	}
	out := make([]runtime.Instance, 0, len(order))
	for _, id := range order {
		out = append(out, r.instance(id, groups[id]))
	}
	return out, nil
}

// instance is the runtime's view of an environment from its group (nil:
// none yet, or deleted).
func (r *Runtime) instance(id string, g *armcontainerinstance.ContainerGroup) runtime.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.instanceLocked(id, g)
}

func (r *Runtime) instanceLocked(id string, g *armcontainerinstance.ContainerGroup) runtime.Instance {
	inst := runtime.Instance{
		EnvironmentID: id,
		Ref:           r.cfg.ResourceGroup + "/" + ObjectName(id),
		State:         runtime.StateStopped,
		WorkspaceDir:  WorkspaceDir,
	}
	if r.cfg.CodeServer != "" {
		inst.IDEAddress = CodeServerSocket
	}
	switch {
	case g == nil:
		if r.started[id] {
			inst.ExitReason = "its container group was deleted by something other than Dev8"
		}
	case running(g):
		inst.State = runtime.StateRunning
		if st := containerState(g); st != nil && st.StartTime != nil {
			inst.StartedAt = *st.StartTime
		}
	default:
		inst.ExitReason = startFailure(g)
	}
	return inst
}

// provisioningState is ARM's: Pending, Creating, Succeeded, Failed, ...
func provisioningState(g *armcontainerinstance.ContainerGroup) string {
	if g.Properties == nil || g.Properties.ProvisioningState == nil {
		return ""
	}
	return *g.Properties.ProvisioningState
}

// groupState is the group's instance view's: Pending, Running, Stopped
// (by a Stop), Succeeded or Failed (its containers ended on their own).
func groupState(g *armcontainerinstance.ContainerGroup) string {
	if g.Properties == nil || g.Properties.InstanceView == nil || g.Properties.InstanceView.State == nil {
		return ""
	}
	return *g.Properties.InstanceView.State
}

// containerState is the workspace container's current state.
func containerState(g *armcontainerinstance.ContainerGroup) *armcontainerinstance.ContainerState {
	if g.Properties == nil {
		return nil
	}
	for _, c := range g.Properties.Containers {
		if c != nil && c.Name != nil && *c.Name == containerWorkspace && c.Properties != nil && c.Properties.InstanceView != nil {
			return c.Properties.InstanceView.CurrentState
		}
	}
	return nil
}

func running(g *armcontainerinstance.ContainerGroup) bool {
	st := containerState(g)
	return provisioningState(g) == "Succeeded" && groupState(g) == "Running" &&
		st != nil && st.State != nil && *st.State == "Running"
}

// startFailure is why a group that is not running will not run without
// a new start ("" when it may yet, or was stopped on request): its
// provisioning failed, or its workspace container ended.
func startFailure(g *armcontainerinstance.ContainerGroup) string {
	if provisioningState(g) == "Failed" {
		reason := "Azure could not provision its container group"
		if ev := lastEvent(g); ev != "" {
			reason += ": " + ev
		}
		return reason
	}
	switch groupState(g) {
	case "Succeeded", "Failed":
	default:
		return ""
	}
	st := containerState(g)
	if st == nil || st.ExitCode == nil {
		return "its container group ended (" + groupState(g) + ")"
	}
	reason := "the workspace's supervisor exited"
	if *st.ExitCode != 0 {
		reason = fmt.Sprintf("the workspace's supervisor exited with code %d", *st.ExitCode)
	}
	if st.DetailStatus != nil && *st.DetailStatus != "" {
		reason += " (" + *st.DetailStatus + ")"
	}
	return reason
}

// lastEvent is the group's latest event's message (ACI says there why a
// container could not be made: an image it could not pull, ...).
func lastEvent(g *armcontainerinstance.ContainerGroup) string {
	var msg string
	if g.Properties != nil && g.Properties.InstanceView != nil {
		for _, ev := range g.Properties.InstanceView.Events {
			if ev != nil && ev.Message != nil {
				msg = *ev.Message
			}
		}
	}
	return msg
}

func tag(tags map[string]*string, k string) string { return tagGetter(tags)(k) }

// regionOf is the group's region, else def.
func regionOf(g *armcontainerinstance.ContainerGroup, def string) string {
	if g != nil && g.Location != nil {
		return *g.Location
	}
	return def
}

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// apiError is an Azure error in words for the environment's reason; it
// wraps the SDK's *azcore.ResponseError (whose own text is the whole HTTP
// exchange).
type apiError struct {
	reason string
	err    *azcore.ResponseError
}

func (e *apiError) Error() string { return e.reason }
func (e *apiError) Unwrap() error { return e.err }

// classify turns ARM's errors into reasons a person can act on, marking
// those that retrying will not mend as permanent. region, if known, is
// named in capacity and quota reasons.
func classify(err error, region string) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	where := ""
	if region != "" {
		where = " in " + region
	}
	code, msg := re.ErrorCode, serviceMessage(re)
	detail := fmt.Sprintf("%s, HTTP %d", code, re.StatusCode)
	if msg != "" {
		detail += ": " + msg
	}
	e := &apiError{err: re}
	permanent := true
	switch {
	case code == "ContainerGroupQuotaReached" || strings.HasSuffix(code, "QuotaExceeded"):
		e.reason = "the subscription's Container Instances quota" + where + " is used up: delete container groups it no longer needs, or ask Azure for more quota (" + detail + ")"
	case code == "ServiceUnavailable" || code == "SkuNotAvailable" || code == "ResourceRequestsNotAvailable" || code == "InsufficientCapacity":
		e.reason = "Azure has no capacity for this size" + where + " now; a smaller size or another region may work (" + detail + ")"
		permanent = false
	case code == "InaccessibleImage" || code == "RegistryErrorResponse":
		e.reason = "Azure cannot pull the image: check its name and the registry's credentials (--azure-registry-*) (" + detail + ")"
	case code == "AuthorizationFailed" || re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		e.reason = "the server's Azure identity may not do this: it needs Contributor on the resource group and Storage Account Contributor on the storage account (" + detail + ")"
	case code == "ResourceGroupNotFound":
		e.reason = "the resource group does not exist (" + detail + ")"
	case code == "LocationNotAvailableForResourceType" || code == "NoRegisteredProviderFound":
		e.reason = "Container Instances are not available" + where + " (" + detail + ")"
	case re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusUnprocessableEntity:
		e.reason = "Azure refused the request (" + detail + ")"
	default:
		// Conflicts (an operation in progress), throttling left after the
		// SDK's retries, 5xx: worth another try later.
		e.reason = "Azure: " + detail
		permanent = false
	}
	if permanent {
		return runtime.Permanent(e)
	}
	return e
}

// serviceMessage is ARM's error message ({"error":{"code","message"}}).
func serviceMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := azruntime.Payload(re.RawResponse)
	if err != nil {
		return ""
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return strings.TrimSpace(e.Error.Message)
}
