// Package memstore is an in-memory coord.Store for unit tests: one Server
// holds a shared tree (an "ensemble"), and every Store connected to it is a
// session on that tree. It follows ZooKeeper's semantics closely: versions,
// child versions, zxids, per-parent sequence counters, ephemeral nodes bound
// to sessions, one-shot watches, digest and world ACLs and atomic Multi.
// Expire and InjectConnectionLoss let tests drive the failure paths a real
// ensemble produces.
//
// It passes the coord/coordtest contract suite unchanged, and mirrors
// these less obvious ZooKeeper 3.8 behaviours that the suite pins: the
// sequential suffix is the parent's count of child creates (deletes do not
// advance it, failed creates and failed Multis do not consume it); a
// Stat's Cversion counts child creates and deletes; a watch event is only
// delivered to a session that may read the node concerned (the parent, for
// a child event), otherwise the watch is used up silently; Delete needs
// the parent's Delete permission; a Multi commits under one zxid.
//
// Nodes created with a nil ACL get WithDefaultACL's ACL, else
// coord.DefaultACL of the session's credentials, as in coord/zkstore.
//
// Differences from coord/zkstore: session state changes are only
// those caused by Expire and Close (InjectConnectionLoss fails calls
// without a Disconnected event); times have millisecond precision but come
// from the local clock.
package memstore

import (
	"slices"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Server is an in-memory ensemble: one tree shared by every session
// connected to it. The zero value is not usable; call New.
type Server struct {
	mu          sync.Mutex
	nodes       map[string]*node
	zxid        int64                          // last committed transaction
	lastSession int64                          // last session id handed out
	ephemerals  map[int64]map[string]struct{}  // session -> its ephemeral paths
	dataWatches map[string]map[*watch]struct{} // GetW and ExistsW, by path
	kidWatches  map[string]map[*watch]struct{} // ChildrenW, by path
	sessWatches map[int64]map[*watch]struct{}  // session -> its pending watches
}

// node is one znode. Stat fields that derive from others (DataLength,
// NumChildren) are computed when a Stat is built.
type node struct {
	data     []byte
	acl      []coord.ACL
	czxid    int64
	mzxid    int64
	pzxid    int64
	ctime    time.Time
	mtime    time.Time
	version  int32
	cversion int32 // child creates plus child deletes, as ZooKeeper reports it
	// seq counts child creates; it is the next sequential suffix. ZooKeeper
	// keeps exactly this counter (and reports cversion as 2*seq-children).
	seq      int32
	owner    int64    // ephemeral owner session, 0 for persistent nodes
	children []string // child names, sorted
}

func (n *node) stat() coord.Stat {
	return coord.Stat{
		Czxid:          n.czxid,
		Mzxid:          n.mzxid,
		Pzxid:          n.pzxid,
		Ctime:          n.ctime,
		Mtime:          n.mtime,
		Version:        n.version,
		Cversion:       n.cversion,
		EphemeralOwner: n.owner,
		DataLength:     int32(len(n.data)), //nolint:gosec // data is bounded by memory, never near 2 GiB in tests
		NumChildren:    int32(len(n.children)),
	}
}

// watch is one pending one-shot watch.
type watch struct {
	ch      chan coord.Event // buffered, capacity 1
	path    string
	child   bool // registered in kidWatches (else dataWatches)
	session int64
	owner   *Store // for the READ check when the watch fires
}

// New returns an empty in-memory ensemble holding only the root node "/".
func New() *Server {
	now := time.UnixMilli(time.Now().UnixMilli())
	return &Server{
		nodes: map[string]*node{
			"/": {acl: coord.WorldACL(coord.PermAll), ctime: now, mtime: now},
		},
		ephemerals:  map[int64]map[string]struct{}{},
		dataWatches: map[string]map[*watch]struct{}{},
		kidWatches:  map[string]map[*watch]struct{}{},
		sessWatches: map[int64]map[*watch]struct{}{},
	}
}

// newSessionLocked hands out a fresh session id. Ids look like
// ZooKeeper's (server id in the top byte) so that they are never 0.
func (s *Server) newSessionLocked() int64 {
	s.lastSession++
	return 1<<56 | s.lastSession
}

// addWatchLocked registers a one-shot watch for st's current session.
func (s *Server) addWatchLocked(st *Store, path string, child bool) <-chan coord.Event {
	session := st.session
	w := &watch{ch: make(chan coord.Event, 1), path: path, child: child, session: session, owner: st}
	table := s.dataWatches
	if child {
		table = s.kidWatches
	}
	set := table[path]
	if set == nil {
		set = map[*watch]struct{}{}
		table[path] = set
	}
	set[w] = struct{}{}
	sw := s.sessWatches[session]
	if sw == nil {
		sw = map[*watch]struct{}{}
		s.sessWatches[session] = sw
	}
	sw[w] = struct{}{}
	return w.ch
}

// deliver sends w's single event and closes its channel. The channel has
// room for exactly this one event, so the send never blocks.
func (w *watch) deliver(ev coord.Event) {
	w.ch <- ev
	close(w.ch)
}

// unlinkLocked removes w from the path table and its session's set.
func (s *Server) unlinkLocked(w *watch) {
	table := s.dataWatches
	if w.child {
		table = s.kidWatches
	}
	if set := table[w.path]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(table, w.path)
		}
	}
	if sw := s.sessWatches[w.session]; sw != nil {
		delete(sw, w)
		if len(sw) == 0 {
			delete(s.sessWatches, w.session)
		}
	}
}

// fireLocked triggers every watch on path in table. As in ZooKeeper
// (3.6 and later), the event is only delivered to a watcher whose session
// may read the node the event is about (acl: for a child event, the
// parent's ACL); for any other watcher the watch is used up silently: its
// channel gets nothing until the session ends (EventNotWatching).
func (s *Server) fireLocked(table map[string]map[*watch]struct{}, path string, typ coord.EventType, acl []coord.ACL) {
	set := table[path]
	if len(set) == 0 {
		return
	}
	delete(table, path)
	for w := range set {
		if !allowed(w.owner, acl, coord.PermRead) {
			continue // stays in sessWatches, ended with the session
		}
		if sw := s.sessWatches[w.session]; sw != nil {
			delete(sw, w)
			if len(sw) == 0 {
				delete(s.sessWatches, w.session)
			}
		}
		w.deliver(coord.Event{Type: typ, Path: path})
	}
}

// trigger is a watch trigger recorded by a transaction and fired when it
// commits. acl is the ACL a watcher needs READ in to be told.
type trigger struct {
	path string
	typ  coord.EventType
	acl  []coord.ACL
}

func (s *Server) fireTriggerLocked(tr trigger) {
	switch tr.typ {
	case coord.EventCreated, coord.EventDataChanged:
		s.fireLocked(s.dataWatches, tr.path, tr.typ, tr.acl)
	case coord.EventDeleted:
		s.fireLocked(s.dataWatches, tr.path, tr.typ, tr.acl)
		s.fireLocked(s.kidWatches, tr.path, tr.typ, tr.acl)
	case coord.EventChildrenChanged:
		s.fireLocked(s.kidWatches, tr.path, tr.typ, tr.acl)
	}
}

// endSessionLocked ends session: its pending watches get EventNotWatching
// with cause, then its ephemeral nodes are deleted in one transaction
// (firing other sessions' watches).
func (s *Server) endSessionLocked(session int64, cause error) {
	for w := range s.sessWatches[session] {
		s.unlinkLocked(w)
		w.deliver(coord.Event{Type: coord.EventNotWatching, Path: w.path, Err: cause})
	}
	delete(s.sessWatches, session)
	paths := s.ephemerals[session]
	if len(paths) == 0 {
		delete(s.ephemerals, session)
		return
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	slices.Sort(sorted)
	tx := s.begin()
	for _, p := range sorted {
		// Ephemeral nodes have no children and remove checks everything
		// before it changes anything, so an error (impossible while the
		// invariants hold) leaves the tree as it was; skip that node.
		_ = tx.remove(nil, p, coord.AnyVersion)
	}
	tx.commit()
	delete(s.ephemerals, session)
}
