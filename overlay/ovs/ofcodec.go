package ovs

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	of13 "antrea.io/libOpenflow/openflow13"
	"antrea.io/libOpenflow/util"

	"github.com/musubi-fabric/musubi/overlay"
)

// OpenFlow 1.3 wire constants used by the codec (ofp_* names in the spec).
const (
	ofpVersion13 = 4

	ofptHello        = 0
	ofptError        = 1
	ofptEchoRequest  = 2
	ofptEchoReply    = 3
	ofptFeaturesRep  = 6
	ofptPortStatus   = 12
	ofptMultipartRep = 19
	ofptBarrierRep   = 21

	ofpmpFlow     = 1
	ofpmpPortDesc = 13
	ofpmpfMore    = 1

	ofpitGotoTable    = 1
	ofpitApplyActions = 4

	ofpatOutput       = 0
	ofpatPushVLAN     = 17
	ofpatPopVLAN      = 18
	ofpatSetField     = 25
	ofpatExperimenter = 0xffff

	nxVendorID   = 0x00002320
	nxastRegMove = 6

	ofppInPort = 0xfffffff8
	ofppMax    = 0xffffff00

	ofpvidPresent = 0x1000

	oxmClassNXM0  = 0x0000
	oxmClassNXM1  = 0x0001
	oxmClassBasic = 0x8000

	// ofp_flow_stats: the fixed part before the match.
	flowStatsFixed = 48
)

// field names a match or set_field field independent of how it was encoded
// (OVS may answer with the NXM form of a field we sent as OXM, or the other
// way round).
type field int

const (
	fUnknown field = iota
	fInPort
	fEthDst
	fEthSrc
	fEthType
	fVLANVID
	fARPOp
	fARPSPA
	fARPTPA
	fARPSHA
	fARPTHA
)

var fieldNames = map[field]string{
	fInPort: "in_port", fEthDst: "eth_dst", fEthSrc: "eth_src", fEthType: "eth_type", fVLANVID: "vlan_vid",
	fARPOp: "arp_op", fARPSPA: "arp_spa", fARPTPA: "arp_tpa", fARPSHA: "arp_sha", fARPTHA: "arp_tha",
}

// oxmField maps a (class, field) pair to a field.
func oxmField(class uint16, f uint8) field {
	switch class {
	case oxmClassBasic:
		switch f {
		case of13.OXM_FIELD_IN_PORT:
			return fInPort
		case of13.OXM_FIELD_ETH_DST:
			return fEthDst
		case of13.OXM_FIELD_ETH_SRC:
			return fEthSrc
		case of13.OXM_FIELD_ETH_TYPE:
			return fEthType
		case of13.OXM_FIELD_VLAN_VID:
			return fVLANVID
		case of13.OXM_FIELD_ARP_OP:
			return fARPOp
		case of13.OXM_FIELD_ARP_SPA:
			return fARPSPA
		case of13.OXM_FIELD_ARP_TPA:
			return fARPTPA
		case of13.OXM_FIELD_ARP_SHA:
			return fARPSHA
		case of13.OXM_FIELD_ARP_THA:
			return fARPTHA
		}
	case oxmClassNXM0:
		switch f {
		case 1:
			return fEthDst
		case 2:
			return fEthSrc
		case 15:
			return fARPOp
		case 16:
			return fARPSPA
		case 17:
			return fARPTPA
		}
	case oxmClassNXM1:
		switch f {
		case 17:
			return fARPSHA
		case 18:
			return fARPTHA
		}
	}
	return fUnknown
}

// oxm is one decoded OXM TLV.
type oxm struct {
	class   uint16
	field   uint8
	hasMask bool
	value   []byte
	mask    []byte
}

func (o oxm) id() field { return oxmField(o.class, o.field) }

func (o oxm) String() string {
	name := fieldNames[o.id()]
	if name == "" {
		name = fmt.Sprintf("oxm(0x%04x:%d)", o.class, o.field)
	}
	if o.hasMask {
		return fmt.Sprintf("%s=0x%x/0x%x", name, o.value, o.mask)
	}
	return fmt.Sprintf("%s=0x%x", name, o.value)
}

// parseOXM decodes the OXM TLVs in b (no padding).
func parseOXM(b []byte) ([]oxm, error) {
	var out []oxm
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated OXM header", ErrProtocol)
		}
		class := binary.BigEndian.Uint16(b)
		fm := b[2]
		n := int(b[3])
		if len(b) < 4+n {
			return nil, fmt.Errorf("%w: truncated OXM field", ErrProtocol)
		}
		o := oxm{class: class, field: fm >> 1, hasMask: fm&1 == 1}
		body := b[4 : 4+n]
		if o.hasMask {
			if n%2 != 0 {
				return nil, fmt.Errorf("%w: odd masked OXM length", ErrProtocol)
			}
			o.value, o.mask = body[:n/2], body[n/2:]
		} else {
			o.value = body
		}
		out = append(out, o)
		b = b[4+n:]
	}
	return out, nil
}

// action is one decoded OpenFlow action.
type action struct {
	typ uint16
	// output
	port uint32
	// push_vlan
	ethertype uint16
	// set_field
	set oxm
	// NX reg_move
	nxSubtype      uint16
	moveBits       uint16
	moveSrcOfs     uint16
	moveDstOfs     uint16
	moveSrc, moveD field
	raw            []byte
}

func parseActions(b []byte) ([]action, error) {
	var out []action
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated action", ErrProtocol)
		}
		typ := binary.BigEndian.Uint16(b)
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < 8 || n%8 != 0 || n > len(b) {
			return nil, fmt.Errorf("%w: action length %d", ErrProtocol, n)
		}
		a := action{typ: typ, raw: b[:n]}
		switch typ {
		case ofpatOutput:
			if n < 16 {
				return nil, fmt.Errorf("%w: short output action", ErrProtocol)
			}
			a.port = binary.BigEndian.Uint32(b[4:])
		case ofpatPushVLAN:
			a.ethertype = binary.BigEndian.Uint16(b[4:])
		case ofpatSetField:
			if n < 8 || 4+4+int(b[7]) > n {
				return nil, fmt.Errorf("%w: short set_field action", ErrProtocol)
			}
			f, err := parseOXM(b[4 : 8+int(b[7])])
			if err != nil || len(f) != 1 {
				return nil, fmt.Errorf("%w: set_field: %v", ErrProtocol, err)
			}
			a.set = f[0]
		case ofpatExperimenter:
			if n >= 24 && binary.BigEndian.Uint32(b[4:]) == nxVendorID {
				a.nxSubtype = binary.BigEndian.Uint16(b[8:])
				if a.nxSubtype == nxastRegMove {
					a.moveBits = binary.BigEndian.Uint16(b[10:])
					a.moveSrcOfs = binary.BigEndian.Uint16(b[12:])
					a.moveDstOfs = binary.BigEndian.Uint16(b[14:])
					src, dst := binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])
					a.moveSrc = oxmField(uint16(src>>16), uint8(src>>9)&0x7f)
					a.moveD = oxmField(uint16(dst>>16), uint8(dst>>9)&0x7f)
				}
			}
		}
		out = append(out, a)
		b = b[n:]
	}
	return out, nil
}

func (a action) String() string {
	switch a.typ {
	case ofpatOutput:
		if a.port == ofppInPort {
			return "IN_PORT"
		}
		return fmt.Sprintf("output:%d", a.port)
	case ofpatPushVLAN:
		return fmt.Sprintf("push_vlan:0x%04x", a.ethertype)
	case ofpatPopVLAN:
		return "pop_vlan"
	case ofpatSetField:
		return "set_field:" + a.set.String()
	case ofpatExperimenter:
		if a.nxSubtype == nxastRegMove {
			return fmt.Sprintf("move:%s[%d..]->%s[%d..]/%d", fieldNames[a.moveSrc], a.moveSrcOfs, fieldNames[a.moveD], a.moveDstOfs, a.moveBits)
		}
		return fmt.Sprintf("experimenter(0x%x)", a.raw)
	default:
		return fmt.Sprintf("action(%d:0x%x)", a.typ, a.raw)
	}
}

// instruction is one decoded OpenFlow instruction.
type instruction struct {
	typ     uint16
	table   uint8    // goto_table
	actions []action // apply_actions
	raw     []byte
}

func parseInstructions(b []byte) ([]instruction, error) {
	var out []instruction
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated instruction", ErrProtocol)
		}
		typ := binary.BigEndian.Uint16(b)
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < 8 || n > len(b) {
			return nil, fmt.Errorf("%w: instruction length %d", ErrProtocol, n)
		}
		in := instruction{typ: typ, raw: b[:n]}
		switch typ {
		case ofpitGotoTable:
			in.table = b[4]
		case ofpitApplyActions:
			acts, err := parseActions(b[8:n])
			if err != nil {
				return nil, err
			}
			in.actions = acts
		}
		out = append(out, in)
		b = b[n:]
	}
	return out, nil
}

// rawFlow is one entry of a flow-stats reply.
type rawFlow struct {
	table    uint8
	priority uint16
	cookie   uint64
	packets  uint64
	bytes    uint64
	// match is the ofp_match as the switch sent it, padding included:
	// strict deletes send it back unchanged.
	match  []byte
	fields []oxm
	instrs []instruction
	// err is set when the entry could not be decoded beyond its fixed part.
	err error
}

// parseFlowStats decodes the body of an OFPMP_FLOW reply (a sequence of
// ofp_flow_stats). An entry whose match or instructions are malformed is
// kept with err set; a malformed length ends decoding with an error.
func parseFlowStats(b []byte) ([]rawFlow, error) {
	var out []rawFlow
	for len(b) > 0 {
		if len(b) < flowStatsFixed+4 {
			return out, fmt.Errorf("%w: truncated flow stats", ErrProtocol)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n < flowStatsFixed+8 || n > len(b) {
			return out, fmt.Errorf("%w: flow stats length %d", ErrProtocol, n)
		}
		e := b[:n]
		f := rawFlow{
			table:    e[2],
			priority: binary.BigEndian.Uint16(e[12:]),
			cookie:   binary.BigEndian.Uint64(e[24:]),
			packets:  binary.BigEndian.Uint64(e[32:]),
			bytes:    binary.BigEndian.Uint64(e[40:]),
		}
		m := e[flowStatsFixed:]
		mlen := int(binary.BigEndian.Uint16(m[2:]))
		padded := (mlen + 7) / 8 * 8
		switch {
		case binary.BigEndian.Uint16(m) != 1 || mlen < 4 || padded > len(m):
			f.err = fmt.Errorf("%w: bad ofp_match (type %d, length %d)", ErrProtocol, binary.BigEndian.Uint16(m), mlen)
		default:
			f.match = append([]byte(nil), m[:padded]...)
			f.fields, f.err = parseOXM(m[4:mlen])
			if f.err == nil {
				f.instrs, f.err = parseInstructions(m[padded:])
			}
		}
		out = append(out, f)
		b = b[n:]
	}
	return out, nil
}

// portResolver names OpenFlow port numbers and numbers port names.
type portResolver interface {
	portNumber(name string) (uint32, bool)
	portName(num uint32) (string, bool)
}

// text renders a flow that does not fit the flow language, in the spirit of
// ovs-ofctl dump-flows.
func (f rawFlow) text(ports portResolver) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cookie=%#x, table=%d, priority=%d", f.cookie, f.table, f.priority)
	if f.err != nil {
		fmt.Fprintf(&b, " (undecodable: %v)", f.err)
		return b.String()
	}
	for _, o := range f.fields {
		if o.id() == fInPort && len(o.value) == 4 && !o.hasMask {
			num := binary.BigEndian.Uint32(o.value)
			if name, ok := ports.portName(num); ok {
				fmt.Fprintf(&b, ",in_port=%q", name)
				continue
			}
			fmt.Fprintf(&b, ",in_port=%d", num)
			continue
		}
		b.WriteString("," + o.String())
	}
	var acts []string
	for _, in := range f.instrs {
		switch in.typ {
		case ofpitApplyActions:
			for _, a := range in.actions {
				if a.typ == ofpatOutput && a.port < ofppMax {
					if name, ok := ports.portName(a.port); ok {
						acts = append(acts, fmt.Sprintf("output:%q", name))
						continue
					}
				}
				acts = append(acts, a.String())
			}
		case ofpitGotoTable:
			acts = append(acts, fmt.Sprintf("goto_table:%d", in.table))
		default:
			acts = append(acts, fmt.Sprintf("instruction(%d:0x%x)", in.typ, in.raw))
		}
	}
	if len(acts) == 0 {
		acts = []string{"drop"}
	}
	b.WriteString(" actions=" + strings.Join(acts, ","))
	return b.String()
}

// decodeMatch decodes the entry's match into the flow language; ok is
// false when it does not fit (unknown field, mask, or port number).
func (f rawFlow) decodeMatch(ports portResolver) (overlay.Match, bool) {
	var m overlay.Match
	if f.err != nil {
		return m, false
	}
	for _, o := range f.fields {
		if o.hasMask {
			return m, false
		}
		v := o.value
		switch o.id() {
		case fInPort:
			if len(v) != 4 {
				return m, false
			}
			name, ok := ports.portName(binary.BigEndian.Uint32(v))
			if !ok {
				return m, false
			}
			m.InPort = name
		case fEthDst:
			if len(v) != 6 {
				return m, false
			}
			copy(m.EthDst[:], v)
		case fEthType:
			if len(v) != 2 {
				return m, false
			}
			m.EthType = binary.BigEndian.Uint16(v)
		case fVLANVID:
			if len(v) != 2 {
				return m, false
			}
			vid := binary.BigEndian.Uint16(v)
			switch {
			case vid == 0:
				m.VLAN = overlay.VLANUntagged
			case vid&ofpvidPresent != 0 && vid&0xfff != 0:
				m.VLAN = overlay.VLANMatch(vid & 0xfff)
			default:
				return m, false
			}
		case fARPOp:
			if len(v) != 2 {
				return m, false
			}
			m.ARPOp = binary.BigEndian.Uint16(v)
		case fARPTPA:
			if len(v) != 4 {
				return m, false
			}
			m.ARPTPA = netip.AddrFrom4([4]byte(v))
		default:
			return m, false
		}
	}
	return m, true
}

// decode turns a flow-stats entry into the flow language; ok is false when
// it does not fit (see decodeMatch; also unknown actions or instructions).
func (f rawFlow) decode(ports portResolver) (overlay.Flow, bool) {
	fl := overlay.Flow{Table: f.table, Priority: f.priority, Cookie: overlay.Cookie(f.cookie)}
	m, ok := f.decodeMatch(ports)
	if !ok {
		return fl, false
	}
	fl.Match = m
	for i, in := range f.instrs {
		switch in.typ {
		case ofpitApplyActions:
			acts, ok := decodeActions(in.actions, ports)
			if !ok {
				return fl, false
			}
			fl.Actions = append(fl.Actions, acts...)
		case ofpitGotoTable:
			if i != len(f.instrs)-1 {
				return fl, false
			}
			fl.Actions = append(fl.Actions, overlay.GotoTable(in.table))
		default:
			return fl, false
		}
	}
	// What Apply would install for fl must be exactly what is there;
	// anything else (for example an ARP reply for another address than the
	// match's) is reported as opaque rather than misrepresented.
	if fl.Validate(nil) != nil {
		return fl, false
	}
	return fl, true
}

// decodeActions recognises the action sequences encodeFlow produces.
func decodeActions(acts []action, ports portResolver) ([]overlay.Action, bool) {
	var out []overlay.Action
	for i := 0; i < len(acts); i++ {
		a := acts[i]
		switch a.typ {
		case ofpatOutput:
			if a.port >= ofppMax {
				return nil, false
			}
			name, ok := ports.portName(a.port)
			if !ok {
				return nil, false
			}
			out = append(out, overlay.Output(name))
		case ofpatPushVLAN:
			if a.ethertype != 0x8100 || i+1 >= len(acts) {
				return nil, false
			}
			s := acts[i+1]
			if s.typ != ofpatSetField || s.set.id() != fVLANVID || s.set.hasMask || len(s.set.value) != 2 {
				return nil, false
			}
			vid := binary.BigEndian.Uint16(s.set.value)
			if vid&ofpvidPresent == 0 {
				return nil, false
			}
			out = append(out, overlay.PushVLAN(vid&0xfff))
			i++
		case ofpatPopVLAN:
			out = append(out, overlay.PopVLAN())
		case ofpatExperimenter:
			mac, ip, ok := decodeARPReply(acts[i:])
			if !ok {
				return nil, false
			}
			out = append(out, overlay.ARPReplyFrom(mac, ip))
			i = len(acts)
		default:
			return nil, false
		}
	}
	return out, true
}

// decodeARPReply recognises the eight actions of an in-switch ARP reply
// (see overlay.ARPReplyFrom) and nothing else after them.
func decodeARPReply(acts []action) (overlay.MAC, netip.Addr, bool) {
	var mac overlay.MAC
	if len(acts) != 8 {
		return mac, netip.Addr{}, false
	}
	move := func(a action, src, dst field, bits uint16) bool {
		return a.typ == ofpatExperimenter && a.nxSubtype == nxastRegMove && a.moveSrc == src && a.moveD == dst &&
			a.moveBits == bits && a.moveSrcOfs == 0 && a.moveDstOfs == 0
	}
	set := func(a action, f field, n int) []byte {
		if a.typ != ofpatSetField || a.set.id() != f || a.set.hasMask || len(a.set.value) != n {
			return nil
		}
		return a.set.value
	}
	src := set(acts[1], fEthSrc, 6)
	op := set(acts[2], fARPOp, 2)
	sha := set(acts[4], fARPSHA, 6)
	spa := set(acts[6], fARPSPA, 4)
	if !move(acts[0], fEthSrc, fEthDst, 48) || src == nil || op == nil || binary.BigEndian.Uint16(op) != overlay.ARPReply ||
		!move(acts[3], fARPSHA, fARPTHA, 48) || sha == nil || string(sha) != string(src) ||
		!move(acts[5], fARPSPA, fARPTPA, 32) || spa == nil ||
		acts[7].typ != ofpatOutput || acts[7].port != ofppInPort {
		return mac, netip.Addr{}, false
	}
	copy(mac[:], src)
	return mac, netip.AddrFrom4([4]byte(spa)), true
}

// encodeFlow builds the OFPFC_ADD flow-mod that installs f.
func encodeFlow(f overlay.Flow, ports portResolver) (*of13.FlowMod, error) {
	fm := of13.NewFlowMod()
	fm.Command = of13.FC_ADD
	fm.TableId = f.Table
	fm.Priority = f.Priority
	fm.Cookie = uint64(f.Cookie)
	m := f.Match
	if m.InPort != "" {
		num, ok := ports.portNumber(m.InPort)
		if !ok {
			return nil, fmt.Errorf("%w: in_port %q has no OpenFlow port number", ErrPort, m.InPort)
		}
		fm.Match.AddField(*of13.NewInPortField(num))
	}
	if !m.EthDst.IsZero() {
		fm.Match.AddField(*of13.NewEthDstField(net.HardwareAddr(m.EthDst[:]), nil))
	}
	if m.EthType != 0 {
		fm.Match.AddField(*of13.NewEthTypeField(m.EthType))
	}
	switch m.VLAN {
	case overlay.VLANAny:
	case overlay.VLANUntagged:
		// NewVlanIdField always sets OFPVID_PRESENT; "no tag" is vid 0.
		fm.Match.AddField(of13.MatchField{Class: oxmClassBasic, Field: of13.OXM_FIELD_VLAN_VID, Length: 2, Value: &of13.VlanIdField{VlanId: 0}})
	default:
		fm.Match.AddField(*of13.NewVlanIdField(uint16(m.VLAN), nil))
	}
	if m.ARPOp != 0 {
		fm.Match.AddField(*of13.NewArpOperField(m.ARPOp))
	}
	if m.ARPTPA.IsValid() {
		fm.Match.AddField(*of13.NewArpTpaField(net.IP(m.ARPTPA.AsSlice())))
	}
	var apply []of13.Action
	var gotoTable *of13.InstrGotoTable
	for _, a := range f.Actions {
		switch a.Kind {
		case overlay.ActOutput:
			num, ok := ports.portNumber(a.Port)
			if !ok {
				return nil, fmt.Errorf("%w: output port %q has no OpenFlow port number", ErrPort, a.Port)
			}
			apply = append(apply, of13.NewActionOutput(num))
		case overlay.ActPushVLAN:
			apply = append(apply, of13.NewActionPushVlan(0x8100), of13.NewActionSetField(*of13.NewVlanIdField(a.VLAN, nil)))
		case overlay.ActPopVLAN:
			apply = append(apply, of13.NewActionPopVlan())
		case overlay.ActGotoTable:
			gotoTable = of13.NewInstrGotoTable(a.Table)
		case overlay.ActARPReply:
			hw := net.HardwareAddr(a.MAC[:])
			apply = append(apply,
				of13.NewNXActionRegMove(48, 0, 0, oxmHeader(of13.OXM_FIELD_ETH_SRC, 6), oxmHeader(of13.OXM_FIELD_ETH_DST, 6)),
				of13.NewActionSetField(*of13.NewEthSrcField(hw, nil)),
				of13.NewActionSetField(*of13.NewArpOperField(overlay.ARPReply)),
				of13.NewNXActionRegMove(48, 0, 0, oxmHeader(of13.OXM_FIELD_ARP_SHA, 6), oxmHeader(of13.OXM_FIELD_ARP_THA, 6)),
				of13.NewActionSetField(*of13.NewArpShaField(hw)),
				of13.NewNXActionRegMove(32, 0, 0, oxmHeader(of13.OXM_FIELD_ARP_SPA, 4), oxmHeader(of13.OXM_FIELD_ARP_TPA, 4)),
				of13.NewActionSetField(*of13.NewArpSpaField(net.IP(a.IP.AsSlice()))),
				of13.NewActionOutput(ofppInPort),
			)
		default:
			return nil, fmt.Errorf("%w: action kind %d", overlay.ErrInvalid, a.Kind)
		}
	}
	if len(apply) > 0 {
		in := of13.NewInstrApplyActions()
		for _, a := range apply {
			if err := in.AddAction(a, false); err != nil {
				return nil, fmt.Errorf("ovs: encode flow %s: %w", f.Key(), err)
			}
		}
		fm.AddInstruction(in)
	}
	if gotoTable != nil {
		fm.AddInstruction(gotoTable)
	}
	return fm, nil
}

// oxmHeader is an OXM basic-class field header for NX reg_move.
func oxmHeader(f uint8, length uint8) *of13.MatchField {
	return &of13.MatchField{Class: oxmClassBasic, Field: f, Length: length}
}

// rawMessage is an already-encoded OpenFlow message.
type rawMessage []byte

func (r rawMessage) Len() uint16                    { return uint16(len(r)) }
func (r rawMessage) MarshalBinary() ([]byte, error) { return r, nil }
func (r rawMessage) UnmarshalBinary([]byte) error   { return fmt.Errorf("ovs: rawMessage is send-only") }

var _ util.Message = rawMessage(nil)

// flowModRaw encodes an ofp_flow_mod without instructions around a
// pre-encoded (padded) ofp_match: the deletes.
func flowModRaw(xid uint32, command uint8, table uint8, priority uint16, cookie, cookieMask uint64, match []byte) rawMessage {
	if match == nil {
		match = []byte{0, 1, 0, 4, 0, 0, 0, 0} // empty ofp_match, padded
	}
	b := make([]byte, 48, 48+len(match))
	b[0] = ofpVersion13
	b[1] = of13.Type_FlowMod
	binary.BigEndian.PutUint16(b[2:], uint16(48+len(match)))
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint64(b[8:], cookie)
	binary.BigEndian.PutUint64(b[16:], cookieMask)
	b[24] = table
	b[25] = command
	// idle and hard timeouts 0
	binary.BigEndian.PutUint16(b[30:], priority)
	binary.BigEndian.PutUint32(b[32:], 0xffffffff) // buffer_id: none
	binary.BigEndian.PutUint32(b[36:], of13.P_ANY)
	binary.BigEndian.PutUint32(b[40:], of13.OFPG_ANY)
	// flags 0, pad
	return rawMessage(append(b, match...))
}

// flowStatsRequest encodes an OFPMP_FLOW request for every flow of every
// table.
func flowStatsRequest(xid uint32) rawMessage {
	b := make([]byte, 16+32+8)
	b[0] = ofpVersion13
	b[1] = of13.Type_MultiPartRequest
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint16(b[8:], ofpmpFlow)
	r := b[16:]
	r[0] = of13.OFPTT_ALL
	binary.BigEndian.PutUint32(r[4:], of13.P_ANY)
	binary.BigEndian.PutUint32(r[8:], of13.OFPG_ANY)
	copy(r[32:], []byte{0, 1, 0, 4, 0, 0, 0, 0})
	return rawMessage(b)
}

// portDescRequest encodes an OFPMP_PORT_DESC request.
func portDescRequest(xid uint32) rawMessage {
	b := make([]byte, 16)
	b[0] = ofpVersion13
	b[1] = of13.Type_MultiPartRequest
	binary.BigEndian.PutUint16(b[2:], 16)
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint16(b[8:], ofpmpPortDesc)
	return rawMessage(b)
}

// ofPort is one entry of a PORT_DESC reply or PORT_STATUS message.
type ofPort struct {
	num  uint32
	name string
	mac  net.HardwareAddr
	down bool
}

// parsePortDesc decodes a PORT_DESC reply body (a sequence of 64-byte
// ofp_port) using libOpenflow's PhyPort for each entry.
func parsePortDesc(b []byte) ([]ofPort, error) {
	if len(b)%64 != 0 {
		return nil, fmt.Errorf("%w: port desc body of %d bytes", ErrProtocol, len(b))
	}
	var out []ofPort
	for ; len(b) > 0; b = b[64:] {
		p, err := parsePhyPort(b[:64])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePhyPort(b []byte) (p ofPort, err error) {
	err = recovered(func() error {
		pp := of13.NewPhyPort()
		if err := pp.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("%w: ofp_port: %v", ErrProtocol, err)
		}
		p = ofPort{
			num:  pp.PortNo,
			name: strings.TrimRight(string(pp.Name), "\x00"),
			mac:  append(net.HardwareAddr(nil), pp.HWAddr...),
			down: pp.State&of13.PS_LINK_DOWN != 0,
		}
		return nil
	})
	return p, err
}

// recovered runs fn and turns a panic into an ErrPanic error.
func recovered(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return fn()
}

// marshal encodes a libOpenflow message, recovering from panics.
func marshal(m util.Message) (b []byte, err error) {
	err = recovered(func() error {
		var e error
		b, e = m.MarshalBinary()
		return e
	})
	return b, err
}
