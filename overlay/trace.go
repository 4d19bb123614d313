package overlay

import (
	"net/netip"
	"slices"
)

// Frame is an Ethernet frame as the flow language sees it, for Trace.
type Frame struct {
	EthSrc, EthDst MAC
	// VLANs is the 802.1Q tag stack, outermost first (empty: untagged).
	VLANs []uint16
	// EthType is the payload type after the tags.
	EthType uint16
	// ARP fields, meaningful when EthType is EthTypeARP.
	ARPOp          uint16
	ARPSHA, ARPTHA MAC
	ARPSPA, ARPTPA netip.Addr
}

// Clone returns a copy of f that shares no memory with it.
func (f Frame) Clone() Frame {
	f.VLANs = slices.Clone(f.VLANs)
	return f
}

// Emit is a frame leaving the switch through a port.
type Emit struct {
	Port  string
	Frame Frame
}

// Matches reports whether a frame that arrived on inPort matches m.
func (m Match) Matches(inPort string, f Frame) bool {
	if m.InPort != "" && m.InPort != inPort {
		return false
	}
	switch m.VLAN {
	case VLANAny:
	case VLANUntagged:
		if len(f.VLANs) != 0 {
			return false
		}
	default:
		if len(f.VLANs) == 0 || f.VLANs[0] != uint16(m.VLAN) {
			return false
		}
	}
	if !m.EthDst.IsZero() && m.EthDst != f.EthDst {
		return false
	}
	if m.EthType != 0 && m.EthType != f.EthType {
		return false
	}
	if m.ARPOp != 0 && (f.EthType != EthTypeARP || m.ARPOp != f.ARPOp) {
		return false
	}
	if m.ARPTPA.IsValid() && (f.EthType != EthTypeARP || m.ARPTPA != f.ARPTPA) {
		return false
	}
	return true
}

// Trace runs a frame that arrived on inPort through flows the way an
// OpenFlow 1.3 switch would (table 0 first; in each table the matching flow
// of highest priority, ties broken by the lowest Key since OpenFlow leaves
// them undefined; a table miss drops) and returns what leaves the switch,
// in order. It is the reference semantics of the flow language, used by the
// fake dataplane and by the topology tests.
func Trace(flows []Flow, inPort string, f Frame) []Emit {
	byTable := map[uint8][]Flow{}
	for _, fl := range flows {
		byTable[fl.Table] = append(byTable[fl.Table], fl)
	}
	f = f.Clone()
	var out []Emit
	table := uint8(0)
	for {
		var best *Flow
		for i := range byTable[table] {
			c := &byTable[table][i]
			if !c.Match.Matches(inPort, f) {
				continue
			}
			if best == nil || c.Priority > best.Priority || (c.Priority == best.Priority && c.Key() < best.Key()) {
				best = c
			}
		}
		if best == nil {
			return out
		}
		next := -1
		for _, a := range best.Actions {
			switch a.Kind {
			case ActOutput:
				if a.Port != inPort {
					out = append(out, Emit{Port: a.Port, Frame: f.Clone()})
				}
			case ActPushVLAN:
				f.VLANs = append([]uint16{a.VLAN}, f.VLANs...)
			case ActPopVLAN:
				if len(f.VLANs) > 0 {
					f.VLANs = f.VLANs[1:]
				}
			case ActGotoTable:
				if a.Table > table {
					next = int(a.Table)
				}
			case ActARPReply:
				if f.EthType == EthTypeARP {
					r := f.Clone()
					r.EthDst, r.EthSrc = f.EthSrc, a.MAC
					r.ARPOp = ARPReply
					r.ARPTHA, r.ARPSHA = f.ARPSHA, a.MAC
					r.ARPTPA, r.ARPSPA = f.ARPSPA, a.IP
					out = append(out, Emit{Port: inPort, Frame: r})
				}
			}
		}
		if next < 0 {
			return out
		}
		table = uint8(next)
	}
}
