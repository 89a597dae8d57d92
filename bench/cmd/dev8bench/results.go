package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
)

// Figure is one measured quantity: the median of Runs runs with min/max.
type Figure struct {
	Section string    `json:"section"`
	Name    string    `json:"name"`
	Engine  string    `json:"engine,omitempty"`
	Unit    string    `json:"unit"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Runs    []float64 `json:"runs"`
	Target  string    `json:"target,omitempty"`
	Met     *bool     `json:"met,omitempty"`
	Note    string    `json:"note,omitempty"`
}

// Machine describes where the figures were taken.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Engines   string `json:"store_engines"`
	// LoadAvg is /proc/loadavg at the start and the end: other work on
	// the machine skews every figure.
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

// Results is the JSON file.
type Results struct {
	Date    string   `json:"date"`
	Machine Machine  `json:"machine"`
	Figures []Figure `json:"figures"`
	Skipped []string `json:"skipped,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

var results Results

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machine() Machine {
	m := Machine{Cores: goruntime.NumCPU(), GoVersion: goruntime.Version(), OS: goruntime.GOOS + "/" + goruntime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// addFigure fills median/min/max; limit > 0 sets Met (≤ limit when
// lowerBetter) unless the caller already did.
func addFigure(f Figure, v []float64, limit float64, lowerBetter bool) {
	f.Runs = v
	if len(v) > 0 {
		f.Median, f.Min, f.Max = median(v), slices.Min(v), slices.Max(v)
	}
	if f.Met == nil && limit > 0 {
		met := f.Median <= limit
		if !lowerBetter {
			met = f.Median >= limit
		}
		f.Met = &met
	}
	results.Figures = append(results.Figures, f)
}

func printTable() {
	fmt.Printf("\n%-78s %-9s %12s %12s %12s %-10s  %-30s %s\n", "figure", "store", "median", "min", "max", "unit", "target", "")
	for _, f := range results.Figures {
		verdict := ""
		if f.Met != nil {
			verdict = "MISSED"
			if *f.Met {
				verdict = "met"
			}
		}
		fmt.Printf("%-78s %-9s %12s %12s %12s %-10s  %-30s %s\n", f.Name, f.Engine, num(f.Median), num(f.Min), num(f.Max), f.Unit, f.Target, verdict)
	}
	fmt.Printf("\nload average (1/5/15 min) at start: %s, at end: %s (above the core count, other work shared the CPU and the figures are pessimistic)\n", results.Machine.LoadAvgStart, results.Machine.LoadAvgEnd)
	for _, n := range results.Notes {
		fmt.Println("note:", n)
	}
	for _, s := range results.Skipped {
		fmt.Println("not measured:", s)
	}
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func writeJSON(path string) error {
	data, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
