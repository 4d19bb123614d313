package ovs

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/overlay"
)

type testPorts map[string]uint32

func (p testPorts) portNumber(n string) (uint32, bool) { v, ok := p[n]; return v, ok }
func (p testPorts) portName(num uint32) (string, bool) {
	for n, v := range p {
		if v == num {
			return n, true
		}
	}
	return "", false
}

// asFlowStats re-frames an encoded flow-mod as the ofp_flow_stats entry a
// switch would report for it.
func asFlowStats(t *testing.T, fm []byte) []byte {
	t.Helper()
	body := fm[48:] // match + instructions
	e := make([]byte, 48, 48+len(body))
	binary.BigEndian.PutUint16(e, uint16(48+len(body)))
	e[2] = fm[24]                         // table
	copy(e[12:14], fm[30:32])             // priority
	copy(e[24:32], fm[8:16])              // cookie
	binary.BigEndian.PutUint64(e[32:], 7) // packets
	return append(e, body...)
}

func TestFlowRoundTrip(t *testing.T) {
	ports := testPorts{"vm1": 1, "gre-site2": 2, "vm2": 3}
	mac := overlay.MustParseMAC("02:00:00:00:00:01")
	ip := netip.MustParseAddr("10.0.0.1")
	c := overlay.NewCookie(10, 3)
	flows := []overlay.Flow{
		{Table: 0, Priority: 300, Cookie: c, Match: overlay.Match{InPort: "vm1", VLAN: overlay.VLANUntagged, EthType: overlay.EthTypeARP, ARPOp: overlay.ARPRequest},
			Actions: []overlay.Action{overlay.PushVLAN(10), overlay.GotoTable(2)}},
		{Table: 0, Priority: 200, Cookie: c, Match: overlay.Match{InPort: "vm1", VLAN: overlay.VLANUntagged},
			Actions: []overlay.Action{overlay.PushVLAN(10), overlay.GotoTable(1)}},
		{Table: 0, Priority: 100, Cookie: c, Match: overlay.Match{InPort: "gre-site2"}, Actions: []overlay.Action{overlay.GotoTable(1)}},
		{Table: 1, Priority: 100, Cookie: c, Match: overlay.Match{VLAN: 10, EthDst: mac}, Actions: []overlay.Action{overlay.PopVLAN(), overlay.Output("vm1")}},
		{Table: 1, Priority: 100, Cookie: c, Match: overlay.Match{VLAN: 10, EthDst: mac}, Actions: []overlay.Action{overlay.Output("gre-site2"), overlay.Output("vm2")}},
		{Table: 2, Priority: 100, Cookie: c, Match: overlay.Match{VLAN: 10, EthType: overlay.EthTypeARP, ARPOp: overlay.ARPRequest, ARPTPA: ip},
			Actions: []overlay.Action{overlay.PopVLAN(), overlay.ARPReplyFrom(mac, ip)}},
		{Table: 2, Priority: 0, Cookie: overlay.NewCookie(0, 3)},
		{Table: 1, Priority: 5, Cookie: 0x1234, Match: overlay.Match{EthType: overlay.EthTypeIPv4}},
	}
	for _, f := range flows {
		fm, err := encodeFlow(f, ports)
		if err != nil {
			t.Fatalf("encode %s: %v", f, err)
		}
		b, err := marshal(fm)
		if err != nil {
			t.Fatalf("marshal %s: %v", f, err)
		}
		raws, err := parseFlowStats(asFlowStats(t, b))
		if err != nil || len(raws) != 1 {
			t.Fatalf("parse %s: %v (%d entries)", f, err, len(raws))
		}
		got, ok := raws[0].decode(ports)
		if !ok {
			t.Errorf("decode %s: not in the flow language: %s", f, raws[0].text(ports))
			continue
		}
		if !got.Equal(f) {
			t.Errorf("round trip:\n got %s\nwant %s", got, f)
		}
		if raws[0].packets != 7 {
			t.Errorf("packets = %d", raws[0].packets)
		}
	}
}

func TestDecodeOpaque(t *testing.T) {
	ports := testPorts{"vm1": 1}
	// An output to a port number nobody knows is not in the flow language.
	f := overlay.Flow{Table: 0, Priority: 1, Cookie: 1, Actions: []overlay.Action{overlay.Output("vm1")}}
	fm, err := encodeFlow(f, ports)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := marshal(fm)
	raws, err := parseFlowStats(asFlowStats(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raws[0].decode(testPorts{}); ok {
		t.Error("decoded a flow with an unknown port")
	}
	if txt := raws[0].text(testPorts{}); !strings.Contains(txt, "output:1") {
		t.Errorf("opaque text %q", txt)
	}
	// Truncated and garbage input: errors, no panic.
	for _, bad := range [][]byte{{0, 10}, make([]byte, 60), {0xff, 0xff, 1, 2, 3}} {
		_, _ = parseFlowStats(bad)
	}
}

func FuzzParseFlowStats(f *testing.F) {
	ports := testPorts{"vm1": 1, "gre-a": 2}
	fm, _ := encodeFlow(overlay.Flow{Table: 2, Priority: 100, Cookie: 1,
		Match:   overlay.Match{VLAN: 10, EthType: overlay.EthTypeARP, ARPOp: 1, ARPTPA: netip.MustParseAddr("10.0.0.1")},
		Actions: []overlay.Action{overlay.PopVLAN(), overlay.ARPReplyFrom(overlay.MustParseMAC("02:00:00:00:00:01"), netip.MustParseAddr("10.0.0.1"))}}, ports)
	b, _ := marshal(fm)
	e := make([]byte, 48)
	binary.BigEndian.PutUint16(e, uint16(len(b)))
	f.Add(append(e, b[48:]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		raws, _ := parseFlowStats(data)
		for _, r := range raws {
			_, _ = r.decode(ports)
			_ = r.text(ports)
		}
	})
}
