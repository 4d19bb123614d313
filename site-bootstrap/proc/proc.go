// Package proc runs a site's daemons as detached background processes
// tracked by pid files: the launcher for hosts without a service manager
// (and for sites in network namespaces, which inherit the namespace of the
// musubi process that starts them). On hosts with systemd the same command
// lines go into unit files instead (see sitebootstrap's unit writers).
//
// A process is identified by its pid file plus a marker string its command
// line must contain, so a recycled PID is never taken for the daemon and
// never signalled.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sentinel errors.
var (
	// ErrBadSpec: the Spec is incomplete.
	ErrBadSpec = errors.New("proc: invalid spec")
	// ErrExited: the process exited right after it was started.
	ErrExited = errors.New("proc: process exited")
	// ErrStuck: the process did not exit after SIGKILL.
	ErrStuck = errors.New("proc: process did not exit")
)

// Spec is a daemon to start in the background.
type Spec struct {
	// Argv is the program and its arguments. The program runs in the
	// foreground (proc detaches it: own session, no controlling terminal).
	Argv []string
	// Env is added to the launcher's environment.
	Env []string
	// Dir is the working directory ("" keeps the launcher's).
	Dir string
	// PIDFile receives the process id.
	PIDFile string
	// LogFile receives stdout and stderr (appended).
	LogFile string
	// Marker must occur in the process's command line (/proc/<pid>/cmdline,
	// arguments joined by spaces); it tells the daemon from an unrelated
	// process that reuses its PID. Usually a path unique to the daemon.
	Marker string
}

func (s Spec) validate() error {
	switch {
	case len(s.Argv) == 0:
		return fmt.Errorf("%w: no command", ErrBadSpec)
	case s.PIDFile == "" || s.LogFile == "":
		return fmt.Errorf("%w: %s: pid file and log file are required", ErrBadSpec, s.Argv[0])
	case s.Marker == "":
		return fmt.Errorf("%w: %s: a marker is required", ErrBadSpec, s.Argv[0])
	case !strings.Contains(strings.Join(s.Argv, " "), s.Marker):
		return fmt.Errorf("%w: marker %q is not in the command line of %s", ErrBadSpec, s.Marker, s.Argv[0])
	}
	return nil
}

// Start starts the daemon detached (own session, stdin /dev/null) and
// writes its pid file. The process is not waited for: it outlives the
// launcher. Start returns once the process's command line shows the
// marker (so Running finds it), or it exited (ErrExited). If it exits
// within settle, Start reports ErrExited with the tail of its log.
func Start(spec Spec, settle time.Duration) (int, error) {
	if err := spec.validate(); err != nil {
		return 0, err
	}
	for _, p := range []string{spec.PIDFile, spec.LogFile} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, fmt.Errorf("proc: %w", err)
		}
	}
	logf, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return 0, fmt.Errorf("proc: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("proc: %w", err)
	}
	defer null.Close()
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	// A session of its own: no signal to the launcher's process group
	// (^C) reaches it, and no parent-death signal is set.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("proc: start %s: %w", spec.Argv[0], err)
	}
	pid := cmd.Process.Pid
	// Not waited for: the daemon outlives this process. Release frees the
	// handle; an early exit is detected below through /proc and reaped.
	_ = cmd.Process.Release()
	if err := WritePIDFile(spec.PIDFile, pid); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		reap(pid)
		return 0, err
	}
	// cmd.Start returns while the kernel still sets the new program up:
	// /proc/<pid>/cmdline reads empty for some microseconds. Return once
	// the process shows its marker, so that Running finds it at once.
	if !waitMarker(pid, spec.Marker, markerWait) {
		reap(pid)
		if !alive(pid) {
			_ = os.Remove(spec.PIDFile)
			return 0, fmt.Errorf("%w: %s (pid %d) exited at once; log %s:\n%s", ErrExited, spec.Argv[0], pid, spec.LogFile, Tail(spec.LogFile, 15))
		}
	}
	if settle > 0 {
		deadline := time.Now().Add(settle)
		for time.Now().Before(deadline) {
			if !alive(pid) {
				reap(pid)
				_ = os.Remove(spec.PIDFile)
				return 0, fmt.Errorf("%w: %s (pid %d) exited at once; log %s:\n%s", ErrExited, spec.Argv[0], pid, spec.LogFile, Tail(spec.LogFile, 15))
			}
			time.Sleep(20 * time.Millisecond) // polling a process we cannot wait for
		}
	}
	return pid, nil
}

// markerWait bounds how long Start waits for a new process's command line
// to show its marker.
const markerWait = 5 * time.Second

// waitMarker polls until process pid's command line contains marker
// (true), or the process is gone or limit passes (false).
func waitMarker(pid int, marker string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if Matches(pid, marker) {
			return true
		}
		reap(pid)
		if !alive(pid) || time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond) // polling a process we cannot wait for
	}
}

// WritePIDFile writes pid to path atomically.
func WritePIDFile(path string, pid int) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("proc: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("proc: %w", err)
	}
	return nil
}

// ReadPIDFile returns the pid a pid file names (0 when there is none).
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("proc: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("proc: %s does not hold a pid", path)
	}
	return pid, nil
}

// Running returns the pid of the daemon a pid file names when that process
// is alive (not a zombie) and its command line contains marker.
func Running(pidFile, marker string) (int, bool) {
	pid, err := ReadPIDFile(pidFile)
	if err != nil || pid == 0 {
		return 0, false
	}
	if !alive(pid) || !Matches(pid, marker) {
		return 0, false
	}
	return pid, true
}

// Matches reports whether process pid's command line contains marker.
func Matches(pid int, marker string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	j := strings.LastIndexByte(s, ')')
	if j < 0 || len(s) < j+3 {
		return false
	}
	return s[j+2] != 'Z' && s[j+2] != 'X'
}

// reap collects pid if it is a child of this process that exited (it
// would stay a zombie otherwise). Others are left alone.
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// pollStop is how often Stop looks whether the process is gone.
const pollStop = 20 * time.Millisecond

// Stop stops the daemon a pid file names, if it runs and matches marker:
// SIGTERM, then SIGKILL after grace. It waits until the process is gone
// and removes the pid file. It reports whether a process was stopped.
func Stop(ctx context.Context, pidFile, marker string, grace time.Duration) (bool, error) {
	pid, ok := Running(pidFile, marker)
	if !ok {
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("proc: %w", err)
		}
		return false, nil
	}
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, grace}, {syscall.SIGKILL, 5 * time.Second}} {
		if err := syscall.Kill(pid, step.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return false, fmt.Errorf("proc: signal %d: %w", pid, err)
		}
		if waitGone(ctx, pid, step.wait) {
			if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
				return true, fmt.Errorf("proc: %w", err)
			}
			return true, nil
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("proc: stop %d: %w", pid, ctx.Err())
		}
	}
	return false, fmt.Errorf("%w: pid %d", ErrStuck, pid)
}

func waitGone(ctx context.Context, pid int, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	tick := time.NewTicker(pollStop)
	defer tick.Stop()
	for {
		reap(pid)
		if !alive(pid) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return false
		case <-tick.C:
		}
	}
}

// Tail returns the last n lines of a file ("" when unreadable).
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Describe says what process pid is, for error messages: its state and
// command line, or that it is gone.
func Describe(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return fmt.Sprintf("pid %d: gone", pid)
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	s := string(stat)
	if j := strings.LastIndexByte(s, ')'); j > 0 && len(s) > j+2 {
		s = s[:j+3]
	}
	return fmt.Sprintf("pid %d: %s, cmdline %q", pid, s, strings.ReplaceAll(string(cmd), "\x00", " "))
}

// Exited reports whether process pid is gone or a zombie: it ran and
// ended. A pid file's process that does not (yet) match its marker but has
// not exited is not reported.
func Exited(pid int) bool { return pid <= 0 || !alive(pid) }
