// Package vlantest has FakeSwitch, an in-memory vlan.Switch that behaves
// like the overlay's Open vSwitch dataplane for single-port operations
// (foreign ports refused, ports of missing devices kept but not attached),
// so vlan.New(NewFakeSwitch()) is a fake provision.PortDriver that passes
// the same contract suite as the real one.
package vlantest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/musubi-fabric/musubi/node/provision/vlan"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
)

// FakeSwitch is an in-memory bridge.
type FakeSwitch struct {
	mu      sync.Mutex
	ports   map[string]overlay.Port
	ofports map[string]int32
	foreign map[string]bool
	devices map[string]bool
	next    int32
	changes int
}

var _ vlan.Switch = (*FakeSwitch)(nil)

// NewFakeSwitch returns an empty bridge.
func NewFakeSwitch() *FakeSwitch {
	return &FakeSwitch{ports: map[string]overlay.Port{}, ofports: map[string]int32{}, foreign: map[string]bool{}, devices: map[string]bool{}}
}

// AddDevice makes a network device called name exist (a port of that name
// gets attached).
func (f *FakeSwitch) AddDevice(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devices[name] = true
}

// AddForeignPort adds a port that is not musubi's.
func (f *FakeSwitch) AddForeignPort(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.foreign[name] = true
}

// Changes counts the port rows created, updated or removed.
func (f *FakeSwitch) Changes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes
}

func (f *FakeSwitch) status(p overlay.Port) overlay.PortStatus {
	st := overlay.PortStatus{Port: p}
	if p.Internal || f.devices[p.Name] {
		if f.ofports[p.Name] == 0 {
			f.next++
			f.ofports[p.Name] = f.next
		}
		st.OFPort, st.LinkUp = f.ofports[p.Name], true
	} else {
		st.OFPort = -1
		st.Error = fmt.Sprintf("could not open network device %s (No such device)", p.Name)
	}
	return st
}

// EnsurePort implements vlan.Switch.
func (f *FakeSwitch) EnsurePort(ctx context.Context, p overlay.Port) (overlay.PortStatus, error) {
	if err := ctx.Err(); err != nil {
		return overlay.PortStatus{}, fmt.Errorf("%w: %v", overlay.ErrUnavailable, err)
	}
	if err := (overlay.Desired{Site: "fake", Ports: []overlay.Port{p}}).Validate(); err != nil {
		return overlay.PortStatus{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.foreign[p.Name] {
		return overlay.PortStatus{}, fmt.Errorf("%w: port %s", ovs.ErrForeign, p.Name)
	}
	if cur, ok := f.ports[p.Name]; !ok || cur != p {
		f.ports[p.Name] = p
		f.changes++
	}
	return f.status(p), nil
}

// RemovePort implements vlan.Switch.
func (f *FakeSwitch) RemovePort(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", overlay.ErrUnavailable, err)
	}
	if !overlay.ValidPortName(name) {
		return fmt.Errorf("%w: port name %q", overlay.ErrInvalid, name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.foreign[name] {
		return fmt.Errorf("%w: port %s", ovs.ErrForeign, name)
	}
	if _, ok := f.ports[name]; ok {
		delete(f.ports, name)
		delete(f.ofports, name)
		f.changes++
	}
	return nil
}

// Ports implements vlan.Switch.
func (f *FakeSwitch) Ports(ctx context.Context) ([]overlay.PortStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", overlay.ErrUnavailable, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]overlay.PortStatus, 0, len(f.ports))
	for _, p := range f.ports {
		out = append(out, f.status(p))
	}
	slices.SortFunc(out, func(a, b overlay.PortStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
