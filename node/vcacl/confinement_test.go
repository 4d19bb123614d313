package vcacl_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/vcacl"
)

// connectFunc opens a session authenticated with creds whose nodes
// created with a nil ACL get defACL (nil: the store's usual default).
type connectFunc func(t *testing.T, creds []coord.Credential, defACL []coord.ACL) coord.Store

var fedCred = coord.Credential{User: "musubi-federation", Password: "federation-secret-0123456789"}

// confinement is the test of the layout, written once: the unit test runs
// it on memstore, the integration test on a real 3-server ensemble.
// rootProtected says whether the store's root belongs to the federation
// (a chroot created by a peer) rather than to everyone (memstore's "/").
func confinement(t *testing.T, connect connectFunc, rootProtected bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keys, err := vcacl.NewKeys(fedCred)
	if err != nil {
		t.Fatal(err)
	}
	pol := keys.Policy()
	peer := vcacl.Wrap(connect(t, []coord.Credential{fedCred}, nil), pol)

	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	create := func(s coord.Store, p string, mode coord.CreateMode) string {
		t.Helper()
		got, err := s.Create(ctx, p, []byte("data of "+p), mode, nil)
		must(err, "create "+p)
		return got
	}
	// The federation's state, written by a peer with nil ACLs (as every
	// package does) through the wrapped store.
	must(pol.InitFederation(ctx, peer), "InitFederation")
	must(pol.InitFederation(ctx, peer), "InitFederation again")
	for _, vc := range []string{"a", "b"} {
		must(pol.CreateVC(ctx, peer, vc), "CreateVC "+vc)
		must(pol.CreateVC(ctx, peer, vc), "CreateVC again "+vc)
		create(peer, coord.VCSpecPath(vc), coord.Persistent)
	}
	must(coord.EnsurePath(ctx, peer, "/timetable/host-h1"), "timetable")
	// A reservation-style Multi: its CreateOps get the policy's ACLs too.
	_, err = peer.Multi(ctx,
		&coord.CreateOp{Path: coord.ReservationPath("a"), Data: []byte("r"), Mode: coord.Persistent},
		&coord.CreateOp{Path: coord.TimetableSlotPath("host-h1", "0001"), Data: []byte("slot"), Mode: coord.Persistent},
		&coord.CreateOp{Path: coord.VCNodePath("a", "n1"), Data: []byte(`{"ip":"10.0.0.1"}`), Mode: coord.Persistent})
	must(err, "multi")
	fedRecords := []string{
		create(peer, coord.SitePath("s1"), coord.Persistent),
		create(peer, coord.LivePath("s1"), coord.Ephemeral),
		create(peer, coord.LinkPath("s1", "s2"), coord.Persistent),
		coord.TimetableSlotPath("host-h1", "0001"),
		coord.ReservationPath("a"),
		create(peer, coord.ReservationPath("b"), coord.Persistent),
		create(peer, coord.VLANPath(100), coord.Persistent),
	}
	readable := []string{ // federation records every agent may read
		create(peer, coord.HostPath("h1"), coord.Persistent),
		create(peer, coord.AccountPath("alice"), coord.Persistent),
	}
	ownReadOnly := []string{ // vc/a records an agent of a may only read
		create(peer, coord.VCStatusPath("a", "s1"), coord.Persistent),
		coord.VCNodePath("a", "n1"),
		create(peer, coord.VCAccountsDir("a")+"/bob", coord.Persistent),
	}
	ownWritable := []string{ // vc/a records an agent of a may change
		create(peer, coord.VCJobsDir("a")+"/by-peer", coord.Persistent),
		create(peer, coord.VCHostsDir("a")+"/extra", coord.Persistent),
	}
	otherVC := []string{
		create(peer, coord.VCNodePath("b", "m1"), coord.Persistent),
		create(peer, coord.VCJobsDir("b")+"/job", coord.Persistent),
		create(peer, coord.VCHostsDir("b")+"/h", coord.Persistent),
		create(peer, coord.VCAccountsDir("b")+"/carol", coord.Persistent),
		create(peer, coord.VCStatusPath("b", "s1"), coord.Persistent),
	}
	otherVC = append(otherVC, coord.VCSubdirs("b")...)
	otherVC = append(otherVC, coord.VCSpecPath("b"))
	ownReadOnly = append(ownReadOnly, coord.VCPath("a"), coord.VCSpecPath("a"), coord.VCStatusDir("a"),
		coord.VCNodesDir("a"), coord.VCAccountsDir("a"))

	// Sessions on other servers see the peer's writes once synced
	// (ZooKeeper orders each session's view, not all sessions' at once).
	synced := func(s coord.Store) coord.Store {
		t.Helper()
		must(s.Sync(ctx, "/"), "sync")
		return s
	}
	secA, err := keys.AgentSecret("a")
	must(err, "agent secret")
	a := synced(connect(t, secA.Credentials(), secA.DefaultACL()))
	secB, _ := keys.AgentSecret("b")
	agentB := synced(connect(t, secB.Credentials(), secB.DefaultACL()))

	// Denied everything: other VC, federation records, and the
	// directories holding them (listing sites, VCs, reservations...).
	denied := append(append(append([]string{}, fedRecords...), otherVC...),
		coord.SitesDir, coord.LiveDir, coord.LinksDir, coord.TimetableDir, coord.TimetableResourcePath("host-h1"),
		coord.ReservationsDir, coord.VLANsDir, coord.VCDir)
	for _, p := range denied {
		wantNoRead(t, ctx, a, p, "agent of a")
		wantNoWrite(t, ctx, a, p, "agent of a")
		wantNoChildChange(t, ctx, a, p, "agent of a")
		if rootProtected || coord.Parent(p) != "/" {
			wantNoDelete(t, ctx, a, p, "agent of a")
		}
	}
	// Read-only: hosts/, accounts/ and a's own spec, status, nodes,
	// accounts.
	for _, p := range append(append(readable, ownReadOnly...), coord.HostsDir, coord.AccountsDir) {
		wantRead(t, ctx, a, p, "agent of a")
		wantNoWrite(t, ctx, a, p, "agent of a")
		wantNoChildChange(t, ctx, a, p, "agent of a")
		if rootProtected || coord.Parent(p) != "/" {
			wantNoDelete(t, ctx, a, p, "agent of a")
		}
	}
	if _, err := a.Create(ctx, coord.VCPath("c"), nil, coord.Persistent, nil); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("agent of a: create another VC: %v, want ErrNoAuth", err)
	}
	if rootProtected {
		for _, p := range []string{"/", "/elsewhere"} {
			if p == "/" {
				wantNoChildChange(t, ctx, a, p, "agent of a")
				continue
			}
			if _, err := a.Create(ctx, p, nil, coord.Persistent, nil); !errors.Is(err, coord.ErrNoAuth) {
				t.Errorf("agent of a: create %s: %v, want ErrNoAuth", p, err)
			}
		}
	}

	// Writable: jobs and hosts of a, every create mode.
	for _, p := range ownWritable {
		wantRead(t, ctx, a, p, "agent of a")
		_, err := a.Set(ctx, p, []byte("changed by a"), coord.AnyVersion)
		must(err, "agent of a: set "+p)
		for _, mode := range []coord.CreateMode{coord.Persistent, coord.Sequential, coord.Ephemeral, coord.EphemeralSequential} {
			made, err := a.Create(ctx, p+"-"+mode.String(), nil, mode, nil)
			must(err, "agent of a: create "+mode.String())
			// The federation may read and remove what an agent made;
			// the other VC's agent may not even read it.
			must(peer.Sync(ctx, made), "peer: sync")
			wantRead(t, ctx, peer, made, "peer")
			must(agentB.Sync(ctx, made), "agent of b: sync")
			wantNoRead(t, ctx, agentB, made, "agent of b")
			wantNoWrite(t, ctx, agentB, made, "agent of b")
			if mode.IsEphemeral() {
				must(a.Delete(ctx, made, coord.AnyVersion), "agent of a: delete "+made)
			} else {
				must(peer.Delete(ctx, made, coord.AnyVersion), "peer: delete "+made)
			}
		}
	}
	must(a.Delete(ctx, ownWritable[0], coord.AnyVersion), "agent of a: delete "+ownWritable[0])

	// The VC's own job queue, run by the agent's session: init, submit,
	// claim (ephemeral claim), complete; the peer sees the result.
	qa, err := jobqueue.New(jobqueue.Config{Store: a, VC: "a"})
	must(err, "queue")
	must(qa.Init(ctx), "agent of a: queue init")
	id, err := qa.Submit(ctx, &sge.JobSpec{Name: "j", ScriptFile: "/bin/true", Binary: true, Submitter: sge.Submitter{User: "alice", Group: "alice"}})
	must(err, "agent of a: submit")
	ex, err := qa.NewExecutor(jobqueue.ExecutorConfig{ID: "n1", Info: jobqueue.HostInfo{Slots: 1, MemTotal: 1 << 30}})
	must(err, "executor")
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- ex.Run(runCtx) }()
	lease, err := ex.Claim(ctx, jobqueue.Capacity{Slots: 1})
	must(err, "agent of a: claim")
	must(lease.Complete(ctx, jobqueue.Result{ExitStatus: 0}), "agent of a: complete")
	stopRun()
	must(<-runDone, "executor run")
	qp, err := jobqueue.New(jobqueue.Config{Store: peer, VC: "a"})
	must(err, "peer queue")
	j, err := qp.Wait(ctx, id)
	must(err, "peer: wait for the job")
	if j.State != jobqueue.StateDone {
		t.Errorf("job %d seen by the peer: state %v, want done", id, j.State)
	}
	must(agentB.Sync(ctx, coord.VCJobsDir("a")), "agent of b: sync")
	qb, err := jobqueue.New(jobqueue.Config{Store: agentB, VC: "a"})
	must(err, "queue of b on a")
	if _, err := qb.List(ctx, jobqueue.Filter{}); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("agent of b: list a's jobs: %v, want ErrNoAuth", err)
	}
	if _, err := qb.Submit(ctx, &sge.JobSpec{Name: "x", ScriptFile: "/bin/true", Binary: true}); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("agent of b: submit to a: %v, want ErrNoAuth", err)
	}

	// The agents credential alone reads hosts/ and accounts/, no VC.
	onlyAgents := synced(connect(t, []coord.Credential{keys.Agents()}, nil))
	wantRead(t, ctx, onlyAgents, readable[0], "agents credential alone")
	wantNoRead(t, ctx, onlyAgents, coord.VCNodePath("a", "n1"), "agents credential alone")
	wantNoChildChange(t, ctx, onlyAgents, coord.VCJobsDir("a"), "agents credential alone")
	// A VC credential with a wrong password is nobody.
	forged, _ := keys.VC("a")
	forged.Password += "x"
	f := synced(connect(t, []coord.Credential{forged, keys.Agents()}, nil))
	wantNoRead(t, ctx, f, coord.VCSpecPath("a"), "forged credential of a")
	wantNoChildChange(t, ctx, f, coord.VCJobsDir("a"), "forged credential of a")
}

func wantRead(t *testing.T, ctx context.Context, s coord.Store, p, who string) {
	t.Helper()
	if _, _, err := s.Get(ctx, p); err != nil {
		t.Errorf("%s: Get %s: %v, want allowed", who, p, err)
	}
	if _, _, err := s.Children(ctx, p); err != nil {
		t.Errorf("%s: Children %s: %v, want allowed", who, p, err)
	}
}

func wantNoRead(t *testing.T, ctx context.Context, s coord.Store, p, who string) {
	t.Helper()
	if _, _, err := s.Get(ctx, p); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("%s: Get %s: %v, want ErrNoAuth", who, p, err)
	}
	if _, _, _, err := s.GetW(ctx, p); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("%s: GetW %s: %v, want ErrNoAuth", who, p, err)
	}
	if _, _, err := s.Children(ctx, p); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("%s: Children %s: %v, want ErrNoAuth", who, p, err)
	}
	if _, _, _, err := s.ChildrenW(ctx, p); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("%s: ChildrenW %s: %v, want ErrNoAuth", who, p, err)
	}
}

func wantNoWrite(t *testing.T, ctx context.Context, s coord.Store, p, who string) {
	t.Helper()
	if _, err := s.Set(ctx, p, []byte("intruder"), coord.AnyVersion); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("%s: Set %s: %v, want ErrNoAuth", who, p, err)
	}
	_, err := s.Multi(ctx, &coord.SetOp{Path: p, Data: []byte("intruder"), Version: coord.AnyVersion})
	if !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("%s: Multi set %s: %v, want ErrNoAuth", who, p, err)
	}
}

func wantNoChildChange(t *testing.T, ctx context.Context, s coord.Store, p, who string) {
	t.Helper()
	child := coord.Join(p, "intruder")
	for _, mode := range []coord.CreateMode{coord.Persistent, coord.Sequential, coord.Ephemeral, coord.EphemeralSequential} {
		if _, err := s.Create(ctx, child, nil, mode, coord.WorldACL(coord.PermAll)); !errors.Is(err, coord.ErrNoAuth) {
			t.Errorf("%s: create %s (%s): %v, want ErrNoAuth", who, child, mode, err)
		}
	}
}

func wantNoDelete(t *testing.T, ctx context.Context, s coord.Store, p, who string) {
	t.Helper()
	if err := s.Delete(ctx, p, coord.AnyVersion); !errors.Is(err, coord.ErrNoAuth) {
		t.Errorf("%s: Delete %s: %v, want ErrNoAuth", who, p, err)
	}
}
