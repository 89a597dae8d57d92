package catalog

import (
	"testing"

	"dev8.dev/dev8/internal/store"
)

// TestSeededInstanceTypesAreValid: the built-in types pass the check an
// operator's own types must pass, and the check refuses what it should.
func TestSeededInstanceTypesAreValid(t *testing.T) {
	t.Parallel()
	for _, it := range InstanceTypes {
		if err := CheckInstanceType(it); err != nil {
			t.Errorf("%s: %v", it.Name, err)
		}
	}
	ok := store.InstanceType{Name: "gpu", CPUCores: 4, MemoryGB: 16, StorageGB: 50,
		Resources: map[string]string{"nvidia.com/gpu": "1"}, NodeSelector: map[string]string{"pool": "gpu"}}
	if err := CheckInstanceType(ok); err != nil {
		t.Fatal(err)
	}
	for field, edit := range map[string]func(*store.InstanceType){
		"name":          func(it *store.InstanceType) { it.Name = "-gpu" },
		"cpu_cores":     func(it *store.InstanceType) { it.CPUCores = MaxCPUCores + 1 },
		"storage_gb":    func(it *store.InstanceType) { it.StorageGB = 0 },
		"resources":     func(it *store.InstanceType) { it.Resources = map[string]string{"memory": "1"} },
		"node_selector": func(it *store.InstanceType) { it.NodeSelector = map[string]string{"pool": "a b"} },
	} {
		it := ok
		edit(&it)
		err := CheckInstanceType(it)
		var e *InstanceTypeError
		if err == nil || !asInstanceTypeError(err, &e) || e.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func asInstanceTypeError(err error, e **InstanceTypeError) bool {
	v, ok := err.(*InstanceTypeError)
	*e = v
	return ok
}
