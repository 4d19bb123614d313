// Package zkstore implements coord.Store over a real ZooKeeper ensemble
// with github.com/go-zookeeper/zk. It is the only package of musubi that
// imports a ZooKeeper client.
//
// What it adds to the client library:
//   - a chroot (Config.Root), applied to every path and stripped from
//     created paths and event paths;
//   - the server order of the configuration, LocalServer first, and a short
//     reconnect backoff (the library shuffles and sleeps a second);
//   - session state changes delivered in order to OnSession callbacks from
//     one goroutine (the library's event channel drops events when full);
//   - errors mapped to coord's sentinels: in particular a request in
//     flight when the connection broke fails with coord.ErrConnectionLost
//     (outcome unknown), one that could not be sent with
//     coord.ErrUnavailable, and a call that waited through a session
//     expiry with coord.ErrSessionExpired;
//   - calls fail fast with coord.ErrUnavailable while every server is
//     unreachable, and otherwise wait for a session as long as ctx allows.
//
// Plain calls start no goroutine; each watch uses one, which ends when the
// watch fires or the Store closes. Close joins them all.
package zkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/musubi-fabric/musubi/coord"
)

// maxPacket is ZooKeeper's default jute.maxbuffer; a larger request makes
// the server drop the connection.
const maxPacket = 0xfffff

// packetOverhead is a generous bound on a request's bytes besides data and
// path (header, ACLs, flags).
const packetOverhead = 4096

// closeWait bounds how long Close waits for the client library's
// connection loop to end.
const closeWait = 5 * time.Second

// Store is a coord.Store on a ZooKeeper ensemble. Create it with Open.
type Store struct {
	conn    *zk.Conn
	events  <-chan zk.Event // the library's; closed when its loop ended
	hp      *hostProvider
	root    string
	acl     []zk.ACL
	servers []string
	log     *slog.Logger

	closed    atomic.Bool
	closing   chan struct{}
	closeOnce sync.Once
	ready     chan struct{}

	// watchMu orders watch goroutine starts against Close.
	watchMu sync.Mutex
	watches sync.WaitGroup

	stateMu   sync.Mutex
	stateCh   chan struct{} // closed and replaced on every state change
	lastState coord.SessionState
	server    atomic.Pointer[string]

	sessions *dispatcher
}

var _ coord.Store = (*Store)(nil)

// Open connects to the ensemble and returns once a session exists, the
// credentials are added and the Root exists, or fails when ctx ends first.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	s := &Store{
		root:      r.root,
		acl:       r.acl,
		servers:   r.servers,
		log:       r.logger,
		closing:   make(chan struct{}),
		ready:     make(chan struct{}),
		stateCh:   make(chan struct{}),
		lastState: coord.StateDisconnected,
		sessions:  newDispatcher(),
	}
	s.hp = newHostProvider(r.servers, r.backoff, r.sessionTimeout/2, s.ready, s.closing, s.stateChanged)
	conn, events, err := zk.Connect(r.servers, r.sessionTimeout,
		zk.WithHostProvider(s.hp),
		zk.WithEventCallback(s.onEvent),
		zk.WithLogger(zkLogger{r.logger}),
		zk.WithDialer(r.dialer),
	)
	if err != nil {
		s.sessions.stop()
		return nil, fmt.Errorf("zkstore: connect: %w", err)
	}
	s.conn, s.events = conn, events
	close(s.ready) // the library's loop may call Next and onEvent from now on
	if err := s.setup(ctx, r); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// setup waits for the first session, adds the credentials and creates the
// root.
func (s *Store) setup(ctx context.Context, r resolved) error {
	for {
		ch := s.stateWait()
		if s.conn.State() == zk.StateHasSession {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zkstore: no session with %s: %w (%w)", strings.Join(s.servers, ","), coord.ErrUnavailable, ctx.Err())
		case <-ch:
		}
	}
	for _, c := range r.creds {
		err := s.retry(ctx, func() error { return s.conn.AddAuth("digest", []byte(c.User+":"+c.Password)) })
		if err != nil {
			return fmt.Errorf("zkstore: add credential %s: %w", c.User, err)
		}
	}
	if s.root == "" {
		return nil
	}
	cur := ""
	for _, el := range strings.Split(s.root[1:], "/") {
		cur += "/" + el
		err := s.retry(ctx, func() error {
			ok, _, err := s.conn.Exists(cur)
			if err != nil || ok {
				return err
			}
			_, err = s.conn.Create(cur, nil, zk.FlagPersistent, s.acl)
			if errors.Is(err, zk.ErrNodeExists) {
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("zkstore: create root %s: %w", cur, err)
		}
	}
	return nil
}

// retry runs f until it succeeds, fails with a non-transient error, or ctx
// ends, waiting for a session between attempts. f must be idempotent.
func (s *Store) retry(ctx context.Context, f func() error) error {
	for {
		err := s.mapErr(f())
		if err == nil || !coord.Retryable(err) {
			return err
		}
		if werr := s.waitSession(ctx, 0); werr != nil && !errors.Is(werr, coord.ErrUnavailable) {
			return errors.Join(err, werr)
		}
		t := time.NewTimer(s.hp.backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// Close ends the session (its ephemerals are deleted at once), waits for
// every goroutine of the Store and of the client library, and delivers
// StateClosed to the OnSession callbacks. Later calls return nil.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	s.watchMu.Lock()
	s.closed.Store(true)
	s.watchMu.Unlock()
	close(s.closing)
	var err error
	if s.conn != nil {
		s.conn.Close()
		t := time.NewTimer(closeWait)
	drain:
		for {
			select {
			case _, ok := <-s.events:
				if !ok {
					break drain
				}
			case <-t.C:
				err = fmt.Errorf("zkstore: close: client loop still running after %v", closeWait)
				s.log.Warn("zkstore: close: client loop did not end", "after", closeWait)
				break drain
			}
		}
		t.Stop()
	}
	s.watches.Wait()
	s.sessions.publish(coord.SessionEvent{State: coord.StateClosed})
	s.sessions.stop()
	return err
}

// SessionID is the current session's id (0 when there is none).
func (s *Store) SessionID() int64 {
	if s.closed.Load() {
		return 0
	}
	return s.conn.SessionID()
}

// Server is the address of the server the session last attached to ("" if
// none yet).
func (s *Store) Server() string {
	if p := s.server.Load(); p != nil {
		return *p
	}
	return ""
}

// OnSession registers fn for session state changes; see coord.Store.
func (s *Store) OnSession(fn func(coord.SessionEvent)) (cancel func()) {
	return s.sessions.subscribe(fn)
}

// prep checks a call before anything is sent: closed, ctx, path, session.
// It returns the path with the root prepended.
func (s *Store) prep(ctx context.Context, p string) (string, error) {
	if s.closed.Load() {
		return "", coord.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !validPath(p) {
		if err := coord.ValidPath(p); err != nil {
			return "", err
		}
	}
	if s.conn.State() != zk.StateHasSession {
		if err := s.waitSession(ctx, s.conn.SessionID()); err != nil {
			return "", err
		}
	}
	return s.full(p), nil
}

// full prepends the root.
func (s *Store) full(p string) string {
	if s.root == "" {
		return p
	}
	if p == "/" {
		return s.root
	}
	return s.root + p
}

// strip removes the root from a path the server returned.
func (s *Store) strip(p string) string {
	if s.root == "" {
		return p
	}
	if p == s.root {
		return "/"
	}
	return strings.TrimPrefix(p, s.root)
}

// fail wraps a failed call's error with the operation and path.
func (s *Store) fail(op, p string, err error) error {
	return fmt.Errorf("zkstore: %s %s: %w", op, p, s.mapErr(err))
}

// Create makes a node; see coord.Store.
func (s *Store) Create(ctx context.Context, p string, data []byte, mode coord.CreateMode, acl []coord.ACL) (string, error) {
	flags, err := zkFlags(mode)
	if err != nil {
		return "", fmt.Errorf("zkstore: create %s: %w", p, err)
	}
	if len(data)+len(p)+len(s.root) > maxPacket-packetOverhead {
		return "", fmt.Errorf("zkstore: create %s: %w: %d bytes of data", p, ErrTooLarge, len(data))
	}
	full, err := s.prep(ctx, p)
	if err != nil {
		return "", s.fail("create", p, err)
	}
	zacl := s.acl
	if acl != nil {
		zacl = toZKACL(acl)
	}
	created, err := s.conn.Create(full, data, flags, zacl)
	if err != nil {
		return "", s.fail("create", p, err)
	}
	return s.strip(created), nil
}

// Get returns a node's data and stat.
func (s *Store) Get(ctx context.Context, p string) ([]byte, coord.Stat, error) {
	full, err := s.prep(ctx, p)
	if err != nil {
		return nil, coord.Stat{}, s.fail("get", p, err)
	}
	data, st, err := s.conn.Get(full)
	if err != nil {
		return nil, coord.Stat{}, s.fail("get", p, err)
	}
	return data, toStat(st), nil
}

// GetW is Get plus a one-shot watch.
func (s *Store) GetW(ctx context.Context, p string) ([]byte, coord.Stat, <-chan coord.Event, error) {
	full, err := s.prep(ctx, p)
	if err != nil {
		return nil, coord.Stat{}, nil, s.fail("get", p, err)
	}
	data, st, zch, err := s.conn.GetW(full)
	if err != nil {
		return nil, coord.Stat{}, nil, s.fail("get", p, err)
	}
	ch, err := s.watch(p, zch)
	if err != nil {
		return nil, coord.Stat{}, nil, s.fail("get", p, err)
	}
	return data, toStat(st), ch, nil
}

// Set replaces a node's data if its version matches.
func (s *Store) Set(ctx context.Context, p string, data []byte, version int32) (coord.Stat, error) {
	if len(data)+len(p)+len(s.root) > maxPacket-packetOverhead {
		return coord.Stat{}, fmt.Errorf("zkstore: set %s: %w: %d bytes of data", p, ErrTooLarge, len(data))
	}
	full, err := s.prep(ctx, p)
	if err != nil {
		return coord.Stat{}, s.fail("set", p, err)
	}
	st, err := s.conn.Set(full, data, version)
	if err != nil {
		return coord.Stat{}, s.fail("set", p, err)
	}
	return toStat(st), nil
}

// Delete removes a childless node if its version matches.
func (s *Store) Delete(ctx context.Context, p string, version int32) error {
	full, err := s.prep(ctx, p)
	if err != nil {
		return s.fail("delete", p, err)
	}
	if err := s.conn.Delete(full, version); err != nil {
		return s.fail("delete", p, err)
	}
	return nil
}

// Exists reports whether a node exists, and its stat if so.
func (s *Store) Exists(ctx context.Context, p string) (bool, coord.Stat, error) {
	full, err := s.prep(ctx, p)
	if err != nil {
		return false, coord.Stat{}, s.fail("exists", p, err)
	}
	ok, st, err := s.conn.Exists(full)
	if err != nil {
		return false, coord.Stat{}, s.fail("exists", p, err)
	}
	if !ok {
		return false, coord.Stat{}, nil
	}
	return true, toStat(st), nil
}

// ExistsW is Exists plus a one-shot watch.
func (s *Store) ExistsW(ctx context.Context, p string) (bool, coord.Stat, <-chan coord.Event, error) {
	full, err := s.prep(ctx, p)
	if err != nil {
		return false, coord.Stat{}, nil, s.fail("exists", p, err)
	}
	ok, st, zch, err := s.conn.ExistsW(full)
	if err != nil {
		return false, coord.Stat{}, nil, s.fail("exists", p, err)
	}
	ch, err := s.watch(p, zch)
	if err != nil {
		return false, coord.Stat{}, nil, s.fail("exists", p, err)
	}
	if !ok {
		return false, coord.Stat{}, ch, nil
	}
	return true, toStat(st), ch, nil
}

// Children returns the sorted names of a node's children.
func (s *Store) Children(ctx context.Context, p string) ([]string, coord.Stat, error) {
	full, err := s.prep(ctx, p)
	if err != nil {
		return nil, coord.Stat{}, s.fail("children", p, err)
	}
	kids, st, err := s.conn.Children(full)
	if err != nil {
		return nil, coord.Stat{}, s.fail("children", p, err)
	}
	slices.Sort(kids)
	return kids, toStat(st), nil
}

// ChildrenW is Children plus a one-shot watch.
func (s *Store) ChildrenW(ctx context.Context, p string) ([]string, coord.Stat, <-chan coord.Event, error) {
	full, err := s.prep(ctx, p)
	if err != nil {
		return nil, coord.Stat{}, nil, s.fail("children", p, err)
	}
	kids, st, zch, err := s.conn.ChildrenW(full)
	if err != nil {
		return nil, coord.Stat{}, nil, s.fail("children", p, err)
	}
	ch, err := s.watch(p, zch)
	if err != nil {
		return nil, coord.Stat{}, nil, s.fail("children", p, err)
	}
	slices.Sort(kids)
	return kids, toStat(st), ch, nil
}

// Sync makes the session's server catch up with the leader for p.
func (s *Store) Sync(ctx context.Context, p string) error {
	full, err := s.prep(ctx, p)
	if err != nil {
		return s.fail("sync", p, err)
	}
	if _, err := s.conn.Sync(full); err != nil {
		return s.fail("sync", p, err)
	}
	return nil
}

// Multi applies ops atomically; see coord.Store. A failure caused by one op
// is a *coord.MultiError naming it.
func (s *Store) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("zkstore: multi: %w", coord.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("zkstore: multi: %w", err)
	}
	reqs := make([]any, len(ops))
	size := 0
	for i, op := range ops {
		if op == nil {
			return nil, fmt.Errorf("zkstore: multi: op %d is nil: %w", i, coord.ErrInvalidPath)
		}
		p := op.NodePath()
		if !validPath(p) {
			if err := coord.ValidPath(p); err != nil {
				return nil, &coord.MultiError{Index: i, Op: op, Err: err}
			}
		}
		full := s.full(p)
		size += len(full) + 64
		switch o := op.(type) {
		case *coord.CheckOp:
			reqs[i] = &zk.CheckVersionRequest{Path: full, Version: o.Version}
		case *coord.CreateOp:
			flags, err := zkFlags(o.Mode)
			if err != nil {
				return nil, &coord.MultiError{Index: i, Op: op, Err: err}
			}
			acl := s.acl
			if o.ACL != nil {
				acl = toZKACL(o.ACL)
			}
			size += len(o.Data) + 64*len(acl)
			reqs[i] = &zk.CreateRequest{Path: full, Data: o.Data, Acl: acl, Flags: flags}
		case *coord.SetOp:
			size += len(o.Data)
			reqs[i] = &zk.SetDataRequest{Path: full, Data: o.Data, Version: o.Version}
		case *coord.DeleteOp:
			reqs[i] = &zk.DeleteRequest{Path: full, Version: o.Version}
		default:
			return nil, fmt.Errorf("zkstore: multi: op %d has unknown type %T: %w", i, op, coord.ErrInvalidPath)
		}
	}
	if size > maxPacket-packetOverhead {
		return nil, fmt.Errorf("zkstore: multi: %w: about %d bytes", ErrTooLarge, size)
	}
	if len(ops) == 0 {
		return []coord.OpResult{}, nil
	}
	if s.conn.State() != zk.StateHasSession {
		if err := s.waitSession(ctx, s.conn.SessionID()); err != nil {
			return nil, fmt.Errorf("zkstore: multi: %w", s.mapErr(err))
		}
	}
	res, err := s.conn.Multi(reqs...)
	if err != nil {
		if len(res) == len(ops) {
			if i := multiCause(res); i >= 0 {
				return nil, &coord.MultiError{Index: i, Op: ops[i], Err: s.mapErr(res[i].Error)}
			}
		}
		return nil, fmt.Errorf("zkstore: multi: %w", s.mapErr(err))
	}
	if len(res) != len(ops) {
		return nil, fmt.Errorf("zkstore: multi: %d results for %d ops: %w", len(res), len(ops), coord.ErrConnectionLost)
	}
	out := make([]coord.OpResult, len(ops))
	for i, op := range ops {
		switch op.(type) {
		case *coord.CreateOp:
			out[i].Path = s.strip(res[i].String)
		case *coord.SetOp:
			out[i].Stat = toStat(res[i].Stat)
		}
	}
	return out, nil
}

// multiCause is the index of the op that failed a Multi: ops before it
// report no error, ops after it a runtime inconsistency (-2).
func multiCause(res []zk.MultiResponse) int {
	first := -1
	for i, r := range res {
		if r.Error == nil {
			continue
		}
		if first < 0 {
			first = i
		}
		if r.Error.Error() != "unknown error: -2" {
			return i
		}
	}
	return first
}

func zkFlags(m coord.CreateMode) (int32, error) {
	switch m {
	case coord.Persistent:
		return zk.FlagPersistent, nil
	case coord.Ephemeral:
		return zk.FlagEphemeral, nil
	case coord.Sequential:
		return zk.FlagSequence, nil
	case coord.EphemeralSequential:
		return zk.FlagEphemeralSequential, nil
	}
	return 0, fmt.Errorf("%w: %d", ErrInvalidMode, int(m))
}

func toStat(st *zk.Stat) coord.Stat {
	if st == nil {
		return coord.Stat{}
	}
	return coord.Stat{
		Czxid:          st.Czxid,
		Mzxid:          st.Mzxid,
		Pzxid:          st.Pzxid,
		Ctime:          time.UnixMilli(st.Ctime),
		Mtime:          time.UnixMilli(st.Mtime),
		Version:        st.Version,
		Cversion:       st.Cversion,
		EphemeralOwner: st.EphemeralOwner,
		DataLength:     st.DataLength,
		NumChildren:    st.NumChildren,
	}
}

// validPath is a fast, allocation-free version of coord.ValidPath's test;
// when it says no, coord.ValidPath gives the error.
func validPath(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			if p[i] == 0 {
				return false
			}
			continue
		}
		switch el := p[start:i]; el {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

// mapErr maps the library's errors to coord's sentinels.
func (s *Store) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode):
		return coord.ErrNotFound
	case errors.Is(err, zk.ErrNodeExists):
		return coord.ErrExists
	case errors.Is(err, zk.ErrBadVersion):
		return coord.ErrBadVersion
	case errors.Is(err, zk.ErrNotEmpty):
		return coord.ErrNotEmpty
	case errors.Is(err, zk.ErrNoChildrenForEphemerals):
		return coord.ErrNoChildrenForEphemerals
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed):
		return coord.ErrNoAuth
	case errors.Is(err, zk.ErrInvalidACL):
		return ErrInvalidACL
	case errors.Is(err, zk.ErrSessionExpired):
		return coord.ErrSessionExpired
	case errors.Is(err, zk.ErrInvalidPath):
		return coord.ErrInvalidPath
	case errors.Is(err, zk.ErrShortBuffer):
		return ErrTooLarge
	case errors.Is(err, zk.ErrClosing):
		return coord.ErrClosed
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrSessionMoved):
		if s.closed.Load() {
			return coord.ErrClosed
		}
		return coord.ErrConnectionLost
	case errors.Is(err, zk.ErrNoServer):
		if s.closed.Load() {
			return coord.ErrClosed
		}
		return coord.ErrUnavailable
	}
	return err
}

// zkLogger sends the library's messages to slog at debug level.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	if z.l.Enabled(context.Background(), slog.LevelDebug) {
		z.l.Debug("zk: " + fmt.Sprintf(format, args...))
	}
}
