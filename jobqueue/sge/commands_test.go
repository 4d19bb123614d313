package sge

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseQstat(t *testing.T) {
	o, err := ParseQstat(strings.Fields("-f -r -xml -s hu -s r -u a,b -q all.q -g d -ext -pri -urg -ne -ncb -t -explain E -pe smp -qs d -U x -l arch=lx"), "root")
	if err != nil {
		t.Fatal(err)
	}
	want := QstatOptions{Full: true, ShowRequests: true, XML: true, States: "hur", Users: []string{"a", "b"},
		Queues: []string{"all.q"}, GroupBy: "d", Ext: true, Priority: true, Urgency: true, NoEmpty: true,
		NoBinding: true, Tasks: true, Explain: "E", PEs: []string{"smp"}, QueueStates: "d",
		QueueUsers: []string{"x"}, Resources: []Request{{"arch", "lx"}}}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got  %+v\nwant %+v", o, want)
	}
	o, _ = ParseQstat(nil, "root")
	if !reflect.DeepEqual(o.Users, []string{"root"}) {
		t.Fatalf("default -u: %v", o.Users)
	}
	o, _ = ParseQstat([]string{"-j", "1,run_*", "-F", "-help"}, "root")
	if !o.JobInfo || !reflect.DeepEqual(o.Jobs, []string{"1", "run_*"}) || !o.Full || o.FullResources != nil || !o.Help || o.Users != nil {
		t.Fatalf("%+v", o)
	}
	o, _ = ParseQstat([]string{"-j", "-F", "mem_free"}, "root")
	if !o.JobInfo || o.Jobs != nil || !reflect.DeepEqual(o.FullResources, []string{"mem_free"}) {
		t.Fatalf("%+v", o)
	}
	for _, args := range [][]string{{"-bogus"}, {"-s", "x"}, {"-g", "x"}, {"-explain", "z"}, {"-u"}, {"foo"}, {"-l", ""}, {"-qs", "z"}} {
		_, err := ParseQstat(args, "root")
		if err == nil {
			t.Errorf("qstat %q accepted", args)
			continue
		}
		text, code := errText(err)
		if code != 1 || !strings.HasPrefix(text, HelpText("qstat")) {
			t.Errorf("qstat %q: %q %d", args, text, code)
		}
	}
}

func TestParseQdelQhold(t *testing.T) {
	o, err := ParseQdel([]string{"-f", "1,2", "3.4-6:2", "name", "-t", "1-2", "-u", "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := []JobTaskRef{{Job: "1"}, {Job: "2"}, {Job: "3", Tasks: &TaskRange{4, 6, 2}}, {Job: "name", Tasks: &TaskRange{1, 2, 1}}}
	if !o.Force || !reflect.DeepEqual(o.Jobs, want) || !reflect.DeepEqual(o.Users, []string{"x"}) {
		t.Fatalf("%+v", o)
	}
	if got := o.Jobs[2].String(); got != "3.4-6:2" {
		t.Fatalf("ref string %q", got)
	}
	if o, err := ParseQdel([]string{"-help"}); err != nil || !o.Help {
		t.Fatal("qdel -help")
	}
	for _, args := range [][]string{{"-t", "1"}, {"1", "-t"}, {"1", "-t", "x"}, {"-x"}, {"-u"}, {"1.x"}} {
		if _, err := ParseQdel(args); err == nil {
			t.Errorf("qdel %q accepted", args)
		}
	}

	h, err := ParseQhold("qhold", []string{"-h", "uo", "5"})
	if err != nil || h.Holds != "uo" || len(h.Jobs) != 1 {
		t.Fatalf("%+v %v", h, err)
	}
	h, err = ParseQhold("qrls", []string{"-u", "me"})
	if err != nil || h.Holds != "u" || !reflect.DeepEqual(h.Users, []string{"me"}) {
		t.Fatalf("%+v %v", h, err)
	}
	for _, args := range [][]string{{"-h", "x", "5"}, {"-h"}, {}, {"-q", "5"}} {
		_, err := ParseQhold("qhold", args)
		if err == nil {
			t.Errorf("qhold %q accepted", args)
			continue
		}
		if text, _ := errText(err); !strings.HasPrefix(text, HelpText("qhold")) {
			t.Errorf("qhold %q: %q", args, text)
		}
	}
}

func TestParseQhostQacct(t *testing.T) {
	o, err := ParseQhost([]string{"-q", "-j", "-xml", "-h", "a,b", "-F", "-l", "arch=x", "-u", "me", "-ncb"})
	if err != nil || !o.Queues || !o.Jobs || !o.XML || !reflect.DeepEqual(o.Hosts, []string{"a", "b"}) ||
		!o.FullResources || len(o.Requests) != 1 || !o.NoBinding || !reflect.DeepEqual(o.Users, []string{"me"}) {
		t.Fatalf("%+v %v", o, err)
	}
	if _, err := ParseQhost([]string{"-x"}); err == nil {
		t.Fatal("qhost -x accepted")
	}
	if _, err := ParseQhost([]string{"-h"}); err == nil {
		t.Fatal("qhost -h without hosts accepted")
	}

	a, err := ParseQacct([]string{"-j", "17", "-t", "1-3", "-o", "-q", "all.q", "-d", "3", "-f", "acct", "-E", "-b", "2611220000"})
	if err != nil || a.Job != "17" || *a.Tasks != (TaskRange{1, 3, 1}) || !a.OwnerAll || a.Queue != "all.q" ||
		a.Days != 3 || a.File != "acct" || !a.EndTime || a.Begin != "2611220000" {
		t.Fatalf("%+v %v", a, err)
	}
	a, _ = ParseQacct([]string{"-j"})
	if !a.JobAll {
		t.Fatal("qacct -j without job")
	}
	for _, args := range [][]string{{"-x"}, {"-t"}, {"-t", "x"}, {"-d", "x"}, {"-f"}} {
		_, err := ParseQacct(args)
		if err == nil {
			t.Errorf("qacct %q accepted", args)
			continue
		}
		if text, code := errText(err); code != 1 || !strings.HasPrefix(text, HelpText("qacct")) {
			t.Errorf("qacct %q: %q %d", args, text, code)
		}
	}
}

func TestParseQalter(t *testing.T) {
	req, err := ParseQalter(strings.Fields("-N new -p 10 -h u -l h_rt=60 -tc 4 -o /o -v X=1 5,6.2 7"), labSubmitter())
	if err != nil {
		t.Fatal(err)
	}
	wantJobs := []JobTaskRef{{Job: "5"}, {Job: "6", Tasks: &TaskRange{2, 2, 1}}, {Job: "7"}}
	if !reflect.DeepEqual(req.Jobs, wantJobs) || req.Holds != "u" {
		t.Fatalf("%+v", req)
	}
	job := labSpec("old", "1")
	changed := ApplyQalter(&job, req)
	want := []string{"job name", "priority", "hold", "hard resource list", "task concurrency", "stdout path list", "environment"}
	if !reflect.DeepEqual(changed, want) {
		t.Fatalf("changed %v", changed)
	}
	if job.Name != "new" || job.Priority != 10 || !job.UserHold || job.TaskConcurrency != 4 ||
		job.Stdout[0].Path != "/o" || job.Resources.Hard[0].Value != "60" {
		t.Fatalf("%+v", job)
	}
	if v, _ := job.EnvValue("X"); v != "1" {
		t.Fatalf("env %+v", job.Env)
	}
	for _, c := range []struct {
		args []string
		text string
	}{
		{[]string{"-N", "x"}, HelpText("qalter") + "ERROR! no option argument\n"},
		{[]string{"-b", "y", "5"}, "qalter: invalid option argument \"-b\"\n"},
		{[]string{"-t", "1-2", "5"}, "qalter: Unknown option -t 1-2\n"},
		{[]string{"-h", "x", "5"}, "qalter: Unknown hold list \"x\" specified to -h option\n"},
		{[]string{"-", "5"}, "qalter: invalid option argument \"-\"\n"},
	} {
		_, err := ParseQalter(c.args, labSubmitter())
		if err == nil {
			t.Errorf("qalter %q accepted", c.args)
			continue
		}
		if text, _ := errText(err); text != c.text {
			t.Errorf("qalter %q: %q", c.args, text)
		}
	}
	req, err = ParseQalter([]string{"-help"}, labSubmitter())
	if err != nil || !req.Help {
		t.Fatal("qalter -help")
	}
}
