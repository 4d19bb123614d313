package overlayctl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// flaky is a coord.Store whose connection the test can break: while
// down, every call fails with coord.ErrUnavailable and subscribers have
// seen StateDisconnected. Watches armed before stay armed (as ZooKeeper
// re-arms them on reconnect).
type flaky struct {
	*memstore.Store
	down atomic.Bool
	mu   sync.Mutex
	subs []func(coord.SessionEvent)
}

func (f *flaky) OnSession(fn func(coord.SessionEvent)) func() {
	f.mu.Lock()
	f.subs = append(f.subs, fn)
	f.mu.Unlock()
	return f.Store.OnSession(fn)
}

func (f *flaky) setDown(down bool) {
	f.down.Store(down)
	ev := coord.SessionEvent{State: coord.StateConnected, SessionID: f.SessionID()}
	if down {
		ev = coord.SessionEvent{State: coord.StateDisconnected}
	}
	f.mu.Lock()
	subs := slices.Clone(f.subs)
	f.mu.Unlock()
	for _, fn := range subs {
		fn(ev)
	}
}

func (f *flaky) err() error {
	if f.down.Load() {
		return coord.ErrUnavailable
	}
	return nil
}

func (f *flaky) Create(ctx context.Context, p string, d []byte, m coord.CreateMode, acl []coord.ACL) (string, error) {
	if err := f.err(); err != nil {
		return "", err
	}
	return f.Store.Create(ctx, p, d, m, acl)
}
func (f *flaky) Get(ctx context.Context, p string) ([]byte, coord.Stat, error) {
	if err := f.err(); err != nil {
		return nil, coord.Stat{}, err
	}
	return f.Store.Get(ctx, p)
}
func (f *flaky) GetW(ctx context.Context, p string) ([]byte, coord.Stat, <-chan coord.Event, error) {
	if err := f.err(); err != nil {
		return nil, coord.Stat{}, nil, err
	}
	return f.Store.GetW(ctx, p)
}
func (f *flaky) Set(ctx context.Context, p string, d []byte, v int32) (coord.Stat, error) {
	if err := f.err(); err != nil {
		return coord.Stat{}, err
	}
	return f.Store.Set(ctx, p, d, v)
}
func (f *flaky) Delete(ctx context.Context, p string, v int32) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.Delete(ctx, p, v)
}
func (f *flaky) Exists(ctx context.Context, p string) (bool, coord.Stat, error) {
	if err := f.err(); err != nil {
		return false, coord.Stat{}, err
	}
	return f.Store.Exists(ctx, p)
}
func (f *flaky) ExistsW(ctx context.Context, p string) (bool, coord.Stat, <-chan coord.Event, error) {
	if err := f.err(); err != nil {
		return false, coord.Stat{}, nil, err
	}
	return f.Store.ExistsW(ctx, p)
}
func (f *flaky) Children(ctx context.Context, p string) ([]string, coord.Stat, error) {
	if err := f.err(); err != nil {
		return nil, coord.Stat{}, err
	}
	return f.Store.Children(ctx, p)
}
func (f *flaky) ChildrenW(ctx context.Context, p string) ([]string, coord.Stat, <-chan coord.Event, error) {
	if err := f.err(); err != nil {
		return nil, coord.Stat{}, nil, err
	}
	return f.Store.ChildrenW(ctx, p)
}
func (f *flaky) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.Multi(ctx, ops...)
}

// peer is one site's overlay subsystem under test.
type peer struct {
	name   string
	st     *flaky
	dp     *fakedp.Fake
	ctl    *overlayctl.Controller
	cancel context.CancelFunc
	done   chan error
}

// testConfig has short timers so the tests run fast.
func testConfig(t *testing.T, name string, st coord.Store, dp overlay.Dataplane) overlayctl.Config {
	return overlayctl.Config{
		Site: name, Gateway: gateway(name), Store: st, Dataplane: dp,
		Debounce: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, HoldDown: 200 * time.Millisecond,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		CostFloor: 500, CostQuantum: 500, // the fixture's link cost
		Logger: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// tlog writes into the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gateway is the fixture's gateway of s<i>: 192.0.2.1<i>.
func gateway(site string) netip.Addr {
	for _, s := range dataplanetest.FixtureSites() {
		if s.Name == site {
			return s.Gateway
		}
	}
	return netip.Addr{}
}

// startPeer starts site name's controller on a new session and dp (a new
// fake when nil); the test's cleanup stops it.
func startPeer(t *testing.T, srv *memstore.Server, name string, dp *fakedp.Fake, mod ...func(*overlayctl.Config)) *peer {
	t.Helper()
	if dp == nil {
		dp = fakedp.New()
	}
	st := &flaky{Store: srv.Connect()}
	cfg := testConfig(t, name, st, dp)
	for _, m := range mod {
		m(&cfg)
	}
	ctl, err := overlayctl.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{name: name, st: st, dp: dp, ctl: ctl, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- ctl.Run(ctx) }()
	t.Cleanup(func() {
		p.stop(t)
		_ = st.Close()
	})
	return p
}

// stop cancels the controller and waits for Run (idempotent).
func (p *peer) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err, ok := <-p.done:
		if ok {
			close(p.done)
			if err != nil {
				t.Errorf("%s: Run: %v", p.name, err)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Run did not return", p.name)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// admin is the test's own session, writing what other parts of the peer
// (or other peers) would write.
func admin(t *testing.T, srv *memstore.Server) *memstore.Store {
	t.Helper()
	st := srv.Connect()
	t.Cleanup(func() { _ = st.Close() })
	ctx := t.Context()
	for _, d := range coord.TopLevelDirs {
		if err := coord.EnsurePath(ctx, st, d); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// writeFixture writes the fixture's VC nodes and its three links (cost
// 500 µs, s1~s3 down when cut13).
func writeFixture(t *testing.T, st coord.Store, cut13 bool) {
	t.Helper()
	for _, e := range dataplanetest.FixtureEndpoints() {
		if err := overlayctl.PutNode(t.Context(), st, overlayctl.NodeRecord{
			Node: e.Site + "-" + e.PortName, VC: e.VC, Site: e.Site, Port: e.PortName, VLAN: e.VLAN, MAC: e.MAC, IP: e.IP, Internal: e.Internal,
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{{"s1", "s2"}, {"s2", "s3"}, {"s1", "s3"}} {
		writeLink(t, st, l[0], l[1], !(cut13 && l == [2]string{"s1", "s3"}))
	}
}

func writeLink(t *testing.T, st coord.Store, a, b string, up bool) {
	t.Helper()
	data, _ := json.Marshal(topology.Link{A: a, B: b, Cost: 500, Up: up, Updated: time.Now()})
	p := coord.LinkPath(a, b)
	if _, err := st.Set(t.Context(), p, data, coord.AnyVersion); err == nil {
		return
	}
	if _, err := st.Create(t.Context(), p, data, coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
}

// readLink reads links/<a>~<b>.
func readLink(t *testing.T, st coord.Store, a, b string) (topology.Link, bool) {
	t.Helper()
	data, _, err := st.Get(t.Context(), coord.LinkPath(a, b))
	if err != nil {
		return topology.Link{}, false
	}
	var l topology.Link
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	return l, true
}

// matches reports whether p's switch is the fixture's state of its site.
func (p *peer) matches(cut13 bool) bool {
	gen := p.ctl.Stats().Generation
	return p.dp.Dump() == overlay.DumpDesired(dataplanetest.Fixture(p.name, gen, cut13))
}

func (p *peer) waitFixture(t *testing.T, cut13 bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !p.matches(cut13) {
		if time.Now().After(deadline) {
			gen := p.ctl.Stats().Generation
			t.Fatalf("%s: switch does not match the fixture (cut13=%v) after 5 s:\n got:\n%s\nwant:\n%s", p.name, cut13, p.dp.Dump(),
				overlay.DumpDesired(dataplanetest.Fixture(p.name, gen, cut13)))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hop traces a unicast frame from local port a1 (VC a) to the node of VC
// a at site dst and returns the port it leaves by ("" when dropped).
func (p *peer) hop(dst int) string {
	mac := overlay.MAC{0x02, 0, 0, 10, byte(dst), 1}
	out := p.dp.Trace("a1", overlay.Frame{EthSrc: overlay.MAC{0x02, 0, 0, 10, 9, 9}, EthDst: mac, EthType: 0x0800})
	if len(out) != 1 {
		return fmt.Sprintf("%d outputs", len(out))
	}
	return out[0].Port
}
