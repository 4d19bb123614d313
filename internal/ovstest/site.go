package ovstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/internal/sitenet"
)

// Site is one site: a network namespace with its own OVS instance and
// br-phy. Its exported fields are fixed at creation.
type Site struct {
	// Name is "site<Index>".
	Name string
	// Index is the site's number, 1-based.
	Index int
	// NS is the site's network namespace.
	NS string
	// Dir holds the site's OVSDB, sockets, pidfiles and logs; it is the
	// instance's OVS_RUNDIR, OVS_DBDIR and OVS_LOGDIR.
	Dir string
	// Addr is the site's underlay address (on br-phy), 10.200.<i>.2/24.
	Addr netip.Prefix
	// Gateway is the transit router's address on the site's link.
	Gateway netip.Addr
	// PhyMAC is br-phy's pinned MAC.
	PhyMAC net.HardwareAddr
	// TransitIface is the site's link in the transit namespace.
	TransitIface string

	f *Fabric

	mu       sync.Mutex
	ovsdb    *daemon
	vswitchd *daemon
}

func newSite(f *Fabric, i int) *Site {
	return &Site{
		Name:         fmt.Sprintf("site%d", i),
		Index:        i,
		NS:           fmt.Sprintf("%s-s%d", f.ID, i),
		Dir:          filepath.Join(f.dir, fmt.Sprintf("s%d", i)),
		Addr:         sitenet.SiteAddr(i),
		Gateway:      sitenet.GatewayOf(i),
		PhyMAC:       sitenet.PhyMAC(i),
		TransitIface: fmt.Sprintf("s%d", i),
		f:            f,
	}
}

// DBSocket is the path of the site's OVSDB unix socket.
func (s *Site) DBSocket() string { return filepath.Join(s.Dir, "db.sock") }

// OVSDBEndpoint is the site's OVSDB address for OVSDB clients ("unix:<path>").
func (s *Site) OVSDBEndpoint() string { return "unix:" + s.DBSocket() }

// VswitchdCtl is the path of ovs-vswitchd's unixctl socket (for ovs-appctl -t).
func (s *Site) VswitchdCtl() string { return filepath.Join(s.Dir, "ovs-vswitchd.ctl") }

func (s *Site) ovsEnv() []string {
	return []string{"OVS_RUNDIR=" + s.Dir, "OVS_DBDIR=" + s.Dir, "OVS_LOGDIR=" + s.Dir, "OVS_SYSCONFDIR=" + s.Dir}
}

func (s *Site) link() sitenet.Link {
	return sitenet.Link{SiteNS: s.NS, TransitNS: s.f.TransitNS, TransitIface: s.TransitIface, Addr: s.Addr, Gateway: s.Gateway}
}

func (s *Site) create(ctx context.Context) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	if err := sitenet.AddNetns(ctx, s.NS); err != nil {
		return err
	}
	if err := sitenet.AddLink(ctx, s.link()); err != nil {
		return err
	}
	if err := s.startOVS(ctx, true); err != nil {
		return err
	}
	if err := sitenet.AttachPhy(ctx, s.OVSDBEndpoint(), s.link(), s.PhyMAC); err != nil {
		return err
	}
	s.f.opts.Logf("ovstest: %s up (ns %s, %s)", s.Name, s.NS, s.Addr)
	return nil
}

// startOVS starts ovsdb-server (creating the database when fresh) and
// ovs-vswitchd in the site namespace.
func (s *Site) startOVS(ctx context.Context, fresh bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	db := filepath.Join(s.Dir, "conf.db")
	if fresh {
		if err := run(ctx, "ovsdb-tool", "create", db, Schema); err != nil {
			return err
		}
	}
	var err error
	s.ovsdb, err = startDaemon(s.NS, s.Dir, "ovsdb-server", s.ovsEnv(),
		db, "--remote=punix:"+s.DBSocket(),
		"--pidfile="+filepath.Join(s.Dir, "ovsdb-server.pid"), "--no-chdir",
		"-vconsole:off", "--log-file="+filepath.Join(s.Dir, "ovsdb-server.log"),
		"--unixctl="+filepath.Join(s.Dir, "ovsdb-server.ctl"))
	if err != nil {
		return err
	}
	if err := waitSocket(ctx, s.DBSocket(), s.ovsdb); err != nil {
		return err
	}
	if fresh {
		if _, err := s.Vsctl(ctx, "--no-wait", "init", "--", "set", "Open_vSwitch", ".", "external_ids:system-id="+s.Name); err != nil {
			return err
		}
	}
	return s.startVswitchdLocked(ctx)
}

func (s *Site) startVswitchdLocked(ctx context.Context) error {
	var err error
	s.vswitchd, err = startDaemon(s.NS, s.Dir, "ovs-vswitchd", s.ovsEnv(),
		s.OVSDBEndpoint(), "--pidfile="+filepath.Join(s.Dir, "ovs-vswitchd.pid"), "--no-chdir",
		"-vconsole:off", "--log-file="+filepath.Join(s.Dir, "ovs-vswitchd.log"),
		"--unixctl="+s.VswitchdCtl())
	if err != nil {
		return err
	}
	return waitSocket(ctx, s.VswitchdCtl(), s.vswitchd)
}

// RestartVswitchd stops ovs-vswitchd (SIGTERM, by PID) and starts it again
// on the same database. The datapath is rebuilt from OVSDB; flows are not
// kept (a controller must reinstall them).
func (s *Site) RestartVswitchd(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vswitchd != nil {
		if err := s.vswitchd.stop(10 * time.Second); err != nil {
			return err
		}
	}
	return s.startVswitchdLocked(ctx)
}

// VswitchdPID is the PID of the site's ovs-vswitchd (0 when not running).
func (s *Site) VswitchdPID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vswitchd == nil || !s.vswitchd.running() {
		return 0
	}
	return s.vswitchd.pid()
}

// destroy stops the daemons and deletes the namespace.
func (s *Site) destroy(ctx context.Context) error {
	s.mu.Lock()
	var errs []error
	if s.vswitchd != nil {
		errs = append(errs, s.vswitchd.stop(10*time.Second))
	}
	if s.ovsdb != nil {
		errs = append(errs, s.ovsdb.stop(10*time.Second))
	}
	s.mu.Unlock()
	errs = append(errs, deleteNetns(ctx, s.NS))
	return errors.Join(errs...)
}

// Vsctl runs ovs-vsctl against the site's database and returns its trimmed
// standard output.
func (s *Site) Vsctl(ctx context.Context, args ...string) (string, error) {
	a := append([]string{"--timeout=30", "--db=" + s.OVSDBEndpoint()}, args...)
	out, err := output(ctx, nil, "ovs-vsctl", a...)
	return strings.TrimSpace(out), err
}

// Ofctl runs ovs-ofctl with the site's OVS_RUNDIR (so a bridge name reaches
// its management socket), for example Ofctl(ctx, "-O", "OpenFlow13",
// "dump-flows", "br-int").
func (s *Site) Ofctl(ctx context.Context, args ...string) (string, error) {
	out, err := output(ctx, s.ovsEnv(), "ovs-ofctl", args...)
	return strings.TrimSpace(out), err
}

// Appctl runs ovs-appctl against the site's ovs-vswitchd.
func (s *Site) Appctl(ctx context.Context, args ...string) (string, error) {
	a := append([]string{"-t", s.VswitchdCtl()}, args...)
	out, err := output(ctx, nil, "ovs-appctl", a...)
	return strings.TrimSpace(out), err
}

// Exec runs a program in the site namespace and returns its output.
func (s *Site) Exec(ctx context.Context, name string, args ...string) (string, error) {
	return output(ctx, nil, "ip", append([]string{"netns", "exec", s.NS, name}, args...)...)
}

// Do runs fn on an OS thread switched into the site namespace; sockets fn
// opens belong to that namespace for their whole life.
func (s *Site) Do(fn func() error) error { return InNetns(s.NS, fn) }

// Listen opens a listener in the site namespace, for example the OpenFlow
// controller's "tcp", "127.0.0.1:0" (ovs-vswitchd runs in the namespace, so
// its loopback is the namespace's).
func (s *Site) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := s.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}
