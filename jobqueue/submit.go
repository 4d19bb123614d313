package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Submit queues one job and returns its id.
func (q *Queue) Submit(ctx context.Context, spec *sge.JobSpec) (int64, error) {
	ids, err := q.SubmitBatch(ctx, []*sge.JobSpec{spec})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// SubmitBatch queues jobs in as few transactions as their size allows
// (usually one) and returns their ids, in order. Ids are consecutive
// within a batch. A -hold_jid reference may name an earlier job of the same
// batch. If a later transaction of a large batch fails, the ids of the jobs
// already queued are returned with the error.
func (q *Queue) SubmitBatch(ctx context.Context, specs []*sge.JobSpec) ([]int64, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	for i, s := range specs {
		if err := validateSpec(s); err != nil {
			return nil, fmt.Errorf("job %d of batch: %w", i+1, err)
		}
	}
	first, err := q.allocIDs(ctx, len(specs))
	if err != nil {
		return nil, err
	}
	now := q.now()
	pr := &predResolver{q: q, active: map[int64]bool{}}
	recs := make([]*record, len(specs))
	for i, s := range specs {
		r := &record{ID: first + int64(i), Spec: s, State: StateQueued, Submitted: now}
		if s.UserHold {
			r.Holds = "u"
			r.State = StateHeld
		}
		r.Queued = r.State == StateQueued
		if s.Array != nil {
			r.Array = &arrayState{}
		}
		if refs := holdRefs(s); len(refs) > 0 {
			if r.Preds, err = pr.resolve(ctx, refs, r.ID, recs[:i]); err != nil {
				return nil, err
			}
		}
		recs[i] = r
	}

	var ids []int64
	var ops []coord.Op
	size, groupFirst := 0, 0
	flush := func(end int) error {
		if len(ops) == 0 {
			return nil
		}
		if err := q.commitSubmit(ctx, ops, recs[groupFirst].ID); err != nil {
			return err
		}
		for _, r := range recs[groupFirst:end] {
			ids = append(ids, r.ID)
		}
		ops, size, groupFirst = nil, 0, end
		return nil
	}
	for i, r := range recs {
		jops, n, err := q.submitOps(r)
		if err != nil {
			return ids, err
		}
		if len(ops) > 0 && (size+n > q.maxBytes || len(ops)+len(jops) > q.maxOps) {
			if err := flush(i); err != nil {
				return ids, err
			}
		}
		ops = append(ops, jops...)
		size += n
	}
	if err := flush(len(recs)); err != nil {
		return ids, err
	}
	return ids, nil
}

// submitOps are the creates that queue one job, and their payload size.
func (q *Queue) submitOps(r *record) ([]coord.Op, int, error) {
	data, err := encode(r)
	if err != nil {
		return nil, 0, err
	}
	ops := []coord.Op{
		&coord.CreateOp{Path: q.l.job(r.ID), Data: data},
		&coord.CreateOp{Path: q.l.name(r.Spec.Name, r.ID)},
	}
	if r.isArray() {
		ops = append(ops, &coord.CreateOp{Path: q.l.taskDir(r.ID)})
	}
	if r.Queued {
		ops = append(ops, &coord.CreateOp{Path: q.l.entry(r.entry())})
	}
	n := len(data)
	for _, op := range ops {
		n += len(op.NodePath()) + 16
	}
	return ops, n, nil
}

// commitSubmit applies one submission transaction; an unknown outcome is
// resolved by looking for the first job of the transaction.
func (q *Queue) commitSubmit(ctx context.Context, ops []coord.Op, probe int64) error {
	for attempt := 0; ; attempt++ {
		_, err := q.st.Multi(ctx, ops...)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, coord.ErrConnectionLost):
			ok, rerr := q.resolve(ctx, q.l.job(probe), func(ctx context.Context) (bool, error) {
				return q.jobKnown(ctx, probe)
			})
			if rerr != nil {
				return rerr
			}
			q.stats.unknown(ok)
			if ok {
				return nil
			}
		case errors.Is(err, coord.ErrUnavailable):
		default:
			return fmt.Errorf("jobqueue: submit: %w", err)
		}
		if err := pause(ctx, attempt); err != nil {
			return err
		}
	}
}

// jobKnown reports whether a job id exists, active or finished. A job
// moves from jobs/ to done/ in one transaction and never back, so looking
// in that order cannot miss it.
func (q *Queue) jobKnown(ctx context.Context, id int64) (bool, error) {
	ok, _, err := q.st.Exists(ctx, q.l.job(id))
	if err != nil || ok {
		return ok, err
	}
	ok, _, err = q.st.Exists(ctx, q.l.done(id))
	return ok, err
}

// holdRefs are the jobs a job waits for: -hold_jid, and -hold_jid_ad,
// which musubi honours for the whole predecessor array rather than task by
// task (a task never starts before its predecessor task; it may wait
// longer than with Grid Engine).
func holdRefs(s *sge.JobSpec) []string {
	return append(slices.Clone(s.HoldJobs), s.HoldArrayJobs...)
}

// validateSpec checks what the queue relies on; the Grid Engine front end
// has validated the rest.
func validateSpec(s *sge.JobSpec) error {
	if s == nil {
		return fmt.Errorf("%w: nil spec", ErrInvalidSpec)
	}
	if err := validJobName(s.Name); err != nil {
		return err
	}
	if s.Priority < MinPriority || s.Priority > MaxPriority {
		return fmt.Errorf("%w: priority %d not in %d..%d", ErrInvalidSpec, s.Priority, MinPriority, MaxPriority)
	}
	if s.Array != nil && (s.Array.First < 1 || s.Array.Step < 1 || s.Array.Count() < 1) {
		return fmt.Errorf("%w: task range %s", ErrInvalidSpec, s.Array)
	}
	if s.TaskConcurrency < 0 {
		return fmt.Errorf("%w: -tc %d", ErrInvalidSpec, s.TaskConcurrency)
	}
	if s.PE != nil && (s.PE.Min < 1 || s.PE.Max < s.PE.Min) {
		return fmt.Errorf("%w: -pe %s %s", ErrInvalidSpec, s.PE.Name, s.PE.RangeString())
	}
	return nil
}

// predResolver resolves -hold_jid references (ids, names, wildcard
// patterns) to the ids of jobs that are active now, as Grid Engine does at
// submission: references to finished or unknown jobs are dropped.
type predResolver struct {
	q      *Queue
	active map[int64]bool
	names  []nameRef
	listed bool
}

type nameRef struct {
	name string
	id   int64
}

func (pr *predResolver) resolve(ctx context.Context, refs []string, self int64, batch []*record) ([]int64, error) {
	var out []int64
	for _, ref := range refs {
		for _, r := range strings.Split(ref, ",") {
			r = strings.TrimSpace(r)
			if r == "" {
				continue
			}
			ids, err := pr.resolveOne(ctx, r, batch)
			if err != nil {
				return nil, err
			}
			out = append(out, ids...)
		}
	}
	out = slices.DeleteFunc(sortedIDs(out), func(id int64) bool { return id == self })
	return out, nil
}

func (pr *predResolver) resolveOne(ctx context.Context, ref string, batch []*record) ([]int64, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		if id <= 0 {
			return nil, nil
		}
		for _, b := range batch {
			if b.ID == id {
				return []int64{id}, nil
			}
		}
		ok, known := pr.active[id]
		if !known {
			var err error
			ok, _, err = pr.q.exists(ctx, pr.q.l.job(id))
			if err != nil {
				return nil, fmt.Errorf("jobqueue: resolve -hold_jid %s: %w", ref, err)
			}
			pr.active[id] = ok
		}
		if ok {
			return []int64{id}, nil
		}
		return nil, nil
	}
	if !pr.listed {
		kids, err := pr.q.children(ctx, pr.q.l.dir(namesDir))
		if err != nil {
			return nil, fmt.Errorf("jobqueue: resolve -hold_jid %s: %w", ref, err)
		}
		for _, k := range kids {
			name, id, err := parseNameIndex(k)
			if err != nil {
				continue
			}
			pr.names = append(pr.names, nameRef{name, id})
		}
		pr.listed = true
	}
	var out []int64
	for _, n := range pr.names {
		if nameMatches(ref, n.name) {
			out = append(out, n.id)
		}
	}
	for _, b := range batch {
		if nameMatches(ref, b.Spec.Name) {
			out = append(out, b.ID)
		}
	}
	return out, nil
}

// nameMatches matches a job name against a -hold_jid name or wildcard
// pattern.
func nameMatches(pattern, name string) bool {
	if pattern == name {
		return true
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
