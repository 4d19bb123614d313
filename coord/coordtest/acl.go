package coordtest

import (
	"fmt"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
)

var (
	credA  = coord.Credential{User: "alice", Password: "alice-secret"}
	credB  = coord.Credential{User: "bob", Password: "bob-secret"}
	wrongA = coord.Credential{User: "alice", Password: "not-her-secret"}
)

// wantDenied checks that s may not read, list, write or add children to p
// (each with ErrNoAuth) but may test its existence.
func wantDenied(t *testing.T, e *env, s coord.Store, p, who string) {
	t.Helper()
	_, _, err := s.Get(e.ctx, p)
	wantErr(t, err, coord.ErrNoAuth, who+": Get "+p)
	_, _, _, err = s.GetW(e.ctx, p)
	wantErr(t, err, coord.ErrNoAuth, who+": GetW "+p)
	_, err = s.Set(e.ctx, p, []byte("intruder"), coord.AnyVersion)
	wantErr(t, err, coord.ErrNoAuth, who+": Set "+p)
	_, _, err = s.Children(e.ctx, p)
	wantErr(t, err, coord.ErrNoAuth, who+": Children "+p)
	_, _, _, err = s.ChildrenW(e.ctx, p)
	wantErr(t, err, coord.ErrNoAuth, who+": ChildrenW "+p)
	for _, mode := range allModes {
		_, err = s.Create(e.ctx, p+"/child", nil, mode, coord.WorldACL(coord.PermAll))
		wantErr(t, err, coord.ErrNoAuth, who+": Create under "+p+" as "+mode.String())
	}
	_, err = s.Multi(e.ctx, &coord.CheckOp{Path: p, Version: coord.AnyVersion})
	wantMultiError(t, err, 0, coord.ErrNoAuth, who+": Multi check "+p)
	// Exists needs no permission, as in ZooKeeper.
	if ok, _, err := s.Exists(e.ctx, p); err != nil || !ok {
		t.Errorf("%s: Exists %s = %v, %v; want true (no permission needed)", who, p, ok, err)
	}
	if ok, _, _, err := s.ExistsW(e.ctx, p); err != nil || !ok {
		t.Errorf("%s: ExistsW %s = %v, %v; want true (no permission needed)", who, p, ok, err)
	}
}

var aclTests = []test{
	{"DefaultACLIsFirstCredential", func(t *testing.T, e *env) {
		owner := e.connect(t, credA, credB)
		mustCreate(t, e.ctx, owner, "/mine", []byte("m"), coord.Persistent, nil)
		wantDenied(t, e, e.connect(t), "/mine", "unauthenticated session (nil ACL = coord.DefaultACL)")
		wantDenied(t, e, e.connect(t, credB), "/mine", "session authenticated as bob, the owner's second credential")
		if data, _, err := e.connect(t, credA).Get(e.ctx, "/mine"); err != nil || string(data) != "m" {
			t.Errorf("alice: Get /mine = %q, %v", data, err)
		}
		anon := e.connect(t)
		mustCreate(t, e.ctx, anon, "/open", []byte("o"), coord.Persistent, nil)
		if _, err := e.connect(t, credB).Set(e.ctx, "/open", []byte("x"), coord.AnyVersion); err != nil {
			t.Errorf("node created with nil ACL by an anonymous session must be open to all: %v", err)
		}
	}},
	{"DigestOnly", func(t *testing.T, e *env) {
		owner := e.connect(t, credA)
		mustCreate(t, e.ctx, owner, "/secret", []byte("s"), coord.Persistent, []coord.ACL{coord.DigestACL(coord.PermAll, credA)})
		wantDenied(t, e, e.connect(t), "/secret", "unauthenticated session")
		wantDenied(t, e, e.connect(t, wrongA), "/secret", "session with alice's name and a wrong password")
		wantDenied(t, e, e.connect(t, credB), "/secret", "session authenticated as bob")
		for i, s := range []coord.Store{owner, e.connect(t, credA), e.connect(t, credB, credA)} {
			who := fmt.Sprintf("session %d holding alice's credential", i)
			if data, _, err := s.Get(e.ctx, "/secret"); err != nil || string(data) != "s" {
				t.Errorf("%s: Get = %q, %v", who, data, err)
			}
			if _, err := s.Set(e.ctx, "/secret", []byte("s"), coord.AnyVersion); err != nil {
				t.Errorf("%s: Set: %v", who, err)
			}
			child := fmt.Sprintf("/secret/c%d", i)
			if _, err := s.Create(e.ctx, child, nil, coord.Persistent, coord.WorldACL(coord.PermAll)); err != nil {
				t.Errorf("%s: Create child: %v", who, err)
			}
			if _, _, err := s.Children(e.ctx, "/secret"); err != nil {
				t.Errorf("%s: Children: %v", who, err)
			}
			if err := s.Delete(e.ctx, child, coord.AnyVersion); err != nil {
				t.Errorf("%s: Delete child: %v", who, err)
			}
		}
	}},
	{"WorldReadOnly", func(t *testing.T, e *env) {
		creator, anon, alice := e.connect(t), e.connect(t), e.connect(t, credA)
		mustCreate(t, e.ctx, creator, "/ro", []byte("r"), coord.Persistent, coord.WorldACL(coord.PermRead))
		for who, s := range map[string]coord.Store{"creator": creator, "another session": anon, "alice": alice} {
			if data, _, err := s.Get(e.ctx, "/ro"); err != nil || string(data) != "r" {
				t.Errorf("%s: Get /ro = %q, %v", who, data, err)
			}
			if _, _, err := s.Children(e.ctx, "/ro"); err != nil {
				t.Errorf("%s: Children /ro: %v", who, err)
			}
			_, err := s.Set(e.ctx, "/ro", []byte("w"), coord.AnyVersion)
			wantErr(t, err, coord.ErrNoAuth, who+": Set /ro")
			_, err = s.Create(e.ctx, "/ro/c", nil, coord.Persistent, nil)
			wantErr(t, err, coord.ErrNoAuth, who+": Create under /ro")
		}
		if data, st := mustGet(t, e.ctx, creator, "/ro"); string(data) != "r" || st.Version != 0 {
			t.Errorf("/ro changed: %q version %d", data, st.Version)
		}
	}},
	{"MixedEntries", func(t *testing.T, e *env) {
		alice, anon, bob := e.connect(t, credA), e.connect(t), e.connect(t, credB)
		acl := []coord.ACL{coord.DigestACL(coord.PermAll, credA), coord.WorldACL(coord.PermRead)[0]}
		mustCreate(t, e.ctx, alice, "/mixed", []byte("m"), coord.Persistent, acl)
		for who, s := range map[string]coord.Store{"anonymous": anon, "bob": bob} {
			if data, _, err := s.Get(e.ctx, "/mixed"); err != nil || string(data) != "m" {
				t.Errorf("%s: Get = %q, %v (world may read)", who, data, err)
			}
			_, err := s.Set(e.ctx, "/mixed", nil, coord.AnyVersion)
			wantErr(t, err, coord.ErrNoAuth, who+": Set")
		}
		mustSet(t, e.ctx, alice, "/mixed", []byte("m2"), 0)
	}},
	{"CreateNeedsParentCreatePermission", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/nocreate", nil, coord.Persistent, coord.WorldACL(coord.PermAll&^coord.PermCreate))
		for _, mode := range allModes {
			_, err := s.Create(e.ctx, "/nocreate/c", nil, mode, nil)
			wantErr(t, err, coord.ErrNoAuth, "Create as "+mode.String()+" under a node without Create permission")
		}
		_, err := s.Multi(e.ctx, &coord.CreateOp{Path: "/ok", Mode: coord.Persistent}, &coord.CreateOp{Path: "/nocreate/c", Mode: coord.Persistent})
		wantMultiError(t, err, 1, coord.ErrNoAuth, "Multi create under a node without Create permission")
		mustExist(t, e.ctx, s, "/ok", false)
		// The node's own permissions still apply to itself.
		mustSet(t, e.ctx, s, "/nocreate", []byte("w"), 0)
	}},
	{"DeleteNeedsParentDeletePermission", func(t *testing.T, e *env) {
		s, alice := e.connect(t), e.connect(t, credA)
		mustCreate(t, e.ctx, s, "/dir", nil, coord.Persistent, coord.WorldACL(coord.PermRead|coord.PermCreate))
		mustCreate(t, e.ctx, s, "/dir/c", nil, coord.Persistent, coord.WorldACL(coord.PermAll))
		wantErr(t, s.Delete(e.ctx, "/dir/c", coord.AnyVersion), coord.ErrNoAuth, "Delete under a parent without Delete permission")
		_, err := s.Multi(e.ctx, &coord.DeleteOp{Path: "/dir/c", Version: coord.AnyVersion})
		wantMultiError(t, err, 0, coord.ErrNoAuth, "Multi delete under a parent without Delete permission")
		mustExist(t, e.ctx, s, "/dir/c", true)
		// It is the parent's permission that counts, not the node's: a node
		// only alice may touch can be deleted by anyone from an open parent.
		mkdirs(t, e.ctx, s, "/open")
		mustCreate(t, e.ctx, alice, "/open/alices", nil, coord.Persistent, []coord.ACL{coord.DigestACL(coord.PermAll, credA)})
		mustDelete(t, e.ctx, s, "/open/alices", coord.AnyVersion)
		mustExist(t, e.ctx, s, "/open/alices", false)
	}},
	{"WriteNeedsWritePermission", func(t *testing.T, e *env) {
		s := e.connect(t)
		mustCreate(t, e.ctx, s, "/nowrite", []byte("x"), coord.Persistent, coord.WorldACL(coord.PermAll&^coord.PermWrite))
		_, err := s.Set(e.ctx, "/nowrite", nil, coord.AnyVersion)
		wantErr(t, err, coord.ErrNoAuth, "Set without Write permission")
		_, err = s.Multi(e.ctx, &coord.CreateOp{Path: "/ok", Mode: coord.Persistent}, &coord.SetOp{Path: "/nowrite", Version: coord.AnyVersion})
		wantMultiError(t, err, 1, coord.ErrNoAuth, "Multi set without Write permission")
		mustExist(t, e.ctx, s, "/ok", false)
		// Reading, adding and removing children are other permissions.
		mustGet(t, e.ctx, s, "/nowrite")
		mustCreate(t, e.ctx, s, "/nowrite/c", nil, coord.Persistent, nil)
		mustDelete(t, e.ctx, s, "/nowrite/c", coord.AnyVersion)
	}},
	{"WatchEventsNeedRead", func(t *testing.T, e *env) {
		// ZooKeeper (3.6+) tells a watcher of a change only if its session
		// may read the node concerned (for a child event: the parent). The
		// watch is used up silently otherwise: set watches on nodes you can
		// read.
		alice, anon := e.connect(t, credA), e.connect(t)
		private := []coord.ACL{coord.DigestACL(coord.PermAll, credA)}
		mkdirs(t, e.ctx, anon, "/open")
		mustCreate(t, e.ctx, alice, "/gone", nil, coord.Persistent, private)
		_, _, created, err := anon.ExistsW(e.ctx, "/open/p")
		if err != nil {
			t.Fatalf("ExistsW /open/p: %v", err)
		}
		_, _, deleted, err := anon.ExistsW(e.ctx, "/gone")
		if err != nil {
			t.Fatalf("ExistsW /gone: %v", err)
		}
		_, _, kids, err := anon.ChildrenW(e.ctx, "/open")
		if err != nil {
			t.Fatalf("ChildrenW /open: %v", err)
		}
		_, _, aliceSees, err := alice.ExistsW(e.ctx, "/open/p")
		if err != nil {
			t.Fatalf("ExistsW /open/p (alice): %v", err)
		}
		mustCreate(t, e.ctx, alice, "/open/p", nil, coord.Persistent, private)
		mustDelete(t, e.ctx, alice, "/gone", coord.AnyVersion)
		wantEvent(t, kids, coord.EventChildrenChanged, "/open", "ChildrenW on a readable parent when an unreadable child is created")
		wantEvent(t, aliceSees, coord.EventCreated, "/open/p", "ExistsW by a session that may read the new node")
		wantQuiet(t, map[string]<-chan coord.Event{
			"ExistsW by a session that may not read the created node": created,
			"ExistsW by a session that may not read the deleted node": deleted,
		})
		if err := anon.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wantNotWatching(t, created, "/open/p", coord.ErrClosed, "withheld ExistsW at Close")
		wantNotWatching(t, deleted, "/gone", coord.ErrClosed, "withheld ExistsW at Close")
	}},
	{"DefaultACLWithoutCredentialsIsOpen", func(t *testing.T, e *env) {
		a, b := e.connect(t), e.connect(t)
		mustCreate(t, e.ctx, a, "/n", []byte("x"), coord.Persistent, nil)
		mustGet(t, e.ctx, b, "/n")
		mustSet(t, e.ctx, b, "/n", []byte("y"), 0)
		mustCreate(t, e.ctx, b, "/n/c", nil, coord.Persistent, nil)
		mustDelete(t, e.ctx, b, "/n/c", 0)
		mustDelete(t, e.ctx, b, "/n", 1)
	}},
}
