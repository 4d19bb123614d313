package sge

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// The fixtures below rebuild the state of the reference cell when the
// qstat samples were taken (jobs 17117-17128 on host vm, queue all.q, two
// slots), so the formatters must reproduce the samples byte for byte.

func at(hms string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", "2026-11-22 "+hms)
	if err != nil {
		panic(err)
	}
	return t
}

// labSpec is a job of the reference transcripts as submitted there.
func labSpec(name string, args ...string) JobSpec {
	sub := labSubmitter()
	completeSubmitter(&sub)
	sub.Env = nil
	return JobSpec{
		Name:       name,
		ScriptFile: compatDir + "sleeper.sh",
		Args:       args,
		Cwd:        sub.Cwd,
		Account:    "sge",
		MailList:   []string{"root@vm"},
		Env:        []EnvVar{{Name: "TERM", Unset: true}},
		Submitter:  sub,
	}
}

type labJob struct {
	view   JobView
	detail JobDetail
}

func labJobs() []labJob {
	mk := func(id int64, prio float64, name, state, tm string, spec JobSpec) labJob {
		v := JobViewFromSpec(id, &spec)
		v.Priority, v.State, v.Time = prio, state, at(tm)
		d := JobDetail{ID: id, Spec: spec, SubmitTime: at(tm)}
		return labJob{view: v, detail: d}
	}
	sched := []string{`queue instance "all.q@vm" dropped because it is full`, "All queues dropped because of overload or full"}
	withSched := func(j labJob, extra ...string) labJob {
		j.detail.SchedulingInfo = append(append([]string(nil), sched...), extra...)
		return j
	}

	runA := mk(17118, 0.25111, "run_a", "r", "02:05:38", labSpec("run_a", "120"))
	runA.view.Queue = "all.q@vm"
	runA.detail.Successors = []int64{17122}
	runA.detail.Usage = []TaskUsage{{Task: 1, Status: 128, NTix: 0.5, StartTime: at("02:05:38")}}
	runA.detail.NUrg = 0.002224
	runB := mk(17119, 0.25111, "run_b", "r", "02:05:38", labSpec("run_b", "120"))
	runB.view.Queue = "all.q@vm"

	pe := labSpec("pejob", "1")
	pe.PE = &PERequest{Name: "smp", Min: 2, Max: 2}
	pejob := mk(17125, 0.75, "pejob", "qw", "02:05:46", pe)
	pejob.view.Slots = 2

	eqwSpec := labSpec("eqw_demo", "1")
	eqwSpec.Stdout = []PathSpec{{Path: "/nonexistent_dir/"}}
	eqw := mk(17117, 0.5, "eqw_demo", "Eqw", "02:05:36", eqwSpec)
	eqw.detail.Errors = []TaskError{{Task: 1, Message: `11/22/2026 02:05:37 [0:20022]: error: can't open output file "/nonexistent_dir/": Is a directory`}}

	pending := mk(17120, 0.25, "pending", "qw", "02:05:46", labSpec("pending", "1"))

	arrSpec := labSpec("arr", "1")
	arrSpec.Array = &TaskRange{First: 1, Last: 4, Step: 1}
	arr := mk(17124, 0.25, "arr", "qw", "02:05:46", arrSpec)
	arr.view.Tasks = "1-4:1"

	bigSpec := labSpec("bigmem", "1")
	bigSpec.Resources.Hard = []Request{{Name: "mem_free", Value: "900G"}}
	bigmem := mk(17126, 0.25, "bigmem", "qw", "02:05:46", bigSpec)

	resSpec := labSpec("withres", "1")
	resSpec.Resources.Hard = []Request{{Name: "h_rt", Value: "600"}, {Name: "h_vmem", Value: "1G"}}
	resSpec.Priority = -10
	withres := mk(17127, 0.25, "withres", "qw", "02:05:46", resSpec)

	holdSpec := labSpec("userhold", "1")
	holdSpec.UserHold = true
	userhold := mk(17121, 0, "userhold", "hqw", "02:05:46", holdSpec)
	userhold.view.Holds = "u"

	depSpec := labSpec("dependent", "1")
	depSpec.HoldJobs = []string{"17118"}
	dependent := mk(17122, 0, "dependent", "hqw", "02:05:46", depSpec)
	dependent.view.Holds = "j"
	dependent.view.Predecessors = []int64{17118}
	dependent.detail.Predecessors = []int64{17118}

	byNameSpec := labSpec("dep_byname", "1")
	byNameSpec.HoldJobs = []string{"run_b"}
	byName := mk(17123, 0, "dep_byname", "hqw", "02:05:46", byNameSpec)
	byName.view.Holds = "j"
	byName.view.Predecessors = []int64{17119}
	byName.detail.Predecessors = []int64{17119}

	defSpec := labSpec("deferred", "1")
	defSpec.StartTime = at("03:05:00")
	deferred := mk(17128, 0, "deferred", "qw", "02:05:46", defSpec)
	deferred.view.Holds = "d"

	return []labJob{
		withSched(runA), withSched(runB), withSched(pejob),
		withSched(eqw, "Job is in error state"), withSched(pending), withSched(arr),
		withSched(bigmem), withSched(withres),
		withSched(userhold, "Job is in hold state"),
		withSched(dependent, "job dropped because of job dependencies"),
		withSched(byName, "job dropped because of job dependencies"),
		withSched(deferred, "execution time not reached"),
	}
}

func labViews() []JobView {
	var out []JobView
	for _, j := range labJobs() {
		out = append(out, j.view)
	}
	return out
}

func labQueues() []QueueView {
	var running []JobView
	for _, v := range labViews() {
		if !v.Pending() {
			running = append(running, v)
		}
	}
	return []QueueView{{Name: "all.q@vm", Type: "BIP", Used: 2, Total: 2, Load: 1.8125, HasLoad: true, Arch: "lx-amd64", Jobs: running}}
}

// transcriptOutput returns the output of the command cmd in a transcript.
func transcriptOutput(t *testing.T, file, cmd string) string {
	t.Helper()
	for _, b := range loadTranscript(t, file) {
		if b.cmd == cmd {
			return b.output
		}
	}
	t.Fatalf("%s: no command %q", file, cmd)
	return ""
}

func qstatOutput(t *testing.T, args []string, v QstatView) string {
	t.Helper()
	o, err := ParseQstat(args, "root")
	if err != nil {
		t.Fatal(err)
	}
	v.Jobs = SortJobs(FilterJobs(v.Jobs, o))
	v.Location = time.UTC
	var b bytes.Buffer
	if err := WriteQstat(&b, v, o); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}

func TestQstatGolden(t *testing.T) {
	view := QstatView{Jobs: labViews(), Queues: labQueues()}
	cases := []struct {
		file, cmd string
		args      []string
		lines     int // compare only the first lines (the sample was cut with head)
	}{
		{"qstat_default.txt", "qstat", nil, 0},
		{"qstat_default.txt", "qstat -u '*'", []string{"-u", "*"}, 0},
		{"qstat_misc.txt", "qstat -s p", []string{"-s", "p"}, 0},
		{"qstat_misc.txt", "qstat -s r", []string{"-s", "r"}, 0},
		{"qstat_misc.txt", "qstat -s h", []string{"-s", "h"}, 0},
		{"qstat_misc.txt", "qstat -r | head -40", []string{"-r"}, 40},
		{"qstat_f.txt", "qstat -f", []string{"-f"}, 0},
		{"qstat_g_d.txt", "qstat -g d", []string{"-g", "d"}, 0},
		{"qhold_qrls_qalter_qmod.txt", "qstat -explain E -f | head -12", []string{"-explain", "E", "-f"}, 5},
	}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			want := transcriptOutput(t, c.file, c.cmd)
			got := qstatOutput(t, c.args, view)
			if c.lines > 0 {
				got, want = firstLines(got, c.lines), firstLines(want, c.lines)
			}
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestQstatEmptyPrintsNothing(t *testing.T) {
	if got, want := qstatOutput(t, nil, QstatView{}), transcriptOutput(t, "qstat_empty.txt", "qstat"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// A foreign user's jobs are hidden without -u.
	o, _ := ParseQstat(nil, "nobody")
	if len(FilterJobs(labViews(), o)) != 0 {
		t.Fatal("nobody sees root's jobs")
	}
}

func TestQstatXMLGolden(t *testing.T) {
	view := QstatView{Jobs: labViews(), Queues: labQueues()}
	for _, c := range []struct {
		file string
		args []string
	}{
		{"qstat.xml", []string{"-xml"}},
		{"qstat_f.xml", []string{"-f", "-xml"}},
		{"qstat_r.xml", []string{"-r", "-xml"}},
		{"qstat_g_d.xml", []string{"-g", "d", "-xml"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			want, err := os.ReadFile("testdata/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := qstatOutput(t, c.args, view); got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestQstatJGolden(t *testing.T) {
	jobs := map[int64]JobDetail{}
	for _, j := range labJobs() {
		jobs[j.detail.ID] = j.detail
	}
	for _, b := range loadTranscript(t, "qstat_j.txt") {
		if strings.Contains(b.cmd, "|") {
			continue
		}
		t.Run(b.cmd, func(t *testing.T) {
			var id int64
			for k := range jobs {
				if strings.HasSuffix(b.cmd, " "+itoa64(k)) {
					id = k
				}
			}
			var out bytes.Buffer
			if err := WriteJobDetails(&out, []JobDetail{jobs[id]}, time.UTC); err != nil {
				t.Fatal(err)
			}
			if out.String() != b.output {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), b.output)
			}
		})
	}
}

func itoa64(v int64) string { return JobIDString(v, nil) }

func TestQstatJXMLGolden(t *testing.T) {
	jobs := map[int64]JobDetail{}
	for _, j := range labJobs() {
		jobs[j.detail.ID] = j.detail
	}
	sched := []string{`queue instance "all.q@vm" dropped because it is full`, "All queues dropped because of overload or full"}
	for file, id := range map[string]int64{"qstat_j_array.xml": 17124, "qstat_j_running.xml": 17118} {
		t.Run(file, func(t *testing.T) {
			want, err := os.ReadFile("testdata/" + file)
			if err != nil {
				t.Fatal(err)
			}
			d := jobs[id]
			d.SubmitTime = time.Unix(map[int64]int64{17124: 1795313146, 17118: 1795313138}[id], 0)
			d.Spec.MailList = []string{"root@vm"}
			var out bytes.Buffer
			if err := WriteJobDetailsXML(&out, []JobDetail{d}, sched); err != nil {
				t.Fatal(err)
			}
			if out.String() != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
			}
		})
	}
}

func TestQstatJNotFound(t *testing.T) {
	want := transcriptOutput(t, "qstat_misc.txt", "qstat -j 99999999")
	err := QstatJobsNotFound([]string{"99999999"})
	var b bytes.Buffer
	if code := WriteError(&b, err); code != 1 || b.String() != want {
		t.Fatalf("got %q (exit %d), want %q", b.String(), code, want)
	}
}

func TestQstatBadOption(t *testing.T) {
	want := transcriptOutput(t, "qstat_misc.txt", "qstat -bogus")
	_, err := ParseQstat([]string{"-bogus"}, "root")
	var b bytes.Buffer
	if code := WriteError(&b, err); code != 1 || b.String() != want {
		t.Fatalf("got %q (exit %d), want %q", b.String(), code, want)
	}
}

func labHost() HostView {
	var jobs []JobView
	for _, v := range labViews() {
		if !v.Pending() {
			v.Master = "MASTER"
			jobs = append(jobs, v)
		}
	}
	return HostView{
		Name: "vm", Arch: "lx-amd64", NCPU: 2, Sockets: 1, Cores: 2, Threads: 2,
		Load: 1.8125, MemTotal: 25325000000, MemUsed: 266317824, HasLoad: true,
		Queues: []QueueView{{Name: "all.q", Type: "BIP", Used: 2, Total: 2}},
		Jobs:   jobs,
	}
}

func TestQhostGolden(t *testing.T) {
	for _, cmd := range []string{"qhost", "qhost -q", "qhost -j"} {
		t.Run(cmd, func(t *testing.T) {
			o, err := ParseQhost(strings.Fields(cmd)[1:])
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := WriteQhost(&b, []HostView{labHost()}, o, time.UTC); err != nil {
				t.Fatal(err)
			}
			if want := transcriptOutput(t, "qhost.txt", cmd); b.String() != want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
	for file, args := range map[string][]string{"qhost.xml": {"-xml"}, "qhost_q_j.xml": {"-q", "-j", "-xml"}} {
		t.Run(file, func(t *testing.T) {
			o, err := ParseQhost(args)
			if err != nil {
				t.Fatal(err)
			}
			h := labHost()
			for i := range h.Jobs {
				h.Jobs[i].Priority = 0.251112
				h.Jobs[i].Time = time.Unix(1795313138, 0)
			}
			var b bytes.Buffer
			if err := WriteQhost(&b, []HostView{h}, o, time.UTC); err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile("testdata/" + file)
			if b.String() != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
}

func TestQstatExtGolden(t *testing.T) {
	views := labViews()
	for i := range views {
		v := &views[i]
		if v.Priority > 0 {
			v.NTickets = 0.5
		}
		if v.ID == 17119 {
			v.Usage = &JobUsage{IO: 0.00005}
		}
	}
	got := qstatOutput(t, []string{"-ext"}, QstatView{Jobs: views})
	if want := transcriptOutput(t, "qstat_misc.txt", "qstat -ext"); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
