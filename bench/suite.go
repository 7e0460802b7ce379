package bench

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Row is one line of a comparison: two sides (or one side and a goal), a
// ratio, and whether the goal is met.
type Row struct {
	Name string `json:"name"`
	// A and B name the sides; ANs and BNs are their time (or amount, see
	// Unit) per operation.
	A   string  `json:"a"`
	ANs float64 `json:"a_value"`
	B   string  `json:"b,omitempty"`
	BNs float64 `json:"b_value,omitempty"`
	// Unit of ANs and BNs ("ns/op", "bytes/GiB", ...).
	Unit string `json:"unit"`
	// Ratio is A over B (a ratio against a goal for one-sided rows).
	Ratio float64 `json:"ratio"`
	// Goal says what the ratio aims at ("<= 0.67"); Met whether it is.
	Goal string `json:"goal,omitempty"`
	Met  bool   `json:"goal_met"`
	Note string `json:"note,omitempty"`
}

// Comparison is one of `nestmmu bench`'s comparisons.
type Comparison struct {
	Title string `json:"title"`
	// Method says how it was measured.
	Method string `json:"method"`
	Rows   []Row  `json:"rows"`
	// Unavailable, when set, says why the comparison did not run.
	Unavailable string `json:"unavailable,omitempty"`
}

// Machine describes where a run happened.
type Machine struct {
	Date string `json:"date"`
	Host string `json:"host"`
	CPU  string `json:"cpu"`
	CPUs int    `json:"cpus"`
	Go   string `json:"go"`
	OS   string `json:"os"`
}

// ThisMachine returns the run's machine description.
func ThisMachine() Machine {
	h, _ := os.Hostname()
	return Machine{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Host: h, CPU: cpuModel(), CPUs: runtime.NumCPU(),
		Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// atMost and atLeast build goal rows.
func atMost(r *Row, goal float64) {
	r.Goal = fmt.Sprintf("<= %.2f", goal)
	r.Met = r.Ratio <= goal
}

func atLeast(r *Row, goal float64) {
	r.Goal = fmt.Sprintf(">= %.2f", goal)
	r.Met = r.Ratio >= goal
}
