package coordtest

import (
	"errors"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
)

// wantMultiError checks that err is a *coord.MultiError for op index with
// the sentinel want as its cause.
func wantMultiError(t *testing.T, err error, index int, want error, what string) {
	t.Helper()
	var me *coord.MultiError
	if !errors.As(err, &me) {
		t.Errorf("%s: error %v (%T), want a *coord.MultiError", what, err, err)
		return
	}
	if me.Index != index || !errors.Is(err, want) || !errors.Is(me.Err, want) {
		t.Errorf("%s: MultiError{Index %d, Err %v}, want Index %d and %v", what, me.Index, me.Err, index, want)
	}
	if me.Op == nil {
		t.Errorf("%s: MultiError.Op is nil", what)
	}
}

var multiTests = []test{
	{"AllApply", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/m", "/m/old")
		res, err := s.Multi(e.ctx,
			&coord.CheckOp{Path: "/m", Version: 0},
			&coord.CreateOp{Path: "/m/new", Data: []byte("n"), Mode: coord.Persistent},
			&coord.CreateOp{Path: "/m/seq-", Mode: coord.Sequential},
			&coord.SetOp{Path: "/m", Data: []byte("set"), Version: 0},
			&coord.DeleteOp{Path: "/m/old", Version: 0},
			&coord.CreateOp{Path: "/m/eph", Mode: coord.Ephemeral},
		)
		if err != nil {
			t.Fatalf("Multi: %v", err)
		}
		if len(res) != 6 {
			t.Fatalf("Multi returned %d results, want 6", len(res))
		}
		if res[1].Path != "/m/new" || res[5].Path != "/m/eph" {
			t.Errorf("created paths %q, %q; want /m/new, /m/eph", res[1].Path, res[5].Path)
		}
		// /m/old and /m/new were created before it: the counter is 2.
		if res[2].Path != "/m/seq-0000000002" {
			t.Errorf("sequential create in Multi returned %q, want /m/seq-0000000002", res[2].Path)
		}
		if res[3].Stat.Version != 1 || res[3].Stat.DataLength != 3 {
			t.Errorf("SetOp result stat Version %d DataLength %d, want 1 and 3", res[3].Stat.Version, res[3].Stat.DataLength)
		}
		data, st := mustGet(t, e.ctx, s, "/m")
		if string(data) != "set" || st.Version != 1 || st.Mzxid != res[3].Stat.Mzxid {
			t.Errorf("/m after Multi: %q Version %d Mzxid %d, want set, 1, %d", data, st.Version, st.Mzxid, res[3].Stat.Mzxid)
		}
		if kids := mustChildren(t, e.ctx, s, "/m"); len(kids) != 3 || kids[0] != "eph" || kids[1] != "new" || kids[2] != "seq-0000000002" {
			t.Errorf("/m children after Multi: %q, want [eph new seq-0000000002]", kids)
		}
		if _, st := mustGet(t, e.ctx, s, "/m/eph"); st.EphemeralOwner != s.SessionID() {
			t.Errorf("ephemeral created by Multi: owner %#x, want %#x", st.EphemeralOwner, s.SessionID())
		}
	}},
	{"OneTransaction", func(t *testing.T, e *env) {
		// All ops of a Multi commit together, under one zxid.
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/m")
		if _, err := s.Multi(e.ctx,
			&coord.CreateOp{Path: "/m/a", Mode: coord.Persistent},
			&coord.CreateOp{Path: "/m/b", Mode: coord.Persistent},
			&coord.SetOp{Path: "/m", Data: []byte("x"), Version: coord.AnyVersion},
		); err != nil {
			t.Fatalf("Multi: %v", err)
		}
		_, a := mustGet(t, e.ctx, s, "/m/a")
		_, b := mustGet(t, e.ctx, s, "/m/b")
		_, m := mustGet(t, e.ctx, s, "/m")
		if a.Czxid != b.Czxid || a.Czxid != m.Mzxid || m.Pzxid != a.Czxid {
			t.Errorf("zxids of one Multi differ: /m/a %d, /m/b %d, /m Mzxid %d Pzxid %d", a.Czxid, b.Czxid, m.Mzxid, m.Pzxid)
		}
	}},
	{"OpsSeeEarlierOps", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/m")
		res, err := s.Multi(e.ctx,
			&coord.CreateOp{Path: "/m/a", Mode: coord.Persistent},
			&coord.CreateOp{Path: "/m/a/b", Data: []byte("1"), Mode: coord.Persistent},
			&coord.SetOp{Path: "/m/a/b", Data: []byte("22"), Version: 0},
			&coord.CheckOp{Path: "/m/a/b", Version: 1},
			&coord.DeleteOp{Path: "/m/a/b", Version: 1},
			&coord.CreateOp{Path: "/m/s-", Mode: coord.Sequential},
			&coord.CreateOp{Path: "/m/s-", Mode: coord.Sequential},
		)
		if err != nil {
			t.Fatalf("Multi: %v", err)
		}
		if res[2].Stat.Version != 1 {
			t.Errorf("Set of a node created in the same Multi: Version %d, want 1", res[2].Stat.Version)
		}
		if res[5].Path != "/m/s-0000000001" || res[6].Path != "/m/s-0000000002" {
			t.Errorf("two sequential creates in one Multi: %q, %q; want /m/s-0000000001, /m/s-0000000002", res[5].Path, res[6].Path)
		}
		mustExist(t, e.ctx, s, "/m/a/b", false)
		if kids := mustChildren(t, e.ctx, s, "/m/a"); len(kids) != 0 {
			t.Errorf("/m/a children %q, want none", kids)
		}
	}},
	{"FailingCheckAppliesNothing", func(t *testing.T, e *env) {
		s, w := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, s, "/m", "/m/old")
		_, _, dataM, err := w.GetW(e.ctx, "/m")
		if err != nil {
			t.Fatalf("GetW: %v", err)
		}
		_, _, kidsM, err := w.ChildrenW(e.ctx, "/m")
		if err != nil {
			t.Fatalf("ChildrenW: %v", err)
		}
		_, _, existsNew, err := w.ExistsW(e.ctx, "/m/new")
		if err != nil {
			t.Fatalf("ExistsW: %v", err)
		}
		res, err := s.Multi(e.ctx,
			&coord.CreateOp{Path: "/m/new", Mode: coord.Persistent},
			&coord.CreateOp{Path: "/m/seq-", Mode: coord.Sequential},
			&coord.SetOp{Path: "/m", Data: []byte("set"), Version: 0},
			&coord.DeleteOp{Path: "/m/old", Version: 0},
			&coord.CheckOp{Path: "/m", Version: 7},
		)
		if res != nil {
			t.Errorf("failed Multi returned results %+v", res)
		}
		wantMultiError(t, err, 4, coord.ErrBadVersion, "Multi with a failing check last")
		mustExist(t, e.ctx, s, "/m/new", false)
		mustExist(t, e.ctx, s, "/m/old", true)
		data, st := mustGet(t, e.ctx, s, "/m")
		if len(data) != 0 || st.Version != 0 || st.Cversion != 1 || st.NumChildren != 1 {
			t.Errorf("/m after a failed Multi: %q Version %d Cversion %d NumChildren %d, want unchanged (empty, 0, 1, 1)",
				data, st.Version, st.Cversion, st.NumChildren)
		}
		wantQuiet(t, map[string]<-chan coord.Event{
			"GetW /m after a failed Multi":        dataM,
			"ChildrenW /m after a failed Multi":   kidsM,
			"ExistsW /m/new after a failed Multi": existsNew,
		})
		// The failed sequential create did not consume a number.
		if got := mustCreate(t, e.ctx, s, "/m/seq-", nil, coord.Sequential, nil); got != "/m/seq-0000000001" {
			t.Errorf("sequential create after a failed Multi: %q, want /m/seq-0000000001", got)
		}
	}},
	{"ErrorIndexAndSentinel", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/m", "/m/full", "/m/full/c")
		mustCreate(t, e.ctx, s, "/m/eph", nil, coord.Ephemeral, nil)
		mark := &coord.CreateOp{Path: "/m/mark", Mode: coord.Persistent}
		cases := []struct {
			name  string
			ops   []coord.Op
			index int
			want  error
		}{
			{"create existing", []coord.Op{mark, &coord.CreateOp{Path: "/m/full", Mode: coord.Persistent}}, 1, coord.ErrExists},
			{"create without parent", []coord.Op{mark, &coord.CreateOp{Path: "/m/none/x", Mode: coord.Persistent}}, 1, coord.ErrNotFound},
			{"create under ephemeral", []coord.Op{mark, &coord.CreateOp{Path: "/m/eph/x", Mode: coord.Persistent}}, 1, coord.ErrNoChildrenForEphemerals},
			{"create twice", []coord.Op{mark, mark}, 1, coord.ErrExists},
			{"set missing", []coord.Op{&coord.SetOp{Path: "/m/none", Version: coord.AnyVersion}, mark}, 0, coord.ErrNotFound},
			{"set bad version", []coord.Op{mark, &coord.SetOp{Path: "/m", Version: 3}}, 1, coord.ErrBadVersion},
			{"delete missing", []coord.Op{mark, &coord.CheckOp{Path: "/m", Version: 0}, &coord.DeleteOp{Path: "/m/none", Version: coord.AnyVersion}}, 2, coord.ErrNotFound},
			{"delete not empty", []coord.Op{mark, &coord.DeleteOp{Path: "/m/full", Version: coord.AnyVersion}}, 1, coord.ErrNotEmpty},
			{"delete bad version", []coord.Op{mark, &coord.DeleteOp{Path: "/m/full/c", Version: 5}}, 1, coord.ErrBadVersion},
			{"check missing", []coord.Op{mark, &coord.CheckOp{Path: "/m/none", Version: coord.AnyVersion}}, 1, coord.ErrNotFound},
			{"check after delete", []coord.Op{mark, &coord.DeleteOp{Path: "/m/full/c", Version: 0}, &coord.CheckOp{Path: "/m/full/c", Version: coord.AnyVersion}}, 2, coord.ErrNotFound},
		}
		for _, c := range cases {
			res, err := s.Multi(e.ctx, c.ops...)
			if res != nil {
				t.Errorf("%s: failed Multi returned results", c.name)
			}
			wantMultiError(t, err, c.index, c.want, c.name)
			mustExist(t, e.ctx, s, "/m/mark", false)
			mustExist(t, e.ctx, s, "/m/full/c", true)
		}
	}},
	{"FiresWatches", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/m", "/m/old")
		_, _, dataM, err := w.GetW(e.ctx, "/m")
		if err != nil {
			t.Fatalf("GetW: %v", err)
		}
		_, _, kidsM, err := w.ChildrenW(e.ctx, "/m")
		if err != nil {
			t.Fatalf("ChildrenW: %v", err)
		}
		_, _, oldGone, err := w.ExistsW(e.ctx, "/m/old")
		if err != nil {
			t.Fatalf("ExistsW: %v", err)
		}
		if _, err := x.Multi(e.ctx,
			&coord.SetOp{Path: "/m", Data: []byte("x"), Version: 0},
			&coord.CreateOp{Path: "/m/new", Mode: coord.Persistent},
			&coord.DeleteOp{Path: "/m/old", Version: 0},
		); err != nil {
			t.Fatalf("Multi: %v", err)
		}
		wantEvent(t, dataM, coord.EventDataChanged, "/m", "GetW /m after Multi set")
		wantEvent(t, kidsM, coord.EventChildrenChanged, "/m", "ChildrenW /m after Multi create+delete")
		wantEvent(t, oldGone, coord.EventDeleted, "/m/old", "ExistsW /m/old after Multi delete")
	}},
	{"Empty", func(t *testing.T, e *env) {
		s := e.connect(t)
		res, err := s.Multi(e.ctx)
		if err != nil || len(res) != 0 {
			t.Errorf("empty Multi = %v, %v; want no results, no error", res, err)
		}
	}},
}
