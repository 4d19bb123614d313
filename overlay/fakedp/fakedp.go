// Package fakedp is a stateful fake overlay.Dataplane: it keeps tunnels,
// ports and flows in memory with exactly the Apply semantics the interface
// promises (diffing, generation-based stale flow deletion, foreign flows
// left alone), runs frames through its flows with overlay.Trace, and
// prints the same ovs-ofctl-style dump as the Open vSwitch implementation,
// for golden tests. It passes the contract suite in overlay/dataplanetest.
package fakedp

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/musubi-fabric/musubi/overlay"
)

// Fake is the in-memory dataplane. The zero value is not usable; call New.
// It is safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	tunnels  map[string]overlay.TunnelStatus // by port name
	ports    map[string]overlay.PortStatus   // by port name
	flows    map[string]overlay.Flow         // by Flow.Key
	opaque   []string
	nextPort int32
	changes  uint64
	failNext error
}

var _ overlay.Dataplane = (*Fake)(nil)

// New returns an empty fake switch (no tunnels, ports or flows).
func New() *Fake {
	return &Fake{
		tunnels:  map[string]overlay.TunnelStatus{},
		ports:    map[string]overlay.PortStatus{},
		flows:    map[string]overlay.Flow{},
		nextPort: 1,
	}
}

// Apply makes the fake match d (see overlay.Dataplane). Tunnels get BFD
// enabled and reported up; ports and tunnels keep their OpenFlow port
// numbers across updates.
func (f *Fake) Apply(ctx context.Context, d overlay.Desired) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fakedp: apply: %w", err)
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("fakedp: apply: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()

	wantTun := map[string]overlay.Tunnel{}
	for _, t := range d.Tunnels {
		wantTun[t.PortName] = t
	}
	for name := range f.tunnels {
		if _, ok := wantTun[name]; !ok {
			delete(f.tunnels, name)
			f.changes++
		}
	}
	for name, t := range wantTun {
		old, ok := f.tunnels[name]
		switch {
		case !ok:
			f.tunnels[name] = overlay.TunnelStatus{Tunnel: t, OFPort: f.allocPort(), LinkUp: true,
				BFD: overlay.BFDStatus{Enabled: true, State: overlay.BFDUp, RemoteState: overlay.BFDUp, Forwarding: true}}
			f.changes++
		case old.Tunnel != t:
			old.Tunnel = t
			f.tunnels[name] = old
			f.changes++
		}
	}
	wantPort := map[string]overlay.Port{}
	for _, p := range d.Ports {
		wantPort[p.Name] = p
	}
	for name := range f.ports {
		if _, ok := wantPort[name]; !ok {
			delete(f.ports, name)
			f.changes++
		}
	}
	for name, p := range wantPort {
		old, ok := f.ports[name]
		switch {
		case !ok:
			f.ports[name] = overlay.PortStatus{Port: p, OFPort: f.allocPort(), LinkUp: true}
			f.changes++
		case old.Port != p:
			old.Port = p
			f.ports[name] = old
			f.changes++
		}
	}

	if err := f.failNext; err != nil {
		f.failNext = nil
		return fmt.Errorf("fakedp: apply flows: %w", err)
	}
	// Install new and changed flows first, then delete stale owned ones.
	want := make(map[string]bool, len(d.Flows))
	for _, fl := range d.Flows {
		k := fl.Key()
		want[k] = true
		if old, ok := f.flows[k]; ok && old.Equal(fl) {
			continue
		}
		f.flows[k] = fl.Clone()
		f.changes++
	}
	for k, fl := range f.flows {
		if fl.Cookie.Owned() && !want[k] {
			delete(f.flows, k)
			f.changes++
		}
	}
	return nil
}

func (f *Fake) allocPort() int32 {
	n := f.nextPort
	f.nextPort++
	return n
}

// Observe returns the fake's state: tunnels and ports sorted by name,
// flows in overlay.SortFlows order.
func (f *Fake) Observe(ctx context.Context) (overlay.Observed, error) {
	if err := ctx.Err(); err != nil {
		return overlay.Observed{}, fmt.Errorf("fakedp: observe: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.observeLocked(), nil
}

func (f *Fake) observeLocked() overlay.Observed {
	var o overlay.Observed
	for _, name := range slices.Sorted(maps.Keys(f.tunnels)) {
		o.Tunnels = append(o.Tunnels, f.tunnels[name])
	}
	for _, name := range slices.Sorted(maps.Keys(f.ports)) {
		o.Ports = append(o.Ports, f.ports[name])
	}
	o.Flows = f.flowsLocked()
	o.Opaque = slices.Clone(f.opaque)
	return o
}

func (f *Fake) flowsLocked() []overlay.Flow {
	fl := make([]overlay.Flow, 0, len(f.flows))
	for _, x := range f.flows {
		fl = append(fl, x.Clone())
	}
	overlay.SortFlows(fl)
	return fl
}

// AddForeignFlow installs a flow the way another controller would, outside
// Apply (it implements dataplanetest.ForeignFlowAdder). Its cookie must not
// be musubi's. Like an OpenFlow add, it replaces a flow with the same
// identity.
func (f *Fake) AddForeignFlow(ctx context.Context, fl overlay.Flow) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fakedp: add foreign flow: %w", err)
	}
	if fl.Cookie.Owned() {
		return fmt.Errorf("%w: foreign flow with musubi cookie %s", overlay.ErrInvalid, fl.Cookie)
	}
	if err := fl.Validate(nil); err != nil {
		return fmt.Errorf("fakedp: add foreign flow: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows[fl.Key()] = fl.Clone()
	f.changes++
	return nil
}

// AddOpaqueFlow records a flow outside the flow language, reported in
// Observed.Opaque and never touched by Apply.
func (f *Fake) AddOpaqueFlow(text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opaque = append(f.opaque, text)
}

// SetBFD sets the BFD status a tunnel reports (and its link state, up when
// BFD forwards), as a test's stand-in for a link going down or up.
func (f *Fake) SetBFD(portName string, s overlay.BFDStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tunnels[portName]
	if !ok {
		return fmt.Errorf("fakedp: no tunnel %q", portName)
	}
	t.BFD = s
	t.LinkUp = s.Forwarding
	f.tunnels[portName] = t
	return nil
}

// FailNextApply makes the next Apply stop after the tunnels and ports, leave
// the flows as they are, and return err (wrapped): a partial apply such as
// a lost OpenFlow connection causes. A later Apply completes the work.
func (f *Fake) FailNextApply(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// Changes counts every change made to the switch so far (tunnel, port and
// flow creations, updates and deletions; it implements
// dataplanetest.ChangeCounter).
func (f *Fake) Changes() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes
}

// Trace runs a frame arriving on inPort through the current flows (see
// overlay.Trace).
func (f *Fake) Trace(inPort string, fr overlay.Frame) []overlay.Emit {
	f.mu.Lock()
	fl := f.flowsLocked()
	f.mu.Unlock()
	return overlay.Trace(fl, inPort, fr)
}

// Dump is overlay.Dump of the current state.
func (f *Fake) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return overlay.Dump(f.observeLocked())
}
