package benchrec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordAppendsJSONLines(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out", "results.jsonl")
	t.Setenv(EnvOut, out)
	var buf bytes.Buffer
	r := New(&buf)
	if err := r.Record(Figure{Bench: "coord", Figure: "create_per_s", Value: 900, Unit: "ops/s", Goal: ">= 0.9"}.WithBaseline("raw", 1000)); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(Figure{Bench: "coord", Figure: "get_per_s", Value: 5, Unit: "ops/s"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), b)
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &f); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bench", "figure", "value", "unit", "baseline", "baseline_value", "ratio", "goal"} {
		if _, ok := f[k]; !ok {
			t.Errorf("JSON line lacks %q: %s", k, lines[0])
		}
	}
	if f["ratio"].(float64) != 0.9 {
		t.Errorf("ratio = %v, want 0.9", f["ratio"])
	}
	if !strings.Contains(buf.String(), "ratio 0.900") {
		t.Errorf("human output lacks the ratio: %q", buf.String())
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty input should give 0")
	}
}
