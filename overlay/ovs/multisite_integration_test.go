//go:build integration || bench

package ovs_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// world plays the part of the peers' coordination layer for the overlay:
// the sites/, live/ and links/ records, the VC node registry, and a
// reconcile loop that recomputes every live site's desired state with
// overlay/topology and applies it whenever a tunnel's BFD state changes.
type world struct {
	t *testing.T
	f *ovstest.Fabric

	mu    sync.Mutex
	peers map[string]*peer
	// obs[{a, b}]: a's BFD sees its tunnel to b up; upAt: since when.
	obs      map[[2]string]bool
	upAt     map[[2]string]time.Time
	eps      []topology.Endpoint
	epByName map[string]*ovstest.Endpoint
	applied  []applyRecord
	// obsVersion counts BFD observations; appliedVersion is the newest
	// observation version that a completed applyAll had taken into account.
	events []string
	// lastApplied is the graph the last completed applyAll used; applying
	// is true while one runs.
	lastApplied string
	applying    bool

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type peer struct {
	name string
	site *ovstest.Site
	dp   *switchDP
	gen  uint32
}

type applyRecord struct {
	at      time.Time
	dur     time.Duration
	summary string
}

func newWorld(t *testing.T, f *ovstest.Fabric) *world {
	w := &world{t: t, f: f, peers: map[string]*peer{}, obs: map[[2]string]bool{}, upAt: map[[2]string]time.Time{}, epByName: map[string]*ovstest.Endpoint{},
		kick: make(chan struct{}, 1)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(1)
	go w.reconcileLoop()
	t.Cleanup(func() {
		w.cancel()
		w.wg.Wait()
		if t.Failed() || testing.Verbose() {
			w.mu.Lock()
			t.Logf("BFD events:\n%s", strings.Join(w.events, "\n"))
			for _, a := range w.applied {
				t.Logf("applied at %s in %v: %s", a.at.Format("15:04:05.000"), a.dur.Round(time.Millisecond), a.summary)
			}
			w.mu.Unlock()
		}
	})
	return w
}

func siteName(s *ovstest.Site) string { return s.Name }

// startPeer starts site s's controller with the given generation.
func (w *world) startPeer(s *ovstest.Site, gen uint32, keep bool) *peer {
	name := siteName(s)
	p := &peer{name: name, site: s, gen: gen}
	p.dp = startDP(w.t, s, name, dpOptions{quiet: true, keep: keep, onLink: func(ev ovs.LinkEvent) {
		w.mu.Lock()
		k := [2]string{name, ev.RemoteSite}
		if ev.Up && !w.obs[k] {
			w.upAt[k] = ev.At
		}
		w.obs[k] = ev.Up
		w.events = append(w.events, fmt.Sprintf("%s %s->%s up=%v state=%s fwd=%v diag=%q", ev.At.Format("15:04:05.000"), name, ev.RemoteSite, ev.Up, ev.BFD.State, ev.BFD.Forwarding, ev.BFD.Diagnostic))
		w.mu.Unlock()
		w.trigger()
	}})
	w.mu.Lock()
	w.peers[name] = p
	w.mu.Unlock()
	return p
}

func (w *world) trigger() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// addEndpoints creates nodes of VCs a (VLAN 10) and b (VLAN 11) at s:
// ports a1, a2, b1, b2; node k of VC v at site i has MAC
// 02:00:00:<vlan>:<i>:<k> and IP 10.0.<vlan>.<10i+k>/16 (one subnet for
// both VCs, so only the overlay separates them).
func (w *world) addEndpoints(ctx context.Context, s *ovstest.Site) {
	for vi, vc := range []string{"a", "b"} {
		vlan := uint16(10 + vi)
		for k := 1; k <= 2; k++ {
			port := fmt.Sprintf("%s%d", vc, k)
			mac := overlay.MAC{0x02, 0, 0, byte(vlan), byte(s.Index), byte(k)}
			ip := netip.AddrFrom4([4]byte{10, 0, byte(vlan), byte(10*s.Index + k)})
			e, err := w.f.AddEndpoint(ctx, s, ovstest.EndpointSpec{Name: fmt.Sprintf("s%d%s", s.Index, port), Port: port,
				MAC: net.HardwareAddr(mac[:]), Addr: netip.PrefixFrom(ip, 16)})
			if err != nil {
				w.t.Fatal(err)
			}
			w.mu.Lock()
			w.eps = append(w.eps, topology.Endpoint{VC: vc, VLAN: vlan, Site: siteName(s), PortName: port, MAC: mac, IP: ip})
			w.epByName[e.Name] = e
			w.mu.Unlock()
		}
	}
}

// upHold is how long a link must have been up at both ends before traffic
// returns to it: a link that flaps (BFD false alarms on a loaded host) does
// not pull traffic back and forth. Going down takes effect at once.
const upHold = time.Second

// linkUpLocked is a link's effective state at now, and when a link that is
// up at both ends but still held down becomes usable.
func (w *world) linkUpLocked(a, b string, now time.Time) (bool, time.Time) {
	ab, ba := [2]string{a, b}, [2]string{b, a}
	if !w.obs[ab] || !w.obs[ba] {
		return false, time.Time{}
	}
	since := w.upAt[ab]
	if w.upAt[ba].After(since) {
		since = w.upAt[ba]
	}
	if now.Sub(since) >= upHold {
		return true, time.Time{}
	}
	return false, since.Add(upHold)
}

// graph builds the site graph: every peer is live; a link is up when both
// ends' BFD see it up (see upHold).
func (w *world) graphLocked() *topology.Graph {
	g, _ := w.graphAtLocked(time.Now())
	return g
}

// graphAtLocked also returns the earliest time a held-down link becomes
// usable (zero if none).
func (w *world) graphAtLocked(now time.Time) (*topology.Graph, time.Time) {
	var sites []topology.Site
	var live []string
	for name, p := range w.peers {
		sites = append(sites, topology.Site{Name: name, Gateway: p.site.Addr.Addr()})
		live = append(live, name)
	}
	slices.Sort(live)
	var links []topology.Link
	var next time.Time
	for i, a := range live {
		for _, b := range live[i+1:] {
			up, at := w.linkUpLocked(a, b, now)
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
			links = append(links, topology.Link{A: a, B: b, Cost: 1000, Up: up, Updated: now})
		}
	}
	return topology.NewGraph(sites, live, links), next
}

func (w *world) desiredLocked(site string) overlay.Desired {
	d, problems := topology.BuildDesired(w.graphLocked(), site, w.peers[site].gen, w.eps)
	for _, p := range problems {
		w.t.Errorf("topology: %v", p)
	}
	return d
}

// applyAll applies the current desired state at every peer.
func (w *world) applyAll(ctx context.Context) error {
	w.mu.Lock()
	type job struct {
		p *peer
		d overlay.Desired
	}
	var jobs []job
	for _, name := range slices.Sorted(mapKeys(w.peers)) {
		jobs = append(jobs, job{w.peers[name], w.desiredLocked(name)})
	}
	g := w.graphLocked()
	w.applying = true
	w.mu.Unlock()
	t0 := time.Now()
	var err error
	for _, j := range jobs {
		if err = j.p.dp.Apply(ctx, j.d); err != nil {
			err = fmt.Errorf("apply at %s: %w", j.p.name, err)
			break
		}
	}
	w.mu.Lock()
	w.applying = false
	if err == nil {
		w.lastApplied = g.String()
		w.applied = append(w.applied, applyRecord{at: t0, dur: time.Since(t0), summary: strings.ReplaceAll(g.String(), "\n", "; ")})
	} else {
		w.lastApplied = ""
	}
	w.mu.Unlock()
	return err
}

func (w *world) reconcileLoop() {
	defer w.wg.Done()
	ctx := w.ctx
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-timer:
		}
		actx, acancel := context.WithTimeout(ctx, 20*time.Second)
		err := w.applyAll(actx)
		acancel()
		if err != nil && ctx.Err() == nil {
			w.t.Logf("reconcile: %v", err)
			w.trigger()
		}
		w.mu.Lock()
		_, next := w.graphAtLocked(time.Now())
		w.mu.Unlock()
		timer = nil
		if !next.IsZero() {
			timer = time.After(time.Until(next) + 10*time.Millisecond)
		}
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// waitLinks waits until every pair of peers sees its link in the wanted
// state from both ends.
func (w *world) waitLinks(t *testing.T, want map[[2]string]bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		ok := true
		for k, v := range want {
			if up, _ := w.linkUpLocked(k[0], k[1], time.Now()); up != v {
				ok = false
			}
		}
		w.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			t.Fatalf("links not in state %v after %v: BFD observations %v", want, timeout, w.obs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits until the graph has been stable and applied at every site.
func (w *world) settle(t *testing.T, timeout time.Duration) {
	t.Helper()
	w.trigger()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		done := !w.applying && w.lastApplied == w.graphLocked().String()
		w.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("desired states not applied within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *world) ep(name string) *ovstest.Endpoint {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.epByName[name]
}

func allLinks(sites []string, up bool) map[[2]string]bool {
	m := map[[2]string]bool{}
	for i, a := range sites {
		for _, b := range sites[i+1:] {
			m[[2]string{a, b}] = up
		}
	}
	return m
}

var nPacketsRE = regexp.MustCompile(`n_packets=(\d+)`)

// transitPackets reads the packet counter of site's table-1 flow toward
// dst on VLAN vlan.
func transitPackets(ctx context.Context, t *testing.T, s *ovstest.Site, vlan int, dst net.HardwareAddr) uint64 {
	t.Helper()
	out, err := s.Ofctl(ctx, "-O", "OpenFlow13", "dump-flows", "br-int", fmt.Sprintf("table=1,dl_vlan=%d,dl_dst=%s", vlan, dst))
	if err != nil {
		t.Fatal(err)
	}
	m := nPacketsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no flow toward %s at %s:\n%s", dst, s.Name, out)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func waitProbe(t *testing.T, p *ovstest.Probe, after time.Time, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for p.Snapshot().RepliesAfter(after) < n {
		if time.Now().After(deadline) {
			t.Fatalf("probe: fewer than %d replies within %v", n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestThreeSites is the overlay's acceptance test on real OVS: 3 sites, 2
// VCs with 2 nodes per site each, musubi's controller at every site.
func TestThreeSites(t *testing.T) {
	f := ovstest.NewT(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := newWorld(t, f)
	sites := f.Sites()
	var names []string
	for _, s := range sites {
		w.addEndpoints(ctx, s)
		names = append(names, siteName(s))
	}
	for _, s := range sites {
		// No Teardown at cleanup: the fabric goes away as a whole, and one
		// subtest kills a controller on purpose.
		w.startPeer(s, 1, true)
	}
	w.trigger()
	w.waitLinks(t, allLinks(names, true), 30*time.Second)
	if err := w.applyAll(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("PingMatrix", func(t *testing.T) { testPingMatrix(ctx, t, w) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(ctx, t, w) })
	t.Run("TCP", func(t *testing.T) {
		bps, err := ovstest.Throughput(ctx, w.ep("s1a1"), w.ep("s3a1"), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("TCP site1 -> site3 through musubi's flows: %.0f Mbit/s", bps/1e6)
	})
	t.Run("RTTProbes", func(t *testing.T) { testRTT(ctx, t, w) })
	t.Run("CutAndRestore", func(t *testing.T) { testCutRestore(ctx, t, w) })
	t.Run("ControllerRestart", func(t *testing.T) { testControllerRestart(ctx, t, w) })
	t.Run("FourthSiteJoinsAndLeaves", func(t *testing.T) { testJoinLeave(ctx, t, w) })
}

// testRTT measures the underlay round trip from site1 to the other sites'
// tunnel endpoints, as a peer does for its links/ costs.
func testRTT(ctx context.Context, t *testing.T, w *world) {
	s1, _ := w.f.Site(1)
	var conn net.PacketConn
	if err := s1.Do(func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p := ovs.NewRTTProber(conn)
	defer p.Close()
	for _, s := range w.f.Sites()[1:] {
		var samples []time.Duration
		for i := 0; i < 5; i++ {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			rtt, err := p.Probe(pctx, s.Addr.Addr())
			pcancel()
			if err != nil {
				t.Fatalf("RTT site1 -> %s: %v", s.Name, err)
			}
			samples = append(samples, rtt)
		}
		slices.Sort(samples)
		t.Logf("RTT site1 -> %s underlay: median %v (min %v)", s.Name, samples[2].Round(time.Microsecond), samples[0].Round(time.Microsecond))
		if samples[2] <= 0 || samples[2] > time.Second {
			t.Errorf("implausible RTT %v", samples[2])
		}
	}
	// An address nobody answers for times out with ErrProbe.
	pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer pcancel()
	if _, err := p.Probe(pctx, netip.MustParseAddr("10.200.99.2")); !errors.Is(err, ovs.ErrProbe) {
		t.Errorf("probe to a dead address: %v, want ErrProbe", err)
	}
}

// testJoinLeave: site4 joins (tunnels appear at every site, its nodes are
// reachable) and leaves (tunnels and flows toward it go away everywhere,
// and nothing musubi owns is left in its OVSDB).
func testJoinLeave(ctx context.Context, t *testing.T, w *world) {
	s4, err := w.f.AddSite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.addEndpoints(ctx, s4)
	p4 := w.startPeer(s4, 1, true)
	w.trigger()
	var names []string
	for _, s := range w.f.Sites() {
		names = append(names, siteName(s))
	}
	w.waitLinks(t, allLinks(names, true), 30*time.Second)
	w.settle(t, 10*time.Second)
	w.mu.Lock()
	peers := slices.Collect(mapValues(w.peers))
	w.mu.Unlock()
	for _, p := range peers {
		o, err := p.dp.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Tunnels) != 3 {
			t.Errorf("%s has %d tunnels after site4 joined, want 3", p.name, len(o.Tunnels))
		}
	}
	for _, pair := range [][2]string{{"s4a1", "s1a1"}, {"s1b2", "s4b2"}, {"s3a2", "s4a2"}, {"s4b1", "s2b1"}} {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := w.ep(pair[0]).WaitPing(wctx, w.ep(pair[1]).IP()); err != nil {
			t.Errorf("%s -> %s after site4 joined: %v", pair[0], pair[1], err)
		}
		wcancel()
	}

	// site4 leaves: its peer goes (live/ node gone), its nodes leave the
	// registry, the others drop it; its own switch is torn down.
	w.mu.Lock()
	delete(w.peers, "site4")
	w.eps = slices.DeleteFunc(w.eps, func(e topology.Endpoint) bool { return e.Site == "site4" })
	w.mu.Unlock()
	w.settle(t, 10*time.Second)
	if err := p4.dp.Teardown(ctx); err != nil {
		t.Fatalf("site4 teardown: %v", err)
	}
	p4.dp.stop(t)
	for _, p := range peers {
		if p.name == "site4" {
			continue
		}
		o, err := p.dp.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tu := range o.Tunnels {
			if tu.RemoteSite == "site4" {
				t.Errorf("%s still has a tunnel to site4", p.name)
			}
		}
		if d := overlay.Dump(o); strings.Contains(d, ":04:") {
			t.Errorf("%s still has flows for site4's nodes:\n%s", p.name, d)
		}
	}
	for _, table := range []string{"Bridge", "Port", "Interface", "Controller"} {
		out, err := s4.Vsctl(ctx, "--columns=_uuid", "find", table, "external_ids:"+ovs.KeyOwner+"=site4")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "" {
			t.Errorf("site4's OVSDB still has musubi-owned %s rows:\n%s", table, out)
		}
	}
	t.Logf("site4 joined (3 tunnels at every site, its nodes reachable) and left (no tunnels, flows or owned rows left)")
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func testPingMatrix(ctx context.Context, t *testing.T, w *world) {
	eps := w.f.Endpoints()
	n := 0
	t0 := time.Now()
	for _, a := range eps {
		for _, b := range eps {
			if a == b || a.Port[0] != b.Port[0] {
				continue
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			if err := a.WaitPing(wctx, b.IP()); err != nil {
				t.Errorf("%s -> %s (same VC): %v", a.Name, b.Name, err)
			}
			wcancel()
			n++
		}
	}
	t.Logf("ping matrix: %d same-VC pairs reachable in %v", n, time.Since(t0).Round(time.Millisecond))
}

// testIsolation: every node sends UDP datagrams to every node of the other
// VC, with the target's MAC preset (so frames really leave), then datagrams
// to every node of its own VC as a barrier (resent until they arrive: a BFD
// false alarm may reroute and drop one). Once all barrier datagrams
// arrived, no cross-VC datagram may have, and each node's received-packet
// counter must have grown by exactly the datagrams its socket received.
func testIsolation(ctx context.Context, t *testing.T, w *world) {
	eps := w.f.Endpoints()
	const port = 7000
	type rx struct {
		to  string
		msg string
	}
	got := make(chan rx, 4096)
	var conns []net.PacketConn
	var wg sync.WaitGroup
	before := map[string]ovstest.Counters{}
	for _, e := range eps {
		for _, o := range eps {
			if o != e {
				if err := e.SetNeighbor(ctx, o.IP(), o.MAC); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, e := range eps {
		c, err := e.ListenPacket("udp4", netip.AddrPortFrom(e.IP(), port).String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				got <- rx{to: e.Name, msg: string(buf[:n])}
			}
		}()
		cnt, err := e.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before[e.Name] = cnt
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}()
	send := func(from, to *ovstest.Endpoint, msg string) {
		err := from.Do(func() error {
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.IP(), port)))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(msg))
			return err
		})
		if err != nil {
			t.Fatalf("send %s -> %s: %v", from.Name, to.Name, err)
		}
	}
	crossSent := 0
	for _, a := range eps {
		for _, b := range eps {
			if a != b && a.Port[0] != b.Port[0] {
				send(a, b, "cross "+a.Name)
				crossSent++
			}
		}
	}
	pending := map[string][2]*ovstest.Endpoint{}
	for _, a := range eps {
		for _, b := range eps {
			if a != b && a.Port[0] == b.Port[0] {
				pending["barrier "+a.Name+" "+b.Name] = [2]*ovstest.Endpoint{a, b}
			}
		}
	}
	barriers := len(pending)
	received := map[string]uint64{}
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; len(pending) > 0; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d same-VC barrier datagrams never arrived", len(pending), barriers)
		}
		for msg, p := range pending {
			send(p[0], p[1], msg)
		}
		wait := time.After(time.Second)
	collect:
		for len(pending) > 0 {
			select {
			case r := <-got:
				received[r.to]++
				if strings.HasPrefix(r.msg, "cross") {
					t.Errorf("cross-VC datagram delivered to %s: %q", r.to, r.msg)
				}
				delete(pending, r.msg)
			case <-wait:
				break collect
			}
		}
	}
	for _, e := range eps {
		cnt, err := e.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cnt.RxPackets - before[e.Name].RxPackets; d != received[e.Name] {
			t.Errorf("%s received %d packets, but its socket got %d same-VC datagrams", e.Name, d, received[e.Name])
		}
	}
	t.Logf("isolation: %d cross-VC datagrams sent, 0 delivered; %d same-VC barrier datagrams delivered", crossSent, barriers)
}

func testCutRestore(ctx context.Context, t *testing.T, w *world) {
	s1, _ := w.f.Site(1)
	s2, _ := w.f.Site(2)
	s3, _ := w.f.Site(3)
	src, dst := w.ep("s1a1"), w.ep("s3a1")
	p, err := ovstest.StartProbe(src, dst, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	waitProbe(t, p, time.Time{}, 20, 10*time.Second)
	transit0 := transitPackets(ctx, t, s2, 10, dst.MAC)

	t.Logf("cut at %s", time.Now().Format("15:04:05.000"))
	cut := time.Now()
	if err := w.f.CutLink(ctx, s1, s3); err != nil {
		t.Fatal(err)
	}
	w.waitLinks(t, map[[2]string]bool{{"site1", "site3"}: false}, 10*time.Second)
	waitProbe(t, p, time.Now(), 50, 15*time.Second)
	r := p.Snapshot()
	outage := r.OutageAfter(cut)
	t.Logf("REROUTE site1->site3 via site2: outage %v (last reply before the cut to first after; 10 ms probe)", outage.Round(time.Millisecond))
	// The goal (< 1 s) is judged by `make bench BENCH=overlay`; here the
	// check is that traffic resumed (waitProbe) and crosses site2.
	if transit1 := transitPackets(ctx, t, s2, 10, dst.MAC); transit1 <= transit0 {
		t.Errorf("site2 forwarded no transit packets toward %s (%d -> %d)", dst.Name, transit0, transit1)
	}

	t.Logf("restore at %s", time.Now().Format("15:04:05.000"))
	restore := time.Now()
	if err := w.f.RestoreLink(ctx, s1, s3); err != nil {
		t.Fatal(err)
	}
	w.waitLinks(t, map[[2]string]bool{{"site1", "site3"}: true}, 15*time.Second)
	w.settle(t, 10*time.Second)
	// Traffic goes direct again: the probe keeps flowing and site2's
	// transit counter stops (within a few hundred ms of the flow change,
	// OVS's revalidators retire the cached datapath flows).
	direct := false
	for deadline := time.Now().Add(5 * time.Second); !direct && time.Now().Before(deadline); {
		a := transitPackets(ctx, t, s2, 10, dst.MAC)
		waitProbe(t, p, time.Now(), 30, 10*time.Second)
		direct = transitPackets(ctx, t, s2, 10, dst.MAC) == a
	}
	if !direct {
		t.Errorf("5 s after the restore was applied, site2 still forwards toward %s", dst.Name)
		for _, s := range []*ovstest.Site{s1, s2} {
			fl, _ := s.Ofctl(ctx, "-O", "OpenFlow13", "dump-flows", "br-int", fmt.Sprintf("table=1,dl_dst=%s", dst.MAC))
			t.Logf("%s flows toward %s:\n%s", s.Name, dst.Name, fl)
		}
	}
	r = p.Stop()
	t.Logf("restore: longest gap %v, %d of %d probes lost after the restore", r.OutageAfter(restore).Round(time.Millisecond),
		r.Lost(restore, time.Now().Add(-time.Second)), r.SentIn(restore, time.Now().Add(-time.Second)))
}

func testControllerRestart(ctx context.Context, t *testing.T, w *world) {
	s1, _ := w.f.Site(1)
	src, dst := w.ep("s1a1"), w.ep("s3a2")
	p, err := ovstest.StartProbe(src, dst, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	waitProbe(t, p, time.Time{}, 20, 10*time.Second)

	w.mu.Lock()
	old := w.peers["site1"]
	w.mu.Unlock()
	killed := time.Now()
	// "Kill" the controller: Run ends, the OpenFlow connection drops, and
	// nothing is torn down; OVS keeps forwarding with the installed flows.
	old.dp.stop(t)
	waitProbe(t, p, time.Now(), 30, 10*time.Second)

	restarted := time.Now()
	np := w.startPeer(s1, old.gen+1, true)
	if err := np.dp.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.applyAll(ctx); err != nil {
		t.Fatal(err)
	}
	reconciled := time.Now()
	waitProbe(t, p, reconciled, 150, 15*time.Second)
	r := p.Stop()
	o, err := np.dp.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := 0
	for _, fl := range o.Flows {
		if fl.Cookie.Owned() && fl.Cookie.Generation() != np.gen {
			stale++
			t.Errorf("stale flow after restart: %s", fl)
		}
	}
	end := time.Now().Add(-500 * time.Millisecond) // later probes may still be in flight
	down := r.Window(killed, restarted).MaxGap()
	up := r.Window(restarted, end).MaxGap()
	lost := r.Lost(killed, end)
	t.Logf("controller restart: %d of %d probes lost (10 ms probe); longest gap %v while the controller was down, %v while the new one reconciled; %d flows of generation %d, %d stale; reconcile took %v",
		lost, r.SentIn(killed, end), down.Round(time.Millisecond), up.Round(time.Millisecond), len(o.Flows), np.gen, stale, reconciled.Sub(restarted).Round(time.Millisecond))
	if lost > 1 {
		t.Errorf("%d probes lost across the controller restart, want at most 1 (the probe interval)", lost)
	}
}
