package topology

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay"
)

// Endpoint is one VC node's attachment to the overlay, as the registry
// knows it.
type Endpoint struct {
	VC   string
	VLAN uint16
	// Site is where the node runs; PortName is its port on that site's
	// br-int.
	Site     string
	PortName string
	MAC      overlay.MAC
	// IP is the node's IPv4 address; the switches answer ARP for it. The
	// zero Addr means no ARP entry.
	IP netip.Addr
	// Internal: the port is an OVS internal port (overlay.Port.Internal).
	Internal bool
}

// The flow tables of the pipeline built by BuildDesired.
//
//	table 0 (classify): a VC port's untagged frames get the VC's tag and go
//	  to table 1, its ARP requests to table 2; a tunnel's frames (already
//	  tagged) go to table 1; anything else is dropped.
//	table 1 (forward): by (VLAN, destination MAC): to a local node's port,
//	  untagged, or to the tunnel of the next hop toward the node's site; a
//	  miss is dropped.
//	table 2 (ARP): requests for a VC address are answered in the switch
//	  from the registry; a miss is dropped.
const (
	TableClassify uint8 = 0
	TableForward  uint8 = 1
	TableARP      uint8 = 2
)

// Flow priorities.
const (
	PrioARPFromPort uint16 = 300 // table 0: a VC port's ARP requests
	PrioFromPort    uint16 = 200 // table 0: a VC port's other frames
	PrioFromTunnel  uint16 = 100 // table 0: frames from a tunnel
	PrioForward     uint16 = 100 // tables 1 and 2: per-node entries
	PrioDrop        uint16 = 0   // every table: drop what nothing matched
)

// tunnelPrefix is reserved for tunnel port names; endpoints may not use it.
const tunnelPrefix = "gre-"

// CleanEndpoints returns the endpoints BuildDesired uses, in canonical
// order, and a problem (wrapping ErrBadEndpoint) for each one it leaves out.
// The checks are global (independent of the site computing them), so every
// peer keeps the same set:
//   - VC, site and port names valid (port names 1-15 bytes, not "gre-…"),
//     VLAN 1-4094, unicast MAC, IPv4 or no IP;
//   - a VLAN belongs to one VC, the smallest VC name using it;
//   - within a VLAN, a MAC and an IP belong to one endpoint;
//   - within a site, a port name belongs to one endpoint;
//
// where "first" is by the canonical order (VLAN, VC, site, port, MAC, IP).
func CleanEndpoints(eps []Endpoint) ([]Endpoint, []error) {
	all := slices.Clone(eps)
	slices.SortFunc(all, compareEndpoints)
	all = slices.CompactFunc(all, func(a, b Endpoint) bool { return a == b })
	var problems []error
	bad := func(e Endpoint, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: %s at %s/%s (VC %s, VLAN %d, %s): %s", ErrBadEndpoint,
			e.MAC, e.Site, e.PortName, e.VC, e.VLAN, e.IP, fmt.Sprintf(format, args...)))
	}
	owner := map[uint16]string{}
	type vmac struct {
		vlan uint16
		mac  overlay.MAC
	}
	type vip struct {
		vlan uint16
		ip   netip.Addr
	}
	type sport struct{ site, port string }
	macs := map[vmac]bool{}
	ips := map[vip]bool{}
	ports := map[sport]bool{}
	var out []Endpoint
	for _, e := range all {
		switch {
		case coord.ValidName(e.VC) != nil:
			bad(e, "invalid VC name")
			continue
		case coord.ValidName(e.Site) != nil:
			bad(e, "invalid site name")
			continue
		case !overlay.ValidPortName(e.PortName) || strings.HasPrefix(e.PortName, tunnelPrefix):
			bad(e, "invalid port name (1-%d bytes, not starting with %q)", overlay.MaxPortName, tunnelPrefix)
			continue
		case e.VLAN < 1 || e.VLAN > 4094:
			bad(e, "VLAN out of range 1-4094")
			continue
		case e.MAC.IsZero() || e.MAC.IsMulticast():
			bad(e, "MAC is not unicast")
			continue
		case e.IP.IsValid() && (!e.IP.Is4() || e.IP.IsUnspecified() || e.IP.IsMulticast()):
			bad(e, "IP is not a unicast IPv4 address")
			continue
		}
		if o, ok := owner[e.VLAN]; ok && o != e.VC {
			bad(e, "VLAN %d belongs to VC %s", e.VLAN, o)
			continue
		}
		if macs[vmac{e.VLAN, e.MAC}] {
			bad(e, "duplicate MAC in VLAN")
			continue
		}
		if e.IP.IsValid() && ips[vip{e.VLAN, e.IP}] {
			bad(e, "duplicate IP in VLAN")
			continue
		}
		if ports[sport{e.Site, e.PortName}] {
			bad(e, "duplicate port name at site")
			continue
		}
		owner[e.VLAN] = e.VC
		macs[vmac{e.VLAN, e.MAC}] = true
		if e.IP.IsValid() {
			ips[vip{e.VLAN, e.IP}] = true
		}
		ports[sport{e.Site, e.PortName}] = true
		out = append(out, e)
	}
	return out, problems
}

func compareEndpoints(a, b Endpoint) int {
	return cmp.Or(
		cmp.Compare(a.VLAN, b.VLAN),
		strings.Compare(a.VC, b.VC),
		strings.Compare(a.Site, b.Site),
		strings.Compare(a.PortName, b.PortName),
		slices.Compare(a.MAC[:], b.MAC[:]),
		a.IP.Compare(b.IP),
		boolCompare(a.Internal, b.Internal),
	)
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

// BuildDesired computes the desired state of site's switch for generation
// from the graph and the VC endpoints (see the Table constants for the
// pipeline):
//   - a GRE tunnel to every other site of the graph (the full mesh), none
//     when site itself is not in the graph;
//   - a port for each endpoint at site, tagged with its VLAN;
//   - flows: local MACs to their ports, remote MACs to the tunnel of the
//     next hop toward their site (for every VLAN, so that transit sites
//     forward too; none when their site is unreachable), ARP answers for
//     every address of each VLAN that has a local port, and a drop at the
//     end of every table. A frame can only leave on a port of its own VLAN:
//     isolation by construction.
//
// Bad endpoints are left out and reported (see CleanEndpoints); the
// result always passes overlay.Desired.Validate.
func BuildDesired(g *Graph, site string, generation uint32, endpoints []Endpoint) (overlay.Desired, []error) {
	eps, problems := CleanEndpoints(endpoints)
	d := overlay.Desired{Site: site, Generation: generation}
	infra := overlay.NewCookie(0, generation)

	tunnelTo := map[string]string{} // remote site -> tunnel port
	if g.Has(site) {
		for _, name := range g.Sites() {
			if name == site {
				continue
			}
			s, _ := g.Site(name)
			t := overlay.Tunnel{RemoteSite: name, RemoteIP: s.Gateway, PortName: overlay.TunnelPortName(name)}
			d.Tunnels = append(d.Tunnels, t)
			tunnelTo[name] = t.PortName
		}
	}

	localVLANs := map[uint16]bool{}
	for _, e := range eps {
		if e.Site != site {
			continue
		}
		localVLANs[e.VLAN] = true
		d.Ports = append(d.Ports, overlay.Port{Name: e.PortName, VC: e.VC, VLAN: e.VLAN, MAC: e.MAC, IP: e.IP, Internal: e.Internal})
		c := overlay.NewCookie(e.VLAN, generation)
		d.Flows = append(d.Flows,
			overlay.Flow{Table: TableClassify, Priority: PrioARPFromPort, Cookie: c,
				Match:   overlay.Match{InPort: e.PortName, VLAN: overlay.VLANUntagged, EthType: overlay.EthTypeARP, ARPOp: overlay.ARPRequest},
				Actions: []overlay.Action{overlay.PushVLAN(e.VLAN), overlay.GotoTable(TableARP)}},
			overlay.Flow{Table: TableClassify, Priority: PrioFromPort, Cookie: c,
				Match:   overlay.Match{InPort: e.PortName, VLAN: overlay.VLANUntagged},
				Actions: []overlay.Action{overlay.PushVLAN(e.VLAN), overlay.GotoTable(TableForward)}},
			overlay.Flow{Table: TableForward, Priority: PrioForward, Cookie: c,
				Match:   overlay.Match{VLAN: overlay.VLANMatch(e.VLAN), EthDst: e.MAC},
				Actions: []overlay.Action{overlay.PopVLAN(), overlay.Output(e.PortName)}},
		)
	}
	for _, t := range d.Tunnels {
		d.Flows = append(d.Flows, overlay.Flow{Table: TableClassify, Priority: PrioFromTunnel, Cookie: infra,
			Match: overlay.Match{InPort: t.PortName}, Actions: []overlay.Action{overlay.GotoTable(TableForward)}})
	}
	for _, e := range eps {
		c := overlay.NewCookie(e.VLAN, generation)
		if e.Site != site {
			if hop, ok := g.NextHop(site, e.Site); ok {
				d.Flows = append(d.Flows, overlay.Flow{Table: TableForward, Priority: PrioForward, Cookie: c,
					Match: overlay.Match{VLAN: overlay.VLANMatch(e.VLAN), EthDst: e.MAC}, Actions: []overlay.Action{overlay.Output(tunnelTo[hop])}})
			}
		}
		if localVLANs[e.VLAN] && e.IP.IsValid() {
			d.Flows = append(d.Flows, overlay.Flow{Table: TableARP, Priority: PrioForward, Cookie: c,
				Match:   overlay.Match{VLAN: overlay.VLANMatch(e.VLAN), EthType: overlay.EthTypeARP, ARPOp: overlay.ARPRequest, ARPTPA: e.IP},
				Actions: []overlay.Action{overlay.PopVLAN(), overlay.ARPReplyFrom(e.MAC, e.IP)}})
		}
	}
	for _, t := range []uint8{TableClassify, TableForward, TableARP} {
		d.Flows = append(d.Flows, overlay.Flow{Table: t, Priority: PrioDrop, Cookie: infra})
	}
	return d, problems
}
