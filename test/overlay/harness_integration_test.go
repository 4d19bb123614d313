//go:build integration

package overlay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// federation is N sites of an ovstest fabric, each with its own ZooKeeper
// server running in the site's namespace on the site's underlay address
// (one ensemble across the WAN), and each with a peer's overlay part: a
// ZooKeeper session to its own site's server first, an ovs.Dataplane and
// an overlayctl.Controller.
type federation struct {
	t     *testing.T
	f     *ovstest.Fabric
	zk    *zktest.Ensemble
	admin coord.Store // the test's own session, as other subsystems write

	mu    sync.Mutex
	peers map[string]*peer
	eps   map[string]*ovstest.Endpoint
	log   *testLog
	// serverOf maps a forwarder's address to the server id behind it.
	serverOf map[string]int
}

// server is the id of the ZooKeeper server p's session is attached to (0
// when none).
func (fed *federation) server(p *peer) int {
	fed.mu.Lock()
	defer fed.mu.Unlock()
	return fed.serverOf[p.store.Server()]
}

// modes describes the ensemble's roles, for logs.
func (fed *federation) modes(ctx context.Context) string {
	var b []string
	for _, m := range fed.zk.Members() {
		mode, err := fed.zk.Mode(ctx, m.ID)
		if err != nil || mode == "" {
			mode = "down"
		}
		b = append(b, fmt.Sprintf("zk%d=%s", m.ID, mode))
	}
	return strings.Join(b, " ")
}

// root is the federation's chroot.
var root = coord.FederationRoot("overlaytest")

// zkTick is the ensemble's tick: 500 ms, so a follower that lost its
// leader (a cut WAN link between their sites) notices within syncLimit
// (5) ticks, 2.5 s, and sessions may be as short as 1 s.
const zkTick = 500 * time.Millisecond

// sessionTimeout of the peers' sessions.
const sessionTimeout = 4 * time.Second

func newFederation(t *testing.T, n int) *federation {
	t.Helper()
	if err := zktest.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	f := ovstest.NewT(t, n)
	fed := &federation{t: t, f: f, peers: map[string]*peer{}, eps: map[string]*ovstest.Endpoint{}, log: &testLog{t: t}}
	t.Cleanup(fed.log.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	site := func(id int) *ovstest.Site {
		s, err := f.Site(id)
		if err != nil {
			panic(err) // the ensemble has one server per site of the fabric
		}
		return s
	}
	zk, err := zktest.Start(ctx, zktest.Options{
		Servers:  n,
		TickTime: zkTick,
		Logf:     t.Logf,
		Dir:      f.Dir(), // swept with the fabric if the test binary dies
		BindAddr: func(id int) string { return site(id).Addr.Addr().String() },
		Exec:     func(id int) []string { return []string{"ip", "netns", "exec", site(id).NS} },
		Dial: func(ctx context.Context, id int, addr string) (net.Conn, error) {
			var c net.Conn
			err := site(id).Do(func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, "tcp", addr)
				return err
			})
			return c, err
		},
	})
	if err != nil {
		t.Fatalf("start ZooKeeper in the site namespaces: %v", err)
	}
	fed.zk = zk
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range zk.Members() {
				t.Logf("ZooKeeper server %d:\n%s", m.ID, zk.LogTail(m.ID, 20))
			}
		}
		if err := zk.Stop(); err != nil {
			t.Errorf("stop ZooKeeper: %v", err)
		}
	})
	for _, m := range zk.Members() {
		mode, _ := zk.Mode(ctx, m.ID)
		t.Logf("ZooKeeper server %d at %s in %s: %s", m.ID, m.ClientAddr(), site(m.ID).NS, mode)
	}
	s1 := site(1)
	fed.admin = fed.openStore(ctx, s1)
	if err := node.InitSchema(ctx, fed.admin); err != nil {
		t.Fatal(err)
	}
	return fed
}

// openStore opens a session from site s: its own site's server first,
// then the others, each reached through a forwarder that dials from s's
// namespace (so the session's traffic crosses the WAN like s's would).
func (fed *federation) openStore(ctx context.Context, s *ovstest.Site) *zkstore.Store {
	t := fed.t
	t.Helper()
	var local string
	var others []string
	fed.mu.Lock()
	if fed.serverOf == nil {
		fed.serverOf = map[string]int{}
	}
	fed.mu.Unlock()
	for _, m := range fed.zk.Members() {
		fw, err := s.Forward(m.ClientAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fw.Close() })
		fed.mu.Lock()
		fed.serverOf[fw.Addr()] = m.ID
		fed.mu.Unlock()
		if m.ID == s.Index {
			local = fw.Addr()
		} else {
			others = append(others, fw.Addr())
		}
	}
	if local == "" { // a site without a server of its own
		local, others = others[0], others[1:]
	}
	st, err := zkstore.Open(ctx, zkstore.Config{
		LocalServer: local, Servers: others, Root: root, SessionTimeout: sessionTimeout,
		Logger: slog.New(slog.NewTextHandler(fed.log, &slog.HandlerOptions{Level: slog.LevelInfo})).With("zk", s.Name),
	})
	if err != nil {
		t.Fatalf("open ZooKeeper session from %s: %v", s.Name, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// peer is one site's overlay part.
type peer struct {
	name  string
	site  *ovstest.Site
	store *zkstore.Store
	pr    *ovs.RTTProber

	mu     sync.Mutex
	inc    *incarnation
	events []linkEvent
}

// incarnation is one run of the overlay subsystem: controller and
// dataplane, stopped together.
type incarnation struct {
	dp     *ovs.Dataplane
	ctl    *overlayctl.Controller
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

type linkEvent struct {
	at     time.Time
	remote string
	up     bool
	state  overlay.BFDState
}

// addPeer starts site s's peer: its session, and the first incarnation
// of its overlay subsystem.
func (fed *federation) addPeer(ctx context.Context, s *ovstest.Site) *peer {
	t := fed.t
	t.Helper()
	p := &peer{name: s.Name, site: s, store: fed.openStore(ctx, s)}
	var conn net.PacketConn
	if err := s.Do(func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p.pr = ovs.NewRTTProber(conn)
	t.Cleanup(func() { _ = p.pr.Close() })
	fed.mu.Lock()
	fed.peers[p.name] = p
	fed.mu.Unlock()
	fed.start(p)
	t.Cleanup(func() { fed.stop(p) })
	return p
}

// start starts a new incarnation of p's overlay subsystem.
func (fed *federation) start(p *peer) *incarnation {
	t := fed.t
	t.Helper()
	ln, err := p.site.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(fed.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var ctlp atomic.Pointer[overlayctl.Controller]
	dp, err := ovs.New(ovs.Config{
		Site: p.name, OVSDB: p.site.OVSDBEndpoint(), Listener: ln,
		Logger: logger.With("dp", p.name),
		OnLink: func(ev ovs.LinkEvent) {
			p.mu.Lock()
			p.events = append(p.events, linkEvent{at: ev.At, remote: ev.RemoteSite, up: ev.Up, state: ev.BFD.State})
			p.mu.Unlock()
			if c := ctlp.Load(); c != nil {
				c.ObserveLink(overlayctl.LinkObservation{Remote: ev.RemoteSite, Up: ev.Up, RemoteUp: ev.BFD.RemoteState == overlay.BFDUp, At: ev.At})
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := p.site.Addr.Addr()
	ctl, err := overlayctl.New(overlayctl.Config{
		Site: p.name, Gateway: gw, Store: p.store, Dataplane: dp,
		Prober: p.pr, ProbeInterval: time.Second,
		// Loopback WAN: RTTs of 0.1-3 ms on a loaded host. Rounding costs
		// to 5 ms keeps them equal, so the paths do not flap with load.
		CostQuantum: 5000, CostFloor: 5000,
		Register: func(ctx context.Context, st coord.Store) error {
			return node.RegisterSite(ctx, st,
				node.SiteRecord{Name: p.name, Gateway: gw.String(), ZKServer: fed.zk.Addr(p.site.Index), Joined: time.Now().UTC()},
				node.LiveRecord{Peer: p.name + "-test", Since: time.Now().UTC(), Version: "test"})
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctlp.Store(ctl)
	ctx, cancel := context.WithCancel(context.Background())
	inc := &incarnation{dp: dp, ctl: ctl, cancel: cancel, errs: make(chan error, 2)}
	inc.wg.Add(2)
	go func() { defer inc.wg.Done(); inc.errs <- dp.Run(ctx) }()
	go func() { defer inc.wg.Done(); inc.errs <- ctl.Run(ctx) }()
	p.mu.Lock()
	p.inc = inc
	p.mu.Unlock()
	return inc
}

// stop ends p's current incarnation (the switch keeps its flows).
func (fed *federation) stop(p *peer) {
	p.mu.Lock()
	inc := p.inc
	p.inc = nil
	p.mu.Unlock()
	if inc == nil {
		return
	}
	inc.cancel()
	done := make(chan struct{})
	go func() { inc.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		fed.t.Errorf("%s: overlay subsystem did not stop within 30 s", p.name)
		return
	}
	close(inc.errs)
	for err := range inc.errs {
		if err != nil {
			fed.t.Errorf("%s: Run: %v", p.name, err)
		}
	}
}

func (p *peer) ctl() *overlayctl.Controller {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inc.ctl
}

func (p *peer) dp() *ovs.Dataplane {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inc.dp
}

// firstEvent returns the first BFD event toward remote with state up
// after t.
func (p *peer) firstEvent(remote string, up bool, after time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.remote == remote && e.up == up && e.at.After(after) {
			return e.at, true
		}
	}
	return time.Time{}, false
}

// vcs are the test's two virtual clusters and their VLANs.
var vcs = []struct {
	name string
	vlan uint16
}{{"a", 10}, {"b", 11}}

// addEndpoints creates, at site s, nodes 1 and 2 of each VC and records
// them in vc/<vc>/nodes/ as the provisioner would: endpoint "s<i><vc><k>"
// on port <vc><k>, MAC 02:00:00:<vlan>:<i>:<k>, IP 10.0.<vlan>.<10i+k>/16
// (one subnet for both VCs: only the overlay keeps them apart).
func (fed *federation) addEndpoints(ctx context.Context, s *ovstest.Site) {
	t := fed.t
	t.Helper()
	for _, vc := range vcs {
		for k := 1; k <= 2; k++ {
			port := fmt.Sprintf("%s%d", vc.name, k)
			mac := overlay.MAC{0x02, 0, 0, byte(vc.vlan), byte(s.Index), byte(k)}
			ip := netip.AddrFrom4([4]byte{10, 0, byte(vc.vlan), byte(10*s.Index + k)})
			e, err := fed.f.AddEndpoint(ctx, s, ovstest.EndpointSpec{Name: fmt.Sprintf("s%d%s", s.Index, port), Port: port,
				MAC: net.HardwareAddr(mac[:]), Addr: netip.PrefixFrom(ip, 16)})
			if err != nil {
				t.Fatal(err)
			}
			if err := overlayctl.PutNode(ctx, fed.admin, overlayctl.NodeRecord{
				Node: fmt.Sprintf("%s-%s", s.Name, port), VC: vc.name, Site: s.Name, Port: port, VLAN: vc.vlan, MAC: mac, IP: ip,
			}); err != nil {
				t.Fatal(err)
			}
			fed.mu.Lock()
			fed.eps[e.Name] = e
			fed.mu.Unlock()
		}
	}
}

func (fed *federation) ep(name string) *ovstest.Endpoint {
	fed.mu.Lock()
	defer fed.mu.Unlock()
	e, ok := fed.eps[name]
	if !ok {
		fed.t.Fatalf("no endpoint %s", name)
	}
	return e
}

// link reads links/<a>~<b> through the test's session.
func (fed *federation) link(ctx context.Context, a, b string) (topology.Link, bool) {
	data, _, err := fed.admin.Get(ctx, coord.LinkPath(a, b))
	if err != nil {
		return topology.Link{}, false
	}
	var l topology.Link
	if json.Unmarshal(data, &l) != nil {
		return topology.Link{}, false
	}
	return l, true
}

// waitLinks waits until every links/ record between the given sites says
// up (or down).
func (fed *federation) waitLinks(ctx context.Context, sites []string, up bool, timeout time.Duration) {
	t := fed.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		for i, a := range sites {
			for _, b := range sites[i+1:] {
				if l, ok := fed.link(ctx, a, b); !ok || l.Up != up {
					bad = coord.LinkName(a, b)
				}
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("links/%s not up=%v after %v", bad, up, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitApplied waits until every peer has computed a graph with the
// wanted links (and no link in without) and applied its desired state.
func (fed *federation) waitApplied(timeout time.Duration, with, without []string) {
	t := fed.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		fed.mu.Lock()
		peers := slices.Collect(mapValues(fed.peers))
		fed.mu.Unlock()
		for _, p := range peers {
			st := p.ctl().Stats()
			g := st.Graph
			ok = ok && st.InSync
			for _, l := range with {
				ok = ok && strings.Contains(g, "link "+l+" ")
			}
			for _, l := range without {
				ok = ok && !strings.Contains(g, "link "+l+" ")
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range peers {
				st := p.ctl().Stats()
				t.Logf("%s (in sync: %v) graph:\n%s", p.name, st.InSync, st.Graph)
			}
			t.Fatalf("graphs with %v and without %v not applied everywhere after %v", with, without, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// watchLink records, from the test's own session and by watch, when
// links/<a>~<b> was first seen with Up == up after start. Call the
// returned func to stop; it returns the time (zero if never seen).
func (fed *federation) watchLink(a, b string, up bool) func() time.Time {
	ctx, cancel := context.WithCancel(context.Background())
	var seen time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			data, _, ch, err := fed.admin.GetW(ctx, coord.LinkPath(a, b))
			now := time.Now()
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			var l topology.Link
			if json.Unmarshal(data, &l) == nil && l.Up == up {
				seen = now
				return
			}
			select {
			case <-ctx.Done():
			case <-ch:
			}
		}
	}()
	return func() time.Time {
		cancel()
		<-done
		return seen
	}
}

var nPacketsRE = regexp.MustCompile(`n_packets=(\d+)`)

// transitPackets reads site s's counter of the table-1 flow toward dst on
// VLAN vlan.
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

// testLog is an io.Writer into t.Log that goes quiet once the test is
// over (libraries may log while shutting down).
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) stop() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
