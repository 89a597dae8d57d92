// Package runtime defines what Dev8 needs from a compute engine (local
// processes, Docker, Kubernetes, Azure) to run workspaces. Each engine lives in
// its own package and must pass the shared contract suite in runtimetest.
package runtime

import (
	"context"
	"errors"
	"time"
)

// Labels every runtime attaches (where the engine has labels) so instances can
// be listed and adopted or removed after a crash.
const (
	LabelManaged     = "dev8.managed"
	LabelEnvironment = "dev8.environment"
	LabelUser        = "dev8.user"
	// LabelInstallation names the Dev8 installation that made an instance,
	// so installations sharing an engine never adopt or remove each other's.
	LabelInstallation = "dev8.installation"
)

// ErrNotFound is returned by Inspect (and only Inspect) when the runtime has
// no instance for the environment.
var ErrNotFound = errors.New("runtime: instance not found")

// Spec is everything a runtime needs to create an environment's instance.
type Spec struct {
	EnvironmentID string
	UserID        string
	Name          string
	Template      string
	Image         string // image reference; runtimes without images ignore it
	// CPUCores is the size's vCPUs, a fraction where one was asked for
	// (0.5: catalog.CPUStep); 0 means the runtime's default. Engines
	// honour it exactly (docker NanoCPUs, kubernetes milli-CPUs, ACI
	// hundredths) or refuse the spec before any side effect.
	CPUCores  float64
	MemoryGB  int
	StorageGB int
	Env       map[string]string
	Ports     []Port
	// Resources are extended resources the workspace asks for
	// ({"nvidia.com/gpu": "1"}) and NodeSelector the node labels it must
	// run on ({"pool": "gpu"}), from its instance type (checked by
	// internal/placement). Only a NodePlacer honours them: the lifecycle
	// refuses, before recording anything, a create that would give them
	// to another runtime.
	Resources    map[string]string `json:",omitempty"`
	NodeSelector map[string]string `json:",omitempty"`
	// AgentURL is the server's URL as the workspace reaches it, and
	// AgentToken the supervisor's credential; the runtime hands both to the
	// supervisor (and to nothing else in the workspace).
	AgentURL   string
	AgentToken string
	// AgentSocket, if not empty, is the path on this host of a unix socket
	// where the server answers the supervisor's routes (and only those):
	// a runtime on this host whose workspaces leave the host's network
	// (docker's bridge, local's sandbox) mounts the socket's directory into
	// the workspace and has the supervisor dial it, so the workspace needs
	// no network path to the server at all.
	AgentSocket string
	// Region is where the instance runs, for runtimes that have regions
	// (see Regioner): the environment's cloud_region.
	Region string
}

// HostSharer is implemented by a runtime whose workspaces share the
// server's host: processes of the server's own user (local), isolated from
// neither the server nor each other. Only admins may run workspaces on it
// (see lifecycle.Config.IsAdmin).
type HostSharer interface {
	SharesHost() bool
}

// NodePlacer is implemented by runtimes that schedule workspaces on a
// cluster's nodes (kubernetes) and so can give a workspace the extended
// resources (GPUs) and node labels its Spec asks for. Runtimes without it
// (docker, local: one host, no scheduler) cannot, and are never given a
// spec that asks.
type NodePlacer interface {
	PlacesOnNodes() bool
}

// PlacesOnNodes reports whether rt honours Spec.Resources and
// Spec.NodeSelector.
func PlacesOnNodes(rt Runtime) bool {
	p, ok := rt.(NodePlacer)
	return ok && p.PlacesOnNodes()
}

// Port is a port the workspace exposes.
type Port struct {
	Port     int
	Protocol string
}

// State is what the runtime observes of an instance.
type State string

const (
	// StateRunning: compute is up and its processes are alive.
	StateRunning State = "running"
	// StateStopped: storage exists, compute is not running (never started,
	// stopped on request, or exited on its own: see Instance.ExitReason).
	StateStopped State = "stopped"
)

// Instance is the runtime's view of one environment.
type Instance struct {
	EnvironmentID string
	// Ref is the runtime's own identifier (container id, pid, ...).
	Ref   string
	State State
	// ExitReason is set when the compute stopped without being asked to
	// (e.g. "process exited: exit status 1"). Empty after a requested Stop.
	ExitReason string
	// IDEAddress is host:port where code-server answers, if the runtime
	// started one; empty otherwise.
	IDEAddress string
	// WorkspaceDir is the path of the persistent workspace inside the
	// instance (for local: on this machine).
	WorkspaceDir string
	StartedAt    time.Time
	// StorageCreated is set only in what Create returns: true when that
	// call had to make the environment's persistent workspace storage
	// (directory, volume) because none was there — the environment's
	// first Create, or a Create after its storage was lost while it was
	// stopped (removed on disk, a new host). It is false when Create found
	// the storage (even with compute recreated around it), and always in
	// what Start, Inspect and List return. The caller uses it to restore a
	// workspace that is not new from its latest snapshot.
	StorageCreated bool
}

// Runtime is a compute engine. Every method is idempotent: creating an
// instance that exists returns it, starting a running one or stopping a stopped
// one succeeds, deleting a missing one succeeds. Stopping a missing one
// succeeds too (nothing runs); starting a missing one is an error (not
// ErrNotFound) and creates nothing. Methods are safe for concurrent use on
// different environments; the caller never runs two methods for the same
// environment at once. The contract suite in runtimetest checks all this.
type Runtime interface {
	// Name is the engine's name as configured: "local", "docker", ...
	Name() string
	// Create provisions storage and compute for spec without starting it.
	// For an instance that exists and is not running, it records spec for
	// the next Start (the server's URL may have changed since), and makes
	// its workspace storage anew if that is gone (Instance.StorageCreated
	// says so).
	Create(ctx context.Context, spec Spec) (Instance, error)
	// Start starts the instance and returns once it is running.
	Start(ctx context.Context, environmentID string) (Instance, error)
	// Stop stops compute and keeps storage.
	Stop(ctx context.Context, environmentID string) error
	// Delete removes compute and storage.
	Delete(ctx context.Context, environmentID string) error
	// Inspect reports the instance's state, or ErrNotFound.
	Inspect(ctx context.Context, environmentID string) (Instance, error)
	// List reports every instance this runtime manages (labelled
	// dev8.managed, or the engine's equivalent), in any state.
	List(ctx context.Context) ([]Instance, error)
}

// Regioner is implemented by runtimes that run instances in one of several
// regions (azure). The lifecycle asks it before recording a create, so an
// unknown region is refused before anything is made.
type Regioner interface {
	// Region is the region an instance asked to run in name runs in: the
	// default region for "" (or the runtime's own name, what an
	// environment created without a region records), name itself when
	// it is configured; an error that names the configured regions when
	// it is not.
	Region(name string) (string, error)
}

// RegionPricer is implemented by runtimes whose list prices depend on the
// region an instance runs in (azure: Container Instances' price per
// vCPU-second and per GB-second differs by region). The lifecycle asks it
// for an environment's hourly cost at create; runtimes without it, and
// regions it has no price for, cost what the installation's --price-*
// settings say.
type RegionPricer interface {
	// ComputePrices are the prices per vCPU-hour and per GB of memory per
	// hour of an instance in region (as Regioner.Region names it); ok is
	// false when the runtime has none for that region.
	ComputePrices(region string) (cpuHour, memoryGBHour float64, ok bool)
}

// ExitNotifier is implemented by runtimes that can tell at once when an
// instance's compute stops on its own. Others are noticed by the lifecycle's
// periodic resync through Inspect.
type ExitNotifier interface {
	// NotifyExits sends the environment id of each instance whose compute
	// exited without a Stop. Sends must not block the runtime for long; the
	// receiver drains promptly.
	NotifyExits(ch chan<- string)
}

// ImageRef is the reference a runtime runs for a spec's image: def when
// the spec names none, then what refs maps it to (an operator's
// --template-image pointing a template at their registry), else as given.
func ImageRef(image, def string, refs map[string]string) string {
	if image == "" {
		image = def
	}
	if ref, ok := refs[image]; ok {
		return ref
	}
	return image
}

// permanentError marks an error that retrying will not fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (bad image, invalid spec, ...).
// Errors not marked are treated as transient and retried with backoff.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err (or anything it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Readiness says whether a runtime can create instances of something (an
// image) now.
type Readiness string

const (
	// Ready: a create can go ahead (an image that is not present yet but
	// can be pulled counts: the create pulls it).
	Ready Readiness = "ready"
	// Preparing: it is being made ready (an image being pulled); a create
	// goes ahead and waits for it.
	Preparing Readiness = "preparing"
	// Unavailable: a create would fail; ImageStatus.Reason says what to do.
	Unavailable Readiness = "unavailable"
)

// ImageStatus is whether a runtime can create instances from an image now,
// and why not.
type ImageStatus struct {
	State  Readiness
	Reason string
}

// ImageChecker is implemented by runtimes that run images (docker). The
// lifecycle asks it before recording a create, so that a template whose
// image cannot run is refused with what to do instead of failing later, and
// so that a create that names no runtime goes where its template can run.
// Runtimes without it run every template (local: with the host's tools).
type ImageChecker interface {
	// ImageStatus answers from what the engine has, without pulling or
	// building anything. image is as Spec.Image gives it.
	ImageStatus(ctx context.Context, image string) ImageStatus
}

type reporterKey struct{}

// WithReporter returns ctx carrying report, which a runtime calls through
// Report while an operation waits on something the user should know of
// (no node can take the workspace yet, and why). The lifecycle shows it
// as the environment's status reason until the operation ends. report
// must not block for long; it may be called several times.
func WithReporter(ctx context.Context, report func(status string)) context.Context {
	return context.WithValue(ctx, reporterKey{}, report)
}

// Report tells the caller of the operation ctx belongs to what it is
// waiting on (see WithReporter); without a reporter it does nothing.
func Report(ctx context.Context, status string) {
	if f, ok := ctx.Value(reporterKey{}).(func(string)); ok {
		f(status)
	}
}
