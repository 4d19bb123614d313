package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// faultRule makes the nth write of one kind of step fail with
// coord.ErrConnectionLost, after applying it or not.
type faultRule struct {
	mu      sync.Mutex
	kind    string
	nth     int
	applied bool
	err     error // returned instead of coord.ErrConnectionLost
	seen    map[string]int
	fired   bool
}

func (r *faultRule) hit(kind string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	r.seen[kind]++
	if !r.fired && kind == r.kind && r.seen[kind] == r.nth {
		r.fired = true
		return true
	}
	return false
}

// faulty is a memstore session whose writes obey a faultRule.
type faulty struct {
	*memstore.Store
	rule *faultRule
}

func has(ops []coord.Op, kind, dir string) bool {
	for _, op := range ops {
		if op.Kind() == kind && strings.HasPrefix(op.NodePath(), testRoot+"/"+dir+"/") {
			return true
		}
	}
	return false
}

// classify names the recipe step a transaction implements.
func classify(ops []coord.Op) string {
	switch {
	case has(ops, "create", jobsDir) && has(ops, "create", claimsDir):
		return "direct"
	case has(ops, "create", doneDir):
		return "finish"
	case has(ops, "create", claimsDir):
		return "claim"
	case has(ops, "delete", claimsDir) && has(ops, "create", tasksDir):
		return "chunk"
	case has(ops, "delete", claimsDir):
		return "settle"
	case has(ops, "check", claimsDir):
		return "task"
	case has(ops, "create", jobsDir):
		return "submit"
	case has(ops, "delete", runDir):
		return "recover"
	case has(ops, "set", jobsDir):
		return "update"
	}
	return "other"
}

func (f *faulty) fail(kind string, apply func()) bool {
	if !f.rule.hit(kind) {
		return false
	}
	if f.rule.applied {
		apply()
	}
	return true
}

func (f *faulty) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	if f.fail(classify(ops), func() { _, _ = f.Store.Multi(ctx, ops...) }) {
		if f.rule.err != nil {
			return nil, f.rule.err
		}
		return nil, coord.ErrConnectionLost
	}
	return f.Store.Multi(ctx, ops...)
}

func (f *faulty) Set(ctx context.Context, p string, data []byte, v int32) (coord.Stat, error) {
	kind := "set"
	if strings.HasSuffix(p, "/"+nextIDNode) {
		kind = "alloc"
	}
	if f.fail(kind, func() { _, _ = f.Store.Set(ctx, p, data, v) }) {
		return coord.Stat{}, coord.ErrConnectionLost
	}
	return f.Store.Set(ctx, p, data, v)
}

func (f *faulty) Create(ctx context.Context, p string, data []byte, m coord.CreateMode, acl []coord.ACL) (string, error) {
	kind := "create"
	if strings.Contains(p, "/"+execDir+"/") {
		kind = "register"
	}
	if f.fail(kind, func() { _, _ = f.Store.Create(ctx, p, data, m, acl) }) {
		return "", coord.ErrConnectionLost
	}
	return f.Store.Create(ctx, p, data, m, acl)
}

func (f *faulty) Delete(ctx context.Context, p string, v int32) error {
	kind := "delete"
	if strings.Contains(p, "/"+signalDir+"/") {
		kind = "unsignal"
	}
	if f.fail(kind, func() { _ = f.Store.Delete(ctx, p, v) }) {
		return coord.ErrConnectionLost
	}
	return f.Store.Delete(ctx, p, v)
}

// lifecycle submits a job and a 3-task array job, holds and releases the
// job, reschedules its first run (exit 99), and runs everything to the
// end on one executor whose claims take 2 array tasks at a time, under
// rule. It checks that every job and task completed exactly once, and
// returns how many writes of each kind it made.
//
// With split, the submitting queue's transactions are so small that the
// batch takes two: its ids are allocated first by the counter's Set alone
// ("alloc"); otherwise the batch is one transaction that allocates its ids.
func lifecycle(t *testing.T, rule *faultRule, split bool) map[string]int {
	e := newEnv(t)
	sub := &faulty{Store: e.session(), rule: rule}
	qs := e.queue(sub)
	if split {
		qs.maxOps = 4
	}
	xs := &faulty{Store: e.session(), rule: rule}
	qx := e.queue(xs)
	ex, err := qx.NewExecutor(ExecutorConfig{ID: "x", Info: HostInfo{Slots: 4}, MaxChunk: 2})
	ok(t, err)
	runCtx, stop := context.WithCancel(e.ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- ex.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-runDone; err != nil {
			t.Error(err)
		}
	}()

	arr := spec("arr")
	arr.Array = &sge.TaskRange{First: 1, Last: 3, Step: 1}
	ids, err := qs.SubmitBatch(e.ctx, []*sge.JobSpec{spec("job"), arr})
	ok(t, err)
	a, b := ids[0], ids[1]
	ok(t, qs.Hold(e.ctx, a, "u", ""))
	ok(t, qs.Release(e.ctx, a, "u", ""))

	completed := map[string]int{}
	aRuns := 0
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	for completed[key(a, 0)] < 1 || len(completed) < 4 {
		l, err := ex.Claim(ctx, Capacity{Slots: 2})
		if err != nil {
			t.Fatalf("claim (completed %v): %v", completed, err)
		}
		r := Result{}
		if l.JobID() == a {
			aRuns++
			if aRuns == 1 {
				r = Result{Reschedule: true, ExitStatus: 99}
			}
		}
		if err := l.Complete(ctx, r); err != nil {
			t.Fatalf("complete %d.%d: %v", l.JobID(), l.Task(), err)
		}
		if !r.Reschedule {
			completed[key(l.JobID(), l.Task())]++
		}
	}
	for k, n := range completed {
		if n != 1 {
			t.Errorf("%s completed %d times", k, n)
		}
	}
	if len(completed) != 4 {
		t.Errorf("completed %v, want job %d and tasks 1-3 of %d", completed, a, b)
	}
	for _, id := range ids {
		j, err := qs.Wait(ctx, id)
		ok(t, err)
		if j.State != StateDone {
			t.Errorf("job %d ended %s", id, j.State)
		}
	}
	acct, err := qs.Accounting(e.ctx, a)
	ok(t, err)
	if len(acct) != 2 || acct[0].ExitStatus != 99 || acct[1].Claim != 2 {
		t.Errorf("job accounting: %+v", acct)
	}
	acct, err = qs.Accounting(e.ctx, b)
	ok(t, err)
	if len(acct) != 3 {
		t.Errorf("array accounting: %d records", len(acct))
	}
	for _, d := range []string{queueDir, runDir, claimsDir, namesDir, jobsDir} {
		kids, err := e.q.children(e.ctx, e.q.l.dir(d))
		ok(t, err)
		if len(kids) != 0 {
			t.Errorf("%s left: %v", d, kids)
		}
	}
	rule.mu.Lock()
	defer rule.mu.Unlock()
	if rule.kind != "" && !rule.fired {
		t.Errorf("fault %s #%d never fired", rule.kind, rule.nth)
	}
	st := qs.Stats()
	xt := qx.Stats()
	if rule.fired && st.UnknownResolved+xt.UnknownResolved == 0 && rule.kind != "alloc" && rule.kind != "register" && rule.kind != "create" {
		t.Errorf("fault %s #%d fired but no unknown outcome was resolved", rule.kind, rule.nth)
	}
	return maps.Clone(rule.seen)
}

// TestConnectionLossAtEveryStep runs the lifecycle once without faults to
// count its writes, then once for every write of every step of the
// recipe, failing that write with an unknown outcome, applied and not.
//
// The lifecycle's batch is submitted in one transaction that allocates the
// ids; a second round splits it in two transactions after an "alloc" of
// the ids and fails each of those writes.
func TestConnectionLossAtEveryStep(t *testing.T) {
	seen := lifecycle(t, &faultRule{}, false)
	var kinds []string
	for k := range seen {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	t.Logf("writes per step: %v", seen)
	for _, want := range []string{"submit", "update", "claim", "settle", "task", "chunk", "finish", "register"} {
		if seen[want] == 0 {
			t.Errorf("lifecycle made no %q write: the test does not cover that step", want)
		}
	}
	if seen["alloc"] != 0 || seen["submit"] != 1 {
		t.Errorf("the batch took %d submit and %d alloc writes, want 1 and 0", seen["submit"], seen["alloc"])
	}
	cases := 0
	for _, kind := range kinds {
		if kind == "unsignal" || kind == "delete" || kind == "other" {
			continue
		}
		for nth := 1; nth <= seen[kind]; nth++ {
			for _, applied := range []bool{false, true} {
				name := fmt.Sprintf("%s#%d/applied=%v", kind, nth, applied)
				cases++
				t.Run(name, func(t *testing.T) {
					lifecycle(t, &faultRule{kind: kind, nth: nth, applied: applied}, false)
				})
			}
		}
	}
	split := lifecycle(t, &faultRule{}, true)
	if split["alloc"] != 1 || split["submit"] != 2 {
		t.Errorf("split batch: %d alloc and %d submit writes, want 1 and 2", split["alloc"], split["submit"])
	}
	for _, kind := range []string{"alloc", "submit"} {
		for nth := 1; nth <= split[kind]; nth++ {
			for _, applied := range []bool{false, true} {
				name := fmt.Sprintf("split/%s#%d/applied=%v", kind, nth, applied)
				cases++
				t.Run(name, func(t *testing.T) {
					lifecycle(t, &faultRule{kind: kind, nth: nth, applied: applied}, true)
				})
			}
		}
	}
	t.Logf("%d fault cases", cases)
}

// TestSubmitUnknownOutcomeOtherWinner: a submission whose outcome is
// unknown started from a stale counter; another submitter won that
// counter version and created the job with the same first id. The
// resolution must not take that job for its own: the submission is tried
// again and its job gets the next id.
func TestSubmitUnknownOutcomeOtherWinner(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			e := newEnv(t)
			rule := &faultRule{kind: "submit", nth: 2, applied: applied}
			a := e.queue(&faulty{Store: e.session(), rule: rule})
			b := e.queue(e.session())
			first, err := a.Submit(e.ctx, spec("a1")) // caches the counter
			ok(t, err)
			theirs, err := b.Submit(e.ctx, spec("b1"))
			ok(t, err)
			if theirs != first+1 {
				t.Fatalf("ids %d then %d", first, theirs)
			}
			// a's cache is stale: with applied=true the write fails on the
			// counter's version (nothing applied), and the outcome is
			// unknown either way.
			mine, err := a.Submit(e.ctx, spec("a2"))
			ok(t, err)
			if !rule.fired {
				t.Fatal("fault did not fire")
			}
			if mine == theirs {
				t.Fatalf("a's job got %d, the id of b's job", mine)
			}
			for id, name := range map[int64]string{first: "a1", theirs: "b1", mine: "a2"} {
				j, err := e.q.Get(e.ctx, id)
				ok(t, err)
				if j.Spec.Name != name {
					t.Errorf("job %d is %q, want %q", id, j.Spec.Name, name)
				}
			}
			jobs, err := e.q.List(e.ctx, Filter{})
			ok(t, err)
			if len(jobs) != 3 {
				t.Errorf("%d jobs queued, want 3", len(jobs))
			}
			if st := a.Stats(); st.UnknownResolved != 1 || st.UnknownApplied != 0 {
				t.Errorf("stats %+v: want one unknown outcome, resolved as not applied", st)
			}
		})
	}
}

// TestSubmitConcurrentCounters: submitters on three sessions, each caching
// the id counter, race; every job is queued exactly once under its own id,
// and each submitter's ids increase.
func TestSubmitConcurrentCounters(t *testing.T) {
	e := newEnv(t)
	const per = 40
	type sub struct {
		name string
		ids  []int64
	}
	subs := make([]*sub, 6)
	var wg sync.WaitGroup
	queues := []*Queue{e.queue(e.session()), e.queue(e.session()), e.queue(e.session())}
	errs := make(chan error, len(subs))
	for i := range subs {
		s := &sub{name: fmt.Sprintf("s%d", i)}
		subs[i] = s
		q := queues[i%len(queues)] // two goroutines per queue
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				var specs []*sge.JobSpec
				for range 1 + k%3 {
					specs = append(specs, spec(s.name))
				}
				ids, err := q.SubmitBatch(e.ctx, specs)
				if err != nil {
					errs <- err
					return
				}
				s.ids = append(s.ids, ids...)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	owner := map[int64]string{}
	for _, s := range subs {
		for i, id := range s.ids {
			if i > 0 && id <= s.ids[i-1] {
				t.Errorf("%s: id %d after %d", s.name, id, s.ids[i-1])
			}
			if o, dup := owner[id]; dup {
				t.Fatalf("id %d given to %s and %s", id, o, s.name)
			}
			owner[id] = s.name
		}
	}
	jobs, err := e.q.List(e.ctx, Filter{})
	ok(t, err)
	if len(jobs) != len(owner) {
		t.Errorf("%d jobs queued, %d ids returned", len(jobs), len(owner))
	}
	for _, j := range jobs {
		if owner[j.ID] != j.Spec.Name {
			t.Errorf("job %d is %s's, returned to %q", j.ID, j.Spec.Name, owner[j.ID])
		}
	}
}

// TestConnectionLossDuringRecovery: the give-back of a dead executor's job
// has an unknown outcome; the job still runs to completion exactly once.
func TestConnectionLossDuringRecovery(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			e := newEnv(t)
			a := e.node("a", 1)
			arr := spec("arr")
			arr.Array = &sge.TaskRange{First: 1, Last: 2, Step: 1}
			ids, err := e.q.SubmitBatch(e.ctx, []*sge.JobSpec{spec("j"), arr})
			ok(t, err)
			la := a.claim(t, 1)
			lb := a.claim(t, 1)
			a.stop() // nobody notices the death but the test
			a.st.Expire()
			rule := &faultRule{kind: "recover", nth: 1, applied: applied}
			q := e.queue(&faulty{Store: e.session(), rule: rule})
			ok(t, q.Recover(e.ctx))
			ok(t, q.Recover(e.ctx)) // whatever the first left, nothing changes twice
			if !rule.fired {
				t.Fatal("recovery fault did not fire")
			}
			b := e.node("b", 2)
			done := map[string]int{}
			for range 3 {
				l := b.claim(t, 1)
				ok(t, l.Complete(e.ctx, Result{}))
				done[key(l.JobID(), l.Task())]++
			}
			for _, id := range ids {
				j, err := e.q.Wait(e.ctx, id)
				ok(t, err)
				if j.State != StateDone || j.Restarts != 1 {
					t.Errorf("job %d: %s restarts %d", id, j.State, j.Restarts)
				}
			}
			if len(done) != 3 {
				t.Errorf("completions %v", done)
			}
			for _, l := range []*Lease{la, lb} {
				if err := l.Complete(e.ctx, Result{}); err == nil {
					t.Errorf("lost lease %d.%d completed", l.JobID(), l.Task())
				}
			}
			st := q.Stats()
			if st.UnknownResolved != 1 || (st.UnknownApplied == 1) != applied {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestStress drains many jobs with several executors while sessions expire
// and writes fail with unknown outcomes at random; no job is lost and none
// completes twice.
func TestStress(t *testing.T) {
	e := newEnv(t)
	const jobs = 300
	var specs []*sge.JobSpec
	for i := range jobs {
		s := spec(fmt.Sprintf("s%d", i))
		s.Priority = i % 3
		specs = append(specs, s)
	}
	arr := spec("arr")
	arr.Array = &sge.TaskRange{First: 1, Last: 50, Step: 1}
	arr.TaskConcurrency = 4
	specs = append(specs, arr)
	ids, err := e.q.SubmitBatch(e.ctx, specs)
	ok(t, err)
	lg := newLedger()
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	var nodes []*node
	for i := range 4 {
		n := e.node(fmt.Sprintf("w%d", i), 2)
		nodes = append(nodes, n)
		n.work(ctx, t, lg, 2, time.Millisecond, &wg)
	}
	// Chaos: unknown outcomes and session expiries while the queue drains.
	chaos := make(chan struct{})
	go func() {
		defer close(chaos)
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-lg.tick:
			}
			n := nodes[i%len(nodes)]
			switch i % 23 {
			case 5:
				n.st.Expire()
			default:
				n.st.InjectConnectionLoss(1, i%2 == 0)
			}
		}
	}()
	for _, id := range ids {
		wctx, wcancel := context.WithTimeout(e.ctx, 30*time.Second)
		j, err := e.q.Wait(wctx, id)
		wcancel()
		if err != nil {
			t.Fatalf("job %d: %v (completed %d)", id, err, lg.count())
		}
		if j.State != StateDone {
			t.Errorf("job %d ended %s", id, j.State)
		}
	}
	cancel()
	<-chaos
	wg.Wait()
	want := jobs + 50
	if lg.count() != want {
		t.Errorf("%d distinct completions, want %d", lg.count(), want)
	}
	reruns := 0
	for k, n := range lg.completed {
		if n != 1 {
			t.Errorf("%s completed %d times", k, n)
		}
		reruns += lg.runs[k] - 1
	}
	var st Stats
	for _, n := range nodes {
		s := n.q.Stats()
		st.UnknownResolved += s.UnknownResolved
		st.UnknownApplied += s.UnknownApplied
		st.Recovered += s.Recovered
		st.LeasesLost += s.LeasesLost
		st.LostRaces += s.LostRaces
	}
	t.Logf("reruns %d, unknown outcomes resolved %d (applied %d), recovered %d, leases lost %d, lost races %d",
		reruns, st.UnknownResolved, st.UnknownApplied, st.Recovered, st.LeasesLost, st.LostRaces)
	if st.UnknownResolved == 0 || st.Recovered == 0 {
		t.Errorf("chaos did not bite: %+v", st)
	}
}

// TestArrayFinishHeals: the executor that settles an array job's last task
// fails to finish the job (as if it died right after settling); the next
// recovery scan, or the next consumer that looks at the job, finishes it.
func TestArrayFinishHeals(t *testing.T) {
	for _, by := range []string{"recover", "consumer"} {
		t.Run(by, func(t *testing.T) {
			e := newEnv(t)
			rule := &faultRule{kind: "finish", nth: 1, err: coord.ErrNoAuth}
			st := &faulty{Store: e.session(), rule: rule}
			ex, err := e.queue(st).NewExecutor(ExecutorConfig{ID: "x", Info: HostInfo{Slots: 2}})
			ok(t, err)
			ctx, cancel := context.WithCancel(e.ctx)
			done := make(chan error, 1)
			go func() { done <- ex.Run(ctx) }()
			defer func() { cancel(); <-done }()
			s := spec("arr")
			s.Array = &sge.TaskRange{First: 1, Last: 2, Step: 1}
			id := e.submit(s)
			x := &node{ex: ex}
			l1, l2 := x.claim(t, 2), x.claim(t, 2)
			ok(t, l1.Complete(e.ctx, Result{}))
			ok(t, l2.Complete(e.ctx, Result{}))
			if !rule.fired {
				t.Fatal("the finish did not fail")
			}
			j, err := e.q.Get(e.ctx, id)
			ok(t, err)
			if j.State.Final() || j.DoneTasks != 2 {
				t.Fatalf("array %s with %d tasks done", j.State, j.DoneTasks)
			}
			if by == "recover" {
				ok(t, e.q.Recover(e.ctx))
			} else {
				e.node("other", 1).noClaim(t, 50*time.Millisecond)
			}
			j, err = e.q.Get(e.ctx, id)
			ok(t, err)
			if j.State != StateDone || j.DoneTasks != 2 {
				t.Fatalf("array not healed: %s, %d tasks", j.State, j.DoneTasks)
			}
		})
	}
}

// TestCompleteRetriedAfterAppliedError: a settlement is applied but its
// caller sees an error (and gives up resolving it); calling Complete again
// reports success, not a lost lease, and nothing completes twice.
func TestCompleteRetriedAfterAppliedError(t *testing.T) {
	for _, kind := range []string{"finish", "task", "chunk"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			rule := &faultRule{kind: kind, nth: 1, applied: true, err: coord.ErrNoAuth}
			st := &faulty{Store: e.session(), rule: rule}
			ex, err := e.queue(st).NewExecutor(ExecutorConfig{ID: "x", Info: HostInfo{Slots: 3}})
			ok(t, err)
			ctx, cancel := context.WithCancel(e.ctx)
			done := make(chan error, 1)
			go func() { done <- ex.Run(ctx) }()
			defer func() { cancel(); <-done }()
			x := &node{ex: ex}
			var id int64
			if kind == "finish" {
				id = e.submit(spec("j"))
			} else {
				s := spec("arr")
				s.Array = &sge.TaskRange{First: 1, Last: 3, Step: 1}
				id = e.submit(s)
			}
			var leases []*Lease
			if kind == "finish" {
				leases = append(leases, x.claim(t, 1))
			} else {
				for range 3 {
					leases = append(leases, x.claim(t, 3))
				}
			}
			for _, l := range leases {
				err := l.Complete(e.ctx, Result{})
				if err != nil {
					if !rule.fired {
						t.Fatal(err)
					}
					ok(t, l.Complete(e.ctx, Result{})) // the retry
				}
			}
			if !rule.fired {
				t.Fatal("fault did not fire")
			}
			j, err := e.q.Get(e.ctx, id)
			ok(t, err)
			if j.State != StateDone {
				t.Fatalf("job %s", j.State)
			}
			acct, err := e.q.Accounting(e.ctx, id)
			ok(t, err)
			if len(acct) != len(leases) {
				t.Fatalf("%d accounting records for %d runs", len(acct), len(leases))
			}
		})
	}
}

// TestLostChunkRerunFirst: an array chunk's executor dies (unnoticed by
// it) after its task ran; the task is given back, rerun and completed by
// another executor; the dead one then settles its chunk: that is a lost
// lease (ErrLeaseLost), not an error, and the task completed once, by the
// rerun.
func TestLostChunkRerunFirst(t *testing.T) {
	for _, chunk := range []int{1, 2} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			e := newEnv(t)
			a := e.nodeCfg(ExecutorConfig{ID: "a", Info: HostInfo{Slots: 2}, MaxChunk: chunk})
			s := spec("arr")
			s.Array = &sge.TaskRange{First: 1, Last: chunk, Step: 1}
			id := e.submit(s)
			var leases []*Lease
			for range chunk {
				leases = append(leases, a.claim(t, 2))
			}
			a.stop()
			a.st.Expire()
			ok(t, e.q.Recover(e.ctx))
			b := e.node("b", 2)
			for range chunk {
				l := b.claim(t, 2)
				ok(t, l.Complete(e.ctx, Result{}))
			}
			for _, l := range leases {
				if err := l.Complete(e.ctx, Result{}); !errors.Is(err, ErrLeaseLost) {
					t.Errorf("dead executor's task %d settled: %v, want ErrLeaseLost", l.Task(), err)
				}
			}
			acct, err := e.q.Accounting(e.ctx, id)
			ok(t, err)
			for _, a := range acct {
				if a.State == StateDone && a.Executor != "b" {
					t.Errorf("task %d completed by %s", a.Task, a.Executor)
				}
			}
			j, err := e.q.Wait(e.ctx, id)
			ok(t, err)
			if j.State != StateDone || j.DoneTasks != chunk {
				t.Errorf("array %s, %d tasks done", j.State, j.DoneTasks)
			}
		})
	}
}
