package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cmd is one host command.
type Cmd struct {
	// Netns runs the command inside that network namespace (through
	// "ip netns exec"); "" runs it where the peer runs.
	Netns string
	// Name is the program, Args its arguments.
	Name string
	Args []string
	// Env is the complete environment ("K=V"); nil gives PATH only.
	Env []string
	// Dir is the working directory ("" keeps the peer's).
	Dir string
	// Log receives the standard output and error of a started process
	// (Start only; appended, created 0600).
	Log string
}

// String renders the command for logs and recordings.
func (c Cmd) String() string {
	var b strings.Builder
	if c.Netns != "" {
		fmt.Fprintf(&b, "[%s] ", c.Netns)
	}
	b.WriteString(c.Name)
	for _, a := range c.Args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	return b.String()
}

// Proc identifies a process: its PID and its start time in clock ticks after
// boot (field 22 of /proc/<pid>/stat), so a reused PID is not mistaken for
// the node's process.
type Proc struct {
	PID   int
	Start uint64
}

// Runner is the seam between the backends and the host: commands that run
// to completion, and long-lived processes the backends start, watch and
// signal.
type Runner interface {
	// Run runs c to completion and returns its standard output. A failure
	// is a *CmdError (wrapping ErrCommand) carrying the exit code and the
	// standard error text.
	Run(ctx context.Context, c Cmd) ([]byte, error)
	// Start starts c detached from the peer (its own session, output to
	// c.Log), so it outlives a restart of the peer, and returns it.
	Start(ctx context.Context, c Cmd) (Proc, error)
	// Alive reports whether p still runs. A finished child of this process
	// is reaped; a zombie counts as dead.
	Alive(p Proc) bool
	// Signal sends sig to p if it is still the same process; a process
	// that is gone is not an error.
	Signal(p Proc, sig syscall.Signal) error
}

// CmdError is a host command that failed.
type CmdError struct {
	Cmd string
	// ExitCode is the command's exit status (-1 when it did not exit
	// normally, for example when it was killed or not found).
	ExitCode int
	Stderr   string
	Err      error
}

// Error implements error.
func (e *CmdError) Error() string {
	msg := fmt.Sprintf("vm: %s: %v", e.Cmd, e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Unwrap returns ErrCommand and the underlying error.
func (e *CmdError) Unwrap() []error { return []error{ErrCommand, e.Err} }

// ExitCodeOf returns the exit code of a failed command (-1 when err is not
// a command that exited).
func ExitCodeOf(err error) int {
	var ce *CmdError
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}

// StderrOf returns the standard error text of a failed command.
func StderrOf(err error) string {
	var ce *CmdError
	if errors.As(err, &ce) {
		return ce.Stderr
	}
	return ""
}

// ExecRunner is the real Runner.
type ExecRunner struct {
	// IP is the iproute2 program used for Netns (default "ip").
	IP string
}

var _ Runner = ExecRunner{}

func (r ExecRunner) argv(c Cmd) (string, []string) {
	if c.Netns == "" {
		return c.Name, c.Args
	}
	ip := r.IP
	if ip == "" {
		ip = "ip"
	}
	return ip, append([]string{"netns", "exec", c.Netns, c.Name}, c.Args...)
}

func env(c Cmd) []string {
	if c.Env != nil {
		return c.Env
	}
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	name, args := r.argv(c)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env(c)
	cmd.Dir = c.Dir
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out, &CmdError{Cmd: c.String(), ExitCode: code, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return out, nil
}

// Start implements Runner.
func (r ExecRunner) Start(ctx context.Context, c Cmd) (Proc, error) {
	if err := ctx.Err(); err != nil {
		return Proc{}, err
	}
	name, args := r.argv(c)
	cmd := exec.Command(name, args...) // not CommandContext: the process outlives ctx
	cmd.Env = env(c)
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return Proc{}, fmt.Errorf("vm: %w", err)
	}
	defer devnull.Close()
	cmd.Stdin = devnull
	if c.Log != "" {
		f, err := os.OpenFile(c.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return Proc{}, fmt.Errorf("vm: log of %s: %w", c.Name, err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return Proc{}, &CmdError{Cmd: c.String(), ExitCode: -1, Err: err}
	}
	p := Proc{PID: cmd.Process.Pid}
	p.Start, err = procStart(p.PID)
	// The process is reaped by Alive (wait4 WNOHANG) or, after a restart
	// of the peer, by whoever inherits it; no goroutine waits for it.
	_ = cmd.Process.Release()
	if err != nil {
		return p, fmt.Errorf("vm: started %s as pid %d but cannot read it: %w", c.Name, p.PID, err)
	}
	return p, nil
}

// procStart reads a process's start time (clock ticks after boot) and
// reports an error for a missing or zombie process.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive implements Runner.
func (ExecRunner) Alive(p Proc) bool {
	if p.PID <= 0 {
		return false
	}
	// Reap it if it is our finished child (no effect otherwise).
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(p.PID, &ws, syscall.WNOHANG, nil)
	st, err := procStart(p.PID)
	return err == nil && (p.Start == 0 || st == p.Start)
}

// Signal implements Runner.
func (r ExecRunner) Signal(p Proc, sig syscall.Signal) error {
	if !r.Alive(p) {
		return nil
	}
	if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("vm: signal %d to pid %d: %w", sig, p.PID, err)
	}
	return nil
}

// StopProc asks p to stop with SIGTERM, waits up to grace for it to exit
// (polling), then kills it; it returns once p is gone or ctx ends.
func StopProc(ctx context.Context, r Runner, p Proc, grace time.Duration) error {
	if !r.Alive(p) {
		return nil
	}
	if err := r.Signal(p, syscall.SIGTERM); err != nil {
		return err
	}
	if WaitGone(ctx, r, p, grace) {
		return nil
	}
	if err := r.Signal(p, syscall.SIGKILL); err != nil {
		return err
	}
	if WaitGone(ctx, r, p, 5*time.Second) {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("vm: pid %d survived SIGKILL", p.PID)
}

// WaitGone polls until p has exited or d passes or ctx ends; it reports
// whether p is gone.
func WaitGone(ctx context.Context, r Runner, p Proc, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !r.Alive(p) {
			return true
		}
		select {
		case <-ctx.Done():
			return !r.Alive(p)
		case <-deadline.C:
			return !r.Alive(p)
		case <-tick.C:
		}
	}
}
