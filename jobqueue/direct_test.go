package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// claimAsync starts a Claim with capacity slots and waits until it waits
// for work; the lease (or error) comes on the returned channel.
func claimAsync(t *testing.T, n *node, slots int) <-chan claimResult {
	t.Helper()
	ch := make(chan claimResult, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	go func() {
		defer cancel()
		l, err := n.ex.Claim(ctx, Capacity{Slots: slots, Memory: 1 << 30})
		ch <- claimResult{l, err}
	}()
	eventually(t, 10*time.Second, "the Claim to wait for work", n.ex.waiting.Load)
	return ch
}

type claimResult struct {
	l   *Lease
	err error
}

func recv(t *testing.T, ch <-chan claimResult) *Lease {
	t.Helper()
	select {
	case r := <-ch:
		ok(t, r.err)
		return r.l
	case <-time.After(10 * time.Second):
		t.Fatal("the Claim returned nothing")
		return nil
	}
}

// TestSubmitHere: a job submitted on a node whose Claim waits for work
// with room for it is created claimed in one write (no queue entry, no
// separate claim) and handed to that Claim; it then runs and completes
// like any job.
func TestSubmitHere(t *testing.T) {
	e := newEnv(t)
	rule := &faultRule{} // counts the writes
	st := &faulty{Store: e.session(), rule: rule}
	ex, err := e.queue(st).NewExecutor(ExecutorConfig{ID: "x", Info: HostInfo{Slots: 2, MemTotal: 8 << 30}})
	ok(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	defer func() { cancel(); ok(t, <-done) }()
	x := &node{ex: ex}

	ch := claimAsync(t, x, 2)
	s := spec("here")
	ids, err := ex.SubmitHere(e.ctx, []*sge.JobSpec{s})
	ok(t, err)
	l := recv(t, ch)
	if l.JobID() != ids[0] || l.Claim() != 1 || l.Slots() != 1 {
		t.Fatalf("lease of job %d claim %d slots %d, submitted %v", l.JobID(), l.Claim(), l.Slots(), ids)
	}
	rule.mu.Lock()
	seen := maps.Clone(rule.seen)
	rule.mu.Unlock()
	if seen["direct"] != 1 || seen["submit"] != 0 || seen["claim"] != 0 || seen["alloc"] != 0 {
		t.Errorf("writes %v, want one direct submission, no submission, allocation or claim", seen)
	}
	j, err := e.q.Get(e.ctx, ids[0])
	ok(t, err)
	if j.State != StateRunning || len(j.Running) != 1 || j.Running[0].Executor != "x" || j.Running[0].Lost {
		t.Fatalf("job %+v", j)
	}
	ok(t, l.Complete(e.ctx, Result{ExitStatus: 4}))
	j, err = e.q.Wait(e.ctx, ids[0])
	ok(t, err)
	if j.State != StateDone || j.Final == nil || j.Final.ExitStatus != 4 || j.Final.Claim != 1 {
		t.Fatalf("finished job %+v", j)
	}
	for _, d := range []string{queueDir, runDir, claimsDir, namesDir, jobsDir} {
		kids, err := e.q.children(e.ctx, e.q.l.dir(d))
		ok(t, err)
		if len(kids) != 0 {
			t.Errorf("%s left: %v", d, kids)
		}
	}
	// The next submission without a waiting Claim goes to the queue, with
	// the next id.
	ids2, err := ex.SubmitHere(e.ctx, []*sge.JobSpec{spec("queued")})
	ok(t, err)
	if ids2[0] != ids[0]+1 {
		t.Errorf("id %d after %d", ids2[0], ids[0])
	}
	j, err = e.q.Get(e.ctx, ids2[0])
	ok(t, err)
	if j.State != StateQueued {
		t.Errorf("job submitted with no Claim waiting is %s", j.State)
	}
}

// TestSubmitHereDeclines: held jobs, jobs with predecessors, array jobs,
// jobs that do not fit the waiting Claim's capacity and jobs with a start
// time are queued, and the waiting Claim takes what it can from the queue
// as usual.
func TestSubmitHereDeclines(t *testing.T) {
	e := newEnv(t)
	x := e.node("x", 2)
	held := spec("held")
	held.UserHold = true
	pred := spec("pred")
	pred.HoldJobs = []string{"held"}
	arr := spec("arr")
	arr.Array = &sge.TaskRange{First: 1, Last: 2, Step: 1}
	big := spec("big")
	big.PE = &sge.PERequest{Name: "smp", Min: 4, Max: 4}
	later := spec("later")
	later.StartTime = time.Now().Add(time.Hour)
	for _, s := range []*sge.JobSpec{held, pred, big, later} {
		ch := claimAsync(t, x, 2)
		ids, err := x.ex.SubmitHere(e.ctx, []*sge.JobSpec{s})
		ok(t, err)
		j, err := e.q.Get(e.ctx, ids[0])
		ok(t, err)
		if j.State == StateRunning || len(j.Running) > 0 {
			t.Errorf("%s started at submission", s.Name)
		}
		select {
		case r := <-ch:
			t.Fatalf("Claim returned for %s: %v %v", s.Name, r.l, r.err)
		case <-time.After(50 * time.Millisecond):
		}
		// Drain the waiting Claim with a job it takes from the queue.
		id := e.submit(spec("filler"))
		l := recv(t, ch)
		if l.JobID() != id {
			t.Fatalf("claimed %d, want the filler %d", l.JobID(), id)
		}
		ok(t, l.Complete(e.ctx, Result{}))
	}
	ch := claimAsync(t, x, 2)
	ids, err := x.ex.SubmitHere(e.ctx, []*sge.JobSpec{arr})
	ok(t, err)
	l := recv(t, ch) // from the queue
	if l.JobID() != ids[0] || l.Task() != 1 {
		t.Fatalf("lease %d.%d", l.JobID(), l.Task())
	}
	if _, err := x.ex.SubmitHere(e.ctx, []*sge.JobSpec{{Name: "bad:name"}}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("invalid spec: %v", err)
	}
}

// TestSubmitHereUnknownOutcome: the direct submission's write fails with
// an unknown outcome, applied or not: the job exists once, runs once on
// the submitting node, and ids are not reused.
func TestSubmitHereUnknownOutcome(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			e := newEnv(t)
			rule := &faultRule{kind: "direct", nth: 1, applied: applied}
			q := e.queue(&faulty{Store: e.session(), rule: rule})
			ex, err := q.NewExecutor(ExecutorConfig{ID: "x", Info: HostInfo{Slots: 1}})
			ok(t, err)
			ctx, cancel := context.WithCancel(e.ctx)
			done := make(chan error, 1)
			go func() { done <- ex.Run(ctx) }()
			defer func() { cancel(); ok(t, <-done) }()
			x := &node{ex: ex}
			ch := claimAsync(t, x, 1)
			ids, err := ex.SubmitHere(e.ctx, []*sge.JobSpec{spec("u")})
			ok(t, err)
			l := recv(t, ch)
			if !rule.fired {
				t.Fatal("fault did not fire")
			}
			if l.JobID() != ids[0] {
				t.Fatalf("lease of %d, submitted %d", l.JobID(), ids[0])
			}
			ok(t, l.Complete(e.ctx, Result{}))
			jobs, err := e.q.List(e.ctx, Filter{})
			ok(t, err)
			if len(jobs) != 0 {
				t.Errorf("jobs left: %d", len(jobs))
			}
			j, err := e.q.Wait(e.ctx, ids[0])
			ok(t, err)
			if j.State != StateDone {
				t.Errorf("job %s", j.State)
			}
			if st := q.Stats(); st.UnknownResolved != 1 || (st.UnknownApplied == 1) != applied {
				t.Errorf("stats %+v", st)
			}
			next := e.submit(spec("next"))
			if next <= ids[0] {
				t.Errorf("id %d after %d", next, ids[0])
			}
		})
	}
}

// TestSubmitHereExecutorDies: a job started at submission whose executor
// dies is rerun elsewhere, once; the dead lease cannot complete it.
func TestSubmitHereExecutorDies(t *testing.T) {
	e := newEnv(t)
	x := e.node("x", 1)
	ch := claimAsync(t, x, 1)
	ids, err := x.ex.SubmitHere(e.ctx, []*sge.JobSpec{spec("d")})
	ok(t, err)
	l := recv(t, ch)
	x.stop()
	x.st.Expire()
	y := e.node("y", 1)
	l2 := y.claim(t, 1) // y's Run recovers the dead claim
	if l2.JobID() != ids[0] || l2.Claim() != 2 || !l2.Restarted() {
		t.Fatalf("rerun: job %d claim %d restarted %v", l2.JobID(), l2.Claim(), l2.Restarted())
	}
	ok(t, l2.Complete(e.ctx, Result{}))
	if err := l.Complete(e.ctx, Result{}); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("dead lease completed: %v", err)
	}
	j, err := e.q.Wait(e.ctx, ids[0])
	ok(t, err)
	if j.State != StateDone || j.Restarts != 1 || j.Final.Executor != "y" {
		t.Errorf("job %s restarts %d on %s", j.State, j.Restarts, j.Final.Executor)
	}
}

// TestSubmitHereBatch: of a batch (concurrent qsubs grouped by the
// agent), the jobs that fit the waiting Claim start at submission in the
// batch's one write, the first through that Claim and the next through
// the following Claim, without a claim write; the rest is queued in the
// same write.
func TestSubmitHereBatch(t *testing.T) {
	e := newEnv(t)
	rule := &faultRule{}
	st := &faulty{Store: e.session(), rule: rule}
	ex, err := e.queue(st).NewExecutor(ExecutorConfig{ID: "x", Info: HostInfo{Slots: 2, MemTotal: 8 << 30}})
	ok(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	defer func() { cancel(); ok(t, <-done) }()
	x := &node{ex: ex}
	held := spec("held")
	held.UserHold = true
	ch := claimAsync(t, x, 2)
	ids, err := ex.SubmitHere(e.ctx, []*sge.JobSpec{held, spec("a"), spec("b"), spec("c")})
	ok(t, err)
	if len(ids) != 4 || ids[3] != ids[0]+3 {
		t.Fatalf("ids %v", ids)
	}
	l1 := recv(t, ch)
	l2 := x.claim(t, 1) // from the buffer
	if l1.JobID() != ids[1] || l2.JobID() != ids[2] {
		t.Fatalf("leases of %d and %d, want %d and %d", l1.JobID(), l2.JobID(), ids[1], ids[2])
	}
	rule.mu.Lock()
	seen := maps.Clone(rule.seen)
	rule.mu.Unlock()
	if seen["direct"] != 1 || seen["submit"] != 0 || seen["claim"] != 0 {
		t.Errorf("writes %v, want the one direct write", seen)
	}
	want := map[int64]State{ids[0]: StateHeld, ids[1]: StateRunning, ids[2]: StateRunning, ids[3]: StateQueued}
	for id, s := range want {
		j, err := e.q.Get(e.ctx, id)
		ok(t, err)
		if j.State != s {
			t.Errorf("job %d %s, want %s", id, j.State, s)
		}
	}
	ok(t, l1.Complete(e.ctx, Result{}))
	ok(t, l2.Complete(e.ctx, Result{}))
	l3 := x.claim(t, 2) // from the queue
	if l3.JobID() != ids[3] {
		t.Fatalf("claimed %d, want %d", l3.JobID(), ids[3])
	}
	ok(t, l3.Complete(e.ctx, Result{}))
	for _, id := range ids[1:] {
		j, err := e.q.Wait(e.ctx, id)
		ok(t, err)
		if j.State != StateDone {
			t.Errorf("job %d %s", id, j.State)
		}
	}
}

// TestSubmitHereBufferedReleased: a job started at submission whose lease
// is still buffered when the executor stops goes back to the queue and
// runs elsewhere.
func TestSubmitHereBufferedReleased(t *testing.T) {
	e := newEnv(t)
	x := e.node("x", 2)
	ch := claimAsync(t, x, 2)
	ids, err := x.ex.SubmitHere(e.ctx, []*sge.JobSpec{spec("a"), spec("b")})
	ok(t, err)
	l1 := recv(t, ch)
	x.stop() // the second lease was never handed out
	j, err := e.q.Get(e.ctx, ids[1])
	ok(t, err)
	if j.State != StateQueued {
		t.Fatalf("buffered job %s after the executor stopped", j.State)
	}
	y := e.node("y", 1)
	l2 := y.claim(t, 1)
	if l2.JobID() != ids[1] {
		t.Fatalf("claimed %d", l2.JobID())
	}
	ok(t, l2.Complete(e.ctx, Result{}))
	ok(t, l1.Complete(e.ctx, Result{}))
	for _, id := range ids {
		j, err := e.q.Wait(e.ctx, id)
		ok(t, err)
		if j.State != StateDone {
			t.Errorf("job %d %s", id, j.State)
		}
	}
}
