package overlay

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestMAC(t *testing.T) {
	m, err := ParseMAC("02:AB:cd:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.String(); got != "02:ab:cd:00:00:01" {
		t.Errorf("String = %q", got)
	}
	if m.IsZero() || m.IsMulticast() || !BroadcastMAC.IsMulticast() {
		t.Error("IsZero/IsMulticast wrong")
	}
	for _, bad := range []string{"", "02:ab:cd:00:00", "02-ab-cd-00-00-01", "02:ab:cd:00:00:0g", "02:ab:cd:00:00:011", "+2:ab:cd:00:00:01"} {
		if _, err := ParseMAC(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseMAC(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
	var back MAC
	if err := back.UnmarshalText([]byte(m.String())); err != nil || back != m {
		t.Errorf("text round trip: %v %v", back, err)
	}
}

func TestCookie(t *testing.T) {
	c := NewCookie(10, 7)
	if c.String() != "0x6d73000a00000007" {
		t.Errorf("cookie = %s", c)
	}
	v, g, ok := c.Decode()
	if !ok || v != 10 || g != 7 {
		t.Errorf("Decode = %d %d %v", v, g, ok)
	}
	if _, _, ok := Cookie(0x1234).Decode(); ok {
		t.Error("foreign cookie decoded as owned")
	}
	if Cookie(0x6d73_1000_0000_0000).Owned() {
		t.Error("cookie with reserved bits set counts as owned")
	}
	if NewCookie(4095, 0xffffffff) != 0x6d730fffffffffff {
		t.Errorf("max cookie = %s", NewCookie(4095, 0xffffffff))
	}
}

func TestTunnelPortName(t *testing.T) {
	if got := TunnelPortName("site2"); got != "gre-site2" {
		t.Errorf("short name = %q", got)
	}
	long := TunnelPortName("tokyo-university-a")
	if len(long) != MaxPortName || !strings.HasPrefix(long, "gre-tokyo-") {
		t.Errorf("long name = %q (%d bytes)", long, len(long))
	}
	if long == TunnelPortName("tokyo-university-b") {
		t.Error("two long names collide")
	}
	if long != TunnelPortName("tokyo-university-a") {
		t.Error("not deterministic")
	}
}

func validDesired() Desired {
	mac := MustParseMAC("02:00:00:00:01:01")
	ip := netip.MustParseAddr("10.0.0.1")
	return Desired{
		Site: "s1", Generation: 3,
		Tunnels: []Tunnel{{RemoteSite: "s2", RemoteIP: netip.MustParseAddr("192.0.2.12"), PortName: "gre-s2"}},
		Ports:   []Port{{Name: "vm1", VC: "a", VLAN: 10, MAC: mac, IP: ip}},
		Flows: []Flow{
			{Table: 0, Priority: 200, Cookie: NewCookie(10, 3), Match: Match{InPort: "vm1", VLAN: VLANUntagged}, Actions: []Action{PushVLAN(10), GotoTable(1)}},
			{Table: 1, Priority: 100, Cookie: NewCookie(10, 3), Match: Match{VLAN: 10, EthDst: mac}, Actions: []Action{PopVLAN(), Output("vm1")}},
			{Table: 2, Priority: 100, Cookie: NewCookie(10, 3), Match: Match{VLAN: 10, EthType: EthTypeARP, ARPOp: ARPRequest, ARPTPA: ip}, Actions: []Action{PopVLAN(), ARPReplyFrom(mac, ip)}},
			{Table: 0, Priority: 0, Cookie: NewCookie(0, 3)},
		},
	}
}

func TestValidate(t *testing.T) {
	if err := validDesired().Validate(); err != nil {
		t.Fatalf("valid desired: %v", err)
	}
	cases := map[string]func(d *Desired){
		"no site":            func(d *Desired) { d.Site = "" },
		"tunnel to self":     func(d *Desired) { d.Tunnels[0].RemoteSite = "s1"; d.Tunnels[0].PortName = "gre-s1" },
		"tunnel name":        func(d *Desired) { d.Tunnels[0].PortName = "t2" },
		"tunnel no ip":       func(d *Desired) { d.Tunnels[0].RemoteIP = netip.Addr{} },
		"dup tunnel":         func(d *Desired) { d.Tunnels = append(d.Tunnels, d.Tunnels[0]) },
		"port name long":     func(d *Desired) { d.Ports[0].Name = "a-very-long-port-name" },
		"port name space":    func(d *Desired) { d.Ports[0].Name = "vm 1" },
		"port clash tunnel":  func(d *Desired) { d.Ports[0].Name = "gre-s2" },
		"port vlan 0":        func(d *Desired) { d.Ports[0].VLAN = 0 },
		"port vlan 4095":     func(d *Desired) { d.Ports[0].VLAN = 4095 },
		"port no vc":         func(d *Desired) { d.Ports[0].VC = "" },
		"port mcast mac":     func(d *Desired) { d.Ports[0].MAC = BroadcastMAC },
		"port v6":            func(d *Desired) { d.Ports[0].IP = netip.MustParseAddr("::1") },
		"unknown in_port":    func(d *Desired) { d.Flows[0].Match.InPort = "nope" },
		"unknown output":     func(d *Desired) { d.Flows[1].Actions[1] = Output("nope") },
		"goto backwards":     func(d *Desired) { d.Flows[0].Actions[1] = GotoTable(0) },
		"goto not last":      func(d *Desired) { d.Flows[0].Actions = []Action{GotoTable(1), PushVLAN(10)} },
		"push vlan 0":        func(d *Desired) { d.Flows[0].Actions[0] = PushVLAN(0) },
		"match vlan 5000":    func(d *Desired) { d.Flows[1].Match.VLAN = 5000 },
		"arp without type":   func(d *Desired) { d.Flows[2].Match.EthType = 0 },
		"arp reply wrong ip": func(d *Desired) { d.Flows[2].Actions[1].IP = netip.MustParseAddr("10.0.0.9") },
		"arp reply not last": func(d *Desired) { d.Flows[2].Actions = append(d.Flows[2].Actions, Output("vm1")) },
		"foreign cookie":     func(d *Desired) { d.Flows[0].Cookie = 0x42 },
		"other generation":   func(d *Desired) { d.Flows[0].Cookie = NewCookie(10, 2) },
		"duplicate identity": func(d *Desired) { d.Flows = append(d.Flows, d.Flows[1].Clone()) },
		"unknown action":     func(d *Desired) { d.Flows[1].Actions[0] = Action{Kind: 99} },
	}
	for name, mut := range cases {
		d := validDesired().Clone()
		mut(&d)
		if err := d.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}

func TestDumpDesired(t *testing.T) {
	got := DumpDesired(validDesired())
	want := `tunnel "gre-s2": remote_site=s2 remote_ip=192.0.2.12
port "vm1": vc=a tag=10 mac=02:00:00:00:01:01 ip=10.0.0.1
 cookie=0x6d73000a00000003, table=0, priority=200,in_port="vm1",vlan_tci=0x0000/0x1fff actions=push_vlan:0x8100,set_field:4106->vlan_vid,goto_table:1
 cookie=0x6d73000000000003, table=0, priority=0 actions=drop
 cookie=0x6d73000a00000003, table=1, priority=100,dl_vlan=10,dl_dst=02:00:00:00:01:01 actions=pop_vlan,output:"vm1"
 cookie=0x6d73000a00000003, table=2, priority=100,arp,dl_vlan=10,arp_tpa=10.0.0.1,arp_op=1 actions=pop_vlan,move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:00:00:00:01:01->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:02:00:00:00:01:01->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.0.0.1->arp_spa,IN_PORT
`
	if got != want {
		t.Errorf("dump:\n%s\nwant:\n%s", got, want)
	}
}

func TestTrace(t *testing.T) {
	d := validDesired()
	d.Flows = append(d.Flows,
		Flow{Table: 0, Priority: 100, Cookie: NewCookie(0, 3), Match: Match{InPort: "gre-s2"}, Actions: []Action{GotoTable(1)}},
		Flow{Table: 1, Priority: 100, Cookie: NewCookie(10, 3), Match: Match{VLAN: 10, EthDst: MustParseMAC("02:00:00:00:02:01")}, Actions: []Action{Output("gre-s2")}},
	)
	vm1 := MustParseMAC("02:00:00:00:01:01")
	vm2 := MustParseMAC("02:00:00:00:02:01")
	// Local node to remote MAC: tagged onto the tunnel.
	out := Trace(d.Flows, "vm1", Frame{EthSrc: vm1, EthDst: vm2, EthType: EthTypeIPv4})
	if len(out) != 1 || out[0].Port != "gre-s2" || len(out[0].Frame.VLANs) != 1 || out[0].Frame.VLANs[0] != 10 {
		t.Errorf("vm1->vm2: %+v", out)
	}
	// Tagged frame from the tunnel to the local node: untagged onto vm1.
	out = Trace(d.Flows, "gre-s2", Frame{EthSrc: vm2, EthDst: vm1, VLANs: []uint16{10}, EthType: EthTypeIPv4})
	if len(out) != 1 || out[0].Port != "vm1" || len(out[0].Frame.VLANs) != 0 {
		t.Errorf("tunnel->vm1: %+v", out)
	}
	// Wrong VLAN from the tunnel: dropped.
	if out = Trace(d.Flows, "gre-s2", Frame{EthDst: vm1, VLANs: []uint16{11}}); len(out) != 0 {
		t.Errorf("vlan 11 delivered: %+v", out)
	}
	// A tagged frame from a VC port is dropped (no VLAN hopping).
	if out = Trace(d.Flows, "vm1", Frame{EthDst: vm2, VLANs: []uint16{10}}); len(out) != 0 {
		t.Errorf("tagged frame from access port forwarded: %+v", out)
	}
	// Never back out of the ingress port.
	if out = Trace(d.Flows, "gre-s2", Frame{EthDst: vm2, VLANs: []uint16{10}}); len(out) != 0 {
		t.Errorf("hairpin: %+v", out)
	}
}

func TestTraceARPReply(t *testing.T) {
	d := validDesired()
	d.Flows = append(d.Flows, Flow{Table: 0, Priority: 300, Cookie: NewCookie(10, 3),
		Match:   Match{InPort: "vm1", VLAN: VLANUntagged, EthType: EthTypeARP, ARPOp: ARPRequest},
		Actions: []Action{PushVLAN(10), GotoTable(2)}})
	asker := MustParseMAC("02:00:00:00:01:99")
	req := Frame{EthSrc: asker, EthDst: BroadcastMAC, EthType: EthTypeARP, ARPOp: ARPRequest,
		ARPSHA: asker, ARPSPA: netip.MustParseAddr("10.0.0.99"), ARPTPA: netip.MustParseAddr("10.0.0.1")}
	out := Trace(d.Flows, "vm1", req)
	if len(out) != 1 || out[0].Port != "vm1" {
		t.Fatalf("ARP: %+v", out)
	}
	r := out[0].Frame
	want := Frame{EthSrc: MustParseMAC("02:00:00:00:01:01"), EthDst: asker, EthType: EthTypeARP, ARPOp: ARPReply,
		ARPSHA: MustParseMAC("02:00:00:00:01:01"), ARPTHA: asker,
		ARPSPA: netip.MustParseAddr("10.0.0.1"), ARPTPA: netip.MustParseAddr("10.0.0.99")}
	if len(r.VLANs) != 0 || r.EthSrc != want.EthSrc || r.EthDst != want.EthDst || r.ARPOp != want.ARPOp ||
		r.ARPSHA != want.ARPSHA || r.ARPTHA != want.ARPTHA || r.ARPSPA != want.ARPSPA || r.ARPTPA != want.ARPTPA {
		t.Errorf("reply %+v\nwant  %+v", r, want)
	}
	// Unknown target: no reply.
	req.ARPTPA = netip.MustParseAddr("10.0.0.77")
	if out := Trace(d.Flows, "vm1", req); len(out) != 0 {
		t.Errorf("reply for unknown address: %+v", out)
	}
}
