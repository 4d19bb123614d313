package sge

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestClusterQueuesGolden(t *testing.T) {
	var b bytes.Buffer
	err := WriteClusterQueues(&b, []ClusterQueueView{{Name: "all.q", Load: 0.90625, HasLoad: true, Used: 2, Total: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if want := transcriptOutput(t, "qstat_g_c.txt", "qstat -g c"); b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestQstatDependencyStates rebuilds the qstat of deps.txt: array task
// rows ("4", "1", "2,3"), the t, Eqw and Rq states.
func TestQstatDependencyStates(t *testing.T) {
	row := func(id int64, prio float64, name, state, tm, queue, tasks string) JobView {
		return JobView{ID: id, Priority: prio, Name: name, Owner: "root", State: state,
			Time: at(tm), Queue: queue, Slots: 1, Tasks: tasks}
	}
	jobs := []JobView{
		row(17178, 0, "stage3", "hqw", "02:06:35", "", ""),
		row(17174, 0, "Y", "hqw", "02:06:35", "", ""),
		row(17177, 0.75, "stage2", "hqw", "02:06:35", "", "4"),
		row(17175, 0.25, "R99", "Rq", "02:06:37", "", ""),
		row(17177, 0.75, "stage2", "qw", "02:06:35", "", "2,3"),
		row(17173, 0.5, "X100", "Eqw", "02:06:35", "", ""),
		row(17177, 0.75, "stage2", "t", "02:06:41", "all.q@vm", "1"),
		row(17176, 0.75, "stage1", "r", "02:06:40", "all.q@vm", "4"),
	}
	got := qstatOutput(t, nil, QstatView{Jobs: jobs})
	if want := transcriptOutput(t, "deps.txt", "qstat"); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestQdelGolden(t *testing.T) {
	cases := []struct {
		cmd     string
		refs    []JobTaskRef
		users   []string
		results []DeleteResult
	}{
		{"qdel 17126", []JobTaskRef{{Job: "17126"}}, nil,
			[]DeleteResult{{Outcome: Deleted, User: "root", Job: 17126}}},
		{"qdel 17124 -t 2-3", []JobTaskRef{{Job: "17124", Tasks: &TaskRange{2, 3, 1}}}, nil,
			[]DeleteResult{{Outcome: Deleted, User: "root", Job: 17124, Tasks: []int{2, 3}}}},
		{"qdel 17124.4", []JobTaskRef{{Job: "17124", Tasks: &TaskRange{4, 4, 1}}}, nil,
			[]DeleteResult{{Outcome: Deleted, User: "root", Job: 17124, Tasks: []int{4}}}},
		{"qdel deferred", []JobTaskRef{{Job: "deferred"}}, nil,
			[]DeleteResult{{Outcome: Deleted, User: "root", Job: 17128}}},
		{"qdel 17118", []JobTaskRef{{Job: "17118"}}, nil,
			[]DeleteResult{{Outcome: Registered, User: "root", Job: 17118}}},
		{"qdel 99999999", []JobTaskRef{{Job: "99999999"}}, nil,
			[]DeleteResult{{Outcome: NotFound, JobRef: "99999999"}}},
		{"qdel 17117 17117", []JobTaskRef{{Job: "17117"}, {Job: "17117"}}, nil,
			[]DeleteResult{{Outcome: Registered, User: "root", Job: 17117}, {Outcome: AlreadyDeleting, Job: 17117}}},
		{"qdel -u root", nil, []string{"root"}, []DeleteResult{
			{Outcome: Registered, User: "root", Job: 17119}, {Outcome: Deleted, User: "root", Job: 17120},
			{Outcome: Registered, User: "root", Job: 17121}, {Outcome: Deleted, User: "root", Job: 17122},
			{Outcome: Deleted, User: "root", Job: 17123}, {Outcome: Deleted, User: "root", Job: 17124},
			{Outcome: Deleted, User: "root", Job: 17125}, {Outcome: Deleted, User: "root", Job: 17127}}},
	}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			b := block{}
			for _, tb := range loadTranscript(t, "qdel.txt") {
				if tb.cmd == c.cmd {
					b = tb
				}
			}
			o, err := ParseQdel(shellWords(c.cmd)[1:])
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.Jobs, c.refs) || !reflect.DeepEqual(o.Users, c.users) {
				t.Fatalf("parsed %+v", o)
			}
			var out bytes.Buffer
			code, err := WriteDeleteResults(&out, c.results)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != b.output || code != b.exit {
				t.Fatalf("got %q (exit %d), want %q (exit %d)", out.String(), code, b.output, b.exit)
			}
		})
	}
	t.Run("qdel", func(t *testing.T) {
		_, err := ParseQdel(nil)
		var out bytes.Buffer
		code := WriteError(&out, err)
		if want := transcriptOutput(t, "qdel.txt", "qdel"); out.String() != want || code != 1 {
			t.Fatalf("got %q (exit %d), want %q", out.String(), code, want)
		}
	})
	t.Run("foreign job", func(t *testing.T) {
		got := DeleteMessage(DeleteResult{Outcome: NotPermitted, User: "nobody", Job: 11674})
		if want := `nobody - you do not have the necessary privileges to delete the job "11674"`; got != want {
			t.Fatalf("got %q", got)
		}
	})
}

func TestQholdQrlsQalterGolden(t *testing.T) {
	tr := func(cmd string) string { return transcriptOutput(t, "qhold_qrls_qalter_qmod.txt", cmd) }
	for _, c := range []struct{ cmd, args string }{
		{"qhold 17120", ""}, {"qrls 17120", ""}, {"qrls -h u 17121", "u"},
	} {
		w := shellWords(c.cmd)
		o, err := ParseQhold(w[0], w[1:])
		if err != nil {
			t.Fatal(err)
		}
		if o.Holds != "u" || len(o.Jobs) != 1 {
			t.Fatalf("%s: %+v", c.cmd, o)
		}
		if got := ModifiedMessage("hold", mustID(t, o.Jobs[0].Job), nil) + "\n"; got != tr(c.cmd) {
			t.Fatalf("%s: got %q want %q", c.cmd, got, tr(c.cmd))
		}
	}

	job := labSpec("pending", "1")
	for _, c := range []struct {
		cmd  string
		what string
	}{
		{"qalter -N renamed 17120", "job name"},
		{"qalter -l h_rt=0:1:0 17120", "hard resource list"},
		{"qalter -hold_jid 17119 17120", "job id hold list"},
	} {
		req, err := ParseQalter(shellWords(c.cmd)[1:], labSubmitter())
		if err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		if len(req.Jobs) != 1 || req.Jobs[0].Job != "17120" {
			t.Fatalf("%s: jobs %+v", c.cmd, req.Jobs)
		}
		changed := ApplyQalter(&job, req)
		if len(changed) != 1 || changed[0] != c.what {
			t.Fatalf("%s: changed %v", c.cmd, changed)
		}
		var msg string
		if c.what == "job id hold list" {
			msg = HoldListMessage(17120, []int64{17119}, nil)
		} else {
			msg = ModifiedMessage(c.what, 17120, nil)
		}
		if msg+"\n" != tr(c.cmd) {
			t.Fatalf("%s: got %q want %q", c.cmd, msg, tr(c.cmd))
		}
	}
	if err := (Cluster{}).Validate(&job); err != nil {
		t.Fatal(err)
	}
	d := JobDetail{ID: 17120, Spec: job, SubmitTime: at("02:05:46"), Predecessors: []int64{17119}}
	var out bytes.Buffer
	if err := WriteJobDetails(&out, []JobDetail{d}, time.UTC); err != nil {
		t.Fatal(err)
	}
	var grep []string
	for _, l := range strings.SplitAfter(out.String(), "\n") {
		for _, p := range []string{"job_name", "hard resource_list", "jid_predecessor_list"} {
			if strings.HasPrefix(l, p) {
				grep = append(grep, l)
			}
		}
	}
	if got, want := strings.Join(grep, ""), tr("qstat -j 17120 | grep -E '^(job_name|hard resource_list|jid_predecessor_list)'"); got != want {
		t.Fatalf("qstat -j after qalter:\n%s\nwant:\n%s", got, want)
	}
	if got := UnknownJobMessage("99999999") + "\n"; got != tr("qalter -N x 99999999") {
		t.Fatalf("got %q", got)
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	var id int64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a job id: %q", s)
		}
		id = id*10 + int64(c-'0')
	}
	return id
}

// grepLines keeps the lines of s that start with one of the prefixes.
func grepLines(s string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				b.WriteString(l)
				break
			}
		}
	}
	return b.String()
}

func labRecord(name string, id int64, start, end string, failed, exit int) AccountingRecord {
	return AccountingRecord{
		QName: "all.q", Hostname: "vm", Group: "root", Owner: "root", Project: "NONE",
		Department: "defaultdepartment", JobName: name, JobNumber: id, Account: "sge",
		SubmitTime: at(start), StartTime: at(start), EndTime: at(end), GrantedPE: "NONE",
		Slots: 1, Failed: failed, ExitStatus: exit,
	}
}

func TestQacctGolden(t *testing.T) {
	records := []AccountingRecord{
		labRecord("A", 17170, "02:06:35", "02:06:35", 0, 3),
		labRecord("B", 17171, "02:06:36", "02:06:36", 0, 0),
		labRecord("C", 17172, "02:06:39", "02:06:39", 0, 0),
		labRecord("X100", 17173, "02:06:35", "02:06:35", FailedAppError, 100),
		labRecord("Y", 17174, "02:06:42", "02:06:42", 0, 0),
		labRecord("R99", 17175, "02:06:36", "02:06:36", FailedRescheduled, 99),
		labRecord("R99", 17175, "02:06:44", "02:06:44", 0, 0),
	}
	var out bytes.Buffer
	if err := WriteAccounting(&out, records, time.UTC); err != nil {
		t.Fatal(err)
	}
	cmd := "for j in 17170 17171 17172 17173 17174 17175; do qacct -j $j | grep -E '^(jobname|jobnumber|start_time|end_time|failed|exit_status)'; done"
	got := grepLines(out.String(), "jobname", "jobnumber", "start_time", "end_time", "failed", "exit_status")
	if want := transcriptOutput(t, "deps.txt", cmd); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}

	vmem := labRecord("vmem", 17206, "02:07:00", "02:07:01", 0, 0)
	hrt := labRecord("hrt", 17207, "02:07:04", "02:07:08", FailedLimitEnforced, 137)
	hrt.Wallclock = 4
	srt := labRecord("srt", 17208, "02:07:05", "02:07:09", 0, 42)
	srt.Wallclock = 4
	for _, c := range []struct {
		rec      AccountingRecord
		cmd      string
		prefixes []string
	}{
		{vmem, "qacct -j 17206 | grep -E '^(failed|exit_status|maxvmem)'; cat vmem.out", []string{"failed", "exit_status", "maxvmem"}},
		{hrt, "qacct -j 17207 | grep -E '^(failed|exit_status|ru_wallclock)'", []string{"failed", "exit_status", "ru_wallclock"}},
		{srt, "qacct -j 17208 | grep -E '^(failed|exit_status|ru_wallclock)'; cat srt.out", []string{"failed", "exit_status", "ru_wallclock"}},
	} {
		var b bytes.Buffer
		if err := WriteAccounting(&b, []AccountingRecord{c.rec}, time.UTC); err != nil {
			t.Fatal(err)
		}
		want := firstLines(transcriptOutput(t, "resources.txt", c.cmd), 3)
		if got := grepLines(b.String(), c.prefixes...); got != want {
			t.Fatalf("%s\ngot:\n%s\nwant:\n%s", c.cmd, got, want)
		}
	}

	for _, id := range []string{"17209", "99999999"} {
		var b bytes.Buffer
		code := WriteError(&b, QacctNotFound(id))
		if want := transcriptOutput(t, "qacct.txt", "qacct -j "+id); b.String() != want || code != 1 {
			t.Fatalf("got %q (exit %d), want %q", b.String(), code, want)
		}
	}
}

func TestQacctSummaryGolden(t *testing.T) {
	rec := AccountingRecord{Owner: "root", QName: "all.q", Wallclock: 212, UTime: 15.247, STime: 9.433, CPU: 24.680, IO: 0.005}
	var b bytes.Buffer
	totals := SumAccounting([]AccountingRecord{rec}, func(r *AccountingRecord) string { return r.Owner })
	if err := WriteAccountingSummary(&b, "OWNER", totals); err != nil {
		t.Fatal(err)
	}
	if want := transcriptOutput(t, "qacct.txt", "qacct -o root | head"); b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	rec = AccountingRecord{Owner: "root", QName: "all.q", Wallclock: 218, UTime: 15.613, STime: 9.639, CPU: 25.251, IO: 0.005}
	b.Reset()
	totals = SumAccounting([]AccountingRecord{rec}, func(r *AccountingRecord) string { return r.QName })
	if err := WriteAccountingSummary(&b, "CLUSTER QUEUE", totals); err != nil {
		t.Fatal(err)
	}
	if want := transcriptOutput(t, "qacct.txt", "qacct -q | head"); b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestQacctFullRecord pins the whole qacct -j layout (Grid Engine 8.1.9's
// showjob; the reference shows only some of its lines).
func TestQacctFullRecord(t *testing.T) {
	r := labRecord("hrt", 17207, "02:07:04", "02:07:08", FailedLimitEnforced, 137)
	r.SubmitTime = at("02:07:04")
	r.Wallclock, r.UTime, r.STime = 4, 0.003842, 0.006588
	r.MaxRSS, r.MinFlt, r.OuBlock, r.NVCSW, r.NIVCSW = 4904*1024, 637, 8, 16, 8
	r.CPU, r.IO, r.MaxVmem = 0.010430, 0.000044, 3538944
	r.Category = "-l h_rt=3"
	var b bytes.Buffer
	if err := WriteAccounting(&b, []AccountingRecord{r}, time.UTC); err != nil {
		t.Fatal(err)
	}
	want := `==============================================================
qname        all.q               
hostname     vm                  
group        root                
owner        root                
project      NONE                
department   defaultdepartment   
jobname      hrt                 
jobnumber    17207               
taskid       undefined
account      sge                 
priority     0                   
qsub_time    Sun Nov 22 02:07:04 2026
start_time   Sun Nov 22 02:07:04 2026
end_time     Sun Nov 22 02:07:08 2026
granted_pe   NONE                
slots        1                   
failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit
exit_status  137                  (Killed)
ru_wallclock 4s
ru_utime     0.004s
ru_stime     0.007s
ru_maxrss    4.789MB
ru_ixrss     0.000B
ru_ismrss    0.000B
ru_idrss     0.000B
ru_isrss     0.000B
ru_minflt    637                 
ru_majflt    0                   
ru_nswap     0                   
ru_inblock   0                   
ru_oublock   8                   
ru_msgsnd    0                   
ru_msgrcv    0                   
ru_nsignals  0                   
ru_nvcsw     16                  
ru_nivcsw    8                   
cpu          0.010s
mem          0.000GBs
io           0.000GB
iow          0.000s
maxvmem      3.375MB
arid         undefined
category     -l h_rt=3
`
	if b.String() != want {
		t.Fatalf("got:\n%s", b.String())
	}
}
