package lifecycle

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/reserve"
	"github.com/musubi-fabric/musubi/overlay"
)

// Network is how virtual nodes are addressed on their VC's network. Every
// VC has a VLAN of its own, so every VC uses the same subnet; the address
// and MAC of a node follow from its index in the placement, so every peer
// computes the same ones for the whole VC.
type Network struct {
	// Subnet holds the nodes' addresses (default DefaultSubnet).
	Subnet netip.Prefix
	// First is the host number of node 0 in Subnet (default 10); node i
	// gets First+i.
	First int
	// MTU of the nodes' interfaces (0: the backends' default).
	MTU int
}

// DefaultSubnet is the nodes' default subnet.
var DefaultSubnet = netip.MustParsePrefix("10.64.0.0/16")

func (n Network) withDefaults() Network {
	if !n.Subnet.IsValid() {
		n.Subnet = DefaultSubnet
	}
	n.Subnet = n.Subnet.Masked()
	if n.First <= 0 {
		n.First = 10
	}
	return n
}

func (n Network) validate() error {
	if !n.Subnet.Addr().Is4() || n.Subnet.Bits() < 8 || n.Subnet.Bits() > 30 {
		return fmt.Errorf("%w: subnet %s (want IPv4 /8-/30)", ErrConfig, n.Subnet)
	}
	return nil
}

// addr is node i's address with the subnet's prefix length.
func (n Network) addr(i int) (netip.Prefix, error) {
	size := uint64(1) << (32 - n.Subnet.Bits())
	h := uint64(n.First) + uint64(i)
	if h >= size-1 {
		return netip.Prefix{}, fmt.Errorf("%w: node %d does not fit in %s from host %d", ErrConfig, i, n.Subnet, n.First)
	}
	b := n.Subnet.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(h)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), n.Subnet.Bits()), nil
}

// NodeMAC is the MAC of node i of a VC: locally administered, unicast,
// three bytes of a hash of the VC's name and request id (so a VC admitted
// again under the same name gets new MACs and stale ARP entries do not
// matter) and the index.
func NodeMAC(vc, requestID string, i int) overlay.MAC {
	sum := sha256.Sum256([]byte("musubi-node-mac\x00" + vc + "\x00" + requestID))
	return overlay.MAC{0x02, sum[0], sum[1], sum[2], byte(i >> 8), byte(i)}
}

// NodePlan is one node of this site's share of a VC.
type NodePlan struct {
	VC   string
	Node string
	// Index is the node's position in the placement.
	Index int
	// Host and Storage are its compute host and its volume's storage host
	// ("" without a disk).
	Host, Storage string
	Site          string
	Frontend      bool
	VLAN          uint16
	MAC           overlay.MAC
	Addr          netip.Prefix
	MTU           int
	MemoryMiB     int64
	VCPUs         int64
	DiskBytes     int64
	// Image names the VC's application image.
	Image string
	// RequestID is the reservation's request id.
	RequestID string
}

// Name is "<vc>/<node>".
func (n NodePlan) Name() string { return n.VC + "/" + n.Node }

// HasDisk reports whether the node has a volume.
func (n NodePlan) HasDisk() bool { return n.Storage != "" && n.DiskBytes > 0 }

// VCPlan is a VC as this site sees it: its reservation and its share.
type VCPlan struct {
	VC        string
	RequestID string
	State     reserve.State
	Window    admission.Window
	// Sites are every site of the placement (sorted).
	Sites []string
	// Nodes are the nodes placed on this site, in placement order.
	Nodes []NodePlan
	// Total is the number of nodes of the whole VC.
	Total int
}

// Share computes site's share of rec.
func Share(rec reserve.Record, site string, net Network) (VCPlan, error) {
	net = net.withDefaults()
	p := VCPlan{VC: rec.VC, RequestID: rec.RequestID, State: rec.State, Window: rec.Window,
		Sites: rec.Placement.Sites(), Total: len(rec.Placement.Nodes)}
	if rec.Placement.VLAN < admission.MinVLAN || rec.Placement.VLAN > admission.MaxVLAN {
		return p, fmt.Errorf("lifecycle: %s: VLAN %d out of range", rec.VC, rec.Placement.VLAN)
	}
	for i, n := range rec.Placement.Nodes {
		if n.Site != site {
			continue
		}
		addr, err := net.addr(i)
		if err != nil {
			return p, err
		}
		np := NodePlan{
			VC: rec.VC, Node: n.Name, Index: i, Host: n.Host, Storage: n.Storage, Site: n.Site, Frontend: n.Frontend,
			VLAN: uint16(rec.Placement.VLAN), MAC: NodeMAC(rec.VC, rec.RequestID, i), Addr: addr, MTU: net.MTU,
			MemoryMiB: rec.Placement.MemoryMiB, VCPUs: rec.Placement.VCPUs, DiskBytes: rec.Placement.DiskBytes,
			Image: rec.Request.Image, RequestID: rec.RequestID,
		}
		if np.DiskBytes == 0 {
			np.Storage = ""
		}
		p.Nodes = append(p.Nodes, np)
	}
	return p, nil
}

// Goal is what the reconciler wants of a VC's share at an instant.
type Goal int

// Goals.
const (
	// GoalNone: nothing to do yet (the window has not started, or this
	// site has no share and nothing of the VC is on the host).
	GoalNone Goal = iota
	// GoalUp: the share must exist and be ready.
	GoalUp
	// GoalDown: nothing of the VC may remain on this site.
	GoalDown
)

func (g Goal) String() string {
	switch g {
	case GoalUp:
		return "up"
	case GoalDown:
		return "down"
	}
	return "none"
}

// GoalAt is the goal for rec at instant t, for a site with or without a
// share.
func GoalAt(rec reserve.Record, t time.Time) Goal {
	switch {
	case rec.Active(t):
		return GoalUp
	case rec.Ended(t):
		return GoalDown
	}
	return GoalNone
}

// nextEvent is the first window boundary of rec strictly after t (zero
// when none).
func nextEvent(rec reserve.Record, t time.Time) time.Time {
	if rec.State == reserve.Cancelled {
		return time.Time{}
	}
	if t.Before(rec.Window.Start) {
		return rec.Window.Start
	}
	if t.Before(rec.Window.End) {
		return rec.Window.End
	}
	return time.Time{}
}

// InitiatorIQN is the iSCSI initiator name node vc/node presents (its
// volume's ACL admits only it). Names that are not valid IQN parts (upper
// case, '_') are hex-encoded so the result is always a valid IQN.
func InitiatorIQN(site, vc, node string) string {
	return "iqn.2026-11.org.musubi.node:" + iqnSafe(site) + ":" + iqnSafe(vc) + ":" + iqnSafe(node)
}

func iqnSafe(s string) string {
	ok := s != ""
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			ok = false
		}
	}
	if ok {
		return s
	}
	return "x" + strings.ToLower(fmt.Sprintf("%x", s))
}
