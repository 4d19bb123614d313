package coord

import (
	"context"
	"time"
)

// AnyVersion matches every version in Set, Delete and Check.
const AnyVersion int32 = -1

// CreateMode selects the kind of node Create makes.
type CreateMode int

const (
	// Persistent nodes live until deleted.
	Persistent CreateMode = iota
	// Ephemeral nodes are deleted when the creating session ends.
	Ephemeral
	// Sequential nodes are persistent and get a 10-digit, zero-padded,
	// per-parent monotonic counter appended to their name.
	Sequential
	// EphemeralSequential combines Ephemeral and Sequential.
	EphemeralSequential
)

func (m CreateMode) String() string {
	switch m {
	case Persistent:
		return "persistent"
	case Ephemeral:
		return "ephemeral"
	case Sequential:
		return "sequential"
	case EphemeralSequential:
		return "ephemeral-sequential"
	}
	return "unknown"
}

// IsEphemeral reports whether nodes of this mode die with their session.
func (m CreateMode) IsEphemeral() bool { return m == Ephemeral || m == EphemeralSequential }

// IsSequential reports whether the store appends a sequence number.
func (m CreateMode) IsSequential() bool { return m == Sequential || m == EphemeralSequential }

// Stat is the metadata of a node.
type Stat struct {
	Czxid          int64     // transaction that created the node
	Mzxid          int64     // transaction that last modified the node's data
	Pzxid          int64     // transaction that last changed the node's children
	Ctime          time.Time // creation time
	Mtime          time.Time // last modification time
	Version        int32     // data version, incremented by every Set
	Cversion       int32     // child version, incremented by every child create/delete
	EphemeralOwner int64     // session id of the owner, 0 for persistent nodes
	DataLength     int32     // length of the data
	NumChildren    int32     // number of children
}

// EventType is the kind of a watch event.
type EventType int

const (
	// EventCreated: the watched node was created (ExistsW on a missing node).
	EventCreated EventType = iota + 1
	// EventDeleted: the watched node was deleted.
	EventDeleted
	// EventDataChanged: the watched node's data was set.
	EventDataChanged
	// EventChildrenChanged: a child of the watched node was created or deleted.
	EventChildrenChanged
	// EventNotWatching: the watch was dropped (session expired or store
	// closed); Event.Err says why. Re-read and re-watch.
	EventNotWatching
)

func (t EventType) String() string {
	switch t {
	case EventCreated:
		return "created"
	case EventDeleted:
		return "deleted"
	case EventDataChanged:
		return "data-changed"
	case EventChildrenChanged:
		return "children-changed"
	case EventNotWatching:
		return "not-watching"
	}
	return "unknown"
}

// Event is delivered once on a watch channel. Watches are one-shot, as in
// ZooKeeper: every watch channel receives exactly one Event and is then
// closed; it never drops its event.
type Event struct {
	Type EventType
	Path string // the watched path (without any chroot)
	Err  error  // set for EventNotWatching
}

// SessionState is the state of the Store's session with the ensemble.
type SessionState int

const (
	// StateDisconnected: the connection broke; the session may still be
	// alive and is resumed when a server is reached in time.
	StateDisconnected SessionState = iota + 1
	// StateConnected: a session is established (ZooKeeper's HasSession).
	StateConnected
	// StateExpired: the session ended; ephemerals and watches are gone. A
	// new session (new SessionID) follows with StateConnected.
	StateExpired
	// StateAuthFailed: the ensemble refused the credentials.
	StateAuthFailed
	// StateClosed: the Store was closed.
	StateClosed
)

func (s SessionState) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnected:
		return "connected"
	case StateExpired:
		return "expired"
	case StateAuthFailed:
		return "auth-failed"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// SessionEvent reports a change of session state.
type SessionEvent struct {
	State     SessionState
	SessionID int64  // the session's id after the change (0 when none)
	Server    string // the server the client is attached to, if known
}

// Store is a client session on a coordination ensemble. Paths are absolute
// ("/a/b"); an implementation may place them under a chroot, invisibly to
// the caller. All methods are safe for concurrent use. A method honours ctx
// before it sends a request; a request already sent is bounded by the
// session timeout.
type Store interface {
	// Create makes a node and returns its actual path (with the sequence
	// suffix for sequential modes). A nil acl means the store's default ACL
	// (unless configured otherwise, coord.DefaultACL of its credentials).
	// The parent must exist.
	Create(ctx context.Context, path string, data []byte, mode CreateMode, acl []ACL) (string, error)
	// Get returns a node's data and stat.
	Get(ctx context.Context, path string) ([]byte, Stat, error)
	// GetW is Get plus a one-shot watch for data change or deletion.
	GetW(ctx context.Context, path string) ([]byte, Stat, <-chan Event, error)
	// Set replaces a node's data if its version matches (AnyVersion: any).
	Set(ctx context.Context, path string, data []byte, version int32) (Stat, error)
	// Delete removes a childless node if its version matches.
	Delete(ctx context.Context, path string, version int32) error
	// Exists reports whether a node exists, and its stat if so.
	Exists(ctx context.Context, path string) (bool, Stat, error)
	// ExistsW is Exists plus a one-shot watch for creation, data change or
	// deletion.
	ExistsW(ctx context.Context, path string) (bool, Stat, <-chan Event, error)
	// Children returns the names (not paths) of a node's children, sorted.
	Children(ctx context.Context, path string) ([]string, Stat, error)
	// ChildrenW is Children plus a one-shot watch for a child created or
	// deleted, or the node deleted.
	ChildrenW(ctx context.Context, path string) ([]string, Stat, <-chan Event, error)
	// Multi applies ops atomically: all or none. On failure the error is a
	// *MultiError naming the failing op; ErrConnectionLost means unknown.
	Multi(ctx context.Context, ops ...Op) ([]OpResult, error)
	// Sync waits until the server this session uses has caught up with the
	// leader for path, so a following read sees every write committed before.
	Sync(ctx context.Context, path string) error
	// SessionID is the current session's id (0 when there is none).
	SessionID() int64
	// OnSession registers fn to be called, in order and from one goroutine,
	// for every session state change; fn must not block. The returned func
	// unregisters it.
	OnSession(fn func(SessionEvent)) (cancel func())
	// Close ends the session (its ephemerals are deleted at once) and
	// releases resources. Further calls return ErrClosed.
	Close() error
}

// Op is one operation of a Multi: *CheckOp, *CreateOp, *SetOp or *DeleteOp.
type Op interface {
	Kind() string
	NodePath() string
}

// CheckOp asserts that a node exists with the given version (AnyVersion:
// merely exists).
type CheckOp struct {
	Path    string
	Version int32
}

// CreateOp creates a node as Create does.
type CreateOp struct {
	Path string
	Data []byte
	Mode CreateMode
	ACL  []ACL // nil: the store's default ACL
}

// SetOp sets a node's data as Set does.
type SetOp struct {
	Path    string
	Data    []byte
	Version int32
}

// DeleteOp deletes a node as Delete does.
type DeleteOp struct {
	Path    string
	Version int32
}

func (*CheckOp) Kind() string        { return "check" }
func (*CreateOp) Kind() string       { return "create" }
func (*SetOp) Kind() string          { return "set" }
func (*DeleteOp) Kind() string       { return "delete" }
func (o *CheckOp) NodePath() string  { return o.Path }
func (o *CreateOp) NodePath() string { return o.Path }
func (o *SetOp) NodePath() string    { return o.Path }
func (o *DeleteOp) NodePath() string { return o.Path }

// OpResult is the result of one op of a successful Multi.
type OpResult struct {
	Path string // CreateOp: the created path (with sequence suffix)
	Stat Stat   // SetOp: the node's new stat
}
