package vlan_test

import (
	"context"
	"errors"
	"testing"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/provisiontest"
	"github.com/musubi-fabric/musubi/node/provision/vlan"
	"github.com/musubi-fabric/musubi/node/provision/vlan/vlantest"
	"github.com/musubi-fabric/musubi/overlay"
)

func TestFakeContract(t *testing.T) {
	provisiontest.TestPortDriver(t, func(t *testing.T) *provisiontest.PortHarness {
		sw := vlantest.NewFakeSwitch()
		return &provisiontest.PortHarness{
			Driver:         vlan.New(sw, nil),
			AddDevice:      func(_ *testing.T, name string) { sw.AddDevice(name) },
			AddForeignPort: func(_ *testing.T, name string) { sw.AddForeignPort(name) },
			Reopen:         func(*testing.T) provision.PortDriver { return vlan.New(sw, nil) },
		}
	})
}

// brokenSwitch fails every call with one error.
type brokenSwitch struct{ err error }

func (b brokenSwitch) EnsurePort(context.Context, overlay.Port) (overlay.PortStatus, error) {
	return overlay.PortStatus{}, b.err
}
func (b brokenSwitch) RemovePort(context.Context, string) error            { return b.err }
func (b brokenSwitch) Ports(context.Context) ([]overlay.PortStatus, error) { return nil, b.err }

func TestErrorMapping(t *testing.T) {
	spec := provision.PortSpec{Name: "vp1", VC: "vc1", VLAN: 10, MAC: overlay.MAC{2, 0, 0, 0, 0, 1}}
	for _, c := range []struct{ in, want error }{
		{overlay.ErrUnavailable, provision.ErrUnavailable},
		{overlay.ErrInvalid, provision.ErrInvalid},
	} {
		d := vlan.New(brokenSwitch{c.in}, nil)
		if _, err := d.Ensure(context.Background(), spec); !errors.Is(err, c.want) || !errors.Is(err, c.in) {
			t.Errorf("Ensure with %v: %v", c.in, err)
		}
		if err := d.Remove(context.Background(), "vp1"); !errors.Is(err, c.want) {
			t.Errorf("Remove with %v: %v", c.in, err)
		}
		if _, err := d.List(context.Background()); !errors.Is(err, c.want) {
			t.Errorf("List with %v: %v", c.in, err)
		}
	}
}
