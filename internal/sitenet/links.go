package sitenet

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"
)

// CreateTransit creates the transit ("WAN") namespace: loopback up and
// IPv4 forwarding on, so it routes between the sites' links.
func CreateTransit(ctx context.Context, ns string) error {
	if err := AddNetns(ctx, ns); err != nil {
		return err
	}
	return RunIn(ctx, ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
}

// Link is one site's WAN link: a veth pair whose end WANIface is in the
// site namespace and whose other end, TransitIface, is in the transit
// namespace and holds Gateway.
type Link struct {
	SiteNS       string
	TransitNS    string
	TransitIface string       // at most 15 bytes
	Addr         netip.Prefix // the site's address, e.g. SiteAddr(i)
	Gateway      netip.Addr   // the transit's address on the link, e.g. GatewayOf(i)
}

// AddLink creates the link's veth pair, gives the transit end the gateway
// address (checksum offload off, see the package doc) and brings both ends
// up. The site end has no address yet: see AssignWANAddr and AttachPhy.
// Both namespaces must exist.
func AddLink(ctx context.Context, l Link) error {
	if err := Run(ctx, "ip", "link", "add", WANIface, "netns", l.SiteNS, "type", "veth", "peer", "name", l.TransitIface, "netns", l.TransitNS); err != nil {
		return err
	}
	gw := netip.PrefixFrom(l.Gateway, l.Addr.Bits()).String()
	for _, c := range [][]string{
		{"ip", "addr", "add", gw, "dev", l.TransitIface},
		{"ethtool", "-K", l.TransitIface, "tx", "off"},
		{"ip", "link", "set", l.TransitIface, "up"},
	} {
		if err := RunIn(ctx, l.TransitNS, c[0], c[1:]...); err != nil {
			return err
		}
	}
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf." + WANIface + ".disable_ipv6=1"},
		{"ip", "link", "set", WANIface, "up"},
	} {
		if err := RunIn(ctx, l.SiteNS, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// AssignWANAddr puts the site's address on its WAN veth, with the default
// route via the transit: the site is reachable before it has an Open
// vSwitch (site bootstrap starts it). AttachPhy later moves the address
// onto br-phy.
func AssignWANAddr(ctx context.Context, l Link) error {
	return IPBatch(ctx, l.SiteNS, [][]string{
		{"addr", "replace", l.Addr.String(), "dev", WANIface},
		{"route", "replace", "default", "via", l.Gateway.String(), "dev", WANIface},
	})
}

// AttachPhy builds the br-phy layout in the site namespace with the site's
// Open vSwitch (OVSDB endpoint db, e.g. "unix:/.../db.sock"): bridge
// PhyBridge (userspace datapath, MAC pinned to mac) with the WAN veth as
// its port, the site's address on the bridge's interface (moved from the
// veth when AssignWANAddr put it there) and the default route via the
// transit. The address moves in one ip -batch, so daemons bound to it
// keep serving (their TCP connections see a few lost packets at most).
func AttachPhy(ctx context.Context, db string, l Link, mac net.HardwareAddr) error {
	if _, err := Output(ctx, nil, "ovs-vsctl", "--timeout=30", "--db="+db,
		"--may-exist", "add-br", PhyBridge,
		"--", "set", "bridge", PhyBridge, "datapath_type=netdev", "other-config:hwaddr="+mac.String(),
		"--", "--may-exist", "add-port", PhyBridge, WANIface); err != nil {
		return err
	}
	// Peers learn the bridge's MAC from a gratuitous ARP when it comes up.
	if err := RunIn(ctx, l.SiteNS, "sysctl", "-qw", "net.ipv4.conf."+PhyBridge+".arp_notify=1"); err != nil {
		return err
	}
	cmds := [][]string{}
	if has, err := hasAddr(ctx, l.SiteNS, WANIface, l.Addr); err != nil {
		return err
	} else if has {
		cmds = append(cmds, []string{"addr", "del", l.Addr.String(), "dev", WANIface})
	}
	cmds = append(cmds,
		[]string{"addr", "replace", l.Addr.String(), "dev", PhyBridge},
		[]string{"link", "set", PhyBridge, "up"},
		[]string{"route", "replace", "default", "via", l.Gateway.String(), "dev", PhyBridge},
	)
	return IPBatch(ctx, l.SiteNS, cmds)
}

// hasAddr reports whether dev in namespace ns holds addr.
func hasAddr(ctx context.Context, ns, dev string, addr netip.Prefix) (bool, error) {
	out, err := Output(ctx, nil, "ip", "-n", ns, "-o", "addr", "show", "dev", dev)
	if err != nil {
		return false, err
	}
	for _, f := range strings.Fields(out) {
		if f == addr.String() {
			return true, nil
		}
	}
	return false, nil
}

// HostLink joins the caller's namespace (the host) to the transit
// namespace: veth HostIface (host side, HostAddr) to TransitIface (transit
// side, TransitAddr), and a host route to Route via the transit, so the
// host reaches the sites' addresses.
type HostLink struct {
	TransitNS    string
	HostIface    string
	TransitIface string
	HostAddr     netip.Prefix
	TransitAddr  netip.Addr
	Route        netip.Prefix
}

// AddHostLink creates the host link and the host's route (checksum offload
// off on both ends, see the package doc).
func AddHostLink(ctx context.Context, h HostLink) error {
	if err := Run(ctx, "ip", "link", "add", h.HostIface, "type", "veth", "peer", "name", h.TransitIface, "netns", h.TransitNS); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"ip", "addr", "add", netip.PrefixFrom(h.TransitAddr, h.HostAddr.Bits()).String(), "dev", h.TransitIface},
		{"ethtool", "-K", h.TransitIface, "tx", "off"},
		{"ip", "link", "set", h.TransitIface, "up"},
	} {
		if err := RunIn(ctx, h.TransitNS, c[0], c[1:]...); err != nil {
			return err
		}
	}
	if err := Run(ctx, "ethtool", "-K", h.HostIface, "tx", "off"); err != nil {
		return err
	}
	return IPBatch(ctx, "", [][]string{
		{"addr", "add", h.HostAddr.String(), "dev", h.HostIface},
		{"link", "set", h.HostIface, "up"},
		{"route", "replace", h.Route.String(), "via", h.TransitAddr.String(), "dev", h.HostIface},
	})
}

// LinkExists reports whether interface name exists in namespace ns ("" for
// the caller's).
func LinkExists(ctx context.Context, ns, name string) bool {
	args := []string{"link", "show", "dev", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return Run(ctx, "ip", args...) == nil
}

// DeleteLink deletes interface name in namespace ns ("" for the caller's)
// if it exists (a veth's peer goes with it). An interface that vanishes
// meanwhile (a veth whose peer's namespace is being destroyed: the kernel
// does that asynchronously) is not an error.
func DeleteLink(ctx context.Context, ns, name string) error {
	if !LinkExists(ctx, ns, name) {
		return nil
	}
	args := []string{"link", "del", "dev", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if err := Run(ctx, "ip", args...); err != nil && LinkExists(ctx, ns, name) {
		return err
	}
	return nil
}

// SetDelay adds a netem qdisc delaying every frame that leaves dev in
// namespace ns by d (a WAN's one-way latency). It fails when the kernel has
// no sch_netem; the error says so.
func SetDelay(ctx context.Context, ns, dev string, d time.Duration) error {
	return RunIn(ctx, ns, "tc", "qdisc", "replace", "dev", dev, "root", "netem", "delay", d.String())
}

// RoutesOverlapping lists the routes of the caller's namespace whose
// destination overlaps p ("default" excluded), as `ip route` prints them.
func RoutesOverlapping(ctx context.Context, p netip.Prefix) ([]string, error) {
	out, err := Output(ctx, nil, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	var hits []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unreachable" || dst == "blackhole" || dst == "prohibit" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		q, err := netip.ParsePrefix(dst)
		if err != nil || !q.Addr().Is4() {
			continue
		}
		if q.Overlaps(p) {
			hits = append(hits, strings.TrimSpace(line))
		}
	}
	return hits, nil
}
