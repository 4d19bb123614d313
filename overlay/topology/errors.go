package topology

import "errors"

// Sentinel errors. The graph and desired-state builders never fail as a
// whole because of one bad record: they skip it and report a problem that
// wraps one of these.
var (
	// ErrBadRecord: a sites/ or links/ record is malformed (bad name,
	// missing gateway, link to an unknown site) and was ignored.
	ErrBadRecord = errors.New("topology: bad record")
	// ErrBadEndpoint: a VC endpoint is malformed or conflicts with another
	// (VLAN owned by another VC, duplicate MAC, IP or port name) and was left
	// out of the desired state.
	ErrBadEndpoint = errors.New("topology: bad endpoint")
)
