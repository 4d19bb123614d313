package overlay

import "errors"

// Sentinel errors returned (possibly wrapped) by this package and by every
// Dataplane implementation. Test with errors.Is.
var (
	// ErrInvalid: a Desired state, flow, MAC or cookie is malformed. Apply
	// returns it before changing anything.
	ErrInvalid = errors.New("overlay: invalid desired state")
	// ErrUnavailable: the switch (OVSDB or the OpenFlow connection) cannot be
	// reached; nothing or only part of an Apply took effect, and a later Apply
	// of the same Desired completes it.
	ErrUnavailable = errors.New("overlay: dataplane unavailable")
)
