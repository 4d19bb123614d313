package memstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// errInvalidACL reports an ACL list ZooKeeper would refuse with
// InvalidACL. coord has no sentinel for it; callers pass nil for the
// default ACL.
var errInvalidACL = errors.New("memstore: invalid ACL")

// txn is one write transaction on the tree, run under Server.mu. Every
// change records how to undo it, so a failed Multi leaves no trace, and
// watch triggers are held back until commit. A committed transaction
// consumes exactly one zxid, as in ZooKeeper.
type txn struct {
	s        *Server
	zxid     int64
	now      time.Time
	undo     []func()
	triggers []trigger
}

func (s *Server) begin() *txn {
	// Times have millisecond precision, as ZooKeeper stores them.
	return &txn{s: s, zxid: s.zxid + 1, now: time.UnixMilli(time.Now().UnixMilli())}
}

// commit makes the transaction's changes final and fires its watches.
func (t *txn) commit() {
	if len(t.undo) == 0 {
		return // nothing changed (e.g. a Multi of checks only)
	}
	t.s.zxid = t.zxid
	for _, tr := range t.triggers {
		t.s.fireTriggerLocked(tr)
	}
}

// rollback undoes every change, newest first.
func (t *txn) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
	t.undo = nil
	t.triggers = nil
}

// allowed reports whether st's identities hold perm in acl. A nil st is
// the server itself (session cleanup) and may do anything.
func allowed(st *Store, acl []coord.ACL, perm int32) bool {
	if st == nil {
		return true
	}
	for _, e := range acl {
		if e.Perms&perm == 0 {
			continue
		}
		switch e.Scheme {
		case "world":
			if e.ID == "anyone" {
				return true
			}
		case "digest":
			if slices.Contains(st.ids, e.ID) {
				return true
			}
		}
	}
	return false
}

// validACL checks an ACL list as ZooKeeper does for the schemes memstore
// knows: non-empty, world:anyone or digest:user:hash entries.
func validACL(acl []coord.ACL) error {
	if len(acl) == 0 {
		return fmt.Errorf("%w: empty ACL list (pass nil for the default ACL)", errInvalidACL)
	}
	for _, e := range acl {
		switch {
		case e.Scheme == "world" && e.ID == "anyone":
		case e.Scheme == "digest" && strings.Count(e.ID, ":") == 1 && !strings.HasPrefix(e.ID, ":") && !strings.HasSuffix(e.ID, ":"):
		default:
			return fmt.Errorf("%w: unsupported entry %s:%s", errInvalidACL, e.Scheme, e.ID)
		}
		if e.Perms&^coord.PermAll != 0 {
			return fmt.Errorf("%w: unknown permission bits %#x", errInvalidACL, e.Perms)
		}
	}
	return nil
}

// checkVersion compares an expected version with the node's.
func checkVersion(want, have int32) error {
	if want != coord.AnyVersion && want != have {
		return coord.ErrBadVersion
	}
	return nil
}

// create makes a node. It checks, in ZooKeeper's order: parent exists,
// Create permission on the parent, node does not exist, parent is not
// ephemeral. It returns the created path.
func (t *txn) create(st *Store, session int64, p string, data []byte, mode coord.CreateMode, acl []coord.ACL) (string, error) {
	if mode < coord.Persistent || mode > coord.EphemeralSequential {
		return "", fmt.Errorf("memstore: unknown create mode %d", mode)
	}
	if err := coord.ValidPath(p); err != nil {
		return "", err
	}
	if p == "/" {
		if mode.IsSequential() {
			return "", fmt.Errorf("%w: a sequential node needs a name prefix under a parent", coord.ErrInvalidPath)
		}
		return "", coord.ErrExists
	}
	parentPath := p[:strings.LastIndexByte(p, '/')]
	if parentPath == "" {
		parentPath = "/"
	}
	parent := t.s.nodes[parentPath]
	if parent == nil {
		return "", coord.ErrNotFound
	}
	if !allowed(st, parent.acl, coord.PermCreate) {
		return "", coord.ErrNoAuth
	}
	if mode.IsSequential() {
		p = fmt.Sprintf("%s%010d", p, parent.seq)
	}
	if t.s.nodes[p] != nil {
		return "", coord.ErrExists
	}
	if parent.owner != 0 {
		return "", coord.ErrNoChildrenForEphemerals
	}
	if acl == nil && st != nil {
		acl = st.defaultACL
	}
	if err := validACL(acl); err != nil {
		return "", err
	}
	n := &node{
		data:  cloneData(data),
		acl:   slices.Clone(acl),
		czxid: t.zxid, mzxid: t.zxid, pzxid: t.zxid,
		ctime: t.now, mtime: t.now,
	}
	if mode.IsEphemeral() {
		n.owner = session
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	oldPzxid, oldCversion, oldSeq := parent.pzxid, parent.cversion, parent.seq
	t.s.nodes[p] = n
	parent.children = insertSorted(parent.children, name)
	parent.cversion++
	parent.seq++
	parent.pzxid = t.zxid
	if n.owner != 0 {
		set := t.s.ephemerals[n.owner]
		if set == nil {
			set = map[string]struct{}{}
			t.s.ephemerals[n.owner] = set
		}
		set[p] = struct{}{}
	}
	t.undo = append(t.undo, func() {
		delete(t.s.nodes, p)
		parent.children = removeSorted(parent.children, name)
		parent.pzxid, parent.cversion, parent.seq = oldPzxid, oldCversion, oldSeq
		if n.owner != 0 {
			delete(t.s.ephemerals[n.owner], p)
		}
	})
	t.triggers = append(t.triggers, trigger{p, coord.EventCreated, n.acl}, trigger{parentPath, coord.EventChildrenChanged, parent.acl})
	return p, nil
}

// set replaces a node's data. Order: node exists, Write permission,
// version.
func (t *txn) set(st *Store, p string, data []byte, version int32) (coord.Stat, error) {
	if err := coord.ValidPath(p); err != nil {
		return coord.Stat{}, err
	}
	n := t.s.nodes[p]
	if n == nil {
		return coord.Stat{}, coord.ErrNotFound
	}
	if !allowed(st, n.acl, coord.PermWrite) {
		return coord.Stat{}, coord.ErrNoAuth
	}
	if err := checkVersion(version, n.version); err != nil {
		return coord.Stat{}, err
	}
	oldData, oldVersion, oldMzxid, oldMtime := n.data, n.version, n.mzxid, n.mtime
	n.data = cloneData(data)
	n.version++
	n.mzxid = t.zxid
	n.mtime = t.now
	t.undo = append(t.undo, func() {
		n.data, n.version, n.mzxid, n.mtime = oldData, oldVersion, oldMzxid, oldMtime
	})
	t.triggers = append(t.triggers, trigger{p, coord.EventDataChanged, n.acl})
	return n.stat(), nil
}

// remove deletes a childless node. Order, as ZooKeeper's: parent exists,
// Delete permission on the parent, node exists, version, no children. It
// changes nothing unless it succeeds.
func (t *txn) remove(st *Store, p string, version int32) error {
	if err := coord.ValidPath(p); err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("%w: the root cannot be deleted", coord.ErrInvalidPath)
	}
	parentPath := p[:strings.LastIndexByte(p, '/')]
	if parentPath == "" {
		parentPath = "/"
	}
	parent := t.s.nodes[parentPath]
	if parent == nil {
		return coord.ErrNotFound
	}
	if !allowed(st, parent.acl, coord.PermDelete) {
		return coord.ErrNoAuth
	}
	n := t.s.nodes[p]
	if n == nil {
		return coord.ErrNotFound
	}
	if err := checkVersion(version, n.version); err != nil {
		return err
	}
	if len(n.children) > 0 {
		return coord.ErrNotEmpty
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	oldPzxid, oldCversion := parent.pzxid, parent.cversion
	delete(t.s.nodes, p)
	parent.children = removeSorted(parent.children, name)
	parent.cversion++
	parent.pzxid = t.zxid
	if n.owner != 0 {
		delete(t.s.ephemerals[n.owner], p)
	}
	t.undo = append(t.undo, func() {
		t.s.nodes[p] = n
		parent.children = insertSorted(parent.children, name)
		parent.pzxid, parent.cversion = oldPzxid, oldCversion
		if n.owner != 0 {
			set := t.s.ephemerals[n.owner]
			if set == nil {
				set = map[string]struct{}{}
				t.s.ephemerals[n.owner] = set
			}
			set[p] = struct{}{}
		}
	})
	t.triggers = append(t.triggers, trigger{p, coord.EventDeleted, n.acl}, trigger{parentPath, coord.EventChildrenChanged, parent.acl})
	return nil
}

// check asserts a node's version. Order: node exists, Read permission,
// version (ZooKeeper requires Read for a check op).
func (t *txn) check(st *Store, p string, version int32) error {
	if err := coord.ValidPath(p); err != nil {
		return err
	}
	n := t.s.nodes[p]
	if n == nil {
		return coord.ErrNotFound
	}
	if !allowed(st, n.acl, coord.PermRead) {
		return coord.ErrNoAuth
	}
	return checkVersion(version, n.version)
}

func cloneData(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

func insertSorted(names []string, name string) []string {
	i, found := slices.BinarySearch(names, name)
	if found {
		return names
	}
	return slices.Insert(names, i, name)
}

func removeSorted(names []string, name string) []string {
	i, found := slices.BinarySearch(names, name)
	if !found {
		return names
	}
	return slices.Delete(names, i, i+1)
}
