package topology

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/overlay"
)

// siteNames mixes short names and long ones that need hashed tunnel names,
// in an order unrelated to their sort order.
var siteNames = []string{"s3", "b", "s1", "tokyo-university-a", "a", "s2", "tokyo-university-b", "z9", "m"}

// bytes is a reader over fuzz input that yields zeros when exhausted.
type bytes struct {
	b []byte
	i int
}

func (r *bytes) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *bytes) more() bool { return r.i < len(r.b) }

// decodeGraph turns fuzz bytes into graph records: 2-9 sites, some not
// live, some without a record or with a bad gateway, and up to 40 link
// records with small costs (to make ties common) that may be down,
// duplicated or touch unknown sites.
func decodeGraph(r *bytes) (sites []Site, live []string, links []Link) {
	n := 2 + int(r.next())%8
	for i := range n {
		flags := r.next()
		name := siteNames[i]
		if flags&1 == 0 {
			live = append(live, name)
		}
		switch {
		case flags&6 == 6:
			sites = append(sites, Site{Name: name}) // no gateway
		case flags&6 == 4:
			// no record at all
		default:
			sites = append(sites, Site{Name: name, Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})})
		}
	}
	for k := 0; k < 40 && r.more(); k++ {
		a, b, c := r.next(), r.next(), r.next()
		links = append(links, Link{
			A: siteNames[int(a)%len(siteNames)], B: siteNames[int(b)%len(siteNames)],
			Cost: uint32(c % 8), Up: c&0x80 == 0,
			Updated: time.Unix(int64(c>>3&3), 0),
		})
	}
	return sites, live, links
}

// floyd computes all-pairs distances independently of Dijkstra.
func floyd(g *Graph) map[[2]string]uint64 {
	names := g.Sites()
	d := map[[2]string]uint64{}
	for _, a := range names {
		for _, b := range names {
			switch c, ok := g.Cost(a, b); {
			case a == b:
				d[[2]string{a, b}] = 0
			case ok:
				d[[2]string{a, b}] = uint64(c)
			default:
				d[[2]string{a, b}] = Unreachable
			}
		}
	}
	for _, k := range names {
		for _, a := range names {
			for _, b := range names {
				ak, kb := d[[2]string{a, k}], d[[2]string{k, b}]
				if ak != Unreachable && kb != Unreachable && ak+kb < d[[2]string{a, b}] {
					d[[2]string{a, b}] = ak + kb
				}
			}
		}
	}
	return d
}

func FuzzShortestPaths(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 2, 5, 0, 2, 5, 0, 2, 0x85})
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{4, 1, 6, 4, 0, 0, 1, 0, 1, 2, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		sites, live, links := decodeGraph(&bytes{b: data})
		g := NewGraph(sites, live, links)
		names := g.Sites()
		liveSet := map[string]bool{}
		for _, l := range live {
			liveSet[l] = true
		}
		for _, s := range names {
			if !liveSet[s] {
				t.Fatalf("site %s is in the graph but not live", s)
			}
		}
		ref := floyd(g)
		for _, from := range names {
			for _, to := range names {
				want := ref[[2]string{from, to}]
				if got := g.Distance(from, to); got != want {
					t.Fatalf("Distance(%s,%s) = %d, Floyd-Warshall says %d\n%s", from, to, got, want, g)
				}
				if from == to || want == Unreachable {
					if _, ok := g.NextHop(from, to); ok {
						t.Fatalf("NextHop(%s,%s) exists without a path", from, to)
					}
					continue
				}
				// Follow next hops: reach to, no site twice, cost = distance.
				cur, cost, seen := from, uint64(0), map[string]bool{from: true}
				for cur != to {
					hop, ok := g.NextHop(cur, to)
					if !ok {
						t.Fatalf("%s->%s: no next hop at %s", from, to, cur)
					}
					c, ok := g.Cost(cur, hop)
					if !ok {
						t.Fatalf("%s->%s: next hop %s->%s is not a usable link", from, to, cur, hop)
					}
					if seen[hop] {
						t.Fatalf("%s->%s: loop at %s", from, to, hop)
					}
					seen[hop] = true
					cost += uint64(c)
					cur = hop
				}
				if cost != want {
					t.Fatalf("%s->%s: path cost %d, distance %d", from, to, cost, want)
				}
				if p := g.Path(from, to); len(p) != len(seen) || p[0] != from || p[len(p)-1] != to {
					t.Fatalf("Path(%s,%s) = %v", from, to, p)
				}
			}
		}
		// The input order never matters.
		slices.Reverse(sites)
		slices.Reverse(live)
		slices.Reverse(links)
		g2 := NewGraph(sites, live, links)
		if g.String() != g2.String() {
			t.Fatalf("order changed the graph:\n%s\n---\n%s", g, g2)
		}
		for _, from := range names {
			if a, b := g.Routes(from), g2.Routes(from); !slices.Equal(a, b) {
				t.Fatalf("order changed routes from %s: %v vs %v", from, a, b)
			}
		}
	})
}

// decodeEndpoints: up to 16 endpoints from small pools, so VLAN, MAC, IP
// and port name conflicts are common.
func decodeEndpoints(r *bytes) []Endpoint {
	var eps []Endpoint
	for k := 0; k < 16 && r.more(); k++ {
		a, b, c := r.next(), r.next(), r.next()
		e := Endpoint{
			VC:       []string{"a", "b", "c", ""}[a&3],
			VLAN:     []uint16{10, 11, 12, 0, 4094, 4095, 10, 11}[a>>2&7],
			Site:     siteNames[int(a>>5)%len(siteNames)],
			PortName: []string{"p1", "p2", "p3", "gre-x", "p4", "", "p5", "p6"}[b&7],
			MAC:      overlay.MAC{2, 0, 0, 0, 0, b >> 3 & 7},
			Internal: c&0x40 != 0,
		}
		if b&0x40 != 0 {
			e.MAC[0] = 3 // multicast
		}
		if c&7 != 0 {
			e.IP = netip.AddrFrom4([4]byte{10, 0, 0, c & 7})
		}
		if c&0x80 != 0 {
			e.Site = siteNames[int(c>>3&7)%len(siteNames)]
		}
		eps = append(eps, e)
	}
	return eps
}

// checkIsolationStatic: no flow can output a frame of VLAN x to a port of
// VLAN y. A flow's VLAN is what its match pins down: a VLAN match, or an
// in_port that is a VC port (whose frames are untagged and get its tag).
func checkIsolationStatic(t *testing.T, d overlay.Desired) {
	t.Helper()
	vlanOf := map[string]uint16{}
	for _, p := range d.Ports {
		vlanOf[p.Name] = p.VLAN
	}
	for _, fl := range d.Flows {
		var ctx uint16 // 0: unknown
		if fl.Match.VLAN != overlay.VLANAny && fl.Match.VLAN != overlay.VLANUntagged {
			ctx = uint16(fl.Match.VLAN)
		}
		if v, ok := vlanOf[fl.Match.InPort]; ok {
			if fl.Match.VLAN != overlay.VLANUntagged {
				t.Fatalf("flow from VC port accepts tagged frames: %s", fl)
			}
			if ctx != 0 && ctx != v {
				t.Fatalf("flow mixes VLANs: %s", fl)
			}
			ctx = v
		}
		tagged := fl.Match.VLAN != overlay.VLANUntagged && fl.Match.VLAN != overlay.VLANAny
		for _, a := range fl.Actions {
			switch a.Kind {
			case overlay.ActPushVLAN:
				if ctx == 0 || a.VLAN != ctx || tagged {
					t.Fatalf("flow tags with VLAN %d in context %d: %s", a.VLAN, ctx, fl)
				}
				tagged = true
			case overlay.ActPopVLAN:
				tagged = false
			case overlay.ActOutput:
				if v, ok := vlanOf[a.Port]; ok {
					if v != ctx || tagged {
						t.Fatalf("flow outputs a VLAN %d frame (tagged=%v) to port %s of VLAN %d: %s", ctx, tagged, a.Port, v, fl)
					}
				} else if ctx == 0 || !tagged {
					t.Fatalf("flow sends an untagged or unknown-VLAN frame into tunnel %s: %s", a.Port, fl)
				}
			}
		}
	}
}

func FuzzDesired(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 2, 5, 0, 2, 5, 0x80}, []byte{0x20, 0x08, 0x01, 0x40, 0x10, 0x02, 0x24, 0x18, 0x03, 0x44, 0x20, 0x04})
	f.Add([]byte{2, 0, 0}, []byte{0, 0, 1, 0, 8, 2, 1, 16, 3, 0x21, 0x60, 0x84})
	f.Fuzz(func(t *testing.T, graphBytes, epBytes []byte) {
		sites, live, links := decodeGraph(&bytes{b: graphBytes})
		g := NewGraph(sites, live, links)
		eps := decodeEndpoints(&bytes{b: epBytes})
		clean, _ := CleanEndpoints(eps)
		n := build(g, 5, eps)
		for s, d := range n.desired {
			if err := d.Validate(); err != nil {
				t.Fatalf("site %s: %v\n%s", s, err, overlay.DumpDesired(d))
			}
			checkIsolationStatic(t, d)
		}
		reachable := func(a, b Endpoint) bool {
			return a.Site == b.Site || g.Distance(a.Site, b.Site) != Unreachable
		}
		for _, a := range clean {
			for _, dst := range clean {
				if a == dst {
					continue
				}
				out, hops, loop := n.send(a.Site, a.PortName, frameTo(a, dst))
				if loop {
					t.Fatalf("%s/%s -> %s: loop %v", a.Site, a.PortName, dst.MAC, hops)
				}
				// The receiver, if any, is the endpoint with dst's MAC in a's VLAN.
				var want []delivery
				for _, e := range clean {
					if e.VLAN == a.VLAN && e.MAC == dst.MAC && e != a && reachable(a, e) {
						want = append(want, delivery{site: e.Site, port: e.PortName})
					}
				}
				var got []delivery
				for _, o := range out {
					if len(o.frame.VLANs) != 0 {
						t.Fatalf("tagged delivery %+v", o)
					}
					got = append(got, delivery{site: o.site, port: o.port})
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s/%s (VLAN %d) -> %s: delivered %v, want %v\n%s", a.Site, a.PortName, a.VLAN, dst.MAC, got, want, g)
				}
				if len(want) == 1 && want[0].site != a.Site {
					var cost uint64
					for _, h := range hops {
						c, _ := g.Cost(h.from, h.to)
						cost += uint64(c)
					}
					if d := g.Distance(a.Site, want[0].site); cost != d {
						t.Fatalf("%s -> %s: path %v costs %d, distance %d", a.Site, want[0].site, hops, cost, d)
					}
				}
			}
		}
	})
}
