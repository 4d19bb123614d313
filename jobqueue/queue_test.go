package jobqueue

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

func TestSubmitClaimComplete(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 2)
	specs := []*sge.JobSpec{spec("a"), spec("b"), spec("c")}
	ids, err := e.q.SubmitBatch(e.ctx, specs)
	ok(t, err)
	if len(ids) != 3 || ids[1] != ids[0]+1 || ids[2] != ids[1]+1 {
		t.Fatalf("ids %v: want 3 consecutive", ids)
	}
	more := e.submit(spec("d"))
	if more <= ids[2] {
		t.Fatalf("id %d after %v: ids must increase", more, ids)
	}
	j, err := e.q.Get(e.ctx, ids[0])
	ok(t, err)
	if j.State != StateQueued || j.DisplayState() != "qw" || j.Spec.Name != "a" {
		t.Fatalf("job %+v", j)
	}

	var got []int64
	for range 4 {
		l := n.claim(t, 1)
		got = append(got, l.JobID())
		j, err := e.q.Get(e.ctx, l.JobID())
		ok(t, err)
		if j.State != StateRunning || len(j.Running) != 1 || j.Running[0].Executor != "n1" || j.Running[0].Lost {
			t.Fatalf("claimed job %+v", j)
		}
		ok(t, l.Complete(e.ctx, Result{ExitStatus: 3, WallClock: time.Second, MaxRSS: 1024}))
		if err := l.Complete(e.ctx, Result{}); !errors.Is(err, ErrLeaseSettled) {
			t.Fatalf("second Complete: %v", err)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, append(ids, more)) {
		t.Fatalf("claimed %v", got)
	}
	for _, id := range got {
		j, err := e.q.Wait(e.ctx, id)
		ok(t, err)
		if j.State != StateDone || j.Final == nil || j.Final.ExitStatus != 3 || j.Final.Host != "n1" || j.Final.MaxRSS != 1024 {
			t.Fatalf("finished job %+v final %+v", j, j.Final)
		}
		acct, err := e.q.Accounting(e.ctx, id)
		ok(t, err)
		if len(acct) != 1 || acct[0].JobID != id || acct[0].Claim != 1 {
			t.Fatalf("accounting %+v", acct)
		}
	}
	jobs, err := e.q.List(e.ctx, Filter{})
	ok(t, err)
	if len(jobs) != 0 {
		t.Fatalf("List after all done: %d jobs", len(jobs))
	}
	for _, d := range []string{queueDir, runDir, claimsDir, namesDir, jobsDir} {
		kids, err := e.q.children(e.ctx, e.q.l.dir(d))
		ok(t, err)
		if len(kids) != 0 {
			t.Errorf("%s not empty: %v", d, kids)
		}
	}
	if _, err := e.q.Get(e.ctx, 999); !errors.Is(err, ErrNoSuchJob) {
		t.Fatalf("Get unknown: %v", err)
	}
	if _, err := e.q.Wait(e.ctx, 999); !errors.Is(err, ErrNoSuchJob) {
		t.Fatalf("Wait unknown: %v", err)
	}
}

func TestWaitWatchesDoneRecord(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 1)
	id := e.submit(spec("sync"))
	res := make(chan *Job, 1)
	go func() {
		j, err := e.q.Wait(e.ctx, id)
		if err != nil {
			t.Error(err)
			j = &Job{Final: &Accounting{}}
		}
		res <- j
	}()
	l := n.claim(t, 1)
	select {
	case <-res:
		t.Fatal("Wait returned before the job finished")
	default:
	}
	ok(t, l.Complete(e.ctx, Result{ExitStatus: 7}))
	select {
	case j := <-res:
		if j.Final.ExitStatus != 7 {
			t.Fatalf("exit %d", j.Final.ExitStatus)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return")
	}
}

func TestPriorities(t *testing.T) {
	e := newEnv(t)
	var specs []*sge.JobSpec
	prios := []int{0, 10, -5, 10, 0, 1024, -1023}
	for _, p := range prios {
		s := spec("p")
		s.Priority = p
		specs = append(specs, s)
	}
	ids, err := e.q.SubmitBatch(e.ctx, specs)
	ok(t, err)
	st := e.session()
	ex, err := e.queue(st).NewExecutor(ExecutorConfig{ID: "strict", Info: HostInfo{Slots: 1}, Window: 1})
	ok(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	defer func() { cancel(); <-done }()
	n := &node{st: st, ex: ex}
	var got []int64
	for range prios {
		l := n.claim(t, 1)
		got = append(got, l.JobID())
		ok(t, l.Complete(e.ctx, Result{}))
	}
	want := []int64{ids[5], ids[1], ids[3], ids[0], ids[4], ids[2], ids[6]}
	if !slices.Equal(got, want) {
		t.Fatalf("claim order %v, want %v (priority, then id)", got, want)
	}
}

func TestAlterPriorityReorders(t *testing.T) {
	e := newEnv(t)
	a, b := e.submit(spec("a")), e.submit(spec("b"))
	p := 100
	name := "renamed"
	ok(t, e.q.Alter(e.ctx, b, Alteration{Priority: &p, Name: &name}, "alice"))
	if err := e.q.Alter(e.ctx, b, Alteration{Priority: &p}, "mallory"); !errors.Is(err, ErrPermission) {
		t.Fatalf("foreign alter: %v", err)
	}
	ids, unknown, err := e.q.Resolve(e.ctx, []string{"renamed", "nosuch", "a*"})
	ok(t, err)
	if !slices.Equal(ids, []int64{a, b}) || !slices.Equal(unknown, []string{"nosuch"}) {
		t.Fatalf("Resolve = %v %v", ids, unknown)
	}
	st := e.session()
	ex, err := e.queue(st).NewExecutor(ExecutorConfig{ID: "n", Info: HostInfo{Slots: 1}, Window: 1})
	ok(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	defer func() { cancel(); <-done }()
	n := &node{st: st, ex: ex}
	l := n.claim(t, 1)
	if l.JobID() != b || l.Spec().Name != "renamed" || l.Spec().Priority != 100 {
		t.Fatalf("claimed %d %q, want the altered job %d first", l.JobID(), l.Spec().Name, b)
	}
	ok(t, l.Complete(e.ctx, Result{}))
	l = n.claim(t, 1)
	if l.JobID() != a {
		t.Fatalf("claimed %d, want %d", l.JobID(), a)
	}
	ok(t, l.Complete(e.ctx, Result{}))
}

func TestHoldJidChain(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 4)
	// A chain by id, a dependant by name, and one on an unknown id.
	a := e.submit(spec("stage1"))
	sb := spec("stage2")
	sb.HoldJobs = []string{itoa(a)}
	b := e.submit(sb)
	sc := spec("stage3")
	sc.HoldJobs = []string{"stage2,stage1"}
	c := e.submit(sc)
	su := spec("free")
	su.HoldJobs = []string{"99999"}
	u := e.submit(su)

	jb, err := e.q.Get(e.ctx, b)
	ok(t, err)
	if jb.DisplayState() != "hqw" || !slices.Equal(jb.Waiting, []int64{a}) {
		t.Fatalf("stage2: %s waiting %v", jb.DisplayState(), jb.Waiting)
	}
	jc, err := e.q.Get(e.ctx, c)
	ok(t, err)
	if !slices.Equal(jc.Predecessors, []int64{a, b}) {
		t.Fatalf("stage3 predecessors %v", jc.Predecessors)
	}
	ju, err := e.q.Get(e.ctx, u)
	ok(t, err)
	if len(ju.Predecessors) != 0 || ju.DisplayState() != "qw" {
		t.Fatalf("unknown predecessor not ignored: %+v", ju)
	}

	var order []int64
	first := n.claim(t, 4)
	second := n.claim(t, 4)
	order = append(order, first.JobID(), second.JobID())
	slices.Sort(order)
	if !slices.Equal(order, []int64{a, u}) {
		t.Fatalf("claimable first: %v, want %d and %d", order, a, u)
	}
	n.noClaim(t, 100*time.Millisecond)
	// The blocked claim wakes up when the predecessor finishes.
	got := make(chan *Lease, 1)
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		l, err := n.ex.Claim(ctx, Capacity{Slots: 4})
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(20 * time.Millisecond) // let the claim block on the watch (not needed for correctness)
	ok(t, first.Complete(e.ctx, Result{}))
	ok(t, second.Complete(e.ctx, Result{}))
	l := <-got
	if l == nil {
		t.FailNow()
	}
	if l.JobID() != b {
		t.Fatalf("after stage1: claimed %d, want stage2 %d", l.JobID(), b)
	}
	n.noClaim(t, 50*time.Millisecond)
	ok(t, l.Complete(e.ctx, Result{ExitStatus: 1})) // any end releases dependants
	l = n.claim(t, 4)
	if l.JobID() != c {
		t.Fatalf("claimed %d, want stage3 %d", l.JobID(), c)
	}
	ok(t, l.Complete(e.ctx, Result{}))
}

func TestHoldJidOnArray(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 1)
	sa := spec("arr")
	sa.Array = &sge.TaskRange{First: 1, Last: 3, Step: 1}
	a := e.submit(sa)
	sd := spec("after")
	sd.HoldJobs = []string{"arr"}
	d := e.submit(sd)
	for range 3 {
		l := n.claim(t, 1)
		if l.JobID() != a {
			t.Fatalf("claimed %d before the array %d finished", l.JobID(), a)
		}
		ok(t, l.Complete(e.ctx, Result{}))
	}
	l := n.claim(t, 1)
	if l.JobID() != d {
		t.Fatalf("claimed %d, want %d", l.JobID(), d)
	}
	ok(t, l.Complete(e.ctx, Result{}))
	j, err := e.q.Get(e.ctx, a)
	ok(t, err)
	if j.State != StateDone || j.DoneTasks != 3 {
		t.Fatalf("array %+v", j)
	}
}

func itoa(id int64) string { return fmtID(id) }

func TestUserHold(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 1)
	sh := spec("held")
	sh.UserHold = true
	h := e.submit(sh)
	q := e.submit(spec("queued"))
	ok(t, e.q.Hold(e.ctx, q, "", "alice"))
	if err := e.q.Hold(e.ctx, q, "x", "alice"); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("bad hold letter: %v", err)
	}
	for _, id := range []int64{h, q} {
		j, err := e.q.Get(e.ctx, id)
		ok(t, err)
		if j.State != StateHeld || j.Holds != "u" {
			t.Fatalf("job %d: %s holds %q", id, j.State, j.Holds)
		}
	}
	n.noClaim(t, 50*time.Millisecond)
	ok(t, e.q.Hold(e.ctx, h, "o", ""))
	ok(t, e.q.Release(e.ctx, h, "u", "alice"))
	j, err := e.q.Get(e.ctx, h)
	ok(t, err)
	if j.State != StateHeld || j.Holds != "o" {
		t.Fatalf("after releasing u of uo: %s %q", j.State, j.Holds)
	}
	ok(t, e.q.Release(e.ctx, q, "u", "alice"))
	l := n.claim(t, 1)
	if l.JobID() != q {
		t.Fatalf("claimed %d, want released %d", l.JobID(), q)
	}
	// A hold on a running job applies when it has to run again.
	ok(t, e.q.Hold(e.ctx, q, "u", "alice"))
	ok(t, l.Complete(e.ctx, Result{Reschedule: true, ExitStatus: 99}))
	j, err = e.q.Get(e.ctx, q)
	ok(t, err)
	if j.State != StateHeld || j.Restarts != 1 {
		t.Fatalf("rescheduled held job: %+v", j)
	}
	ok(t, e.q.Release(e.ctx, q, "u", "alice"))
	j, err = e.q.Get(e.ctx, q)
	ok(t, err)
	if j.DisplayState() != "Rq" {
		t.Fatalf("rescheduled job shows %q, want Rq", j.DisplayState())
	}
	l = n.claim(t, 1)
	if l.JobID() != q || l.Claim() != 2 || !l.Restarted() {
		t.Fatalf("rerun: job %d claim %d", l.JobID(), l.Claim())
	}
	ok(t, l.Complete(e.ctx, Result{}))
	acct, err := e.q.Accounting(e.ctx, q)
	ok(t, err)
	if len(acct) != 2 || acct[0].ExitStatus != 99 || acct[0].State != StateHeld || acct[1].State != StateDone {
		t.Fatalf("accounting %+v", acct)
	}
}

func TestErrorState(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 1)
	id := e.submit(spec("bad"))
	sd := spec("dep")
	sd.HoldJobs = []string{itoa(id)}
	dep := e.submit(sd)
	l := n.claim(t, 1)
	ok(t, l.Complete(e.ctx, Result{Error: true, Failed: 26, FailedReason: "can't open output file"}))
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateError || j.ErrorReason != "can't open output file" {
		t.Fatalf("job %+v", j)
	}
	n.noClaim(t, 50*time.Millisecond) // the dependant waits while the job is in Eqw
	ok(t, e.q.ClearError(e.ctx, id, "alice"))
	l = n.claim(t, 1)
	if l.JobID() != id {
		t.Fatalf("claimed %d", l.JobID())
	}
	ok(t, l.Complete(e.ctx, Result{Error: true, FailedReason: "exit 100"}))
	res, err := e.q.Delete(e.ctx, id, "alice")
	ok(t, err)
	if res != Deleted {
		t.Fatalf("delete Eqw job: %v", res)
	}
	l = n.claim(t, 1)
	if l.JobID() != dep {
		t.Fatalf("claimed %d, want dependant %d after deletion", l.JobID(), dep)
	}
	ok(t, l.Complete(e.ctx, Result{}))
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 2)
	queued := e.submit(spec("q"))
	running := e.submit(spec("r"))
	ok(t, e.q.Hold(e.ctx, queued, "u", ""))
	ok(t, e.q.Release(e.ctx, queued, "u", "")) // new entry revision: still deletable
	if _, err := e.q.Delete(e.ctx, queued, "mallory"); !errors.Is(err, ErrPermission) {
		t.Fatalf("foreign delete: %v", err)
	}
	// Claim the running one first (queued has the lower id: hold it).
	ok(t, e.q.Hold(e.ctx, queued, "u", ""))
	l := n.claim(t, 1)
	if l.JobID() != running {
		t.Fatalf("claimed %d", l.JobID())
	}
	res, err := e.q.Delete(e.ctx, queued, "alice")
	ok(t, err)
	if res != Deleted {
		t.Fatalf("delete queued: %v", res)
	}
	j, err := e.q.Get(e.ctx, queued)
	ok(t, err)
	if j.State != StateDeleted || j.DeletedBy != "alice" {
		t.Fatalf("deleted job %+v", j)
	}
	if _, err := e.q.Delete(e.ctx, queued, "alice"); !errors.Is(err, ErrFinished) {
		t.Fatalf("delete finished: %v", err)
	}
	t0 := time.Now()
	res, err = e.q.Delete(e.ctx, running, "alice")
	ok(t, err)
	if res != Registered {
		t.Fatalf("delete running: %v", res)
	}
	select {
	case <-l.Deleted():
		t.Logf("qdel reached the lease in %v", time.Since(t0))
	case <-time.After(time.Second):
		t.Fatal("Deleted not closed within 1 s")
	}
	if _, err := e.q.Delete(e.ctx, running, "alice"); !errors.Is(err, ErrAlreadyDeleting) {
		t.Fatalf("second delete: %v", err)
	}
	j, err = e.q.Get(e.ctx, running)
	ok(t, err)
	if j.State != StateDeleting {
		t.Fatalf("state %s, want dr", j.State)
	}
	ok(t, l.Complete(e.ctx, Result{ExitStatus: 137, Signal: "SIGKILL", Failed: 100}))
	j, err = e.q.Get(e.ctx, running)
	ok(t, err)
	if j.State != StateDeleted || j.Final == nil || j.Final.State != StateDeleted {
		t.Fatalf("killed job %+v", j)
	}
	eventually(t, 2*time.Second, "signal node removed", func() bool {
		kids, err := e.q.children(e.ctx, e.q.l.signals("n1"))
		return err == nil && len(kids) == 0
	})
}

func TestArrayTaskConcurrency(t *testing.T) {
	e := newEnv(t)
	s := spec("arr")
	s.Array = &sge.TaskRange{First: 1, Last: 60, Step: 1}
	s.TaskConcurrency = 5
	id := e.submit(s)
	lg := newLedger()
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	for i := range 3 {
		n := e.node("n"+itoa(int64(i)), 4)
		n.work(ctx, t, lg, 4, 0, &wg)
	}
	j, err := e.q.Wait(e.ctx, id)
	cancel()
	wg.Wait()
	ok(t, err)
	if j.State != StateDone || j.DoneTasks != 60 {
		t.Fatalf("array %+v", j)
	}
	if lg.maxRun > 5 {
		t.Fatalf("%d tasks ran at once, -tc 5", lg.maxRun)
	}
	for task := 1; task <= 60; task++ {
		if c := lg.completed[key(id, task)]; c != 1 {
			t.Fatalf("task %d completed %d times", task, c)
		}
	}
	acct, err := e.q.Accounting(e.ctx, id)
	ok(t, err)
	if len(acct) != 60 {
		t.Fatalf("%d accounting records", len(acct))
	}
	t.Logf("max concurrent %d", lg.maxRun)
}

func TestArrayChunksAndTaskDelete(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 8)
	s := spec("arr")
	s.Array = &sge.TaskRange{First: 1, Last: 10, Step: 1}
	id := e.submit(s)
	// One claim with 3 free slots takes a chunk of 3 tasks.
	l1 := n.claim(t, 3)
	l2 := n.claim(t, 2)
	l3 := n.claim(t, 1)
	if l1.Claim() != l2.Claim() || l2.Claim() != l3.Claim() || l1.Task() != 1 || l3.Task() != 3 {
		t.Fatalf("chunk: claims %d %d %d tasks %d %d %d", l1.Claim(), l2.Claim(), l3.Claim(), l1.Task(), l2.Task(), l3.Task())
	}
	td, err := e.q.DeleteTasks(e.ctx, id, []int{2, 4, 5, 99}, "alice")
	ok(t, err)
	if !slices.Equal(td.Deleted, []int{4, 5}) || !slices.Equal(td.Registered, []int{2}) || !slices.Equal(td.Unknown, []int{99}) {
		t.Fatalf("DeleteTasks %+v", td)
	}
	select {
	case <-l2.Deleted():
	case <-time.After(time.Second):
		t.Fatal("task 2 not signalled")
	}
	select {
	case <-l1.Deleted():
		t.Fatal("task 1 signalled")
	default:
	}
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if !slices.Equal(j.Pending, []int{6, 7, 8, 9, 10}) || len(j.Running) != 1 || !slices.Equal(j.Running[0].Tasks, []int{1, 2, 3}) {
		t.Fatalf("array view: pending %v running %+v", j.Pending, j.Running)
	}
	ok(t, l2.Complete(e.ctx, Result{Failed: 100, ExitStatus: 137}))
	ok(t, l1.Complete(e.ctx, Result{}))
	ok(t, l3.Release(e.ctx)) // task 3 goes back
	var tasks []int
	for range 6 {
		l := n.claim(t, 1)
		tasks = append(tasks, l.Task())
		ok(t, l.Complete(e.ctx, Result{}))
	}
	slices.Sort(tasks)
	if !slices.Equal(tasks, []int{3, 6, 7, 8, 9, 10}) {
		t.Fatalf("remaining tasks %v", tasks)
	}
	j, err = e.q.Wait(e.ctx, id)
	ok(t, err)
	if j.State != StateDone || j.DoneTasks != 8 {
		t.Fatalf("array %+v", j)
	}
	acct, err := e.q.Accounting(e.ctx, id)
	ok(t, err)
	states := map[State]int{}
	for _, a := range acct {
		states[a.State]++
	}
	if states[StateDone] != 7 || states[StateDeleted] != 1 {
		t.Fatalf("accounting states %v", states)
	}
}

func TestDeleteArray(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 2)
	s := spec("arr")
	s.Array = &sge.TaskRange{First: 1, Last: 100, Step: 1}
	id := e.submit(s)
	l1 := n.claim(t, 1)
	res, err := e.q.Delete(e.ctx, id, "")
	ok(t, err)
	if res != Registered {
		t.Fatalf("delete running array: %v", res)
	}
	<-l1.Deleted()
	n.noClaim(t, 50*time.Millisecond)
	ok(t, l1.Complete(e.ctx, Result{Failed: 100}))
	j, err := e.q.Wait(e.ctx, id)
	ok(t, err)
	if j.State != StateDeleted {
		t.Fatalf("state %s", j.State)
	}
	// A queued array is deleted at once.
	id2 := e.submit(s)
	res, err = e.q.Delete(e.ctx, id2, "")
	ok(t, err)
	j, err = e.q.Get(e.ctx, id2)
	ok(t, err)
	if res != Deleted || j.State != StateDeleted {
		t.Fatalf("queued array: %v %s", res, j.State)
	}
}

func TestHostRegistry(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 4)
	e.node("n2", 2)
	e.submit(spec("x"))
	l := n.claim(t, 4)
	ok(t, n.ex.UpdateHost(e.ctx, HostInfo{Slots: 4, Load100: 150, MemTotal: 8 << 30, MemUsed: 1 << 30}))
	eventually(t, 2*time.Second, "both executors registered", func() bool {
		hs, err := e.q.Hosts(e.ctx)
		return err == nil && len(hs) == 2
	})
	hs, err := e.q.Hosts(e.ctx)
	ok(t, err)
	if hs[0].Executor != "n1" || hs[0].SlotsUsed != 1 || hs[0].Load100 != 150 || hs[1].SlotsUsed != 0 || hs[1].Slots != 2 {
		t.Fatalf("hosts %+v", hs)
	}
	ok(t, l.Complete(e.ctx, Result{}))
}

// TestExecutorExpiryReruns: an executor's session dies mid-job; its claim
// vanishes, another executor reruns the job, and the dead one cannot
// complete it.
func TestExecutorExpiryReruns(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", 1)
	id := e.submit(spec("victim"))
	la := a.claim(t, 1)
	b := e.node("b", 1) // b's Run recovers when a's registry entry changes
	a.st.Expire()
	select {
	case <-la.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("lease not marked lost after expiry")
	}
	lb := b.claim(t, 1)
	if lb.JobID() != id || lb.Claim() != 2 || !lb.Restarted() {
		t.Fatalf("rerun: job %d claim %d", lb.JobID(), lb.Claim())
	}
	if err := la.Complete(e.ctx, Result{}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("dead executor's Complete: %v", err)
	}
	ok(t, lb.Complete(e.ctx, Result{ExitStatus: 0}))
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateDone || j.Restarts != 1 || j.Final.Executor != "b" {
		t.Fatalf("job %+v", j)
	}
	acct, err := e.q.Accounting(e.ctx, id)
	ok(t, err)
	if len(acct) != 2 || acct[0].Executor != "a" || acct[0].Failed != 25 || acct[1].Executor != "b" {
		t.Fatalf("accounting %+v", acct)
	}
	// The expired executor registered again and keeps working.
	id2 := e.submit(spec("after"))
	_ = id2
	eventually(t, 2*time.Second, "a registered again", func() bool {
		hs, err := e.q.Hosts(e.ctx)
		return err == nil && len(hs) == 2
	})
}

func TestExpiryArrayChunkRerun(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", 4)
	s := spec("arr")
	s.Array = &sge.TaskRange{First: 1, Last: 4, Step: 1}
	id := e.submit(s)
	l1 := a.claim(t, 4)
	l2 := a.claim(t, 3)
	ok(t, l1.Complete(e.ctx, Result{})) // task 1 done before the crash
	b := e.node("b", 4)
	a.st.Expire()
	var tasks []int
	for range 3 {
		l := b.claim(t, 1)
		tasks = append(tasks, l.Task())
		ok(t, l.Complete(e.ctx, Result{}))
	}
	slices.Sort(tasks)
	if !slices.Equal(tasks, []int{2, 3, 4}) {
		t.Fatalf("rerun tasks %v", tasks)
	}
	if err := l2.Complete(e.ctx, Result{}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("lost lease Complete: %v", err)
	}
	j, err := e.q.Wait(e.ctx, id)
	ok(t, err)
	if j.State != StateDone || j.DoneTasks != 4 {
		t.Fatalf("array %+v", j)
	}
}

func TestDeleteRunningOnDeadExecutor(t *testing.T) {
	e := newEnv(t)
	// No live executor notices the death: qdel must finish the job itself.
	st := e.session()
	q := e.queue(st)
	ex, err := q.NewExecutor(ExecutorConfig{ID: "lonely", Info: HostInfo{Slots: 1}})
	ok(t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	id := e.submit(spec("x"))
	l := (&node{st: st, ex: ex}).claim(t, 1)
	cancel()
	<-done
	ok(t, st.Close())
	res, err := e.q.Delete(e.ctx, id, "")
	ok(t, err)
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if res != Deleted || j.State != StateDeleted {
		t.Fatalf("delete on dead executor: %v %s", res, j.State)
	}
	_ = l
}

func TestRecoverRespectsNoRerun(t *testing.T) {
	e := newEnv(t)
	a := e.node("a", 1)
	s := spec("once")
	no := false
	s.Rerun = &no
	id := e.submit(s)
	a.claim(t, 1)
	a.st.Expire()
	ok(t, e.q.Recover(e.ctx))
	j, err := e.q.Get(e.ctx, id)
	ok(t, err)
	if j.State != StateFailed {
		t.Fatalf("-r n job after executor loss: %s", j.State)
	}
}

func TestStartTime(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 1)
	s := spec("later")
	s.StartTime = time.Now().Add(150 * time.Millisecond)
	id := e.submit(s)
	t0 := time.Now()
	l := n.claim(t, 1)
	if l.JobID() != id || time.Since(t0) < 100*time.Millisecond {
		t.Fatalf("claimed %d after %v", l.JobID(), time.Since(t0))
	}
	ok(t, l.Complete(e.ctx, Result{}))
}

var _ coord.Store = nil

func TestPrune(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 4)
	a := e.submit(spec("a"))
	s := spec("arr")
	s.Array = &sge.TaskRange{First: 1, Last: 3, Step: 1}
	b := e.submit(s)
	c := e.submit(spec("c"))
	for range 5 {
		l := n.claim(t, 1)
		if l.JobID() == c {
			ok(t, l.Release(e.ctx))
			ok(t, e.q.Hold(e.ctx, c, "u", ""))
			continue
		}
		ok(t, l.Complete(e.ctx, Result{}))
	}
	for _, id := range []int64{a, b} {
		_, err := e.q.Wait(e.ctx, id)
		ok(t, err)
	}
	got, err := e.q.Prune(e.ctx, c+1)
	ok(t, err)
	if got != 2 {
		t.Fatalf("pruned %d, want 2", got)
	}
	for _, id := range []int64{a, b} {
		if _, err := e.q.Get(e.ctx, id); !errors.Is(err, ErrNoSuchJob) {
			t.Fatalf("pruned job %d: %v", id, err)
		}
	}
	if _, err := e.q.Get(e.ctx, c); err != nil {
		t.Fatalf("active job pruned: %v", err)
	}
	kids, err := e.q.children(e.ctx, e.q.l.dir(tasksDir))
	ok(t, err)
	if len(kids) != 0 {
		t.Fatalf("task records left: %v", kids)
	}
}

func TestSharedIDCounter(t *testing.T) {
	e := newEnv(t)
	var qs []*Queue
	for _, vc := range []string{"a", "b"} {
		q, err := New(Config{Store: e.st, VC: vc, IDCounter: "/jobids"})
		ok(t, err)
		ok(t, q.Init(e.ctx))
		qs = append(qs, q)
	}
	seen := map[int64]bool{}
	last := int64(0)
	for i := range 6 {
		id, err := qs[i%2].Submit(e.ctx, spec("x"))
		ok(t, err)
		if seen[id] || id <= last {
			t.Fatalf("id %d after %d (seen %v)", id, last, seen)
		}
		seen[id], last = true, id
	}
	if _, err := New(Config{Store: e.st, VC: "a", IDCounter: "bad//path"}); err == nil {
		t.Fatal("bad IDCounter accepted")
	}
}

func TestHoldJidAdWaitsForWholeArray(t *testing.T) {
	e := newEnv(t)
	n := e.node("n1", 1)
	a := spec("pre")
	a.Array = &sge.TaskRange{First: 1, Last: 2, Step: 1}
	pre := e.submit(a)
	d := spec("post")
	d.Array = &sge.TaskRange{First: 1, Last: 2, Step: 1}
	d.HoldArrayJobs = []string{"pre"}
	post := e.submit(d)
	j, err := e.q.Get(e.ctx, post)
	ok(t, err)
	if !slices.Equal(j.Predecessors, []int64{pre}) {
		t.Fatalf("predecessors %v", j.Predecessors)
	}
	for range 2 {
		l := n.claim(t, 1)
		if l.JobID() != pre {
			t.Fatalf("claimed %d before %d finished", l.JobID(), pre)
		}
		ok(t, l.Complete(e.ctx, Result{}))
	}
	l := n.claim(t, 1)
	if l.JobID() != post {
		t.Fatalf("claimed %d", l.JobID())
	}
	ok(t, l.Complete(e.ctx, Result{}))
}
