package executor

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestExpandPath(t *testing.T) {
	homes := map[string]string{"alice": "/home/alice"}
	v := pathVars{
		JobID: 17134, TaskID: 2, JobName: "arrpv", User: "root", Host: "vm", Home: "/root",
		LookupHome: func(u string) (string, bool) { h, ok := homes[u]; return h, ok },
	}
	nonArray := v
	nonArray.TaskID = 0
	for _, tc := range []struct {
		in   string
		v    pathVars
		want string
	}{
		// The reference's pseudo-variable files (output_files.txt).
		{"pv_$JOB_NAME.$JOB_ID.$TASK_ID.out", v, "pv_arrpv.17134.2.out"},
		{"pv_$USER.$HOSTNAME.$TASK_ID.err", v, "pv_root.vm.2.err"},
		{"nt.$JOB_ID.$TASK_ID.out", pathVars{JobID: 17135, JobName: "nt"}, "nt.17135.0.out"},
		{"$HOME/x.out", v, "/root/x.out"},
		{"$HOME$JOB_ID", v, "/root17134"},
		{"~/x.out", v, "/root/x.out"},
		{"~", v, "/root"},
		{"~alice/x.out", v, "/home/alice/x.out"},
		{"~nobody_here/x.out", v, "~nobody_here/x.out"},
		{"a$b.e119", v, "a$b.e119"},
		{"$", v, "$"},
		{"$$JOB_ID", v, "$17134"},
		{"$JOB_IDx", v, "17134x"},
		{"$TASK_ID", nonArray, "0"},
		{"/abs/$JOB_NAME/", v, "/abs/arrpv/"},
		{"", v, ""},
	} {
		if got := expandPath(tc.in, tc.v); got != tc.want {
			t.Errorf("expandPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSelectPath(t *testing.T) {
	for _, tc := range []struct{ raw, host, want string }{
		{"", "vm", ""},
		{"out.txt", "vm", "out.txt"},
		{"/a/b", "vm", "/a/b"},
		{"vm:/a/b", "vm", "/a/b"},
		{":/a/b", "vm", "/a/b"},
		{"other:/x,vm:/y", "vm", "/y"},
		{"other:/x,vm:/y", "VM.example.org", "/y"},
		{"other:/x,/z", "vm", "/z"},
		{"other:/x,third:/w", "vm", "/w"},
		{"dir/with:colon", "vm", "dir/with:colon"},
	} {
		if got := selectPath(tc.raw, tc.host); got != tc.want {
			t.Errorf("selectPath(%q, %q) = %q, want %q", tc.raw, tc.host, got, tc.want)
		}
	}
}

func TestOutputBase(t *testing.T) {
	v := pathVars{JobID: 7, JobName: "j", User: "u", Host: "h", Home: "/home/u"}
	for _, tc := range []struct{ raw, cwd, want string }{
		{"", "/w", "/w"},
		{"out", "/w", "/w/out"},
		{"dir/", "/w", "/w/dir/"},
		{"/abs/out", "/w", "/abs/out"},
		{"$HOME/o", "/w", "/home/u/o"},
		{"h:rel", "/w", "/w/rel"},
		{"x", "/", "/x"},
	} {
		if got := outputBase(tc.raw, v, tc.cwd); got != tc.want {
			t.Errorf("outputBase(%q, %q) = %q, want %q", tc.raw, tc.cwd, got, tc.want)
		}
	}
}

func TestDefaultOutputName(t *testing.T) {
	// Names from the reference: plain.o17129, arrdef.e17133.3.
	if got := defaultOutputName("plain", "o", 17129, 0); got != "plain.o17129" {
		t.Errorf("got %q", got)
	}
	if got := defaultOutputName("arrdef", "e", 17133, 3); got != "arrdef.e17133.3" {
		t.Errorf("got %q", got)
	}
}

// TestDefaultOutputNamesMatchReference regenerates every default-named file
// of the reference run (output_files.txt).
func TestDefaultOutputNamesMatchReference(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "sge-reference", "output_files.txt"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\./\w+/(([a-z_]+)\.([oe])(\d+)(?:\.(\d+))?)\s`)
	matches := re.FindAllStringSubmatch(string(b), -1)
	if len(matches) < 20 {
		t.Fatalf("only %d default-named files found in the reference", len(matches))
	}
	for _, m := range matches {
		id, _ := strconv.ParseInt(m[4], 10, 64)
		task, _ := strconv.Atoi(m[5])
		if got := defaultOutputName(m[2], m[3], id, task); got != m[1] {
			t.Errorf("defaultOutputName(%q, %q, %d, %d) = %q, Grid Engine wrote %q", m[2], m[3], id, task, got, m[1])
		}
	}
}

func TestSlotCountsAndHostfile(t *testing.T) {
	req := &Request{PEName: "smp", Slots: 2}
	n, h, q, here := slotCounts(req, "vm")
	if n != 2 || h != 1 || q != 1 || here != 2 {
		t.Errorf("smp 2: got %d %d %d %d", n, h, q, here)
	}
	// The reference's hostfile for -pe smp 2 (env_pe_hostfile.txt).
	if got := peHostfile(req, "vm", "all.q", n); got != "vm 2 all.q@vm UNDEFINED\n" {
		t.Errorf("hostfile %q", got)
	}

	req = &Request{PEName: "mpi", PEHosts: []PEHost{{Host: "a", Slots: 4}, {Host: "b", Slots: 2}, {Host: "b", Slots: 1, Queue: "long.q@b"}}}
	n, h, q, here = slotCounts(req, "b")
	if n != 7 || h != 2 || q != 3 || here != 3 {
		t.Errorf("mpi: got %d %d %d %d", n, h, q, here)
	}
	want := "a 4 all.q@a UNDEFINED\nb 2 all.q@b UNDEFINED\nb 1 long.q@b UNDEFINED\n"
	if got := peHostfile(req, "b", "all.q", n); got != want {
		t.Errorf("hostfile %q, want %q", got, want)
	}

	n, h, q, here = slotCounts(&Request{}, "vm")
	if n != 1 || h != 1 || q != 1 || here != 1 {
		t.Errorf("plain job: got %d %d %d %d", n, h, q, here)
	}
}

func FuzzExpandPath(f *testing.F) {
	for _, s := range []string{"pv_$JOB_NAME.$JOB_ID.$TASK_ID.out", "~/x", "~u/y", "$", "$$", "a:b,c:d", "~"} {
		f.Add(s, "vm")
	}
	f.Fuzz(func(t *testing.T, raw, host string) {
		v := pathVars{JobID: 1, TaskID: 2, JobName: "n", User: "u", Host: host, Home: "/h",
			LookupHome: func(string) (string, bool) { return "/x", true }}
		got := outputBase(raw, v, "/w")
		if !strings.HasPrefix(got, "/") {
			t.Errorf("outputBase(%q) = %q is not absolute", raw, got)
		}
		if !strings.Contains(raw, "$") && !strings.Contains(raw, "~") && !strings.Contains(got, selectPath(raw, host)) {
			t.Errorf("outputBase(%q) = %q lost the path", raw, got)
		}
	})
}
