package ovs

import (
	"errors"
	"fmt"

	"github.com/musubi-fabric/musubi/overlay"
)

// Sentinel errors. Apply and Observe also return the overlay package's
// ErrInvalid and ErrUnavailable (wrapped).
var (
	// ErrConfig: the Config is incomplete or malformed.
	ErrConfig = errors.New("ovs: bad config")
	// ErrForeign: a port or bridge that Apply would have to change exists
	// and is not musubi's (no external_ids:musubi-owner mark).
	ErrForeign = errors.New("ovs: object exists and is not musubi's")
	// ErrPort: OVS could not create a port (its Interface has ofport -1,
	// for example because the device does not exist).
	ErrPort = errors.New("ovs: port not usable")
	// ErrSwitch: the switch refused an OpenFlow request (an OFPT_ERROR).
	ErrSwitch = errors.New("ovs: switch error")
	// ErrProtocol: the switch sent something the controller cannot use
	// (wrong OpenFlow version, malformed message).
	ErrProtocol = errors.New("ovs: OpenFlow protocol error")
	// ErrPanic: a library call panicked; the panic was recovered.
	ErrPanic = errors.New("ovs: recovered panic")
	// ErrNoSwitch: no OpenFlow connection from the switch (yet), or it
	// was lost during a request. It wraps overlay.ErrUnavailable.
	ErrNoSwitch = fmt.Errorf("%w: no OpenFlow connection", overlay.ErrUnavailable)
	// ErrStopped: Run has returned.
	ErrStopped = errors.New("ovs: dataplane stopped")
)
