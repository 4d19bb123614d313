// Package ovstest builds a multi-site Open vSwitch fabric on one machine for
// tests: every site is a network namespace running its own ovsdb-server and
// ovs-vswitchd (userspace datapath, datapath_type=netdev, private
// OVS_RUNDIR/OVS_DBDIR/log directory), and a transit namespace routes
// between the sites as their "WAN".
//
// Layout of a fabric with run id R (for example "movs-3fa2c1"):
//
//	R-wan    transit namespace: one veth per site ("s<i>", 10.200.<i>.1/24),
//	         IPv4 forwarding on; CutLink adds "blackhole" policy rules for
//	         one pair of site subnets, so a single site-to-site link can be
//	         cut while both sites keep talking to every other site.
//	R-s<i>   site i: veth "wan0" is a port of bridge br-phy, whose own
//	         interface holds the site address 10.200.<i>.2/24 (the br-phy
//	         pattern userspace GRE needs), default route via the transit.
//	         br-phy's MAC is pinned (other-config:hwaddr).
//	R-<ep>   endpoints (virtual-cluster nodes): a namespace with "eth0" (MTU
//	         1400, tx checksum offload off so TCP survives the userspace
//	         datapath, IPv6 off) whose veth peer sits in the site namespace
//	         under a caller-chosen name, ready to be made a port of br-int.
//
// The harness does not create br-int: that is the job of the dataplane under
// test (or of BuildNormalMesh, a plain NORMAL-action baseline).
//
// Everything a fabric creates is removed by Close (NewT registers it with
// t.Cleanup, so it also runs when a test fails): daemons are stopped by the
// PIDs the harness started, namespaces deleted, the run directory removed.
// A run directory holds an owner file with the test process's PID; New first
// sweeps the leftovers of runs whose owner is gone (a crashed or killed test
// binary). Parallel runs use distinct run ids and never touch each other.
//
// Everything needs root and the openvswitch-switch, iproute2, ethtool and
// iputils-ping Debian packages; Available says what is missing and NewT
// skips the test with that reason.
package ovstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/sitenet"
)

// Sentinel errors.
var (
	// ErrNotAvailable: not root, or a required program is not installed.
	ErrNotAvailable = errors.New("ovstest: not available")
	// ErrClosed: the fabric was closed.
	ErrClosed = errors.New("ovstest: fabric closed")
	// ErrNoSite: no such site in the fabric.
	ErrNoSite = errors.New("ovstest: no such site")
	// ErrExists: a site, endpoint or cut with that name already exists.
	ErrExists = errors.New("ovstest: already exists")
	// ErrCommand: an external command failed (sitenet's sentinel).
	ErrCommand = sitenet.ErrCommand
)

// NamePrefix starts the name of every namespace and run directory the
// harness creates; the sweeper only ever looks at names with this prefix.
const NamePrefix = "movs-"

// DefaultBaseDir holds the run directories. It is short on purpose: OVS's
// unix sockets live there and socket paths are limited to 107 bytes.
// MUSUBI_OVSTEST_DIR overrides it (every run that should sweep the others'
// leftovers must use the same value).
const DefaultBaseDir = "/tmp/musubi-ovstest"

// Schema is the installed OVSDB schema the databases are created from.
const Schema = "/usr/share/openvswitch/vswitch.ovsschema"

// Names inside each site namespace (see internal/sitenet).
const (
	PhyBridge = sitenet.PhyBridge // underlay bridge; its interface holds the site address
	WANIface  = sitenet.WANIface  // the site's WAN veth, a port of br-phy
)

// requiredPrograms are looked up in PATH by Available.
var requiredPrograms = []string{"ip", "ovsdb-server", "ovs-vswitchd", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ethtool", "ping"}

// Available reports whether fabrics can be built here: the process must be
// root and the OVS, iproute2, ethtool and ping programs and the OVSDB schema
// installed. The error wraps ErrNotAvailable and names what is missing.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces)", ErrNotAvailable)
	}
	var missing []string
	for _, p := range requiredPrograms {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := os.Stat(Schema); err != nil {
		missing = append(missing, Schema)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s (apt-get install openvswitch-switch iproute2 ethtool iputils-ping)", ErrNotAvailable, strings.Join(missing, ", "))
	}
	return nil
}

// Options configures a fabric.
type Options struct {
	// Sites is the number of sites to create (default 3). More can be added
	// later with AddSite.
	Sites int
	// Logf receives progress messages (for example t.Logf); nil discards.
	Logf func(format string, args ...any)
	// BaseDir overrides DefaultBaseDir and MUSUBI_OVSTEST_DIR.
	BaseDir string
	// Keep leaves the run directory (databases, logs) in place after Close.
	Keep bool
}

func (o *Options) setDefaults() {
	if o.Sites <= 0 {
		o.Sites = 3
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.BaseDir == "" {
		o.BaseDir = os.Getenv("MUSUBI_OVSTEST_DIR")
	}
	if o.BaseDir == "" {
		o.BaseDir = DefaultBaseDir
	}
}

// Fabric is a set of sites joined by a transit namespace. Its methods are
// safe for concurrent use.
type Fabric struct {
	// ID is the run id, the prefix of every namespace of this fabric.
	ID string
	// TransitNS is the transit ("WAN") namespace.
	TransitNS string

	opts Options
	dir  string

	mu        sync.Mutex
	closed    bool
	sites     []*Site
	endpoints []*Endpoint
	cuts      map[[2]int]bool
	nextSite  int
}

// New builds a fabric of opts.Sites sites. It first sweeps leftovers of
// dead runs. On error everything created so far is removed.
func New(ctx context.Context, opts Options) (_ *Fabric, err error) {
	opts.setDefaults()
	if err := Available(); err != nil {
		return nil, err
	}
	if err := Sweep(opts.BaseDir, opts.Logf); err != nil {
		opts.Logf("ovstest: sweep: %v", err)
	}
	t0 := time.Now()
	id, err := newRunID()
	if err != nil {
		return nil, err
	}
	f := &Fabric{ID: id, TransitNS: id + "-wan", opts: opts, dir: filepath.Join(opts.BaseDir, id), cuts: map[[2]int]bool{}, nextSite: 1}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, fmt.Errorf("ovstest: %w", err)
	}
	if err := writeOwner(f.dir); err != nil {
		_ = os.RemoveAll(f.dir)
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	if err := f.createTransit(ctx); err != nil {
		return nil, err
	}
	for i := 0; i < opts.Sites; i++ {
		if _, err := f.AddSite(ctx); err != nil {
			return nil, err
		}
	}
	opts.Logf("ovstest: fabric %s with %d sites up in %v (dir %s)", id, opts.Sites, time.Since(t0).Round(time.Millisecond), f.dir)
	return f, nil
}

// NewT builds a fabric of n sites for a test and closes it in t.Cleanup.
// It skips the test when Available fails and fails it when the fabric does
// not come up within 2 minutes. When the test failed, Close first writes the
// tail of every OVS log to the test log.
func NewT(t testing.TB, n int) *Fabric {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := New(ctx, Options{Sites: n, Logf: t.Logf})
	if err != nil {
		t.Fatalf("build OVS fabric: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OVS logs:\n%s", f.LogTails(25))
		}
		if err := f.Close(); err != nil {
			t.Errorf("close OVS fabric: %v", err)
		}
	})
	return f
}

func newRunID() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ovstest: run id: %w", err)
	}
	return NamePrefix + hex.EncodeToString(b), nil
}

// Dir is the run directory (per-site OVS state and logs).
func (f *Fabric) Dir() string { return f.dir }

// Sites returns the fabric's sites in creation order.
func (f *Fabric) Sites() []*Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sites)
}

// Site returns the site with index i (1-based, as in its name "site<i>").
func (f *Fabric) Site(i int) (*Site, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sites {
		if s.Index == i {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: %d", ErrNoSite, i)
}

func (f *Fabric) createTransit(ctx context.Context) error {
	return sitenet.CreateTransit(ctx, f.TransitNS)
}

// SubnetOf is the underlay subnet of site index i: 10.200.i.0/24, the
// transit router at .1 and the site (its br-phy) at .2.
func SubnetOf(i int) netip.Prefix { return sitenet.SubnetOf(i) }

// AddSite creates the next site (namespace, OVS instance, br-phy with its
// WAN port and address, route to the transit) and returns it.
func (f *Fabric) AddSite(ctx context.Context) (_ *Site, err error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	i := f.nextSite
	if i > sitenet.MaxSites {
		f.mu.Unlock()
		return nil, fmt.Errorf("ovstest: too many sites")
	}
	f.nextSite++
	s := newSite(f, i)
	f.sites = append(f.sites, s)
	f.mu.Unlock()
	defer func() {
		if err != nil {
			_ = f.RemoveSite(context.Background(), s)
		}
	}()
	if err := s.create(ctx); err != nil {
		return nil, fmt.Errorf("ovstest: site %s: %w", s.Name, err)
	}
	return s, nil
}

// RemoveSite stops the site's OVS, deletes its namespace (and with it its
// WAN link) and its endpoints.
func (f *Fabric) RemoveSite(ctx context.Context, s *Site) error {
	f.mu.Lock()
	idx := slices.Index(f.sites, s)
	if idx < 0 {
		f.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoSite, s.Name)
	}
	f.sites = slices.Delete(f.sites, idx, idx+1)
	var eps []*Endpoint
	f.endpoints = slices.DeleteFunc(f.endpoints, func(e *Endpoint) bool {
		if e.Site == s {
			eps = append(eps, e)
			return true
		}
		return false
	})
	f.mu.Unlock()
	var errs []error
	for _, e := range eps {
		errs = append(errs, deleteNetns(ctx, e.NS))
	}
	errs = append(errs, s.destroy(ctx))
	return errors.Join(errs...)
}

// CutLink cuts the WAN link between sites a and b in the transit namespace
// (blackhole policy rules for both directions). Both sites keep reaching
// every other site.
func (f *Fabric) CutLink(ctx context.Context, a, b *Site) error {
	key := pairKey(a, b)
	f.mu.Lock()
	if f.cuts[key] {
		f.mu.Unlock()
		return fmt.Errorf("%w: cut %s~%s", ErrExists, a.Name, b.Name)
	}
	f.cuts[key] = true
	f.mu.Unlock()
	for _, d := range [][2]*Site{{a, b}, {b, a}} {
		if err := runIn(ctx, f.TransitNS, "ip", "rule", "add", "pref", "100", "from", SubnetOf(d[0].Index).String(), "to", SubnetOf(d[1].Index).String(), "blackhole"); err != nil {
			return err
		}
	}
	f.opts.Logf("ovstest: cut WAN link %s~%s", a.Name, b.Name)
	return nil
}

// RestoreLink undoes CutLink.
func (f *Fabric) RestoreLink(ctx context.Context, a, b *Site) error {
	key := pairKey(a, b)
	f.mu.Lock()
	delete(f.cuts, key)
	f.mu.Unlock()
	var errs []error
	for _, d := range [][2]*Site{{a, b}, {b, a}} {
		errs = append(errs, runIn(ctx, f.TransitNS, "ip", "rule", "del", "pref", "100", "from", SubnetOf(d[0].Index).String(), "to", SubnetOf(d[1].Index).String(), "blackhole"))
	}
	f.opts.Logf("ovstest: restored WAN link %s~%s", a.Name, b.Name)
	return errors.Join(errs...)
}

func pairKey(a, b *Site) [2]int {
	if a.Index > b.Index {
		a, b = b, a
	}
	return [2]int{a.Index, b.Index}
}

// EndpointSpec describes an endpoint (a virtual-cluster node).
type EndpointSpec struct {
	// Name is unique within the fabric; the namespace is "<fabric id>-<Name>".
	Name string
	// Port is the name of the veth end in the site namespace (the OVS port
	// to be; at most 15 bytes). Default: Name.
	Port string
	// MAC of eth0. Default: a locally administered address derived from the
	// fabric and the endpoint's position.
	MAC net.HardwareAddr
	// Addr of eth0, for example 10.0.0.11/24.
	Addr netip.Prefix
	// MTU of eth0 (default 1400: room for GRE and a VLAN tag).
	MTU int
}

// AddEndpoint creates an endpoint namespace at site s.
func (f *Fabric) AddEndpoint(ctx context.Context, s *Site, spec EndpointSpec) (_ *Endpoint, err error) {
	if spec.Port == "" {
		spec.Port = spec.Name
	}
	if spec.Name == "" || len(spec.Port) > 15 || strings.ContainsAny(spec.Name+spec.Port, "/ ") {
		return nil, fmt.Errorf("ovstest: bad endpoint name %q / port %q", spec.Name, spec.Port)
	}
	if spec.MTU <= 0 {
		spec.MTU = 1400
	}
	if !spec.Addr.IsValid() {
		return nil, fmt.Errorf("ovstest: endpoint %s: no address", spec.Name)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	if !slices.Contains(f.sites, s) {
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNoSite, s.Name)
	}
	for _, e := range f.endpoints {
		if e.Name == spec.Name || (e.Site == s && e.Port == spec.Port) {
			f.mu.Unlock()
			return nil, fmt.Errorf("%w: endpoint %s", ErrExists, spec.Name)
		}
	}
	if spec.MAC == nil {
		spec.MAC = net.HardwareAddr{0x02, 0x6d, 0x65, byte(s.Index), byte(len(f.endpoints) >> 8), byte(len(f.endpoints))}
	}
	e := &Endpoint{Name: spec.Name, NS: f.ID + "-" + spec.Name, Port: spec.Port, MAC: spec.MAC, Addr: spec.Addr, Site: s, f: f}
	f.endpoints = append(f.endpoints, e)
	f.mu.Unlock()
	defer func() {
		if err != nil {
			_ = f.RemoveEndpoint(context.Background(), e)
		}
	}()
	if err := e.create(ctx, spec.MTU); err != nil {
		return nil, fmt.Errorf("ovstest: endpoint %s: %w", e.Name, err)
	}
	return e, nil
}

// RemoveEndpoint deletes the endpoint's namespace (its veth goes with it;
// the OVS port, if any, stays until the dataplane removes it).
func (f *Fabric) RemoveEndpoint(ctx context.Context, e *Endpoint) error {
	f.mu.Lock()
	f.endpoints = slices.DeleteFunc(f.endpoints, func(x *Endpoint) bool { return x == e })
	f.mu.Unlock()
	return deleteNetns(ctx, e.NS)
}

// Endpoints returns the fabric's endpoints in creation order.
func (f *Fabric) Endpoints() []*Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.endpoints)
}

// LogTails returns the last n lines of every site's OVS logs.
func (f *Fabric) LogTails(n int) string {
	var b strings.Builder
	for _, s := range f.Sites() {
		for _, name := range []string{"ovsdb-server.log", "ovs-vswitchd.log"} {
			data, err := os.ReadFile(filepath.Join(s.Dir, name))
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			if len(lines) > n {
				lines = lines[len(lines)-n:]
			}
			fmt.Fprintf(&b, "--- %s %s\n%s\n", s.Name, name, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

// Close stops every daemon the fabric started, deletes every namespace it
// created and removes its run directory (unless Options.Keep). It is safe to
// call more than once.
func (f *Fabric) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	sites, eps := f.sites, f.endpoints
	f.sites, f.endpoints = nil, nil
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, e := range eps {
		errs = append(errs, deleteNetns(ctx, e.NS))
	}
	for _, s := range sites {
		errs = append(errs, s.destroy(ctx))
	}
	errs = append(errs, deleteNetns(ctx, f.TransitNS))
	// Anything else with our run id (for example from an interrupted
	// AddEndpoint) goes too.
	if names, err := listNetns(); err == nil {
		sort.Strings(names)
		for _, n := range names {
			if strings.HasPrefix(n, f.ID+"-") {
				errs = append(errs, deleteNetns(ctx, n))
			}
		}
	}
	if !f.opts.Keep {
		errs = append(errs, os.RemoveAll(f.dir))
	} else {
		f.opts.Logf("ovstest: kept %s", f.dir)
	}
	return errors.Join(errs...)
}
