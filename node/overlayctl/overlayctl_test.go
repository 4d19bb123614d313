package overlayctl_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/dataplanetest"
	"github.com/musubi-fabric/musubi/overlay/fakedp"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// threeSites starts the fixture's three sites with their records.
func threeSites(t *testing.T) (*memstore.Server, *memstore.Store, []*peer) {
	srv := memstore.New()
	st := admin(t, srv)
	writeFixture(t, st, false)
	var ps []*peer
	for _, n := range []string{"s1", "s2", "s3"} {
		ps = append(ps, startPeer(t, srv, n, nil))
	}
	for _, p := range ps {
		p.waitFixture(t, false)
	}
	return srv, st, ps
}

func TestConvergesToFixture(t *testing.T) {
	_, st, ps := threeSites(t)
	for _, p := range ps {
		s := p.ctl.Stats()
		if s.Generation != 1 || !s.Loaded || s.Registrations != 1 || s.Applies == 0 || len(s.Problems) != 0 {
			t.Errorf("%s: stats %+v", p.name, s)
		}
	}
	// The peers registered their sites.
	for _, n := range []string{"s1", "s2", "s3"} {
		if ok, _, err := st.Exists(t.Context(), coord.LivePath(n)); err != nil || !ok {
			t.Errorf("live/%s missing: %v", n, err)
		}
		data, _, err := st.Get(t.Context(), coord.SitePath(n))
		if err != nil || !strings.Contains(string(data), gateway(n).String()) {
			t.Errorf("sites/%s = %q, %v", n, data, err)
		}
	}
	if got := ps[0].hop(3); got != "gre-s3" {
		t.Errorf("s1 -> s3 leaves by %q, want gre-s3", got)
	}
}

// A link going down in links/ reroutes both its ends through s2, and
// coming back up restores the direct path.
func TestLinkDownInRecordsReroutes(t *testing.T) {
	_, st, ps := threeSites(t)
	writeLink(t, st, "s1", "s3", false)
	ps[0].waitFixture(t, true)
	ps[2].waitFixture(t, true)
	ps[1].waitFixture(t, true) // s2's state does not depend on s1~s3
	if got := ps[0].hop(3); got != "gre-s2" {
		t.Errorf("s1 -> s3 leaves by %q, want gre-s2", got)
	}
	if got := ps[2].hop(1); got != "gre-s2" {
		t.Errorf("s3 -> s1 leaves by %q, want gre-s2", got)
	}
	// s2 forwards what arrives from s1's tunnel toward s3 on to s3.
	out := ps[1].dp.Trace("gre-s1", overlay.Frame{EthDst: overlay.MAC{0x02, 0, 0, 10, 3, 1}, VLANs: []uint16{10}, EthType: 0x0800})
	if len(out) != 1 || out[0].Port != "gre-s3" {
		t.Errorf("s2 transit s1 -> s3: %+v", out)
	}
	writeLink(t, st, "s1", "s3", true)
	ps[0].waitFixture(t, false)
	ps[2].waitFixture(t, false)
}

// A site whose peer goes (its live/ node vanishes) loses its tunnels and
// routes everywhere.
func TestSiteLeavingLiveRemovesItsTunnels(t *testing.T) {
	_, _, ps := threeSites(t)
	ps[2].stop(t)
	if err := ps[2].st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps[:2] {
		waitFor(t, 5*time.Second, p.name+" dropping s3", func() bool {
			o, err := p.dp.Observe(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, tu := range o.Tunnels {
				if tu.RemoteSite == "s3" {
					return false
				}
			}
			return len(o.Tunnels) == 1
		})
		if d := p.dp.Dump(); strings.Contains(d, "gre-s3") {
			t.Errorf("%s still refers to gre-s3:\n%s", p.name, d)
		}
		// s3's nodes are unreachable: frames toward them are dropped.
		if got := p.hop(3); got != "0 outputs" {
			t.Errorf("%s -> s3 leaves by %q, want dropped", p.name, got)
		}
	}
}

// A restarted subsystem installs a new generation and leaves no flow of
// the old one.
func TestRestartBumpsGeneration(t *testing.T) {
	srv, _, ps := threeSites(t)
	dp := ps[0].dp
	before := dp.Changes()
	ps[0].stop(t)
	// The switch is left as it was.
	if dp.Changes() != before || !ps[0].matches(false) {
		t.Fatal("stopping the subsystem changed the switch")
	}
	p := startPeer(t, srv, "s1", dp)
	waitFor(t, 5*time.Second, "generation 2", func() bool { return p.ctl.Stats().Generation == 2 && p.matches(false) })
	o, err := dp.Observe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range o.Flows {
		if f.Cookie.Generation() != 2 {
			t.Errorf("stale flow: %s", f)
		}
	}
	// A third start takes generation 3; an explicit generation wins.
	p.stop(t)
	p = startPeer(t, srv, "s1", dp, func(c *overlayctl.Config) { c.Generation = 7 })
	waitFor(t, 5*time.Second, "generation 7", func() bool { return p.matches(false) && p.ctl.Stats().Generation == 7 })
}

// While its session is disconnected the subsystem keeps what it applied,
// even when the records it watches change; it catches up on reconnect.
func TestDisconnectKeepsState(t *testing.T) {
	_, _, ps := threeSites(t)
	p1 := ps[0]
	p1.st.setDown(true)
	waitFor(t, 2*time.Second, "disconnected", func() bool { return p1.ctl.Stats().Session == coord.StateDisconnected })
	errs := p1.ctl.Stats().ReadErrors
	// s3 goes away: s1's watch fires, but its re-read fails.
	ps[2].stop(t)
	_ = ps[2].st.Close()
	waitFor(t, 2*time.Second, "a failed re-read", func() bool { return p1.ctl.Stats().ReadErrors > errs+1 })
	if !p1.matches(false) {
		t.Fatalf("s1 changed its switch while disconnected:\n%s", p1.dp.Dump())
	}
	// s2, connected, has dropped s3 meanwhile.
	waitFor(t, 2*time.Second, "s2 dropping s3", func() bool { return !strings.Contains(ps[1].dp.Dump(), "gre-s3") })
	p1.st.setDown(false)
	waitFor(t, 2*time.Second, "s1 dropping s3 after reconnecting", func() bool { return !strings.Contains(p1.dp.Dump(), "gre-s3") })
}

// After a session expiry the site registers again (its live/ node came
// back) and the others keep or regain their tunnels to it.
func TestExpiryReregisters(t *testing.T) {
	_, st, ps := threeSites(t)
	ps[0].st.Expire()
	waitFor(t, 2*time.Second, "second registration", func() bool { return ps[0].ctl.Stats().Registrations == 2 })
	ok, stat, err := st.Exists(t.Context(), coord.LivePath("s1"))
	if err != nil || !ok || stat.EphemeralOwner != ps[0].st.SessionID() {
		t.Fatalf("live/s1 after expiry: %v %+v %v", ok, stat, err)
	}
	for _, p := range ps {
		p.waitFixture(t, false)
	}
	// Watches were re-armed: a change still reaches s1.
	writeLink(t, st, "s1", "s3", false)
	ps[0].waitFixture(t, true)
}

// The lower-named end writes links/: down at once, up only after the
// hold-down, and the higher-named end never writes.
func TestLinkRecordFromBFD(t *testing.T) {
	_, st, ps := threeSites(t)
	s1, s3 := ps[0], ps[2]
	writes := s3.ctl.Stats().LinkWrites
	s3.ctl.ObserveLink(overlayctl.LinkObservation{Remote: "s1", Up: false})
	s1.ctl.ObserveLink(overlayctl.LinkObservation{Remote: "s3", Up: false})
	waitFor(t, 2*time.Second, "links/s1~s3 down", func() bool { l, ok := readLink(t, st, "s1", "s3"); return ok && !l.Up })
	for _, p := range ps {
		p.waitFixture(t, true)
	}
	up := time.Now()
	s1.ctl.ObserveLink(overlayctl.LinkObservation{Remote: "s3", Up: true, RemoteUp: true, At: up})
	s3.ctl.ObserveLink(overlayctl.LinkObservation{Remote: "s1", Up: true, RemoteUp: true, At: up})
	waitFor(t, 2*time.Second, "links/s1~s3 up", func() bool { l, ok := readLink(t, st, "s1", "s3"); return ok && l.Up })
	if held := time.Since(up); held < 200*time.Millisecond {
		t.Errorf("link written up %v after BFD came up, hold-down is 200ms", held)
	}
	l, _ := readLink(t, st, "s1", "s3")
	if l.A != "s1" || l.B != "s3" || l.Cost != 500 {
		t.Errorf("record %+v", l)
	}
	for _, p := range ps {
		p.waitFixture(t, false)
	}
	if w := s3.ctl.Stats().LinkWrites; w != writes {
		t.Errorf("s3 (the higher-named end) wrote %d link records", w-writes)
	}
	// BFD up at this end only (the remote does not see us): still down.
	s1.ctl.ObserveLink(overlayctl.LinkObservation{Remote: "s3", Up: true, RemoteUp: false})
	waitFor(t, 2*time.Second, "links/s1~s3 down again", func() bool { l, ok := readLink(t, st, "s1", "s3"); return ok && !l.Up })
}

// A link this site's BFD sees down is routed around at once, before any
// record changes (here at s3, the end that does not write links/).
func TestLocalRepair(t *testing.T) {
	_, st, ps := threeSites(t)
	s3 := ps[2]
	s3.ctl.ObserveLink(overlayctl.LinkObservation{Remote: "s1", Up: false})
	s3.waitFixture(t, true)
	if l, _ := readLink(t, st, "s1", "s3"); !l.Up {
		t.Fatal("the record changed")
	}
	if !ps[0].matches(false) {
		t.Error("s1 changed without a record change")
	}
	if s3.ctl.Stats().LocalRepairs == 0 {
		t.Error("no local repair counted")
	}
	// Turned off, s3 follows the records again.
	s3.ctl.SetLocalRepair(false)
	s3.waitFixture(t, false)
}

// The loop check of local repair: A's link to C fails, and B reaches C
// through A in the shared graph (its own link to C is expensive), so
// detouring through B would loop until B learns of the failure.
func TestLoopFree(t *testing.T) {
	at := time.Now()
	sites := []topology.Site{
		{Name: "a", Gateway: netip.MustParseAddr("192.0.2.1")},
		{Name: "b", Gateway: netip.MustParseAddr("192.0.2.2")},
		{Name: "c", Gateway: netip.MustParseAddr("192.0.2.3")},
	}
	live := []string{"a", "b", "c"}
	mk := func(ac bool, bc uint32) *topology.Graph {
		return topology.NewGraph(sites, live, []topology.Link{
			{A: "a", B: "b", Cost: 10, Up: true, Updated: at},
			{A: "a", B: "c", Cost: 10, Up: ac, Updated: at},
			{A: "b", B: "c", Cost: bc, Up: true, Updated: at},
		})
	}
	if !overlayctl.LoopFree(mk(true, 10), mk(false, 10), "a") {
		t.Error("detour through b, which reaches c directly, judged unsafe")
	}
	if overlayctl.LoopFree(mk(true, 100), mk(false, 100), "a") {
		t.Error("detour through b, which reaches c through a, judged safe")
	}
	if !overlayctl.LoopFree(mk(true, 100), mk(true, 100), "a") {
		t.Error("unchanged graph judged unsafe")
	}
}

// A burst of record changes is applied in a few Applies, not one each.
func TestDebounce(t *testing.T) {
	_, st, ps := threeSites(t)
	p := ps[0]
	before := p.ctl.Stats().Applies
	for i := range 30 {
		if err := overlayctl.PutNode(t.Context(), st, overlayctl.NodeRecord{
			Node: "n" + string(rune('a'+i%26)) + string(rune('0'+i/26)), VC: "c", Site: "s2", Port: "c" + string(rune('a'+i%26)) + string(rune('0'+i/26)),
			VLAN: 12, MAC: overlay.MAC{0x02, 0, 0, 12, 2, byte(i + 1)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "30 new MACs at s1", func() bool {
		return strings.Count(p.dp.Dump(), "dl_vlan=12,") == 30
	})
	if n := p.ctl.Stats().Applies - before; n > 5 {
		t.Errorf("%d Applies for a burst of 30 records", n)
	}
	t.Logf("burst of 30 node records: %d Applies", p.ctl.Stats().Applies-before)
}

// Bad records are left out and reported, without stopping the rest.
func TestBadRecordsReported(t *testing.T) {
	_, st, ps := threeSites(t)
	if _, err := st.Create(t.Context(), coord.VCNodePath("a", "junk"), []byte("{"), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	if err := overlayctl.PutNode(t.Context(), st, overlayctl.NodeRecord{Node: "dup", VC: "a", Site: "s2", Port: "x1", VLAN: 10, MAC: overlay.MAC{0x02, 0, 0, 10, 1, 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "two problems", func() bool { return len(ps[0].ctl.Stats().Problems) == 2 })
	ps[0].waitFixture(t, false)
	if _, err := overlayctl.DecodeNodeRecord("a", "n1", []byte(`{"vc":"b"}`)); !errors.Is(err, overlayctl.ErrBadRecord) {
		t.Errorf("record naming another VC: %v", err)
	}
}

func TestConfigAndRun(t *testing.T) {
	srv := memstore.New()
	st := srv.Connect()
	defer st.Close()
	for _, cfg := range []overlayctl.Config{
		{Site: "", Store: st, Dataplane: fakedp.New()},
		{Site: "s1", Dataplane: fakedp.New()},
		{Site: "s1", Store: st},
		{Site: "s1", Store: st, Dataplane: fakedp.New(), Gateway: netip.MustParseAddr("0.0.0.0")},
	} {
		if _, err := overlayctl.New(cfg); !errors.Is(err, overlayctl.ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
	ctl, err := overlayctl.New(overlayctl.Config{Site: "s1", Store: st, Dataplane: fakedp.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	waitFor(t, 2*time.Second, "loaded", func() bool { return ctl.Stats().Loaded })
	if err := ctl.Run(ctx); !errors.Is(err, overlayctl.ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// A closed store ends Run with an error.
	_ = st.Close()
	if err := ctl.Run(t.Context()); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Run on a closed store: %v", err)
	}
	_ = dataplanetest.FixtureSites
}

// fakeProber answers every probe with a fixed RTT per address.
type fakeProber struct{ rtt map[netip.Addr]time.Duration }

func (f fakeProber) Probe(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	if d, ok := f.rtt[dst]; ok {
		return d, nil
	}
	return 0, errors.New("no answer")
}

// Link costs are the probes' median RTT rounded up to the quantum, at
// least the floor.
func TestLinkCostFromRTT(t *testing.T) {
	srv := memstore.New()
	st := admin(t, srv)
	writeFixture(t, st, false)
	pr := fakeProber{rtt: map[netip.Addr]time.Duration{gateway("s2"): 2300 * time.Microsecond, gateway("s3"): 200 * time.Microsecond}}
	p := startPeer(t, srv, "s1", nil, func(c *overlayctl.Config) {
		c.Prober, c.ProbeInterval, c.CostQuantum, c.CostFloor = pr, 10*time.Millisecond, 1000, 1000
	})
	startPeer(t, srv, "s2", nil)
	startPeer(t, srv, "s3", nil)
	for _, r := range []string{"s2", "s3"} {
		p.ctl.ObserveLink(overlayctl.LinkObservation{Remote: r, Up: true, RemoteUp: true})
	}
	waitFor(t, 3*time.Second, "measured costs", func() bool {
		l12, _ := readLink(t, st, "s1", "s2")
		l13, _ := readLink(t, st, "s1", "s3")
		return l12.Cost == 3000 && l13.Cost == 1000 && l12.Up && l13.Up
	})
	if s := p.ctl.Stats(); s.Probes == 0 {
		t.Errorf("no probes counted: %+v", s)
	}
}
