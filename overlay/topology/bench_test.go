package topology

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/musubi-fabric/musubi/overlay"
)

// BenchmarkBuildDesired1000: 1,000 VC nodes in 10 VCs over 10 sites, the
// desired state of one site (what a peer recomputes on every change).
func BenchmarkBuildDesired1000(b *testing.B) {
	var sites []Site
	var live []string
	for s := range 10 {
		name := fmt.Sprintf("s%02d", s)
		sites = append(sites, Site{Name: name, Gateway: netip.AddrFrom4([4]byte{192, 0, 2, byte(s + 1)})})
		live = append(live, name)
	}
	g := NewGraph(sites, live, nil)
	var eps []Endpoint
	for i := range 1000 {
		eps = append(eps, Endpoint{
			VC: fmt.Sprintf("vc%d", i%10), VLAN: uint16(100 + i%10), Site: fmt.Sprintf("s%02d", i/10%10),
			PortName: fmt.Sprintf("n%d", i), MAC: overlay.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)},
			IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
		})
	}
	b.ReportAllocs()
	for b.Loop() {
		d, _ := BuildDesired(g, "s00", 1, eps)
		if len(d.Flows) == 0 {
			b.Fatal("no flows")
		}
	}
	d, _ := BuildDesired(g, "s00", 1, eps)
	b.ReportMetric(float64(len(d.Flows)), "flows")
}
