package coordtest

import (
	"context"
	"errors"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
)

var syncTests = []test{
	{"SeesOtherSessionsWrites", func(t *testing.T, e *env) {
		r, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/n")
		mustGet(t, e.ctx, r, "/n")
		for i := range 3 {
			mustSet(t, e.ctx, x, "/n", []byte{byte(i)}, coord.AnyVersion)
			mustCreate(t, e.ctx, x, "/n/c-", nil, coord.Sequential, nil)
			if err := r.Sync(e.ctx, "/n"); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			data, st := mustGet(t, e.ctx, r, "/n")
			if len(data) != 1 || data[0] != byte(i) || st.Version != int32(i+1) || st.NumChildren != int32(i+1) {
				t.Errorf("read after Sync: %v Version %d NumChildren %d, want [%d] %d %d", data, st.Version, st.NumChildren, i, i+1, i+1)
			}
		}
	}},
	{"MissingPath", func(t *testing.T, e *env) {
		// Sync names a path only to pick the ensemble's partition; it
		// need not exist.
		s := e.connect(t)
		if err := s.Sync(e.ctx, "/missing"); err != nil {
			t.Errorf("Sync on a missing path: %v", err)
		}
	}},
}

var ephemeralTests = []test{
	{"DeletedOnClose", func(t *testing.T, e *env) {
		owner, w := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, w, "/p")
		mustCreate(t, e.ctx, owner, "/p/e", []byte("x"), coord.Ephemeral, nil)
		seq := mustCreate(t, e.ctx, owner, "/p/s-", nil, coord.EphemeralSequential, nil)
		mustCreate(t, e.ctx, owner, "/p/keep", nil, coord.Persistent, nil)
		ok, _, gone, err := w.ExistsW(e.ctx, "/p/e")
		if err != nil || !ok {
			t.Fatalf("ExistsW /p/e = %v, %v", ok, err)
		}
		_, _, goneSeq, err := w.GetW(e.ctx, seq)
		if err != nil {
			t.Fatalf("GetW %s: %v", seq, err)
		}
		if err := owner.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wantEvent(t, gone, coord.EventDeleted, "/p/e", "ExistsW on an ephemeral whose session closed")
		wantEvent(t, goneSeq, coord.EventDeleted, seq, "GetW on an ephemeral-sequential whose session closed")
		mustExist(t, e.ctx, w, "/p/e", false)
		mustExist(t, e.ctx, w, seq, false)
		if kids := mustChildren(t, e.ctx, w, "/p"); len(kids) != 1 || kids[0] != "keep" {
			t.Errorf("/p children after the owner closed: %q, want [keep]", kids)
		}
	}},
	{"SurviveOtherSessionsClose", func(t *testing.T, e *env) {
		owner, other := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, owner, "/e", nil, coord.Ephemeral, nil)
		if err := other.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		third := e.connect(t)
		if err := third.Sync(e.ctx, "/e"); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		mustExist(t, e.ctx, third, "/e", true)
	}},
	{"DeletableByAnotherSession", func(t *testing.T, e *env) {
		owner, other := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, owner, "/e", nil, coord.Ephemeral, nil)
		mustDelete(t, e.ctx, other, "/e", 0)
		mustExist(t, e.ctx, owner, "/e", false)
		// The owner may reuse the name; closing it removes the new node.
		mustCreate(t, e.ctx, other, "/e", nil, coord.Ephemeral, nil)
		if err := owner.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		mustExist(t, e.ctx, other, "/e", true)
	}},
}

var closeTests = []test{
	{"LaterCallsReturnErrClosed", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/n")
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		ctx := e.ctx
		calls := map[string]func() error{
			"Create": func() error { _, err := s.Create(ctx, "/x", nil, coord.Persistent, nil); return err },
			"Get":    func() error { _, _, err := s.Get(ctx, "/n"); return err },
			"GetW":   func() error { _, _, _, err := s.GetW(ctx, "/n"); return err },
			"Set":    func() error { _, err := s.Set(ctx, "/n", nil, coord.AnyVersion); return err },
			"Delete": func() error { return s.Delete(ctx, "/n", coord.AnyVersion) },
			"Exists": func() error { _, _, err := s.Exists(ctx, "/n"); return err },
			"ExistsW": func() error {
				_, _, _, err := s.ExistsW(ctx, "/n")
				return err
			},
			"Children": func() error { _, _, err := s.Children(ctx, "/n"); return err },
			"ChildrenW": func() error {
				_, _, _, err := s.ChildrenW(ctx, "/n")
				return err
			},
			"Multi": func() error {
				_, err := s.Multi(ctx, &coord.CreateOp{Path: "/x", Mode: coord.Persistent})
				return err
			},
			"Sync": func() error { return s.Sync(ctx, "/n") },
		}
		for name, call := range calls {
			wantErr(t, call(), coord.ErrClosed, name+" after Close")
		}
		if id := s.SessionID(); id != 0 {
			t.Errorf("SessionID after Close = %#x, want 0", id)
		}
		other := e.connect(t)
		mustExist(t, e.ctx, other, "/n", true)
		mustExist(t, e.ctx, other, "/x", false)
	}},
	{"Twice", func(t *testing.T, e *env) {
		s := e.connect(t)
		if err := s.Close(); err != nil {
			t.Errorf("first Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}},
	{"EndsPendingWatches", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/n")
		_, _, data, err := s.GetW(e.ctx, "/n")
		if err != nil {
			t.Fatalf("GetW: %v", err)
		}
		_, _, kids, err := s.ChildrenW(e.ctx, "/n")
		if err != nil {
			t.Fatalf("ChildrenW: %v", err)
		}
		_, _, exists, err := s.ExistsW(e.ctx, "/missing")
		if err != nil {
			t.Fatalf("ExistsW: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wantNotWatching(t, data, "/n", coord.ErrClosed, "GetW pending at Close")
		wantNotWatching(t, kids, "/n", coord.ErrClosed, "ChildrenW pending at Close")
		wantNotWatching(t, exists, "/missing", coord.ErrClosed, "ExistsW pending at Close")
	}},
	{"ReportsStateClosed", func(t *testing.T, e *env) {
		s := e.connect(t)
		rec := newSessionRecorder()
		defer s.OnSession(rec.fn)()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		rec.waitState(t, "StateClosed after Close", func(ev coord.SessionEvent) bool { return ev.State == coord.StateClosed })
	}},
}

var onSessionTests = []test{
	{"Cancel", func(t *testing.T, e *env) {
		s := e.connect(t)
		cancelled, kept := newSessionRecorder(), newSessionRecorder()
		cancel := s.OnSession(cancelled.fn)
		defer s.OnSession(kept.fn)()
		cancel()
		cancel() // a second cancel is harmless
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		kept.waitState(t, "StateClosed on the callback still registered", func(ev coord.SessionEvent) bool { return ev.State == coord.StateClosed })
		select {
		case ev := <-cancelled.ch:
			t.Errorf("cancelled callback got %v", ev.State)
		default:
		}
	}},
	{"InOrderToEveryCallback", func(t *testing.T, e *env) {
		s := e.connect(t)
		recs := []*sessionRecorder{newSessionRecorder(), newSessionRecorder(), newSessionRecorder()}
		for _, r := range recs {
			defer s.OnSession(r.fn)()
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		var first string
		for i, r := range recs {
			seen := fmtEvents(r.waitState(t, "StateClosed", func(ev coord.SessionEvent) bool { return ev.State == coord.StateClosed }))
			if i == 0 {
				first = seen
			} else if seen != first {
				t.Errorf("callback %d saw %s, callback 0 saw %s", i, seen, first)
			}
		}
	}},
}

var contextTests = []test{
	{"CanceledBeforeSend", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/n")
		ctx := ctxCanceled(e.ctx)
		calls := map[string]func() error{
			"Create": func() error { _, err := s.Create(ctx, "/x", nil, coord.Persistent, nil); return err },
			"Get":    func() error { _, _, err := s.Get(ctx, "/n"); return err },
			"Set":    func() error { _, err := s.Set(ctx, "/n", []byte("x"), coord.AnyVersion); return err },
			"Delete": func() error { return s.Delete(ctx, "/n", coord.AnyVersion) },
			"Exists": func() error { _, _, err := s.Exists(ctx, "/n"); return err },
			"Children": func() error {
				_, _, err := s.Children(ctx, "/n")
				return err
			},
			"Multi": func() error {
				_, err := s.Multi(ctx, &coord.CreateOp{Path: "/y", Mode: coord.Persistent})
				return err
			},
			"Sync": func() error { return s.Sync(ctx, "/n") },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context: %v, want context.Canceled", name, err)
			}
		}
		mustExist(t, e.ctx, s, "/x", false)
		mustExist(t, e.ctx, s, "/y", false)
		data, st := mustGet(t, e.ctx, s, "/n")
		if len(data) != 0 || st.Version != 0 {
			t.Errorf("/n changed by calls with a canceled context: %q version %d", data, st.Version)
		}
	}},
}
