package coord

import (
	"errors"
	"fmt"
)

// Sentinel errors returned (possibly wrapped) by every Store implementation.
// Test with errors.Is.
var (
	// ErrNotFound: the node does not exist.
	ErrNotFound = errors.New("coord: node not found")
	// ErrExists: a node already exists at the path.
	ErrExists = errors.New("coord: node already exists")
	// ErrBadVersion: the expected version did not match.
	ErrBadVersion = errors.New("coord: version mismatch")
	// ErrNotEmpty: the node has children and cannot be deleted.
	ErrNotEmpty = errors.New("coord: node has children")
	// ErrNoChildrenForEphemerals: ephemeral nodes cannot have children.
	ErrNoChildrenForEphemerals = errors.New("coord: ephemeral nodes cannot have children")
	// ErrNoAuth: the session's credentials do not grant the operation.
	ErrNoAuth = errors.New("coord: not authorized")
	// ErrInvalidPath: the path is malformed (must be absolute, no trailing or
	// double slash, no "." or ".." elements).
	ErrInvalidPath = errors.New("coord: invalid path")
	// ErrSessionExpired: the session ended; its ephemeral nodes and watches
	// are gone. The Store opens a new session by itself; callers must
	// re-create their ephemerals and drop claims made under the old one.
	ErrSessionExpired = errors.New("coord: session expired")
	// ErrConnectionLost: the connection broke while a request was in flight,
	// so its outcome is unknown: a write may or may not have been applied.
	// Resolve it with Resolve (Sync, then read a record the caller wrote).
	ErrConnectionLost = errors.New("coord: connection lost, outcome unknown")
	// ErrUnavailable: no server could be reached; the request was not sent,
	// so it was not applied and may be retried.
	ErrUnavailable = errors.New("coord: no server available")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("coord: store closed")
)

// Retryable reports whether err is transient: the request may be retried
// as is (ErrUnavailable) or after resolving its outcome (ErrConnectionLost).
func Retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrConnectionLost)
}

// MultiError reports which operation of a failed Multi caused the failure.
// Multi is atomic: when it fails, none of its operations was applied.
type MultiError struct {
	Index int   // index of the failing operation in the Multi call
	Op    Op    // the failing operation
	Err   error // the cause, one of the sentinels above
}

func (e *MultiError) Error() string {
	return fmt.Sprintf("coord: multi op %d (%s %s): %v", e.Index, e.Op.Kind(), e.Op.NodePath(), e.Err)
}

func (e *MultiError) Unwrap() error { return e.Err }
