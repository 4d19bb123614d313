package agentapi

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

var t0 = time.Date(2026, 11, 22, 2, 5, 46, 0, time.UTC)

func spec(name string) *sge.JobSpec {
	return &sge.JobSpec{Name: name, ScriptFile: name + ".sh", Submitter: sge.Submitter{User: "alice", UID: 1001}}
}

func TestJobRows(t *testing.T) {
	arr := spec("arr")
	arr.Array = &sge.TaskRange{First: 1, Last: 6, Step: 1}
	later := spec("later")
	later.StartTime = t0.Add(time.Hour)
	pe := spec("pe")
	pe.PE = &sge.PERequest{Name: "smp", Min: 2, Max: 2}
	jobs := []*jobqueue.Job{
		{ID: 1, Spec: arr, State: jobqueue.StateQueued, Submitted: t0,
			Running:    []jobqueue.Run{{Claim: 1, Host: "n1", Start: t0.Add(time.Second), Slots: 1, Tasks: []int{1, 2}}},
			Pending:    []int{4, 5, 6},
			ErrorTasks: []int{3}},
		{ID: 2, Spec: spec("dep"), State: jobqueue.StateQueued, Submitted: t0, Waiting: []int64{1}},
		{ID: 3, Spec: later, State: jobqueue.StateQueued, Submitted: t0},
		{ID: 4, Spec: pe, State: jobqueue.StateRunning, Submitted: t0,
			Running: []jobqueue.Run{{Claim: 1, Host: "n2", Start: t0.Add(2 * time.Second), Slots: 2}}},
		{ID: 5, Spec: spec("held"), State: jobqueue.StateHeld, Holds: "u", Submitted: t0},
	}
	rows := sge.SortJobs(Rows(jobs, t0))
	type row struct {
		id           int64
		state, queue string
		tasks, holds string
		slots        int
		prio         float64
		granted      string
		time         time.Time
	}
	want := []row{
		{1, "r", "all.q@n1", "1", "", 1, 0.25, "", t0.Add(time.Second)},
		{1, "r", "all.q@n1", "2", "", 1, 0.25, "", t0.Add(time.Second)},
		{4, "r", "all.q@n2", "", "", 2, 0.25, "smp 2", t0.Add(2 * time.Second)},
		{1, "Eqw", "", "3", "", 1, 0.25, "", t0},
		{1, "qw", "", "4-6:1", "", 1, 0.25, "", t0},
		{2, "hqw", "", "", "j", 1, 0, "", t0},
		{3, "qw", "", "", "d", 1, 0, "", t0},
		{5, "hqw", "", "", "u", 1, 0, "", t0},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		r := rows[i]
		got := row{r.ID, r.State, r.Queue, r.Tasks, r.Holds, r.Slots, r.Priority, r.GrantedPE, r.Time}
		if got != w {
			t.Errorf("row %d = %+v, want %+v", i, got, w)
		}
	}
	// The formatter prints them the Grid Engine way.
	o, err := sge.ParseQstat([]string{"-u", "*"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := sge.WriteQstat(&b, sge.QstatView{Jobs: rows, Location: time.UTC}, o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "      1 0.25000 arr        alice        qw    11/22/2026 02:05:46                                    1 4-6:1\n") {
		t.Fatalf("qstat:\n%s", b.String())
	}
}

func TestHostsQueuesAndDetail(t *testing.T) {
	hosts := []Host{{HostInfo: jobqueue.HostInfo{Host: "n1", Slots: 2, NCPU: 2, Load100: 150, MemTotal: 4 << 30, Updated: t0}, SlotsUsed: 1}}
	run := spec("run")
	jobs := []*jobqueue.Job{{ID: 7, Spec: run, State: jobqueue.StateRunning, Submitted: t0,
		Running: []jobqueue.Run{{Claim: 1, Host: "n1", Start: t0, Slots: 1}}}}
	rows := Rows(jobs, t0)
	qs := Queues(hosts, rows)
	if len(qs) != 1 || qs[0].Name != "all.q@n1" || qs[0].Used != 1 || qs[0].Total != 2 || qs[0].Load != 1.5 || len(qs[0].Jobs) != 1 {
		t.Fatalf("queues = %+v", qs)
	}
	hv := HostViews(hosts, rows)
	if len(hv) != 1 || hv[0].NCPU != 2 || hv[0].Arch != "lx-amd64" || len(hv[0].Jobs) != 1 || hv[0].Jobs[0].Queue != "all.q" {
		t.Fatalf("host views = %+v", hv)
	}
	eqw := &jobqueue.Job{ID: 8, Spec: spec("bad"), State: jobqueue.StateError, ErrorReason: "error: can't open output file", ErrorTime: t0}
	d := Detail(eqw, []int64{9})
	if len(d.Errors) != 1 || !strings.HasSuffix(d.Errors[0].Message, " [1001:0]: error: can't open output file") ||
		d.SchedulingInfo[0] != "Job is in error state" || d.Successors[0] != 9 {
		t.Fatalf("detail = %+v", d)
	}
	if s := Successors([]*jobqueue.Job{{ID: 3, Waiting: []int64{1}}, {ID: 2, Waiting: []int64{1}}}); len(s[1]) != 2 || s[1][0] != 2 {
		t.Fatalf("successors = %v", s)
	}
}

func TestAccountingRecords(t *testing.T) {
	s := spec("acct")
	s.Priority = -5
	s.PE = &sge.PERequest{Name: "smp", Min: 2, Max: 2}
	s.Resources.Hard = []sge.Request{{Name: "h_rt", Value: "60"}}
	recs := AccountingRecords(AccountedJob{Spec: s, Records: []jobqueue.Accounting{{
		JobID: 4, Name: "acct", Owner: "alice", Group: "users", Host: "n1", Slots: 2, PE: "smp",
		Submitted: t0, Start: t0, End: t0.Add(3 * time.Second), ExitStatus: 137, Signal: "SIGKILL", Failed: 100,
		WallClock: 3 * time.Second, UserCPU: time.Second, SystemCPU: time.Second / 2, MaxRSS: 1 << 20,
	}}})
	if len(recs) != 1 {
		t.Fatalf("records = %+v", recs)
	}
	r := recs[0]
	if r.QName != "all.q" || r.Hostname != "n1" || r.Priority != -5 || r.Category != "-l h_rt=60 -pe smp 2" ||
		r.CPU != 1.5 || r.GrantedPE != "smp" || r.Slots != 2 || r.Failed != 100 || r.ExitStatus != 137 {
		t.Fatalf("record = %+v", r)
	}
	var b bytes.Buffer
	if err := sge.WriteAccounting(&b, recs, time.UTC); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"jobnumber    4 ", "exit_status  137                  (Killed)", "failed       100 : assumedly after job"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("qacct output lacks %q:\n%s", want, b.String())
		}
	}
}
