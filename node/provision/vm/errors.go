package vm

import (
	"errors"
	"fmt"

	"github.com/musubi-fabric/musubi/node/provision"
)

// Sentinel errors of the node backends; test with errors.Is. ErrInvalid and
// ErrUnavailable also match provision's sentinels of the same name.
var (
	// ErrInvalid: the spec or the name is malformed.
	ErrInvalid = fmt.Errorf("vm: %w", provision.ErrInvalid)
	// ErrUnavailable: something the backend needs on the host is missing
	// (qemu, ip, the switch namespace) or does not answer.
	ErrUnavailable = fmt.Errorf("vm: %w", provision.ErrUnavailable)
	// ErrConflict: a node with that name runs with a different spec. Remove
	// it first to change it.
	ErrConflict = errors.New("vm: node exists with another spec")
	// ErrExited: the node's process exited while the backend waited for it.
	ErrExited = errors.New("vm: node process exited")
	// ErrNotReady: the node runs but its ReadyFunc failed or timed out.
	ErrNotReady = errors.New("vm: node not ready")
	// ErrCommand: a host command failed (see CmdError for the detail).
	ErrCommand = errors.New("vm: command failed")
)
