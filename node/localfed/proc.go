package localfed

import (
	"bytes"
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

	"github.com/musubi-fabric/musubi/internal/sitenet"
)

// childEnv is this process's environment without MUSUBI_* variables
// (they would override the configuration files of the commands Up runs),
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MUSUBI_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startDetached starts argv as a daemon: its own session (no signal to
// the caller's process group reaches it), stdin /dev/null, stdout and
// stderr appended to logPath. It is not waited for (it outlives the
// caller; reap collects it if it exits first). It returns the PID and the
// process's start time.
func startDetached(argv, env []string, logPath string) (int, string, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return 0, "", fmt.Errorf("localfed: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, "", fmt.Errorf("localfed: %w", err)
	}
	defer null.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("localfed: start %s: %w", strings.Join(argv, " "), err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	start, err := sitenet.ProcStart(pid)
	if err != nil {
		// It exited at once (and is a zombie of ours, or reaped).
		reap(pid)
		return pid, "", fmt.Errorf("localfed: %s exited at once; log %s:\n%s", argv[0], logPath, tail(logPath, 15))
	}
	return pid, start, nil
}

// reap collects pid if it is an exited child of this process; others are
// left alone.
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// alive reports whether p still runs (reaping it if it is our exited
// child).
func (p *Proc) alive() bool {
	if p == nil || p.PID <= 0 {
		return false
	}
	reap(p.PID)
	return sitenet.SameProcess(p.PID, p.Start)
}

// stopPID stops process pid, but only while it is the process with start
// time start: SIGTERM, then SIGKILL after grace; it waits until the process
// is gone. It reports whether there was a process to stop.
func stopPID(ctx context.Context, pid int, start string, grace time.Duration) (bool, error) {
	if !sitenet.SameProcess(pid, start) {
		reap(pid)
		return false, nil
	}
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, grace}, {syscall.SIGKILL, 5 * time.Second}} {
		if err := syscall.Kill(pid, step.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return true, fmt.Errorf("localfed: signal %d: %w", pid, err)
		}
		if waitGone(ctx, pid, start, step.wait) {
			return true, nil
		}
		if ctx.Err() != nil {
			return true, fmt.Errorf("localfed: stop %d: %w", pid, ctx.Err())
		}
	}
	return true, fmt.Errorf("localfed: process %d did not exit after SIGKILL", pid)
}

func waitGone(ctx context.Context, pid int, start string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		reap(pid)
		if !sitenet.SameProcess(pid, start) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		// Polling: the process is not our child (it outlived its Up).
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cmdline is process pid's command line, arguments joined by spaces.
func cmdline(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// pidsMatching lists processes (other than this one) whose command line,
// with a space before and after it, contains every one of parts.
func pidsMatching(parts ...string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl := " " + cmdline(pid) + " "
		ok := cl != "  "
		for _, p := range parts {
			ok = ok && strings.Contains(cl, p)
		}
		if ok {
			out = append(out, pid)
		}
	}
	return out
}

// mentions reports whether process pid's command line, working directory
// or environment names a path under dir.
func mentions(pid int, dir string) bool {
	d := filepath.Clean(dir) + "/"
	if cl := cmdline(pid) + " "; strings.Contains(cl, d) || strings.Contains(cl, filepath.Clean(dir)+" ") {
		return true
	}
	if cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd")); err == nil && (cwd == filepath.Clean(dir) || strings.HasPrefix(cwd, d)) {
		return true
	}
	env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	return err == nil && bytes.Contains(env, []byte(d))
}

// stopNetnsProcs stops every process in namespace ns (SIGTERM, then
// SIGKILL after grace): what Up started there and did not stop otherwise,
// and anything a user started with `musubi local exec`.
func stopNetnsProcs(ctx context.Context, ns string, grace time.Duration) (int, error) {
	pids, err := sitenet.NetnsPIDs(ns)
	if err != nil {
		return 0, err
	}
	type victim struct {
		pid   int
		start string
	}
	var vs []victim
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		if st, err := sitenet.ProcStart(pid); err == nil {
			vs = append(vs, victim{pid, st})
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	var errs []error
	for _, v := range vs {
		if waitGone(ctx, v.pid, v.start, grace) {
			continue
		}
		if _, err := stopPID(ctx, v.pid, v.start, 0); err != nil {
			errs = append(errs, err)
		}
	}
	return len(vs), errors.Join(errs...)
}

// tail returns the last n lines of a file ("" when unreadable).
func tail(path string, n int) string {
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
