package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/agentapi"
)

// backend carries out the Grid Engine commands on the job queue: it is
// the agentapi.Backend of the agent. Every change is made on behalf of the
// verified caller: the queue refuses changes to other users' jobs unless
// the caller is root.
type backend struct {
	q   *jobqueue.Queue
	now func() time.Time
	sub *submitter
}

var _ agentapi.Backend = (*backend)(nil)

// Submit queues the specs as the caller: the submitter identity in the
// specs is replaced by the caller's.
func (b *backend) Submit(ctx context.Context, c agentapi.Caller, specs []*sge.JobSpec) ([]int64, error) {
	for _, s := range specs {
		s.Submitter.User, s.Submitter.UID = c.User, int(c.UID)
		s.Submitter.Group, s.Submitter.GID = c.Group, int(c.GID)
		if s.Submitter.LogName != "" {
			s.Submitter.LogName = c.User
		}
	}
	if b.sub != nil {
		return b.sub.submit(ctx, specs)
	}
	return b.q.SubmitBatch(ctx, specs)
}

// Wait waits for the job to finish and says how its tasks ended.
func (b *backend) Wait(ctx context.Context, _ agentapi.Caller, id int64) ([]sge.SyncResult, error) {
	j, err := b.q.Wait(ctx, id)
	if err != nil {
		return nil, err
	}
	if !j.IsArray() {
		return []sge.SyncResult{syncResult(j.Final, 0)}, nil
	}
	recs, err := b.q.Accounting(ctx, id)
	if err != nil && !errors.Is(err, jobqueue.ErrNoSuchJob) {
		return nil, err
	}
	// The last final record of each task, in the order they ended.
	last := map[int]int{}
	for i, a := range recs {
		if a.State.Final() {
			last[a.Task] = i
		}
	}
	var out []sge.SyncResult
	for i := range recs {
		if last[recs[i].Task] == i && recs[i].State.Final() {
			out = append(out, syncResult(&recs[i], recs[i].Task))
		}
	}
	for _, t := range j.Spec.Array.Tasks() {
		if _, ok := last[t]; !ok {
			out = append(out, sge.SyncResult{Task: t, NeverRan: true})
		}
	}
	return out, nil
}

// syncResult is how one run ended for qsub -sync y.
func syncResult(a *jobqueue.Accounting, task int) sge.SyncResult {
	switch {
	case a == nil || a.Start.IsZero() && a.State == jobqueue.StateDeleted:
		return sge.SyncResult{Task: task, NeverRan: true}
	case a.Signal != "":
		return sge.SyncResult{Task: task, Signal: a.Signal}
	}
	return sge.SyncResult{Task: task, ExitCode: a.ExitStatus}
}

// stripped returns the job with its spec copied without the script (the
// commands never show it).
func stripped(j *jobqueue.Job) *jobqueue.Job {
	if j == nil || j.Spec == nil {
		return j
	}
	s := *j.Spec
	s.Script = nil
	out := *j
	out.Spec = &s
	return &out
}

func strippedAll(jobs []*jobqueue.Job) []*jobqueue.Job {
	out := make([]*jobqueue.Job, len(jobs))
	for i, j := range jobs {
		out[i] = stripped(j)
	}
	return out
}

// Jobs lists the active jobs of users.
func (b *backend) Jobs(ctx context.Context, _ agentapi.Caller, users []string) ([]*jobqueue.Job, error) {
	jobs, err := b.q.List(ctx, jobqueue.Filter{Users: users})
	if err != nil {
		return nil, err
	}
	return strippedAll(jobs), nil
}

// Details is qstat -j: the jobs refs name, with their successors.
func (b *backend) Details(ctx context.Context, _ agentapi.Caller, refs []string) (agentapi.DetailsResponse, error) {
	var out agentapi.DetailsResponse
	all, err := b.q.List(ctx, jobqueue.Filter{})
	if err != nil {
		return out, err
	}
	succ := agentapi.Successors(all)
	want := map[int64]bool{}
	if len(refs) > 0 {
		ids, unknown, err := b.q.Resolve(ctx, refs)
		if err != nil {
			return out, err
		}
		out.Unknown = unknown
		for _, id := range ids {
			want[id] = true
		}
	}
	found := map[int64]bool{}
	for _, j := range all {
		if len(refs) > 0 && !want[j.ID] {
			continue
		}
		found[j.ID] = true
		out.Jobs = append(out.Jobs, stripped(j))
		if s := succ[j.ID]; len(s) > 0 {
			if out.Successors == nil {
				out.Successors = map[int64][]int64{}
			}
			out.Successors[j.ID] = s
		}
	}
	for _, ref := range refs {
		if id, err := strconv.ParseInt(ref, 10, 64); err == nil && !found[id] {
			out.Unknown = append(out.Unknown, ref)
		}
	}
	return out, nil
}

// target is one job a qdel, qhold, qrls or qalter line acts on.
type target struct {
	id    int64
	ref   string // as given, for "does not exist"
	tasks []int  // nil: the whole job
	found bool
}

// targets resolves job_task_lists and -u users to jobs, in order.
func (b *backend) targets(ctx context.Context, refs []sge.JobTaskRef, users []string) ([]target, error) {
	var out []target
	for _, r := range refs {
		var tasks []int
		if r.Tasks != nil {
			tasks = r.Tasks.Tasks()
		}
		if id, err := strconv.ParseInt(r.Job, 10, 64); err == nil {
			out = append(out, target{id: id, ref: r.String(), tasks: tasks, found: true})
			continue
		}
		ids, unknown, err := b.q.Resolve(ctx, []string{r.Job})
		if err != nil {
			return nil, err
		}
		if len(unknown) > 0 || len(ids) == 0 {
			out = append(out, target{ref: r.Job})
			continue
		}
		for _, id := range ids {
			out = append(out, target{id: id, ref: strconv.FormatInt(id, 10), tasks: tasks, found: true})
		}
	}
	if len(users) > 0 {
		jobs, err := b.q.List(ctx, jobqueue.Filter{Users: users})
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			out = append(out, target{id: j.ID, ref: strconv.FormatInt(j.ID, 10), found: true})
		}
	}
	return out, nil
}

// Delete is qdel.
func (b *backend) Delete(ctx context.Context, c agentapi.Caller, r agentapi.DeleteRequest) ([]sge.DeleteResult, error) {
	ts, err := b.targets(ctx, r.Jobs, r.Users)
	if err != nil {
		return nil, err
	}
	var out []sge.DeleteResult
	for _, t := range ts {
		if !t.found {
			out = append(out, sge.DeleteResult{Outcome: sge.NotFound, JobRef: t.ref})
			continue
		}
		res, err := b.deleteOne(ctx, c, t)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}

func (b *backend) deleteOne(ctx context.Context, c agentapi.Caller, t target) ([]sge.DeleteResult, error) {
	base := sge.DeleteResult{User: c.User, Job: t.id, JobRef: t.ref}
	one := func(o sge.DeleteOutcome, tasks []int) sge.DeleteResult {
		r := base
		r.Outcome, r.Tasks = o, tasks
		return r
	}
	mapErr := func(err error) ([]sge.DeleteResult, error) {
		switch {
		case errors.Is(err, jobqueue.ErrNoSuchJob), errors.Is(err, jobqueue.ErrFinished):
			return []sge.DeleteResult{one(sge.NotFound, nil)}, nil
		case errors.Is(err, jobqueue.ErrPermission):
			return []sge.DeleteResult{one(sge.NotPermitted, nil)}, nil
		case errors.Is(err, jobqueue.ErrAlreadyDeleting):
			return []sge.DeleteResult{one(sge.AlreadyDeleting, nil)}, nil
		}
		return nil, err
	}
	if t.tasks != nil {
		td, err := b.q.DeleteTasks(ctx, t.id, t.tasks, c.User)
		if errors.Is(err, jobqueue.ErrInvalidSpec) && slices.Contains(t.tasks, 1) {
			// Not an array job: its only task is 1.
			t.tasks = nil
			return b.deleteOne(ctx, c, t)
		}
		if err != nil {
			return mapErr(err)
		}
		var out []sge.DeleteResult
		if len(td.Deleted) > 0 {
			out = append(out, one(sge.Deleted, td.Deleted))
		}
		if len(td.Registered) > 0 {
			out = append(out, one(sge.Registered, td.Registered))
		}
		for _, u := range td.Unknown {
			r := one(sge.NotFound, nil)
			r.JobRef = strconv.FormatInt(t.id, 10) + "." + strconv.Itoa(u)
			out = append(out, r)
		}
		return out, nil
	}
	res, err := b.q.Delete(ctx, t.id, c.User)
	if err != nil {
		return mapErr(err)
	}
	if res == jobqueue.Registered {
		return []sge.DeleteResult{one(sge.Registered, nil)}, nil
	}
	return []sge.DeleteResult{one(sge.Deleted, nil)}, nil
}

// notPermitted is the line for a change to another user's job.
func notPermitted(user string, id int64) string {
	return fmt.Sprintf("%s - you do not have the necessary privileges to modify the job \"%d\"", user, id)
}

// Hold is qhold and qrls. Holds apply to whole jobs, including when tasks
// are named.
func (b *backend) Hold(ctx context.Context, c agentapi.Caller, r agentapi.HoldRequest) (agentapi.Output, error) {
	var out agentapi.Output
	ts, err := b.targets(ctx, r.Jobs, r.Users)
	if err != nil {
		return out, err
	}
	for _, t := range ts {
		if !t.found {
			out.Stderr = append(out.Stderr, sge.UnknownJobMessage(t.ref))
			out.Exit = 1
			continue
		}
		if !c.IsRoot() && strings.ContainsAny(r.Holds, "os") {
			// Operator and system holds are the managers' (root's).
			out.Stderr = append(out.Stderr, notPermitted(c.User, t.id))
			out.Exit = 1
			continue
		}
		if r.Release {
			err = b.q.Release(ctx, t.id, r.Holds, c.User)
		} else {
			err = b.q.Hold(ctx, t.id, r.Holds, c.User)
		}
		if line, ok, err := changeLine(err, c, t); err != nil {
			return out, err
		} else if !ok {
			out.Stderr = append(out.Stderr, line)
			out.Exit = 1
			continue
		}
		out.Stdout = append(out.Stdout, sge.ModifiedMessage("hold", t.id, t.tasks))
	}
	return out, nil
}

// changeLine turns the error of a change into the line Grid Engine prints
// (ok false), or returns the error when it is not the job's.
func changeLine(err error, c agentapi.Caller, t target) (string, bool, error) {
	switch {
	case err == nil:
		return "", true, nil
	case errors.Is(err, jobqueue.ErrNoSuchJob), errors.Is(err, jobqueue.ErrFinished):
		return sge.UnknownJobMessage(t.ref), false, nil
	case errors.Is(err, jobqueue.ErrPermission):
		return notPermitted(c.User, t.id), false, nil
	case errors.Is(err, jobqueue.ErrInvalidSpec), errors.Is(err, jobqueue.ErrIllegalTransition):
		return "denied: " + err.Error(), false, nil
	}
	return "", false, err
}

// alterable maps qalter's options to the queue's alterations; qalter
// options not listed here change nothing in musubi and are refused.
var alterable = map[string]bool{
	"-N": true, "-p": true, "-hold_jid": true, "-l": true, "-tc": true, "-q": true, "-pe": true, "-a": true, "-h": true,
}

// Alter is qalter.
func (b *backend) Alter(ctx context.Context, c agentapi.Caller, req *sge.QalterRequest) (agentapi.Output, error) {
	out := agentapi.Output{Stdout: slices.Clone(req.Warnings)}
	for _, name := range req.Set {
		if !alterable[name] {
			out.Stderr = append(out.Stderr, fmt.Sprintf("qalter: option %s: musubi cannot change this attribute of a submitted job", name))
			out.Exit = 1
			return out, nil
		}
	}
	ts, err := b.targets(ctx, req.Jobs, req.Users)
	if err != nil {
		return out, err
	}
	for _, t := range ts {
		if !t.found {
			out.Stderr = append(out.Stderr, sge.UnknownJobMessage(t.ref))
			out.Exit = 1
			continue
		}
		j, err := b.q.Get(ctx, t.id)
		if err == nil && j.State.Final() {
			err = fmt.Errorf("%w: %d", jobqueue.ErrFinished, t.id)
		}
		if line, ok, err := changeLine(err, c, t); err != nil {
			return out, err
		} else if !ok {
			out.Stderr = append(out.Stderr, line)
			out.Exit = 1
			continue
		}
		spec := *j.Spec
		changed := sge.ApplyQalter(&spec, req)
		var a jobqueue.Alteration
		alter, hold := false, false
		for _, name := range req.Set {
			alter = alter || name != "-h"
			switch name {
			case "-N":
				a.Name = &spec.Name
			case "-p":
				a.Priority = &spec.Priority
			case "-hold_jid":
				a.HoldJobs = &spec.HoldJobs
			case "-l":
				a.Resources = &spec.Resources
			case "-tc":
				a.TaskConcurrency = &spec.TaskConcurrency
			case "-q":
				a.Queues = &spec.Queues
			case "-pe":
				a.PE = &spec.PE
			case "-a":
				a.StartTime = &spec.StartTime
			case "-h":
				hold = true
			}
		}
		if alter {
			err = b.q.Alter(ctx, t.id, a, c.User)
		}
		if err == nil && hold {
			err = b.alterHold(ctx, c, t.id, req.Holds)
		}
		if line, ok, err := changeLine(err, c, t); err != nil {
			return out, err
		} else if !ok {
			out.Stderr = append(out.Stderr, line)
			out.Exit = 1
			continue
		}
		for _, what := range changed {
			if what != "job id hold list" {
				out.Stdout = append(out.Stdout, sge.ModifiedMessage(what, t.id, nil))
				continue
			}
			after, err := b.q.Get(ctx, t.id)
			if err != nil {
				return out, err
			}
			var exited []int64
			for _, ref := range spec.HoldJobs {
				if id, err := strconv.ParseInt(ref, 10, 64); err == nil && !slices.Contains(after.Waiting, id) {
					exited = append(exited, id)
				}
			}
			out.Stdout = append(out.Stdout, sge.HoldListMessage(t.id, after.Waiting, exited))
		}
	}
	return out, nil
}

// alterHold applies qalter -h: "n" removes the holds the caller may
// remove, other letters add holds.
func (b *backend) alterHold(ctx context.Context, c agentapi.Caller, id int64, holds string) error {
	if !c.IsRoot() && strings.ContainsAny(holds, "os") {
		return fmt.Errorf("%w: operator and system holds need a manager", jobqueue.ErrPermission)
	}
	if holds == "" || slices.Contains([]rune(holds), 'n') {
		rm := "u"
		if c.IsRoot() {
			rm = "uos"
		}
		return b.q.Release(ctx, id, rm, c.User)
	}
	return b.q.Hold(ctx, id, holds, c.User)
}

// Accounting returns the accounting of a job given by id (active or
// finished) or by the name of an active job.
func (b *backend) Accounting(ctx context.Context, _ agentapi.Caller, ref string) ([]agentapi.AccountedJob, error) {
	var ids []int64
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		ids = []int64{id}
	} else {
		got, _, err := b.q.Resolve(ctx, []string{ref})
		if err != nil {
			return nil, err
		}
		ids = got
	}
	var out []agentapi.AccountedJob
	for _, id := range ids {
		recs, err := b.q.Accounting(ctx, id)
		if errors.Is(err, jobqueue.ErrNoSuchJob) {
			continue
		}
		if err != nil {
			return nil, err
		}
		j, err := b.q.Get(ctx, id)
		if err != nil && !errors.Is(err, jobqueue.ErrNoSuchJob) {
			return nil, err
		}
		aj := agentapi.AccountedJob{Records: recs}
		if j != nil {
			aj.Spec = stripped(j).Spec
		}
		out = append(out, aj)
	}
	return out, nil
}

// Hosts returns the host registry and, if asked, the active jobs.
func (b *backend) Hosts(ctx context.Context, _ agentapi.Caller, jobs bool) (agentapi.HostsResponse, error) {
	out := agentapi.HostsResponse{Now: b.now()}
	hosts, err := b.q.Hosts(ctx)
	if err != nil {
		return out, err
	}
	for _, h := range hosts {
		out.Hosts = append(out.Hosts, agentapi.Host{HostInfo: h, SlotsUsed: h.SlotsUsed})
	}
	if jobs {
		all, err := b.q.List(ctx, jobqueue.Filter{})
		if err != nil {
			return out, err
		}
		out.Jobs = strippedAll(all)
	}
	return out, nil
}
