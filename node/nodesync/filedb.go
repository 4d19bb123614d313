package nodesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// UserDB is the seam between the syncer and a node's user database.
type UserDB interface {
	// Apply makes the users it manages exactly users (created, updated,
	// with their groups and authorized_keys) and removes the managed
	// users not listed. It never changes a user it does not manage: a
	// listed user whose name or uid is taken by one is a conflict. It is
	// idempotent.
	Apply(ctx context.Context, users []User) (Changes, error)
}

// Changes reports what an Apply did.
type Changes struct {
	Added, Updated, Removed []string
	// Conflicts are the users not applied, with the reason.
	Conflicts map[string]string
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return len(c.Added)+len(c.Updated)+len(c.Removed) == 0 }

// ManagedGECOS is the GECOS field of every user FileDB manages: only
// these users are ever changed or removed.
const ManagedGECOS = "musubi-managed"

// Supplementary groups that do not exist on the node are created with a
// gid derived from their name (FNV-1a) in [groupGIDBase,
// groupGIDBase+groupGIDSpan), the next free one on a collision, so that
// nodes agree on it.
const (
	groupGIDBase = 1 << 20
	groupGIDSpan = 1 << 20
)

// FileDB is the UserDB of a node: it edits passwd, group, shadow and
// gshadow (when present) under Root, taking the shadow tools' lock
// (etc/.pwd.lock, fcntl) and replacing each file atomically with its mode
// and owner kept, and writes homes and authorized_keys. Two FileDBs of one
// process must not share a Root (fcntl locks are per process).
type FileDB struct {
	// Root is the root directory of the node's file system ("/").
	Root string
	// StateDir holds the list of groups FileDB created (default
	// <Root>/var/lib/musubi).
	StateDir string
	// Now is the clock for shadow's last-change day (default time.Now).
	Now func() time.Time
	// LockTimeout bounds the wait for the account files' lock (default
	// 15s).
	LockTimeout time.Duration
	// Logger receives conflicts and refusals; nil discards.
	Logger *slog.Logger
}

var _ UserDB = (*FileDB)(nil)

func (db *FileDB) path(p ...string) string {
	return filepath.Join(append([]string{db.Root}, p...)...)
}

func (db *FileDB) log() *slog.Logger {
	if db.Logger != nil {
		return db.Logger
	}
	return discard
}

// table is one colon-separated account file, kept line by line: lines it
// does not touch are written back byte for byte.
type table struct {
	path   string
	mode   fs.FileMode // for a new file
	exists bool
	orig   []byte
	lines  []string
}

func readTable(path string, mode fs.FileMode) (*table, error) {
	t := &table{path: path, mode: mode}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nodesync: read %s: %w", path, err)
	}
	t.exists, t.orig = true, data
	s := strings.TrimSuffix(string(data), "\n")
	if s != "" {
		t.lines = strings.Split(s, "\n")
	}
	return t, nil
}

func (t *table) index(name string) int {
	for i, l := range t.lines {
		if n, _, ok := strings.Cut(l, ":"); ok && n == name {
			return i
		}
	}
	return -1
}

func (t *table) get(name string) []string {
	if i := t.index(name); i >= 0 {
		return strings.Split(t.lines[i], ":")
	}
	return nil
}

func (t *table) set(name string, fields []string) {
	line := strings.Join(fields, ":")
	if i := t.index(name); i >= 0 {
		t.lines[i] = line
		return
	}
	t.lines = append(t.lines, line)
}

func (t *table) remove(name string) bool {
	if i := t.index(name); i >= 0 {
		t.lines = slices.Delete(t.lines, i, i+1)
		return true
	}
	return false
}

func (t *table) bytes() []byte {
	if len(t.lines) == 0 {
		return nil
	}
	return []byte(strings.Join(t.lines, "\n") + "\n")
}

func (t *table) changed() bool { return !bytes.Equal(t.bytes(), t.orig) }

func (t *table) write() error {
	if !t.changed() {
		return nil
	}
	return defaultWriter.replace(t.path, t.bytes(), t.mode)
}

// entries parses every line with at least n fields, by name.
func (t *table) entries(n int) map[string][]string {
	m := map[string][]string{}
	for _, l := range t.lines {
		f := strings.Split(l, ":")
		if len(f) >= n && f[0] != "" && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], "+") && !strings.HasPrefix(f[0], "-") {
			m[f[0]] = f
		}
	}
	return m
}

// Apply implements UserDB.
func (db *FileDB) Apply(ctx context.Context, users []User) (Changes, error) {
	ch := Changes{Conflicts: map[string]string{}}
	if db.Root == "" {
		return ch, fmt.Errorf("%w: FileDB without a Root", ErrConfig)
	}
	unlock, err := db.lock(ctx)
	if err != nil {
		return ch, err
	}
	defer unlock()
	passwd, err := readTable(db.path("etc", "passwd"), 0o644)
	if err != nil {
		return ch, err
	}
	group, err := readTable(db.path("etc", "group"), 0o644)
	if err != nil {
		return ch, err
	}
	shadow, err := readTable(db.path("etc", "shadow"), 0o640)
	if err != nil {
		return ch, err
	}
	gshadow, err := readTable(db.path("etc", "gshadow"), 0o640)
	if err != nil {
		return ch, err
	}
	stateDir := db.StateDir
	if stateDir == "" {
		stateDir = db.path("var", "lib", "musubi")
	}
	state, err := readTable(filepath.Join(stateDir, "groups"), 0o600)
	if err != nil {
		return ch, err
	}

	pw := passwd.entries(7)
	managed := map[string][]string{} // managed users now on the node
	uidOwner := map[int]string{}
	for name, f := range pw {
		uid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		uidOwner[uid] = name
		if f[4] == ManagedGECOS && uid >= MinUID {
			managed[name] = f
		}
	}
	// Accept the users that can be applied safely.
	var accepted []User
	want := map[string]bool{}
	wantUID := map[int]string{}
	for _, u := range users {
		if err := ValidateUser(u); err != nil {
			ch.Conflicts[u.Name] = err.Error()
			continue
		}
		reason := ""
		switch owner := uidOwner[u.UID]; {
		case want[u.Name]:
			reason = "listed twice"
		case pw[u.Name] != nil && managed[u.Name] == nil:
			reason = "a user of that name exists and is not managed by musubi"
		case wantUID[u.UID] != "":
			reason = fmt.Sprintf("uid %d is also listed for %s", u.UID, wantUID[u.UID])
		case owner != "" && owner != u.Name && managed[owner] == nil:
			reason = fmt.Sprintf("uid %d belongs to %s, not managed by musubi", u.UID, owner)
		}
		if reason != "" {
			ch.Conflicts[u.Name] = reason
			continue
		}
		want[u.Name], wantUID[u.UID] = true, u.Name
		accepted = append(accepted, u)
	}
	// A uid held by a managed user is free: that user is either listed
	// with another uid (two listings of one uid conflict above) or not
	// listed, and removed.

	// Users to remove: managed, not wanted.
	type gone struct {
		name, home string
		uid        int
	}
	var removed []gone
	for name, f := range managed {
		if want[name] {
			continue
		}
		uid, _ := strconv.Atoi(f[2])
		removed = append(removed, gone{name: name, home: f[5], uid: uid})
		passwd.remove(name)
		shadow.remove(name)
	}
	sort.Slice(removed, func(i, j int) bool { return removed[i].name < removed[j].name })

	// Groups: create what is missing, set managed users' memberships,
	// drop the groups musubi created that nothing needs any more.
	gr := group.entries(4)
	gidUsed := map[int]string{}
	for name, f := range gr {
		if gid, err := strconv.Atoi(f[2]); err == nil {
			gidUsed[gid] = name
		}
	}
	ours := map[string]bool{}
	for _, l := range state.lines {
		if l = strings.TrimSpace(l); l != "" && gr[l] != nil {
			ours[l] = true // a listed group that does not exist was never created
		}
	}
	var created []string
	addGroup := func(name string, gid int) {
		group.set(name, []string{name, "x", strconv.Itoa(gid), ""})
		if gshadow.exists {
			gshadow.set(name, []string{name, "!", "", ""})
		}
		gr[name] = []string{name, "x", strconv.Itoa(gid), ""}
		gidUsed[gid] = name
		ours[name] = true
		created = append(created, name)
	}
	members := map[string][]string{} // group -> managed users wanting it
	neededGID := map[int]bool{}
	needed := map[string]bool{}
	for _, u := range accepted {
		neededGID[u.GID] = true
		if gidUsed[u.GID] == "" && gr[u.Name] == nil {
			addGroup(u.Name, u.GID)
		}
		for _, g := range u.Groups {
			needed[g] = true
			if !slices.Contains(members[g], u.Name) {
				members[g] = append(members[g], u.Name)
			}
			if gr[g] == nil {
				addGroup(g, groupGID(g, gidUsed))
			}
		}
	}
	isManaged := func(n string) bool { return managed[n] != nil || want[n] }
	setMembers := func(t *table, idx int) {
		for name := range gr {
			f := t.get(name)
			if len(f) <= idx {
				continue
			}
			old := f[idx]
			var ms []string
			for _, m := range strings.Split(old, ",") {
				if m != "" && !isManaged(m) {
					ms = append(ms, m)
				}
			}
			add := slices.Clone(members[name])
			sort.Strings(add)
			ms = append(ms, add...)
			if nw := strings.Join(ms, ","); nw != old {
				f[idx] = nw
				t.set(name, f)
			}
		}
	}
	setMembers(group, 3)
	if gshadow.exists {
		setMembers(gshadow, 3)
	}
	primaryOf := map[int]bool{}
	for name, f := range passwd.entries(7) {
		if gid, err := strconv.Atoi(f[3]); err == nil && !want[name] {
			primaryOf[gid] = true // a remaining user's primary group
		}
	}
	for name := range ours {
		f := group.get(name)
		gid, _ := strconv.Atoi(f[2])
		if needed[name] || neededGID[gid] || primaryOf[gid] || f[3] != "" {
			continue
		}
		group.remove(name)
		gshadow.remove(name)
		delete(ours, name)
	}

	// passwd and shadow lines of the accepted users.
	today := strconv.FormatInt(db.now().Unix()/86400, 10)
	for _, u := range accepted {
		line := []string{u.Name, "x", strconv.Itoa(u.UID), strconv.Itoa(u.GID), ManagedGECOS, u.Home, u.Shell}
		old := passwd.get(u.Name)
		switch {
		case old == nil:
			ch.Added = append(ch.Added, u.Name)
		case !slices.Equal(old, line):
			ch.Updated = append(ch.Updated, u.Name)
		}
		passwd.set(u.Name, line)
		hash := u.PasswordHash
		if hash == "" {
			hash = "*"
		}
		if f := shadow.get(u.Name); len(f) < 2 || f[1] != hash {
			shadow.set(u.Name, []string{u.Name, hash, today, "0", "99999", "7", "", "", ""})
			if old != nil && !slices.Contains(ch.Updated, u.Name) {
				ch.Updated = append(ch.Updated, u.Name)
			}
		}
	}

	// Write: groups before the users that use them; the state file lists
	// every group musubi may have created before the group file, and only
	// what remains after it.
	stateList := func() []string { return slices.Sorted(maps.Keys(ours)) }
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return ch, fmt.Errorf("nodesync: state directory: %w", err)
	}
	before := slices.Clone(state.lines)
	state.lines = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(before), stateList()...))))
	if err := state.write(); err != nil {
		return ch, err
	}
	for _, t := range []*table{group, gshadow, passwd, shadow} {
		if t == gshadow && !gshadow.exists {
			continue
		}
		if err := t.write(); err != nil {
			return ch, err
		}
	}
	state.orig = state.bytes()
	state.lines = stateList()
	if err := state.write(); err != nil {
		return ch, err
	}

	// Homes and keys.
	for _, g := range removed {
		ch.Removed = append(ch.Removed, g.name)
		if _, err := db.writeKeys(g.home, g.uid, -1, nil, false); err != nil {
			db.log().Warn("removing the SSH keys of a removed user", "user", g.name, "err", err)
		}
	}
	for _, u := range accepted {
		changed, err := db.writeKeys(u.Home, u.UID, u.GID, u.SSHKeys, true)
		if err != nil {
			ch.Conflicts[u.Name] = err.Error()
			db.log().Warn("SSH keys not written", "user", u.Name, "err", err)
			continue
		}
		if changed && !slices.Contains(ch.Added, u.Name) && !slices.Contains(ch.Updated, u.Name) {
			ch.Updated = append(ch.Updated, u.Name)
		}
	}
	for name, reason := range ch.Conflicts {
		db.log().Warn("account not applied", "user", name, "reason", reason)
	}
	if len(created) > 0 {
		db.log().Info("groups created", "groups", created)
	}
	return ch, nil
}

func (db *FileDB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// groupGID derives the gid of a new group from its name.
func groupGID(name string, used map[int]string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	g := groupGIDBase + int(h.Sum32()%groupGIDSpan)
	for used[g] != "" {
		g++
		if g >= groupGIDBase+groupGIDSpan {
			g = groupGIDBase
		}
	}
	return g
}

// lock takes the shadow tools' lock (lckpwdf: an fcntl write lock on
// etc/.pwd.lock), waiting up to LockTimeout.
func (db *FileDB) lock(ctx context.Context) (func(), error) {
	p := db.path("etc", ".pwd.lock")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("nodesync: %w", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nodesync: lock %s: %w", p, err)
	}
	timeout := db.LockTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
			f.Close()
			return nil, fmt.Errorf("nodesync: lock %s: %w", p, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: %s held for %v", ErrLocked, p, timeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// writeKeys makes the managed block of home's .ssh/authorized_keys hold
// keys (none: the block is removed) and reports whether it changed it.
// With create, a missing home is created (0700, owned by uid:gid). It
// writes only into a home owned by uid, through os.Root so that no
// symbolic link leads it outside; the file is 0600 and owned by uid:gid
// (gid < 0: its group is kept).
func (db *FileDB) writeKeys(home string, uid, gid int, keys []string, create bool) (bool, error) {
	hp := db.path(home)
	fi, err := os.Lstat(hp)
	if errors.Is(err, fs.ErrNotExist) {
		if !create || len(keys) == 0 {
			return false, nil
		}
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			return false, fmt.Errorf("nodesync: home %s: %w", home, err)
		}
		if err := os.Mkdir(hp, 0o700); err != nil {
			return false, fmt.Errorf("nodesync: home %s: %w", home, err)
		}
		if err := ignorePerm(os.Lchown(hp, uid, gid)); err != nil {
			return false, fmt.Errorf("nodesync: home %s: %w", home, err)
		}
		fi, err = os.Lstat(hp)
	}
	if err != nil {
		return false, fmt.Errorf("nodesync: home %s: %w", home, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("nodesync: home %s is not a directory", home)
	}
	if !ownedBy(fi, uid) {
		return false, fmt.Errorf("nodesync: home %s is not owned by uid %d: keys not written", home, uid)
	}
	r, err := os.OpenRoot(hp)
	if err != nil {
		return false, fmt.Errorf("nodesync: home %s: %w", home, err)
	}
	defer r.Close()
	sfi, err := r.Lstat(".ssh")
	if errors.Is(err, fs.ErrNotExist) {
		if len(keys) == 0 {
			return false, nil
		}
		if err := r.Mkdir(".ssh", 0o700); err != nil {
			return false, fmt.Errorf("nodesync: %s/.ssh: %w", home, err)
		}
		if err := ignorePerm(r.Lchown(".ssh", uid, gid)); err != nil {
			return false, fmt.Errorf("nodesync: %s/.ssh: %w", home, err)
		}
		sfi, err = r.Lstat(".ssh")
	}
	if err != nil {
		return false, fmt.Errorf("nodesync: %s/.ssh: %w", home, err)
	}
	if !sfi.IsDir() || !ownedBy(sfi, uid) {
		return false, fmt.Errorf("nodesync: %s/.ssh is not a directory owned by uid %d: keys not written", home, uid)
	}
	sr, err := r.OpenRoot(".ssh")
	if err != nil {
		return false, fmt.Errorf("nodesync: %s/.ssh: %w", home, err)
	}
	defer sr.Close()
	const name = "authorized_keys"
	var old []byte
	kfi, err := sr.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if len(keys) == 0 {
			return false, nil
		}
	case err != nil:
		return false, fmt.Errorf("nodesync: %s/.ssh/%s: %w", home, name, err)
	case kfi.Mode().IsRegular():
		if old, err = sr.ReadFile(name); err != nil {
			return false, fmt.Errorf("nodesync: %s/.ssh/%s: %w", home, name, err)
		}
	}
	content := ReplaceBlock(old, renderKeys(keys))
	if kfi != nil && kfi.Mode().IsRegular() && bytes.Equal(content, old) && kfi.Mode().Perm() == 0o600 && ownedBy(kfi, uid) {
		return false, nil
	}
	if gid < 0 && kfi != nil {
		if st, ok := kfi.Sys().(*syscall.Stat_t); ok {
			gid = int(st.Gid)
		}
	}
	tmp := fmt.Sprintf(".%s.musubi-%d", name, time.Now().UnixNano())
	f, err := sr.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("nodesync: %s/.ssh/%s: %w", home, name, err)
	}
	err = errors.Join(f.Chmod(0o600), writeAll(f, content))
	if err == nil {
		err = ignorePerm(f.Chown(uid, gid))
	}
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = sr.Rename(tmp, name)
	}
	if err != nil {
		_ = sr.Remove(tmp)
		return false, fmt.Errorf("nodesync: %s/.ssh/%s: %w", home, name, err)
	}
	return true, nil
}

// ownedBy reports whether fi belongs to uid (always true when not running
// as root: tests, where every file is the caller's).
func ownedBy(fi fs.FileInfo, uid int) bool {
	if os.Geteuid() != 0 {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}
