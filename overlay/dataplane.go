package overlay

import "context"

// Dataplane is one site's switch, driven declaratively.
//
// Apply makes the switch match d and returns nil only when it does:
//   - Invalid input (d.Validate fails) returns an ErrInvalid error and
//     changes nothing.
//   - Tunnels and ports: after Apply the musubi-owned tunnels and ports are
//     exactly d's (created, updated in place, or removed). Ports that musubi
//     does not own (in OVS: without musubi's external_ids mark) are left
//     alone.
//   - Flows: after Apply the flows whose cookie is Owned are exactly
//     d.Flows (same identity, cookie and actions). Flows already present
//     unchanged are not touched (no churn: Apply of the same Desired twice
//     changes nothing). New and changed flows are installed first, then
//     owned flows not in d (stale generations, removed entries) are
//     deleted, so forwarding never passes through an empty table. Flows
//     with foreign cookies are never modified or deleted, except that a
//     desired flow replaces a foreign one with the same identity (OpenFlow
//     keeps one flow per table, priority and match).
//   - Apply is idempotent and may be retried after any error; a failed Apply
//     may leave a partial state that the next successful Apply completes.
//
// Observe reports what is really on the switch, read back from it (not a
// cache of what was applied). Both methods take the context for
// cancellation; implementations serialise Apply calls and allow Observe
// concurrently.
type Dataplane interface {
	Apply(ctx context.Context, d Desired) error
	Observe(ctx context.Context) (Observed, error)
}

// Observed is the switch's actual state. The declarative fields of
// tunnels and ports (remote site, VC, MAC, IP) are read back from the
// switch too (in OVS: the columns and external_ids that Apply wrote).
type Observed struct {
	// Tunnels are the musubi-owned tunnel ports.
	Tunnels []TunnelStatus
	// Ports are the musubi-owned VC node ports.
	Ports []PortStatus
	// Flows are all flows of the bridge, musubi's and foreign ones, decoded
	// into the flow language.
	Flows []Flow
	// Opaque lists flows that do not fit the flow language, each in
	// ovs-ofctl text, so nothing on the switch is hidden.
	Opaque []string
}

// TunnelStatus is a tunnel as the switch reports it.
type TunnelStatus struct {
	Tunnel
	// OFPort is the OpenFlow port number, or -1 when OVS could not create
	// the interface (0 when not yet assigned).
	OFPort int32
	// LinkUp is the interface's link_state.
	LinkUp bool
	BFD    BFDStatus
	// Error is the interface's error column, if any.
	Error string
}

// BFDState is a BFD session state as OVS reports it (bfd_status:state).
type BFDState string

// The BFD states of RFC 5880 in OVS's spelling; "" when BFD has not
// reported yet.
const (
	BFDAdminDown BFDState = "admin_down"
	BFDDown      BFDState = "down"
	BFDInit      BFDState = "init"
	BFDUp        BFDState = "up"
)

// BFDStatus is a tunnel's BFD status (OVS Interface bfd_status).
type BFDStatus struct {
	Enabled bool
	State   BFDState
	// RemoteState is the state the remote end reports.
	RemoteState BFDState
	// Forwarding is OVS's verdict that the tunnel carries traffic.
	Forwarding bool
	// Diagnostic is BFD's diagnostic text for the last state change.
	Diagnostic string
}

// PortStatus is a VC node port as the switch reports it.
type PortStatus struct {
	Port
	// OFPort is the OpenFlow port number, or -1 when OVS could not open the
	// device (0 when not yet assigned).
	OFPort int32
	LinkUp bool
	// Error is the interface's error column, if any.
	Error string
}
