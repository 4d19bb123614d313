package provision

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay"
)

// PortSpec is one virtual node's port on the site's integration bridge: an
// access port carrying the VC's VLAN tag.
type PortSpec struct {
	// Name is the OVS port and interface name (a Linux interface name, at
	// most 15 bytes): the node's tap or veth end, or an OVS internal port.
	Name string
	// VC names the virtual cluster; VLAN is its tag (1-4094).
	VC   string
	VLAN uint16
	// MAC and IP are the node's addresses, recorded on the port as the
	// overlay records them.
	MAC overlay.MAC
	IP  netip.Addr
	// Internal asks OVS to create the device itself (type=internal);
	// otherwise Name is a device that exists or will exist (the port is
	// attached when it appears).
	Internal bool
}

// Validate checks the spec.
func (s PortSpec) Validate() error {
	if !overlay.ValidPortName(s.Name) {
		return fmt.Errorf("%w: port name %q", ErrInvalid, s.Name)
	}
	if err := coord.ValidName(s.VC); err != nil {
		return fmt.Errorf("%w: VC: %v", ErrInvalid, err)
	}
	if s.VLAN < 1 || s.VLAN > 4094 {
		return fmt.Errorf("%w: port %s: VLAN %d not in 1-4094", ErrInvalid, s.Name, s.VLAN)
	}
	if s.MAC.IsZero() || s.MAC.IsMulticast() {
		return fmt.Errorf("%w: port %s: MAC %s", ErrInvalid, s.Name, s.MAC)
	}
	if s.IP.IsValid() && !s.IP.Is4() {
		return fmt.Errorf("%w: port %s: IP %s is not IPv4", ErrInvalid, s.Name, s.IP)
	}
	return nil
}

// Port is a VC port as the switch reports it.
type Port struct {
	PortSpec
	// OFPort is the OpenFlow port number: 0 while not assigned, -1 when OVS
	// could not open the device (it does not exist yet, for example).
	OFPort int32
	// LinkUp is the interface's link state; Error its error column.
	LinkUp bool
	Error  string
}

// Attached reports whether OVS has the device as a working port.
func (p Port) Attached() bool { return p.OFPort > 0 }

// PortDriver provisions VC ports on one site's integration bridge.
type PortDriver interface {
	// Ensure makes the port exist with spec's tag and marks. It succeeds
	// when the row is in place even if the device does not exist yet.
	Ensure(ctx context.Context, spec PortSpec) (Port, error)
	// Remove deletes the port called name. A missing port is not an error;
	// a port that is not musubi's is left alone (ErrForeign).
	Remove(ctx context.Context, name string) error
	// List returns every musubi VC port on the bridge, sorted by name.
	List(ctx context.Context) ([]Port, error)
}
