//go:build integration

package zkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/internal/zktest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestBasics covers create/get/set/delete/children/exists, the chroot,
// sequential names and error mapping against the real ensemble.
func TestBasics(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	root := uniqueRoot(t)
	s, _ := openTest(t, e, Config{Root: root})

	p, err := s.Create(ctx, "/a", []byte("x"), coord.Persistent, nil)
	if err != nil || p != "/a" {
		t.Fatalf("Create /a = %q, %v", p, err)
	}
	if _, err := s.Create(ctx, "/a", nil, coord.Persistent, nil); !errors.Is(err, coord.ErrExists) {
		t.Fatalf("Create existing: %v, want ErrExists", err)
	}
	if _, err := s.Create(ctx, "/missing/b", nil, coord.Persistent, nil); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Create without parent: %v, want ErrNotFound", err)
	}
	data, st, err := s.Get(ctx, "/a")
	if err != nil || string(data) != "x" || st.Version != 0 || st.DataLength != 1 || st.Ctime.IsZero() {
		t.Fatalf("Get /a = %q %+v %v", data, st, err)
	}
	st, err = s.Set(ctx, "/a", []byte("yy"), 0)
	if err != nil || st.Version != 1 {
		t.Fatalf("Set = %+v, %v", st, err)
	}
	if _, err := s.Set(ctx, "/a", nil, 0); !errors.Is(err, coord.ErrBadVersion) {
		t.Fatalf("Set stale version: %v, want ErrBadVersion", err)
	}
	for i := 0; i < 3; i++ {
		q, err := s.Create(ctx, "/a/job-", nil, coord.Sequential, nil)
		if err != nil || q != fmt.Sprintf("/a/job-%010d", i) {
			t.Fatalf("sequential create %d = %q, %v", i, q, err)
		}
	}
	if _, err := s.Create(ctx, "/a/z", nil, coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	kids, st, err := s.Children(ctx, "/a")
	if err != nil || strings.Join(kids, ",") != "job-0000000000,job-0000000001,job-0000000002,z" || st.NumChildren != 4 {
		t.Fatalf("Children = %v %+v %v", kids, st, err)
	}
	if err := s.Delete(ctx, "/a", coord.AnyVersion); !errors.Is(err, coord.ErrNotEmpty) {
		t.Fatalf("Delete non-empty: %v, want ErrNotEmpty", err)
	}
	e1, err := s.Create(ctx, "/eph", nil, coord.Ephemeral, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, e1+"/child", nil, coord.Persistent, nil); !errors.Is(err, coord.ErrNoChildrenForEphemerals) {
		t.Fatalf("child of ephemeral: %v", err)
	}
	ok, st, err := s.Exists(ctx, "/eph")
	if err != nil || !ok || st.EphemeralOwner != s.SessionID() {
		t.Fatalf("Exists /eph = %v %+v %v (session %#x)", ok, st, err, s.SessionID())
	}
	ok, st, err = s.Exists(ctx, "/nope")
	if err != nil || ok || st != (coord.Stat{}) {
		t.Fatalf("Exists /nope = %v %+v %v", ok, st, err)
	}
	for _, bad := range []string{"", "a", "/a/", "/a//b", "/a/../b", "/a/./b"} {
		if _, _, err := s.Get(ctx, bad); !errors.Is(err, coord.ErrInvalidPath) {
			t.Errorf("Get %q: %v, want ErrInvalidPath", bad, err)
		}
	}
	if _, err := s.Create(ctx, "/m", nil, coord.CreateMode(9), nil); !errors.Is(err, ErrInvalidMode) {
		t.Errorf("bad mode: %v", err)
	}
	if _, err := s.Create(ctx, "/big", make([]byte, 2<<20), coord.Persistent, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("2 MiB create: %v, want ErrTooLarge", err)
	}
	if err := s.Sync(ctx, "/a"); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// The chroot is real: a store without root sees the nodes under it.
	raw, _ := openTest(t, e, Config{Root: "/"})
	if _, _, err := raw.Get(ctx, root+"/a/z"); err != nil {
		t.Fatalf("unchrooted Get %s/a/z: %v", root, err)
	}
	if err := s.Delete(ctx, "/a/z", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "/a/z"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Get deleted: %v", err)
	}
	// Canceled contexts are honoured before sending.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Create(cctx, "/never", nil, coord.Persistent, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with canceled ctx: %v", err)
	}
	if ok, _, _ := s.Exists(ctx, "/never"); ok {
		t.Fatal("canceled Create was applied")
	}
}

func TestWatches(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	s, _ := openTest(t, e, Config{})
	other, _ := openTest(t, e, Config{Root: "/"})
	root := s.root

	_, _, wExists, err := s.ExistsW(ctx, "/w")
	if err != nil {
		t.Fatal(err)
	}
	_, _, wKids, err := s.ChildrenW(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, root+"/w", []byte("1"), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, wExists, coord.Event{Type: coord.EventCreated, Path: "/w"})
	expectEvent(t, wKids, coord.Event{Type: coord.EventChildrenChanged, Path: "/"})

	_, _, wData, err := s.GetW(ctx, "/w")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Set(ctx, root+"/w", []byte("2"), coord.AnyVersion); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, wData, coord.Event{Type: coord.EventDataChanged, Path: "/w"})

	_, _, wDel, err := s.GetW(ctx, "/w")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(ctx, root+"/w", coord.AnyVersion); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, wDel, coord.Event{Type: coord.EventDeleted, Path: "/w"})

	if _, _, ch, err := s.GetW(ctx, "/w"); !errors.Is(err, coord.ErrNotFound) || ch != nil {
		t.Fatalf("GetW on missing node: %v, %v", ch, err)
	}

	// Close ends pending watches with EventNotWatching(ErrClosed).
	_, _, pending, err := s.ExistsW(ctx, "/later")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ev := expectEvent(t, pending, coord.Event{Type: coord.EventNotWatching, Path: "/later"})
	if !errors.Is(ev.Err, coord.ErrClosed) {
		t.Fatalf("watch after Close: %+v, want ErrClosed", ev)
	}
	if _, _, err := s.Get(ctx, "/"); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if s.SessionID() != 0 {
		t.Fatal("SessionID after Close is not 0")
	}
}

// expectEvent receives exactly one event matching want's Type and Path and
// checks that the channel is closed after it.
func expectEvent(t *testing.T, ch <-chan coord.Event, want coord.Event) coord.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok || ev.Type != want.Type || ev.Path != want.Path {
			t.Fatalf("event %+v (ok=%v), want %+v", ev, ok, want)
		}
		select {
		case extra, ok := <-ch:
			if ok {
				t.Fatalf("second event %+v on a one-shot watch", extra)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch channel not closed after its event")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no %v event on %s", want.Type, want.Path)
	}
	return coord.Event{}
}

func TestMulti(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	s, _ := openTest(t, e, Config{})
	if _, err := s.Create(ctx, "/q", nil, coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	res, err := s.Multi(ctx,
		&coord.CreateOp{Path: "/q/job-", Data: []byte("j"), Mode: coord.Sequential},
		&coord.CreateOp{Path: "/q/plain", Mode: coord.Persistent},
		&coord.SetOp{Path: "/q", Data: []byte("v"), Version: 0},
		&coord.CheckOp{Path: "/q/plain", Version: coord.AnyVersion},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[0].Path != "/q/job-0000000000" || res[1].Path != "/q/plain" || res[2].Stat.Version != 1 {
		t.Fatalf("Multi results %+v", res)
	}
	_, err = s.Multi(ctx,
		&coord.DeleteOp{Path: "/q/plain", Version: coord.AnyVersion},
		&coord.CheckOp{Path: "/q", Version: 7},
		&coord.CreateOp{Path: "/q/other", Mode: coord.Persistent},
	)
	var me *coord.MultiError
	if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, coord.ErrBadVersion) {
		t.Fatalf("failed Multi: %v, want MultiError at 1 with ErrBadVersion", err)
	}
	if ok, _, _ := s.Exists(ctx, "/q/plain"); !ok {
		t.Fatal("failed Multi applied its delete")
	}
	_, err = s.Multi(ctx, &coord.CheckOp{Path: "/q", Version: coord.AnyVersion}, &coord.CreateOp{Path: "/q/x/"})
	if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, coord.ErrInvalidPath) {
		t.Fatalf("Multi with bad path: %v", err)
	}
	_, err = s.Multi(ctx, &coord.CreateOp{Path: "/q/a"}, &coord.CreateOp{Path: "/q/a"})
	if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, coord.ErrExists) {
		t.Fatalf("Multi creating twice: %v", err)
	}
	if res, err := s.Multi(ctx); err != nil || len(res) != 0 {
		t.Fatalf("empty Multi: %v %v", res, err)
	}
}

func TestACL(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	root := uniqueRoot(t)
	fed := coord.Credential{User: "fed", Password: "fed-secret"}
	vc := coord.Credential{User: "vc1", Password: "vc-secret"}
	peer, _ := openTest(t, e, Config{Root: root, Credentials: []coord.Credential{fed}})
	if _, err := peer.Create(ctx, "/private", []byte("p"), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	shared := []coord.ACL{coord.DigestACL(coord.PermAll, fed), coord.DigestACL(coord.PermRead|coord.PermWrite, vc)}
	if _, err := peer.Create(ctx, "/vc", []byte("v"), coord.Persistent, shared); err != nil {
		t.Fatal(err)
	}
	agent, _ := openTest(t, e, Config{Root: root, Credentials: []coord.Credential{vc}})
	if _, _, err := agent.Get(ctx, "/private"); !errors.Is(err, coord.ErrNoAuth) {
		t.Fatalf("agent reads peer's node: %v, want ErrNoAuth", err)
	}
	if _, err := agent.Set(ctx, "/vc", []byte("w"), coord.AnyVersion); err != nil {
		t.Fatalf("agent writes its VC node: %v", err)
	}
	if err := agent.Delete(ctx, "/vc", coord.AnyVersion); !errors.Is(err, coord.ErrNoAuth) {
		t.Fatalf("agent deletes without delete permission on the parent: %v", err)
	}
	anon, _ := openTest(t, e, Config{Root: root})
	if _, _, err := anon.Get(ctx, "/vc"); !errors.Is(err, coord.ErrNoAuth) {
		t.Fatalf("anonymous read: %v, want ErrNoAuth", err)
	}
	if _, err := peer.Create(ctx, "/bad", nil, coord.Persistent, []coord.ACL{}); !errors.Is(err, ErrInvalidACL) {
		t.Fatalf("empty ACL: %v", err)
	}
	// Credentials survive a reconnect: kill the peer's connection by
	// restarting its server is too slow for a unit; expiry re-adds them too
	// (TestExpiry).
}

// TestLocalServer checks that a Store attaches to its LocalServer first,
// seen by the server itself (4lw cons lists the session).
func TestLocalServer(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	for id := 1; id <= 3; id++ {
		s, _ := openTest(t, e, Config{LocalServer: e.Addr(id), ReconnectBackoff: 20 * time.Millisecond})
		if s.Server() != e.Addr(id) {
			t.Fatalf("LocalServer %s: attached to %s", e.Addr(id), s.Server())
		}
		out, err := zktest.FourLetter(ctx, e.Addr(id), "cons")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, fmt.Sprintf("sid=%#x", s.SessionID())) {
			t.Fatalf("server %d's cons does not list session %#x:\n%s", id, s.SessionID(), out)
		}
	}
}

// TestExpiry ends a Store's session from outside and checks what its
// owner sees: Expired then Connected with a new id, ephemerals gone,
// watches ended with ErrSessionExpired, credentials still in effect.
func TestExpiry(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	cred := coord.Credential{User: "fed", Password: "pw"}
	s, sn := openTest(t, e, Config{Credentials: []coord.Credential{cred}})
	events := make(chan coord.SessionEvent, 16)
	cancel := s.OnSession(func(ev coord.SessionEvent) { events <- ev })
	defer cancel()
	if _, err := s.Create(ctx, "/live", nil, coord.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/data", []byte("d"), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	_, _, w, err := s.GetW(ctx, "/data")
	if err != nil {
		t.Fatal(err)
	}
	old := s.SessionID()
	t0 := time.Now()
	expire(t, e, s, sn)
	t.Logf("session %#x expired and replaced by %#x in %v", old, s.SessionID(), time.Since(t0).Round(time.Millisecond))

	ev := expectEvent(t, w, coord.Event{Type: coord.EventNotWatching, Path: "/data"})
	if !errors.Is(ev.Err, coord.ErrSessionExpired) {
		t.Fatalf("watch across expiry: %+v, want ErrSessionExpired", ev)
	}
	var got []coord.SessionState
	for len(got) == 0 || got[len(got)-1] != coord.StateConnected {
		select {
		case sev := <-events:
			got = append(got, sev.State)
			if sev.State == coord.StateConnected && sev.SessionID != s.SessionID() {
				t.Fatalf("Connected event with session %#x, store has %#x", sev.SessionID, s.SessionID())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("session events so far %v: no Connected", got)
		}
	}
	if !containsState(got, coord.StateExpired) {
		t.Fatalf("session events %v: no Expired", got)
	}
	if ok, _, err := s.Exists(ctx, "/live"); err != nil || ok {
		t.Fatalf("ephemeral after expiry: exists=%v err=%v", ok, err)
	}
	// The default ACL is digest-only, so this read proves the credential
	// was re-added to the new session.
	if d, _, err := s.Get(ctx, "/data"); err != nil || !bytes.Equal(d, []byte("d")) {
		t.Fatalf("Get after expiry: %q %v", d, err)
	}
}

func containsState(ss []coord.SessionState, st coord.SessionState) bool {
	for _, s := range ss {
		if s == st {
			return true
		}
	}
	return false
}

// TestExpiryPinnedServer is the natural way to lose a session: the only
// server a Store may use is down longer than the session timeout. When it
// returns, the Store learns its session expired and opens a new one.
func TestExpiryPinnedServer(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := leader%3 + 1 // a follower: the ensemble keeps its quorum
	s, _ := openTest(t, e, Config{Servers: []string{e.Addr(id)}, SessionTimeout: 2 * time.Second, ReconnectBackoff: 20 * time.Millisecond})
	if _, err := s.Create(ctx, "/live", nil, coord.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	events := make(chan coord.SessionEvent, 64)
	defer s.OnSession(func(ev coord.SessionEvent) { events <- ev })()
	old := s.SessionID()
	if err := e.Kill(id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !e.Running(id) {
			_ = e.Start(id)
		}
		_ = e.WaitServing(context.Background(), id)
	})
	waitEvent(t, events, coord.StateDisconnected)
	// While the only server is down, calls fail fast as unavailable.
	waitFor(t, ctx, "unavailable", func() bool {
		_, _, err := s.Get(ctx, "/")
		return errors.Is(err, coord.ErrUnavailable)
	})
	// The ensemble expires the session after its timeout (2 s, as granted
	// by tickTime 1 s); watch it from another store.
	watcher, _ := openTest(t, e, Config{Root: s.root, Servers: []string{e.Addr(leader)}})
	waitFor(t, ctx, "ephemeral removal", func() bool {
		ok, _, err := watcher.Exists(ctx, "/live")
		return err == nil && !ok
	})
	if err := e.Start(id); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, coord.StateExpired)
	sev := waitEvent(t, events, coord.StateConnected)
	if sev.SessionID == old || sev.SessionID == 0 {
		t.Fatalf("new session id %#x (old %#x)", sev.SessionID, old)
	}
	if _, err := s.Create(ctx, "/live", nil, coord.Ephemeral, nil); err != nil {
		t.Fatalf("re-create ephemeral under the new session: %v", err)
	}
}

func waitEvent(t *testing.T, ch <-chan coord.SessionEvent, want coord.SessionState) coord.SessionEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.State == want {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v session event", want)
		}
	}
}

// TestOpenFails checks that Open gives up when ctx ends and leaks nothing.
func TestOpenFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Open(ctx, Config{Servers: []string{"127.0.0.1:1"}, ReconnectBackoff: 10 * time.Millisecond})
	if !errors.Is(err, coord.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open on a closed port: %v", err)
	}
}

// TestWatchNeedsReadPermission pins a ZooKeeper 3.8 behaviour the contract
// suite does not cover: a session may set a watch on a node it cannot read
// (Exists needs no permission), but the watch never fires for it.
func TestWatchNeedsReadPermission(t *testing.T) {
	e := sharedEnsemble(t)
	ctx := ctxT(t)
	root := uniqueRoot(t)
	alice := coord.Credential{User: "alice", Password: "pw"}
	owner, _ := openTest(t, e, Config{Root: root, DefaultACL: coord.WorldACL(coord.PermAll), Credentials: []coord.Credential{alice}})
	anon, _ := openTest(t, e, Config{Root: root})
	if _, err := owner.Create(ctx, "/secret", nil, coord.Persistent, []coord.ACL{coord.DigestACL(coord.PermAll, alice)}); err != nil {
		t.Fatal(err)
	}
	ok, _, hidden, err := anon.ExistsW(ctx, "/secret")
	if err != nil || !ok {
		t.Fatalf("ExistsW without permission: %v %v", ok, err)
	}
	_, _, parent, err := anon.ChildrenW(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Delete(ctx, "/secret", coord.AnyVersion); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, parent, coord.Event{Type: coord.EventChildrenChanged, Path: "/"})
	select {
	case ev := <-hidden:
		t.Fatalf("watch without read permission fired: %+v (ZooKeeper changed?)", ev)
	case <-time.After(300 * time.Millisecond):
	}
}
