//go:build linux

package executor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOutputFiles checks Grid Engine's output file naming
// (output_files.txt): defaults, arrays, directories, pseudo variables,
// relative paths, -j y, host lists.
func TestOutputFiles(t *testing.T) {
	t.Parallel()
	const script = "echo to-stdout\necho to-stderr >&2\n"
	for _, tc := range []struct {
		name     string
		setup    func(e testEnv, req *Request)
		out, err string // expected paths relative to e.root
	}{
		{name: "default", out: "work/test.o42", err: "work/test.e42"},
		{name: "array task", setup: func(e testEnv, req *Request) { req.TaskID, req.TaskFirst, req.TaskLast, req.TaskStep = 3, 1, 3, 1 },
			out: "work/test.o42.3", err: "work/test.e42.3"},
		{name: "no cwd: home", setup: func(e testEnv, req *Request) { req.Workdir = "" },
			out: "home/test.o42", err: "home/test.e42"},
		{name: "dir with slash", setup: func(e testEnv, req *Request) {
			mkdir(t, e.work, "dir")
			req.Stdout, req.Stderr = "dir/", "dir/"
		}, out: "work/dir/test.o42", err: "work/dir/test.e42"},
		{name: "dir without slash and array", setup: func(e testEnv, req *Request) {
			mkdir(t, e.root, "abs")
			req.Stdout, req.Stderr = filepath.Join(e.root, "abs"), filepath.Join(e.root, "abs")
			req.TaskID, req.TaskFirst, req.TaskLast = 2, 1, 5
		}, out: "abs/test.o42.2", err: "abs/test.e42.2"},
		{name: "pseudo variables", setup: func(e testEnv, req *Request) {
			req.JobName = "arrpv"
			req.TaskID, req.TaskFirst, req.TaskLast = 1, 1, 3
			req.Stdout = "pv_$JOB_NAME.$JOB_ID.$TASK_ID.out"
			req.Stderr = "pv_$USER.$HOSTNAME.$TASK_ID.err"
		}, out: "work/pv_arrpv.42.1.out", err: "work/pv_" + currentUser(t) + "." + testHost + ".1.err"},
		{name: "task id 0 outside arrays", setup: func(e testEnv, req *Request) {
			req.Stdout, req.Stderr = "nt.$JOB_ID.$TASK_ID.out", "$HOME/nt.err"
		}, out: "work/nt.42.0.out", err: "home/nt.err"},
		{name: "tilde and host list", setup: func(e testEnv, req *Request) {
			req.Stdout, req.Stderr = "~/t.out", "elsewhere:/nonexistent/x,"+testHost+":sub.err"
		}, out: "home/t.out", err: "work/sub.err"},
		{name: "join", setup: func(e testEnv, req *Request) { req.Join = true; req.Stdout = "merged.log" },
			out: "work/merged.log", err: "work/merged.log"},
		{name: "join default", setup: func(e testEnv, req *Request) { req.Join = true },
			out: "work/test.o42", err: "work/test.o42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			req := e.request(t, script+"echo \"SO=$SGE_STDOUT_PATH SE=$SGE_STDERR_PATH\"\n")
			if tc.setup != nil {
				tc.setup(e, &req)
			}
			res := mustRun(t, newTestRunner(t), req)
			wantOut, wantErr := filepath.Join(e.root, tc.out), filepath.Join(e.root, tc.err)
			if res.StdoutPath != wantOut || res.StderrPath != wantErr {
				t.Fatalf("paths %q %q, want %q %q", res.StdoutPath, res.StderrPath, wantOut, wantErr)
			}
			out := readFile(t, wantOut)
			envLine := "SO=" + wantOut + " SE=" + wantErr + "\n"
			if req.Join {
				if out != "to-stdout\nto-stderr\n"+envLine {
					t.Errorf("merged output %q", out)
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(wantOut), "test.e42")); err == nil {
					t.Errorf("-j y created an .e file")
				}
				return
			}
			if out != "to-stdout\n"+envLine {
				t.Errorf("stdout %q", out)
			}
			if got := readFile(t, wantErr); got != "to-stderr\n" {
				t.Errorf("stderr %q", got)
			}
		})
	}
}

func mkdir(t *testing.T, parts ...string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(parts...), 0o755); err != nil {
		t.Fatal(err)
	}
}

func currentUser(t *testing.T) string {
	t.Helper()
	e := testEnv{}
	return e.request(t, "").User
}

// TestOutputAppends: an existing output file is appended to, never
// truncated (append.out in the reference).
func TestOutputAppends(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	path := filepath.Join(e.work, "append.out")
	if err := os.WriteFile(path, []byte("first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	req := e.request(t, "echo second\n")
	req.Stdout, req.Join = "append.out", true
	mustRun(t, newTestRunner(t), req)
	if got := readFile(t, path); got != "first\nsecond\n" {
		t.Errorf("append.out = %q", got)
	}
}

// TestStartErrors: what Grid Engine turns into Eqw fails with ErrJobError,
// the failed code and Grid Engine's error reason, and leaves nothing behind.
func TestStartErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		setup  func(e testEnv, req *Request)
		kind   error
		failed int
		reason string // with {root} for the test's root directory
	}{
		{"missing output dir", func(e testEnv, req *Request) { req.Stdout = "/nonexistent_dir/x.out" },
			ErrOutputFile, 26, `error: can't open output file "/nonexistent_dir/x.out": No such file or directory`},
		{"missing error dir", func(e testEnv, req *Request) { req.Stderr = "nodir/x.err" },
			ErrOutputFile, 26, `error: can't open output file "{root}/work/nodir/x.err": No such file or directory`},
		{"missing dir with slash", func(e testEnv, req *Request) { req.Stdout = "newdir/" },
			ErrOutputFile, 26, `error: can't open output file "{root}/work/newdir/": Is a directory`},
		{"name too long", func(e testEnv, req *Request) { req.JobName = strings.Repeat("n", 300) },
			ErrOutputFile, 26, `error: can't open output file "{root}/work/` + strings.Repeat("n", 300) + `.o42": File name too long`},
		{"missing workdir", func(e testEnv, req *Request) { req.Workdir = "/nonexistent_wd" },
			ErrNoWorkdir, 28, `error: can't chdir to /nonexistent_wd: No such file or directory`},
		{"missing shell", func(e testEnv, req *Request) { req.Shell = "/bin/nosuchshell" },
			ErrNoShell, 27, `unable to find shell "/bin/nosuchshell"`},
		{"missing raw binary", func(e testEnv, req *Request) {
			req.Binary, req.NoShell, req.Command = true, true, "nosuchbinary"
		}, ErrNoShell, 27, `execvp(nosuchbinary) failed: No such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			req := e.request(t, "touch ran\n")
			tc.setup(e, &req)
			res, err := run(t, newTestRunner(t), req)
			if !errors.Is(err, ErrJobError) || !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want ErrJobError and %v", err, tc.kind)
			}
			var se *StartError
			if !errors.As(err, &se) || se.Failed != tc.failed {
				t.Errorf("StartError %+v, want failed %d", se, tc.failed)
			}
			reason := strings.ReplaceAll(tc.reason, "{root}", e.root)
			if res.Failed != tc.failed || res.Err != reason || err.Error() != reason {
				t.Errorf("result failed %d err %q (error %q), want %d %q", res.Failed, res.Err, err, tc.failed, reason)
			}
			if res.Hostname != testHost || res.PID != 0 {
				t.Errorf("result %+v", res)
			}
			if _, err := os.Stat(filepath.Join(e.work, "ran")); err == nil {
				t.Errorf("the job ran")
			}
			assertSpoolEmpty(t, e.spool)
		})
	}
}

// TestCallerAndHostErrors: errors that are not the job's own.
func TestCallerAndHostErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	r := newTestRunner(t)
	base := e.request(t, "touch ran\n")
	for _, tc := range []struct {
		name string
		mod  func(req *Request, r *Runner)
		want error
	}{
		{"no job id", func(req *Request, r *Runner) { req.JobID = 0 }, ErrInvalidRequest},
		{"no user", func(req *Request, r *Runner) { req.User = "" }, ErrInvalidRequest},
		{"uid 0 of another user", func(req *Request, r *Runner) { req.User, req.UID = "alice", 0 }, ErrInvalidRequest},
		{"binary without command", func(req *Request, r *Runner) { req.Binary = true }, ErrInvalidRequest},
		{"not root, other user", func(req *Request, r *Runner) {
			r.geteuid = func() int { return 1000 }
			req.User, req.UID = "bob", 1001
		}, ErrNotPermitted},
		{"below min_uid", func(req *Request, r *Runner) { r.MinUID = req.UID + 1 }, ErrNotPermitted},
		{"spool missing", func(req *Request, r *Runner) { req.SpoolDir = filepath.Join(e.root, "nospool") }, ErrHost},
		{"prlimit missing", func(req *Request, r *Runner) {
			r.Prlimit = "/nonexistent/prlimit"
			req.Limits.HVmem = 1 << 30
		}, ErrHost},
	} {
		req, rr := base, *r
		tc.mod(&req, &rr)
		res, err := run(t, &rr, req)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if errors.Is(err, ErrJobError) {
			t.Errorf("%s: %v must not be a job error", tc.name, err)
		}
		if res.PID != 0 {
			t.Errorf("%s: started pid %d", tc.name, res.PID)
		}
	}
	if _, err := os.Stat(filepath.Join(e.work, "ran")); err == nil {
		t.Errorf("a job ran")
	}
	assertSpoolEmpty(t, e.spool)

	// A context done before the start: nothing runs.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, base); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	assertSpoolEmpty(t, e.spool)
}

// TestBinaryJobs: -b y re-parses the command line with the shell; -shell
// no passes arguments verbatim (qsub_sync.txt, output_files.txt).
func TestBinaryJobs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		noShell bool
		command string
		args    []string
		status  int
		out     string // {home} replaced
	}{
		{"args re-parsed", false, "echo", []string{"a  b", "c", "$HOME"}, 0, "a b c {home}\n"},
		{"sh -c kill", false, "/bin/sh", []string{"-c", "kill -9 $$"}, 2, ""},
		{"no such binary", false, "/no/such/binary", nil, 127, ""},
		{"true", false, "/bin/true", nil, 0, ""},
		{"false", false, "false", nil, 1, ""},
		{"raw args verbatim", true, "printf", []string{"[%s]", "a  b", "$HOME"}, 0, "[a  b][$HOME]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			req := e.request(t, "")
			req.JobName = "bin"
			req.Binary, req.NoShell, req.Command, req.Args = true, tc.noShell, tc.command, tc.args
			res := mustRun(t, newTestRunner(t), req)
			if res.ExitStatus != tc.status || res.Signal != "" || res.Failed != 0 {
				t.Errorf("exit %d signal %q failed %d, want exit %d", res.ExitStatus, res.Signal, res.Failed, tc.status)
			}
			want := strings.ReplaceAll(tc.out, "{home}", e.home)
			if got := readFile(t, filepath.Join(e.work, "bin.o42")); got != want {
				t.Errorf("output %q, want %q", got, want)
			}
		})
	}
}

// TestScriptJobs: arguments verbatim, the #! line ignored (posix_compliant),
// -S, $0 is the spooled script, exit codes and signals.
func TestScriptJobs(t *testing.T) {
	t.Parallel()
	const args = `printf 'nargs=%s args=[%s] pwd=%s\n' $# "$*" "$PWD"`
	const shellProbe = "#!/bin/bash\necho \"argv0=$0 bash=${BASH_VERSION:-none}\"\necho \"$JOB_SCRIPT\"\n"
	for _, tc := range []struct {
		name   string
		script string
		args   []string
		shell  string
		status int
		signal string
		check  func(t *testing.T, out string)
	}{
		{name: "args verbatim", script: args, args: []string{"a  b", "c", "$HOME"},
			check: func(t *testing.T, out string) {
				if !strings.HasPrefix(out, "nargs=3 args=[a  b c $HOME] pwd=") {
					t.Errorf("output %q", out)
				}
			}},
		{name: "default shell ignores #!", script: shellProbe, check: func(t *testing.T, out string) {
			lines := strings.Split(out, "\n")
			if len(lines) < 2 || lines[0] != "argv0="+lines[1]+" bash=none" || !strings.HasSuffix(lines[1], "/job_script") {
				t.Errorf("output %q", out)
			}
		}},
		{name: "-S /bin/bash", script: shellProbe, shell: "/bin/bash", check: func(t *testing.T, out string) {
			if strings.Contains(out, "bash=none") {
				t.Errorf("output %q", out)
			}
		}},
		{name: "exit 3", script: "echo about to exit 3\nexit 3\n", status: 3},
		{name: "exit 100", script: "exit 100\n", status: 100},
		{name: "own signal", script: "kill -TERM $$\n", status: 143, signal: "SIGTERM"},
		{name: "empty script", script: "", status: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			req := e.request(t, tc.script)
			req.Args, req.Shell = tc.args, tc.shell
			res := mustRun(t, newTestRunner(t), req)
			if res.ExitStatus != tc.status || res.Signal != tc.signal || res.Failed != 0 {
				t.Errorf("exit %d signal %q failed %d, want %d %q 0", res.ExitStatus, res.Signal, res.Failed, tc.status, tc.signal)
			}
			if tc.check != nil {
				tc.check(t, readFile(t, filepath.Join(e.work, "test.o42")))
			}
		})
	}
}

// TestHardRuntimeLimit: h_rt kills the process group with SIGKILL; the
// accounting says failed 37, exit status 137 (qacct.txt).
func TestHardRuntimeLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	req := e.request(t, "trap 'echo got USR1' USR1\nsleep 30 &\nwait\nsleep 30\n")
	req.Limits.HRT = 1500 * time.Millisecond
	req.Limits.SRT = 500 * time.Millisecond
	began := time.Now()
	res := mustRun(t, newTestRunner(t), req)
	took := time.Since(began)
	t.Logf("h_rt %s: wall %s, Run took %s", req.Limits.HRT, res.Wall, took)
	if res.Signal != "SIGKILL" || res.ExitStatus != 137 || res.Failed != FailedLimit {
		t.Errorf("signal %q exit %d failed %d, want SIGKILL 137 37", res.Signal, res.ExitStatus, res.Failed)
	}
	if res.Wall < req.Limits.HRT || took > req.Limits.HRT+time.Second {
		t.Errorf("wall %s, Run took %s, h_rt %s", res.Wall, took, req.Limits.HRT)
	}
	if !strings.Contains(res.Err, "h_rt") {
		t.Errorf("Err %q", res.Err)
	}
	if got := readFile(t, filepath.Join(e.work, "test.o42")); got != "got USR1\n" {
		t.Errorf("s_rt: output %q, want the USR1 trap's", got)
	}
	if m := groupMembers(res.PID); len(m) != 0 {
		t.Errorf("processes of the job left: %v", m)
	}
}

// TestVirtualMemoryLimit: h_vmem is RLIMIT_AS (times the slots); a job
// allocating more fails, one within the limit succeeds.
func TestVirtualMemoryLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	r := newTestRunner(t)
	req := e.request(t, "ulimit -v\ndd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null\necho rc=$?\n")
	req.Stdout, req.Join = "vmem.out", true

	req.Limits.HVmem = 32 << 20
	mustRun(t, r, req)
	req.Limits.HVmem = 40 << 20 // per slot: 2 slots give 80M, enough for dd's 48M
	req.PEName, req.Slots = "smp", 2
	mustRun(t, r, req)
	want := "32768\nrc=1\n81920\nrc=0\n"
	if got := readFile(t, filepath.Join(e.work, "vmem.out")); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// TestAccounting: the rusage of the job is reported.
func TestAccounting(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	req := e.request(t, "i=0\nwhile [ $i -lt 300000 ]; do i=$((i+1)); done\ndd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null\n")
	before := time.Now()
	res := mustRun(t, newTestRunner(t), req)
	if res.ExitStatus != 0 || res.Failed != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Start.Before(before) || !res.End.After(res.Start) || res.Wall != res.End.Sub(res.Start) {
		t.Errorf("start %v end %v wall %v", res.Start, res.End, res.Wall)
	}
	if res.UserCPU <= 0 || res.UserCPU+res.SysCPU > res.Wall*2 {
		t.Errorf("cpu user %v sys %v wall %v", res.UserCPU, res.SysCPU, res.Wall)
	}
	if res.MaxRSS < 16<<20 {
		t.Errorf("maxrss %d", res.MaxRSS)
	}
	if res.PID <= 0 || res.Hostname != testHost {
		t.Errorf("pid %d host %q", res.PID, res.Hostname)
	}
}

// qdelScript starts a child and a grandchild in the background, records
// their pids and waits.
const qdelScript = `sleep 100 &
echo $! >> pids
sh -c 'sleep 101 & echo $! >> pids; wait' &
echo $! >> pids
while [ "$(wc -l < pids)" -lt 3 ]; do sleep 0.01; done
touch ready
wait
`

func readPids(t *testing.T, path string) []int {
	t.Helper()
	var pids []int
	for _, f := range strings.Fields(readFile(t, path)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// TestQdelKillsProcessGroup: cancelling the context kills the job and its
// children and grandchildren within a second (failed 100, SIGKILL).
func TestQdelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	testQdel(t, e, e.request(t, qdelScript))
}

func testQdel(t *testing.T, e testEnv, req Request) {
	t.Helper()
	r := newTestRunner(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := r.Run(ctx, req)
		done <- outcome{res, err}
	}()
	ready := filepath.Join(req.Workdir, "ready")
	eventually(t, 20*time.Second, "the job's processes", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	pids := readPids(t, filepath.Join(req.Workdir, "pids"))
	cancel()
	deleted := time.Now()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return 5 s after qdel")
	}
	took := time.Since(deleted)
	t.Logf("Run returned %s after qdel", took)
	if took > time.Second {
		t.Errorf("Run returned %s after qdel, want < 1 s", took)
	}
	if o.err != nil {
		t.Fatalf("Run: %v", o.err)
	}
	if o.res.Failed != FailedAfterJob || o.res.Signal != "SIGKILL" || o.res.ExitStatus != 137 {
		t.Errorf("failed %d signal %q exit %d, want 100 SIGKILL 137", o.res.Failed, o.res.Signal, o.res.ExitStatus)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("process %d survived qdel", pid)
		}
	}
	if m := groupMembers(o.res.PID); len(m) != 0 {
		t.Errorf("processes of the job's group left: %v", m)
	}
	assertSpoolEmpty(t, e.spool)
}

// TestLeftoverProcessesKilled: background processes still running when the
// job script exits are killed with it.
func TestLeftoverProcessesKilled(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	req := e.request(t, "sleep 100 &\necho $! > pid\nexit 5\n")
	res := mustRun(t, newTestRunner(t), req)
	if res.ExitStatus != 5 || res.Failed != 0 {
		t.Errorf("exit %d failed %d", res.ExitStatus, res.Failed)
	}
	for _, pid := range readPids(t, filepath.Join(e.work, "pid")) {
		if processAlive(pid) {
			t.Errorf("background process %d outlived the job", pid)
		}
	}
}

// TestTmpdirRemoved: TMPDIR exists, belongs to the job and is removed with
// whatever the job left in it, even read-only directories.
func TestTmpdirRemoved(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	req := e.request(t, `echo "$TMPDIR" > tmpdir
test "$TMP" = "$TMPDIR" || exit 9
mkdir -p "$TMPDIR/ro/deep" && echo data > "$TMPDIR/ro/deep/f" && chmod 500 "$TMPDIR/ro/deep" "$TMPDIR/ro" || exit 8
`)
	res := mustRun(t, newTestRunner(t), req)
	if res.ExitStatus != 0 {
		t.Fatalf("exit %d: %s", res.ExitStatus, readFile(t, filepath.Join(e.work, "test.e42")))
	}
	tmp := strings.TrimSpace(readFile(t, filepath.Join(e.work, "tmpdir")))
	if !strings.HasPrefix(tmp, e.spool+"/") {
		t.Errorf("TMPDIR %q not under the spool directory", tmp)
	}
	if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TMPDIR %s still there: %v", tmp, err)
	}
}

// TestNoGoroutineLeak: Run leaves no goroutine behind, whatever the outcome.
// Not parallel: it counts the process's goroutines.
func TestNoGoroutineLeak(t *testing.T) {
	e := newTestEnv(t)
	r := newTestRunner(t)
	before := runtime.NumGoroutine()

	mustRun(t, r, e.request(t, "exit 0\n"))
	bad := e.request(t, "")
	bad.Stdout = "/nonexistent_dir/x"
	if _, err := run(t, r, bad); !errors.Is(err, ErrJobError) {
		t.Fatalf("err %v", err)
	}
	hrt := e.request(t, "sleep 10\n")
	hrt.Limits.HRT = 100 * time.Millisecond
	mustRun(t, r, hrt)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.Run(ctx, e.request(t, "sleep 10\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestWaitGroupGone: once the leader is reaped, a group whose members were
// killed is found empty, and so is a group that never had members; a group
// with a live member is reported with it when the timeout passes.
func TestWaitGroupGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func(script string) *exec.Cmd {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// A leader with a background child, both killed.
	cmd := start("sleep 100 & echo $! > child; wait")
	eventually(t, 10*time.Second, "the child's pid", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "child"))
		return err == nil && strings.HasSuffix(string(b), "\n")
	})
	child := readPids(t, filepath.Join(dir, "child"))[0]
	pgid := cmd.Process.Pid
	if groupGone(pgid) {
		t.Fatal("a running group is reported gone")
	}
	if err := killGroup(pgid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if left := waitGroupGone(pgid, 5*time.Second); len(left) != 0 {
		t.Errorf("members left after SIGKILL: %v", left)
	}
	if processAlive(child) {
		t.Errorf("child %d alive", child)
	}

	// A leader alone: gone as soon as it is reaped.
	cmd = start("exit 0")
	_ = cmd.Wait()
	if left := waitGroupGone(cmd.Process.Pid, time.Second); len(left) != 0 {
		t.Errorf("members of an empty group: %v", left)
	}

	// A live member outlasts a short timeout and is named.
	cmd = start("exec sleep 100")
	defer func() {
		_ = killGroup(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	if left := waitGroupGone(cmd.Process.Pid, 50*time.Millisecond); len(left) != 1 || left[0] != cmd.Process.Pid {
		t.Errorf("live group: members %v, want [%d]", left, cmd.Process.Pid)
	}
}
