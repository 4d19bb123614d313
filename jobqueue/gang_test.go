package jobqueue

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

func mpiSpec(slots int) *sge.JobSpec {
	s := spec("mpi")
	s.PE = &sge.PERequest{Name: "mpi", Min: slots, Max: slots}
	return s
}

func (e *env) gangNode(id string, slots int, timeout time.Duration) *node {
	return e.nodeCfg(ExecutorConfig{ID: id, Info: HostInfo{Slots: slots}, JoinGangs: true, GangTimeout: timeout})
}

func closedWithin(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}

func isOpen(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// TestGang: a 5-slot mpi job on three 2-slot executors gathers shares and
// runs on the executor that completes it, with every host in its
// PE_HOSTFILE.
func TestGang(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.gangNode("a", 2, 0), e.gangNode("b", 2, 0), e.gangNode("c", 2, 0)
	id := e.submit(mpiSpec(5))
	la := a.claim(t, 2)
	lb := b.claim(t, 2)
	if !la.Slave() || !lb.Slave() || la.Slots() != 2 {
		t.Fatalf("first shares: slave %v %v, slots %d", la.Slave(), lb.Slave(), la.Slots())
	}
	if !isOpen(la.Started()) {
		t.Fatal("slave started before the gang was complete")
	}
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateQueued {
		t.Fatalf("gathering job: %s", j.State)
	}
	lc := c.claim(t, 2)
	if lc.Slave() || lc.Slots() != 1 {
		t.Fatalf("master: slave %v slots %d", lc.Slave(), lc.Slots())
	}
	want := []PEHost{{Executor: "c", Host: "c", Slots: 1}, {Executor: "a", Host: "a", Slots: 2}, {Executor: "b", Host: "b", Slots: 2}}
	if !slices.Equal(lc.Hosts(), want) {
		t.Fatalf("PE hosts %+v, want %+v", lc.Hosts(), want)
	}
	closedWithin(t, la.Started(), 2*time.Second, "slave a told the job started")
	closedWithin(t, lb.Started(), 2*time.Second, "slave b told the job started")
	j, err = e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateRunning || len(j.Running) != 1 || len(j.Running[0].Hosts) != 3 {
		t.Fatalf("running job %+v", j)
	}
	hs, err := e.q.Hosts(e.ctx)
	ok(t, err)
	used := 0
	for _, h := range hs {
		used += h.SlotsUsed
	}
	if used != 5 {
		t.Fatalf("%d slots used in the registry, want 5", used)
	}
	ok(t, lc.Complete(e.ctx, Result{}))
	closedWithin(t, la.Finished(), 2*time.Second, "slave a told the job ended")
	closedWithin(t, lb.Finished(), 2*time.Second, "slave b told the job ended")
	ok(t, la.Release(e.ctx))
	ok(t, lb.Release(e.ctx))
	eventually(t, 2*time.Second, "no claims left", func() bool {
		kids, err := e.q.children(e.ctx, e.q.l.dir(claimsDir))
		return err == nil && len(kids) == 0
	})
	for _, d := range []string{runDir, queueDir, jobsDir} {
		kids, err := e.q.children(e.ctx, e.q.l.dir(d))
		ok(t, err)
		if len(kids) != 0 {
			t.Errorf("%s left: %v", d, kids)
		}
	}
	j, err = e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateDone || j.Final.Executor != "c" {
		t.Fatalf("job %+v", j)
	}
}

// TestGangSingleHostFirst: a multi-host PE job that fits one executor runs
// there; executors that do not join gangs never get shares.
func TestGangSingleHostFirst(t *testing.T) {
	e := newEnv(t)
	plain := e.node("plain", 2)
	id := e.submit(mpiSpec(3))
	plain.noClaim(t, 50*time.Millisecond)
	big := e.gangNode("big", 4, 0)
	l := big.claim(t, 4)
	if l.JobID() != id || l.Slave() || l.Slots() != 3 || len(l.Hosts()) != 1 {
		t.Fatalf("lease: slave %v slots %d hosts %+v", l.Slave(), l.Slots(), l.Hosts())
	}
	ok(t, l.Complete(e.ctx, Result{}))
}

// TestGangTimeout: a share that waits too long for the rest is given back.
func TestGangTimeout(t *testing.T) {
	e := newEnv(t)
	a := e.gangNode("a", 2, 100*time.Millisecond)
	id := e.submit(mpiSpec(4))
	la := a.claim(t, 2)
	if !la.Slave() {
		t.Fatal("want a share")
	}
	closedWithin(t, la.Finished(), 3*time.Second, "share given back after the timeout")
	if err := la.Release(e.ctx); err != nil && !errors.Is(err, ErrLeaseSettled) {
		t.Fatal(err)
	}
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateQueued {
		t.Fatalf("job %s", j.State)
	}
	rec, _, err := e.q.getRecord(e.ctx, id)
	ok(t, err)
	if len(rec.Gang) != 0 {
		t.Fatalf("gang %+v", rec.Gang)
	}
	// With enough executors the job still runs.
	b := e.gangNode("b", 2, time.Minute)
	c := e.gangNode("c", 2, time.Minute)
	lb := b.claim(t, 2)
	lc := c.claim(t, 2)
	if !lb.Slave() || lc.Slave() {
		t.Fatalf("slave %v, master %v", lb.Slave(), !lc.Slave())
	}
	ok(t, lc.Complete(e.ctx, Result{}))
	closedWithin(t, lb.Finished(), 2*time.Second, "slave released")
}

// TestGangMasterDies: the master's session dies while the job runs; the
// gang dissolves, the slaves let go, and the job runs again.
func TestGangMasterDies(t *testing.T) {
	e := newEnv(t)
	a, b := e.gangNode("a", 2, 0), e.gangNode("b", 2, 0)
	id := e.submit(mpiSpec(4))
	la := a.claim(t, 2)
	lb := b.claim(t, 2)
	if !la.Slave() || lb.Slave() {
		t.Fatal("want a slave and a master")
	}
	closedWithin(t, la.Started(), 2*time.Second, "started")
	b.stop()
	b.st.Expire()
	ok(t, e.q.Recover(e.ctx))
	closedWithin(t, la.Finished(), 2*time.Second, "slave let go after the master died")
	ok(t, la.Release(e.ctx))
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateQueued || j.Restarts != 1 {
		t.Fatalf("job %s restarts %d", j.State, j.Restarts)
	}
	c := e.gangNode("c", 4, 0)
	l := c.claim(t, 4)
	if l.JobID() != id || l.Slave() {
		t.Fatal("rerun")
	}
	ok(t, l.Complete(e.ctx, Result{}))
}

// TestGangSlaveDies: a slave's session dies while the gang gathers; its
// share is given back and another executor completes the gang.
func TestGangSlaveDies(t *testing.T) {
	e := newEnv(t)
	a := e.gangNode("a", 2, 0)
	id := e.submit(mpiSpec(4))
	la := a.claim(t, 2)
	a.stop()
	a.st.Expire()
	ok(t, e.q.Recover(e.ctx))
	rec, _, err := e.q.getRecord(e.ctx, id)
	ok(t, err)
	if len(rec.Gang) != 0 {
		t.Fatalf("dead share kept: %+v", rec.Gang)
	}
	b, c := e.gangNode("b", 2, 0), e.gangNode("c", 2, 0)
	lb, lc := b.claim(t, 2), c.claim(t, 2)
	if !lb.Slave() || lc.Slave() {
		t.Fatal("want a slave and a master")
	}
	if err := la.Release(e.ctx); err == nil {
		// The dead slave's late release must not touch the new gang.
		rec, _, err := e.q.getRecord(e.ctx, id)
		ok(t, err)
		if len(rec.Gang) != 1 || rec.Gang[0].Executor != "b" {
			t.Fatalf("gang after a late release: %+v", rec.Gang)
		}
	}
	ok(t, lc.Complete(e.ctx, Result{}))
	closedWithin(t, lb.Finished(), 2*time.Second, "slave let go")
}

// TestGangDelete: qdel of a gathering parallel job dissolves its gang.
func TestGangDelete(t *testing.T) {
	e := newEnv(t)
	a := e.gangNode("a", 2, 0)
	id := e.submit(mpiSpec(4))
	la := a.claim(t, 2)
	res, err := e.q.Delete(e.ctx, id, "")
	ok(t, err)
	if res != Deleted {
		t.Fatalf("delete: %v", res)
	}
	closedWithin(t, la.Finished(), 2*time.Second, "slave let go")
	ok(t, la.Release(e.ctx))
	for _, d := range []string{runDir, claimsDir, queueDir, jobsDir} {
		eventually(t, 2*time.Second, d+" empty", func() bool {
			kids, err := e.q.children(e.ctx, e.q.l.dir(d))
			return err == nil && len(kids) == 0
		})
	}
}
