package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/coordtest"
	"github.com/musubi-fabric/musubi/coord/memstore"
)

func harness() coordtest.Harness {
	return coordtest.Harness{NewCluster: func(t *testing.T) coordtest.Cluster {
		srv := memstore.New()
		return coordtest.Cluster{
			Connect: func(t *testing.T, creds ...coord.Credential) coord.Store {
				st := srv.Connect(memstore.WithCredentials(creds...))
				t.Cleanup(func() { _ = st.Close() })
				return st
			},
			Expire: func(t *testing.T, s coord.Store) {
				st, ok := s.(*memstore.Store)
				if !ok {
					t.Fatalf("Expire: %T is not a *memstore.Store", s)
				}
				st.Expire()
			},
		}
	}}
}

func TestContract(t *testing.T) {
	coordtest.Run(t, harness())
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func connect(t *testing.T, srv *memstore.Server, opts ...memstore.Option) *memstore.Store {
	t.Helper()
	st := srv.Connect(opts...)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestInjectConnectionLoss: each mutating call fails with ErrConnectionLost
// and is or is not applied; coord.Resolve with a probe that reads the
// caller's record tells which.
func TestInjectConnectionLoss(t *testing.T) {
	type op struct {
		name  string
		setup func(t *testing.T, c context.Context, s *memstore.Store)
		do    func(c context.Context, s *memstore.Store) error
		probe func(c context.Context, s *memstore.Store) (bool, error)
	}
	const token = "tok42"
	ops := []op{
		{
			name:  "CreateSequential",
			setup: func(t *testing.T, c context.Context, s *memstore.Store) { mustCreate(t, c, s, "/q", nil) },
			do: func(c context.Context, s *memstore.Store) error {
				_, err := s.Create(c, "/q/job-"+token+"-", []byte("x"), coord.Sequential, nil)
				return err
			},
			probe: func(c context.Context, s *memstore.Store) (bool, error) {
				name, err := coord.FindChild(c, s, "/q", token)
				return name != "", err
			},
		},
		{
			name:  "Set",
			setup: func(t *testing.T, c context.Context, s *memstore.Store) { mustCreate(t, c, s, "/n", []byte("old")) },
			do: func(c context.Context, s *memstore.Store) error {
				_, err := s.Set(c, "/n", []byte(token), 0)
				return err
			},
			probe: func(c context.Context, s *memstore.Store) (bool, error) {
				data, _, err := s.Get(c, "/n")
				return string(data) == token, err
			},
		},
		{
			name:  "Delete",
			setup: func(t *testing.T, c context.Context, s *memstore.Store) { mustCreate(t, c, s, "/n", nil) },
			do:    func(c context.Context, s *memstore.Store) error { return s.Delete(c, "/n", 0) },
			probe: func(c context.Context, s *memstore.Store) (bool, error) {
				ok, _, err := s.Exists(c, "/n")
				return !ok, err
			},
		},
		{
			name: "Multi",
			setup: func(t *testing.T, c context.Context, s *memstore.Store) {
				mustCreate(t, c, s, "/job", nil)
				mustCreate(t, c, s, "/claims", nil)
			},
			do: func(c context.Context, s *memstore.Store) error {
				_, err := s.Multi(c,
					&coord.CheckOp{Path: "/job", Version: 0},
					&coord.CreateOp{Path: "/claims/job", Data: []byte(token), Mode: coord.Ephemeral})
				return err
			},
			probe: func(c context.Context, s *memstore.Store) (bool, error) {
				data, _, err := s.Get(c, "/claims/job")
				if errors.Is(err, coord.ErrNotFound) {
					return false, nil
				}
				return string(data) == token, err
			},
		},
	}
	for _, o := range ops {
		for _, applied := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/applied=%v", o.name, applied), func(t *testing.T) {
				c := ctx(t)
				s := connect(t, memstore.New())
				o.setup(t, c, s)
				s.InjectConnectionLoss(1, applied)
				err := o.do(c, s)
				if !errors.Is(err, coord.ErrConnectionLost) || !coord.Retryable(err) {
					t.Fatalf("call with injected loss: %v, want ErrConnectionLost", err)
				}
				got, err := coord.Resolve(c, s, "/", func(c context.Context) (bool, error) { return o.probe(c, s) })
				if err != nil || got != applied {
					t.Fatalf("Resolve = %v, %v; want %v", got, err, applied)
				}
				if !applied {
					// Not applied, so the call may simply be retried.
					if err := o.do(c, s); err != nil {
						t.Fatalf("retry after an unapplied loss: %v", err)
					}
					if ok, err := o.probe(c, s); err != nil || !ok {
						t.Fatalf("probe after the retry = %v, %v", ok, err)
					}
				}
			})
		}
	}
}

func mustCreate(t *testing.T, c context.Context, s coord.Store, p string, data []byte) {
	t.Helper()
	if _, err := s.Create(c, p, data, coord.Persistent, nil); err != nil {
		t.Fatalf("Create %s: %v", p, err)
	}
}

func TestInjectConnectionLossCount(t *testing.T) {
	c := ctx(t)
	s := connect(t, memstore.New())
	mustCreate(t, c, s, "/n", nil)
	s.InjectConnectionLoss(2, false)
	// Reads and Sync are not mutating calls: they neither fail nor use up
	// the injection.
	if _, _, err := s.Get(c, "/n"); err != nil {
		t.Fatalf("Get during injection: %v", err)
	}
	if err := s.Sync(c, "/n"); err != nil {
		t.Fatalf("Sync during injection: %v", err)
	}
	for i := range 2 {
		if _, err := s.Set(c, "/n", []byte("x"), coord.AnyVersion); !errors.Is(err, coord.ErrConnectionLost) {
			t.Fatalf("Set %d: %v, want ErrConnectionLost", i, err)
		}
	}
	st, err := s.Set(c, "/n", []byte("x"), coord.AnyVersion)
	if err != nil || st.Version != 1 {
		t.Fatalf("third Set = version %d, %v; want version 1 (the two lost ones not applied)", st.Version, err)
	}
	s.InjectConnectionLoss(5, true)
	s.InjectConnectionLoss(0, true) // cancels
	if _, err := s.Set(c, "/n", nil, coord.AnyVersion); err != nil {
		t.Fatalf("Set after cancelling the injection: %v", err)
	}
	// An applied loss still applies a call that fails: the outcome is
	// hidden, nothing else.
	s.InjectConnectionLoss(1, true)
	if _, err := s.Create(c, "/n", nil, coord.Persistent, nil); !errors.Is(err, coord.ErrConnectionLost) {
		t.Fatalf("Create of an existing node with injected loss: %v", err)
	}
	if _, err := s.Create(c, "/m", nil, coord.Persistent, nil); err != nil {
		t.Fatalf("Create after the injection: %v", err)
	}
}

func TestInjectionIsPerSession(t *testing.T) {
	c := ctx(t)
	srv := memstore.New()
	a, b := connect(t, srv), connect(t, srv)
	a.InjectConnectionLoss(1, false)
	mustCreate(t, c, b, "/b", nil)
	if _, err := a.Create(c, "/a", nil, coord.Persistent, nil); !errors.Is(err, coord.ErrConnectionLost) {
		t.Fatalf("Create on the injected session: %v", err)
	}
}

func TestZxidIsGlobalAndPerTransaction(t *testing.T) {
	c := ctx(t)
	srv := memstore.New()
	a, b := connect(t, srv), connect(t, srv)
	var last int64
	check := func(s coord.Store, p string, want int64) {
		t.Helper()
		_, st, err := s.Get(c, p)
		if err != nil {
			t.Fatalf("Get %s: %v", p, err)
		}
		if st.Mzxid != want {
			t.Fatalf("%s Mzxid %d, want %d", p, st.Mzxid, want)
		}
		last = want
	}
	mustCreate(t, c, a, "/a", nil)
	check(a, "/a", 1)
	mustCreate(t, c, b, "/b", nil)
	check(b, "/b", last+1)
	// Failed writes use no zxid.
	if _, err := a.Create(c, "/b", nil, coord.Persistent, nil); !errors.Is(err, coord.ErrExists) {
		t.Fatal(err)
	}
	if _, err := b.Set(c, "/a", nil, 9); !errors.Is(err, coord.ErrBadVersion) {
		t.Fatal(err)
	}
	if _, err := b.Set(c, "/a", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	check(a, "/a", last+1)
	// A Multi is one transaction.
	if _, err := a.Multi(c, &coord.SetOp{Path: "/a", Version: coord.AnyVersion}, &coord.SetOp{Path: "/b", Version: coord.AnyVersion}); err != nil {
		t.Fatal(err)
	}
	check(a, "/a", last+1)
	check(b, "/b", last)
}

func TestDefaultACLOption(t *testing.T) {
	c := ctx(t)
	srv := memstore.New()
	alice := coord.Credential{User: "alice", Password: "pw"}
	owner := connect(t, srv, memstore.WithCredentials(alice), memstore.WithDefaultACL([]coord.ACL{coord.DigestACL(coord.PermAll, alice)}))
	mustCreate(t, c, owner, "/private", []byte("x"))
	if _, _, err := connect(t, srv).Get(c, "/private"); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("anonymous Get of a node with the owner's default ACL: %v, want ErrNoAuth", err)
	}
	if _, _, err := connect(t, srv, memstore.WithCredentials(alice)).Get(c, "/private"); err != nil {
		t.Errorf("Get by alice: %v", err)
	}
	// Without the option the default is world:anyone for an anonymous session.
	plain := connect(t, srv, memstore.WithDefaultACL(coord.WorldACL(coord.PermAll)), memstore.WithCredentials(alice))
	mustCreate(t, c, plain, "/open", nil)
	if _, err := connect(t, srv).Set(c, "/open", []byte("y"), 0); err != nil {
		t.Errorf("anonymous Set of a node with a world default ACL: %v", err)
	}
}

func TestRejectsBadInput(t *testing.T) {
	c := ctx(t)
	s := connect(t, memstore.New())
	mustCreate(t, c, s, "/q", nil)
	for name, call := range map[string]func() error{
		"empty ACL list": func() error { _, err := s.Create(c, "/x", nil, coord.Persistent, []coord.ACL{}); return err },
		"unknown scheme": func() error {
			_, err := s.Create(c, "/x", nil, coord.Persistent, []coord.ACL{{Perms: coord.PermAll, Scheme: "ip", ID: "10.0.0.1"}})
			return err
		},
		"world id not anyone": func() error {
			_, err := s.Create(c, "/x", nil, coord.Persistent, []coord.ACL{{Perms: coord.PermAll, Scheme: "world", ID: "me"}})
			return err
		},
		"digest id without hash": func() error {
			_, err := s.Create(c, "/x", nil, coord.Persistent, []coord.ACL{{Perms: coord.PermAll, Scheme: "digest", ID: "alice"}})
			return err
		},
		"unknown mode":        func() error { _, err := s.Create(c, "/x", nil, coord.CreateMode(9), nil); return err },
		"sequential root":     func() error { _, err := s.Create(c, "/", nil, coord.Sequential, nil); return err },
		"trailing slash seq":  func() error { _, err := s.Create(c, "/q/", nil, coord.Sequential, nil); return err },
		"nil op":              func() error { _, err := s.Multi(c, nil); return err },
		"typed nil op":        func() error { _, err := s.Multi(c, (*coord.SetOp)(nil)); return err },
		"delete root":         func() error { return s.Delete(c, "/", coord.AnyVersion) },
		"multi unknown op":    func() error { _, err := s.Multi(c, fakeOp{}); return err },
		"multi with bad mode": func() error { _, err := s.Multi(c, &coord.CreateOp{Path: "/x", Mode: -1}); return err },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if kids, _, err := s.Children(c, "/"); err != nil || len(kids) != 1 {
		t.Errorf("root children after rejected calls: %v, %v; want [q]", kids, err)
	}
	if kids, _, err := s.Children(c, "/q"); err != nil || len(kids) != 0 {
		t.Errorf("/q children after rejected calls: %v, %v", kids, err)
	}
}

type fakeOp struct{}

func (fakeOp) Kind() string     { return "fake" }
func (fakeOp) NodePath() string { return "/fake" }

// TestCallbacks covers what the contract leaves to the implementation:
// callbacks may call the store, Close waits for them, and events from
// repeated expiries arrive in order.
func TestCallbacks(t *testing.T) {
	c := ctx(t)
	srv := memstore.New()
	s := srv.Connect()
	mustCreate(t, c, s, "/n", nil)
	var (
		mu     sync.Mutex
		events []coord.SessionEvent
		reads  []error
	)
	s.OnSession(func(ev coord.SessionEvent) {
		_, _, err := s.Get(c, "/n") // re-entering the store from a callback
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
		reads = append(reads, err)
	})
	ids := []int64{s.SessionID()}
	for range 3 {
		s.Expire()
		ids = append(ids, s.SessionID())
	}
	// Callbacks run asynchronously; wait for the six expiry events before
	// closing, so that their reads happen on an open store.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 6 expiry events delivered", n)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Expire() // no effect once closed
	mu.Lock()
	defer mu.Unlock()
	// Close returned, so every callback has run.
	if len(events) != 7 {
		t.Fatalf("events %v, want 3 x (expired, connected) + closed", events)
	}
	for i := range 3 {
		exp, con := events[2*i], events[2*i+1]
		if exp.State != coord.StateExpired || con.State != coord.StateConnected || con.SessionID != ids[i+1] || con.SessionID == ids[i] {
			t.Errorf("expiry %d: events %v %v, want expired then connected %#x", i, exp, con, ids[i+1])
		}
	}
	if events[6].State != coord.StateClosed {
		t.Errorf("last event %v, want closed", events[6])
	}
	for i, err := range reads[:6] {
		if err != nil {
			t.Errorf("Get from callback %d: %v", i, err)
		}
	}
}

// TestCloseFromCallback: a callback may close its own store (on expiry,
// say) without deadlocking.
func TestCloseFromCallback(t *testing.T) {
	s := memstore.New().Connect()
	closed := make(chan error, 1)
	s.OnSession(func(ev coord.SessionEvent) {
		if ev.State == coord.StateExpired {
			closed <- s.Close()
		}
	})
	s.Expire()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close from a callback: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from a callback did not return")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Get(ctx(t), "/"); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

// TestCloseRacesCalls runs calls while the store closes (meant for -race):
// every call either works or fails with ErrClosed.
func TestCloseRacesCalls(t *testing.T) {
	c := ctx(t)
	srv := memstore.New()
	s := srv.Connect()
	mustCreate(t, c, s, "/q", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := s.Create(c, "/q/n-", nil, coord.EphemeralSequential, nil)
				if err == nil {
					_, _, _, err = s.ChildrenW(c, "/q")
				}
				if err == nil {
					continue
				}
				if !errors.Is(err, coord.ErrClosed) {
					errs <- fmt.Errorf("goroutine %d call %d: %w", g, i, err)
				}
				return
			}
		})
	}
	for range 100 {
		s.Expire()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	other := connect(t, srv)
	if kids, _, err := other.Children(c, "/q"); err != nil || len(kids) != 0 {
		t.Errorf("ephemerals left after Close: %d, %v", len(kids), err)
	}
}

// TestWatchersNeverBlockWriters: unread watch channels do not slow or
// block writes.
func TestWatchersNeverBlockWriters(t *testing.T) {
	c := ctx(t)
	srv := memstore.New()
	w, x := connect(t, srv), connect(t, srv)
	mustCreate(t, c, x, "/n", nil)
	chans := make([]<-chan coord.Event, 0, 1000)
	for range 1000 {
		_, _, ch, err := w.GetW(c, "/n")
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	for range 10 {
		if _, err := x.Set(c, "/n", nil, coord.AnyVersion); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range chans {
		if ev := <-ch; ev.Type != coord.EventDataChanged {
			t.Fatalf("watch %d: %v", i, ev)
		}
		if _, ok := <-ch; ok {
			t.Fatalf("watch %d: second event", i)
		}
	}
}

// TestQueueWorkload is a job-queue-shaped smoke test: many sequential
// creates, listings and claiming deletes must stay fast.
func TestQueueWorkload(t *testing.T) {
	c := ctx(t)
	srv := memstore.New()
	s := connect(t, srv)
	mustCreate(t, c, s, "/q", nil)
	const jobs = 5000
	start := time.Now()
	for i := range jobs {
		if _, err := s.Create(c, "/q/job-", []byte("payload"), coord.Sequential, nil); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if _, _, err := s.Children(c, "/q"); err != nil {
				t.Fatal(err)
			}
		}
	}
	kids, _, err := s.Children(c, "/q")
	if err != nil || len(kids) != jobs {
		t.Fatalf("Children: %d, %v", len(kids), err)
	}
	for _, k := range kids {
		if _, err := s.Multi(c,
			&coord.CheckOp{Path: "/q/" + k, Version: 0},
			&coord.DeleteOp{Path: "/q/" + k, Version: 0},
		); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d creates + %d claiming multis in %v (%.0f ops/s)", jobs, jobs, elapsed, 2*jobs/elapsed.Seconds())
	if elapsed > 10*time.Second {
		t.Errorf("workload took %v; memstore should do this in well under a second", elapsed)
	}
}

func BenchmarkCreateDelete(b *testing.B) {
	c := context.Background()
	s := memstore.New().Connect()
	defer s.Close()
	if _, err := s.Create(c, "/q", nil, coord.Persistent, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p, err := s.Create(c, "/q/job-", []byte("payload"), coord.Sequential, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Delete(c, p, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChildren1000(b *testing.B) {
	c := context.Background()
	s := memstore.New().Connect()
	defer s.Close()
	if _, err := s.Create(c, "/q", nil, coord.Persistent, nil); err != nil {
		b.Fatal(err)
	}
	for range 1000 {
		if _, err := s.Create(c, "/q/job-", nil, coord.Sequential, nil); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, _, err := s.Children(c, "/q"); err != nil {
			b.Fatal(err)
		}
	}
}
