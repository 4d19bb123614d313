package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Lease is an executor's right to run one job, or one task of an array
// job, until it settles it with Complete or Release. A lease whose claim
// vanished (the node's session died) can no longer be settled: its job
// will run again elsewhere.
type Lease struct {
	ch    *chunk
	task  int
	slots int

	deleted   chan struct{}
	delOnce   sync.Once
	isDeleted atomic.Bool
	settled   bool // guarded by ch.mu
}

// errSettledBefore: reload found the job finished by this very claim.
var errSettledBefore = errors.New("jobqueue: settled before")

// chunk is one claim: a job, or a chunk of an array job's tasks.
type chunk struct {
	e     *Executor
	name  claimName
	info  claimInfo
	array bool

	mu   sync.Mutex // serialises the claim's settlement writes
	rec  *record    // latest record known (version ver)
	ver  int32
	open int // leases not settled

	completed []int        // array tasks whose completion record is written
	requeue   []int        // array tasks to give back (released, rescheduled)
	errTasks  []int        // array tasks put in error
	errReason string       // reason of the last error
	history   []Accounting // rescheduled or errored runs

	leases   []*Lease
	lost     chan struct{}
	lostOnce sync.Once

	// A slave share of a parallel job (see Lease.Slave): started closes
	// when the job starts on its master, finished when it ended or the
	// gang gave up; deadline is when an unstarted share gives up.
	slave      bool
	started    chan struct{}
	startOnce  sync.Once
	finished   chan struct{}
	finishOnce sync.Once
	deadline   time.Time
}

func (c *chunk) markStarted()  { c.startOnce.Do(func() { close(c.started) }) }
func (c *chunk) markFinished() { c.finishOnce.Do(func() { close(c.finished) }) }

// Slave reports whether the lease is a slave share of a parallel job
// whose PE spans hosts: it holds Slots() slots on this node for the job,
// whose master runs it elsewhere with a PE_HOSTFILE listing this node
// (loose integration: nothing runs here unless the job starts it, e.g.
// over ssh). Keep the slots until Finished is closed, then Release. A
// slave whose job has not started within ExecutorConfig.GangTimeout gives
// its share back by itself (Finished closes).
func (l *Lease) Slave() bool { return l.ch.slave }

// Started is closed when the job runs: at once for everything but a slave
// lease, whose job starts when its master has gathered all slots.
func (l *Lease) Started() <-chan struct{} { return l.ch.started }

// Finished is closed when the lease is settled or lost, and for a slave
// lease when its job ended (or gave up gathering slots).
func (l *Lease) Finished() <-chan struct{} { return l.ch.finished }

// JobID is the job's id.
func (l *Lease) JobID() int64 { return l.ch.name.ID }

// Task is the array task id (0 for a job that is not an array job).
func (l *Lease) Task() int { return l.task }

// Claim is the claim number: 1 for the first run, higher for reruns.
func (l *Lease) Claim() int { return l.ch.name.N }

// Restarted reports whether the job ran before (Grid Engine's RESTARTED).
func (l *Lease) Restarted() bool { return l.ch.rec.Restarts > 0 }

// Spec is the job's specification. Do not modify it.
func (l *Lease) Spec() *sge.JobSpec { return l.ch.rec.Spec }

// Slots is the number of slots granted (NSLOTS).
func (l *Lease) Slots() int { return l.slots }

// Hosts is the PE allocation (PE_HOSTFILE), master first: this node with
// the granted slots, and for a parallel job that gathered slots from
// several executors, theirs. NSLOTS is the sum of their slots; Slots is
// this node's part.
func (l *Lease) Hosts() []PEHost {
	if len(l.ch.info.Hosts) > 0 {
		return slices.Clone(l.ch.info.Hosts)
	}
	return []PEHost{{Executor: l.ch.info.Executor, Host: l.ch.info.Host, Slots: l.slots}}
}

// Job is a snapshot of the job as claimed.
func (l *Lease) Job() *Job {
	j := l.ch.e.q.view(l.ch.rec.clone())
	return j
}

// Deleted is closed when the job (or this task) is deleted with qdel: kill
// it, then Complete the lease.
func (l *Lease) Deleted() <-chan struct{} { return l.deleted }

// Lost is closed when the lease's claim is known to be gone (the node's
// session died): kill the job; it runs again elsewhere. Complete then
// returns ErrLeaseLost.
func (l *Lease) Lost() <-chan struct{} { return l.ch.lost }

func (l *Lease) markDeleted() {
	l.isDeleted.Store(true)
	l.delOnce.Do(func() { close(l.deleted) })
}

func (c *chunk) markLost() {
	c.lostOnce.Do(func() {
		close(c.lost)
		c.e.q.stats.leasesLost.Add(1)
	})
	c.markFinished()
	c.e.forget(c)
}

// Complete records the end of the job or task: its accounting, and its
// final state (done, failed, or deleted after qdel), or Eqw (r.Error), or
// a rerun (r.Reschedule). A job completes at most once: if the claim was
// lost, Complete returns ErrLeaseLost and records nothing.
func (l *Lease) Complete(ctx context.Context, r Result) error {
	return l.settle(ctx, &r)
}

// Release gives the job or task back to the queue without running it.
func (l *Lease) Release(ctx context.Context) error {
	return l.settle(ctx, nil)
}

func (l *Lease) settle(ctx context.Context, r *Result) error {
	c := l.ch
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.settled {
		return ErrLeaseSettled
	}
	c.e.unbuffer(l)
	var err error
	last := c.open == 1
	switch {
	case c.slave:
		err = c.settleShare(ctx)
	case !c.array:
		err = c.settleJob(ctx, l, r)
	case last:
		err = c.settleChunk(ctx, l, r)
	default:
		err = c.settleTask(ctx, l, r)
	}
	if errors.Is(err, ErrLeaseLost) {
		l.settled = true
		c.markLost()
		return err
	}
	if err != nil {
		return err
	}
	l.settled = true
	c.open--
	c.e.q.stats.settled.Add(1)
	if c.open == 0 {
		c.markFinished()
		c.e.forget(c)
	}
	return nil
}

// settleShare gives a slave's share back: Multi(Set(record, version)
// without the share, Delete(run), Delete(claim)) - the entry of a gang
// still gathering gets a new revision, so consumers see the free room.
// Nothing is left to do when the job ended or dissolved its gang.
func (c *chunk) settleShare(ctx context.Context) error {
	q := c.e.q
	dropClaim := func() error {
		return retry(ctx, func() error { return ignoreNotFound(q.st.Delete(ctx, q.l.claim(c.name), coord.AnyVersion)) })
	}
	for attempt := 0; ; attempt++ {
		rec, ver, err := q.getRecord(ctx, c.name.ID)
		if errors.Is(err, coord.ErrNotFound) {
			return dropClaim()
		}
		if err != nil {
			return err
		}
		i := rec.share(c.name.N)
		if i < 0 {
			return dropClaim()
		}
		nr := rec.clone()
		nr.Gang = slices.Delete(nr.Gang, i, i+1)
		ops, err := q.recordOps(rec, ver, nr, rec.State == StateQueued)
		if err != nil {
			return err
		}
		ops = append(ops, c.claimOps()...)
		_, err = q.st.Multi(ctx, ops...)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, coord.ErrConnectionLost):
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
			gone, rerr := q.resolve(rctx, q.l.run(c.name), func(ctx context.Context) (bool, error) {
				ok, _, err := q.st.Exists(ctx, q.l.run(c.name))
				return !ok, err
			})
			cancel()
			if rerr != nil {
				return rerr
			}
			q.stats.unknown(gone)
			if gone {
				return dropClaim()
			}
		case coord.Retryable(err), errors.Is(err, coord.ErrSessionExpired):
		default:
			idx, cause := multiErr(err)
			if idx < 0 {
				return fmt.Errorf("jobqueue: give back share %s: %w", c.name, err)
			}
			if ops[idx].NodePath() == q.l.claim(c.name) && errors.Is(cause, coord.ErrNotFound) {
				return ErrLeaseLost
			}
			// Changed meanwhile: look again.
		}
		if perr := pause(ctx, attempt); perr != nil {
			return perr
		}
	}
}

func (c *chunk) accounting(l *Lease, r *Result) Accounting {
	s := c.rec.Spec
	a := Accounting{
		JobID: c.name.ID, Task: l.task, Name: s.Name, Owner: s.Submitter.User, Group: s.Submitter.Group,
		UID: s.Submitter.UID, GID: s.Submitter.GID, Account: s.Account, Project: s.Project,
		Executor: c.info.Executor, Host: c.info.Host, Slots: l.slots, Claim: c.name.N,
		Submitted: c.rec.Submitted, Start: c.info.Start,
	}
	if s.PE != nil {
		a.PE = s.PE.Name
	}
	if r != nil {
		a.ExitStatus, a.Signal, a.Failed, a.FailedReason = r.ExitStatus, r.Signal, r.Failed, r.FailedReason
		a.WallClock, a.UserCPU, a.SystemCPU, a.MaxRSS = r.WallClock, r.UserCPU, r.SystemCPU, r.MaxRSS
		if !r.Start.IsZero() {
			a.Start = r.Start
		}
		a.End = r.End
	}
	if a.End.IsZero() {
		a.End = c.e.q.now()
	}
	return a
}

// finalState is the state a run's result gives a job or task.
func finalState(deleting bool, r *Result) State {
	switch {
	case deleting:
		return StateDeleted
	case r.Failed != 0:
		return StateFailed
	}
	return StateDone
}

// settleJob settles a job that is not an array job, in one transaction:
// finished: Multi(Delete(record, version), Delete(claim), Delete(run),
// Delete(name index), Create(done)); otherwise Multi(Set(record, version),
// Delete(claim), Delete(run), [Create(entry)]). The claim delete fails if
// the claim vanished, so a lost lease never completes.
func (c *chunk) settleJob(ctx context.Context, l *Lease, r *Result) error {
	q := c.e.q
	if l.isDeleted.Load() && c.rec.State != StateDeleting {
		if err := c.reload(ctx); errors.Is(err, errSettledBefore) {
			return nil
		} else if err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		rec := c.rec
		nr := rec.clone()
		nr.Claim, nr.Settled = nil, c.name.N
		deleting := rec.State == StateDeleting
		acct := c.accounting(l, r)
		var to State
		switch {
		case r == nil && deleting:
			to = StateDeleted
		case r == nil:
			to = nr.pendingState() // released: not a run
		case r.Reschedule && !deleting:
			to = nr.pendingState()
			nr.Rescheduled, nr.Restarts = true, nr.Restarts+1
		case r.Error && !deleting:
			to = StateError
			nr.ErrorReason, nr.ErrorTime = r.FailedReason, acct.End
		default:
			to = finalState(deleting, r)
		}
		if err := nr.setState(to); err != nil {
			return err
		}
		acct.State = to
		if to.Final() {
			nr.Final, nr.Finished = &acct, acct.End
		} else if r != nil {
			nr.History = append(nr.History, acct)
		}
		ops, err := q.recordOps(rec, c.ver, nr, false)
		if err != nil {
			return err
		}
		ops = append(ops, c.claimOps()...)
		_, err = q.st.Multi(ctx, ops...)
		if err == nil {
			return nil
		}
		if errors.Is(err, coord.ErrConnectionLost) {
			applied, rerr := c.resolveJobSettle(ctx, to.Final())
			if rerr != nil {
				return rerr
			}
			if applied {
				return nil
			}
			continue
		}
		if errors.Is(err, coord.ErrUnavailable) || errors.Is(err, coord.ErrSessionExpired) {
			if perr := pause(ctx, attempt); perr != nil {
				return perr
			}
			continue
		}
		idx, cause := multiErr(err)
		if idx < 0 {
			return fmt.Errorf("jobqueue: settle job %d: %w", rec.ID, err)
		}
		if idx == 0 {
			// The record changed (qdel, qalter, qhold while running) or is
			// gone: read it again; it must still name this claim.
			if err := c.reload(ctx); errors.Is(err, errSettledBefore) {
				return nil
			} else if err != nil {
				return err
			}
			continue
		}
		if errors.Is(cause, coord.ErrNotFound) && ops[idx].NodePath() == q.l.claim(c.name) {
			return ErrLeaseLost
		}
		return fmt.Errorf("jobqueue: settle job %d: %w", rec.ID, err)
	}
}

func (c *chunk) claimOps() []coord.Op {
	q := c.e.q
	return []coord.Op{
		&coord.DeleteOp{Path: q.l.claim(c.name), Version: coord.AnyVersion},
		&coord.DeleteOp{Path: q.l.run(c.name), Version: coord.AnyVersion},
	}
}

// reload re-reads the record of a job that is not an array job after a
// version conflict; ErrLeaseLost if it no longer names this claim.
func (c *chunk) reload(ctx context.Context) error {
	q := c.e.q
	rec, ver, err := q.getRecord(ctx, c.name.ID)
	if errors.Is(err, coord.ErrNotFound) {
		// Finished: by this claim (an earlier Complete whose outcome was
		// not learnt), or by someone else once our claim was gone.
		d, err := q.getDone(ctx, c.name.ID)
		if err == nil && d.Settled == c.name.N && d.Final != nil && d.Final.Claim == c.name.N {
			return errSettledBefore
		}
		return ErrLeaseLost
	}
	if err != nil {
		return err
	}
	if rec.Claim == nil || rec.Claim.N != c.name.N {
		return ErrLeaseLost
	}
	c.rec, c.ver = rec, ver
	return nil
}

// resolveJobSettle settles an unknown outcome: the done record (final) or
// the record's Settled field names our claim iff it was applied. When it
// was not and our claim is gone, the lease is lost.
func (c *chunk) resolveJobSettle(ctx context.Context, final bool) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	q := c.e.q
	var claimGone bool
	applied, err := q.resolve(ctx, q.l.job(c.name.ID), func(ctx context.Context) (bool, error) {
		if final {
			data, _, err := q.st.Get(ctx, q.l.done(c.name.ID))
			if err == nil {
				d, err := decodeRecord(q.l.done(c.name.ID), data)
				if err != nil {
					return false, err
				}
				return d.Final != nil && d.Final.Claim == c.name.N && d.Settled == c.name.N, nil
			}
			if !errors.Is(err, coord.ErrNotFound) {
				return false, err
			}
		} else {
			data, _, err := q.st.Get(ctx, q.l.job(c.name.ID))
			if err == nil {
				rec, err := decodeRecord(q.l.job(c.name.ID), data)
				if err != nil {
					return false, err
				}
				if rec.Settled == c.name.N && (rec.Claim == nil || rec.Claim.N != c.name.N) {
					return true, nil
				}
			} else if !errors.Is(err, coord.ErrNotFound) {
				return false, err
			}
		}
		ok, _, err := q.st.Exists(ctx, q.l.claim(c.name))
		claimGone = !ok
		return false, err
	})
	if err != nil {
		return false, err
	}
	q.stats.unknown(applied)
	if !applied && claimGone {
		return false, ErrLeaseLost
	}
	return applied, nil
}

// settleTask records the end of one array task while other tasks of its
// chunk still run: a normal end writes the task's completion record,
// checked against the claim, Multi(Check(claim), Create(task record));
// other ends are applied to the job record when the chunk settles.
func (c *chunk) settleTask(ctx context.Context, l *Lease, r *Result) error {
	if !taskCompletes(l, r) {
		c.note(l, r)
		return nil
	}
	q := c.e.q
	acct := c.accounting(l, r)
	acct.State = finalState(l.isDeleted.Load(), r)
	data, err := encode(acct)
	if err != nil {
		return err
	}
	ops := []coord.Op{
		&coord.CheckOp{Path: q.l.claim(c.name), Version: coord.AnyVersion},
		&coord.CreateOp{Path: q.l.task(c.name.ID, l.task), Data: data},
	}
	for attempt := 0; ; attempt++ {
		_, err := q.st.Multi(ctx, ops...)
		switch {
		case err == nil:
			c.completed = append(c.completed, l.task)
			return nil
		case errors.Is(err, coord.ErrConnectionLost):
			applied, rerr := c.resolveTask(ctx, l.task)
			if rerr != nil {
				return rerr
			}
			if applied {
				c.completed = append(c.completed, l.task)
				return nil
			}
			continue
		case errors.Is(err, coord.ErrUnavailable), errors.Is(err, coord.ErrSessionExpired):
			if perr := pause(ctx, attempt); perr != nil {
				return perr
			}
			continue
		}
		idx, cause := multiErr(err)
		if idx == 1 && errors.Is(cause, coord.ErrExists) {
			// Written before by a Complete whose outcome was not learnt?
			if ours, err := c.taskDoneByUs(ctx, l.task); err != nil {
				return err
			} else if ours {
				c.completed = append(c.completed, l.task)
				return nil
			}
		}
		if idx == 0 && errors.Is(cause, coord.ErrNotFound) {
			return ErrLeaseLost
		}
		return fmt.Errorf("jobqueue: complete task %d.%d: %w", c.name.ID, l.task, err)
	}
}

// taskCompletes reports whether an array task's end writes its completion
// record (it ran to an end, or was deleted), rather than giving the task
// back (released, rescheduled) or putting it in error.
func taskCompletes(l *Lease, r *Result) bool {
	return l.isDeleted.Load() || (r != nil && !r.Reschedule && !r.Error)
}

// note records locally an array task's end that changes the job record,
// applied when the chunk settles.
func (c *chunk) note(l *Lease, r *Result) {
	if slices.Contains(c.requeue, l.task) || slices.Contains(c.errTasks, l.task) {
		return
	}
	if r == nil {
		c.requeue = append(c.requeue, l.task)
		return
	}
	a := c.accounting(l, r)
	if r.Error {
		a.State = StateError
		c.errTasks = append(c.errTasks, l.task)
		c.errReason = r.FailedReason
	} else {
		a.State = StateQueued
		c.requeue = append(c.requeue, l.task)
	}
	c.history = append(c.history, a)
}

// resolveTask: a task record written by this claim exists iff applied.
func (c *chunk) resolveTask(ctx context.Context, task int) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	q := c.e.q
	var claimGone bool
	applied, err := q.resolve(ctx, q.l.task(c.name.ID, task), func(ctx context.Context) (bool, error) {
		ok, err := c.taskDoneByUs(ctx, task)
		if err != nil || ok {
			return ok, err
		}
		ok, _, err = q.st.Exists(ctx, q.l.claim(c.name))
		claimGone = !ok
		return false, err
	})
	if err != nil {
		return false, err
	}
	q.stats.unknown(applied)
	if !applied && claimGone {
		return false, ErrLeaseLost
	}
	return applied, nil
}

func (c *chunk) taskDoneByUs(ctx context.Context, task int) (bool, error) {
	q := c.e.q
	data, _, err := q.st.Get(ctx, q.l.task(c.name.ID, task))
	if errors.Is(err, coord.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	a, err := decodeAccounting(q.l.task(c.name.ID, task), data)
	if err != nil {
		return false, err
	}
	return a.Claim == c.name.N, nil
}

// settleChunk settles the last open task of an array chunk together with
// the chunk. Usually all its tasks completed: Multi(Delete(claim),
// Delete(run), [Create(task record)]), without touching the job record, which the
// consumers claiming other tasks are writing. Tasks given back or put in
// error are counted into the record: then the Multi also holds Set(record,
// version) - or the finishing transaction when that ended the job. Then,
// the job is finished if this was its last running task.
func (c *chunk) settleChunk(ctx context.Context, l *Lease, r *Result) error {
	q := c.e.q
	id := c.name.ID
	var taskData []byte
	completes := taskCompletes(l, r)
	if completes {
		acct := c.accounting(l, r)
		acct.State = finalState(l.isDeleted.Load(), r)
		var err error
		if taskData, err = encode(acct); err != nil {
			return err
		}
	} else {
		c.note(l, r)
	}
	touch := len(c.requeue) > 0 || len(c.errTasks) > 0
	applied := false
	for attempt := 0; ; attempt++ {
		// The claim's delete comes first: a Multi reports its first failing
		// op, and a claim that vanished (the lease is lost and its tasks
		// given back) must be told from a task record another claim wrote
		// when it reran the task.
		ops := c.claimOps()
		if completes {
			ops = append(ops, &coord.CreateOp{Path: q.l.task(id, l.task), Data: taskData})
		}
		if touch {
			rec, ver, err := q.getRecord(ctx, id)
			if errors.Is(err, coord.ErrNotFound) {
				return ErrLeaseLost
			}
			if err != nil {
				return err
			}
			done, err := q.doneTasks(ctx, id)
			if err != nil {
				return err
			}
			if completes {
				done++
			}
			nr := rec.clone()
			a := nr.Array
			a.Claimed -= len(c.requeue) + len(c.errTasks)
			if nr.State != StateDeleting {
				a.Reruns = sortedInts(append(a.Reruns, c.requeue...))
				a.ErrorTasks = sortedInts(append(a.ErrorTasks, c.errTasks...))
				if len(c.errTasks) > 0 {
					nr.ErrorReason, nr.ErrorTime = c.errReason, q.now()
				}
			}
			nr.History = append(nr.History, c.history...)
			nr.Settled = c.name.N
			arrayDone(nr, done)
			// A new entry name: consumers see the tasks given back.
			jops, err := q.recordOps(rec, ver, nr, len(c.requeue) > 0)
			if err != nil {
				return err
			}
			ops = append(ops, jops...)
		}
		_, err := q.st.Multi(ctx, ops...)
		if err == nil {
			break
		}
		if errors.Is(err, coord.ErrConnectionLost) {
			applied, rerr := c.resolveChunk(ctx, completes, l.task)
			if rerr != nil {
				return rerr
			}
			if applied {
				break
			}
			continue
		}
		if errors.Is(err, coord.ErrUnavailable) || errors.Is(err, coord.ErrSessionExpired) {
			if perr := pause(ctx, attempt); perr != nil {
				return perr
			}
			continue
		}
		idx, cause := multiErr(err)
		if idx < 0 {
			return fmt.Errorf("jobqueue: settle tasks of job %d: %w", id, err)
		}
		switch p := ops[idx].NodePath(); {
		case p == q.l.claim(c.name) && errors.Is(cause, coord.ErrNotFound):
			if !completes {
				return ErrLeaseLost
			}
			// Settled before by a Complete whose outcome was not learnt
			// (only this transaction writes this task's record, with the
			// claim's delete), or lost (the task is given back, and its
			// record, if any, is a rerun's)?
			ours, err := c.taskDoneByUs(ctx, l.task)
			if err != nil {
				return err
			}
			if !ours {
				return ErrLeaseLost
			}
			applied = true
		case completes && p == q.l.task(id, l.task) && errors.Is(cause, coord.ErrExists):
			// The claim is there, so the task was not given back: this
			// claim wrote the record (an earlier call), or something is
			// badly wrong.
			ours, err := c.taskDoneByUs(ctx, l.task)
			if err != nil {
				return err
			}
			if !ours {
				return fmt.Errorf("jobqueue: settle tasks of job %d: %w", id, cause)
			}
			applied = true
		case p == q.l.job(id) || strings.HasPrefix(p, q.l.dir(queueDir)+"/"):
			continue // the record changed: count again
		default:
			return fmt.Errorf("jobqueue: settle tasks of job %d: %w", id, err)
		}
		if applied {
			break
		}
	}
	if _, err := q.finishArray(ctx, id); err != nil {
		// The claim is settled; the next consumer or recovery finishes the
		// job.
		c.e.log.Warn("finishing array job", "job", id, "err", err)
	}
	return nil
}

// resolveChunk: applied iff our task record exists (when the settlement
// wrote one) or our run entry is gone while... the claim is gone too.
func (c *chunk) resolveChunk(ctx context.Context, completes bool, task int) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	q := c.e.q
	var claimGone bool
	applied, err := q.resolve(ctx, q.l.run(c.name), func(ctx context.Context) (bool, error) {
		if completes {
			ok, err := c.taskDoneByUs(ctx, task)
			if err != nil || ok {
				return ok, err
			}
		}
		ok, _, err := q.st.Exists(ctx, q.l.claim(c.name))
		if err != nil {
			return false, err
		}
		claimGone = !ok
		if completes || ok {
			return false, nil
		}
		// Nothing of ours to look for: the claim is gone, so the chunk was
		// settled by this write, or will be recovered; either way the run
		// entry tells.
		ok, _, err = q.st.Exists(ctx, q.l.run(c.name))
		return !ok, err
	})
	if err != nil {
		return false, err
	}
	q.stats.unknown(applied)
	if !applied && claimGone {
		return false, ErrLeaseLost
	}
	return applied, nil
}
