package coordtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
)

var allModes = []coord.CreateMode{coord.Persistent, coord.Ephemeral, coord.Sequential, coord.EphemeralSequential}

var namespaceTests = []test{
	{"EmptyAndOpenToEveryone", func(t *testing.T, e *env) {
		// The harness's own contract: the first session holds credentials,
		// yet the namespace root is open to a session without any.
		alice := e.connect(t, coord.Credential{User: "alice", Password: "alice-secret"})
		if kids := mustChildren(t, e.ctx, alice, "/"); len(kids) != 0 {
			t.Errorf("new namespace has children %q", kids)
		}
		anon := e.connect(t)
		mustCreate(t, e.ctx, anon, "/x", nil, coord.Persistent, nil)
		mustDelete(t, e.ctx, anon, "/x", coord.AnyVersion)
	}},
}

var createTests = []test{
	{"Persistent", func(t *testing.T, e *env) {
		s := e.connect(t)
		if got := mustCreate(t, e.ctx, s, "/a", []byte("hello"), coord.Persistent, nil); got != "/a" {
			t.Errorf("Create returned %q, want /a", got)
		}
		data, st := mustGet(t, e.ctx, s, "/a")
		if string(data) != "hello" {
			t.Errorf("data %q, want hello", data)
		}
		if st.EphemeralOwner != 0 {
			t.Errorf("persistent node has EphemeralOwner %#x", st.EphemeralOwner)
		}
		// Outlives its session.
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		mustExist(t, e.ctx, e.connect(t), "/a", true)
	}},
	{"Ephemeral", func(t *testing.T, e *env) {
		s, other := e.connect(t), e.connect(t)
		if got := mustCreate(t, e.ctx, s, "/e", []byte("x"), coord.Ephemeral, nil); got != "/e" {
			t.Errorf("Create returned %q, want /e", got)
		}
		st := mustExist(t, e.ctx, other, "/e", true)
		if id := s.SessionID(); id == 0 || st.EphemeralOwner != id {
			t.Errorf("EphemeralOwner %#x, creator's SessionID %#x", st.EphemeralOwner, id)
		}
	}},
	{"Sequential", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/q")
		first := mustCreate(t, e.ctx, s, "/q/job-", []byte("1"), coord.Sequential, nil)
		if first != "/q/job-0000000000" {
			t.Errorf("first sequential child of a new parent: %q, want /q/job-0000000000", first)
		}
		second := mustCreate(t, e.ctx, s, "/q/job-", nil, coord.Sequential, nil)
		if _, n := seqOf(t, second); n != 1 {
			t.Errorf("second sequential child: %q, want suffix 0000000001", second)
		}
		data, st := mustGet(t, e.ctx, s, first)
		if string(data) != "1" || st.EphemeralOwner != 0 {
			t.Errorf("%s: data %q owner %#x, want data 1, persistent", first, data, st.EphemeralOwner)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		mustExist(t, e.ctx, e.connect(t), first, true)
	}},
	{"EphemeralSequential", func(t *testing.T, e *env) {
		s, other := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, s, "/q")
		got := mustCreate(t, e.ctx, s, "/q/lock-", nil, coord.EphemeralSequential, nil)
		if got != "/q/lock-0000000000" {
			t.Errorf("Create returned %q, want /q/lock-0000000000", got)
		}
		st := mustExist(t, e.ctx, other, got, true)
		if st.EphemeralOwner != s.SessionID() || st.EphemeralOwner == 0 {
			t.Errorf("EphemeralOwner %#x, want creator's session %#x", st.EphemeralOwner, s.SessionID())
		}
	}},
	{"SequenceCounterPerParent", func(t *testing.T, e *env) {
		// ZooKeeper numbers a sequential child with its parent's count of
		// child creates so far (of every mode): the counter is shared by
		// all prefixes, never reused after deletes, and failed creates do
		// not consume it.
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/q", "/r")
		steps := []struct {
			path string
			mode coord.CreateMode
			want string
		}{
			{"/q/a-", coord.Sequential, "/q/a-0000000000"},
			{"/q/b-", coord.Sequential, "/q/b-0000000001"},
			{"/q/plain", coord.Persistent, "/q/plain"},
			{"/r/a-", coord.Sequential, "/r/a-0000000000"}, // another parent counts on its own
			{"/q/a-", coord.EphemeralSequential, "/q/a-0000000003"},
		}
		for _, st := range steps {
			if got := mustCreate(t, e.ctx, s, st.path, nil, st.mode, nil); got != st.want {
				t.Errorf("Create(%s, %v) = %q, want %q", st.path, st.mode, got, st.want)
			}
		}
		// A create that fails does not consume a number.
		if _, err := s.Create(e.ctx, "/q/plain", nil, coord.Persistent, nil); !errors.Is(err, coord.ErrExists) {
			t.Fatalf("Create existing: %v, want ErrExists", err)
		}
		// Deletes do not rewind the counter.
		for _, p := range []string{"/q/a-0000000000", "/q/b-0000000001", "/q/a-0000000003", "/q/plain"} {
			mustDelete(t, e.ctx, s, p, coord.AnyVersion)
		}
		if got := mustCreate(t, e.ctx, s, "/q/a-", nil, coord.Sequential, nil); got != "/q/a-0000000004" {
			t.Errorf("after deleting every child: %q, want /q/a-0000000004", got)
		}
	}},
	{"Data", func(t *testing.T, e *env) {
		s := e.connect(t)
		bin := []byte{0, 1, 2, 0xff, '/', 0}
		for i, data := range [][]byte{nil, {}, []byte("x"), bin, bytes.Repeat([]byte("0123456789"), 1000)} {
			p := fmt.Sprintf("/d%d", i)
			mustCreate(t, e.ctx, s, p, data, coord.Persistent, nil)
			got, st := mustGet(t, e.ctx, s, p)
			if !bytes.Equal(got, data) || int(st.DataLength) != len(data) {
				t.Errorf("%s: got %d bytes (DataLength %d), want %d bytes", p, len(got), st.DataLength, len(data))
			}
		}
	}},
	{"ErrExists", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/a")
		for _, mode := range []coord.CreateMode{coord.Persistent, coord.Ephemeral} {
			_, err := s.Create(e.ctx, "/a", []byte("new"), mode, nil)
			wantErr(t, err, coord.ErrExists, "Create existing /a as "+mode.String())
		}
		_, err := s.Create(e.ctx, "/", nil, coord.Persistent, nil)
		wantErr(t, err, coord.ErrExists, `Create "/"`)
		if data, _ := mustGet(t, e.ctx, s, "/a"); len(data) != 0 {
			t.Errorf("failed create changed the data to %q", data)
		}
	}},
	{"ErrNotFoundWithoutParent", func(t *testing.T, e *env) {
		s := e.connect(t)
		for _, mode := range allModes {
			_, err := s.Create(e.ctx, "/missing/child", nil, mode, nil)
			wantErr(t, err, coord.ErrNotFound, "Create under a missing parent as "+mode.String())
		}
		mustExist(t, e.ctx, s, "/missing", false)
	}},
	{"ErrNoChildrenForEphemerals", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/e", nil, coord.Ephemeral, nil)
		for _, mode := range allModes {
			_, err := s.Create(e.ctx, "/e/child", nil, mode, nil)
			wantErr(t, err, coord.ErrNoChildrenForEphemerals, "Create under an ephemeral as "+mode.String())
		}
		if kids := mustChildren(t, e.ctx, s, "/e"); len(kids) != 0 {
			t.Errorf("ephemeral has children %v", kids)
		}
	}},
}

// badPaths are malformed for every method.
var badPaths = []string{"", "a", "a/b", "/a/", "//a", "/a//b", "/a/.", "/a/..", "/./a", "/a/../b", "/a\x00b"}

var invalidPathTests = []test{
	{"EveryMethod", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/a")
		for _, p := range badPaths {
			q := fmt.Sprintf("%q", p)
			for _, mode := range allModes {
				_, err := s.Create(e.ctx, p, nil, mode, nil)
				wantErr(t, err, coord.ErrInvalidPath, "Create("+q+", "+mode.String()+")")
			}
			_, _, err := s.Get(e.ctx, p)
			wantErr(t, err, coord.ErrInvalidPath, "Get("+q+")")
			_, _, _, err = s.GetW(e.ctx, p)
			wantErr(t, err, coord.ErrInvalidPath, "GetW("+q+")")
			_, err = s.Set(e.ctx, p, nil, coord.AnyVersion)
			wantErr(t, err, coord.ErrInvalidPath, "Set("+q+")")
			err = s.Delete(e.ctx, p, coord.AnyVersion)
			wantErr(t, err, coord.ErrInvalidPath, "Delete("+q+")")
			_, _, err = s.Exists(e.ctx, p)
			wantErr(t, err, coord.ErrInvalidPath, "Exists("+q+")")
			_, _, _, err = s.ExistsW(e.ctx, p)
			wantErr(t, err, coord.ErrInvalidPath, "ExistsW("+q+")")
			_, _, err = s.Children(e.ctx, p)
			wantErr(t, err, coord.ErrInvalidPath, "Children("+q+")")
			_, _, _, err = s.ChildrenW(e.ctx, p)
			wantErr(t, err, coord.ErrInvalidPath, "ChildrenW("+q+")")
			err = s.Sync(e.ctx, p)
			wantErr(t, err, coord.ErrInvalidPath, "Sync("+q+")")
			_, err = s.Multi(e.ctx, &coord.CheckOp{Path: "/a", Version: coord.AnyVersion}, &coord.SetOp{Path: p, Version: coord.AnyVersion})
			wantErr(t, err, coord.ErrInvalidPath, "Multi(check /a, set "+q+")")
			var me *coord.MultiError
			if errors.As(err, &me) && me.Index != 1 {
				t.Errorf("Multi(check /a, set %s): MultiError.Index %d, want 1", q, me.Index)
			}
		}
		if kids := mustChildren(t, e.ctx, s, "/"); !slices.Equal(kids, []string{"a"}) {
			t.Errorf("root children after invalid calls: %v, want [a]", kids)
		}
	}},
}

var getSetTests = []test{
	{"SetWithVersion", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", []byte("v0"), coord.Persistent, nil)
		st1 := mustSet(t, e.ctx, s, "/n", []byte("v1!"), 0)
		if st1.Version != 1 || st1.DataLength != 3 {
			t.Errorf("Set at version 0 returned Version %d DataLength %d, want 1 and 3", st1.Version, st1.DataLength)
		}
		data, st := mustGet(t, e.ctx, s, "/n")
		if string(data) != "v1!" || st.Version != 1 || st.Mzxid != st1.Mzxid {
			t.Errorf("Get after Set: %q version %d mzxid %d, want v1! version 1 mzxid %d", data, st.Version, st.Mzxid, st1.Mzxid)
		}
		st2 := mustSet(t, e.ctx, s, "/n", []byte("v2"), 1)
		if st2.Version != 2 {
			t.Errorf("Set at version 1 returned Version %d, want 2", st2.Version)
		}
	}},
	{"AnyVersion", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", nil, coord.Persistent, nil)
		for i := int32(1); i <= 3; i++ {
			if st := mustSet(t, e.ctx, s, "/n", []byte{byte(i)}, coord.AnyVersion); st.Version != i {
				t.Errorf("Set #%d with AnyVersion: Version %d", i, st.Version)
			}
		}
	}},
	{"ErrBadVersion", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", []byte("orig"), coord.Persistent, nil)
		mustSet(t, e.ctx, s, "/n", []byte("one"), 0)
		for _, v := range []int32{0, 2, 7} {
			_, err := s.Set(e.ctx, "/n", []byte("bad"), v)
			wantErr(t, err, coord.ErrBadVersion, fmt.Sprintf("Set at version %d of a version-1 node", v))
		}
		data, st := mustGet(t, e.ctx, s, "/n")
		if string(data) != "one" || st.Version != 1 {
			t.Errorf("after failed Sets: %q version %d, want one version 1", data, st.Version)
		}
	}},
	{"ErrNotFound", func(t *testing.T, e *env) {
		s := e.connect(t)
		_, _, err := s.Get(e.ctx, "/missing")
		wantErr(t, err, coord.ErrNotFound, "Get missing")
		_, err = s.Set(e.ctx, "/missing", nil, coord.AnyVersion)
		wantErr(t, err, coord.ErrNotFound, "Set missing")
		mustExist(t, e.ctx, s, "/missing", false)
	}},
	{"DataIsCopied", func(t *testing.T, e *env) {
		s := e.connect(t)
		buf := []byte("abc")
		mustCreate(t, e.ctx, s, "/n", buf, coord.Persistent, nil)
		buf[0] = 'X'
		got, _ := mustGet(t, e.ctx, s, "/n")
		if string(got) != "abc" {
			t.Errorf("changing the caller's slice after Create changed the node: %q", got)
		}
		got[0] = 'Y'
		if again, _ := mustGet(t, e.ctx, s, "/n"); string(again) != "abc" {
			t.Errorf("changing a returned slice changed the node: %q", again)
		}
		buf = []byte("def")
		mustSet(t, e.ctx, s, "/n", buf, coord.AnyVersion)
		buf[0] = 'Z'
		if again, _ := mustGet(t, e.ctx, s, "/n"); string(again) != "def" {
			t.Errorf("changing the caller's slice after Set changed the node: %q", again)
		}
	}},
}

var statTests = []test{
	{"NewNode", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", []byte("four"), coord.Persistent, nil)
		_, st := mustGet(t, e.ctx, s, "/n")
		if st.Version != 0 || st.Cversion != 0 || st.NumChildren != 0 || st.DataLength != 4 || st.EphemeralOwner != 0 {
			t.Errorf("new node stat %+v: want Version 0, Cversion 0, NumChildren 0, DataLength 4, EphemeralOwner 0", st)
		}
		if st.Czxid <= 0 || st.Mzxid != st.Czxid || st.Pzxid != st.Czxid {
			t.Errorf("new node zxids c=%d m=%d p=%d: want Czxid > 0 and all three equal", st.Czxid, st.Mzxid, st.Pzxid)
		}
		if st.Ctime.IsZero() || !st.Mtime.Equal(st.Ctime) {
			t.Errorf("new node Ctime %v Mtime %v: want non-zero and equal", st.Ctime, st.Mtime)
		}
	}},
	{"AfterSet", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", []byte("four"), coord.Persistent, nil)
		_, before := mustGet(t, e.ctx, s, "/n")
		mustSet(t, e.ctx, s, "/n", []byte("sixsix"), 0)
		_, st := mustGet(t, e.ctx, s, "/n")
		if st.Version != 1 || st.DataLength != 6 || st.Cversion != 0 {
			t.Errorf("after Set: Version %d DataLength %d Cversion %d, want 1, 6, 0", st.Version, st.DataLength, st.Cversion)
		}
		if st.Czxid != before.Czxid || st.Mzxid <= before.Mzxid || st.Pzxid != before.Pzxid {
			t.Errorf("after Set zxids c=%d m=%d p=%d (before c=%d m=%d p=%d): want Czxid and Pzxid kept, Mzxid larger",
				st.Czxid, st.Mzxid, st.Pzxid, before.Czxid, before.Mzxid, before.Pzxid)
		}
		if !st.Ctime.Equal(before.Ctime) || st.Mtime.Before(st.Ctime) {
			t.Errorf("after Set Ctime %v Mtime %v (Ctime before %v): want Ctime kept, Mtime >= Ctime", st.Ctime, st.Mtime, before.Ctime)
		}
	}},
	{"ChildCounters", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/p")
		_, p0 := mustGet(t, e.ctx, s, "/p")
		mkdirs(t, e.ctx, s, "/p/c1")
		mustCreate(t, e.ctx, s, "/p/c2", nil, coord.Ephemeral, nil)
		_, c1 := mustGet(t, e.ctx, s, "/p/c1")
		_, c2 := mustGet(t, e.ctx, s, "/p/c2")
		if c2.Czxid <= c1.Czxid || c1.Czxid <= p0.Czxid {
			t.Errorf("zxids not increasing: /p %d, /p/c1 %d, /p/c2 %d", p0.Czxid, c1.Czxid, c2.Czxid)
		}
		_, p := mustGet(t, e.ctx, s, "/p")
		if p.Cversion != 2 || p.NumChildren != 2 || p.Pzxid != c2.Czxid {
			t.Errorf("after 2 child creates: Cversion %d NumChildren %d Pzxid %d, want 2, 2, %d", p.Cversion, p.NumChildren, p.Pzxid, c2.Czxid)
		}
		if p.Version != 0 || p.Mzxid != p0.Mzxid {
			t.Errorf("child creates changed the parent's data: Version %d Mzxid %d", p.Version, p.Mzxid)
		}
		mustDelete(t, e.ctx, s, "/p/c1", coord.AnyVersion)
		_, p = mustGet(t, e.ctx, s, "/p")
		if p.Cversion != 3 || p.NumChildren != 1 || p.Pzxid <= c2.Czxid {
			t.Errorf("after a child delete: Cversion %d NumChildren %d Pzxid %d, want 3, 1, > %d", p.Cversion, p.NumChildren, p.Pzxid, c2.Czxid)
		}
	}},
	{"EphemeralOwner", func(t *testing.T, e *env) {
		s, other := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, s, "/e", nil, coord.Ephemeral, nil)
		mustCreate(t, e.ctx, s, "/p", nil, coord.Persistent, nil)
		id := s.SessionID()
		if id == 0 {
			t.Fatal("SessionID() is 0 on a connected store")
		}
		if oid := other.SessionID(); oid == id {
			t.Errorf("two sessions share id %#x", id)
		}
		for _, reader := range []coord.Store{s, other} {
			if _, st := mustGet(t, e.ctx, reader, "/e"); st.EphemeralOwner != id {
				t.Errorf("/e EphemeralOwner %#x, want %#x", st.EphemeralOwner, id)
			}
			if _, st := mustGet(t, e.ctx, reader, "/p"); st.EphemeralOwner != 0 {
				t.Errorf("/p EphemeralOwner %#x, want 0", st.EphemeralOwner)
			}
		}
	}},
	{"SameFromEveryRead", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/n", "/n/a")
		mustSet(t, e.ctx, s, "/n", []byte("xy"), 0)
		_, g := mustGet(t, e.ctx, s, "/n")
		ex := mustExist(t, e.ctx, s, "/n", true)
		_, ch, err := s.Children(e.ctx, "/n")
		if err != nil {
			t.Fatalf("Children: %v", err)
		}
		for name, st := range map[string]coord.Stat{"Exists": ex, "Children": ch} {
			if !sameStat(st, g) {
				t.Errorf("%s stat %+v differs from Get's %+v", name, st, g)
			}
		}
	}},
}

// sameStat compares the fields a store must report identically for the
// same node state.
func sameStat(a, b coord.Stat) bool {
	return a.Czxid == b.Czxid && a.Mzxid == b.Mzxid && a.Pzxid == b.Pzxid &&
		a.Version == b.Version && a.Cversion == b.Cversion && a.EphemeralOwner == b.EphemeralOwner &&
		a.DataLength == b.DataLength && a.NumChildren == b.NumChildren &&
		a.Ctime.Equal(b.Ctime) && a.Mtime.Equal(b.Mtime)
}

var deleteTests = []test{
	{"WithVersion", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", nil, coord.Persistent, nil)
		mustSet(t, e.ctx, s, "/n", []byte("x"), 0)
		for _, v := range []int32{0, 2} {
			err := s.Delete(e.ctx, "/n", v)
			wantErr(t, err, coord.ErrBadVersion, fmt.Sprintf("Delete at version %d of a version-1 node", v))
		}
		mustExist(t, e.ctx, s, "/n", true)
		mustDelete(t, e.ctx, s, "/n", 1)
		mustExist(t, e.ctx, s, "/n", false)
	}},
	{"AnyVersion", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", nil, coord.Persistent, nil)
		mustSet(t, e.ctx, s, "/n", []byte("x"), 0)
		mustDelete(t, e.ctx, s, "/n", coord.AnyVersion)
		mustExist(t, e.ctx, s, "/n", false)
	}},
	{"ErrNotEmpty", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/p", "/p/c")
		wantErr(t, s.Delete(e.ctx, "/p", coord.AnyVersion), coord.ErrNotEmpty, "Delete a node with a child")
		mustExist(t, e.ctx, s, "/p", true)
		mustDelete(t, e.ctx, s, "/p/c", coord.AnyVersion)
		mustDelete(t, e.ctx, s, "/p", coord.AnyVersion)
	}},
	{"ErrNotFound", func(t *testing.T, e *env) {
		s := e.connect(t)
		wantErr(t, s.Delete(e.ctx, "/missing", coord.AnyVersion), coord.ErrNotFound, "Delete missing")
		wantErr(t, s.Delete(e.ctx, "/missing/child", coord.AnyVersion), coord.ErrNotFound, "Delete under a missing parent")
		mkdirs(t, e.ctx, s, "/n")
		mustDelete(t, e.ctx, s, "/n", 0)
		wantErr(t, s.Delete(e.ctx, "/n", 0), coord.ErrNotFound, "Delete twice")
	}},
	{"Recreate", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", []byte("old"), coord.Persistent, nil)
		mustSet(t, e.ctx, s, "/n", []byte("older"), 0)
		_, old := mustGet(t, e.ctx, s, "/n")
		mustDelete(t, e.ctx, s, "/n", coord.AnyVersion)
		mustCreate(t, e.ctx, s, "/n", []byte("new"), coord.Persistent, nil)
		data, st := mustGet(t, e.ctx, s, "/n")
		if string(data) != "new" || st.Version != 0 || st.Czxid <= old.Mzxid {
			t.Errorf("recreated node: %q Version %d Czxid %d, want new, 0, > %d", data, st.Version, st.Czxid, old.Mzxid)
		}
	}},
}

var childrenTests = []test{
	{"SortedNames", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/p")
		for _, n := range []string{"b", "a1", "c", "a", "B", "0"} {
			mkdirs(t, e.ctx, s, "/p/"+n)
		}
		mkdirs(t, e.ctx, s, "/p/a/grandchild")
		kids, st, err := s.Children(e.ctx, "/p")
		if err != nil {
			t.Fatalf("Children: %v", err)
		}
		want := []string{"0", "B", "a", "a1", "b", "c"}
		if !slices.Equal(kids, want) {
			t.Errorf("Children = %q, want %q (names, sorted, direct children only)", kids, want)
		}
		if st.NumChildren != 6 {
			t.Errorf("Children stat NumChildren %d, want 6", st.NumChildren)
		}
	}},
	{"Empty", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/p")
		if kids := mustChildren(t, e.ctx, s, "/p"); len(kids) != 0 {
			t.Errorf("Children of a leaf = %q", kids)
		}
	}},
	{"Root", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/y", "/x")
		if kids := mustChildren(t, e.ctx, s, "/"); !slices.Equal(kids, []string{"x", "y"}) {
			t.Errorf("Children(/) = %q, want [x y] (the namespace starts empty)", kids)
		}
	}},
	{"ErrNotFound", func(t *testing.T, e *env) {
		s := e.connect(t)
		_, _, err := s.Children(e.ctx, "/missing")
		wantErr(t, err, coord.ErrNotFound, "Children of a missing node")
	}},
}

var existsTests = []test{
	{"ExistingAndMissing", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/n", []byte("abc"), coord.Persistent, nil)
		if st := mustExist(t, e.ctx, s, "/n", true); st.DataLength != 3 || st.Czxid == 0 {
			t.Errorf("Exists stat %+v, want DataLength 3 and a Czxid", st)
		}
		mustExist(t, e.ctx, s, "/", true)
		for _, p := range []string{"/missing", "/missing/deeper", "/n/child"} {
			ok, st, err := s.Exists(e.ctx, p)
			if err != nil || ok || st != (coord.Stat{}) {
				t.Errorf("Exists(%s) = %v, %+v, %v; want false, zero stat, no error", p, ok, st, err)
			}
		}
	}},
}

// ctxCanceled returns a context that is already canceled.
func ctxCanceled(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	cancel()
	return ctx
}
