package localfed

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/internal/sitenet"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	sitebootstrap "github.com/musubi-fabric/musubi/site-bootstrap"
)

// Defaults and fixed names.
const (
	DefaultDir        = "/var/lib/musubi-local"
	DefaultSites      = 3
	DefaultWANDelay   = 20 * time.Millisecond
	DefaultFederation = "local"
	DefaultBackend    = "netns"
	DefaultAPIPort    = 7080
	// MaxSites bounds --sites: one ZooKeeper voter per site.
	MaxSites = coord.MaxVoters
	// NetnsPrefix starts the name of every namespace Up makes.
	NetnsPrefix = "mlocal-"
	// TransitNetns is the transit ("WAN") namespace.
	TransitNetns = NetnsPrefix + "wan"
	// HostIface is the host's end of the veth into the transit.
	HostIface = NetnsPrefix + "h"
	// HostTransitIface is that veth's end in the transit.
	HostTransitIface = "host"
	// StateFile is the record of everything Up made, in the directory.
	StateFile = "local.json"
	// zkClientPort is the ZooKeeper client port site bootstrap uses.
	zkClientPort = sitebootstrap.DefaultClientPort
)

// sitePorts are the ports site bootstrap's daemons use on the site's
// address (ZooKeeper's client, quorum and election ports, tgtd's portal).
var sitePorts = []int{zkClientPort, sitebootstrap.DefaultQuorumPort, sitebootstrap.DefaultElectionPort, sitebootstrap.DefaultISCSIPort}

// Backends are the node backends a federation may record.
var Backends = []string{"netns", "qemu"}

// Host addressing: the host's veth into the transit, and the route to
// every site's link.
var (
	hostAddr    = netip.MustParsePrefix("10.200.0.2/24")
	transitHost = netip.MustParseAddr("10.200.0.1")
	hostRoute   = netip.MustParsePrefix("10.200.0.0/16")
)

// Options configure Up (and name the directory for the other commands).
type Options struct {
	// Dir holds everything (default DefaultDir). Keep it short: OVS's unix
	// sockets live under it (107 bytes).
	Dir string
	// Sites is the number of sites, 1 to MaxSites (default DefaultSites).
	Sites int
	// WANDelay is the one-way delay of each site's WAN link (a round trip
	// between two sites takes twice that); 0 for none (the CLI's default
	// is DefaultWANDelay). It needs the kernel's sch_netem; without it Up
	// says so and goes on.
	WANDelay time.Duration
	// Federation is the federation's name (default DefaultFederation).
	Federation string
	// Backend is the virtual node backend of the sites' provisioners
	// (provision.backend): netns (default) or qemu.
	Backend string
	// APIPort is the peers' API port on their WAN address (default
	// DefaultAPIPort).
	APIPort int
	// Keep leaves what a failed Up made in place (for a look; Down removes
	// it later).
	Keep bool
	// ReadyTimeout bounds the wait for the peers' readiness (default 3m).
	ReadyTimeout time.Duration
	// Exe is the musubi binary run in the namespaces (default: this
	// process's executable).
	Exe string
	// Out receives progress lines (default io.Discard).
	Out io.Writer
	// Logger receives details (default: discarded).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Sites == 0 {
		o.Sites = DefaultSites
	}
	if o.Federation == "" {
		o.Federation = DefaultFederation
	}
	if o.Backend == "" {
		o.Backend = DefaultBackend
	}
	if o.APIPort == 0 {
		o.APIPort = DefaultAPIPort
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// validate checks the options (after setDefaults). It does no I/O.
func (o *Options) validate() error {
	switch {
	case o.Sites < 1 || o.Sites > MaxSites:
		return fmt.Errorf("%w: --sites %d: use 1 to %d (one ZooKeeper voter each)", ErrInvalid, o.Sites, MaxSites)
	case o.WANDelay < 0 || o.WANDelay > 10*time.Second:
		return fmt.Errorf("%w: --wan-delay %s: use 0 (none) to 10s", ErrInvalid, o.WANDelay)
	case o.APIPort < 1 || o.APIPort > 65535 || slices.Contains(sitePorts, o.APIPort):
		return fmt.Errorf("%w: API port %d: use 1-65535 but none of the site's daemons' ports %v", ErrInvalid, o.APIPort, sitePorts)
	case !filepath.IsAbs(o.Dir) || filepath.Clean(o.Dir) == "/":
		return fmt.Errorf("%w: --dir %q: want an absolute path other than /", ErrInvalid, o.Dir)
	}
	// Site bootstrap's longest socket: <dir>/s<i>/ovs/ovs-vswitchd.ctl
	// plus OVS's own suffixes.
	if n := len(filepath.Join(o.Dir, "s"+strconv.Itoa(o.Sites), "ovs", "ovs-vswitchd.ctl")) + 8; n > 107 {
		return fmt.Errorf("%w: --dir %q is too long for the sites' unix sockets (107 bytes): choose a shorter one", ErrInvalid, o.Dir)
	}
	if err := coord.ValidName(o.Federation); err != nil {
		return fmt.Errorf("%w: --federation: %w", ErrInvalid, err)
	}
	known := false
	for _, b := range Backends {
		known = known || b == o.Backend
	}
	if !known {
		return fmt.Errorf("%w: --backend %q: want netns or qemu", ErrInvalid, o.Backend)
	}
	return nil
}

// Plan is what Up will build for o: the federation's State with nothing
// made yet (no sites recorded), and every site's names, addresses and
// paths. It does no I/O.
func Plan(o Options) (State, []Site, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return State{}, nil, err
	}
	dir := filepath.Clean(o.Dir)
	st := State{
		Version: stateVersion, Dir: dir, Federation: o.Federation, Backend: o.Backend,
		WANDelay: o.WANDelay.String(), APIPort: o.APIPort,
		NodeNetnsPrefix: netns.DefaultPrefix,
		TokenFile:       filepath.Join(dir, "admin.token"),
		TokensFile:      filepath.Join(dir, "api-tokens.json"),
	}
	sites := make([]Site, 0, o.Sites)
	for i := 1; i <= o.Sites; i++ {
		sites = append(sites, PlanSite(dir, i, o.APIPort))
	}
	return st, sites, nil
}

// PlanSite is site i's record before anything is made.
func PlanSite(dir string, i, apiPort int) Site {
	name := "s" + strconv.Itoa(i)
	sd := filepath.Join(dir, name)
	addr := sitenet.SiteAddr(i)
	return Site{
		Name: name, Index: i, Netns: NetnsPrefix + name, Dir: sd,
		Addr: addr.String(), Gateway: sitenet.GatewayOf(i).String(), TransitIface: name,
		API:        "http://" + netip.AddrPortFrom(addr.Addr(), uint16(apiPort)).String(),
		Socket:     filepath.Join(sd, "peer.sock"),
		PeerConfig: filepath.Join(sd, "musubi.json"),
		PeerLog:    filepath.Join(sd, "peer.log"),
		BootLog:    filepath.Join(sd, "bootstrap.log"),
	}
}

// link is the site's WAN link as internal/sitenet builds it.
func (s Site) link() sitenet.Link {
	addr, _ := netip.ParsePrefix(s.Addr)
	gw, _ := netip.ParseAddr(s.Gateway)
	return sitenet.Link{SiteNS: s.Netns, TransitNS: TransitNetns, TransitIface: s.TransitIface, Addr: addr, Gateway: gw}
}

// IP is the site's address without its prefix length.
func (s Site) IP() string {
	p, err := netip.ParsePrefix(s.Addr)
	if err != nil {
		return s.Addr
	}
	return p.Addr().String()
}

// ZKAddr is the site's ZooKeeper client address.
func (s Site) ZKAddr() string { return s.IP() + ":" + strconv.Itoa(zkClientPort) }

// hostLink is the host's veth into the transit.
func hostLink() sitenet.HostLink {
	return sitenet.HostLink{TransitNS: TransitNetns, HostIface: HostIface, TransitIface: HostTransitIface,
		HostAddr: hostAddr, TransitAddr: transitHost, Route: hostRoute}
}

// BootArgs are the site bootstrap command line of site s (musubi's
// arguments): init for the first site, join through the first site's
// ZooKeeper server with its token for the others.
func BootArgs(st State, s Site) []string {
	args := []string{"site", "init"}
	if s.Index > 1 {
		first := PlanSite(st.Dir, 1, st.APIPort)
		args = []string{"site", "join", "--seed", first.ZKAddr(), "--token-file", filepath.Join(first.Dir, "federation.token")}
	} else {
		args = append(args, "--federation", st.Federation)
	}
	return append(args, "--site", s.Name, "--addr", s.IP(), "--state-dir", s.Dir,
		// One OVS instance per namespace: the userspace datapath (the
		// kernel module, where there is one, is not per instance).
		"--ovs-datapath", "netdev", "--wait-timeout", "60s")
}
