package catalog

import (
	"fmt"
	"regexp"

	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/internal/store"
)

// Bounds on what an operator may write into an instance type.
const (
	MaxDisplayNameLength = 100
	MaxDescriptionLength = 500
	MaxSortOrder         = 10000
)

// CustomInstanceType is what an environment whose sizes match no type is
// said to be; no type may take the name.
const CustomInstanceType = "custom"

var instanceTypeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// InstanceTypeError is an instance type an operator may not store: Field
// is the request's field at fault.
type InstanceTypeError struct {
	Field   string
	Message string
}

func (e *InstanceTypeError) Error() string { return e.Field + ": " + e.Message }

// CheckInstanceType checks an instance type an operator creates or edits:
// its name a DNS label (what create requests and the CLI name it by), its
// sizes within the bounds every create is held to, its extended resources
// and node selector valid for Kubernetes (internal/placement).
func CheckInstanceType(it store.InstanceType) error {
	switch {
	case !instanceTypeName.MatchString(it.Name):
		return &InstanceTypeError{"name", fmt.Sprintf("%q must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit", it.Name)}
	case it.Name == CustomInstanceType:
		return &InstanceTypeError{"name", fmt.Sprintf("%q is reserved for environments sized by hand", it.Name)}
	case len(it.DisplayName) > MaxDisplayNameLength:
		return &InstanceTypeError{"display_name", fmt.Sprintf("at most %d bytes", MaxDisplayNameLength)}
	case len(it.Description) > MaxDescriptionLength:
		return &InstanceTypeError{"description", fmt.Sprintf("at most %d bytes", MaxDescriptionLength)}
	case it.SortOrder < 0 || it.SortOrder > MaxSortOrder:
		return &InstanceTypeError{"sort_order", fmt.Sprintf("must be between 0 and %d (got %d)", MaxSortOrder, it.SortOrder)}
	}
	if err := CheckCPU(it.CPUCores); err != nil {
		return &InstanceTypeError{"cpu_cores", err.Error()}
	}
	for _, f := range []struct {
		field     string
		v, lo, hi int
	}{
		{"memory_gb", it.MemoryGB, MinMemoryGB, MaxMemoryGB},
		{"storage_gb", it.StorageGB, MinStorageGB, MaxStorageGB},
	} {
		if f.v < f.lo || f.v > f.hi {
			return &InstanceTypeError{f.field, fmt.Sprintf("must be between %d and %d (got %d)", f.lo, f.hi, f.v)}
		}
	}
	if err := placement.CheckResources(it.Resources); err != nil {
		return &InstanceTypeError{"resources", err.Error()}
	}
	if err := placement.CheckNodeSelector(it.NodeSelector); err != nil {
		return &InstanceTypeError{"node_selector", err.Error()}
	}
	return nil
}
