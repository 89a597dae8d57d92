// Package placement checks what places a workspace on particular nodes of a
// cluster: extended resources it asks for (GPUs: "nvidia.com/gpu": "1") and
// node labels it must run on ("pool": "gpu"). The kubernetes runtime's
// configuration, instance types (the store, the API, the CLI) and the
// runtime itself all check them here, by Kubernetes' own rules, so a value
// one of them accepts is never refused by another or by the cluster.
package placement

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Kubernetes' names (k8s.io/api/core/v1's, not imported: it would bring
// net/http into the lifecycle, which uses this package).
const (
	// nativePrefix is the domain of Kubernetes' own resources.
	nativePrefix = "kubernetes.io/"
	// quotaPrefix prefixes a resource's name in a ResourceQuota.
	quotaPrefix = "requests."
)

// Bounds on what one instance type (or the server's configuration) may
// carry: far above any real use, low enough to keep a pod's spec small.
const (
	MaxResources     = 16
	MaxNodeSelectors = 32
	// MaxResourceCount bounds one extended resource's quantity (a node
	// with more than this many GPUs does not exist).
	MaxResourceCount = 1024
)

// CheckResources checks extended resources by name and quantity: each name
// is an extended resource in Kubernetes' sense (a domain-qualified name
// such as nvidia.com/gpu, outside the kubernetes.io domain: CPU and memory
// come from a workspace's size, not from here) and each quantity a whole
// number from 1 to MaxResourceCount (extended resources are counted, never
// split or overcommitted). Errors name the offending entry.
func CheckResources(res map[string]string) error {
	if len(res) > MaxResources {
		return fmt.Errorf("at most %d extended resources (got %d)", MaxResources, len(res))
	}
	for _, name := range slices.Sorted(maps.Keys(res)) {
		if err := CheckResourceName(name); err != nil {
			return err
		}
		if _, err := ResourceQuantity(name, res[name]); err != nil {
			return err
		}
	}
	return nil
}

// CheckResourceName checks that name is an extended resource's name, by the
// rule the API server applies to a container's resources.
func CheckResourceName(name string) error {
	switch {
	case !strings.Contains(name, "/"):
		return fmt.Errorf("resource %q: an extended resource's name has a domain, such as nvidia.com/gpu (CPU and memory come from the size)", name)
	case strings.Contains(name, nativePrefix):
		return fmt.Errorf("resource %q: names in the kubernetes.io domain are Kubernetes' own resources, not extended ones", name)
	case strings.HasPrefix(name, quotaPrefix):
		return fmt.Errorf("resource %q: must not start with %q", name, quotaPrefix)
	}
	// As Kubernetes checks it: the name must stay a qualified name with
	// the quota prefix in front.
	if errs := validation.IsQualifiedName(quotaPrefix + name); len(errs) > 0 {
		return fmt.Errorf("resource %q is not a valid resource name: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// ResourceQuantity parses the quantity v of the extended resource name: a
// whole number from 1 to MaxResourceCount.
func ResourceQuantity(name, v string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return resource.Quantity{}, fmt.Errorf("resource %s=%q: not a quantity: %w", name, v, err)
	}
	n, ok := q.AsInt64()
	if !ok || n < 1 || n > MaxResourceCount {
		return resource.Quantity{}, fmt.Errorf("resource %s=%q: must be a whole number from 1 to %d", name, v, MaxResourceCount)
	}
	return q, nil
}

// CheckNodeSelector checks node labels: keys are label keys (pool,
// cloud.google.com/gke-accelerator), values label values.
func CheckNodeSelector(sel map[string]string) error {
	if len(sel) > MaxNodeSelectors {
		return fmt.Errorf("at most %d node selector labels (got %d)", MaxNodeSelectors, len(sel))
	}
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("node selector key %q is not a label key: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(sel[k]); len(errs) > 0 {
			return fmt.Errorf("node selector %s=%q: not a label value: %s", k, sel[k], strings.Join(errs, "; "))
		}
	}
	return nil
}

// Merge is base with over on top: over's value wins for a name both have.
// The result is nil when both are empty.
func Merge(base, over map[string]string) map[string]string {
	if len(base)+len(over) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	return out
}

// Describe writes labels or resources as "a=1, b=2", sorted by name.
func Describe(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}
