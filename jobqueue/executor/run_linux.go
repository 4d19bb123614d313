//go:build linux

package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// groupKillTimeout bounds the wait for a killed job's processes to die
// (processes in uninterruptible sleep die only when the sleep ends).
const groupKillTimeout = 2 * time.Second

// Run runs the job described by req and waits for it to end.
//
// It returns a nil error when the job ran, whatever its exit status: see
// Result for the accounting. It returns a non-nil error when the job did not
// run: errors matching ErrJobError are the job's own (Grid Engine's Eqw; the
// Result then holds the failed code and the error reason), any other is the
// caller's or this host's (ErrInvalidRequest, ErrNotPermitted, ErrHost, or
// ctx.Err() when ctx was done before the job started).
//
// Cancelling ctx while the job runs is qdel: the job's whole process group is
// killed with SIGKILL at once, and Run returns, with Failed =
// FailedAfterJob, when the job's main process is gone. Run removes its spool
// directory and TMPDIR and has no goroutine left when it returns.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	now := time.Now()
	res := Result{Hostname: r.hostname(), Start: now, End: now}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := validate(&req); err != nil {
		return res, err
	}
	euid := r.euid()
	if euid != 0 && req.UID != uint32(euid) {
		return res, fmt.Errorf("%w: the runner is not root (uid %d) and cannot run jobs of %s (uid %d)",
			ErrNotPermitted, euid, req.User, req.UID)
	}
	if req.UID < r.MinUID {
		return res, fmt.Errorf("%w: uid %d of %s is below min_uid %d", ErrNotPermitted, req.UID, req.User, r.MinUID)
	}

	j := &job{r: r, req: &req, host: res.Hostname}
	j.log = r.log().With("job", req.JobID, "task", req.TaskID)
	defer j.cleanup()

	if err := j.prepare(euid); err != nil {
		return j.failed(res, err)
	}
	res.StdoutPath, res.StderrPath = j.stdoutPath, j.stderrPath
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return j.run(ctx, res)
}

// job is the state of one Run.
type job struct {
	r    *Runner
	req  *Request
	log  *slog.Logger
	host string

	name, queue, home, workdir, shell string
	cred                              *syscall.Credential // nil: run as the runner's own user
	nslots, nhosts, nqueues, here     int

	dir, script, tmpDir, peFile string
	stdoutPath, stderrPath      string
	stdout, stderr              *os.File
	prog                        string   // program to execute
	argv                        []string // its arguments, argv[0] included
}

// failed completes the result of a job that did not start.
func (j *job) failed(res Result, err error) (Result, error) {
	res.End = time.Now()
	res.StdoutPath, res.StderrPath = j.stdoutPath, j.stderrPath
	var se *StartError
	if errors.As(err, &se) {
		res.Failed = se.Failed
		res.Err = se.Reason
		j.log.Info("job cannot start", "failed", se.Failed, "reason", se.Reason)
	} else {
		j.log.Warn("job not started", "err", err)
	}
	return res, err
}

// prepare resolves everything the job needs, creates its spool directory and
// TMPDIR, and opens its output files.
func (j *job) prepare(euid int) error {
	req := j.req
	j.name = jobName(req)
	j.queue = req.Queue
	if j.queue == "" {
		j.queue = "all.q"
	}
	j.shell = req.Shell
	if j.shell == "" {
		j.shell = "/bin/sh"
	}
	j.home = req.Home
	if j.home == "" {
		u, err := user.Lookup(req.User)
		if err != nil {
			return fmt.Errorf("%w: no home directory for user %s: %v", ErrHost, req.User, err)
		}
		j.home = u.HomeDir
	}
	j.workdir = req.Workdir
	if j.workdir == "" {
		j.workdir = j.home
	}
	if euid == 0 && req.UID != 0 {
		j.cred = &syscall.Credential{Uid: req.UID, Gid: req.GID, Groups: append([]uint32(nil), req.Groups...)}
	}
	j.nslots, j.nhosts, j.nqueues, j.here = slotCounts(req, j.host)

	if err := j.makeDirs(); err != nil {
		return err
	}
	j.buildCommand()
	return asUser(j.cred, j.userChecks)
}

// makeDirs creates the per-run directory (spooled script, PE hostfile) and
// TMPDIR inside it.
func (j *job) makeDirs() error {
	req := j.req
	spool := req.SpoolDir
	if spool == "" {
		spool = os.TempDir()
	}
	task := max(req.TaskID, 1) // Grid Engine numbers a plain job's only task 1
	dir, err := mkdirUnique(spool, fmt.Sprintf("%d.%d.", req.JobID, task))
	if err != nil {
		return fmt.Errorf("%w: spool directory: %v", ErrHost, err)
	}
	j.dir = dir
	if !req.Binary {
		j.script = filepath.Join(dir, "job_script")
		if err := os.WriteFile(j.script, req.Script, 0o755); err != nil {
			return fmt.Errorf("%w: spool script: %v", ErrHost, err)
		}
	}
	if req.PEName != "" {
		j.peFile = filepath.Join(dir, "pe_hostfile")
		if err := os.WriteFile(j.peFile, []byte(peHostfile(req, j.host, j.queue, j.nslots)), 0o644); err != nil {
			return fmt.Errorf("%w: PE hostfile: %v", ErrHost, err)
		}
	}
	j.tmpDir = filepath.Join(dir, fmt.Sprintf("%d.%d.%s", req.JobID, task, strings.ReplaceAll(j.queue, "/", "_")))
	if err := os.Mkdir(j.tmpDir, 0o700); err != nil {
		return fmt.Errorf("%w: TMPDIR: %v", ErrHost, err)
	}
	if j.cred != nil {
		if err := os.Lchown(j.tmpDir, int(j.cred.Uid), int(j.cred.Gid)); err != nil {
			return fmt.Errorf("%w: TMPDIR: %v", ErrHost, err)
		}
	}
	return nil
}

// buildCommand computes the program and its arguments, as Grid Engine's
// posix_compliant shell_start_mode does.
func (j *job) buildCommand() {
	req := j.req
	switch {
	case req.Binary && req.NoShell:
		j.prog = req.Command // resolved in the job's PATH by userChecks
		j.argv = append([]string{req.Command}, req.Args...)
	case req.Binary:
		var b strings.Builder
		b.WriteString(req.Command)
		b.WriteByte(' ')
		for _, a := range req.Args {
			b.WriteString(a)
			b.WriteByte(' ')
		}
		j.prog = j.shell
		j.argv = []string{filepath.Base(j.shell), "-c", b.String()}
	default:
		j.prog = j.shell
		j.argv = append([]string{filepath.Base(j.shell), j.script}, req.Args...)
	}
}

// jobScript is $JOB_SCRIPT: the spooled script, or the binary command.
func (j *job) jobScript() string {
	if j.req.Binary {
		return j.req.Command
	}
	return j.script
}

// userChecks runs as the job user (see asUser): it enters the working
// directory, opens the output files and finds the shell, in Grid Engine's
// order, and checks that the spooled script is readable.
func (j *job) userChecks() error {
	req := j.req
	if !filepath.IsAbs(j.workdir) {
		return &StartError{Failed: FailedNoWorkdir, kind: ErrNoWorkdir,
			Reason: fmt.Sprintf("error: can't chdir to %s: working directory is not an absolute path", j.workdir)}
	}
	if err := syscall.Chdir(j.workdir); err != nil {
		return &StartError{Failed: FailedNoWorkdir, kind: ErrNoWorkdir, err: err,
			Reason: fmt.Sprintf("error: can't chdir to %s: %s", j.workdir, strerror(err))}
	}

	vars := pathVars{
		JobID: req.JobID, TaskID: req.TaskID, JobName: j.name, User: req.User, Host: j.host, Home: j.home,
		LookupHome: func(name string) (string, bool) {
			u, err := user.Lookup(name)
			if err != nil {
				return "", false
			}
			return u.HomeDir, true
		},
	}
	var err error
	j.stdoutPath, err = resolveOutput(outputBase(req.Stdout, vars, j.workdir),
		defaultOutputName(j.name, "o", req.JobID, req.TaskID), "stdout_path")
	if err != nil {
		return err
	}
	if j.stdout, err = openOutput(j.stdoutPath); err != nil {
		return err
	}
	if req.Join {
		j.stderrPath = j.stdoutPath
	} else {
		j.stderrPath, err = resolveOutput(outputBase(req.Stderr, vars, j.workdir),
			defaultOutputName(j.name, "e", req.JobID, req.TaskID), "stderr_path")
		if err != nil {
			return err
		}
		if j.stderr, err = openOutput(j.stderrPath); err != nil {
			return err
		}
	}

	if req.Binary && req.NoShell {
		path, err := lookPath(req.Command, j.jobPath(), j.workdir)
		if err != nil {
			return &StartError{Failed: FailedNoShell, kind: ErrNoShell, err: err,
				Reason: fmt.Sprintf("execvp(%s) failed: %s", req.Command, strerror(err))}
		}
		j.prog = path
	} else if fi, err := os.Stat(j.shell); err != nil || !filepath.IsAbs(j.shell) || fi.IsDir() {
		return &StartError{Failed: FailedNoShell, kind: ErrNoShell, err: err,
			Reason: fmt.Sprintf("unable to find shell \"%s\"", j.shell)}
	}
	if j.script != "" {
		f, err := os.Open(j.script)
		if err != nil {
			return fmt.Errorf("%w: the job user cannot read the spooled script (spool directory not searchable?): %v", ErrHost, err)
		}
		f.Close()
	}
	return nil
}

// jobPath is the PATH the job will see.
func (j *job) jobPath() string {
	if p, ok := j.req.Env["PATH"]; ok {
		return p
	}
	return j.r.defaultPath()
}

// lookPath finds cmd like execvp does in the given PATH (relative entries
// and commands containing a slash are relative to dir), returning an
// absolute path.
func lookPath(cmd, path, dir string) (string, error) {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	executable := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return syscall.EACCES
		}
		return nil
	}
	if strings.Contains(cmd, "/") {
		p := abs(cmd)
		return p, executable(p)
	}
	for d := range strings.SplitSeq(path, ":") {
		if d == "" {
			d = "."
		}
		p := abs(filepath.Join(d, cmd))
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", syscall.ENOENT
}

// limitArgs returns prlimit's options for the job's limits, or nil.
func (j *job) limitArgs() []string {
	l := j.req.Limits
	var args []string
	if l.HVmem > 0 {
		args = append(args, "--as="+strconv.FormatInt(l.HVmem*int64(j.here), 10))
	}
	if l.HCPU > 0 {
		secs := int64((l.HCPU + time.Second - 1) / time.Second)
		args = append(args, "--cpu="+strconv.FormatInt(secs*int64(j.here), 10))
	}
	return args
}

func (j *job) prlimitPath() (string, error) {
	if j.r.Prlimit != "" {
		if _, err := os.Stat(j.r.Prlimit); err != nil {
			return "", fmt.Errorf("%w: h_vmem/h_cpu need prlimit(1): %v", ErrHost, err)
		}
		return j.r.Prlimit, nil
	}
	const std = "/usr/bin/prlimit"
	if _, err := os.Stat(std); err == nil {
		return std, nil
	}
	p, err := exec.LookPath("prlimit")
	if err != nil {
		return "", fmt.Errorf("%w: h_vmem/h_cpu need prlimit(1) (util-linux): %v", ErrHost, err)
	}
	return p, nil
}

// run starts the job and waits for it.
func (j *job) run(ctx context.Context, res Result) (Result, error) {
	req := j.req
	env := j.r.environment(&envInput{
		req: req, jobName: j.name, hostname: j.host, queue: j.queue, home: j.home, shell: j.shell,
		workdir: j.workdir, jobScript: j.jobScript(), spoolDir: j.dir, tmpDir: j.tmpDir, peHostfile: j.peFile,
		stdout: j.stdoutPath, stderr: j.stderrPath, slots: j.nslots, nhosts: j.nhosts, nqueues: j.nqueues,
	})
	prog, argv := j.prog, j.argv
	if lim := j.limitArgs(); lim != nil {
		pl, err := j.prlimitPath()
		if err != nil {
			return j.failed(res, err)
		}
		argv = append(append(append([]string{pl}, lim...), "--", prog), argv[1:]...)
		prog = pl
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return j.failed(res, fmt.Errorf("%w: %v", ErrHost, err))
	}
	defer devnull.Close()
	stderr := j.stderr
	if req.Join {
		stderr = j.stdout
	}
	cmd := &exec.Cmd{
		Path:   prog,
		Args:   argv,
		Env:    env,
		Dir:    j.workdir,
		Stdin:  devnull,
		Stdout: j.stdout,
		Stderr: stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:    true,
			Credential: j.cred,
			// The job dies with the runner's process (a SIGKILLed agent):
			// its claim is recovered and the job rerun elsewhere, which
			// must not run alongside this one. The kernel sends it when
			// the forking thread exits, so the job is started and waited
			// for on a thread locked for the purpose (startJob). What the
			// job started itself is killed by the next agent on this
			// node (KillLeftovers), from the group recorded in the spool.
			Pdeathsig: syscall.SIGKILL,
		},
	}
	exited := make(chan error, 1)
	if err := startJob(cmd, exited); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOEXEC) {
			err = &StartError{Failed: FailedNoShell, kind: ErrNoShell, err: err,
				Reason: fmt.Sprintf("execvp(%s) failed: %s", prog, strerror(err))}
		} else {
			err = fmt.Errorf("%w: starting the job: %v", ErrHost, err)
		}
		return j.failed(res, err)
	}
	pid := cmd.Process.Pid
	res.Start = time.Now()
	res.PID = pid
	if err := recordGroup(j.dir, pid, j.tmpDir); err != nil {
		j.log.Warn("recording the job's process group in the spool", "err", err)
	}
	j.log.Info("job started", "pid", pid, "user", req.User, "argv", argv, "stdout", j.stdoutPath, "stderr", j.stderrPath)

	var hrt, srt <-chan time.Time
	if req.Limits.HRT > 0 {
		t := time.NewTimer(req.Limits.HRT)
		defer t.Stop()
		hrt = t.C
	}
	if req.Limits.SRT > 0 {
		t := time.NewTimer(req.Limits.SRT)
		defer t.Stop()
		srt = t.C
	}
	done := ctx.Done()
	killed := 0 // failed code of a kill by us
	for waiting := true; waiting; {
		select {
		case err := <-exited:
			if err != nil {
				j.log.Error("waiting for the job", "err", err)
			}
			waiting = false
		case <-done:
			done = nil
			if killed == 0 {
				killed = FailedAfterJob
				res.Err = "killed: job deleted"
			}
			j.kill(pid, syscall.SIGKILL)
		case <-hrt:
			hrt = nil
			if killed == 0 {
				killed = FailedLimit
				res.Err = fmt.Sprintf("killed: h_rt limit of %s exceeded", req.Limits.HRT)
			}
			j.kill(pid, syscall.SIGKILL)
		case <-srt:
			srt = nil
			j.log.Info("s_rt exceeded: sending SIGUSR1", "pid", pid)
			j.kill(pid, syscall.SIGUSR1)
		}
	}
	// The main process has exited but is not reaped yet, so its process
	// group id cannot have been reused: kill whatever is left of the job.
	// Then reap it, and wait until the group is gone so that nothing of
	// the job outlives Run (and nothing writes into TMPDIR while it is
	// removed); a group with members cannot have its id reused either.
	j.kill(pid, syscall.SIGKILL)
	waitErr := cmd.Wait()
	if left := waitGroupGone(pid, groupKillTimeout); len(left) > 0 {
		j.log.Error("processes of the job survive SIGKILL", "pids", left)
	}
	res.End = time.Now()
	res.Wall = res.End.Sub(res.Start)

	state := cmd.ProcessState
	if state == nil {
		return res, fmt.Errorf("%w: waiting for the job: %v", ErrHost, waitErr)
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			res.ExitStatus = 128 + int(ws.Signal())
			res.Signal = signalName(ws.Signal())
			if killed != 0 && ws.Signal() == syscall.SIGKILL {
				res.Failed = killed
			}
		} else {
			res.ExitStatus = ws.ExitStatus()
		}
	} else {
		res.ExitStatus = state.ExitCode()
	}
	if res.Failed == 0 {
		res.Err = ""
	}
	if ru, ok := state.SysUsage().(*syscall.Rusage); ok {
		res.UserCPU = time.Duration(ru.Utime.Nano())
		res.SysCPU = time.Duration(ru.Stime.Nano())
		res.MaxRSS = int64(ru.Maxrss) * 1024
	}
	j.log.Info("job ended", "pid", pid, "exit_status", res.ExitStatus, "signal", res.Signal,
		"failed", res.Failed, "wall", res.Wall, "utime", res.UserCPU, "stime", res.SysCPU, "maxrss", res.MaxRSS)
	return res, nil
}

// startJob starts cmd and sends the end of its main process (waitExit) to
// exited. Both happen on one goroutine locked to its OS thread, which
// therefore lives as long as the job: the job's parent-death signal
// (Pdeathsig) is tied to the thread that forked it, and an unlocked thread
// may be ended by the Go runtime at any time (when a goroutine that locked
// it exits), which would kill the job. The thread is unlocked once the
// job's main process has exited (it is not reaped yet: no signal can reach
// it any more). Run waits on exited, so the goroutine is joined.
func startJob(cmd *exec.Cmd, exited chan<- error) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- waitExit(cmd.Process.Pid)
	}()
	return <-started
}

func (j *job) kill(pgid int, sig syscall.Signal) {
	if err := killGroup(pgid, sig); err != nil {
		j.log.Error("signalling the job", "err", err)
	}
}

// cleanup closes the output files and removes the per-run directory.
func (j *job) cleanup() {
	for _, f := range []*os.File{j.stdout, j.stderr} {
		if f != nil {
			f.Close()
		}
	}
	if j.dir == "" {
		return
	}
	// What the runner put there goes by name (the common case: an empty
	// TMPDIR, a few system calls); anything else by a full removal.
	var leftover bool
	for _, name := range []string{j.script, j.peFile, filepath.Join(j.dir, groupRecord)} {
		if name != "" {
			if err := syscall.Unlink(name); err != nil && err != syscall.ENOENT {
				leftover = true
			}
		}
	}
	for _, d := range []string{j.tmpDir, j.dir} {
		if d == "" || leftover {
			continue
		}
		if err := syscall.Rmdir(d); err != nil && err != syscall.ENOENT {
			leftover = true
		}
	}
	if leftover {
		if err := removeAll(j.dir); err != nil {
			j.log.Error("removing the job's spool directory and TMPDIR", "dir", j.dir, "err", err)
		}
	}
}

// mkdirUnique creates a directory named prefix + random digits in dir, mode
// 0755 (as os.MkdirTemp, which creates it 0700, then needs a chmod).
func mkdirUnique(dir, prefix string) (string, error) {
	if umask()&0o755 != 0 {
		p, err := os.MkdirTemp(dir, prefix)
		if err == nil {
			err = os.Chmod(p, 0o755)
		}
		return p, err
	}
	for try := 0; ; try++ {
		p := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		err := os.Mkdir(p, 0o755)
		if err == nil || !errors.Is(err, fs.ErrExist) || try >= 100 {
			return p, err
		}
	}
}

// umask is the process's file mode creation mask, from /proc (reading it
// with umask(2) would change it for a moment); 0o777 when unknown.
var umask = sync.OnceValue(func() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
})

// removeAll removes dir like os.RemoveAll, first making directories the
// job left unwritable writable again (needed when the runner is not root).
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Type()&fs.ModeSymlink == 0 {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
