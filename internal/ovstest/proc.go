package ovstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/musubi-fabric/musubi/internal/sitenet"
)

// output runs a program (with extra environment variables) and returns its
// standard output; a failure wraps ErrCommand and carries stderr.
func output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	return sitenet.Output(ctx, env, name, args...)
}

func run(ctx context.Context, name string, args ...string) error {
	return sitenet.Run(ctx, name, args...)
}

// runIn runs a program in network namespace ns.
func runIn(ctx context.Context, ns, name string, args ...string) error {
	return sitenet.RunIn(ctx, ns, name, args...)
}

// daemon is a process the harness started and reaps.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once reaped
	err  error         // Wait's result, valid after done
}

// startDaemon starts a long-running program in namespace ns via
// `ip netns exec` (which execs it, so the PID is the program's), with its
// stdout and stderr appended to <dir>/<name>.out. Callers pass paths inside
// the fabric's run directory in args: that is how the sweeper recognises the
// processes of a dead run.
func startDaemon(ns, dir, name string, env []string, args ...string) (*daemon, error) {
	out, err := os.OpenFile(filepath.Join(dir, name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: a ^C to the test binary reaches the test, which
	// then stops the daemons itself instead of racing them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ovstest: start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs; it returns once the
// process is reaped. A daemon that already exited is not an error.
func (d *daemon) stop(grace time.Duration) error {
	if !d.running() {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("ovstest: %s (pid %d) did not exit after SIGKILL", d.name, d.pid())
	}
}

// waitSocket polls until a unix socket accepts connections, the daemon
// exits, or ctx ends.
func waitSocket(ctx context.Context, path string, d *daemon) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.Dial("unix", path); err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("ovstest: %s exited before serving %s: %v", d.name, path, d.err)
		case <-ctx.Done():
			return fmt.Errorf("ovstest: waiting for %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// InNetns runs fn on a locked OS thread that has joined the named network
// namespace (/run/netns/<ns>). Sockets opened by fn stay in that namespace.
// The calling goroutine's thread is never switched.
func InNetns(ns string, fn func() error) error { return sitenet.InNetns(ns, fn) }

func listNetns() ([]string, error) { return sitenet.ListNetns() }

// deleteNetns deletes a namespace; a missing one is not an error.
func deleteNetns(ctx context.Context, ns string) error { return sitenet.DeleteNetns(ctx, ns) }

// ownerFile records the process that owns a run directory: "<pid> <start>"
// where start is the process's start time in clock ticks (field 22 of
// /proc/<pid>/stat), so a recycled PID is not mistaken for the owner.
const ownerFile = "owner"

func writeOwner(dir string) error {
	pid := os.Getpid()
	st, err := procStart(pid)
	if err != nil {
		return fmt.Errorf("ovstest: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(fmt.Sprintf("%d %s\n", pid, st)), 0o644)
}

func procStart(pid int) (string, error) { return sitenet.ProcStart(pid) }

// ownerAlive reports whether the run directory's owner process still runs.
func ownerAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		// No owner file yet: a run being created right now, or a crash
		// between mkdir and write. Only call it dead once it is old.
		fi, serr := os.Stat(dir)
		return serr == nil && time.Since(fi.ModTime()) < time.Minute
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	st, err := procStart(pid)
	return err == nil && st == f[1]
}

// Sweep removes what dead runs left behind under baseDir: for every run
// directory whose owner process is gone, it kills the processes whose
// command line names that directory, deletes the namespaces with that run
// id, and removes the directory. Live runs are never touched.
func Sweep(baseDir string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ents, err := os.ReadDir(baseDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ovstest: sweep: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), NamePrefix) {
			continue
		}
		dir := filepath.Join(baseDir, e.Name())
		if ownerAlive(dir) {
			continue
		}
		logf("ovstest: sweeping leftovers of dead run %s", e.Name())
		errs = append(errs, killProcsMentioning(dir))
		names, err := listNetns()
		errs = append(errs, err)
		for _, n := range names {
			if strings.HasPrefix(n, e.Name()+"-") {
				errs = append(errs, deleteNetns(ctx, n))
			}
		}
		errs = append(errs, os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// killProcsMentioning SIGKILLs every process whose command line contains
// dir (our OVS daemons name their database and sockets there).
func killProcsMentioning(dir string) error {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cl, []byte(dir+"/")) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}
