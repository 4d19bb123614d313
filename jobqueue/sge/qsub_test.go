package sge

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parse runs ParseQsub with the lab submitter and files.
func parse(t *testing.T, files fakeFS, stdin string, args ...string) (*QsubResult, error) {
	t.Helper()
	if files == nil {
		files = fakeFS{}
	}
	stdinRead := false
	res, err := ParseQsub(QsubRequest{
		Args:      args,
		Submitter: labSubmitter(),
		ReadFile:  files.read,
		ReadStdin: func() ([]byte, error) { stdinRead = true; return []byte(stdin), nil },
		Now:       time.Date(2026, 11, 22, 2, 5, 0, 0, time.UTC),
		Location:  time.UTC,
	})
	if err == nil && res.Spec.Binary && stdinRead {
		t.Fatal("a binary job read stdin")
	}
	return res, err
}

func mustParse(t *testing.T, files fakeFS, args ...string) *JobSpec {
	t.Helper()
	res, err := parse(t, files, "echo hi\n", args...)
	if err != nil {
		t.Fatalf("qsub %v: %v", args, err)
	}
	return &res.Spec
}

// errText is the complete stderr text and exit code of an error.
func errText(err error) (string, int) {
	var e *Error
	if !errors.As(err, &e) {
		return "not an *Error: " + err.Error(), -1
	}
	return e.Text(), e.Exit
}

func TestDirectivePrecedence(t *testing.T) {
	files := fakeFS{
		"job.sh": "#!/bin/bash\n#$ -N from_script\n#$ -l h_rt=60,h_vmem=1G\n#$ -o /tmp/out -hold_jid a\n" +
			"echo start\n#$ -v LATE=1\n  #$ -N indented_is_ignored\n#$ -q all.q # comment\n",
	}
	s := mustParse(t, files, "job.sh")
	if s.Name != "from_script" {
		t.Errorf("name %q", s.Name)
	}
	if v, _ := s.EnvValue("LATE"); v != "1" {
		t.Errorf("directive after the first command ignored: %+v", s.Env)
	}
	if !reflect.DeepEqual(s.Queues, []string{"all.q"}) {
		t.Errorf("queues %v", s.Queues)
	}

	s = mustParse(t, files, "-N", "cmd", "-l", "h_rt=120", "-hold_jid", "b", "-o", "/tmp/cmd", "job.sh")
	if s.Name != "cmd" {
		t.Errorf("command line -N lost: %q", s.Name)
	}
	if want := []Request{{"h_rt", "120"}, {"h_vmem", "1G"}}; !reflect.DeepEqual(s.Resources.Hard, want) {
		t.Errorf("resources %v", s.Resources.Hard)
	}
	if !reflect.DeepEqual(s.HoldJobs, []string{"a", "b"}) {
		t.Errorf("hold list %v (lists accumulate)", s.HoldJobs)
	}
	if !reflect.DeepEqual(s.Stdout, []PathSpec{{Path: "/tmp/cmd"}}) {
		t.Errorf("stdout %v", s.Stdout)
	}
}

func TestDirectivePrefix(t *testing.T) {
	files := fakeFS{"d2.sh": "#!/bin/sh\n#MYPFX -N custom\n#$ -N dollar\n"}
	if s := mustParse(t, files, "-C", "#MYPFX", "d2.sh"); s.Name != "custom" {
		t.Errorf("-C: name %q", s.Name)
	}
	if s := mustParse(t, files, "-C", "", "d2.sh"); s.Name != "d2.sh" {
		t.Errorf("-C '': name %q", s.Name)
	}
	// -C inside a script is ignored.
	files["c.sh"] = "#$ -C %X\n%X -N x\n#$ -N y\n"
	if s := mustParse(t, files, "c.sh"); s.Name != "y" {
		t.Errorf("-C in script: name %q", s.Name)
	}
}

func TestScanDirectives(t *testing.T) {
	script := "#!/bin/sh\n#$ -N a -cwd\n#$-j y\n #$ -N no\n#$ -v X=\"a b\" # c\n#$\n#$ # only comment\r\n#$ -p 1\r\nx\x00#$ -N after_nul\n"
	got := ScanDirectives([]byte(script), "#$")
	want := []Directive{
		{2, []string{"-N", "a", "-cwd"}}, {3, []string{"-j", "y"}}, {5, []string{"-v", "X=a b"}},
		{8, []string{"-p", "1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if ScanDirectives([]byte(script), "") != nil {
		t.Fatal("empty prefix must disable directives")
	}
	for in, want := range map[string][]string{
		`-N "quoted name"`: {"-N", "quoted name"},
		`-v 'A=x y',B=1`:   {"-v", "A=x y,B=1"},
		"a\t b  c":         {"a", "b", "c"},
		`""`:               {""},
		`-N "a" -cwd`:      {"-N", "a", "-cwd"},
	} {
		if got := SplitDirective(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitDirective(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOptionFile(t *testing.T) {
	files := fakeFS{
		"opts":   "# defaults\n-N from_file -l h_rt=10\n\n-@ nested # comment\n",
		"nested": "-j y\n-t 1-3\n",
		"loop":   "-@ loop\n",
		"job.sh": "#$ -N from_script\n",
	}
	s := mustParse(t, files, "-@", "opts", "job.sh")
	if s.Name != "from_file" || !s.Join || s.Array == nil || s.Array.Count() != 3 {
		t.Fatalf("option file: %+v", s)
	}
	if s := mustParse(t, files, "-@", "opts", "-N", "later", "job.sh"); s.Name != "later" {
		t.Fatalf("options after -@ must win: %q", s.Name)
	}
	_, err := parse(t, files, "", "-@", "missing", "job.sh")
	if text, code := errText(err); text != "qsub: error opening missing: No such file or directory\n" || code != 14 {
		t.Fatalf("missing -@ file: %q %d", text, code)
	}
	if _, err := parse(t, files, "", "-@", "loop", "job.sh"); err == nil {
		t.Fatal("self-including -@ file accepted")
	}
}

func TestBinaryJobs(t *testing.T) {
	s := mustParse(t, nil, "-b", "y", "/bin/echo", "a b", "-c")
	if !s.Binary || s.ScriptFile != "/bin/echo" || s.Name != "echo" || s.Script != nil ||
		!reflect.DeepEqual(s.Args, []string{"a b", "-c"}) {
		t.Fatalf("%+v", s)
	}
	s = mustParse(t, nil, "-b", "yes", "-shell", "no", "env")
	if !s.NoShell || s.Name != "env" {
		t.Fatalf("%+v", s)
	}
	_, err := parse(t, nil, "", "-b", "y")
	if text, code := errText(err); text != "qsub: command required for a binary job\n" || code != 2 {
		t.Fatalf("%q %d", text, code)
	}
}

func TestScriptSources(t *testing.T) {
	res, err := parse(t, nil, "#$ -N from_stdin_directive\necho hi\n")
	if err != nil || res.Spec.Name != "from_stdin_directive" || res.Spec.ScriptFile != "STDIN" ||
		string(res.Spec.Script) != "#$ -N from_stdin_directive\necho hi\n" {
		t.Fatalf("%+v %v", res, err)
	}
	res, err = parse(t, nil, "echo\n", "-", "arg1")
	if err != nil || res.Spec.Name != "STDIN" || !reflect.DeepEqual(res.Spec.Args, []string{"arg1"}) {
		t.Fatalf("%+v %v", res, err)
	}
	res, err = parse(t, nil, "echo\n", "-cwd", "--", "x", "-y")
	if err != nil || res.Spec.ScriptFile != "STDIN" || !reflect.DeepEqual(res.Spec.Args, []string{"x", "-y"}) {
		t.Fatalf("%+v %v", res, err)
	}
	files := fakeFS{"dir": "<dir>", "sub/job.sh": "echo\n"}
	_, err = parse(t, files, "", "dir")
	if text, code := errText(err); text != "Unable to read script file because of error: error reading from file dir\n" || code != 4 {
		t.Fatalf("%q %d", text, code)
	}
	if s := mustParse(t, files, "sub/job.sh", "-N", "x"); s.Name != "job.sh" || !reflect.DeepEqual(s.Args, []string{"-N", "x"}) {
		t.Fatalf("script arguments are verbatim: %+v", s)
	}
}

func TestQsubOptions(t *testing.T) {
	sub := labSubmitter()
	sub.Env = append(sub.Env, "SET=yes", "TERM=xterm")
	res, err := ParseQsub(QsubRequest{
		Args: strings.Fields("-N n -o h1:/o1,/o2 -e /e -j y -cwd -V -v A=1,SET,UNSET -t 2-10:2 -tc 3 " +
			"-hold_jid 1,x* -hold_jid_ad 7 -h -p -5 -pe mpi 2-8 -l h_rt=1:30:00,mf=2G -soft -l arch=lx-amd64 " +
			"-hard -q all.q -soft -q other.q -masterq all.q@vm -S /bin/bash -shell y -sync y -terse " +
			"-now n -A acct -P proj -M a@b,c -m ea -m b -notify -r n -R y -a 202611221500.30 " +
			"-dl 11221600 -ac X=1,Y=2 -dc X -ckpt ck -c sx -js 5 -binding linear:1 -w w -verify " +
			"-i /dev/null -u ignored -jsv /x job.sh a1"),
		Submitter: sub,
		ReadFile:  fakeFS{"job.sh": "#!/bin/sh\n"}.read,
		Now:       time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Location:  time.UTC,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Spec
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("Name", s.Name, "n")
	check("Stdout", s.Stdout, []PathSpec{{Host: "h1", Path: "/o1"}, {Path: "/o2"}})
	check("Stderr", s.Stderr, []PathSpec{{Path: "/e"}})
	check("Join", s.Join, true)
	check("Cwd", s.Cwd, sub.Cwd)
	a, _ := s.EnvValue("A")
	set, _ := s.EnvValue("SET")
	term, _ := s.EnvValue("TERM")
	check("env", []string{a, set, term}, []string{"1", "yes", "xterm"})
	check("Env[0]", s.Env[0].Name, "TERM")
	var unset EnvVar
	for _, v := range s.Env {
		if v.Name == "UNSET" {
			unset = v
		}
	}
	check("UNSET", unset, EnvVar{Name: "UNSET", Unset: true})
	check("Array", s.Array, &TaskRange{2, 10, 2})
	check("TaskConcurrency", s.TaskConcurrency, 3)
	check("HoldJobs", s.HoldJobs, []string{"1", "x*"})
	check("HoldArrayJobs", s.HoldArrayJobs, []string{"7"})
	check("UserHold", s.UserHold, true)
	check("Priority", s.Priority, -5)
	check("PE", s.PE, &PERequest{Name: "mpi", Min: 2, Max: 8})
	check("Hard", s.Resources.Hard, []Request{{"h_rt", "1:30:00"}, {"mf", "2G"}})
	check("Soft", s.Resources.Soft, []Request{{"arch", "lx-amd64"}})
	check("Queues", s.Queues, []string{"all.q"})
	check("SoftQueues", s.SoftQueues, []string{"other.q"})
	check("MasterQueues", s.MasterQueues, []string{"all.q@vm"})
	check("Shell", s.Shell, []PathSpec{{Path: "/bin/bash"}})
	check("NoShell", s.NoShell, false)
	check("Sync", s.Sync, true)
	check("Terse", s.Terse, true)
	check("Immediate", s.Immediate, false)
	check("Account", s.Account, "acct")
	check("Project", s.Project, "proj")
	check("MailList", s.MailList, []string{"a@b", "c"})
	check("MailOptions", s.MailOptions, "abe")
	check("Notify", s.Notify, true)
	no := false
	check("Rerun", s.Rerun, &no)
	check("Reserve", s.Reserve, true)
	check("StartTime", s.StartTime, time.Date(2026, 11, 22, 15, 0, 30, 0, time.UTC))
	check("Deadline", s.Deadline, time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC))
	check("Context", s.Context, []EnvVar{{Name: "Y", Value: "2"}})
	check("Checkpoint", []string{s.Checkpoint, s.CheckpointWhen}, []string{"ck", "sx"})
	check("JobShare", s.JobShare, 5)
	check("Binding", s.Binding, "linear:1")
	check("Verify", s.Verify, "w")
	check("VerifyOnly", s.VerifyOnly, true)
	check("Stdin", s.Stdin, []PathSpec{{Path: "/dev/null"}})
	check("Args", s.Args, []string{"a1"})

	if err := (Cluster{Projects: []string{"proj"}, Queues: []string{"all.q", "other.q"}}).Validate(&s); err != nil {
		t.Fatal(err)
	}
	check("validated Hard", s.Resources.Hard, []Request{{"h_rt", "5400"}, {"mem_free", "2G"}})
	check("HardRuntime", s.Resources.HardRuntime, 90*time.Minute)
	check("MemFree", s.Resources.MemFree, int64(2<<30))

	// JobSpec survives a JSON round trip.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back JobSpec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	s.Submitter.Env = nil
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("JSON round trip:\n%+v\n%+v", back, s)
	}
}

func TestQsubDefaults(t *testing.T) {
	s := mustParse(t, fakeFS{"/x/job.sh": "echo\n"}, "/x/job.sh")
	if s.Name != "job.sh" || s.Cwd != "" || s.Account != "sge" || s.Priority != 0 || s.Array != nil ||
		!reflect.DeepEqual(s.MailList, []string{"root@localhost"}) || s.Rerun != nil ||
		!reflect.DeepEqual(s.Env, []EnvVar{{Name: "TERM", Unset: true}}) ||
		s.Submitter.Path == "" || s.Submitter.Shell != "/bin/bash" || s.Submitter.Env != nil {
		t.Fatalf("%+v", s)
	}
	if s.Tasks() != (TaskRange{1, 1, 1}) || s.Slots() != 1 || s.IsArray() {
		t.Fatal("defaults of a plain job")
	}
}

func TestQsubDefaultArgs(t *testing.T) {
	res, err := ParseQsub(QsubRequest{
		Args:        []string{"-N", "cmd", "job.sh"},
		DefaultArgs: []string{"-cwd", "-N", "default", "-b", "n"},
		Submitter:   labSubmitter(),
		ReadFile:    fakeFS{"job.sh": "#$ -j y\n"}.read,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Spec; s.Name != "cmd" || s.Cwd == "" || !s.Join {
		t.Fatalf("%+v", s)
	}
}

func TestQsubClear(t *testing.T) {
	files := fakeFS{"job.sh": "#$ -N script -j y\n"}
	s := mustParse(t, files, "-clear", "-o", "/x", "job.sh")
	if s.Name != "job.sh" || s.Join || len(s.Stdout) != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestQsubWarnings(t *testing.T) {
	files := fakeFS{"d8.sh": "#$ -N first\n#$ -N second\n"}
	res, err := parse(t, files, "", "-N", "a", "-N", "b", "-j", "y", "-j", "n", "d8.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`qsub: warning: "-N" option has already been set, overriding previous setting`,
		`qsub: warning: "-j" option has already been set, overriding previous setting`,
		`warning: "-N" option has already been set, overriding previous setting`,
	}
	if !reflect.DeepEqual(res.Warnings, want) || res.Spec.Name != "b" || res.Spec.Join {
		t.Fatalf("%q %+v", res.Warnings, res.Spec)
	}
}

func TestQsubHelpOption(t *testing.T) {
	res, err := parse(t, nil, "", "-cwd", "-help", "nosuch.sh")
	if err != nil || !res.Help {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestQsubErrors(t *testing.T) {
	files := fakeFS{"job.sh": "echo\n", "bad.sh": "#$ -cwd\n#$ -N ok -bogus\n", "stray.sh": "#$ -cwd extra\n"}
	cases := []struct {
		args []string
		text string
		code int
	}{
		{[]string{"-bogus", "job.sh"}, "qsub: invalid option argument \"-bogus\"\n", 2},
		{[]string{"-N"}, "qsub: -N option must have argument\n", 2},
		{[]string{"-o"}, "qsub: -o option must have argument\n", 2},
		{[]string{"-pe"}, "qsub: -pe option must have pe_name argument\n", 2},
		{[]string{"-pe", "smp"}, "qsub: -pe option must have range as 2nd argument\n", 2},
		{[]string{"-pe", "smp", "x"}, "qsub: Numerical value invalid!\nThe initial portion of string \"x\" contains no decimal number\n", 7},
		{[]string{"-q"}, "qsub: -q option must have queue list argument\n", 2},
		{[]string{"-t"}, "qsub: -t option must have a list of task id ranges\n", 2},
		{[]string{"-t", "x", "job.sh"}, "qsub: Numerical value invalid!\nThe initial portion of string \"x\" contains no decimal number\n", 7},
		{[]string{"-t", "1-10:0", "job.sh"}, "qsub: Negative or zero step in range is not allowed\n", 7},
		{[]string{"-t", "1-10:x", "job.sh"}, "qsub: Numerical value invalid!\nThe initial portion of string \"x\" contains no decimal number\n", 7},
		{[]string{"-t", "1-3x", "job.sh"}, "qsub: Range specifier \"3x\" has unknown trailer \"x\"\n", 7},
		{[]string{"-t", "1-3,5-7", "job.sh"}, "qsub: ERROR! -t option only allows one range specification\n", 7},
		{[]string{"-tc", "-1", "job.sh"}, "qsub: invalid task concurrency number -1. Must be an integer greater or equal to 0.\n", 7},
		{[]string{"-tc", "x", "job.sh"}, "qsub: invalid task concurrency number 0. Must be an integer greater or equal to 0.\n", 7},
		{[]string{"-p", "1025", "job.sh"}, "qsub: invalid priority \"1025\".  Must be an integer from -1023 to 1024\n", 7},
		{[]string{"-j", "x", "job.sh"}, "qsub: invalid option argument \"-j x\"\n", 7},
		{[]string{"-b", "maybe", "job.sh"}, "qsub: invalid option argument \"-b maybe\"\n", 7},
		{[]string{"-r", "x", "job.sh"}, "qsub: invalid option argument \"-r x\"\n", 7},
		{[]string{"-w", "x", "job.sh"}, "qsub: invalid option argument \"-w x\"\n", 7},
		{[]string{"-m", "q", "job.sh"}, "qsub: Wrong mail options list format \"q\" specified to -m option\n", 7},
		{[]string{"-a", "tomorrow", "job.sh"}, "qsub: Wrong date/time format \"tomorrow\" specified to -a option\n", 7},
		{[]string{"-l", "h_rt=", "job.sh"}, "qsub: Wrong resource list format \"h_rt=\" specified to -l option\n", 7},
		{[]string{"-v", "=x", "job.sh"}, "qsub: Wrong variable list format -v \"=x\" or environment variable not set\n", 7},
		{[]string{"-o", "h:", "job.sh"}, "qsub: Wrong stdout path list format \"h:\" specified to -o option\n", 7},
		{[]string{"-N", "a/b", "job.sh"}, "qsub: argument to -N option must not contain / \n", 2},
		{[]string{"-N", "", "job.sh"}, "qsub: empty string argument to -N option invalid\n", 2},
		{[]string{"-js", "-3", "job.sh"}, "qsub: invalid jobshare, must be an unsigned integer\n", 2},
		{[]string{"-pty", "y", "job.sh"}, "qsub: Unknown option -pty y\n", 5},
		{[]string{"-ot", "3", "job.sh"}, "qsub: Unknown option -ot 3\n", 5},
		{[]string{"-@"}, "qsub: -@ option must have file argument\n", 2},
		{[]string{"bad.sh"}, "Unable to read script file because of error: invalid option argument \"-bogus\"\n", 2},
		{[]string{"stray.sh"}, "qsub: Unknown option \n", 5},
		{[]string{"nosuch.sh"}, "Unable to read script file because of error: error opening nosuch.sh: No such file or directory\n", 14},
		{nil, "Unable to read script file because of error: no input read from stdin\n", 4},
	}
	for _, c := range cases {
		_, err := parse(t, files, "", c.args...)
		if err == nil {
			t.Errorf("qsub %q: no error", c.args)
			continue
		}
		text, code := errText(err)
		if text != c.text || code != c.code {
			t.Errorf("qsub %q:\n got %q (%d)\nwant %q (%d)", c.args, text, code, c.text, c.code)
		}
		if !errors.Is(err, ErrUsage) && !errors.Is(err, ErrScript) {
			t.Errorf("qsub %q: error %v is neither ErrUsage nor ErrScript", c.args, err)
		}
	}
}

func TestValueQuirks(t *testing.T) {
	// Grid Engine reads -p with strtol and does not notice garbage.
	for arg, want := range map[string]int{"abc": 0, "12abc": 12, "-1023": -1023, "1024": 1024, " 7": 7} {
		if s := mustParse(t, nil, "-b", "y", "-p", arg, "x"); s.Priority != want {
			t.Errorf("-p %q = %d, want %d", arg, s.Priority, want)
		}
	}
	// -t forms.
	for arg, want := range map[string]TaskRange{
		"5": {5, 5, 1}, "10-1": {1, 10, 1}, "1-10:2": {1, 10, 2}, "2:5": {2, 5, 1},
		"1-3,2-6": {1, 6, 1}, "3-3": {3, 3, 1},
	} {
		if s := mustParse(t, nil, "-b", "y", "-t", arg, "x"); *s.Array != want {
			t.Errorf("-t %q = %v, want %v", arg, *s.Array, want)
		}
	}
	// -pe ranges.
	for arg, want := range map[string]string{"2": "2", "1-2": "1-2", "2-": "2-", "-4": "1-4", "2,4": "2,4"} {
		s := mustParse(t, nil, "-b", "y", "-pe", "smp", arg, "x")
		if got := s.PE.RangeString(); got != want {
			t.Errorf("-pe smp %q range %q, want %q", arg, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"-t", "0-3"}, "job rejected: 0 is an invalid task id"},
		{[]string{"-N", "123"}, `denied: "123" is not a valid object name (cannot start with a digit)`},
		{[]string{"-N", "a:b"}, "Colon (':') not allowed in objectname"},
		{[]string{"-N", "a@b"}, "At ('@') not allowed in objectname"},
		{[]string{"-N", "a*"}, "Asterisk ('*') not allowed in objectname"},
		{[]string{"-N", "a\tb"}, "Tabulator not allowed in objectname"},
		{[]string{"-N", "none"}, `Keyword ("none") not allowed as objectname`},
		{[]string{"-N", "a b"}, "Error reading answer list from qmaster"},
		{[]string{"-l", "nosuch=1"}, `unknown resource "nosuch"`},
		{[]string{"-l", "load_avg=1"}, `resource "load_avg" configured as non requestable`},
		{[]string{"-l", "h_rt"}, `denied: missing value for request "h_rt"`},
		{[]string{"-l", "h_rt=abc"}, `attribute "h_rt" is not a time value`},
		{[]string{"-l", "h_rt=1:30"}, `attribute "h_rt" is not a time value`},
		{[]string{"-l", "h_vmem=1X"}, `attribute "h_vmem" is not a memory value`},
		{[]string{"-l", "num_proc=1.5"}, `attribute "num_proc" is not an integer value`},
		{[]string{"-l", "display_win_gui=maybe"}, `attribute "display_win_gui" is not a boolean value`},
		{[]string{"-l", "h=nosuchhost"}, `can't resolve hostname "nosuchhost"`},
		{[]string{"-pe", "nosuchpe", "2"}, `job rejected: the requested parallel environment "nosuchpe" does not exist`},
		{[]string{"-q", "nosuch.q"}, `Job was rejected because job requests unknown queue "nosuch.q"`},
		{[]string{"-q", "all.q@nosuchhost"}, `Job was rejected because job requests unknown queue "all.q@nosuchhost"`},
		{[]string{"-P", "someproject"}, `job rejected: the requested project "someproject" does not exist`},
	}
	for _, c := range cases {
		s := mustParse(t, nil, append(append([]string{"-b", "y"}, c.args...), "x")...)
		err := labCluster().Validate(s)
		if err == nil {
			t.Errorf("%q accepted", c.args)
			continue
		}
		if text, code := errText(err); text != "Unable to run job: "+c.msg+"\nExiting.\n" || code != 1 || !errors.Is(err, ErrRejected) {
			t.Errorf("%q: got %q (%d)", c.args, text, code)
		}
	}
	for _, args := range [][]string{
		{"-l", "h_rt=infinity,h_vmem=1.5g,s_rt=0:0:30,h_cpu=10,mem_free=0x10,display_win_gui"},
		{"-q", "*.q", "-pe", "s*", "2", "-l", "h=v*"},
		{"-q", "all.q@@allhosts"},
	} {
		s := mustParse(t, nil, append(append([]string{"-b", "y"}, args...), "x")...)
		if err := labCluster().Validate(s); err != nil {
			t.Errorf("%q rejected: %v", args, err)
		}
	}
	s := mustParse(t, nil, "-b", "y", "-l", "h_rt=infinity,h_vmem=1.5g,s_rt=0:0:30,h_cpu=10,mf=0x10,dwg", "x")
	if err := labCluster().Validate(s); err != nil {
		t.Fatal(err)
	}
	r := s.Resources
	if r.HardRuntime != 0 || r.HardVmem != 1500000000 || r.SoftRuntime != 30*time.Second ||
		r.HardCPU != 10*time.Second || r.MemFree != 16 {
		t.Fatalf("limits %+v", r)
	}
	if v, _ := r.Get("display_win_gui"); v != "TRUE" {
		t.Fatalf("boolean without value: %+v", r.Hard)
	}
	if o := r.Others(); len(o) != 1 || o["display_win_gui"] != "TRUE" {
		t.Fatalf("others %v", o)
	}
	// A script with a NUL byte is refused by qmaster.
	bin := mustParse(t, fakeFS{"bin": "ab\x00cd"}, "-b", "n", "bin")
	if err := labCluster().Validate(bin); err == nil || !strings.Contains(err.Error(), "Script length does not match declared length") {
		t.Fatalf("NUL script: %v", err)
	}
}

func TestArrayLimit(t *testing.T) {
	s := mustParse(t, nil, "-b", "y", "-t", "1-75001", "x")
	err := Cluster{}.Validate(s)
	if text, _ := errText(err); text != "Unable to run job: job rejected: You try to submit a job with more than 75000 tasks\nExiting.\n" {
		t.Fatalf("%q", text)
	}
	if err := (Cluster{MaxArrayTasks: -1}).Validate(s); err != nil {
		t.Fatal(err)
	}
	s = mustParse(t, nil, "-b", "y", "-t", "1-75000:2", "x")
	if err := (Cluster{}).Validate(s); err != nil {
		t.Fatal(err)
	}
}
