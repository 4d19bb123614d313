package topology

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/overlay"
)

// demoEndpoints: 3 sites, 2 VCs (a on VLAN 10, b on VLAN 11), 2 nodes per
// VC per site; both VCs use the same IP subnet, as the lab did.
func demoEndpoints() []Endpoint {
	var eps []Endpoint
	for s := 1; s <= 3; s++ {
		for vi, vc := range []string{"a", "b"} {
			for k := 1; k <= 2; k++ {
				eps = append(eps, Endpoint{
					VC: vc, VLAN: uint16(10 + vi), Site: fmt.Sprintf("s%d", s),
					PortName: fmt.Sprintf("%s%d", vc, k),
					MAC:      overlay.MAC{0x02, 0, 0, byte(10 + vi), byte(s), byte(k)},
					IP:       netip.AddrFrom4([4]byte{10, 0, 0, byte(10*s + k)}),
				})
			}
		}
	}
	return eps
}

func demoGraph(cut13 bool) *Graph {
	return NewGraph(three, []string{"s1", "s2", "s3"},
		[]Link{link("s1", "s2", 500, true), link("s2", "s3", 500, true), link("s1", "s3", 500, !cut13)})
}

func TestBuildDesiredValid(t *testing.T) {
	g := demoGraph(false)
	for _, s := range g.Sites() {
		d, problems := BuildDesired(g, s, 7, demoEndpoints())
		if len(problems) != 0 {
			t.Fatalf("problems: %v", problems)
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if len(d.Tunnels) != 2 || len(d.Ports) != 4 {
			t.Errorf("%s: %d tunnels, %d ports", s, len(d.Tunnels), len(d.Ports))
		}
		// 4 ports x 3 + 2 tunnels + 8 remote MACs + 2 VLANs x 6 ARP + 3 drops
		if want := 12 + 2 + 8 + 12 + 3; len(d.Flows) != want {
			t.Errorf("%s: %d flows, want %d\n%s", s, len(d.Flows), want, overlay.DumpFlows(d.Flows))
		}
	}
}

func TestBuildDesiredDeterministic(t *testing.T) {
	g := demoGraph(false)
	eps := demoEndpoints()
	want, _ := BuildDesired(g, "s2", 1, eps)
	slices.Reverse(eps)
	eps = append(eps, eps[0]) // an exact duplicate is harmless
	got, problems := BuildDesired(g, "s2", 1, eps)
	if len(problems) != 0 {
		t.Errorf("problems: %v", problems)
	}
	if a, b := overlay.DumpDesired(want), overlay.DumpDesired(got); a != b {
		t.Errorf("order changed the result:\n%s\n---\n%s", a, b)
	}
}

func frameTo(src, dst Endpoint) overlay.Frame {
	return overlay.Frame{EthSrc: src.MAC, EthDst: dst.MAC, EthType: overlay.EthTypeIPv4}
}

func TestPingMatrix(t *testing.T) {
	for _, cut := range []bool{false, true} {
		eps := demoEndpoints()
		n := build(demoGraph(cut), 1, eps)
		for _, a := range eps {
			for _, b := range eps {
				if a == b {
					continue
				}
				out, hops, loop := n.send(a.Site, a.PortName, frameTo(a, b))
				if loop {
					t.Fatalf("loop %v", hops)
				}
				if a.VLAN != b.VLAN {
					if len(out) != 0 {
						t.Errorf("cut=%v: %s/%s (VLAN %d) reached %v across VCs", cut, a.Site, a.PortName, a.VLAN, out)
					}
					continue
				}
				if len(out) != 1 || out[0].site != b.Site || out[0].port != b.PortName || len(out[0].frame.VLANs) != 0 {
					t.Errorf("cut=%v: %s/%s -> %s/%s: delivered %+v", cut, a.Site, a.PortName, b.Site, b.PortName, out)
				}
				var path []string
				if a.Site != b.Site {
					path = append(path, a.Site)
					for _, h := range hops {
						path = append(path, h.to)
					}
				}
				var want []string
				switch {
				case a.Site == b.Site:
				case cut && (a.Site+b.Site == "s1s3" || a.Site+b.Site == "s3s1"):
					want = []string{a.Site, "s2", b.Site}
				default:
					want = []string{a.Site, b.Site}
				}
				if !slices.Equal(path, want) {
					t.Errorf("cut=%v: %s -> %s went %v, want %v", cut, a.Site, b.Site, path, want)
				}
			}
		}
	}
}

func TestARP(t *testing.T) {
	eps := demoEndpoints()
	n := build(demoGraph(false), 1, eps)
	asker := eps[0] // s1, VC a
	for _, target := range eps {
		req := overlay.Frame{EthSrc: asker.MAC, EthDst: overlay.BroadcastMAC, EthType: overlay.EthTypeARP, ARPOp: overlay.ARPRequest,
			ARPSHA: asker.MAC, ARPSPA: asker.IP, ARPTPA: target.IP}
		out, hops, _ := n.send(asker.Site, asker.PortName, req)
		if len(hops) != 0 {
			t.Errorf("ARP request crossed the WAN: %v", hops)
		}
		if len(out) != 1 || out[0].port != asker.PortName {
			t.Fatalf("ARP for %v: %+v", target.IP, out)
		}
		// Both VCs use the same addresses: the answer is VC a's node.
		r := out[0].frame
		var want overlay.MAC
		for _, e := range eps {
			if e.VLAN == asker.VLAN && e.IP == target.IP {
				want = e.MAC
			}
		}
		if r.ARPOp != overlay.ARPReply || r.ARPSHA != want || r.EthSrc != want || r.ARPSPA != target.IP || r.EthDst != asker.MAC {
			t.Errorf("ARP for %v: reply %+v, want MAC %s", target.IP, r, want)
		}
	}
	// An address nobody has: no answer, nothing crosses the WAN.
	req := overlay.Frame{EthSrc: asker.MAC, EthDst: overlay.BroadcastMAC, EthType: overlay.EthTypeARP, ARPOp: overlay.ARPRequest, ARPTPA: netip.MustParseAddr("10.9.9.9")}
	if out, hops, _ := n.send(asker.Site, asker.PortName, req); len(out)+len(hops) != 0 {
		t.Errorf("unknown ARP target: %v %v", out, hops)
	}
}

func TestIsolationAgainstForgedFrames(t *testing.T) {
	eps := demoEndpoints()
	n := build(demoGraph(false), 1, eps)
	a := eps[0] // VC a, VLAN 10, s1
	for _, b := range eps {
		if b.VLAN == a.VLAN {
			continue
		}
		// A node sending a frame already tagged with the other VC's VLAN.
		f := frameTo(a, b)
		f.VLANs = []uint16{b.VLAN}
		if out, hops, _ := n.send(a.Site, a.PortName, f); len(out)+len(hops) != 0 {
			t.Errorf("tagged frame from %s escaped: %v %v", a.PortName, out, hops)
		}
		// Broadcast and multicast are dropped.
		f = overlay.Frame{EthSrc: a.MAC, EthDst: overlay.BroadcastMAC, EthType: overlay.EthTypeIPv4}
		if out, hops, _ := n.send(a.Site, a.PortName, f); len(out)+len(hops) != 0 {
			t.Errorf("broadcast forwarded: %v %v", out, hops)
		}
	}
}

func TestTransitSiteWithoutEndpoints(t *testing.T) {
	// s2 has no VC nodes but must carry s1<->s3 traffic when s1~s3 is cut.
	var eps []Endpoint
	for _, e := range demoEndpoints() {
		if e.Site != "s2" {
			eps = append(eps, e)
		}
	}
	n := build(demoGraph(true), 1, eps)
	if len(n.desired["s2"].Ports) != 0 {
		t.Fatal("s2 has ports")
	}
	a, b := eps[0], eps[len(eps)-1]
	if a.Site != "s1" || b.Site != "s3" {
		t.Fatalf("fixture: %s %s", a.Site, b.Site)
	}
	b = eps[len(eps)-4] // VC a at s3
	out, hops, _ := n.send(a.Site, a.PortName, frameTo(a, b))
	if len(out) != 1 || out[0].port != b.PortName || len(hops) != 2 {
		t.Errorf("through s2: out %+v hops %v", out, hops)
	}
}

func TestLocalSiteNotLive(t *testing.T) {
	g := NewGraph(three, []string{"s2", "s3"}, nil)
	d, _ := BuildDesired(g, "s1", 1, demoEndpoints())
	if len(d.Tunnels) != 0 || len(d.Ports) != 4 {
		t.Errorf("tunnels %d ports %d", len(d.Tunnels), len(d.Ports))
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	// Local nodes still reach each other.
	eps := demoEndpoints()
	out := overlay.Trace(d.Flows, eps[0].PortName, frameTo(eps[0], eps[1]))
	if len(out) != 1 || out[0].Port != eps[1].PortName {
		t.Errorf("local delivery: %+v", out)
	}
}

func TestCleanEndpoints(t *testing.T) {
	mac := func(b byte) overlay.MAC { return overlay.MAC{2, 0, 0, 0, 0, b} }
	ip := func(b byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, b}) }
	ok := Endpoint{VC: "a", VLAN: 10, Site: "s1", PortName: "a1", MAC: mac(1), IP: ip(1)}
	cases := map[string]Endpoint{
		"bad vc":          {VC: "", VLAN: 10, Site: "s1", PortName: "x1", MAC: mac(2)},
		"bad site":        {VC: "a", VLAN: 10, Site: "s 1", PortName: "x2", MAC: mac(3)},
		"bad port":        {VC: "a", VLAN: 10, Site: "s1", PortName: "", MAC: mac(4)},
		"tunnel port":     {VC: "a", VLAN: 10, Site: "s1", PortName: "gre-s2", MAC: mac(5)},
		"vlan 0":          {VC: "a", VLAN: 0, Site: "s1", PortName: "x3", MAC: mac(6)},
		"vlan 4095":       {VC: "a", VLAN: 4095, Site: "s1", PortName: "x4", MAC: mac(7)},
		"zero mac":        {VC: "a", VLAN: 10, Site: "s1", PortName: "x5"},
		"multicast mac":   {VC: "a", VLAN: 10, Site: "s1", PortName: "x6", MAC: overlay.MAC{1, 0, 0x5e, 0, 0, 1}},
		"ipv6":            {VC: "a", VLAN: 10, Site: "s1", PortName: "x7", MAC: mac(8), IP: netip.MustParseAddr("fe80::1")},
		"vlan of other":   {VC: "b", VLAN: 10, Site: "s2", PortName: "b1", MAC: mac(9)},
		"dup mac in vlan": {VC: "a", VLAN: 10, Site: "s2", PortName: "a2", MAC: mac(1)},
		"dup ip in vlan":  {VC: "a", VLAN: 10, Site: "s2", PortName: "a3", MAC: mac(10), IP: ip(1)},
		"dup port":        {VC: "a", VLAN: 10, Site: "s1", PortName: "a1", MAC: mac(11)},
	}
	fine := []Endpoint{
		ok,
		{VC: "b", VLAN: 11, Site: "s1", PortName: "b1", MAC: mac(1), IP: ip(1)}, // same MAC and IP, other VLAN
		{VC: "a", VLAN: 10, Site: "s2", PortName: "a1", MAC: mac(12)},           // same port name, other site; no IP
	}
	in := slices.Clone(fine)
	for _, e := range cases {
		in = append(in, e)
	}
	got, problems := CleanEndpoints(in)
	if len(got) != len(fine) {
		t.Errorf("kept %d, want %d: %+v", len(got), len(fine), got)
	}
	for _, e := range fine {
		if !slices.Contains(got, e) {
			t.Errorf("dropped %+v", e)
		}
	}
	if len(problems) != len(cases) {
		t.Errorf("%d problems, want %d:\n%v", len(problems), len(cases), errors.Join(problems...))
	}
	for _, p := range problems {
		if !errors.Is(p, ErrBadEndpoint) {
			t.Errorf("%v does not wrap ErrBadEndpoint", p)
		}
	}
	// The VLAN owner is the smaller VC name, whatever the order.
	got, _ = CleanEndpoints([]Endpoint{cases["vlan of other"], {VC: "c", VLAN: 10, Site: "s1", PortName: "c1", MAC: mac(20)}})
	if len(got) != 1 || got[0].VC != "b" {
		t.Errorf("VLAN owner: %+v", got)
	}
}

func TestBuildDesiredDump(t *testing.T) {
	d, _ := BuildDesired(demoGraph(true), "s1", 1, demoEndpoints())
	dump := overlay.DumpDesired(d)
	for _, want := range []string{
		`tunnel "gre-s3": remote_site=s3 remote_ip=192.0.2.13`,
		`port "a1": vc=a tag=10 mac=02:00:00:0a:01:01 ip=10.0.0.11`,
		` table=0, priority=300,arp,in_port="a1",vlan_tci=0x0000/0x1fff,arp_op=1 actions=push_vlan:0x8100,set_field:4106->vlan_vid,goto_table:2`,
		// s3's node is reached through s2 since s1~s3 is cut.
		` cookie=0x6d73000a00000001, table=1, priority=100,dl_vlan=10,dl_dst=02:00:00:0a:03:01 actions=output:"gre-s2"`,
		` cookie=0x6d73000000000001, table=2, priority=0 actions=drop`,
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
}
