package iscsi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DaemonConfig configures one tgtd.
type DaemonConfig struct {
	// Dir holds tgtd's management socket (tgtd.sock.<port>) and its lock,
	// the pid file and the log. Keep it short: unix socket paths are
	// limited to 107 bytes.
	Dir string
	// Portal is the "address:port" tgtd serves iSCSI on.
	Portal string
	// ControlPort is tgtd's -C value, the suffix of its socket name.
	ControlPort int
	// Netns, if set, runs tgtd in that network namespace (nsenter --net,
	// keeping the caller's mount namespace), where Portal's address must
	// exist. The management socket is a file, reachable from any namespace.
	Netns string
	// Program is the tgtd binary (default "tgtd").
	Program string
	// Logger receives the daemon's logs.
	Logger *slog.Logger
}

// Daemon is a tgtd started (or adopted) for one storage host, with its own
// management socket and portal, so it never meets the system's tgtd.
type Daemon struct {
	cfg    DaemonConfig
	log    *slog.Logger
	base   string
	pid    int
	cmd    *exec.Cmd // nil when adopted
	done   chan struct{}
	waitEr error
}

// SocketBase is the TGT_IPC_SOCKET value of the daemon (tgtadm users set it
// and pass -C ControlPort).
func (d *Daemon) SocketBase() string { return d.base }

// Mgmt is the daemon's management transport.
func (d *Daemon) Mgmt() Socket { return Socket{Path: SocketPath(d.base, d.cfg.ControlPort)} }

// PID is tgtd's process id.
func (d *Daemon) PID() int { return d.pid }

// Adopted reports whether StartDaemon found the daemon already running
// (a previous peer's) instead of starting it.
func (d *Daemon) Adopted() bool { return d.cmd == nil }

// StartDaemon starts tgtd with cfg and waits until it serves its portal.
// If a tgtd already answers on cfg's socket (left by a previous
// incarnation of the peer, with its targets), it is adopted instead. Stop
// must be called to release it.
func StartDaemon(ctx context.Context, cfg DaemonConfig) (*Daemon, error) {
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("%w: directory %q is not an absolute path", ErrConfig, cfg.Dir)
	}
	if _, err := netip.ParseAddrPort(cfg.Portal); err != nil {
		return nil, fmt.Errorf("%w: portal %q: %v", ErrConfig, cfg.Portal, err)
	}
	if cfg.ControlPort < 0 {
		return nil, fmt.Errorf("%w: control port %d", ErrConfig, cfg.ControlPort)
	}
	if cfg.Program == "" {
		cfg.Program = "tgtd"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, base: filepath.Join(cfg.Dir, "tgtd.sock"), done: make(chan struct{})}
	d.log = cfg.Logger.With("tgtd", cfg.Portal)
	if sp := SocketPath(d.base, cfg.ControlPort); len(sp) > 107 {
		return nil, fmt.Errorf("%w: socket path %s is longer than 107 bytes", ErrConfig, sp)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDaemon, err)
	}
	if pid, ok := d.running(ctx); ok {
		d.pid = pid
		close(d.done)
		if err := d.waitPortal(ctx); err != nil {
			return nil, err
		}
		d.log.Info("adopted running tgtd", "pid", pid)
		return d, nil
	}
	logf, err := os.OpenFile(filepath.Join(cfg.Dir, "tgtd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDaemon, err)
	}
	defer logf.Close()
	args := []string{"-f", "-C", strconv.Itoa(cfg.ControlPort), "--iscsi", "portal=" + cfg.Portal}
	prog := cfg.Program
	if cfg.Netns != "" {
		// nsenter --net, not ip netns exec: tgtd must stay in this mount
		// namespace to see FUSE exports mounted after it started (ip
		// netns exec gives it a mount namespace of its own).
		args = append([]string{"--net=/run/netns/" + cfg.Netns, "--", prog}, args...)
		prog = "nsenter"
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), "TGT_IPC_SOCKET="+d.base)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a signal to the peer's process group (^C) does not
	// reach it; the peer stops it through its socket.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s: %v", ErrDaemon, cfg.Program, err)
	}
	d.cmd, d.pid = cmd, cmd.Process.Pid
	go func() {
		d.waitEr = cmd.Wait()
		close(d.done)
	}()
	if err := os.WriteFile(d.pidFile(), []byte(strconv.Itoa(d.pid)+"\n"), 0o600); err != nil {
		_ = d.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w: %v", ErrDaemon, err)
	}
	if err := d.waitPortal(ctx); err != nil {
		_ = d.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	d.log.Info("started tgtd", "pid", d.pid, "socket", SocketPath(d.base, cfg.ControlPort))
	return d, nil
}

func (d *Daemon) pidFile() string { return filepath.Join(d.cfg.Dir, "tgtd.pid") }

// running returns the pid of a tgtd that answers on the socket and is the
// one the pid file names.
func (d *Daemon) running(ctx context.Context) (int, bool) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := d.Mgmt().Do(cctx, Request{Mode: ModeSystem, Op: OpShow}); err != nil {
		return 0, false
	}
	b, err := os.ReadFile(d.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !isTgtd(pid) {
		return 0, false
	}
	return pid, true
}

// isTgtd reports whether pid is a live (not zombie) tgtd.
func isTgtd(pid int) bool { return isProc(pid, "tgtd") }

// waitPortal polls the management socket until tgtd answers and lists the
// portal (tgtd keeps running without it when the bind fails).
func (d *Daemon) waitPortal(ctx context.Context) error {
	want := d.cfg.Portal + ","
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		out, err := d.Mgmt().Do(ctx, Request{Mode: ModePortal, Op: OpShow})
		if err == nil {
			// tgtd answers only once its portals are set up, so the list
			// is final. When the bind fails, tgtd falls back to listening
			// on every address at port 3260: refuse that daemon.
			for _, l := range strings.Split(out, "\n") {
				if p, ok := strings.CutPrefix(strings.TrimSpace(l), "Portal: "); ok && strings.HasPrefix(p, want) {
					return nil
				}
			}
			return fmt.Errorf("%w: tgtd could not listen on %s (address in use or missing?) and lists %q; log: %s",
				ErrDaemon, d.cfg.Portal, strings.TrimSpace(out), d.logTail())
		}
		last = err
		select {
		case <-d.done:
			if d.cmd != nil {
				return fmt.Errorf("%w: tgtd exited: %v; log: %s", ErrDaemon, d.waitEr, d.logTail())
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: tgtd not ready: %v (%w)", ErrDaemon, last, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%w: tgtd not ready after 10 s: %v; log: %s", ErrDaemon, last, d.logTail())
		case <-tick.C:
		}
	}
}

func (d *Daemon) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.cfg.Dir, "tgtd.log"))
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return string(bytes.TrimSpace(b))
}

// Stop shuts tgtd down the way tgt's own init scripts do (state offline,
// every target deleted, then the system), escalating to SIGTERM and SIGKILL if it has not
// exited within a few seconds, and removes its socket, lock and pid files.
// Every target dies with it. It waits for the process to exit.
func (d *Daemon) Stop(ctx context.Context) error {
	m := d.Mgmt()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, _ = m.Do(cctx, Request{Mode: ModeSystem, Op: OpUpdate, Name: "State", Value: "offline"})
	// tgtd refuses to shut down while it has targets (and ignores SIGTERM).
	if out, err := m.Do(cctx, Request{Mode: ModeTarget, Op: OpShow}); err == nil {
		if ts, err := ParseTargets(out); err == nil {
			for _, t := range ts {
				_, _ = m.Do(cctx, Request{Mode: ModeTarget, Op: OpDelete, TID: t.TID, Force: true})
			}
		}
	}
	_, _ = m.Do(cctx, Request{Mode: ModeSystem, Op: OpDelete})
	cancel()
	var err error
	for _, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
		if sig != 0 {
			d.log.Warn("tgtd did not exit; signalling", "pid", d.pid, "signal", sig)
			_ = syscall.Kill(d.pid, sig)
		}
		if err = d.waitExit(ctx, 3*time.Second); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range []string{SocketPath(d.base, d.cfg.ControlPort), SocketPath(d.base, d.cfg.ControlPort) + ".lock", d.pidFile()} {
		if e := os.Remove(p); e != nil && !errors.Is(e, fs.ErrNotExist) {
			errs = append(errs, e)
		}
	}
	d.log.Info("stopped tgtd", "pid", d.pid)
	return errors.Join(errs...)
}

// waitExit waits until the process is gone: the Wait of a child, or the
// disappearance from /proc of an adopted one (polled).
func (d *Daemon) waitExit(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	if d.cmd != nil {
		select {
		case <-d.done:
			return nil
		case <-t.C:
			return fmt.Errorf("%w: tgtd %d still running", ErrDaemon, d.pid)
		case <-ctx.Done():
			return fmt.Errorf("%w: tgtd %d: %w", ErrDaemon, d.pid, ctx.Err())
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for isTgtd(d.pid) {
		select {
		case <-t.C:
			return fmt.Errorf("%w: tgtd %d still running", ErrDaemon, d.pid)
		case <-ctx.Done():
			return fmt.Errorf("%w: tgtd %d: %w", ErrDaemon, d.pid, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
