package catalog

import (
	"fmt"
	"math"
	"strconv"
)

// CPUStep is the granularity of a size's vCPUs: 0.25, 0.5, 1, 1.5 are
// sizes, 0.3 is not. Every engine can give a quarter CPU exactly (docker
// in nano-CPUs, kubernetes in milli-CPUs, Azure Container Instances in
// hundredths), and a multiple of 0.25 is exact in binary floating point,
// so stored sizes compare and add up without rounding.
const CPUStep = 0.25

// CPURule is the rule CheckCPU applies, as error messages and docs say it.
var CPURule = fmt.Sprintf("a number of vCPUs from %s to %s in steps of %s (0.5, 1, 2.5)",
	FormatCPU(MinCPUCores), FormatCPU(MaxCPUCores), FormatCPU(CPUStep))

// CheckCPU checks a size's vCPUs: finite, from MinCPUCores to MaxCPUCores,
// a multiple of CPUStep.
func CheckCPU(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < MinCPUCores || v > MaxCPUCores || math.Mod(v, CPUStep) != 0 {
		return fmt.Errorf("must be %s (got %s)", CPURule, FormatCPU(v))
	}
	return nil
}

// FormatCPU writes vCPUs as people read them: 0.5 as "0.5", 2 as "2".
func FormatCPU(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
