package coordtest

import (
	"bytes"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
)

// In these tests one session (w) sets the watch and another (x) writes,
// unless the test says otherwise.

var watchTests = []test{
	{"GetW/DataChanged", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, x, "/n", []byte("a"), coord.Persistent, nil)
		data, st, ch, err := w.GetW(e.ctx, "/n")
		if err != nil || string(data) != "a" || st.Version != 0 {
			t.Fatalf("GetW = %q, version %d, %v", data, st.Version, err)
		}
		mustSet(t, e.ctx, x, "/n", []byte("b"), 0)
		wantEvent(t, ch, coord.EventDataChanged, "/n", "GetW then Set")
	}},
	{"GetW/Deleted", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, x, "/n", nil, coord.Persistent, nil)
		_, _, ch, err := w.GetW(e.ctx, "/n")
		if err != nil {
			t.Fatalf("GetW: %v", err)
		}
		mustDelete(t, e.ctx, x, "/n", 0)
		wantEvent(t, ch, coord.EventDeleted, "/n", "GetW then Delete")
	}},
	{"GetW/ErrNotFound", func(t *testing.T, e *env) {
		w := e.connect(t)
		_, _, _, err := w.GetW(e.ctx, "/missing")
		wantErr(t, err, coord.ErrNotFound, "GetW on a missing node")
	}},
	{"ExistsW/Created", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		ok, st, ch, err := w.ExistsW(e.ctx, "/n")
		if err != nil || ok || st != (coord.Stat{}) {
			t.Fatalf("ExistsW on a missing node = %v, %+v, %v", ok, st, err)
		}
		mustCreate(t, e.ctx, x, "/n", nil, coord.Persistent, nil)
		wantEvent(t, ch, coord.EventCreated, "/n", "ExistsW (missing) then Create")
	}},
	{"ExistsW/CreatedEphemeralSequential", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/q")
		_, _, ch, err := w.ExistsW(e.ctx, "/q/s-0000000000")
		if err != nil {
			t.Fatalf("ExistsW: %v", err)
		}
		got := mustCreate(t, e.ctx, x, "/q/s-", nil, coord.EphemeralSequential, nil)
		if got != "/q/s-0000000000" {
			t.Fatalf("Create = %q, want /q/s-0000000000", got)
		}
		wantEvent(t, ch, coord.EventCreated, got, "ExistsW on the next sequential name")
	}},
	{"ExistsW/DataChanged", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, x, "/n", nil, coord.Persistent, nil)
		ok, _, ch, err := w.ExistsW(e.ctx, "/n")
		if err != nil || !ok {
			t.Fatalf("ExistsW = %v, %v", ok, err)
		}
		mustSet(t, e.ctx, x, "/n", []byte("x"), coord.AnyVersion)
		wantEvent(t, ch, coord.EventDataChanged, "/n", "ExistsW (existing) then Set")
	}},
	{"ExistsW/Deleted", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, x, "/n", nil, coord.Persistent, nil)
		_, _, ch, err := w.ExistsW(e.ctx, "/n")
		if err != nil {
			t.Fatalf("ExistsW: %v", err)
		}
		mustDelete(t, e.ctx, x, "/n", coord.AnyVersion)
		wantEvent(t, ch, coord.EventDeleted, "/n", "ExistsW (existing) then Delete")
	}},
	{"ChildrenW/ChildCreated", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/p")
		kids, _, ch, err := w.ChildrenW(e.ctx, "/p")
		if err != nil || len(kids) != 0 {
			t.Fatalf("ChildrenW = %v, %v", kids, err)
		}
		mustCreate(t, e.ctx, x, "/p/c-", nil, coord.Sequential, nil)
		wantEvent(t, ch, coord.EventChildrenChanged, "/p", "ChildrenW then child Create")
	}},
	{"ChildrenW/ChildDeleted", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/p", "/p/c")
		kids, _, ch, err := w.ChildrenW(e.ctx, "/p")
		if err != nil || len(kids) != 1 {
			t.Fatalf("ChildrenW = %v, %v", kids, err)
		}
		mustDelete(t, e.ctx, x, "/p/c", coord.AnyVersion)
		wantEvent(t, ch, coord.EventChildrenChanged, "/p", "ChildrenW then child Delete")
	}},
	{"ChildrenW/NodeDeleted", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/p")
		_, _, ch, err := w.ChildrenW(e.ctx, "/p")
		if err != nil {
			t.Fatalf("ChildrenW: %v", err)
		}
		mustDelete(t, e.ctx, x, "/p", coord.AnyVersion)
		wantEvent(t, ch, coord.EventDeleted, "/p", "ChildrenW then Delete of the node")
	}},
	{"ChildrenW/ErrNotFound", func(t *testing.T, e *env) {
		w := e.connect(t)
		_, _, _, err := w.ChildrenW(e.ctx, "/missing")
		wantErr(t, err, coord.ErrNotFound, "ChildrenW on a missing node")
	}},
	{"OneShot", func(t *testing.T, e *env) {
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/n", "/p")
		_, _, data, err := w.GetW(e.ctx, "/n")
		if err != nil {
			t.Fatalf("GetW: %v", err)
		}
		_, _, kids, err := w.ChildrenW(e.ctx, "/p")
		if err != nil {
			t.Fatalf("ChildrenW: %v", err)
		}
		// Several changes; each watch delivers the first and is closed.
		for range 3 {
			mustSet(t, e.ctx, x, "/n", []byte("x"), coord.AnyVersion)
			mustCreate(t, e.ctx, x, "/p/c-", nil, coord.Sequential, nil)
		}
		mustDelete(t, e.ctx, x, "/n", coord.AnyVersion)
		wantEvent(t, data, coord.EventDataChanged, "/n", "GetW after three Sets and a Delete")
		wantEvent(t, kids, coord.EventChildrenChanged, "/p", "ChildrenW after three child creates")
	}},
	{"OwnWrite", func(t *testing.T, e *env) {
		s := e.connect(t)
		mkdirs(t, e.ctx, s, "/n")
		_, _, ch, err := s.GetW(e.ctx, "/n")
		if err != nil {
			t.Fatalf("GetW: %v", err)
		}
		mustSet(t, e.ctx, s, "/n", []byte("mine"), 0)
		wantEvent(t, ch, coord.EventDataChanged, "/n", "GetW then Set by the same session")
	}},
	{"SeveralWatchers", func(t *testing.T, e *env) {
		w1, w2, x := e.connect(t), e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/n")
		var chans []<-chan coord.Event
		for _, w := range []coord.Store{w1, w1, w2} {
			_, _, ch, err := w.GetW(e.ctx, "/n")
			if err != nil {
				t.Fatalf("GetW: %v", err)
			}
			chans = append(chans, ch)
			_, _, ch, err = w.ExistsW(e.ctx, "/n")
			if err != nil {
				t.Fatalf("ExistsW: %v", err)
			}
			chans = append(chans, ch)
		}
		mustSet(t, e.ctx, x, "/n", []byte("x"), coord.AnyVersion)
		for _, ch := range chans {
			wantEvent(t, ch, coord.EventDataChanged, "/n", "each of six watches on one node")
		}
	}},
	{"Unrelated", func(t *testing.T, e *env) {
		// Writes that must not fire a watch; then one that must, which
		// must be the watch's first event.
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/a", "/a/c", "/b", "/b/c", "/ab")
		_, _, dataA, err := w.GetW(e.ctx, "/a")
		if err != nil {
			t.Fatalf("GetW /a: %v", err)
		}
		_, _, kidsB, err := w.ChildrenW(e.ctx, "/b")
		if err != nil {
			t.Fatalf("ChildrenW /b: %v", err)
		}
		_, _, existsX, err := w.ExistsW(e.ctx, "/x")
		if err != nil {
			t.Fatalf("ExistsW /x: %v", err)
		}
		_, _, existsAB, err := w.ExistsW(e.ctx, "/ab")
		if err != nil {
			t.Fatalf("ExistsW /ab: %v", err)
		}
		mkdirs(t, e.ctx, x, "/a/new", "/a/c/g", "/b/c/g", "/xy", "/ab/c")
		mustSet(t, e.ctx, x, "/a/c", []byte("child data"), coord.AnyVersion)
		mustSet(t, e.ctx, x, "/b", []byte("own data"), coord.AnyVersion)
		mustSet(t, e.ctx, x, "/b/c", []byte("child data"), coord.AnyVersion)
		mustDelete(t, e.ctx, x, "/a/new", coord.AnyVersion)
		wantQuiet(t, map[string]<-chan coord.Event{
			"GetW /a (child created, deleted and set; grandchild created)": dataA,
			"ChildrenW /b (own data set, grandchild created, child set)":   kidsB,
			"ExistsW /x (sibling /xy created)":                             existsX,
			"ExistsW /ab (child created)":                                  existsAB,
		})
		mustSet(t, e.ctx, x, "/a", []byte("now"), coord.AnyVersion)
		mkdirs(t, e.ctx, x, "/b/d", "/x")
		mustDelete(t, e.ctx, x, "/ab/c", coord.AnyVersion)
		mustDelete(t, e.ctx, x, "/ab", coord.AnyVersion)
		wantEvent(t, dataA, coord.EventDataChanged, "/a", "GetW /a")
		wantEvent(t, kidsB, coord.EventChildrenChanged, "/b", "ChildrenW /b")
		wantEvent(t, existsX, coord.EventCreated, "/x", "ExistsW /x")
		wantEvent(t, existsAB, coord.EventDeleted, "/ab", "ExistsW /ab")
	}},
	{"ReadAfterEventSeesChange", func(t *testing.T, e *env) {
		// The usual loop: on an event, read again (re-watching) and see
		// the change that fired it.
		w, x := e.connect(t), e.connect(t)
		mkdirs(t, e.ctx, x, "/n")
		for i := range 5 {
			data, _, ch, err := w.GetW(e.ctx, "/n")
			if err != nil {
				t.Fatalf("GetW #%d: %v", i, err)
			}
			want := []byte{byte(i)}
			if i == 0 {
				want = nil
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("round %d: read %v after the event, want %v", i, data, want)
			}
			mustSet(t, e.ctx, x, "/n", []byte{byte(i + 1)}, int32(i))
			if ev := nextEvent(t, ch, "GetW round"); ev.Type != coord.EventDataChanged {
				t.Fatalf("round %d: event %v, want %v", i, ev.Type, coord.EventDataChanged)
			}
		}
	}},
}
