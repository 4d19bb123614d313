package memstore

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/musubi-fabric/musubi/coord"
)

// Store is one session on a Server. It implements coord.Store. Create it
// with Server.Connect.
type Store struct {
	srv        *Server
	ids        []string // digest identities the session is authenticated as
	defaultACL []coord.ACL
	ev         events

	// Guarded by srv.mu.
	session     int64 // current session id, 0 once closed
	closed      bool
	lossLeft    int  // InjectConnectionLoss: mutating calls left to fail
	lossApplied bool // InjectConnectionLoss: apply them before failing
}

var _ coord.Store = (*Store)(nil)

// Option configures a Store made by Connect.
type Option func(*options)

type options struct {
	creds      []coord.Credential
	defaultACL []coord.ACL
}

// WithCredentials authenticates the session with digest credentials. They
// are kept for the life of the Store, across expiries, as a ZooKeeper
// client re-sends its credentials on every new session.
func WithCredentials(creds ...coord.Credential) Option {
	return func(o *options) { o.creds = append(o.creds, creds...) }
}

// WithDefaultACL sets the ACL that Create uses when it is given a nil ACL.
// The default is coord.WorldACL(coord.PermAll).
func WithDefaultACL(acl []coord.ACL) Option {
	return func(o *options) { o.defaultACL = slices.Clone(acl) }
}

// Connect opens a new session on the server. The Store starts in
// StateConnected (no event is delivered for it). Close it when done: it
// runs one goroutine that delivers session events.
func (s *Server) Connect(opts ...Option) *Store {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.defaultACL == nil {
		o.defaultACL = coord.DefaultACL(o.creds)
	}
	st := &Store{srv: s, defaultACL: o.defaultACL}
	for _, c := range o.creds {
		st.ids = append(st.ids, c.DigestID())
	}
	st.ev.start()
	s.mu.Lock()
	st.session = s.newSessionLocked()
	s.mu.Unlock()
	return st
}

// Expire ends the session as an ensemble does when the session times out:
// pending watches receive EventNotWatching with coord.ErrSessionExpired,
// ephemeral nodes are deleted, then OnSession callbacks see StateExpired
// followed by StateConnected with a new SessionID. The Store stays usable.
// Expire on a closed Store does nothing.
func (st *Store) Expire() {
	s := st.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.closed {
		return
	}
	s.endSessionLocked(st.session, coord.ErrSessionExpired)
	st.session = s.newSessionLocked()
	// Queued under s.mu so that concurrent expiries queue in order.
	st.ev.push(coord.SessionEvent{State: coord.StateExpired})
	st.ev.push(coord.SessionEvent{State: coord.StateConnected, SessionID: st.session})
}

// InjectConnectionLoss makes the next n mutating calls (Create, Set,
// Delete, Multi) fail with coord.ErrConnectionLost. If applied is true,
// each is applied first, as when the connection breaks after the server
// committed the write but before the reply arrived; otherwise it is not
// applied. n <= 0 cancels a pending injection.
func (st *Store) InjectConnectionLoss(n int, applied bool) {
	st.srv.mu.Lock()
	defer st.srv.mu.Unlock()
	st.lossLeft = max(n, 0)
	st.lossApplied = applied
}

// lock honours ctx, then takes the server lock and checks that the Store
// is open. On success the caller holds srv.mu.
func (st *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st.srv.mu.Lock()
	if st.closed {
		st.srv.mu.Unlock()
		return coord.ErrClosed
	}
	return nil
}

// lossLocked consumes one injected connection loss, if any is pending.
func (st *Store) lossLocked() (lost, applied bool) {
	if st.lossLeft == 0 {
		return false, false
	}
	st.lossLeft--
	return true, st.lossApplied
}

func wrap(op, path string, err error) error {
	return fmt.Errorf("memstore: %s %s: %w", op, path, err)
}

// Create implements coord.Store.
func (st *Store) Create(ctx context.Context, path string, data []byte, mode coord.CreateMode, acl []coord.ACL) (string, error) {
	if err := st.lock(ctx); err != nil {
		return "", wrap("create", path, err)
	}
	s := st.srv
	defer s.mu.Unlock()
	lost, applied := st.lossLocked()
	if lost && !applied {
		return "", wrap("create", path, coord.ErrConnectionLost)
	}
	tx := s.begin()
	created, err := tx.create(st, st.session, path, data, mode, acl)
	if err != nil {
		tx.rollback()
	} else {
		tx.commit()
	}
	if lost {
		return "", wrap("create", path, coord.ErrConnectionLost)
	}
	if err != nil {
		return "", wrap("create", path, err)
	}
	return created, nil
}

// Get implements coord.Store.
func (st *Store) Get(ctx context.Context, path string) ([]byte, coord.Stat, error) {
	data, stat, _, err := st.get(ctx, "get", path, false)
	return data, stat, err
}

// GetW implements coord.Store.
func (st *Store) GetW(ctx context.Context, path string) ([]byte, coord.Stat, <-chan coord.Event, error) {
	return st.get(ctx, "getw", path, true)
}

func (st *Store) get(ctx context.Context, op, path string, watch bool) ([]byte, coord.Stat, <-chan coord.Event, error) {
	if err := st.lock(ctx); err != nil {
		return nil, coord.Stat{}, nil, wrap(op, path, err)
	}
	s := st.srv
	defer s.mu.Unlock()
	if err := coord.ValidPath(path); err != nil {
		return nil, coord.Stat{}, nil, wrap(op, path, err)
	}
	n := s.nodes[path]
	if n == nil {
		return nil, coord.Stat{}, nil, wrap(op, path, coord.ErrNotFound)
	}
	if !allowed(st, n.acl, coord.PermRead) {
		return nil, coord.Stat{}, nil, wrap(op, path, coord.ErrNoAuth)
	}
	var ch <-chan coord.Event
	if watch {
		ch = s.addWatchLocked(st, path, false)
	}
	return cloneData(n.data), n.stat(), ch, nil
}

// Set implements coord.Store.
func (st *Store) Set(ctx context.Context, path string, data []byte, version int32) (coord.Stat, error) {
	if err := st.lock(ctx); err != nil {
		return coord.Stat{}, wrap("set", path, err)
	}
	s := st.srv
	defer s.mu.Unlock()
	lost, applied := st.lossLocked()
	if lost && !applied {
		return coord.Stat{}, wrap("set", path, coord.ErrConnectionLost)
	}
	tx := s.begin()
	stat, err := tx.set(st, path, data, version)
	if err != nil {
		tx.rollback()
	} else {
		tx.commit()
	}
	if lost {
		return coord.Stat{}, wrap("set", path, coord.ErrConnectionLost)
	}
	if err != nil {
		return coord.Stat{}, wrap("set", path, err)
	}
	return stat, nil
}

// Delete implements coord.Store.
func (st *Store) Delete(ctx context.Context, path string, version int32) error {
	if err := st.lock(ctx); err != nil {
		return wrap("delete", path, err)
	}
	s := st.srv
	defer s.mu.Unlock()
	lost, applied := st.lossLocked()
	if lost && !applied {
		return wrap("delete", path, coord.ErrConnectionLost)
	}
	tx := s.begin()
	err := tx.remove(st, path, version)
	if err != nil {
		tx.rollback()
	} else {
		tx.commit()
	}
	if lost {
		return wrap("delete", path, coord.ErrConnectionLost)
	}
	if err != nil {
		return wrap("delete", path, err)
	}
	return nil
}

// Exists implements coord.Store. It needs no permission, as in ZooKeeper.
func (st *Store) Exists(ctx context.Context, path string) (bool, coord.Stat, error) {
	ok, stat, _, err := st.exists(ctx, "exists", path, false)
	return ok, stat, err
}

// ExistsW implements coord.Store. The watch is set whether or not the
// node exists.
func (st *Store) ExistsW(ctx context.Context, path string) (bool, coord.Stat, <-chan coord.Event, error) {
	return st.exists(ctx, "existsw", path, true)
}

func (st *Store) exists(ctx context.Context, op, path string, watch bool) (bool, coord.Stat, <-chan coord.Event, error) {
	if err := st.lock(ctx); err != nil {
		return false, coord.Stat{}, nil, wrap(op, path, err)
	}
	s := st.srv
	defer s.mu.Unlock()
	if err := coord.ValidPath(path); err != nil {
		return false, coord.Stat{}, nil, wrap(op, path, err)
	}
	var ch <-chan coord.Event
	if watch {
		ch = s.addWatchLocked(st, path, false)
	}
	n := s.nodes[path]
	if n == nil {
		return false, coord.Stat{}, ch, nil
	}
	return true, n.stat(), ch, nil
}

// Children implements coord.Store.
func (st *Store) Children(ctx context.Context, path string) ([]string, coord.Stat, error) {
	kids, stat, _, err := st.children(ctx, "children", path, false)
	return kids, stat, err
}

// ChildrenW implements coord.Store.
func (st *Store) ChildrenW(ctx context.Context, path string) ([]string, coord.Stat, <-chan coord.Event, error) {
	return st.children(ctx, "childrenw", path, true)
}

func (st *Store) children(ctx context.Context, op, path string, watch bool) ([]string, coord.Stat, <-chan coord.Event, error) {
	if err := st.lock(ctx); err != nil {
		return nil, coord.Stat{}, nil, wrap(op, path, err)
	}
	s := st.srv
	defer s.mu.Unlock()
	if err := coord.ValidPath(path); err != nil {
		return nil, coord.Stat{}, nil, wrap(op, path, err)
	}
	n := s.nodes[path]
	if n == nil {
		return nil, coord.Stat{}, nil, wrap(op, path, coord.ErrNotFound)
	}
	if !allowed(st, n.acl, coord.PermRead) {
		return nil, coord.Stat{}, nil, wrap(op, path, coord.ErrNoAuth)
	}
	var ch <-chan coord.Event
	if watch {
		ch = s.addWatchLocked(st, path, true)
	}
	return slices.Clone(n.children), n.stat(), ch, nil
}

// Multi implements coord.Store: the ops run in order on the live tree,
// each recording its undo; the first failure undoes them all.
func (st *Store) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	for i, op := range ops {
		if isNilOp(op) {
			return nil, fmt.Errorf("memstore: multi: op %d is nil", i)
		}
	}
	if err := st.lock(ctx); err != nil {
		return nil, fmt.Errorf("memstore: multi: %w", err)
	}
	s := st.srv
	defer s.mu.Unlock()
	lost, applied := st.lossLocked()
	if lost && !applied {
		return nil, fmt.Errorf("memstore: multi: %w", coord.ErrConnectionLost)
	}
	tx := s.begin()
	results := make([]coord.OpResult, len(ops))
	var merr error
	for i, op := range ops {
		var err error
		switch o := op.(type) {
		case *coord.CheckOp:
			err = tx.check(st, o.Path, o.Version)
		case *coord.CreateOp:
			results[i].Path, err = tx.create(st, st.session, o.Path, o.Data, o.Mode, o.ACL)
		case *coord.SetOp:
			results[i].Stat, err = tx.set(st, o.Path, o.Data, o.Version)
		case *coord.DeleteOp:
			err = tx.remove(st, o.Path, o.Version)
		default:
			err = fmt.Errorf("memstore: unsupported op type %T", op)
		}
		if err != nil {
			merr = &coord.MultiError{Index: i, Op: op, Err: err}
			break
		}
	}
	if merr != nil {
		tx.rollback()
	} else {
		tx.commit()
	}
	if lost {
		return nil, fmt.Errorf("memstore: multi: %w", coord.ErrConnectionLost)
	}
	if merr != nil {
		return nil, merr
	}
	return results, nil
}

// isNilOp reports whether op is nil or a nil pointer of a known op type.
func isNilOp(op coord.Op) bool {
	switch o := op.(type) {
	case nil:
		return true
	case *coord.CheckOp:
		return o == nil
	case *coord.CreateOp:
		return o == nil
	case *coord.SetOp:
		return o == nil
	case *coord.DeleteOp:
		return o == nil
	}
	return false
}

// Sync implements coord.Store. The tree is always current, so Sync only
// checks its arguments.
func (st *Store) Sync(ctx context.Context, path string) error {
	if err := st.lock(ctx); err != nil {
		return wrap("sync", path, err)
	}
	defer st.srv.mu.Unlock()
	if err := coord.ValidPath(path); err != nil {
		return wrap("sync", path, err)
	}
	return nil
}

// SessionID implements coord.Store; it is 0 once the Store is closed.
func (st *Store) SessionID() int64 {
	st.srv.mu.Lock()
	defer st.srv.mu.Unlock()
	return st.session
}

// OnSession implements coord.Store. Callbacks run on the Store's event
// goroutine, in order, with no lock held: they may call the Store (a
// Close from a callback does not wait for the callbacks to finish).
func (st *Store) OnSession(fn func(coord.SessionEvent)) (cancel func()) {
	if fn == nil {
		return func() {}
	}
	return st.ev.subscribe(fn)
}

// Close implements coord.Store: pending watches receive EventNotWatching
// with coord.ErrClosed, the session's ephemeral nodes are deleted,
// callbacks see StateClosed, and Close returns once they have run.
// Closing again is a no-op.
func (st *Store) Close() error {
	s := st.srv
	s.mu.Lock()
	if st.closed {
		s.mu.Unlock()
		return nil
	}
	st.closed = true
	s.endSessionLocked(st.session, coord.ErrClosed)
	st.session = 0
	st.ev.push(coord.SessionEvent{State: coord.StateClosed})
	s.mu.Unlock()
	st.ev.stop()
	return nil
}

// events queues session events and delivers them to subscribers from one
// goroutine, in order, without holding any lock while a callback runs.
// The queue is unbounded, so no event is ever dropped.
type events struct {
	mu       sync.Mutex
	cond     sync.Cond
	queue    []coord.SessionEvent
	subs     []*subscriber
	stopping bool
	done     chan struct{}
	runner   atomic.Uint64 // goroutine id of run, so stop can tell it is called from a callback
}

type subscriber struct {
	fn        func(coord.SessionEvent)
	cancelled atomic.Bool
}

func (e *events) start() {
	e.cond.L = &e.mu
	e.done = make(chan struct{})
	go e.run()
}

func (e *events) run() {
	defer close(e.done)
	e.runner.Store(goroutineID())
	for {
		e.mu.Lock()
		for len(e.queue) == 0 && !e.stopping {
			e.cond.Wait()
		}
		if len(e.queue) == 0 {
			e.mu.Unlock()
			return
		}
		ev := e.queue[0]
		e.queue = e.queue[1:]
		subs := slices.Clone(e.subs)
		e.mu.Unlock()
		for _, sub := range subs {
			if !sub.cancelled.Load() {
				sub.fn(ev)
			}
		}
	}
}

func (e *events) push(ev coord.SessionEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return
	}
	e.queue = append(e.queue, ev)
	e.cond.Signal()
}

// stop delivers what is queued, then ends the goroutine and waits for it
// (unless called from a callback, i.e. from that goroutine itself: then
// the goroutine ends once the callback returns).
func (e *events) stop() {
	e.mu.Lock()
	e.stopping = true
	e.cond.Signal()
	e.mu.Unlock()
	if goroutineID() == e.runner.Load() {
		return
	}
	<-e.done
}

// goroutineID is the calling goroutine's id, read from its stack header
// ("goroutine 42 [running]:"). Used only to keep Close from deadlocking
// when a callback calls it.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

func (e *events) subscribe(fn func(coord.SessionEvent)) func() {
	sub := &subscriber{fn: fn}
	e.mu.Lock()
	e.subs = append(e.subs, sub)
	e.mu.Unlock()
	return func() {
		if sub.cancelled.Swap(true) {
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		e.subs = slices.DeleteFunc(e.subs, func(x *subscriber) bool { return x == sub })
	}
}
