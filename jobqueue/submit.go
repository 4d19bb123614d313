package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

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
// (usually one) and returns their ids, in order. A -hold_jid reference may
// name an earlier job of the same batch. If a later transaction of a large
// batch fails, the ids of the jobs already queued are returned with the
// error.
//
// A batch that fits one transaction allocates its ids in it: the id
// counter's versioned Set goes with the creates, from the counter's value
// and version this queue last saw (read again only when another submitter
// moved it), so a submission is one write and no read. Ids are then
// consecutive within the batch. A larger batch allocates its ids first,
// by the versioned Set alone, then writes its transactions.
//
// Submissions through one Queue are serialised: they all write the
// counter, so concurrent ones could not both succeed anyway.
func (q *Queue) SubmitBatch(ctx context.Context, specs []*sge.JobSpec) ([]int64, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	for i, s := range specs {
		if err := validateSpec(s); err != nil {
			return nil, fmt.Errorf("job %d of batch: %w", i+1, err)
		}
	}
	q.subMu.Lock()
	defer q.subMu.Unlock()
	b := &batch{q: q, specs: specs, now: q.now(), pr: &predResolver{q: q, active: map[int64]bool{}}}
	next, ver, err := q.counter(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.build(ctx, next); err != nil {
		return nil, err
	}
	if len(b.groups) == 1 {
		return b.commitWithIDs(ctx, next, ver)
	}
	first, err := q.allocIDs(ctx, len(specs))
	if err != nil {
		return nil, err
	}
	if err := b.build(ctx, first); err != nil {
		return nil, err
	}
	var ids []int64
	for _, g := range b.groups {
		if err := q.commitSubmit(ctx, g.ops, b.recs[g.first].ID); err != nil {
			return ids, err
		}
		for _, r := range b.recs[g.first:g.end] {
			ids = append(ids, r.ID)
		}
	}
	return ids, nil
}

// batch is a submission being prepared: its records, built for a first
// id, and their creates split into transactions.
type batch struct {
	q      *Queue
	specs  []*sge.JobSpec
	now    time.Time
	pr     *predResolver // caches what it read across builds
	first  int64         // the first id the records were built for
	recs   []*record
	groups []opGroup
}

// opGroup is one transaction's creates: those of recs[first:end].
type opGroup struct {
	first, end int
	ops        []coord.Op
	size       int
}

// build makes the records with consecutive ids from first, and groups
// their creates into transactions (leaving room for the counter's Set).
func (b *batch) build(ctx context.Context, first int64) error {
	if b.recs != nil && b.first == first {
		return nil
	}
	q := b.q
	b.first, b.recs, b.groups = first, make([]*record, len(b.specs)), nil
	var err error
	for i, s := range b.specs {
		r := &record{ID: first + int64(i), Spec: s, State: StateQueued, Submitted: b.now}
		if s.UserHold {
			r.Holds = "u"
			r.State = StateHeld
		}
		r.Queued = r.State == StateQueued
		if s.Array != nil {
			r.Array = &arrayState{}
		}
		if refs := holdRefs(s); len(refs) > 0 {
			if r.Preds, err = b.pr.resolve(ctx, refs, r.ID, b.recs[:i]); err != nil {
				return err
			}
		}
		b.recs[i] = r
	}
	// The counter's Set and the token of the first record of each
	// transaction are counted in.
	const reserve = 128
	g := opGroup{size: reserve}
	for i, r := range b.recs {
		jops, n, err := q.submitOps(r)
		if err != nil {
			return err
		}
		if len(g.ops) > 0 && (g.size+n > q.maxBytes || len(g.ops)+len(jops)+1 > q.maxOps) {
			g.end = i
			b.groups = append(b.groups, g)
			g = opGroup{first: i, size: reserve}
		}
		g.ops = append(g.ops, jops...)
		g.size += n
	}
	g.end = len(b.recs)
	b.groups = append(b.groups, g)
	return nil
}

// commitWithIDs writes a batch that fits one transaction together with
// the id counter's versioned Set from (next, ver). A lost race for the
// counter (another submitter moved it) is tried again from the counter's
// new value. An unknown outcome is resolved by reading the first job's
// record: the transaction was applied iff it holds this attempt's token
// (another submitter that won the same counter version would have created
// that job too, without the token).
func (b *batch) commitWithIDs(ctx context.Context, next int64, ver int32) ([]int64, error) {
	q := b.q
	n := int64(len(b.specs))
	for attempt := 0; ; attempt++ {
		if err := b.build(ctx, next); err != nil {
			return nil, err
		}
		if len(b.groups) != 1 {
			// More digits in the ids made it too big: cannot happen with
			// the reserve, but the split path is always correct.
			return nil, fmt.Errorf("%w: batch of %d jobs does not fit one transaction", ErrInvalidSpec, n)
		}
		probe := b.recs[0]
		probe.Sub = token()
		jops, _, err := q.submitOps(probe)
		if err != nil {
			return nil, err
		}
		ops := make([]coord.Op, 0, len(b.groups[0].ops)+1)
		ops = append(ops, &coord.SetOp{Path: q.idNode, Data: []byte(strconv.FormatInt(next+n, 10)), Version: ver})
		ops = append(ops, jops...)
		ops = append(ops, b.groups[0].ops[len(jops):]...)
		res, err := q.st.Multi(ctx, ops...)
		if err == nil {
			q.setCounter(next+n, res[0].Stat.Version)
			return b.ids(), nil
		}
		q.dropCounter()
		switch idx, cause := multiErr(err); {
		case errors.Is(err, coord.ErrConnectionLost):
			tok := probe.Sub
			applied, rerr := q.resolve(ctx, q.l.job(probe.ID), func(ctx context.Context) (bool, error) {
				return q.submittedBy(ctx, probe.ID, tok)
			})
			if rerr != nil {
				return nil, rerr
			}
			q.stats.unknown(applied)
			if applied {
				return b.ids(), nil
			}
		case errors.Is(err, coord.ErrUnavailable):
			if perr := pause(ctx, attempt); perr != nil {
				return nil, perr
			}
		case idx == 0 && errors.Is(cause, coord.ErrBadVersion):
			// Another submitter allocated ids: from the new value, after a
			// short pause when this keeps happening.
			if attempt >= 2 {
				if perr := pause(ctx, attempt/4); perr != nil {
					return nil, perr
				}
			}
		case idx == 0:
			return nil, fmt.Errorf("jobqueue: allocate ids: %w", err)
		default:
			return nil, fmt.Errorf("jobqueue: submit: %w", err)
		}
		if next, ver, err = q.counter(ctx); err != nil {
			return nil, err
		}
	}
}

func (b *batch) ids() []int64 {
	ids := make([]int64, len(b.recs))
	for i, r := range b.recs {
		ids[i] = r.ID
	}
	return ids
}

// submittedBy reports whether job id exists, active or finished, and was
// created by the submission with token tok.
func (q *Queue) submittedBy(ctx context.Context, id int64, tok string) (bool, error) {
	for _, p := range []string{q.l.job(id), q.l.done(id)} {
		// A job moves from jobs/ to done/ in one transaction and never
		// back, so looking in that order cannot miss it.
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
		return r.Sub == tok, nil
	}
	return false, nil
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

// commitSubmit applies one submission transaction of jobs whose ids were
// allocated before (so no one else creates them); an unknown outcome is
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
