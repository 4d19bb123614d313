// Package vmtest holds the contract suite every vm.Backend passes (the
// fake, and the real backends against a simulated host in the unit tier
// and against the real host in the integration tier), and the simulated
// host itself: FakeHost behind the vm.Runner seam and MemPorts, an
// in-memory port driver.
package vmtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/overlay"
)

// Harness gives the suite what it needs of one backend.
type Harness struct {
	// New returns a backend over the harness's host and state directory;
	// every call returns a fresh instance over the same host and state (a
	// restarted peer). ready is its ReadyFunc (nil: none).
	New func(t *testing.T, ready vm.ReadyFunc) vm.Backend
	// Spec completes a spec the suite made (VC, Node, VLAN, MAC, Addr are
	// set) with what the backend needs (agent command, boot image...).
	Spec func(t *testing.T, spec *vm.NodeSpec)
	// Crash ends the node's process behind the backend's back; nil skips
	// the crash test.
	Crash func(t *testing.T, st vm.NodeState)
	// Leftovers lists what the backend's nodes left on the host (must be
	// nothing once every node is removed); nil skips those checks.
	Leftovers func(t *testing.T) []string
	// Nodes is how many nodes the concurrency test runs (default 3).
	Nodes int
	// Only, when not empty, runs just these subtests (QEMU guests are
	// slow): "Lifecycle", "Invalid", "Conflict", "RestartSafe", "Crash",
	// "Ready", "Concurrent".
	Only []string
	// Timeout bounds every backend call (default 2 minutes).
	Timeout time.Duration
}

// NewSpec returns a valid spec for node i of vc with the fields every
// backend needs, before the harness completes it.
func NewSpec(vc string, i int) vm.NodeSpec {
	return vm.NodeSpec{
		VC: vc, Node: fmt.Sprintf("n%d", i), VLAN: 100,
		MAC:  overlay.MAC{0x02, 0x6d, 0x76, 0x00, 0x00, byte(i + 1)},
		Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, 0, byte(11 + i)}), 24),
	}
}

// Run runs the contract suite.
func Run(t *testing.T, h Harness) {
	if h.Nodes <= 0 {
		h.Nodes = 3
	}
	if h.Timeout <= 0 {
		h.Timeout = 2 * time.Minute
	}
	s := &suite{h: h}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Lifecycle", s.lifecycle},
		{"Invalid", s.invalid},
		{"Conflict", s.conflict},
		{"RestartSafe", s.restartSafe},
		{"Crash", s.crash},
		{"Ready", s.ready},
		{"Concurrent", s.concurrent},
	} {
		if len(h.Only) > 0 && !slices.Contains(h.Only, tc.name) {
			continue
		}
		t.Run(tc.name, tc.fn)
	}
}

type suite struct{ h Harness }

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) spec(t *testing.T, vc string, i int) vm.NodeSpec {
	sp := NewSpec(vc, i)
	s.h.Spec(t, &sp)
	return sp
}

// cleanup removes the named nodes at the end of a test, whatever happened.
func (s *suite) cleanup(t *testing.T, b vm.Backend, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
		defer cancel()
		for _, n := range names {
			if err := b.Remove(ctx, n); err != nil {
				t.Errorf("cleanup: Remove(%s): %v", n, err)
			}
		}
	})
}

func (s *suite) checkNoLeftovers(t *testing.T, b vm.Backend) {
	t.Helper()
	ctx := s.ctx(t)
	l, err := b.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(l) != 0 {
		t.Errorf("List after removing everything: %+v", l)
	}
	if s.h.Leftovers != nil {
		if left := s.h.Leftovers(t); len(left) > 0 {
			t.Errorf("left on the host after removing everything: %q", left)
		}
	}
}

func find(l []vm.NodeState, name string) (vm.NodeState, bool) {
	for _, st := range l {
		if st.Name == name {
			return st, true
		}
	}
	return vm.NodeState{}, false
}

func (s *suite) lifecycle(t *testing.T) {
	b := s.h.New(t, nil)
	ctx := s.ctx(t)
	sp := s.spec(t, "vcl", 0)
	s.cleanup(t, b, sp.Name())
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if st.Name != sp.Name() || st.VC != sp.VC || st.Node != sp.Node || !st.Running || st.PID <= 0 ||
		st.VLAN != sp.VLAN || st.Port == "" || st.Backend != b.Kind() || st.SpecHash != sp.Hash() {
		t.Fatalf("Ensure returned %+v", st)
	}
	l, err := b.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got, ok := find(l, sp.Name())
	if !ok || len(l) != 1 {
		t.Fatalf("List = %+v, want just %s", l, sp.Name())
	}
	if !got.Healthy() || got.PID != st.PID || got.Port != st.Port || got.SpecHash != st.SpecHash {
		t.Fatalf("List entry %+v, Ensure said %+v", got, st)
	}
	again, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if again.PID != st.PID {
		t.Fatalf("second Ensure restarted the node: pid %d -> %d", st.PID, again.PID)
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	s.checkNoLeftovers(t, b)
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := b.Remove(ctx, "vcl/never-existed"); err != nil {
		t.Fatalf("Remove of an unknown node: %v", err)
	}
}

func (s *suite) invalid(t *testing.T) {
	b := s.h.New(t, nil)
	ctx := s.ctx(t)
	for name, mutate := range map[string]func(*vm.NodeSpec){
		"bad VC":         func(sp *vm.NodeSpec) { sp.VC = "a/b" },
		"empty node":     func(sp *vm.NodeSpec) { sp.Node = "" },
		"VLAN 0":         func(sp *vm.NodeSpec) { sp.VLAN = 0 },
		"VLAN 4095":      func(sp *vm.NodeSpec) { sp.VLAN = 4095 },
		"no MAC":         func(sp *vm.NodeSpec) { sp.MAC = overlay.MAC{} },
		"multicast MAC":  func(sp *vm.NodeSpec) { sp.MAC[0] = 1 },
		"no address":     func(sp *vm.NodeSpec) { sp.Addr = netip.Prefix{} },
		"IPv6":           func(sp *vm.NodeSpec) { sp.Addr = netip.MustParsePrefix("fd00::1/64") },
		"far gateway":    func(sp *vm.NodeSpec) { sp.Gateway = netip.MustParseAddr("192.168.1.1") },
		"bad env key":    func(sp *vm.NodeSpec) { sp.Agent.Env = map[string]string{"PATH": "/x"} },
		"env with space": func(sp *vm.NodeSpec) { sp.Agent.Env = map[string]string{"MUSUBI_ZK": "a b"} },
		"two disks":      func(sp *vm.NodeSpec) { sp.Disk = &vm.Disk{File: "/x", ISCSI: &vm.ISCSIDisk{}} },
		"short secret": func(sp *vm.NodeSpec) {
			sp.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: "127.0.0.1:3260", Target: "iqn.2025-01.t:x", Initiator: "iqn.2025-01.i:y", LUN: 1, User: "u", Secret: "short"}}
		},
	} {
		sp := s.spec(t, "vci", 0)
		mutate(&sp)
		if _, err := b.Ensure(ctx, sp); !errors.Is(err, vm.ErrInvalid) {
			t.Errorf("%s: Ensure error %v, want ErrInvalid", name, err)
		}
	}
	for _, n := range []string{"", "novc", "a/b/c", "/n", "vc/", "v c/n"} {
		if err := b.Remove(ctx, n); !errors.Is(err, vm.ErrInvalid) {
			t.Errorf("Remove(%q) error %v, want ErrInvalid", n, err)
		}
	}
	s.checkNoLeftovers(t, b)
}

func (s *suite) conflict(t *testing.T) {
	b := s.h.New(t, nil)
	ctx := s.ctx(t)
	sp := s.spec(t, "vcc", 0)
	s.cleanup(t, b, sp.Name())
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	other := sp
	other.Addr = netip.MustParsePrefix("10.77.0.99/24")
	if _, err := b.Ensure(ctx, other); !errors.Is(err, vm.ErrConflict) {
		t.Fatalf("Ensure with another address: %v, want ErrConflict", err)
	}
	other = sp
	other.VLAN = 101
	if _, err := b.Ensure(ctx, other); !errors.Is(err, vm.ErrConflict) {
		t.Fatalf("Ensure with another VLAN: %v, want ErrConflict", err)
	}
	l, err := b.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, ok := find(l, sp.Name()); !ok || got.PID != st.PID || !got.Healthy() {
		t.Fatalf("after refused changes List = %+v, want the original node (pid %d) untouched", l, st.PID)
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	s.checkNoLeftovers(t, b)
}

func (s *suite) restartSafe(t *testing.T) {
	first := s.h.New(t, nil)
	ctx := s.ctx(t)
	sp := s.spec(t, "vcr", 0)
	s.cleanup(t, first, sp.Name())
	st, err := first.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	second := s.h.New(t, nil) // a restarted peer
	l, err := second.List(ctx)
	if err != nil {
		t.Fatalf("List after restart: %v", err)
	}
	got, ok := find(l, sp.Name())
	if !ok || !got.Healthy() || got.PID != st.PID || got.SpecHash != sp.Hash() {
		t.Fatalf("List after restart = %+v, want %s healthy with pid %d", l, sp.Name(), st.PID)
	}
	again, err := second.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("Ensure after restart: %v", err)
	}
	if again.PID != st.PID {
		t.Fatalf("Ensure after restart started the node again: pid %d -> %d", st.PID, again.PID)
	}
	if err := second.Remove(ctx, sp.Name()); err != nil {
		t.Fatalf("Remove after restart: %v", err)
	}
	s.checkNoLeftovers(t, first)
}

func (s *suite) crash(t *testing.T) {
	if s.h.Crash == nil {
		t.Skip("harness cannot crash a node")
	}
	b := s.h.New(t, nil)
	ctx := s.ctx(t)
	sp := s.spec(t, "vcx", 0)
	s.cleanup(t, b, sp.Name())
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	s.h.Crash(t, st)
	l, err := b.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got, ok := find(l, sp.Name())
	if !ok || got.Running || len(got.Problems) == 0 {
		t.Fatalf("List after crash = %+v, want %s not running, with problems", l, sp.Name())
	}
	again, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("Ensure after crash: %v", err)
	}
	if !again.Running || again.PID == st.PID {
		t.Fatalf("Ensure after crash = %+v, want a new process", again)
	}
	l, err = b.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, ok := find(l, sp.Name()); !ok || !got.Healthy() || got.PID != again.PID {
		t.Fatalf("List after repair = %+v", l)
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	s.checkNoLeftovers(t, b)
}

func (s *suite) ready(t *testing.T) {
	ctx := s.ctx(t)
	var calls atomic.Int32
	var mu sync.Mutex
	var seen []vm.NodeState
	fail := errors.New("agent did not register")
	b := s.h.New(t, func(ctx context.Context, st vm.NodeState) error {
		calls.Add(1)
		mu.Lock()
		seen = append(seen, st)
		mu.Unlock()
		if st.Node == "n1" {
			return fail
		}
		return nil
	})
	ok := s.spec(t, "vcy", 0)
	bad := s.spec(t, "vcy", 1)
	s.cleanup(t, b, ok.Name(), bad.Name())
	st, err := b.Ensure(ctx, ok)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("ready hook called %d times, want 1", calls.Load())
	}
	mu.Lock()
	first := seen[0]
	mu.Unlock()
	if first.Name != ok.Name() || !first.Running || first.PID != st.PID {
		t.Fatalf("ready hook saw %+v, want the running node %s (pid %d)", first, ok.Name(), st.PID)
	}
	if _, err := b.Ensure(ctx, bad); !errors.Is(err, vm.ErrNotReady) || !errors.Is(err, fail) {
		t.Fatalf("Ensure with a failing ready hook: %v, want ErrNotReady wrapping the hook's error", err)
	}
	l, err := b.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if _, ok := find(l, bad.Name()); !ok {
		t.Fatalf("a node that is not ready must still be listed (to be removed): %+v", l)
	}
	for _, n := range []string{ok.Name(), bad.Name()} {
		if err := b.Remove(ctx, n); err != nil {
			t.Fatalf("Remove(%s): %v", n, err)
		}
	}
	s.checkNoLeftovers(t, b)
}

func (s *suite) concurrent(t *testing.T) {
	b := s.h.New(t, nil)
	ctx := s.ctx(t)
	specs := make([]vm.NodeSpec, s.h.Nodes)
	names := make([]string, s.h.Nodes)
	for i := range specs {
		specs[i] = s.spec(t, "vcn", i)
		names[i] = specs[i].Name()
	}
	s.cleanup(t, b, names...)
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Ensure(ctx, specs[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Ensure: %v", err)
	}
	l, err := b.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(l) != len(specs) {
		t.Fatalf("List has %d nodes, want %d: %+v", len(l), len(specs), l)
	}
	ports := map[string]bool{}
	for i, st := range l {
		if st.Name != names[i] || !st.Healthy() {
			t.Errorf("List[%d] = %+v, want %s healthy (List is sorted by name)", i, st, names[i])
		}
		if ports[st.Port] {
			t.Errorf("port %s used twice", st.Port)
		}
		ports[st.Port] = true
	}
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Remove(ctx, names[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Remove: %v", err)
	}
	s.checkNoLeftovers(t, b)
}
