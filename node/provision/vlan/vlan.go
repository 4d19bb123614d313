// Package vlan provisions virtual cluster ports on a site's integration
// bridge (br-int): one access port per virtual node, tagged with its VC's
// overlay-wide VLAN, marked as musubi's in external_ids.
//
// It has no OVSDB code of its own: Driver works through Switch, the
// single-port operations of the overlay's Open vSwitch dataplane
// (*ovs.Dataplane, over the peer's one OVSDB connection), which write the
// same rows the overlay controller's Apply writes for the same port. The
// overlay controller owns the set of musubi ports as a whole and removes
// ports its desired state lacks, so the lifecycle publishes a node's record
// (vc/<vc>/nodes/<node>) before Ensure and deletes it before Remove; see
// overlay/ovs/ports_api.go.
//
// vlantest has an in-memory Switch with the same behaviour; the
// provisiontest contract suite runs on both.
package vlan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
)

// Switch is what the driver needs from the site's switch.
type Switch interface {
	// EnsurePort creates or updates one VC port; a port of that name that
	// is not a musubi VC port fails with ovs.ErrForeign.
	EnsurePort(ctx context.Context, p overlay.Port) (overlay.PortStatus, error)
	// RemovePort deletes one VC port; missing is not an error.
	RemovePort(ctx context.Context, name string) error
	// Ports lists the musubi VC ports.
	Ports(ctx context.Context) ([]overlay.PortStatus, error)
}

var _ Switch = (*ovs.Dataplane)(nil)

// Driver provisions VC ports through a Switch. It implements
// provision.PortDriver.
type Driver struct {
	sw  Switch
	log *slog.Logger
}

var _ provision.PortDriver = (*Driver)(nil)

// New returns a driver over sw; log may be nil.
func New(sw Switch, log *slog.Logger) *Driver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{sw: sw, log: log}
}

// mapErr translates the switch's errors to provision's sentinels, keeping
// the original in the chain.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ovs.ErrForeign):
		return fmt.Errorf("%w: %w", provision.ErrForeign, err)
	case errors.Is(err, overlay.ErrInvalid):
		return fmt.Errorf("%w: %w", provision.ErrInvalid, err)
	case errors.Is(err, overlay.ErrUnavailable):
		return fmt.Errorf("%w: %w", provision.ErrUnavailable, err)
	}
	return err
}

func toOverlay(s provision.PortSpec) overlay.Port {
	return overlay.Port{Name: s.Name, VC: s.VC, VLAN: s.VLAN, MAC: s.MAC, IP: s.IP, Internal: s.Internal}
}

func fromOverlay(p overlay.PortStatus) provision.Port {
	return provision.Port{
		PortSpec: provision.PortSpec{Name: p.Name, VC: p.VC, VLAN: p.VLAN, MAC: p.MAC, IP: p.IP, Internal: p.Internal},
		OFPort:   p.OFPort, LinkUp: p.LinkUp, Error: p.Error,
	}
}

// Ensure implements provision.PortDriver.
func (d *Driver) Ensure(ctx context.Context, spec provision.PortSpec) (provision.Port, error) {
	if err := spec.Validate(); err != nil {
		return provision.Port{}, err
	}
	st, err := d.sw.EnsurePort(ctx, toOverlay(spec))
	if err != nil {
		return provision.Port{}, fmt.Errorf("port %s: %w", spec.Name, mapErr(err))
	}
	p := fromOverlay(st)
	if !p.Attached() {
		d.log.Debug("port not attached yet", "port", spec.Name, "ofport", p.OFPort, "error", p.Error)
	}
	return p, nil
}

// Remove implements provision.PortDriver.
func (d *Driver) Remove(ctx context.Context, name string) error {
	if !overlay.ValidPortName(name) {
		return fmt.Errorf("%w: port name %q", provision.ErrInvalid, name)
	}
	if err := d.sw.RemovePort(ctx, name); err != nil {
		return fmt.Errorf("port %s: %w", name, mapErr(err))
	}
	return nil
}

// List implements provision.PortDriver.
func (d *Driver) List(ctx context.Context) ([]provision.Port, error) {
	ps, err := d.sw.Ports(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]provision.Port, 0, len(ps))
	for _, p := range ps {
		out = append(out, fromOverlay(p))
	}
	return out, nil
}
