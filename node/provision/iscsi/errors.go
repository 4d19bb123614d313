package iscsi

import (
	"errors"
	"fmt"

	"github.com/musubi-fabric/musubi/node/provision"
)

// Sentinel errors. Ensure, Remove and List also return provision's
// ErrInvalid, ErrNotFound and ErrForeign (wrapped).
var (
	// ErrConfig: the Config is incomplete or malformed.
	ErrConfig = errors.New("iscsi: bad config")
	// ErrUnavailable: tgtd's management socket cannot be reached. It wraps
	// provision.ErrUnavailable.
	ErrUnavailable = fmt.Errorf("%w: tgtd", provision.ErrUnavailable)
	// ErrInvalidRequest: a tgt request the driver would send is malformed
	// (a parameter value with a comma, an unknown mode). It wraps
	// provision.ErrInvalid.
	ErrInvalidRequest = fmt.Errorf("%w: tgt request", provision.ErrInvalid)
	// ErrProtocol: tgtd answered something the driver cannot parse.
	ErrProtocol = errors.New("iscsi: tgtd protocol error")
	// ErrDaemon: tgtd could not be started or stopped.
	ErrDaemon = errors.New("iscsi: tgtd daemon")
	// ErrBackend: the storage backend failed (clone, remove, list).
	ErrBackend = errors.New("iscsi: storage backend")
)
