package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// view turns a record into a Job (without the parts that need reads).
func (q *Queue) view(r *record) *Job {
	j := &Job{
		ID: r.ID, Spec: r.Spec, State: r.State, Holds: r.Holds, Predecessors: slices.Clone(r.Preds),
		Submitted: r.Submitted, Restarts: r.Restarts, Rescheduled: r.Rescheduled,
		ErrorReason: r.ErrorReason, ErrorTime: r.ErrorTime, DeletedBy: r.DeletedBy,
		Final: r.Final, Finished: r.Finished,
	}
	if r.Claim != nil {
		j.Running = []Run{runOf(r.Claim, nil)}
	}
	if r.Array != nil {
		if !r.State.Final() {
			j.Pending = r.unclaimed()
		}
		j.ErrorTasks = slices.Clone(r.Array.ErrorTasks)
	}
	return j
}

func runOf(c *claimInfo, tasks []int) Run {
	return Run{Claim: c.N, Executor: c.Executor, Host: c.Host, Start: c.Start, Slots: c.Slots, Tasks: tasks, Hosts: slices.Clone(c.Hosts)}
}

// Get returns a job, active or finished, with its waiting predecessors and
// running claims. ErrNoSuchJob if the id is unknown.
func (q *Queue) Get(ctx context.Context, id int64) (*Job, error) {
	rec, _, err := q.getRecord(ctx, id)
	if errors.Is(err, coord.ErrNotFound) {
		// Jobs move from jobs/ to done/ and never back: look there next.
		d, err := q.getDone(ctx, id)
		if errors.Is(err, coord.ErrNotFound) {
			return nil, fmt.Errorf("%w: %d", ErrNoSuchJob, id)
		}
		if err != nil {
			return nil, err
		}
		j := q.view(d)
		if d.isArray() {
			if j.DoneTasks, err = q.doneTasks(ctx, id); err != nil {
				return nil, err
			}
		}
		return j, nil
	}
	if err != nil {
		return nil, err
	}
	j := q.view(rec)
	if rec.isArray() {
		if j.DoneTasks, err = q.doneTasks(ctx, id); err != nil {
			return nil, err
		}
	}
	for _, p := range rec.Preds {
		ok, _, err := q.exists(ctx, q.l.job(p))
		if err != nil {
			return nil, err
		}
		if ok {
			j.Waiting = append(j.Waiting, p)
		}
	}
	runs, err := q.runsOf(ctx, map[int64]bool{id: true})
	if err != nil {
		return nil, err
	}
	if rec.isArray() {
		j.Running = runs[id]
	}
	if rec.Claim != nil {
		ok, _, err := q.exists(ctx, q.l.claim(claimName{ID: id, N: rec.Claim.N}))
		if err != nil {
			return nil, err
		}
		j.Running[0].Lost = !ok
	}
	return j, nil
}

// runsOf returns the running claims of the given array jobs, from run/.
func (q *Queue) runsOf(ctx context.Context, ids map[int64]bool) (map[int64][]Run, error) {
	kids, err := q.children(ctx, q.l.dir(runDir))
	if err != nil {
		return nil, err
	}
	claims := map[string]bool{}
	if len(kids) > 0 {
		cl, err := q.children(ctx, q.l.dir(claimsDir))
		if err != nil {
			return nil, err
		}
		for _, c := range cl {
			claims[c] = true
		}
	}
	out := map[int64][]Run{}
	for _, k := range kids {
		cn, err := parseClaim(k)
		if err != nil || !ids[cn.ID] {
			continue
		}
		var data []byte
		err = retry(ctx, func() (err error) {
			data, _, err = q.st.Get(ctx, q.l.run(cn))
			return err
		})
		if errors.Is(err, coord.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info, err := decodeClaim(q.l.run(cn), data)
		if err != nil {
			return nil, err
		}
		r := runOf(info, info.Tasks)
		r.Lost = !claims[k]
		out[cn.ID] = append(out[cn.ID], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b Run) int { return a.Claim - b.Claim })
	}
	return out, nil
}

// Filter selects jobs for List.
type Filter struct {
	// Users keeps the jobs of these users ("*" or empty: all).
	Users []string
	// States keeps jobs in these states (empty: all active states).
	States []State
	// IDs keeps these jobs (empty: all).
	IDs []int64
}

func (f Filter) match(j *Job) bool {
	if len(f.Users) > 0 && !slices.Contains(f.Users, "*") && !slices.Contains(f.Users, j.Spec.Submitter.User) {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, j.State) {
		return false
	}
	return true
}

// List returns the active jobs that match f, ordered by id, with their
// running claims and the predecessors they wait for.
func (q *Queue) List(ctx context.Context, f Filter) ([]*Job, error) {
	var ids []int64
	kids, err := q.children(ctx, q.l.dir(jobsDir))
	if err != nil {
		return nil, err
	}
	active := make(map[int64]bool, len(kids))
	for _, k := range kids {
		id, err := parseID(k)
		if err != nil {
			continue
		}
		active[id] = true
		if len(f.IDs) == 0 || slices.Contains(f.IDs, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	recs := make([]*record, len(ids))
	// Read the records with a few concurrent requests (joined below).
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	next := make(chan int)
	for range min(8, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r, _, err := q.getRecord(ctx, ids[i])
				if errors.Is(err, coord.ErrNotFound) {
					continue // finished meanwhile
				}
				recs[i], errs[i] = r, err
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []*Job
	arrays := map[int64]bool{}
	for _, r := range recs {
		if r == nil {
			continue
		}
		j := q.view(r)
		if !f.match(j) {
			continue
		}
		for _, p := range r.Preds {
			if active[p] {
				j.Waiting = append(j.Waiting, p)
			}
		}
		if r.isArray() {
			arrays[r.ID] = true
		}
		out = append(out, j)
	}
	if len(arrays) > 0 {
		runs, err := q.runsOf(ctx, arrays)
		if err != nil {
			return nil, err
		}
		for _, j := range out {
			if arrays[j.ID] {
				j.Running = runs[j.ID]
				if j.DoneTasks, err = q.doneTasks(ctx, j.ID); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// Resolve turns job references (ids, names, wildcard patterns of names,
// as qdel and qstat -j accept them) into the ids of active jobs; ids are
// kept as given even when unknown, names that match nothing are returned
// in unknown.
func (q *Queue) Resolve(ctx context.Context, refs []string) (ids []int64, unknown []string, err error) {
	pr := &predResolver{q: q, active: map[int64]bool{}}
	for _, ref := range refs {
		if id, perr := parseID(ref); perr == nil {
			ids = append(ids, id)
			continue
		}
		got, err := pr.resolveOne(ctx, ref, nil)
		if err != nil {
			return nil, nil, err
		}
		if len(got) == 0 {
			unknown = append(unknown, ref)
		}
		ids = append(ids, got...)
	}
	return sortedIDs(ids), unknown, nil
}

// allowed reports whether user may change the job: its owner, root, or
// anyone when user is "" (the caller checked).
func allowed(user string, r *record) error {
	if user == "" || user == "root" || user == r.Spec.Submitter.User {
		return nil
	}
	return fmt.Errorf("%w: %s may not modify job %d of %s", ErrPermission, user, r.ID, r.Spec.Submitter.User)
}

// update applies fn to a job's record in a versioned read-modify-write
// transaction (with the queue entry, name index and whatever fn adds), and
// retries on conflicts. An unknown outcome is resolved by the operation's
// token written into the record. fn sees the current record (rec) and
// edits its copy (nr).
func (q *Queue) update(ctx context.Context, id int64, rename bool, fn func(rec, nr *record) ([]coord.Op, error)) (*record, error) {
	tok := token()
	for attempt := 0; ; attempt++ {
		rec, ver, err := q.getRecord(ctx, id)
		if errors.Is(err, coord.ErrNotFound) {
			if _, derr := q.getDone(ctx, id); derr == nil {
				return nil, fmt.Errorf("%w: %d", ErrFinished, id)
			}
			return nil, fmt.Errorf("%w: %d", ErrNoSuchJob, id)
		}
		if err != nil {
			return nil, err
		}
		nr := rec.clone()
		nr.Op = tok
		extra, err := fn(rec, nr)
		if err != nil {
			return nil, err
		}
		if rec.isArray() {
			done, err := q.doneTasks(ctx, id)
			if err != nil {
				return nil, err
			}
			arrayDone(nr, done)
		}
		ops, err := q.recordOps(rec, ver, nr, rename)
		if err != nil {
			return nil, err
		}
		ops = append(ops, extra...)
		_, err = q.st.Multi(ctx, ops...)
		if err == nil {
			return nr, nil
		}
		switch {
		case errors.Is(err, coord.ErrConnectionLost):
			applied, rerr := q.resolve(ctx, q.l.job(id), func(ctx context.Context) (bool, error) {
				for _, p := range []string{q.l.job(id), q.l.done(id)} {
					data, _, err := q.st.Get(ctx, p)
					if errors.Is(err, coord.ErrNotFound) {
						continue
					}
					if err != nil {
						return false, err
					}
					r, err := decodeRecord(p, data)
					if err != nil {
						return false, err
					}
					return r.Op == tok, nil
				}
				return false, nil
			})
			if rerr != nil {
				return nil, rerr
			}
			q.stats.unknown(applied)
			if applied {
				return nr, nil
			}
		case coord.Retryable(err), errors.Is(err, coord.ErrSessionExpired):
		default:
			idx, cause := multiErr(err)
			if idx < 0 {
				return nil, fmt.Errorf("jobqueue: update job %d: %w", id, err)
			}
			p := ops[idx].NodePath()
			if errors.Is(cause, coord.ErrNotFound) && strings.HasPrefix(p, q.l.dir(signalDir)+"/") {
				// The executor's signal directory is missing: make it.
				if err := retry(ctx, func() error { return coord.EnsurePath(ctx, q.st, coord.Parent(p)) }); err != nil {
					return nil, err
				}
			} else if p != q.l.job(id) && !strings.HasPrefix(p, q.l.dir(queueDir)+"/") && !strings.HasPrefix(p, q.l.dir(signalDir)+"/") {
				return nil, fmt.Errorf("jobqueue: update job %d: %w", id, err)
			}
			// A concurrent change: read again.
		}
		if perr := pause(ctx, attempt); perr != nil {
			return nil, perr
		}
	}
}

// DeleteResult says what Delete did.
type DeleteResult int

const (
	// Deleted: the job was pending (or its executor is gone) and is now
	// finished as deleted ("has deleted job").
	Deleted DeleteResult = iota + 1
	// Registered: the job runs; its executor was signalled to kill it and
	// it is in dr until then ("has registered the job for deletion").
	Registered
)

// Delete deletes a job (qdel) on behalf of user ("" skips the owner
// check): a pending job is finished as deleted at once; a running one
// goes to dr and its executor is signalled (through a watch) to kill it.
// ErrAlreadyDeleting if it is in dr already.
func (q *Queue) Delete(ctx context.Context, id int64, user string) (DeleteResult, error) {
	var res DeleteResult
	_, err := q.update(ctx, id, false, func(rec, nr *record) ([]coord.Op, error) {
		if err := allowed(user, rec); err != nil {
			return nil, err
		}
		nr.DeletedBy = user
		if rec.isArray() {
			return q.deleteArray(ctx, rec, nr, nil, &res, nil)
		}
		switch rec.State {
		case StateDeleting:
			return nil, fmt.Errorf("%w: %d", ErrAlreadyDeleting, id)
		case StateRunning, StateTransferring:
			if err := nr.setState(StateDeleting); err != nil {
				return nil, err
			}
			cn := claimName{ID: id, N: rec.Claim.N}
			alive, _, err := q.exists(ctx, q.l.claim(cn))
			if err != nil {
				return nil, err
			}
			if !alive {
				// Its executor is gone: finish it as deleted now.
				res = Deleted
				_ = nr.setState(StateDeleted)
				nr.Claim = nil
				return []coord.Op{&coord.DeleteOp{Path: q.l.run(cn), Version: coord.AnyVersion}}, nil
			}
			res = Registered
			return []coord.Op{&coord.CreateOp{Path: q.l.signal(rec.Claim.Executor, cn)}}, nil
		default:
			res = Deleted
			return nil, nr.setState(StateDeleted)
		}
	})
	return res, err
}

// TaskDeletion says what DeleteTasks did with each task.
type TaskDeletion struct {
	// Deleted were pending (or in error) and are removed.
	Deleted []int
	// Registered run; their executors were signalled.
	Registered []int
	// Unknown are not tasks of the job, or already finished.
	Unknown []int
}

// DeleteTasks deletes some tasks of an array job (qdel J.t-u).
func (q *Queue) DeleteTasks(ctx context.Context, id int64, tasks []int, user string) (TaskDeletion, error) {
	var td TaskDeletion
	_, err := q.update(ctx, id, true, func(rec, nr *record) ([]coord.Op, error) {
		if err := allowed(user, rec); err != nil {
			return nil, err
		}
		if !rec.isArray() {
			return nil, fmt.Errorf("%w: job %d is not an array job", ErrInvalidSpec, id)
		}
		if rec.State == StateDeleting {
			return nil, fmt.Errorf("%w: %d", ErrAlreadyDeleting, id)
		}
		td = TaskDeletion{}
		var res DeleteResult
		return q.deleteArray(ctx, rec, nr, tasks, &res, &td)
	})
	return td, err
}

// deleteArray deletes all tasks (tasks == nil) or some tasks of an array
// job: pending ones are dropped, running ones signalled, and claims of
// dead executors recovered first so the job can finish.
func (q *Queue) deleteArray(ctx context.Context, rec, nr *record, tasks []int, res *DeleteResult, td *TaskDeletion) ([]coord.Op, error) {
	if tasks == nil && rec.State == StateDeleting {
		return nil, fmt.Errorf("%w: %d", ErrAlreadyDeleting, rec.ID)
	}
	runs, err := q.runsOf(ctx, map[int64]bool{rec.ID: true})
	if err != nil {
		return nil, err
	}
	for _, r := range runs[rec.ID] {
		if r.Lost {
			// Give the dead claim's tasks back first; the update retries
			// on the record's new version.
			if _, err := q.recoverClaim(ctx, claimName{ID: rec.ID, N: r.Claim}); err != nil {
				return nil, err
			}
		}
	}
	a := nr.Array
	var ops []coord.Op
	*res = Deleted
	if tasks == nil {
		nr.State = StateDeleting // array jobs: the pending part stops
		a.Reruns, a.ErrorTasks = nil, nil
		for _, r := range runs[rec.ID] {
			if r.Lost {
				continue
			}
			*res = Registered
			ops = append(ops, &coord.CreateOp{Path: q.l.signal(r.Executor, claimName{ID: rec.ID, N: r.Claim})})
		}
		return ops, nil
	}
	pending := rec.unclaimed()
	for _, t := range sortedInts(tasks) {
		switch {
		case slices.Contains(pending, t):
			a.Deleted = append(a.Deleted, t)
			a.Reruns = slices.DeleteFunc(a.Reruns, func(x int) bool { return x == t })
			td.Deleted = append(td.Deleted, t)
		case slices.Contains(a.ErrorTasks, t):
			a.ErrorTasks = slices.DeleteFunc(a.ErrorTasks, func(x int) bool { return x == t })
			td.Deleted = append(td.Deleted, t)
		default:
			found := false
			for _, r := range runs[rec.ID] {
				if !r.Lost && slices.Contains(r.Tasks, t) {
					found = true
					td.Registered = append(td.Registered, t)
				}
			}
			if !found {
				td.Unknown = append(td.Unknown, t)
			}
		}
	}
	for _, r := range runs[rec.ID] {
		var sig []int
		for _, t := range td.Registered {
			if slices.Contains(r.Tasks, t) {
				sig = append(sig, t)
			}
		}
		if len(sig) == 0 || r.Lost {
			continue
		}
		data, err := json.Marshal(sig)
		if err != nil {
			return nil, err
		}
		ops = append(ops, &coord.CreateOp{Path: q.l.signal(r.Executor, claimName{ID: rec.ID, N: r.Claim}), Data: data})
	}
	return ops, nil
}

func sortedInts(v []int) []int {
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}

// Hold adds holds (letters u, o, s; Grid Engine's qhold -h) to a job. A
// queued job leaves the queue (hqw); a running one keeps running and is
// held if it has to run again.
func (q *Queue) Hold(ctx context.Context, id int64, holds, user string) error {
	if holds == "" {
		holds = "u"
	}
	if err := validHolds(holds); err != nil {
		return err
	}
	_, err := q.update(ctx, id, false, func(rec, nr *record) ([]coord.Op, error) {
		if err := allowed(user, rec); err != nil {
			return nil, err
		}
		nr.Holds = addHolds(rec.Holds, holds)
		if rec.State == StateQueued {
			return nil, nr.setState(StateHeld)
		}
		return nil, nil
	})
	return err
}

// Release removes holds (qrls); a job without holds left is queued again.
func (q *Queue) Release(ctx context.Context, id int64, holds, user string) error {
	if holds == "" {
		holds = "u"
	}
	if err := validHolds(holds); err != nil {
		return err
	}
	_, err := q.update(ctx, id, false, func(rec, nr *record) ([]coord.Op, error) {
		if err := allowed(user, rec); err != nil {
			return nil, err
		}
		nr.Holds = removeHolds(rec.Holds, holds)
		if rec.State == StateHeld && nr.Holds == "" {
			return nil, nr.setState(StateQueued)
		}
		return nil, nil
	})
	return err
}

// ClearError takes a job (or the array tasks) out of Eqw (qmod -cj).
func (q *Queue) ClearError(ctx context.Context, id int64, user string) error {
	_, err := q.update(ctx, id, false, func(rec, nr *record) ([]coord.Op, error) {
		if err := allowed(user, rec); err != nil {
			return nil, err
		}
		nr.ErrorReason, nr.ErrorTime = "", time.Time{}
		if rec.isArray() {
			nr.Array.Reruns = sortedInts(append(nr.Array.Reruns, nr.Array.ErrorTasks...))
			nr.Array.ErrorTasks = nil
			return nil, nil
		}
		if rec.State != StateError {
			return nil, fmt.Errorf("%w: job %d is not in error state", ErrIllegalTransition, id)
		}
		return nil, nr.setState(nr.pendingState())
	})
	return err
}

// Alteration lists the fields qalter changes; nil fields stay.
type Alteration struct {
	Name            *string
	Priority        *int
	HoldJobs        *[]string
	Resources       *sge.Resources
	TaskConcurrency *int
	Queues          *[]string
	PE              **sge.PERequest
	StartTime       *time.Time
}

// Alter changes a job (qalter). Changes to a running job apply to its
// reruns. New -hold_jid references are resolved as at submission.
func (q *Queue) Alter(ctx context.Context, id int64, a Alteration, user string) error {
	if a.Name != nil {
		if err := validJobName(*a.Name); err != nil {
			return err
		}
	}
	if a.Priority != nil && (*a.Priority < MinPriority || *a.Priority > MaxPriority) {
		return fmt.Errorf("%w: priority %d not in %d..%d", ErrInvalidSpec, *a.Priority, MinPriority, MaxPriority)
	}
	if a.TaskConcurrency != nil && *a.TaskConcurrency < 0 {
		return fmt.Errorf("%w: -tc %d", ErrInvalidSpec, *a.TaskConcurrency)
	}
	_, err := q.update(ctx, id, true, func(rec, nr *record) ([]coord.Op, error) {
		if err := allowed(user, rec); err != nil {
			return nil, err
		}
		if rec.State.Final() || rec.State == StateDeleting {
			return nil, fmt.Errorf("%w: %d", ErrFinished, id)
		}
		spec := *rec.Spec
		if a.Name != nil {
			spec.Name = *a.Name
		}
		if a.Priority != nil {
			spec.Priority = *a.Priority
		}
		if a.Resources != nil {
			spec.Resources = *a.Resources
		}
		if a.TaskConcurrency != nil {
			spec.TaskConcurrency = *a.TaskConcurrency
		}
		if a.Queues != nil {
			spec.Queues = slices.Clone(*a.Queues)
		}
		if a.PE != nil {
			spec.PE = *a.PE
		}
		if a.StartTime != nil {
			spec.StartTime = *a.StartTime
		}
		if a.HoldJobs != nil {
			spec.HoldJobs = slices.Clone(*a.HoldJobs)
			pr := &predResolver{q: q, active: map[int64]bool{}}
			preds, err := pr.resolve(ctx, holdRefs(&spec), id, nil)
			if err != nil {
				return nil, err
			}
			nr.Preds = preds
		}
		if err := validateSpec(&spec); err != nil {
			return nil, err
		}
		nr.Spec = &spec
		return nil, nil
	})
	return err
}

// Wait blocks until the job finishes and returns it (qsub -sync y). It
// watches the job's done record; it does not poll.
func (q *Queue) Wait(ctx context.Context, id int64) (*Job, error) {
	for {
		var ok bool
		var ch <-chan coord.Event
		err := retry(ctx, func() (err error) {
			ok, _, ch, err = q.st.ExistsW(ctx, q.l.done(id))
			return err
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			active, _, err := q.exists(ctx, q.l.job(id))
			if err != nil {
				return nil, err
			}
			if !active {
				ok, _, err = q.exists(ctx, q.l.done(id))
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, fmt.Errorf("%w: %d", ErrNoSuchJob, id)
				}
			}
		}
		if ok {
			d, err := q.getDone(ctx, id)
			if err != nil {
				return nil, err
			}
			j := q.view(d)
			if d.isArray() {
				if j.DoneTasks, err = q.doneTasks(ctx, id); err != nil {
					return nil, err
				}
			}
			return j, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// Accounting returns the accounting records of a job (qacct -j): one per
// run, including rescheduled and lost runs, and one per array task, in
// order of end time. ErrNoSuchJob if the job is unknown or has no record
// yet.
func (q *Queue) Accounting(ctx context.Context, id int64) ([]Accounting, error) {
	var rec *record
	d, err := q.getDone(ctx, id)
	switch {
	case err == nil:
		rec = d
	case errors.Is(err, coord.ErrNotFound):
		rec, _, err = q.getRecord(ctx, id)
		if errors.Is(err, coord.ErrNotFound) {
			return nil, fmt.Errorf("%w: %d", ErrNoSuchJob, id)
		}
		if err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	out := slices.Clone(rec.History)
	if rec.Final != nil && !rec.isArray() {
		out = append(out, *rec.Final)
	}
	if rec.isArray() {
		kids, err := q.children(ctx, q.l.taskDir(id))
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			var data []byte
			p := q.l.taskDir(id) + "/" + k
			err := retry(ctx, func() (err error) {
				data, _, err = q.st.Get(ctx, p)
				return err
			})
			if err != nil {
				return nil, err
			}
			a, err := decodeAccounting(p, data)
			if err != nil {
				return nil, err
			}
			out = append(out, *a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %d has no accounting record yet", ErrNoSuchJob, id)
	}
	slices.SortStableFunc(out, func(a, b Accounting) int {
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return a.Task - b.Task
	})
	return out, nil
}

func decodeAccounting(p string, data []byte) (*Accounting, error) {
	a := &Accounting{}
	if err := json.Unmarshal(data, a); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
	}
	return a, nil
}

// Hosts returns the host registry (qhost): one entry per live executor,
// with the slots its claims use.
func (q *Queue) Hosts(ctx context.Context) ([]HostInfo, error) {
	kids, err := q.children(ctx, q.l.dir(execDir))
	if err != nil {
		return nil, err
	}
	byExec := map[string]HostInfo{}
	for _, k := range kids {
		ex, _, err := parseExec(k)
		if err != nil {
			continue
		}
		var data []byte
		p := q.l.dir(execDir) + "/" + k
		err = retry(ctx, func() (err error) {
			data, _, err = q.st.Get(ctx, p)
			return err
		})
		if errors.Is(err, coord.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var h HostInfo
		if err := json.Unmarshal(data, &h); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
		}
		if old, ok := byExec[ex]; !ok || h.Updated.After(old.Updated) {
			byExec[ex] = h
		}
	}
	runs, err := q.children(ctx, q.l.dir(claimsDir))
	if err != nil {
		return nil, err
	}
	for _, k := range runs {
		cn, err := parseClaim(k)
		if err != nil {
			continue
		}
		var data []byte
		err = retry(ctx, func() (err error) {
			data, _, err = q.st.Get(ctx, q.l.claim(cn))
			return err
		})
		if errors.Is(err, coord.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info, err := decodeClaim(q.l.claim(cn), data)
		if err != nil {
			return nil, err
		}
		if h, ok := byExec[info.Executor]; ok {
			n := 1
			if len(info.Tasks) > 0 {
				n = len(info.Tasks)
			}
			h.SlotsUsed += n * info.Slots
			byExec[info.Executor] = h
		}
	}
	out := make([]HostInfo, 0, len(byExec))
	for _, h := range byExec {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b HostInfo) int { return strings.Compare(a.Host, b.Host) })
	return out, nil
}

// Prune deletes the records of finished jobs with ids below id (their done
// records and array task records), and returns how many jobs it removed.
// qacct and -sync y know nothing of pruned jobs; -hold_jid on them is met.
// Ids increase with submission time, so pruning below an id drops the
// oldest history.
func (q *Queue) Prune(ctx context.Context, below int64) (int, error) {
	kids, err := q.children(ctx, q.l.dir(doneDir))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range kids {
		id, err := parseID(k)
		if err != nil || id >= below {
			continue
		}
		tasks, err := q.children(ctx, q.l.taskDir(id))
		if err != nil {
			return n, err
		}
		var ops []coord.Op
		for _, t := range tasks {
			ops = append(ops, &coord.DeleteOp{Path: q.l.taskDir(id) + "/" + t, Version: coord.AnyVersion})
		}
		if tasks != nil {
			ops = append(ops, &coord.DeleteOp{Path: q.l.taskDir(id), Version: coord.AnyVersion})
		} else if ok, _, err := q.exists(ctx, q.l.taskDir(id)); err != nil {
			return n, err
		} else if ok {
			ops = append(ops, &coord.DeleteOp{Path: q.l.taskDir(id), Version: coord.AnyVersion})
		}
		ops = append(ops, &coord.DeleteOp{Path: q.l.done(id), Version: coord.AnyVersion})
		// Deleting is idempotent: an unknown outcome is settled by trying
		// again, and a node already gone means an earlier try worked.
		for start := 0; start < len(ops); start += q.maxOps {
			chunk := ops[start:min(start+q.maxOps, len(ops))]
			err := retry(ctx, func() error {
				_, err := q.st.Multi(ctx, chunk...)
				if _, cause := multiErr(err); errors.Is(cause, coord.ErrNotFound) {
					for _, op := range chunk {
						if err := ignoreNotFound(q.st.Delete(ctx, op.NodePath(), coord.AnyVersion)); err != nil {
							return err
						}
					}
					return nil
				}
				return err
			})
			if err != nil {
				return n, fmt.Errorf("jobqueue: prune job %d: %w", id, err)
			}
		}
		n++
	}
	return n, nil
}
