// Package dataplanetest is the contract suite every overlay.Dataplane
// passes: the fake (overlay/fakedp) in the unit tier and the Open vSwitch
// implementation (overlay/ovs) in the integration tier. It also provides
// the shared fixture: the desired states of a 3-site, 2-VC overlay.
//
// Usage, in the implementation's tests:
//
//	func TestContract(t *testing.T) {
//		dataplanetest.Run(t, func(t *testing.T) overlay.Dataplane { return newSwitch(t) })
//	}
//
// newDataplane must return a fresh, empty switch for site "s1" for each call
// (one per subtest) and clean it up with t.Cleanup. Subtests run
// sequentially. Every Desired the suite applies is for site s1 (fixture
// gateways 192.0.2.11-13, which need not be reachable: only BFD's enabled
// flag is checked), and its VC ports a1, a2, b1, b2 are internal ports
// (overlay.Port.Internal), so no devices need to exist beforehand.
// Optional capabilities (ForeignFlowAdder, ChangeCounter) enable more checks
// when the returned value implements them.
package dataplanetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// ForeignFlowAdder installs a flow the way another controller (or
// ovs-ofctl add-flow) would, bypassing Apply. The flow's cookie is not
// musubi's. Implement it on the dataplane or on a test wrapper of it.
type ForeignFlowAdder interface {
	AddForeignFlow(ctx context.Context, f overlay.Flow) error
}

// ChangeCounter counts the changes made to the switch so far: one per
// tunnel or port created, updated or deleted, and one per flow added,
// modified (an OpenFlow add over an existing identity counts once) or
// deleted. The suite uses it to check that Apply does no needless work.
type ChangeCounter interface {
	Changes() uint64
}

// The fixture: sites s1-s3 (gateways 192.0.2.11-13), VCs a (VLAN 10) and
// b (VLAN 11), two nodes of each VC at each site on internal ports a1, a2,
// b1, b2; the VCs reuse the same IP addresses. All links cost 500 µs.

// FixtureSites returns the fixture's sites/ records.
func FixtureSites() []topology.Site {
	return []topology.Site{
		{Name: "s1", Gateway: netip.MustParseAddr("192.0.2.11")},
		{Name: "s2", Gateway: netip.MustParseAddr("192.0.2.12")},
		{Name: "s3", Gateway: netip.MustParseAddr("192.0.2.13")},
	}
}

// FixtureGraph returns the fixture's graph; cut13 marks the s1~s3 link
// down, so s1 and s3 reach each other through s2.
func FixtureGraph(cut13 bool) *topology.Graph {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return topology.NewGraph(FixtureSites(), []string{"s1", "s2", "s3"}, []topology.Link{
		{A: "s1", B: "s2", Cost: 500, Up: true, Updated: at},
		{A: "s2", B: "s3", Cost: 500, Up: true, Updated: at},
		{A: "s1", B: "s3", Cost: 500, Up: !cut13, Updated: at},
	})
}

// FixtureEndpoints returns the fixture's VC endpoints. Node k (1, 2) of VC
// v at site s has port v<k>, MAC 02:00:00:<VLAN>:<s>:<k> and IP
// 10.0.0.<10s+k>.
func FixtureEndpoints() []topology.Endpoint {
	var eps []topology.Endpoint
	for s := 1; s <= 3; s++ {
		for vi, vc := range []string{"a", "b"} {
			for k := 1; k <= 2; k++ {
				eps = append(eps, topology.Endpoint{
					VC: vc, VLAN: uint16(10 + vi), Site: fmt.Sprintf("s%d", s),
					PortName: fmt.Sprintf("%s%d", vc, k),
					MAC:      overlay.MAC{0x02, 0, 0, byte(10 + vi), byte(s), byte(k)},
					IP:       netip.AddrFrom4([4]byte{10, 0, 0, byte(10*s + k)}),
					Internal: true,
				})
			}
		}
	}
	return eps
}

// Fixture returns the desired state of one fixture site.
func Fixture(site string, generation uint32, cut13 bool) overlay.Desired {
	d, _ := topology.BuildDesired(FixtureGraph(cut13), site, generation, FixtureEndpoints())
	return d
}

// Run runs the contract suite.
func Run(t *testing.T, newDataplane func(t *testing.T) overlay.Dataplane) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, dp overlay.Dataplane)
	}{
		{"EmptyAtStart", testEmpty},
		{"ApplyThenObserve", testApply},
		{"IdempotentApply", testIdempotent},
		{"NewGenerationReplacesCookies", testNewGeneration},
		{"RerouteWithinGeneration", testReroute},
		{"SiteLeavesAndJoins", testSiteLeaves},
		{"TunnelAndPortUpdatedInPlace", testUpdateInPlace},
		{"EmptyDesiredRemovesEverythingOwned", testEmptyDesired},
		{"InvalidChangesNothing", testInvalid},
		{"CancelledContext", testCancelled},
		{"ForeignFlowsLeftAlone", testForeign},
		{"ObserveDuringApply", testConcurrent},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newDataplane(t)) })
	}
}

func apply(t *testing.T, dp overlay.Dataplane, d overlay.Desired) {
	t.Helper()
	if err := dp.Apply(t.Context(), d); err != nil {
		t.Fatalf("Apply(%s gen %d): %v", d.Site, d.Generation, err)
	}
}

func observe(t *testing.T, dp overlay.Dataplane) overlay.Observed {
	t.Helper()
	o, err := dp.Observe(t.Context())
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return o
}

// owned keeps musubi's flows only.
func owned(o overlay.Observed) overlay.Observed {
	var fl []overlay.Flow
	for _, f := range o.Flows {
		if f.Cookie.Owned() {
			fl = append(fl, f)
		}
	}
	o.Flows, o.Opaque = fl, nil
	return o
}

// assertMatches checks that the switch holds exactly d (musubi's part), with
// port numbers assigned and BFD enabled on every tunnel.
func assertMatches(t *testing.T, dp overlay.Dataplane, d overlay.Desired) overlay.Observed {
	t.Helper()
	o := observe(t, dp)
	if got, want := overlay.Dump(owned(o)), overlay.DumpDesired(d); got != want {
		t.Fatalf("switch differs from desired state (site %s gen %d)\n%s", d.Site, d.Generation, diff(want, got))
	}
	for _, tu := range o.Tunnels {
		if tu.OFPort <= 0 || !tu.BFD.Enabled {
			t.Errorf("tunnel %s: ofport %d, BFD enabled %v", tu.PortName, tu.OFPort, tu.BFD.Enabled)
		}
	}
	for _, p := range o.Ports {
		if p.OFPort <= 0 {
			t.Errorf("port %s: ofport %d", p.Name, p.OFPort)
		}
	}
	return o
}

// diff renders the lines only in want (-) and only in got (+).
func diff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

func changes(dp overlay.Dataplane) (uint64, bool) {
	c, ok := dp.(ChangeCounter)
	if !ok {
		return 0, false
	}
	return c.Changes(), true
}

func testEmpty(t *testing.T, dp overlay.Dataplane) {
	o := owned(observe(t, dp))
	if len(o.Tunnels)+len(o.Ports)+len(o.Flows) != 0 {
		t.Fatalf("a new dataplane is not empty:\n%s", overlay.Dump(o))
	}
}

func testApply(t *testing.T, dp overlay.Dataplane) {
	for _, d := range []overlay.Desired{Fixture("s1", 1, false), Fixture("s1", 1, true)} {
		apply(t, dp, d)
		o := assertMatches(t, dp, d)
		seen := map[int32]string{}
		for _, tu := range o.Tunnels {
			seen[tu.OFPort] = tu.PortName
		}
		for _, p := range o.Ports {
			if other, dup := seen[p.OFPort]; dup {
				t.Errorf("ports %s and %s share ofport %d", p.Name, other, p.OFPort)
			}
			seen[p.OFPort] = p.Name
		}
	}
}

func testIdempotent(t *testing.T, dp overlay.Dataplane) {
	d := Fixture("s1", 1, false)
	apply(t, dp, d)
	before := overlay.Dump(observe(t, dp))
	c0, counted := changes(dp)
	apply(t, dp, d.Clone())
	if c1, _ := changes(dp); counted && c1 != c0 {
		t.Errorf("applying the same state again made %d changes", c1-c0)
	}
	if after := overlay.Dump(observe(t, dp)); after != before {
		t.Errorf("second Apply changed the switch:\n%s", diff(before, after))
	}
}

func testNewGeneration(t *testing.T, dp overlay.Dataplane) {
	apply(t, dp, Fixture("s1", 1, false))
	c0, counted := changes(dp)
	d2 := Fixture("s1", 2, false)
	apply(t, dp, d2)
	o := assertMatches(t, dp, d2)
	for _, f := range o.Flows {
		if f.Cookie.Owned() && f.Cookie.Generation() != 2 {
			t.Errorf("stale flow left: %s", f)
		}
	}
	// Every flow is re-added with the new cookie over its old identity;
	// nothing is deleted and re-added, tunnels and ports stay.
	if c1, _ := changes(dp); counted && c1-c0 != uint64(len(d2.Flows)) {
		t.Errorf("new generation made %d changes, want %d (one per flow)", c1-c0, len(d2.Flows))
	}
}

func testReroute(t *testing.T, dp overlay.Dataplane) {
	apply(t, dp, Fixture("s1", 1, false))
	c0, counted := changes(dp)
	d := Fixture("s1", 1, true)
	apply(t, dp, d)
	assertMatches(t, dp, d)
	// Only the 4 flows toward s3's nodes change their tunnel.
	if c1, _ := changes(dp); counted && c1-c0 != 4 {
		t.Errorf("reroute made %d changes, want 4", c1-c0)
	}
	d = Fixture("s1", 1, false)
	apply(t, dp, d)
	assertMatches(t, dp, d)
}

func testSiteLeaves(t *testing.T, dp overlay.Dataplane) {
	full := Fixture("s1", 1, false)
	apply(t, dp, full)
	// s3 dies: its tunnel and the flows toward its nodes go, in a new
	// generation (as after a controller restart).
	g := topology.NewGraph(FixtureSites(), []string{"s1", "s2"}, nil)
	d, _ := topology.BuildDesired(g, "s1", 2, FixtureEndpoints())
	apply(t, dp, d)
	o := assertMatches(t, dp, d)
	if len(o.Tunnels) != 1 || o.Tunnels[0].RemoteSite != "s2" {
		t.Errorf("tunnels after s3 left: %+v", o.Tunnels)
	}
	// s3 comes back.
	full = Fixture("s1", 2, false)
	apply(t, dp, full)
	assertMatches(t, dp, full)
}

func testUpdateInPlace(t *testing.T, dp overlay.Dataplane) {
	d := Fixture("s1", 1, false)
	apply(t, dp, d)
	o1 := observe(t, dp)
	// s2 moves to a new gateway address; VC b is re-tagged to VLAN 12.
	sites := FixtureSites()
	sites[1].Gateway = netip.MustParseAddr("192.0.2.42")
	eps := FixtureEndpoints()
	for i := range eps {
		if eps[i].VC == "b" {
			eps[i].VLAN = 12
		}
	}
	g := topology.NewGraph(sites, []string{"s1", "s2", "s3"}, nil)
	d2, _ := topology.BuildDesired(g, "s1", 1, eps)
	apply(t, dp, d2)
	o2 := assertMatches(t, dp, d2)
	ofport := func(o overlay.Observed, name string) int32 {
		for _, x := range o.Tunnels {
			if x.PortName == name {
				return x.OFPort
			}
		}
		for _, x := range o.Ports {
			if x.Name == name {
				return x.OFPort
			}
		}
		return 0
	}
	for _, name := range []string{"gre-s2", "b1", "b2"} {
		if a, b := ofport(o1, name), ofport(o2, name); a != b {
			t.Errorf("%s was re-created (ofport %d -> %d), want an update in place", name, a, b)
		}
	}
}

func testEmptyDesired(t *testing.T, dp overlay.Dataplane) {
	apply(t, dp, Fixture("s1", 1, false))
	empty := overlay.Desired{Site: "s1", Generation: 2}
	apply(t, dp, empty)
	o := owned(observe(t, dp))
	if len(o.Tunnels)+len(o.Ports)+len(o.Flows) != 0 {
		t.Fatalf("musubi's state left after an empty Apply:\n%s", overlay.Dump(o))
	}
}

func testInvalid(t *testing.T, dp overlay.Dataplane) {
	d := Fixture("s1", 1, false)
	apply(t, dp, d)
	before := overlay.Dump(observe(t, dp))
	bad := Fixture("s1", 2, true)
	bad.Flows = append(bad.Flows, overlay.Flow{Table: 5, Priority: 1, Cookie: overlay.NewCookie(0, 2),
		Actions: []overlay.Action{overlay.Output("no-such-port")}})
	if err := dp.Apply(t.Context(), bad); !errors.Is(err, overlay.ErrInvalid) {
		t.Fatalf("Apply(invalid) = %v, want ErrInvalid", err)
	}
	if after := overlay.Dump(observe(t, dp)); after != before {
		t.Errorf("invalid Apply changed the switch:\n%s", diff(before, after))
	}
}

func testCancelled(t *testing.T, dp overlay.Dataplane) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := dp.Apply(ctx, Fixture("s1", 1, false)); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply(cancelled ctx) = %v, want context.Canceled", err)
	}
	d := Fixture("s1", 1, false)
	apply(t, dp, d)
	assertMatches(t, dp, d)
}

func testForeign(t *testing.T, dp overlay.Dataplane) {
	fa, ok := dp.(ForeignFlowAdder)
	if !ok {
		t.Skip("dataplane does not implement dataplanetest.ForeignFlowAdder")
	}
	foreign := []overlay.Flow{
		{Table: 0, Priority: 50, Cookie: 0xf00d, Match: overlay.Match{EthType: 0x88cc}},
		{Table: 9, Priority: 1234, Cookie: 0, Match: overlay.Match{EthType: 0x88b5}},
	}
	for _, f := range foreign {
		if err := fa.AddForeignFlow(t.Context(), f); err != nil {
			t.Fatalf("AddForeignFlow: %v", err)
		}
	}
	check := func(when string) {
		t.Helper()
		o := observe(t, dp)
		for _, f := range foreign {
			found := false
			for _, g := range o.Flows {
				if g.Equal(f) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: foreign flow %s is gone or changed\n%s", when, f, overlay.Dump(o))
			}
		}
	}
	d := Fixture("s1", 1, false)
	apply(t, dp, d)
	assertMatches(t, dp, d)
	check("after Apply")
	apply(t, dp, Fixture("s1", 2, true))
	check("after a new generation")
	apply(t, dp, overlay.Desired{Site: "s1", Generation: 3})
	check("after an empty Apply")
}

func testConcurrent(t *testing.T, dp overlay.Dataplane) {
	states := []overlay.Desired{Fixture("s1", 1, false), Fixture("s1", 1, true), Fixture("s1", 2, false), Fixture("s1", 2, true)}
	done := make(chan error, 1)
	go func() {
		for _, d := range states {
			if err := dp.Apply(t.Context(), d); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var err error
	for finished := false; !finished; {
		select {
		case err = <-done:
			finished = true
		default:
			if _, oerr := dp.Observe(t.Context()); oerr != nil {
				t.Errorf("Observe during Apply: %v", oerr)
			}
		}
	}
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	assertMatches(t, dp, states[len(states)-1])
}
