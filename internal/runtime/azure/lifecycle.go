package azure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"

	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"dev8.dev/dev8/internal/runtime"
)

// Create implements runtime.Runtime. Every check comes before the first
// call that changes anything.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	id := spec.EnvironmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("azure: create: %w", err))
	}
	region, err := r.Region(spec.Region)
	if err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("azure: create %s: %w", id, err))
	}
	spec.Region = region
	spec.Image = r.imageRef(spec.Image)
	if spec.Image == "" {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("azure: create %s: no image in the spec and no default image", id))
	}
	if r.cfg.AgentURL != "" {
		spec.AgentURL = r.cfg.AgentURL
	}
	if _, _, err := r.size(spec); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("azure: create %s: %w", id, err))
	}
	g, err := r.getGroup(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("azure: create %s: %w", id, err)
	}
	// The home's share first: the workspace's is the instance's record,
	// made last. Either is looked for every time: when the workspace's is
	// not there (a first Create, one removed while the workspace was
	// stopped) the workspace starts empty, and the caller is told so; a
	// home share made anew is filled from the image at the next start.
	home, err := r.getShare(ctx, id, HomeShareName(id))
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("azure: create %s: %w", id, err)
	}
	if home == nil {
		if _, err := r.shares.Create(ctx, r.cfg.StorageResourceGroup, r.cfg.StorageAccount, HomeShareName(id), r.share(spec, HomeShareGB), nil); err != nil {
			return runtime.Instance{}, fmt.Errorf("azure: create %s: the home's file share: %w", id, classify(err, region))
		}
	}
	share, err := r.getShare(ctx, id, ObjectName(id))
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("azure: create %s: %w", id, err)
	}
	if share == nil {
		r.mu.Lock()
		r.newShare[id] = true
		r.mu.Unlock()
		if _, err := r.shares.Create(ctx, r.cfg.StorageResourceGroup, r.cfg.StorageAccount, ObjectName(id), r.share(spec, shareQuota(spec)), nil); err != nil {
			return runtime.Instance{}, fmt.Errorf("azure: create %s: file share: %w", id, classify(err, region))
		}
	}
	if g != nil && running(g) {
		// Running: nothing to record until the next start.
		return r.instance(id, g), nil
	}
	r.mu.Lock()
	r.pending[id] = spec
	inst := r.instanceLocked(id, g)
	inst.StorageCreated = r.newShare[id]
	delete(r.newShare, id)
	r.mu.Unlock()
	return inst, nil
}

// Start implements runtime.Runtime: BeginStart of the stopped group when
// it runs the spec the last Create recorded, else the group made anew from
// that spec (ARM cannot change a group's size or secrets in place).
func (r *Runtime) Start(ctx context.Context, environmentID string) (runtime.Instance, error) {
	id := environmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("azure: start: %w", err))
	}
	g, err := r.getGroup(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("azure: start %s: %w", id, err)
	}
	if g != nil && running(g) {
		return r.instance(id, g), nil
	}
	r.mu.Lock()
	spec, recorded := r.pending[id]
	r.mu.Unlock()
	if g == nil && !recorded {
		// Never started here, or deleted: nothing to start, and nothing
		// made on the way. (A server restarted between Create and Start
		// loses the recorded spec; the lifecycle creates before it starts.)
		return runtime.Instance{}, fmt.Errorf("azure: start %s: no container group and no spec recorded by Create", id)
	}
	region := regionOf(g, spec.Region)
	r.mu.Lock()
	r.started[id] = true
	r.mu.Unlock()
	name := ObjectName(id)
	if g != nil && (!recorded || tag(g.Tags, tagSpec) == specHash(spec)) && provisioningState(g) != "Failed" {
		poller, err := r.groups.BeginStart(ctx, r.cfg.ResourceGroup, name, nil)
		if err == nil {
			_, err = poller.PollUntilDone(ctx, r.pollOptions())
		}
		if err != nil {
			return runtime.Instance{}, fmt.Errorf("azure: start %s: %w", id, classify(err, region))
		}
	} else {
		if g != nil {
			if err := r.deleteGroup(ctx, id); err != nil {
				return runtime.Instance{}, fmt.Errorf("azure: start %s: remove the group of an older spec: %w", id, err)
			}
		}
		key, err := r.accountKey(ctx)
		if err != nil {
			return runtime.Instance{}, fmt.Errorf("azure: start %s: %w", id, err)
		}
		want, err := r.group(spec, spec.Region, key)
		if err != nil {
			return runtime.Instance{}, runtime.Permanent(fmt.Errorf("azure: start %s: %w", id, err))
		}
		poller, err := r.groups.BeginCreateOrUpdate(ctx, r.cfg.ResourceGroup, name, want, nil)
		if err == nil {
			_, err = poller.PollUntilDone(ctx, r.pollOptions())
		}
		if err != nil {
			// A failed provisioning leaves a Failed group, which the next
			// Start replaces.
			return runtime.Instance{}, fmt.Errorf("azure: start %s: %w", id, classify(err, region))
		}
	}
	g, err = r.awaitRunning(ctx, id)
	if err != nil {
		// No compute left half-started and billed: the next Start begins
		// afresh.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if _, serr := r.groups.Stop(sctx, r.cfg.ResourceGroup, name, nil); serr != nil && !isNotFound(serr) {
			r.log.Warn("stop the group of a failed start", "environment", id, "err", serr)
		}
		cancel()
		return runtime.Instance{}, fmt.Errorf("azure: start %s: %w", id, err)
	}
	return r.instance(id, g), nil
}

// awaitRunning polls the group until it runs, or will not. ACI has no
// watch; Config.PollInterval spaces the reads, Config.StartTimeout bounds
// them.
func (r *Runtime) awaitRunning(ctx context.Context, id string) (*armcontainerinstance.ContainerGroup, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	for {
		g, err := r.getGroup(ctx, id)
		switch {
		case err != nil:
			return nil, err
		case g == nil:
			return nil, errors.New("its container group disappeared while it started")
		case running(g):
			return g, nil
		}
		if reason := startFailure(g); reason != "" {
			return nil, fmt.Errorf("the workspace did not start: %s", reason)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the container group is not running after %s (state %q): %w", r.cfg.StartTimeout, groupState(g), ctx.Err())
		case <-time.After(r.cfg.PollInterval):
		}
	}
}

// Stop implements runtime.Runtime: ACI's Stop releases the compute and
// stops billing; the group and the share stay.
func (r *Runtime) Stop(ctx context.Context, environmentID string) error {
	id := environmentID
	if err := checkID(id); err != nil {
		return runtime.Permanent(fmt.Errorf("azure: stop: %w", err))
	}
	r.mu.Lock()
	delete(r.started, id)
	r.mu.Unlock()
	g, err := r.getGroup(ctx, id)
	if err != nil {
		return fmt.Errorf("azure: stop %s: %w", id, err)
	}
	if g == nil || groupState(g) == "Stopped" {
		return nil
	}
	if _, err := r.groups.Stop(ctx, r.cfg.ResourceGroup, ObjectName(id), nil); err != nil && !isNotFound(err) {
		return fmt.Errorf("azure: stop %s: %w", id, classify(err, regionOf(g, "")))
	}
	return nil
}

// Delete implements runtime.Runtime: the group, then the share (the
// record: a Delete cut short is found and finished by the next).
func (r *Runtime) Delete(ctx context.Context, environmentID string) error {
	id := environmentID
	if err := checkID(id); err != nil {
		return runtime.Permanent(fmt.Errorf("azure: delete: %w", err))
	}
	r.mu.Lock()
	delete(r.started, id)
	delete(r.pending, id)
	delete(r.newShare, id)
	r.mu.Unlock()
	if err := r.deleteGroup(ctx, id); err != nil {
		return fmt.Errorf("azure: delete %s: %w", id, err)
	}
	// The home's share, then the workspace's, the record.
	for _, name := range []string{HomeShareName(id), ObjectName(id)} {
		if err := r.deleteShare(ctx, id, name); err != nil {
			return fmt.Errorf("azure: delete %s: %w", id, err)
		}
	}
	return nil
}

// deleteShare deletes the environment's share name, if it is there.
func (r *Runtime) deleteShare(ctx context.Context, id, name string) error {
	share, err := r.getShare(ctx, id, name)
	if err != nil || share == nil {
		return err
	}
	// With its snapshots (Azure Files refuses to delete a share that has
	// any otherwise).
	_, err = r.shares.Delete(ctx, r.cfg.StorageResourceGroup, r.cfg.StorageAccount, name,
		&armstorage.FileSharesClientDeleteOptions{Include: to.Ptr("snapshots")})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("file share %s: %w", name, classify(err, ""))
	}
	return nil
}

// deleteGroup deletes the environment's group, if it has one of ours, and
// waits until ARM says it is gone.
func (r *Runtime) deleteGroup(ctx context.Context, id string) error {
	g, err := r.getGroup(ctx, id)
	if err != nil || g == nil {
		return err
	}
	poller, err := r.groups.BeginDelete(ctx, r.cfg.ResourceGroup, ObjectName(id), nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, r.pollOptions())
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("container group: %w", classify(err, regionOf(g, "")))
	}
	return nil
}

func (r *Runtime) pollOptions() *azruntime.PollUntilDoneOptions {
	return &azruntime.PollUntilDoneOptions{Frequency: r.cfg.PollInterval}
}

// getGroup is the environment's container group, nil when there is none
// of ours (a group of that name that another installation made is not
// touched).
func (r *Runtime) getGroup(ctx context.Context, id string) (*armcontainerinstance.ContainerGroup, error) {
	resp, err := r.groups.Get(ctx, r.cfg.ResourceGroup, ObjectName(id), nil)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("container group: %w", classify(err, ""))
	}
	if !r.ours(tagGetter(resp.Tags), id) {
		return nil, nil
	}
	return &resp.ContainerGroup, nil
}

// getShare is the environment's file share name (ObjectName or
// HomeShareName), nil when there is none. One that Dev8 did not make is an
// error: it is not used, nor removed.
func (r *Runtime) getShare(ctx context.Context, id, name string) (*armstorage.FileShare, error) {
	resp, err := r.shares.Get(ctx, r.cfg.StorageResourceGroup, r.cfg.StorageAccount, name, nil)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file share: %w", classify(err, ""))
	}
	var meta map[string]*string
	if resp.FileShareProperties != nil {
		meta = resp.FileShareProperties.Metadata
	}
	if !r.ours(metaGetter(meta), id) {
		return nil, runtime.Permanent(fmt.Errorf("a file share named %s exists in %s that this Dev8 did not make", name, r.cfg.StorageAccount))
	}
	return &resp.FileShare, nil
}

// accountKey is the storage account's key, which ACI's Azure Files
// volumes need (they cannot mount with an identity). Read with the
// server's credential, kept in memory only.
func (r *Runtime) accountKey(ctx context.Context) (string, error) {
	r.mu.Lock()
	key := r.key
	r.mu.Unlock()
	if key != "" {
		return key, nil
	}
	resp, err := r.accounts.ListKeys(ctx, r.cfg.StorageResourceGroup, r.cfg.StorageAccount, nil)
	if err != nil {
		return "", fmt.Errorf("storage account %s keys: %w", r.cfg.StorageAccount, classify(err, ""))
	}
	for _, k := range resp.Keys {
		if k != nil && k.Value != nil && *k.Value != "" {
			key = *k.Value
			break
		}
	}
	if key == "" {
		return "", runtime.Permanent(fmt.Errorf("storage account %s has no key (is shared-key access disabled? ACI mounts Azure Files with a key)", r.cfg.StorageAccount))
	}
	r.mu.Lock()
	r.key = key
	r.mu.Unlock()
	return key, nil
}
