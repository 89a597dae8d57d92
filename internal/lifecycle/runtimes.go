package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// An installation runs environments on several runtimes at once (local
// processes, Docker, ...). Each environment records the runtime it was created
// on and is driven through that one for its whole life; new environments go
// to the runtime their create request names, or the default.

// RuntimeUnavailableError is an action on an environment whose runtime this
// server does not drive (its configuration changed since the environment was
// created), or a create that names a runtime new environments may not use.
// The API answers it with 409.
type RuntimeUnavailableError struct {
	Runtime string
	// Configured lists the runtimes that are (for a create: that new
	// environments may use).
	Configured []string
	// Create is true for a create request, false for an action on an
	// existing environment.
	Create bool
}

func (e *RuntimeUnavailableError) Error() string {
	if e.Create {
		return fmt.Sprintf("runtime %q is not one new environments can use on this server (configured: %s)", e.Runtime, strings.Join(e.Configured, ", "))
	}
	return fmt.Sprintf("this environment runs on the %s runtime, which this server is not configured for (configured: %s); "+
		"an admin adds it with dev8 server --runtimes, and nothing is lost meanwhile", e.Runtime, strings.Join(e.Configured, ", "))
}

// TemplateUnavailableError is a create from a template that cannot run on
// the runtime asked for (its image is not built, say). Nothing was created.
// The API answers it with 409.
type TemplateUnavailableError struct {
	// Subject is what was asked for: "template nodejs", or "image
	// registry.example/team/image:1" for a create that names an image.
	Subject string
	Runtime string
	Reason  string
}

func (e *TemplateUnavailableError) Error() string {
	return fmt.Sprintf("%s cannot run on the %s runtime yet: %s", e.Subject, e.Runtime, e.Reason)
}

// PlacementUnsupportedError is a create from an instance type that asks for
// extended resources (GPUs) or node labels on a runtime that cannot give
// them (not a runtime.NodePlacer: docker, local). Nothing was created. The
// API answers it with 409.
type PlacementUnsupportedError struct {
	InstanceType string
	Runtime      string
	Resources    map[string]string
	NodeSelector map[string]string
	// Capable lists the offered runtimes that can (may be empty).
	Capable []string
}

func (e *PlacementUnsupportedError) Error() string {
	var wants []string
	if len(e.Resources) > 0 {
		wants = append(wants, "the extended resources "+placement.Describe(e.Resources))
	}
	if len(e.NodeSelector) > 0 {
		wants = append(wants, "nodes labelled "+placement.Describe(e.NodeSelector))
	}
	msg := fmt.Sprintf("instance type %s asks for %s, which the %s runtime cannot give (it schedules on no cluster's nodes); ",
		e.InstanceType, strings.Join(wants, " and "), e.Runtime)
	if len(e.Capable) == 0 {
		return msg + "none of this server's runtimes can: an admin adds one with dev8 server --runtimes kubernetes, or pick another instance type"
	}
	return msg + "create it on " + strings.Join(e.Capable, " or ") + " (runtime), or pick another instance type"
}

// nodePlacers lists the offered runtimes that honour extended resources
// and node selectors, in order of preference.
func (m *Manager) nodePlacers() []string {
	var out []string
	for _, name := range m.offered {
		if runtime.PlacesOnNodes(m.runtimes[name]) {
			out = append(out, name)
		}
	}
	return out
}

// AdminOnlyError is a create or start, for a user who is not an admin, on a
// runtime whose workspaces share the server's host (runtime.HostSharer).
// Nothing was changed. The API answers it with 403.
type AdminOnlyError struct {
	Runtime string
}

func (e *AdminOnlyError) Error() string { return adminOnlyReason(e.Runtime) }

func adminOnlyReason(name string) string {
	return fmt.Sprintf("the %s runtime runs workspaces as processes of the server's own user, isolated from neither the server nor each other, so only admins may run workspaces on it; "+
		"ask an admin for an isolated runtime (dev8 server --runtimes docker)", name)
}

// sharesHost says whether rt's workspaces share the server's host.
func sharesHost(rt runtime.Runtime) bool {
	h, ok := rt.(runtime.HostSharer)
	return ok && h.SharesHost()
}

// mayShareHost says whether userID's workspaces may run on a runtime that
// shares the server's host: whether they are an admin (Config.IsAdmin;
// without it, everyone may).
func (m *Manager) mayShareHost(ctx context.Context, userID string) (bool, error) {
	if m.cfg.IsAdmin == nil {
		return true, nil
	}
	ok, err := m.cfg.IsAdmin(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("is %s an admin: %w", userID, err)
	}
	return ok, nil
}

// checkHostSharing refuses env's start when its runtime shares the host
// and its owner is not an admin (an environment made before that rule, or
// whose owner is no longer one).
func (m *Manager) checkHostSharing(ctx context.Context, env store.Environment) error {
	rt, ok := m.runtimes[env.Runtime]
	if !ok || !sharesHost(rt) {
		return nil
	}
	may, err := m.mayShareHost(ctx, env.UserID)
	if err != nil {
		return err
	}
	if !may {
		return &AdminOnlyError{Runtime: env.Runtime}
	}
	return nil
}

// unconfiguredReason is the status reason of an environment whose runtime
// is not configured; it is cleared once the runtime is back.
func unconfiguredReason(name string) string {
	return fmt.Sprintf("its runtime (%s) is not configured on this server, so nothing is done to it until it is (dev8 server --runtimes)", name)
}

// runtimeFor is the runtime env runs on, or a RuntimeUnavailableError.
func (m *Manager) runtimeFor(env store.Environment) (runtime.Runtime, error) {
	if rt, ok := m.runtimes[env.Runtime]; ok {
		return rt, nil
	}
	return nil, &RuntimeUnavailableError{Runtime: env.Runtime, Configured: m.RuntimeNames()}
}

// RuntimeNames lists the runtimes this manager drives, sorted.
func (m *Manager) RuntimeNames() []string {
	names := make([]string, 0, len(m.runtimes))
	for name := range m.runtimes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// OfferedRuntimes lists, in order of preference, the runtimes new
// environments may be created on.
func (m *Manager) OfferedRuntimes() []string { return slices.Clone(m.offered) }

// DefaultRuntime is the runtime a create that names none gets; "" means the
// first offered runtime on which its template can run now.
func (m *Manager) DefaultRuntime() string { return m.cfg.DefaultRuntime }

// RuntimeStatus is whether a template can run on one runtime now.
type RuntimeStatus struct {
	Runtime string
	runtime.ImageStatus
	// HostTools is true for a runtime that runs workspaces as processes of
	// this machine (local): the template's image is not used, and its
	// tools are whatever the host has.
	HostTools bool
	// AdminOnly: the runtime shares the server's host and the user is not
	// an admin (State is Unavailable).
	AdminOnly bool
}

// TemplateStatus says, for each offered runtime in order of preference,
// whether userID may create environments from tpl (with its image) there
// now.
func (m *Manager) TemplateStatus(ctx context.Context, tpl store.Template, userID string) ([]RuntimeStatus, error) {
	mayShare, err := m.mayShareHost(ctx, userID)
	if err != nil {
		return nil, err
	}
	return m.imageStatuses(ctx, tpl.BaseImage, mayShare), nil
}

// imageStatuses is imageStatus on each offered runtime, in order.
func (m *Manager) imageStatuses(ctx context.Context, image string, mayShareHost bool) []RuntimeStatus {
	out := make([]RuntimeStatus, 0, len(m.offered))
	for _, name := range m.offered {
		out = append(out, m.imageStatus(ctx, name, image, mayShareHost))
	}
	return out
}

// ChooseRuntime is the runtime a create that names none would use for an
// image, given the statuses TemplateStatus returned for it: the default
// runtime, or the first offered one that is not unavailable (when all are:
// the first the user may use, else the first).
func (m *Manager) ChooseRuntime(statuses []RuntimeStatus) string {
	if m.cfg.DefaultRuntime != "" {
		return m.cfg.DefaultRuntime
	}
	for _, s := range statuses {
		if s.State != runtime.Unavailable {
			return s.Runtime
		}
	}
	// None can: the first whose reason the user can act on (an image to
	// build), rather than one they may never use.
	for _, s := range statuses {
		if !s.AdminOnly {
			return s.Runtime
		}
	}
	if len(statuses) > 0 {
		return statuses[0].Runtime
	}
	return ""
}

func (m *Manager) imageStatus(ctx context.Context, name, image string, mayShareHost bool) RuntimeStatus {
	rt := m.runtimes[name]
	if !mayShareHost && sharesHost(rt) {
		return RuntimeStatus{Runtime: name, ImageStatus: runtime.ImageStatus{State: runtime.Unavailable, Reason: adminOnlyReason(name)},
			HostTools: name == "local", AdminOnly: true}
	}
	if c, ok := rt.(runtime.ImageChecker); ok {
		return RuntimeStatus{Runtime: name, ImageStatus: c.ImageStatus(ctx, image)}
	}
	return RuntimeStatus{Runtime: name, ImageStatus: runtime.ImageStatus{State: runtime.Ready}, HostTools: name == "local"}
}

// pickRuntime decides where a new environment from image runs: the runtime
// asked for (which must be offered), else the default, else the first
// offered one where the image can run now (and, when it must be placed on
// nodes, that can place it); each runtime's engine is asked once. A runtime
// that cannot run the image now, or cannot place it, is refused before
// anything is recorded.
func (m *Manager) pickRuntime(ctx context.Context, userID, asked, subject, image string, place *PlacementUnsupportedError) (string, error) {
	mayShare, err := m.mayShareHost(ctx, userID)
	if err != nil {
		return "", err
	}
	var status RuntimeStatus
	switch {
	case asked != "":
		asked = strings.ToLower(asked)
		if !slices.Contains(m.offered, asked) {
			return "", &RuntimeUnavailableError{Runtime: asked, Configured: m.OfferedRuntimes(), Create: true}
		}
		status = m.imageStatus(ctx, asked, image, mayShare)
	case m.cfg.DefaultRuntime != "":
		status = m.imageStatus(ctx, m.cfg.DefaultRuntime, image, mayShare)
	default:
		statuses := m.imageStatuses(ctx, image, mayShare)
		if place != nil {
			// Only where it can be placed, if anywhere can: else the
			// refusal below names the runtime it would have gone to.
			placers := slices.DeleteFunc(slices.Clone(statuses), func(s RuntimeStatus) bool { return !runtime.PlacesOnNodes(m.runtimes[s.Runtime]) })
			if len(placers) > 0 {
				statuses = placers
			}
		}
		chosen := m.ChooseRuntime(statuses)
		for _, s := range statuses {
			if s.Runtime == chosen {
				status = s
			}
		}
	}
	if status.AdminOnly {
		return "", &AdminOnlyError{Runtime: status.Runtime}
	}
	if place != nil && !runtime.PlacesOnNodes(m.runtimes[status.Runtime]) {
		e := *place
		e.Runtime, e.Capable = status.Runtime, m.nodePlacers()
		return "", &e
	}
	if status.State == runtime.Unavailable {
		return "", &TemplateUnavailableError{Subject: subject, Runtime: status.Runtime, Reason: status.Reason}
	}
	return status.Runtime, nil
}
