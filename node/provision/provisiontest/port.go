package provisiontest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/overlay"
)

// PortHarness is one port driver under test, on a switch of its own.
type PortHarness struct {
	// Driver is the driver under test.
	Driver provision.PortDriver
	// AddDevice creates a network device called name where the switch can
	// attach it (a veth end, say).
	AddDevice func(t *testing.T, name string)
	// AddForeignPort adds a port that is not musubi's to the bridge.
	AddForeignPort func(t *testing.T, name string)
	// Reopen returns a new driver over the same switch, as a restarted peer
	// creates it.
	Reopen func(t *testing.T) provision.PortDriver
	// Leftovers lists what musubi still has on the switch (any form); it
	// must be empty once every port is removed.
	Leftovers func(t *testing.T) []string
}

func portSpec(name string, vlan uint16, i byte) provision.PortSpec {
	return provision.PortSpec{Name: name, VC: "vc1", VLAN: vlan, MAC: overlay.MAC{0x02, 0, 0, 0, 1, i},
		IP: netip.AddrFrom4([4]byte{10, 9, 0, i}), Internal: true}
}

// TestPortDriver runs the contract; newHarness gives each subtest a fresh
// switch.
func TestPortDriver(t *testing.T, newHarness func(t *testing.T) *PortHarness) {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		t.Cleanup(cancel)
		return c
	}
	list := func(t *testing.T, d provision.PortDriver) []provision.Port {
		t.Helper()
		ps, err := d.List(ctx(t))
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		return ps
	}
	clean := func(t *testing.T, h *PortHarness, d provision.PortDriver) {
		t.Helper()
		for _, p := range list(t, d) {
			if err := d.Remove(ctx(t), p.Name); err != nil {
				t.Fatalf("Remove(%s): %v", p.Name, err)
			}
		}
		if ps := list(t, d); len(ps) != 0 {
			t.Fatalf("ports left: %+v", ps)
		}
		if h.Leftovers != nil {
			if left := h.Leftovers(t); len(left) != 0 {
				t.Fatalf("left on the switch: %v", left)
			}
		}
	}

	t.Run("InvalidSpecs", func(t *testing.T) {
		h := newHarness(t)
		cases := map[string]func(*provision.PortSpec){
			"long name":     func(s *provision.PortSpec) { s.Name = "a-name-of-16-byt" },
			"name with /":   func(s *provision.PortSpec) { s.Name = "a/b" },
			"VLAN 0":        func(s *provision.PortSpec) { s.VLAN = 0 },
			"VLAN 4095":     func(s *provision.PortSpec) { s.VLAN = 4095 },
			"zero MAC":      func(s *provision.PortSpec) { s.MAC = overlay.MAC{} },
			"multicast MAC": func(s *provision.PortSpec) { s.MAC = overlay.MAC{1, 0, 0, 0, 0, 1} },
			"IPv6":          func(s *provision.PortSpec) { s.IP = netip.MustParseAddr("fd00::1") },
			"bad VC":        func(s *provision.PortSpec) { s.VC = "" },
		}
		for name, mod := range cases {
			s := portSpec("vp1", 100, 1)
			mod(&s)
			if _, err := h.Driver.Ensure(ctx(t), s); !errors.Is(err, provision.ErrInvalid) {
				t.Errorf("%s: Ensure = %v, want ErrInvalid", name, err)
			}
		}
		if err := h.Driver.Remove(ctx(t), "bad/name"); !errors.Is(err, provision.ErrInvalid) {
			t.Errorf("Remove(bad/name) = %v, want ErrInvalid", err)
		}
		clean(t, h, h.Driver)
	})

	t.Run("EnsureIsIdempotentAndUpdates", func(t *testing.T) {
		h := newHarness(t)
		s := portSpec("vp1", 100, 1)
		p, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if p.PortSpec != s || !p.Attached() {
			t.Fatalf("Ensure returned %+v, want attached %+v", p, s)
		}
		if ps := list(t, h.Driver); len(ps) != 1 || !reflect.DeepEqual(ps[0], p) {
			t.Fatalf("List = %+v, want [%+v]", ps, p)
		}
		again, err := h.Driver.Ensure(ctx(t), s)
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("Ensure again: %+v %v, want %+v", again, err, p)
		}
		s.VLAN, s.IP = 200, netip.MustParseAddr("10.9.9.9")
		upd, err := h.Driver.Ensure(ctx(t), s)
		if err != nil || upd.VLAN != 200 || upd.IP != s.IP || upd.OFPort != p.OFPort {
			t.Fatalf("Ensure with a new tag: %+v %v (OpenFlow port should stay %d)", upd, err, p.OFPort)
		}
		if ps := list(t, h.Driver); len(ps) != 1 || ps[0].VLAN != 200 {
			t.Fatalf("List after the update: %+v", ps)
		}
		clean(t, h, h.Driver)
	})

	t.Run("DeviceAppearsLater", func(t *testing.T) {
		h := newHarness(t)
		s := portSpec("vdev1", 300, 2)
		s.Internal = false
		p, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatalf("Ensure before the device exists: %v", err)
		}
		if p.Attached() {
			t.Fatalf("port attached without a device: %+v", p)
		}
		h.AddDevice(t, s.Name)
		deadline := time.Now().Add(20 * time.Second)
		for {
			ps := list(t, h.Driver)
			if len(ps) == 1 && ps[0].Attached() {
				if ps[0].PortSpec != s {
					t.Fatalf("attached port %+v, want %+v", ps[0], s)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("port not attached 20 s after its device appeared: %+v", ps)
			}
			time.Sleep(20 * time.Millisecond)
		}
		clean(t, h, h.Driver)
	})

	t.Run("ForeignPortsUntouched", func(t *testing.T) {
		h := newHarness(t)
		if h.AddForeignPort == nil {
			t.Skip("the harness cannot add foreign ports")
		}
		h.AddForeignPort(t, "foreign1")
		if _, err := h.Driver.Ensure(ctx(t), portSpec("foreign1", 100, 3)); !errors.Is(err, provision.ErrForeign) {
			t.Fatalf("Ensure over a foreign port: %v, want ErrForeign", err)
		}
		if err := h.Driver.Remove(ctx(t), "foreign1"); !errors.Is(err, provision.ErrForeign) {
			t.Fatalf("Remove of a foreign port: %v, want ErrForeign", err)
		}
		if ps := list(t, h.Driver); len(ps) != 0 {
			t.Fatalf("List shows foreign ports: %+v", ps)
		}
		clean(t, h, h.Driver)
	})

	t.Run("RemoveIsIdempotent", func(t *testing.T) {
		h := newHarness(t)
		if _, err := h.Driver.Ensure(ctx(t), portSpec("vp1", 100, 1)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := h.Driver.Remove(ctx(t), "vp1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Driver.Remove(ctx(t), "never"); err != nil {
			t.Fatalf("Remove of a missing port: %v", err)
		}
		clean(t, h, h.Driver)
	})

	t.Run("ManyPortsAndRestart", func(t *testing.T) {
		h := newHarness(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				if _, err := h.Driver.Ensure(ctx(t), portSpec(fmt.Sprintf("vp%d", i), uint16(100+i%2), byte(i+1))); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		before := list(t, h.Driver)
		if len(before) != 8 {
			t.Fatalf("listed %d ports, want 8", len(before))
		}
		d := h.Reopen(t)
		if after := list(t, d); !reflect.DeepEqual(after, before) {
			t.Fatalf("a new driver lists\n%+v\nthe old one\n%+v", after, before)
		}
		clean(t, h, d)
	})
}
