package sitebootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/site-bootstrap/proc"
	"github.com/musubi-fabric/musubi/site-bootstrap/zkserver"
)

// zkPackages are the Debian packages of the ZooKeeper server.
var zkPackages = zkserver.Packages

// errIDTaken: another server holds the ID this site chose (a concurrent
// join); Join starts over with a new ID.
var errIDTaken = errors.New("sitebootstrap: server id taken by another site")

// zk is the site's ZooKeeper server configuration. members is the initial
// membership (only used before the server's first start).
func (s *site) zk(members []coord.Member) zkserver.Config {
	self := s.st.Member()
	all := []coord.Member{self}
	for _, m := range members {
		if m.ID != self.ID {
			all = append(all, m)
		}
	}
	return zkserver.Config{
		Dir: s.cfg.zkDir(), ID: s.st.ServerID, Members: all, TickTime: s.cfg.TickTime,
		SuperDigest: s.tok.Super().DigestID(), NoForceSync: s.cfg.NoForceSync, JVMFlags: s.cfg.JVMFlags,
	}
}

// initialMembers is the membership a server that has never run starts
// with: itself for a new federation, the ensemble's current members plus
// itself for a joining site.
func (s *site) initialMembers(ctx context.Context) ([]coord.Member, error) {
	if !s.joining || s.zk(nil).Started() {
		return nil, nil
	}
	if s.members != nil {
		return s.members, nil
	}
	sess, err := s.dataSession(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := sess.Members(ctx)
	if err != nil {
		return nil, err
	}
	s.members = ms
	return ms, nil
}

func (s *site) stepZKConfig() Step {
	return Step{
		Name: "zookeeper configured",
		Check: func(ctx context.Context) (bool, string, error) {
			ms, err := s.initialMembers(ctx)
			if err != nil {
				return false, "", err
			}
			c := s.zk(ms)
			if d := c.FileState(); d != "" {
				return false, "differs: " + d, nil
			}
			detail := fmt.Sprintf("server %d, %s", s.st.ServerID, c.Dir)
			if c.Started() {
				detail += ", membership kept by the ensemble"
			}
			return true, detail, nil
		},
		Apply: func(ctx context.Context) error {
			ms, err := s.initialMembers(ctx)
			if err != nil {
				return err
			}
			return s.zk(ms).Write()
		},
	}
}

func (s *site) zkJava() (string, string, error) {
	if s.java == "" {
		java, cp, err := zkserver.Find()
		if err != nil {
			return "", "", fmt.Errorf("%w (install the Debian packages %v)", err, zkserver.Packages)
		}
		s.java, s.cp = java, cp
	}
	return s.java, s.cp, nil
}

func (s *site) stepZKRunning() Step {
	return Step{
		Name: "zookeeper running",
		Check: func(context.Context) (bool, string, error) {
			c := s.zk(nil)
			if pid, ok := proc.Running(c.PIDPath(), c.Marker()); ok {
				return true, fmt.Sprintf("pid %d", pid), nil
			}
			return false, "not running", nil
		},
		Apply: func(context.Context) error {
			java, cp, err := s.zkJava()
			if err != nil {
				return err
			}
			c := s.zk(nil)
			_, err = proc.Start(proc.Spec{Argv: c.Command(java, cp), Dir: c.Dir, PIDFile: c.PIDPath(), LogFile: c.OutPath(), Marker: c.Marker()}, 0)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrDaemon, err)
			}
			return nil
		},
	}
}

func (s *site) stepZKMember() Step {
	return Step{
		Name: "ensemble member",
		Check: func(ctx context.Context) (bool, string, error) {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return false, "", err
			}
			ms, err := sess.Members(ctx)
			if err != nil {
				return false, "", err
			}
			self := s.st.Member()
			m, ok := coord.FindMember(ms, self.ID)
			switch {
			case !ok:
				return false, fmt.Sprintf("server %d not among %d members", self.ID, len(ms)), nil
			case m.Spec() != self.Spec():
				return false, "", fmt.Errorf("%w: server %d is %s, not this site's %s", errIDTaken, self.ID, m.Spec(), self.Spec())
			}
			return true, fmt.Sprintf("server %d, %s, %d members (%d voters)", self.ID, self.Role, len(ms), coord.Voters(ms)), nil
		},
		Apply: func(ctx context.Context) error {
			if !s.joining {
				return fmt.Errorf("%w: this site's server is not a member of its own ensemble", ErrNotConverged)
			}
			admin, err := s.adminSession(ctx)
			if err != nil {
				return err
			}
			actx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
			defer cancel()
			t0 := time.Now()
			err = admin.AddMember(actx, s.st.Member())
			if errors.Is(err, coord.ErrExists) {
				return fmt.Errorf("%w: %w", errIDTaken, err)
			}
			if err != nil {
				return err
			}
			s.cfg.Logger.Info("joined the ensemble", "server", s.st.ServerID, "role", s.st.Role, "took", time.Since(t0))
			return nil
		},
	}
}

func (s *site) stepZKServing() Step {
	addr := func() string { return s.st.ClientAddr() }
	return Step{
		Name: "zookeeper serving",
		Check: func(ctx context.Context) (bool, string, error) {
			mode, err := zkserver.Mode(ctx, addr())
			if err != nil || !zkserver.Serving(mode) {
				return false, "not serving", nil
			}
			return true, mode + " at " + addr(), nil
		},
		Apply: func(ctx context.Context) error {
			c := s.zk(nil)
			return s.poll(ctx, "the ZooKeeper server at "+addr(), func() (bool, error) {
				if _, ok := proc.Running(c.PIDPath(), c.Marker()); !ok {
					if pid, err := proc.ReadPIDFile(c.PIDPath()); err == nil && !proc.Exited(pid) {
						return false, nil
					}
					return false, fmt.Errorf("%w: ZooKeeper exited; log %s:\n%s", ErrDaemon, c.LogPath(), proc.Tail(c.LogPath(), 15))
				}
				mode, err := zkserver.Mode(ctx, addr())
				return err == nil && zkserver.Serving(mode), nil
			})
		},
	}
}

func (s *site) stopZK(ctx context.Context) (bool, error) {
	c := s.zk(nil)
	return proc.Stop(ctx, c.PIDPath(), c.Marker(), 10*time.Second)
}

// systemdUnitPath is where Config.Systemd writes the ZooKeeper unit.
func (s *site) systemdUnitPath() string {
	return filepath.Join(s.cfg.StateDir, "systemd", "musubi-zookeeper-"+s.st.Site+".service")
}

func (s *site) systemdUnit() (string, error) {
	java, cp, err := s.zkJava()
	if err != nil {
		return "", err
	}
	return s.zk(nil).SystemdUnit(java, cp, "musubi ZooKeeper server of site "+s.st.Site), nil
}

func (s *site) stepSystemd() Step {
	return Step{
		Name: "systemd unit",
		Check: func(context.Context) (bool, string, error) {
			want, err := s.systemdUnit()
			if err != nil {
				return false, "", err
			}
			got, err := os.ReadFile(s.systemdUnitPath())
			if err != nil || string(got) != want {
				return false, "not written", nil
			}
			return true, s.systemdUnitPath() + " (install it, then stop the pid-file server)", nil
		},
		Apply: func(context.Context) error {
			unit, err := s.systemdUnit()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(s.systemdUnitPath()), 0o755); err != nil {
				return fmt.Errorf("sitebootstrap: %w", err)
			}
			return writeFileAtomic(s.systemdUnitPath(), []byte(unit), 0o644)
		},
	}
}

func procRunning(pidFile, marker string) (int, bool) { return proc.Running(pidFile, marker) }

func modeOf(ctx context.Context, addr string) string {
	m, err := zkserver.Mode(ctx, addr)
	if err != nil {
		return ""
	}
	return m
}
