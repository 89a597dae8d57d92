package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// Limits on what a create request may carry.
const (
	MaxAutoStopMinutes = 7 * 24 * 60
	MaxEnvVars         = 100
	MaxEnvValueBytes   = 32 << 10
	MaxPorts           = 20
)

var (
	// dnsLabel is RFC 1123: what container, pod and host names accept.
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	protocols = []string{"http", "https", "tcp", "udp"}
)

// ValidateName checks an environment name: a DNS label, 1–63 characters.
func ValidateName(name string) error {
	if name == "" {
		return &ValidationError{Field: "name", Message: "is required"}
	}
	if len(name) > 63 || !dnsLabel.MatchString(name) {
		return &ValidationError{Field: "name", Message: "must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit"}
	}
	return nil
}

// resolve turns a create request into the environment to store: it applies
// the template and instance type, then the request's own overrides, and
// checks the result. Sizes come from, in order: the request's fields, the
// named instance type, the template's defaults.
func (m *Manager) resolve(ctx context.Context, p CreateParams) (store.Environment, error) {
	if err := ValidateName(p.Name); err != nil {
		return store.Environment{}, err
	}
	templateName := p.Template
	if templateName == "" && p.BaseImage != "" {
		// The seed's clients name the template in base_image ("nodejs").
		if _, err := m.store.GetTemplate(ctx, p.BaseImage); err == nil {
			templateName, p.BaseImage = p.BaseImage, ""
		}
	}
	if templateName == "" {
		templateName = catalog.DefaultTemplate
	}
	tpl, err := m.store.GetTemplate(ctx, templateName)
	if errors.Is(err, store.ErrNotFound) {
		return store.Environment{}, m.unknownTemplate(ctx, templateName)
	} else if err != nil {
		return store.Environment{}, fmt.Errorf("load template: %w", err)
	}

	env := store.Environment{
		UserID:         p.UserID,
		Name:           p.Name,
		Status:         store.StatusCreating,
		CloudRegion:    p.CloudRegion,
		TemplateName:   tpl.Name,
		BaseImage:      tpl.BaseImage,
		CPUCores:       tpl.DefaultCPU,
		MemoryGB:       tpl.DefaultMemory,
		StorageGB:      tpl.DefaultStorage,
		LastAccessedAt: m.now(),
	}
	if p.BaseImage != "" {
		if err := catalog.CheckImageRef(p.BaseImage); err != nil {
			return store.Environment{}, &ValidationError{Field: "base_image", Message: fmt.Sprintf("must be a template name or an image reference such as registry.example.com/team/image:tag (%v)", err)}
		}
		env.BaseImage = p.BaseImage
	}
	subject := "template " + tpl.Name
	if p.BaseImage != "" {
		subject = "image " + p.BaseImage
	}
	// The instance type before the runtime: where it must be placed on
	// nodes (GPUs) decides which runtimes can take it.
	var it *store.InstanceType
	var place *PlacementUnsupportedError
	if p.InstanceType != "" {
		t, err := m.store.GetInstanceType(ctx, p.InstanceType)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !t.IsActive) {
			return store.Environment{}, &ValidationError{Field: "instance_type", Message: fmt.Sprintf("unknown instance type %q (GET /api/v1/instance-types lists them)", p.InstanceType)}
		} else if err != nil {
			return store.Environment{}, fmt.Errorf("load instance type: %w", err)
		}
		it = &t
		// The environment keeps its own copy, as of its sizes: editing
		// the type later changes no workspace made from it.
		env.Resources, env.NodeSelector = maps.Clone(t.Resources), maps.Clone(t.NodeSelector)
		if len(t.Resources)+len(t.NodeSelector) > 0 {
			place = &PlacementUnsupportedError{InstanceType: t.Name, Resources: t.Resources, NodeSelector: t.NodeSelector}
		}
	}
	if env.Runtime, err = m.pickRuntime(ctx, p.UserID, p.Runtime, subject, env.BaseImage, place); err != nil {
		return store.Environment{}, err
	}
	if env.CloudRegion != "" && (len(env.CloudRegion) > 63 || !dnsLabel.MatchString(env.CloudRegion)) {
		return store.Environment{}, &ValidationError{Field: "cloud_region", Message: "must be a region name such as eastus (lower-case letters, digits, '-')"}
	}
	if rg, ok := m.runtimes[env.Runtime].(runtime.Regioner); ok {
		// A runtime with regions says which one (its default for none),
		// and refuses one it is not configured for before anything is
		// recorded.
		region, err := rg.Region(env.CloudRegion)
		if err != nil {
			return store.Environment{}, &ValidationError{Field: "cloud_region", Message: err.Error()}
		}
		env.CloudRegion = region
	} else if env.CloudRegion == "" {
		env.CloudRegion = env.Runtime
	}

	if it != nil {
		env.CPUCores, env.MemoryGB, env.StorageGB = it.CPUCores, it.MemoryGB, it.StorageGB
	}
	if p.CPUCores != 0 {
		env.CPUCores = p.CPUCores
	}
	if p.MemoryGB != 0 {
		env.MemoryGB = p.MemoryGB
	}
	if p.StorageGB != 0 {
		env.StorageGB = p.StorageGB
	}
	if err := catalog.CheckCPU(env.CPUCores); err != nil {
		return store.Environment{}, &ValidationError{Field: "cpu_cores", Message: err.Error()}
	}
	if err := checkRange("memory_gb", env.MemoryGB, catalog.MinMemoryGB, catalog.MaxMemoryGB); err != nil {
		return store.Environment{}, err
	}
	if err := checkRange("storage_gb", env.StorageGB, catalog.MinStorageGB, catalog.MaxStorageGB); err != nil {
		return store.Environment{}, err
	}
	env.InstanceType = instanceTypeFor(it, env.CPUCores, env.MemoryGB)

	env.EnvironmentVariables = maps.Clone(tpl.DefaultEnvVars)
	if env.EnvironmentVariables == nil {
		env.EnvironmentVariables = map[string]string{}
	}
	maps.Copy(env.EnvironmentVariables, p.EnvironmentVariables)
	if err := checkEnvVars(env.EnvironmentVariables); err != nil {
		return store.Environment{}, err
	}

	env.Ports = slices.Clone(tpl.DefaultPorts)
	if p.Ports != nil {
		env.Ports = slices.Clone(p.Ports)
	}
	if env.Ports == nil {
		env.Ports = []store.Port{}
	}
	for i := range env.Ports {
		if env.Ports[i].Protocol == "" {
			env.Ports[i].Protocol = "http"
		}
	}
	if err := checkPorts(env.Ports); err != nil {
		return store.Environment{}, err
	}

	env.AutoStopMinutes = DefaultAutoStopMinutes
	if p.AutoStopMinutes != nil {
		env.AutoStopMinutes = *p.AutoStopMinutes
	}
	if err := checkRange("auto_stop_minutes", env.AutoStopMinutes, 0, MaxAutoStopMinutes); err != nil {
		return store.Environment{}, err
	}

	env.EstimatedCostPerHour = m.pricing(env.Runtime, env.CloudRegion).HourlyCost(env.CPUCores, env.MemoryGB, env.StorageGB)
	return env, nil
}

// instanceTypeFor names the size: the type asked for when its sizes were
// kept, the catalog type with the same CPU and memory, or "custom".
// unknownTemplate is the answer to a template that is not in the catalog:
// it names the ones that are, so the person can pick one.
func (m *Manager) unknownTemplate(ctx context.Context, name string) error {
	msg := fmt.Sprintf("unknown template %q", name)
	if tpls, err := m.store.ListTemplates(ctx); err == nil && len(tpls) > 0 {
		names := make([]string, len(tpls))
		for i, t := range tpls {
			names[i] = t.Name
		}
		slices.Sort(names)
		msg += "; the templates are " + strings.Join(names, ", ")
	}
	return &ValidationError{Field: "template_name", Message: msg + " (dev8 templates, or GET /api/v1/templates, describes them)"}
}

func instanceTypeFor(asked *store.InstanceType, cpu float64, mem int) string {
	if asked != nil {
		// A type's placement (GPUs) makes it itself whatever the sizes.
		if (asked.CPUCores == cpu && asked.MemoryGB == mem) || len(asked.Resources)+len(asked.NodeSelector) > 0 {
			return asked.Name
		}
		return catalog.CustomInstanceType
	}
	for _, it := range catalog.InstanceTypes {
		if it.CPUCores == cpu && it.MemoryGB == mem {
			return it.Name
		}
	}
	return catalog.CustomInstanceType
}

func checkRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return &ValidationError{Field: field, Message: fmt.Sprintf("must be between %d and %d (got %d)", lo, hi, v)}
	}
	return nil
}

func checkEnvVars(vars map[string]string) error {
	if len(vars) > MaxEnvVars {
		return &ValidationError{Field: "environment_variables", Message: fmt.Sprintf("at most %d variables", MaxEnvVars)}
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		switch {
		case !envName.MatchString(k):
			return &ValidationError{Field: "environment_variables", Message: fmt.Sprintf("%q is not a valid variable name (letters, digits and '_', not starting with a digit)", k)}
		case strings.HasPrefix(strings.ToUpper(k), "DEV8_"):
			return &ValidationError{Field: "environment_variables", Message: fmt.Sprintf("%q: names starting with DEV8_ are reserved", k)}
		case len(vars[k]) > MaxEnvValueBytes:
			return &ValidationError{Field: "environment_variables", Message: fmt.Sprintf("%q: value longer than %d bytes", k, MaxEnvValueBytes)}
		case strings.ContainsRune(vars[k], 0):
			return &ValidationError{Field: "environment_variables", Message: fmt.Sprintf("%q: value contains a NUL byte", k)}
		}
	}
	return nil
}

func checkPorts(ports []store.Port) error {
	if len(ports) > MaxPorts {
		return &ValidationError{Field: "ports", Message: fmt.Sprintf("at most %d ports", MaxPorts)}
	}
	seen := make(map[int]bool, len(ports))
	for _, p := range ports {
		if p.Port < 1 || p.Port > 65535 {
			return &ValidationError{Field: "ports", Message: fmt.Sprintf("port %d is outside 1-65535", p.Port)}
		}
		if !slices.Contains(protocols, p.Protocol) {
			return &ValidationError{Field: "ports", Message: fmt.Sprintf("port %d: protocol must be one of %s", p.Port, strings.Join(protocols, ", "))}
		}
		if seen[p.Port] {
			return &ValidationError{Field: "ports", Message: fmt.Sprintf("port %d is listed twice", p.Port)}
		}
		seen[p.Port] = true
	}
	return nil
}
