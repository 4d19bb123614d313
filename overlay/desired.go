package overlay

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
)

// Desired is the declarative state of ONE site's integration bridge (br-int:
// fail_mode=secure, its controller out-of-band), as the site's peer wants
// it. Apply makes the switch match it; see Dataplane for the exact promise.
type Desired struct {
	// Site is the name of the site whose switch this is.
	Site string
	// Generation identifies the controller incarnation that computed the
	// flows; every flow's cookie carries it. A peer takes a new generation
	// when it (re)starts, not on every change: Apply with a new generation
	// rewrites every flow's cookie, while changes within one generation touch
	// only the flows that differ.
	Generation uint32
	// Tunnels: one GRE port per remote site (BFD enabled).
	Tunnels []Tunnel
	// Ports: the VC node ports of this site.
	Ports []Port
	// Flows: every musubi-owned flow of the bridge.
	Flows []Flow
}

// Tunnel is a GRE port to one remote site: type=gre,
// options:remote_ip=RemoteIP, bfd:enable=true.
type Tunnel struct {
	RemoteSite string
	RemoteIP   netip.Addr
	// PortName is the OVS port and interface name, TunnelPortName(RemoteSite).
	PortName string
}

// Port is one VC node's port on br-int: an access port with the VC's VLAN
// tag (OVS `tag`, recorded for NORMAL-mode debugging; forwarding is by the
// flows, which push and pop the tag themselves).
type Port struct {
	// Name is the OVS port and interface name (a Linux interface name, at
	// most 15 bytes).
	Name string
	// VC names the virtual cluster; VLAN is its tag (1-4094).
	VC   string
	VLAN uint16
	// MAC and IP are the node's addresses (registry data; the flows route to
	// MAC and answer ARP for IP).
	MAC MAC
	IP  netip.Addr
	// Internal asks Apply to create the port as an OVS internal port
	// (type=internal), which OVS creates itself; otherwise Name is an existing
	// device (veth end or tap) that Apply attaches.
	Internal bool
}

// MaxPortName is the longest interface name Linux accepts (IFNAMSIZ-1).
const MaxPortName = 15

// TunnelPortName is the deterministic tunnel port name for a remote site:
// "gre-<site>", or when that is longer than MaxPortName,
// "gre-" + the site's first 5 bytes + "-" + 5 hex digits of a hash of the
// whole name, so every peer derives the same 15-byte name.
func TunnelPortName(remoteSite string) string {
	n := "gre-" + remoteSite
	if len(n) <= MaxPortName {
		return n
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(remoteSite)) // hash.Hash writes never fail
	return fmt.Sprintf("gre-%s-%05x", remoteSite[:5], h.Sum32()&0xfffff)
}

// ValidPortName reports whether n may name a port: 1-15 bytes of printable
// ASCII without '/', ':', quotes, backslash or spaces (Linux
// dev_valid_name, plus characters that OVS or its tools treat specially),
// and not "." or "..".
func ValidPortName(n string) bool {
	if n == "" || len(n) > MaxPortName || n == "." || n == ".." {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// PortNames returns the set of port names of d (ports and tunnels).
func (d Desired) PortNames() map[string]bool {
	s := make(map[string]bool, len(d.Ports)+len(d.Tunnels))
	for _, p := range d.Ports {
		s[p.Name] = true
	}
	for _, t := range d.Tunnels {
		s[t.PortName] = true
	}
	return s
}

// Validate checks d as a whole: unique, valid port names; unicast port
// MACs, unique within a VLAN; one tunnel per
// remote site with a valid address and its TunnelPortName; VLANs 1-4094;
// every flow valid, referring only to d's ports, cookie owned by musubi with
// d's generation, and no two flows with the same identity (Flow.Key).
// Errors wrap ErrInvalid.
func (d Desired) Validate() error {
	if strings.TrimSpace(d.Site) == "" {
		return fmt.Errorf("%w: no site name", ErrInvalid)
	}
	names := map[string]bool{}
	sites := map[string]bool{}
	for _, t := range d.Tunnels {
		if t.RemoteSite == "" || t.RemoteSite == d.Site {
			return fmt.Errorf("%w: tunnel %q: remote site %q", ErrInvalid, t.PortName, t.RemoteSite)
		}
		if sites[t.RemoteSite] {
			return fmt.Errorf("%w: two tunnels to site %q", ErrInvalid, t.RemoteSite)
		}
		sites[t.RemoteSite] = true
		if want := TunnelPortName(t.RemoteSite); t.PortName != want {
			return fmt.Errorf("%w: tunnel to %q is named %q, want %q", ErrInvalid, t.RemoteSite, t.PortName, want)
		}
		if !t.RemoteIP.IsValid() || t.RemoteIP.IsUnspecified() {
			return fmt.Errorf("%w: tunnel %q: remote_ip %v", ErrInvalid, t.PortName, t.RemoteIP)
		}
		if names[t.PortName] {
			return fmt.Errorf("%w: port name %q used twice", ErrInvalid, t.PortName)
		}
		names[t.PortName] = true
	}
	type vlanMAC struct {
		vlan uint16
		mac  MAC
	}
	macs := map[vlanMAC]string{}
	for _, p := range d.Ports {
		if !ValidPortName(p.Name) {
			return fmt.Errorf("%w: port name %q (1-%d bytes, no '/', ':', quotes or spaces)", ErrInvalid, p.Name, MaxPortName)
		}
		if names[p.Name] {
			return fmt.Errorf("%w: port name %q used twice", ErrInvalid, p.Name)
		}
		names[p.Name] = true
		if p.VC == "" {
			return fmt.Errorf("%w: port %q has no VC", ErrInvalid, p.Name)
		}
		if p.VLAN < 1 || p.VLAN > 4094 {
			return fmt.Errorf("%w: port %q: VLAN %d out of range 1-4094", ErrInvalid, p.Name, p.VLAN)
		}
		if p.MAC.IsZero() || p.MAC.IsMulticast() {
			return fmt.Errorf("%w: port %q: MAC %s is not a unicast address", ErrInvalid, p.Name, p.MAC)
		}
		if other, ok := macs[vlanMAC{p.VLAN, p.MAC}]; ok {
			return fmt.Errorf("%w: ports %q and %q share MAC %s on VLAN %d", ErrInvalid, other, p.Name, p.MAC, p.VLAN)
		}
		macs[vlanMAC{p.VLAN, p.MAC}] = p.Name
		if p.IP.IsValid() && !p.IP.Is4() {
			return fmt.Errorf("%w: port %q: IP %v is not IPv4", ErrInvalid, p.Name, p.IP)
		}
	}
	keys := make(map[string]bool, len(d.Flows))
	for _, f := range d.Flows {
		if err := f.Validate(names); err != nil {
			return err
		}
		if !f.Cookie.Owned() || f.Cookie.Generation() != d.Generation {
			return fmt.Errorf("%w: flow %s: cookie %s is not musubi's for generation %d", ErrInvalid, f.Key(), f.Cookie, d.Generation)
		}
		k := f.Key()
		if keys[k] {
			return fmt.Errorf("%w: two flows with identity %s", ErrInvalid, k)
		}
		keys[k] = true
	}
	return nil
}

// Clone returns a deep copy of d.
func (d Desired) Clone() Desired {
	d.Tunnels = append([]Tunnel(nil), d.Tunnels...)
	d.Ports = append([]Port(nil), d.Ports...)
	fl := make([]Flow, len(d.Flows))
	for i, f := range d.Flows {
		fl[i] = f.Clone()
	}
	d.Flows = fl
	return d
}
