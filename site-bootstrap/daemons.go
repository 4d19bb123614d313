package sitebootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/site-bootstrap/proc"
)

// requiredPackages are the Debian packages a site needs, besides those of
// the ZooKeeper server.
func (s *site) requiredPackages() []string {
	pkgs := append([]string(nil), zkPackages...)
	if !s.cfg.skip("ovs") {
		pkgs = append(pkgs, "openvswitch-switch")
	}
	if !s.cfg.skip("tgt") {
		pkgs = append(pkgs, "tgt")
	}
	return pkgs
}

func (s *site) missingPackages(ctx context.Context) ([]string, error) {
	var missing []string
	for _, p := range s.requiredPackages() {
		out, err := s.cfg.Runner.Run(ctx, nil, "dpkg-query", "-W", "-f=${db:Status-Status}", p)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil || strings.TrimSpace(string(out)) != "installed" {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

func (s *site) stepPackages() Step {
	return Step{
		Name: "debian packages",
		Check: func(ctx context.Context) (bool, string, error) {
			missing, err := s.missingPackages(ctx)
			if err != nil {
				return false, "", err
			}
			if len(missing) == 0 {
				return true, fmt.Sprintf("%d present", len(s.requiredPackages())), nil
			}
			return false, "missing " + strings.Join(missing, " "), nil
		},
		Apply: func(ctx context.Context) error {
			missing, err := s.missingPackages(ctx)
			if err != nil {
				return err
			}
			if !s.cfg.InstallPackages {
				return fmt.Errorf("%w: %s (install them with 'apt-get install %s', or re-run with --install-packages)",
					ErrMissingPackages, strings.Join(missing, " "), strings.Join(missing, " "))
			}
			env := []string{"DEBIAN_FRONTEND=noninteractive"}
			args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, missing...)
			if _, err := s.cfg.Runner.Run(ctx, env, "apt-get", args...); err != nil {
				s.cfg.Logger.Info("apt-get install failed; updating the package lists", "err", err)
				if _, err := s.cfg.Runner.Run(ctx, env, "apt-get", "update", "-q"); err != nil {
					return err
				}
				_, err = s.cfg.Runner.Run(ctx, env, "apt-get", args...)
				return err
			}
			return nil
		},
	}
}

// --- Open vSwitch ---

const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

type ovsPaths struct{ dir, db, sock, dbPID, swPID, dbCtl, swCtl, dbLog, swLog string }

func (s *site) ovs() ovsPaths {
	d := s.cfg.ovsDir()
	return ovsPaths{
		dir: d, db: filepath.Join(d, "conf.db"), sock: filepath.Join(d, "db.sock"),
		dbPID: filepath.Join(d, "ovsdb-server.pid"), swPID: filepath.Join(d, "ovs-vswitchd.pid"),
		dbCtl: filepath.Join(d, "ovsdb-server.ctl"), swCtl: filepath.Join(d, "ovs-vswitchd.ctl"),
		dbLog: filepath.Join(d, "ovsdb-server.log"), swLog: filepath.Join(d, "ovs-vswitchd.log"),
	}
}

// ovsEnv points the OVS tools at the site's private directories.
func (p ovsPaths) env() []string {
	return []string{"OVS_RUNDIR=" + p.dir, "OVS_DBDIR=" + p.dir, "OVS_LOGDIR=" + p.dir, "OVS_SYSCONFDIR=" + p.dir}
}

// detectDatapath chooses the datapath for DatapathAuto: the kernel's when
// the openvswitch module is loaded or can be loaded, else userspace.
func (s *site) detectDatapath(ctx context.Context) string {
	if s.cfg.Datapath != DatapathAuto {
		return s.cfg.Datapath
	}
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil {
		return DatapathSystem
	}
	if _, err := s.cfg.Runner.Run(ctx, nil, "modprobe", "-n", "-q", "openvswitch"); err == nil {
		return DatapathSystem
	}
	return DatapathNetdev
}

func (s *site) ovsRunning(ctx context.Context) (bool, string) {
	p := s.ovs()
	dbPID, ok1 := proc.Running(p.dbPID, p.db)
	swPID, ok2 := proc.Running(p.swPID, "unix:"+p.sock)
	switch {
	case !ok1:
		return false, "ovsdb-server not running"
	case !ok2:
		return false, "ovs-vswitchd not running"
	}
	if _, err := s.cfg.Runner.Run(ctx, p.env(), "ovs-vsctl", "--db=unix:"+p.sock, "--timeout=5", "show"); err != nil {
		return false, "ovsdb-server does not answer"
	}
	return true, fmt.Sprintf("ovsdb-server pid %d, ovs-vswitchd pid %d, %s datapath", dbPID, swPID, s.st.Datapath)
}

func (s *site) stepOVS() Step {
	return Step{
		Name: "open vswitch",
		Check: func(ctx context.Context) (bool, string, error) {
			ok, detail := s.ovsRunning(ctx)
			return ok, detail, nil
		},
		Apply: func(ctx context.Context) error {
			p := s.ovs()
			if err := os.MkdirAll(p.dir, 0o755); err != nil {
				return fmt.Errorf("sitebootstrap: %w", err)
			}
			r, env := s.cfg.Runner, p.env()
			if s.st.Datapath == DatapathSystem {
				if _, err := os.Stat("/sys/module/openvswitch"); err != nil {
					if _, err := r.Run(ctx, nil, "modprobe", "openvswitch"); err != nil {
						return fmt.Errorf("%w: load the openvswitch module (or use --ovs-datapath netdev): %w", ErrDaemon, err)
					}
				}
			}
			if _, err := os.Stat(p.db); errors.Is(err, os.ErrNotExist) {
				if _, err := r.Run(ctx, env, "ovsdb-tool", "create", p.db, ovsSchema); err != nil {
					return fmt.Errorf("%w: %w", ErrDaemon, err)
				}
			}
			if _, ok := proc.Running(p.dbPID, p.db); !ok {
				if _, err := r.Run(ctx, env, "ovsdb-server", p.db, "--remote=punix:"+p.sock, "--pidfile="+p.dbPID,
					"--detach", "--no-chdir", "-vconsole:off", "--log-file="+p.dbLog, "--unixctl="+p.dbCtl); err != nil {
					return fmt.Errorf("%w: %w (log %s)", ErrDaemon, err, p.dbLog)
				}
			}
			if _, err := r.Run(ctx, env, "ovs-vsctl", "--db=unix:"+p.sock, "--timeout=30", "--no-wait", "init"); err != nil {
				return fmt.Errorf("%w: %w", ErrDaemon, err)
			}
			if _, ok := proc.Running(p.swPID, "unix:"+p.sock); !ok {
				if _, err := r.Run(ctx, env, "ovs-vswitchd", "unix:"+p.sock, "--pidfile="+p.swPID,
					"--detach", "--no-chdir", "-vconsole:off", "--log-file="+p.swLog, "--unixctl="+p.swCtl); err != nil {
					return fmt.Errorf("%w: %w (log %s)", ErrDaemon, err, p.swLog)
				}
			}
			return nil
		},
	}
}

func (s *site) stopOVS(ctx context.Context) error {
	p := s.ovs()
	_, err1 := proc.Stop(ctx, p.swPID, "unix:"+p.sock, 5*time.Second)
	_, err2 := proc.Stop(ctx, p.dbPID, p.db, 5*time.Second)
	return errors.Join(err1, err2)
}

// --- tgtd ---

type tgtPaths struct{ dir, base, pid, log, marker string }

func (s *site) tgt() tgtPaths {
	d := s.cfg.tgtDir()
	return tgtPaths{dir: d, base: filepath.Join(d, "tgtd.sock"), pid: filepath.Join(d, "tgtd.pid"), log: filepath.Join(d, "tgtd.log"),
		marker: "portal=" + portal(s.st.Addr, s.st.ISCSIPort)}
}

func (s *site) tgtAnswers(ctx context.Context) bool {
	p := s.tgt()
	_, err := s.cfg.Runner.Run(ctx, []string{"TGT_IPC_SOCKET=" + p.base}, "tgtadm", "-C", strconv.Itoa(s.st.TgtControl), "--mode", "system", "--op", "show")
	return err == nil
}

func (s *site) stepTgt() Step {
	return Step{
		Name: "tgtd",
		Check: func(ctx context.Context) (bool, string, error) {
			p := s.tgt()
			pid, ok := proc.Running(p.pid, p.marker)
			if !ok {
				return false, "not running", nil
			}
			if !s.tgtAnswers(ctx) {
				return false, fmt.Sprintf("pid %d does not answer on %s.%d", pid, p.base, s.st.TgtControl), nil
			}
			return true, fmt.Sprintf("pid %d, portal %s", pid, portal(s.st.Addr, s.st.ISCSIPort)), nil
		},
		Apply: func(ctx context.Context) error {
			p := s.tgt()
			if err := os.MkdirAll(p.dir, 0o700); err != nil {
				return fmt.Errorf("sitebootstrap: %w", err)
			}
			if _, ok := proc.Running(p.pid, p.marker); !ok {
				spec := proc.Spec{
					Argv:    []string{"tgtd", "-f", "-C", strconv.Itoa(s.st.TgtControl), "--iscsi", p.marker},
					Env:     []string{"TGT_IPC_SOCKET=" + p.base},
					PIDFile: p.pid, LogFile: p.log, Marker: p.marker,
				}
				if _, err := proc.Start(spec, 0); err != nil {
					return fmt.Errorf("%w: %w", ErrDaemon, err)
				}
			}
			return s.poll(ctx, "tgtd to answer", func() (bool, error) {
				if _, ok := proc.Running(p.pid, p.marker); !ok {
					pid, perr := proc.ReadPIDFile(p.pid)
					if perr == nil && !proc.Exited(pid) {
						s.cfg.Logger.Warn("tgtd does not look like itself yet", "process", proc.Describe(pid))
						return false, nil
					}
					return false, fmt.Errorf("%w: tgtd is not running (pid file: %d, %v; %s); log %s:\n%s", ErrDaemon, pid, perr, proc.Describe(pid), p.log, proc.Tail(p.log, 10))
				}
				return s.tgtAnswers(ctx), nil
			})
		},
	}
}

// stopTgt stops tgtd the way tgt's own scripts do: offline, then delete
// the system (tgtd ignores SIGTERM); signals only if it lingers.
func (s *site) stopTgt(ctx context.Context) error {
	p := s.tgt()
	if _, ok := proc.Running(p.pid, p.marker); ok {
		env, port := []string{"TGT_IPC_SOCKET=" + p.base}, strconv.Itoa(s.st.TgtControl)
		_, _ = s.cfg.Runner.Run(ctx, env, "tgtadm", "-C", port, "--mode", "system", "--op", "update", "--name", "State", "--value", "offline")
		_, _ = s.cfg.Runner.Run(ctx, env, "tgtadm", "-C", port, "--mode", "system", "--op", "delete")
	}
	_, err := proc.Stop(ctx, p.pid, p.marker, 5*time.Second)
	for _, f := range []string{fmt.Sprintf("%s.%d", p.base, s.st.TgtControl), fmt.Sprintf("%s.%d.lock", p.base, s.st.TgtControl)} {
		if rerr := os.Remove(f); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// pollInterval is how often waits look again.
const pollInterval = 50 * time.Millisecond

// poll calls f until it reports true or fails, or WaitTimeout passes.
func (s *site) poll(ctx context.Context, what string, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for %s: %w", ErrDaemon, what, ctx.Err())
		case <-t.C:
		}
	}
}
