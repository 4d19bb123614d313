package overlay

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Flow is one OpenFlow rule in musubi's small semantic language. The OVS
// implementation translates it to OpenFlow 1.3 (ports by name → OpenFlow
// port numbers, Actions → apply-actions plus an optional goto-table
// instruction); the fake stores it as is. Its identity on a switch is
// (Table, Priority, Match), as in OpenFlow: adding a flow with the same
// identity replaces the old one's cookie and actions.
type Flow struct {
	Table    uint8
	Priority uint16
	Cookie   Cookie
	Match    Match
	// Actions run in order. No actions means drop. GotoTable and ARPReply
	// may only be the last action.
	Actions []Action
}

// EtherTypes musubi matches on.
const (
	EthTypeIPv4 uint16 = 0x0800
	EthTypeARP  uint16 = 0x0806
)

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// VLANMatch says what a flow requires of a frame's 802.1Q tag.
// The zero value, VLANAny, matches every frame; VLANUntagged matches frames
// without a tag; a value 1-4094 matches frames tagged with that VID.
type VLANMatch uint16

const (
	// VLANAny matches tagged and untagged frames (the field is wildcarded).
	VLANAny VLANMatch = 0
	// VLANUntagged matches frames without an 802.1Q header (OpenFlow
	// vlan_vid=OFPVID_NONE).
	VLANUntagged VLANMatch = 0xffff
)

// Match selects frames. Zero-valued fields are wildcards: InPort "" (any
// port), VLAN VLANAny, EthDst zero MAC, EthType 0, ARPOp 0, ARPTPA invalid
// (the zero netip.Addr). ARPOp and ARPTPA require EthType EthTypeARP, as in
// OpenFlow. Match is comparable.
type Match struct {
	// InPort is the ingress port by name (a Port or Tunnel of the Desired
	// state); the controller resolves its OpenFlow port number.
	InPort  string
	VLAN    VLANMatch
	EthDst  MAC
	EthType uint16
	ARPOp   uint16
	// ARPTPA is the ARP target protocol address (IPv4).
	ARPTPA netip.Addr
}

// ActionKind enumerates the actions of the flow language.
type ActionKind uint8

// The actions. See the constructors for their exact OpenFlow meaning.
const (
	ActOutput ActionKind = iota + 1
	ActPushVLAN
	ActPopVLAN
	ActGotoTable
	ActARPReply
)

// Action is one step of a flow's action list. Use the constructors
// (Output, PushVLAN, PopVLAN, GotoTable, ARPReplyFrom); only the fields of
// the action's Kind are set. Action is comparable.
type Action struct {
	Kind ActionKind
	// Port is the egress port name (ActOutput).
	Port string
	// VLAN is the VID to push (ActPushVLAN).
	VLAN uint16
	// Table is the next table (ActGotoTable); it must be greater than the
	// flow's own table.
	Table uint8
	// MAC and IP are the answer of an ARP reply (ActARPReply): "IP is at MAC".
	MAC MAC
	IP  netip.Addr
}

// Output sends the frame, as modified so far, out of the named port. As in
// OpenFlow, a frame is never output to the port it came in on (use
// ARPReplyFrom to answer on the ingress port).
func Output(port string) Action { return Action{Kind: ActOutput, Port: port} }

// PushVLAN pushes an 802.1Q header (TPID 0x8100) with the given VID:
// OpenFlow push_vlan:0x8100 followed by set_field:vid|0x1000->vlan_vid.
func PushVLAN(vid uint16) Action { return Action{Kind: ActPushVLAN, VLAN: vid} }

// PopVLAN removes the outermost 802.1Q header.
func PopVLAN() Action { return Action{Kind: ActPopVLAN} }

// GotoTable continues processing in a later table (the OpenFlow goto_table
// instruction, after the apply-actions before it).
func GotoTable(t uint8) Action { return Action{Kind: ActGotoTable, Table: t} }

// ARPReplyFrom turns an ARP request for ip into the reply "ip is at mac"
// and sends it back out of the ingress port, all in the switch with OpenFlow
// actions (no packet-in):
//
//	move:eth_src->eth_dst, set_field:mac->eth_src, set_field:2->arp_op,
//	move:arp_sha->arp_tha, set_field:mac->arp_sha,
//	move:arp_spa->arp_tpa, set_field:ip->arp_spa, output:IN_PORT
//
// The flow must match EthTypeARP, ARPOp ARPRequest and ARPTPA ip.
func ARPReplyFrom(mac MAC, ip netip.Addr) Action {
	return Action{Kind: ActARPReply, MAC: mac, IP: ip}
}

// String renders the action as ovs-ofctl prints it.
func (a Action) String() string {
	switch a.Kind {
	case ActOutput:
		return "output:" + strconv.Quote(a.Port)
	case ActPushVLAN:
		return fmt.Sprintf("push_vlan:0x8100,set_field:%d->vlan_vid", uint32(a.VLAN)|0x1000)
	case ActPopVLAN:
		return "pop_vlan"
	case ActGotoTable:
		return fmt.Sprintf("goto_table:%d", a.Table)
	case ActARPReply:
		return fmt.Sprintf("move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:%s->eth_src,set_field:2->arp_op,"+
			"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:%s->arp_sha,"+
			"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:%s->arp_spa,IN_PORT", a.MAC, a.MAC, a.IP)
	default:
		return fmt.Sprintf("unknown_action(%d)", a.Kind)
	}
}

// String renders the match as ovs-ofctl prints it (without priority), for
// example `arp,in_port="vm1",vlan_tci=0x0000/0x1fff,arp_tpa=10.0.0.2,arp_op=1`.
// The empty match renders as "".
func (m Match) String() string {
	var parts []string
	switch m.EthType {
	case 0:
	case EthTypeARP:
		parts = append(parts, "arp")
	case EthTypeIPv4:
		parts = append(parts, "ip")
	default:
		parts = append(parts, fmt.Sprintf("dl_type=0x%04x", m.EthType))
	}
	if m.InPort != "" {
		parts = append(parts, "in_port="+strconv.Quote(m.InPort))
	}
	switch m.VLAN {
	case VLANAny:
	case VLANUntagged:
		parts = append(parts, "vlan_tci=0x0000/0x1fff")
	default:
		parts = append(parts, fmt.Sprintf("dl_vlan=%d", uint16(m.VLAN)))
	}
	if !m.EthDst.IsZero() {
		parts = append(parts, "dl_dst="+m.EthDst.String())
	}
	if m.ARPTPA.IsValid() {
		parts = append(parts, "arp_tpa="+m.ARPTPA.String())
	}
	if m.ARPOp != 0 {
		parts = append(parts, fmt.Sprintf("arp_op=%d", m.ARPOp))
	}
	return strings.Join(parts, ",")
}

// Key is the flow's identity on a switch: table, priority and match.
func (f Flow) Key() string {
	return fmt.Sprintf("table=%d, priority=%d,%s", f.Table, f.Priority, f.Match)
}

// ActionsString renders the action list as ovs-ofctl prints it ("drop" for
// none).
func (f Flow) ActionsString() string {
	if len(f.Actions) == 0 {
		return "drop"
	}
	s := make([]string, len(f.Actions))
	for i, a := range f.Actions {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// String renders the flow as one ovs-ofctl dump-flows line, without the
// counters: ` cookie=0x…, table=1, priority=100,dl_vlan=10,… actions=…`.
func (f Flow) String() string {
	m := f.Match.String()
	if m != "" {
		m = "," + m
	}
	return fmt.Sprintf(" cookie=%s, table=%d, priority=%d%s actions=%s", f.Cookie, f.Table, f.Priority, m, f.ActionsString())
}

// Equal reports whether two flows are identical (identity, cookie and
// actions).
func (f Flow) Equal(g Flow) bool {
	if f.Table != g.Table || f.Priority != g.Priority || f.Cookie != g.Cookie || f.Match != g.Match || len(f.Actions) != len(g.Actions) {
		return false
	}
	for i := range f.Actions {
		if f.Actions[i] != g.Actions[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy of f that shares no memory with it.
func (f Flow) Clone() Flow {
	f.Actions = append([]Action(nil), f.Actions...)
	return f
}

// Validate checks one flow on its own: field ranges, match prerequisites,
// action arguments and order. ports, if not nil, is the set of port names
// the flow may refer to (in_port and output).
func (f Flow) Validate(ports map[string]bool) error {
	m := f.Match
	if m.VLAN != VLANAny && m.VLAN != VLANUntagged && (m.VLAN < 1 || m.VLAN > 4094) {
		return fmt.Errorf("%w: flow %s: vlan %d out of range 1-4094", ErrInvalid, f.Key(), uint16(m.VLAN))
	}
	if (m.ARPOp != 0 || m.ARPTPA.IsValid()) && m.EthType != EthTypeARP {
		return fmt.Errorf("%w: flow %s: arp_op/arp_tpa need eth_type arp", ErrInvalid, f.Key())
	}
	if m.ARPTPA.IsValid() && !m.ARPTPA.Is4() {
		return fmt.Errorf("%w: flow %s: arp_tpa must be IPv4", ErrInvalid, f.Key())
	}
	if m.InPort != "" && ports != nil && !ports[m.InPort] {
		return fmt.Errorf("%w: flow %s: in_port %q is not a port of the desired state", ErrInvalid, f.Key(), m.InPort)
	}
	for i, a := range f.Actions {
		last := i == len(f.Actions)-1
		switch a.Kind {
		case ActOutput:
			if a.Port == "" {
				return fmt.Errorf("%w: flow %s: output without a port", ErrInvalid, f.Key())
			}
			if ports != nil && !ports[a.Port] {
				return fmt.Errorf("%w: flow %s: output to %q, not a port of the desired state", ErrInvalid, f.Key(), a.Port)
			}
		case ActPushVLAN:
			if a.VLAN < 1 || a.VLAN > 4094 {
				return fmt.Errorf("%w: flow %s: push_vlan %d out of range 1-4094", ErrInvalid, f.Key(), a.VLAN)
			}
		case ActPopVLAN:
		case ActGotoTable:
			if !last {
				return fmt.Errorf("%w: flow %s: goto_table must be the last action", ErrInvalid, f.Key())
			}
			if a.Table <= f.Table {
				return fmt.Errorf("%w: flow %s: goto_table:%d must go to a later table", ErrInvalid, f.Key(), a.Table)
			}
		case ActARPReply:
			if !last {
				return fmt.Errorf("%w: flow %s: the ARP reply must be the last action", ErrInvalid, f.Key())
			}
			if m.EthType != EthTypeARP || m.ARPOp != ARPRequest || m.ARPTPA != a.IP || !a.IP.Is4() {
				return fmt.Errorf("%w: flow %s: an ARP reply for %v needs match arp,arp_op=1,arp_tpa=%v", ErrInvalid, f.Key(), a.IP, a.IP)
			}
			if a.MAC.IsZero() || a.MAC.IsMulticast() {
				return fmt.Errorf("%w: flow %s: ARP reply with MAC %s", ErrInvalid, f.Key(), a.MAC)
			}
		default:
			return fmt.Errorf("%w: flow %s: unknown action kind %d", ErrInvalid, f.Key(), a.Kind)
		}
	}
	return nil
}
