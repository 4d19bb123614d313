package sge

import (
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"600": 600 * time.Second, "0:10:0": 600 * time.Second, "1:30:00": 5400 * time.Second,
		"::": 0, "0:0:2": 2 * time.Second, "1.5:0:0": 5400 * time.Second, "010": 8 * time.Second,
		"0x10": 16 * time.Second, "1k": 1000 * time.Second, "true": time.Second, "0:0:5 ": 5 * time.Second,
		"2.5": 2 * time.Second,
	} {
		got, inf, err := ParseTime(in)
		if err != nil || inf || got != want {
			t.Errorf("ParseTime(%q) = %v %v %v, want %v", in, got, inf, err, want)
		}
	}
	if _, inf, err := ParseTime("INFINITY"); !inf || err != nil {
		t.Errorf("infinity: %v %v", inf, err)
	}
	for _, in := range []string{"abc", "1:30", "1:2:3x", "", "1X", "-5", "1:x:3", "0xZ"} {
		if _, _, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) accepted", in)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{
		"100": 100, "1k": 1000, "1K": 1024, "500M": 500 << 20, "1m": 1000000, "2G": 2 << 30,
		"1.5g": 1500000000, "1T": 1 << 40, "0": 0, "0x1K": 1024, "1e3": 1000,
	} {
		got, inf, err := ParseMemory(in)
		if err != nil || inf || got != want {
			t.Errorf("ParseMemory(%q) = %v %v %v, want %v", in, got, inf, err, want)
		}
	}
	for _, in := range []string{"1X", "G", "1GB", "-1G", "1 G"} {
		if _, _, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) accepted", in)
		}
	}
}

func TestParseTaskRange(t *testing.T) {
	for in, want := range map[string]TaskRange{
		"1": {1, 1, 1}, "1-10": {1, 10, 1}, "1-10:3": {1, 10, 3}, "10-1": {1, 10, 1}, "5:9": {5, 9, 1},
	} {
		got, err := ParseTaskRange(in)
		if err != nil || got != want {
			t.Errorf("ParseTaskRange(%q) = %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-", "-5", "1-", "1-x", "1-5:0", "1-5:-1", "1-5:1.5", "1-5:2x", "1x", "UNDEFINED"} {
		if _, err := ParseTaskRange(in); err == nil {
			t.Errorf("ParseTaskRange(%q) accepted", in)
		}
	}
	if r := (TaskRange{1, 10, 3}); r.Count() != 4 || !reflect.DeepEqual(r.Tasks(), []int{1, 4, 7, 10}) || r.String() != "1-10:3" {
		t.Errorf("TaskRange helpers: %d %v %s", r.Count(), r.Tasks(), r.String())
	}
}

func TestParseDateTime(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"11221500":        time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC),
		"2611221500":      time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC),
		"202611221500.59": time.Date(2026, 11, 22, 15, 0, 59, 0, time.UTC),
		"9901010000":      time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, ok := parseDateTime(in, now, time.UTC)
		if !ok || !got.Equal(want) {
			t.Errorf("parseDateTime(%q) = %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "1122150", "13221500", "02301500", "11222500", "11221500.5", "1122150a", "196901010000"} {
		if _, ok := parseDateTime(in, now, time.UTC); ok {
			t.Errorf("parseDateTime(%q) accepted", in)
		}
	}
}

func TestTaskIDHelpers(t *testing.T) {
	for in, want := range map[string][]int{"4": {4}, "2,3": {2, 3}, "1-7:2": {1, 3, 5, 7}, "": nil, "x": nil} {
		if got := ExpandTasks(in); !reflect.DeepEqual(got, want) {
			t.Errorf("ExpandTasks(%q) = %v", in, got)
		}
	}
	for want, in := range map[string][]int{"1-4:1": {4, 1, 3, 2}, "2,3": {2, 3}, "4": {4}, "1-7:2,10": {1, 3, 5, 7, 10}, "": nil} {
		if got := FormatTaskIDs(in); got != want {
			t.Errorf("FormatTaskIDs(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestStateSelected(t *testing.T) {
	rows := map[string]JobView{
		"qw": {State: "qw"}, "hqw": {State: "hqw", Holds: "u"}, "r": {State: "r"}, "t": {State: "t"},
		"s": {State: "s"}, "Eqw": {State: "Eqw"}, "dep": {State: "hqw", Holds: "j"}, "def": {State: "qw", Holds: "d"},
	}
	for filter, want := range map[string]string{
		"p": "Eqw,def,dep,hqw,qw", "r": "r,t", "s": "s", "h": "def,dep,hqw", "hu": "hqw", "hj": "dep",
		"pr": "Eqw,def,dep,hqw,qw,r,t", "a": "Eqw,def,dep,hqw,qw,r,s,t",
	} {
		var got []string
		for _, k := range []string{"Eqw", "def", "dep", "hqw", "qw", "r", "s", "t"} {
			if StateSelected(filter, rows[k]) {
				got = append(got, k)
			}
		}
		if strings.Join(got, ",") != want {
			t.Errorf("-s %s: %v, want %s", filter, got, want)
		}
	}
}

func TestMessages(t *testing.T) {
	plain := &JobSpec{Name: "a"}
	arr := &JobSpec{Name: "b", Array: &TaskRange{1, 10, 2}}
	for _, c := range []struct{ got, want string }{
		{SubmittedMessage(7, plain), `Your job 7 ("a") has been submitted`},
		{SubmittedMessage(8, arr), `Your job-array 8.1-10:2 ("b") has been submitted`},
		{SubmittedMessage(8, &JobSpec{Terse: true, Array: &TaskRange{1, 10, 2}}), "8.1-10:2"},
		{SubmittedMessage(9, &JobSpec{Terse: true}), "9"},
		{SyncMessage(7, SyncResult{ExitCode: 3}), "Job 7 exited with exit code 3."},
		{SyncMessage(7, SyncResult{Task: 2, ExitCode: 0}), "Job 7.2 exited with exit code 0."},
		{SyncMessage(7, SyncResult{Signal: SignalName(9)}), "Job 7 exited because of signal SIGKILL"},
		{SyncMessage(7, SyncResult{NeverRan: true}), "Unable to run job 7"},
		{DeleteMessage(DeleteResult{Outcome: Registered, User: "u", Job: 5, Tasks: []int{4}}), "u has registered the job-array task 5.4 for deletion"},
		{DeleteMessage(DeleteResult{Outcome: NotFound, Job: 5}), `denied: job "5" does not exist`},
		{ModifiedMessage("hold", 5, []int{1, 2}), "modified hold of job-array tasks 1,2 of job 5"},
		{ModifiedMessage("hold", 5, []int{3}), "modified hold of job-array task 5.3"},
		{HoldListMessage(5, nil, []int64{1, 2}), "modified job id hold list of job 5\n   blocking jobs: NONE\n   exited jobs:   1,2"},
		{FailureDescription(26), "opening input/output file"},
		{FailureDescription(99), "invalid execution state"},
		{SignalName(99), "unknown signal"},
		{QacctNotFound("x").Error(), "error: job name x not found"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, c := range []struct {
		results []SyncResult
		want    int
	}{
		{nil, 0}, {[]SyncResult{{ExitCode: 0}, {ExitCode: 4}, {ExitCode: 5}}, 4},
		{[]SyncResult{{Signal: "SIGKILL"}}, 1}, {[]SyncResult{{NeverRan: true}}, 0},
	} {
		if got := SyncExitCode(c.results); got != c.want {
			t.Errorf("SyncExitCode(%v) = %d, want %d", c.results, got, c.want)
		}
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(os.ErrClosed) != 1 || ExitCode(rejectErr("x")) != 1 {
		t.Fatal("ExitCode")
	}
	var b strings.Builder
	if code := WriteError(&b, os.ErrClosed); code != 1 || b.String() != os.ErrClosed.Error()+"\n" {
		t.Fatalf("%q %d", b.String(), code)
	}
	e := usageTextErr("qacct", "")
	if e.Text() != HelpText("qacct") || e.Error() != "" {
		t.Fatal("usage-only error")
	}
}

// TestPurity enforces the package's rule: no I/O of its own.
func TestPurity(t *testing.T) {
	forbidden := map[string]bool{`"os"`: true, `"os/exec"`: true, `"net"`: true, `"syscall"`: true,
		`"net/http"`: true, `"os/signal"`: true, `"os/user"`: true, `"log"`: true, `"unsafe"`: true}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if forbidden[imp.Path.Value] {
				t.Errorf("%s imports %s", name, imp.Path.Value)
			}
		}
	}
}
