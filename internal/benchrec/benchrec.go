// Package benchrec records benchmark figures: a human-readable line on an
// io.Writer and a machine-readable JSON line appended to the results file
// that `make bench` collects (bench/out/results.jsonl, path taken from
// MUSUBI_BENCH_OUT).
package benchrec

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// EnvOut names the environment variable holding the results file path.
const EnvOut = "MUSUBI_BENCH_OUT"

// Figure is one measured value, optionally compared with a baseline
// measured in the same run on the same machine.
type Figure struct {
	Bench         string   `json:"bench"`          // bench name: coord, jobs, overlay, ...
	Figure        string   `json:"figure"`         // what was measured, e.g. create_per_s_c1
	Value         float64  `json:"value"`          // the measured value
	Unit          string   `json:"unit"`           // ops/s, ms, s, ...
	Baseline      string   `json:"baseline"`       // what Value is compared with ("" if none)
	BaselineValue *float64 `json:"baseline_value"` // the baseline's measured value
	Ratio         *float64 `json:"ratio"`          // Value/BaselineValue (or inverse for lower-is-better, see Goal)
	Goal          string   `json:"goal"`           // the goal, e.g. ">= 0.9"
	Time          string   `json:"time"`           // RFC 3339 time of measurement
}

// WithBaseline sets the baseline and the ratio value/baseline.
func (f Figure) WithBaseline(name string, value float64) Figure {
	f.Baseline = name
	f.BaselineValue = &value
	if value != 0 {
		r := f.Value / value
		f.Ratio = &r
	}
	return f
}

// String is the human-readable form.
func (f Figure) String() string {
	s := fmt.Sprintf("%-8s %-36s %12s %s", f.Bench, f.Figure, fmtNum(f.Value), f.Unit)
	if f.BaselineValue != nil {
		s += fmt.Sprintf("   %s: %s", f.Baseline, fmtNum(*f.BaselineValue))
	}
	if f.Ratio != nil {
		s += fmt.Sprintf("   ratio %.3f", *f.Ratio)
	}
	if f.Goal != "" {
		s += "   (goal " + f.Goal + ")"
	}
	return s
}

func fmtNum(v float64) string {
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

// Recorder prints figures and appends them to the results file.
type Recorder struct {
	w    io.Writer
	path string
}

// New returns a Recorder printing to w and appending to the file named by
// MUSUBI_BENCH_OUT (no file when unset).
func New(w io.Writer) *Recorder { return &Recorder{w: w, path: os.Getenv(EnvOut)} }

// Record prints f and appends it as one JSON line.
func (r *Recorder) Record(f Figure) error {
	if f.Time == "" {
		f.Time = time.Now().UTC().Format(time.RFC3339)
	}
	fmt.Fprintln(r.w, f.String())
	if r.path == "" {
		return nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("benchrec: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return fmt.Errorf("benchrec: %w", err)
	}
	fh, err := os.OpenFile(r.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("benchrec: %w", err)
	}
	if _, err := fh.Write(append(b, '\n')); err != nil {
		fh.Close()
		return fmt.Errorf("benchrec: %w", err)
	}
	return fh.Close()
}

// Percentile returns the p-th percentile (0-100) of ds by nearest rank.
// It sorts ds in place.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	k := int(math.Ceil(p/100*float64(len(ds)))) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(ds) {
		k = len(ds) - 1
	}
	return ds[k]
}
