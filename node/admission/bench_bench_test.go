//go:build bench

package admission

import (
	"os"
	"testing"

	"github.com/musubi-fabric/musubi/internal/benchrec"
)

// TestBenchAdmission records the admission decision time p50/p99 with
// 10,000 existing reservations over 1,000 hosts (goal < 5 ms), for `make
// bench`.
func TestBenchAdmission(t *testing.T) {
	tt := bigTimetable(10000)
	if err := tt.Verify(); err != nil {
		t.Fatal(err)
	}
	admitLatencies(tt, 50) // warm up
	ds := admitLatencies(tt, 2000)
	rec := benchrec.New(os.Stdout)
	for _, p := range []float64{50, 99} {
		v := benchrec.Percentile(ds, p)
		f := benchrec.Figure{Bench: "reserve", Figure: "admission_decision_p" + map[float64]string{50: "50", 99: "99"}[p] + "_10k_resv_1k_hosts", Value: float64(v.Microseconds()) / 1000, Unit: "ms", Goal: "< 5"}
		if err := rec.Record(f); err != nil {
			t.Fatal(err)
		}
	}
}
