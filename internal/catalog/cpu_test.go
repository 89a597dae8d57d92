package catalog

import (
	"math"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/store"
)

// TestCheckCPU: sizes are 0.25 to 16 vCPUs in steps of 0.25; anything
// else is refused with the rule and the value in the message.
func TestCheckCPU(t *testing.T) {
	t.Parallel()
	for _, v := range []float64{0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 15.75, 16} {
		if err := CheckCPU(v); err != nil {
			t.Errorf("%v: %v", v, err)
		}
	}
	for _, v := range []float64{0, -0.5, -1, 0.1, 0.3, 0.33, 1.2, 16.25, 17, math.NaN(), math.Inf(1), math.Inf(-1), 1e300} {
		err := CheckCPU(v)
		if err == nil || !strings.Contains(err.Error(), "from 0.25 to 16 in steps of 0.25") || !strings.Contains(err.Error(), "(got "+FormatCPU(v)+")") {
			t.Errorf("%v: %v; want the rule and the value", v, err)
		}
	}
	ok := store.InstanceType{Name: "half", CPUCores: 0.5, MemoryGB: 1, StorageGB: 10}
	if err := CheckInstanceType(ok); err != nil {
		t.Errorf("an instance type of 0.5 vCPU: %v", err)
	}
	ok.CPUCores = 0.3
	if err := CheckInstanceType(ok); err == nil || !strings.HasPrefix(err.Error(), "cpu_cores: ") {
		t.Errorf("an instance type of 0.3 vCPU: %v", err)
	}
}

func TestFormatCPU(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{0.25: "0.25", 0.5: "0.5", 2: "2", 16: "16", 1.5: "1.5"} {
		if got := FormatCPU(v); got != want {
			t.Errorf("FormatCPU(%v) = %q, want %q", v, got, want)
		}
	}
}
