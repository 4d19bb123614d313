package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// directReq is a batch SubmitHere offers to the executor's waiting Claim.
type directReq struct {
	specs []*sge.JobSpec
	done  chan directRes // buffered: the Claim never blocks answering
}

type directRes struct {
	ids      []int64
	err      error
	declined bool // not taken: submit it to the queue
}

// errDeclined: the batch is not for a direct start after all.
var errDeclined = errors.New("jobqueue: not started at submission")

// maxDirectBatch bounds the batches offered to a waiting Claim (the
// agent's group commits of concurrent qsubs are small; large API batches
// go to the queue).
const maxDirectBatch = 64

// SubmitHere submits jobs like Queue.SubmitBatch, except that the jobs of
// the batch this executor can start at once are created already claimed
// by it: in the submission's transaction, Multi(Set(id counter, version),
// for them Create(record, running), Create(name index), Create(run),
// Create(claim, ephemeral), and for the others the usual creates), one
// write instead of a submission, a claim per job and the reads between
// them. The executor's waiting Claim returns the first such lease, the
// next Claims the others.
//
// It can start jobs at once when a Claim is waiting for work with room
// for them (slots, memory, host requests), and the queue has not changed
// since that Claim listed it: nothing queued that it may run comes before
// them then, so they are what the Claim would take anyway, minus the
// round trips. Held jobs, jobs with -hold_jid, array jobs, jobs with a
// start time and parallel jobs whose PE may span hosts always go through
// the queue.
func (e *Executor) SubmitHere(ctx context.Context, specs []*sge.JobSpec) ([]int64, error) {
	if len(specs) > 0 && len(specs) <= maxDirectBatch {
		offer := false
		for i, s := range specs {
			if err := validateSpec(s); err != nil {
				return nil, fmt.Errorf("job %d of batch: %w", i+1, err)
			}
			offer = offer || e.q.directable(s)
		}
		if offer {
			req := &directReq{specs: specs, done: make(chan directRes, 1)}
			select {
			case e.direct <- req:
				// The Claim answers once its write is settled (it does
				// not give up on ctx: see submitClaimed).
				res := <-req.done
				if !res.declined {
					return res.ids, res.err
				}
			default: // no Claim waiting
			}
		}
	}
	return e.q.SubmitBatch(ctx, specs)
}

// directable reports whether a job may start without being queued first.
func (q *Queue) directable(s *sge.JobSpec) bool {
	return s != nil && !s.UserHold && s.Array == nil && len(s.HoldJobs) == 0 && len(s.HoldArrayJobs) == 0 &&
		s.StartTime.IsZero() && (s.PE == nil || slices.Contains(q.single, s.PE.Name))
}

// takeDirect answers a SubmitHere offer on the waiting Claim's goroutine:
// it declines unless the queue is unchanged since the listing and some
// jobs fit c; otherwise it creates those claimed (the others queued) and
// returns the first lease.
func (e *Executor) takeDirect(ctx context.Context, req *directReq, c Capacity) *Lease {
	e.pollQueueWatch()
	e.mu.Lock()
	stopped := e.stopped
	e.mu.Unlock()
	if stopped || !e.listed || e.qFired || e.qWatch == nil || e.lost > 0 {
		req.done <- directRes{declined: true}
		return nil
	}
	// Which jobs start here: in batch order, while they fit.
	plan := map[int]int{}
	room := c
	for i, s := range req.specs {
		if !e.q.directable(s) {
			continue
		}
		slots, possible := fits(s, &e.cfg.Info, room)
		if !possible || slots == 0 {
			continue
		}
		plan[i] = slots
		room.Slots -= slots
		if m := s.Resources.MemFree; m > 0 && room.Memory > 0 {
			room.Memory = max(room.Memory-m*int64(slots), 1)
		}
	}
	if len(plan) == 0 {
		req.done <- directRes{declined: true}
		return nil
	}
	l, ids, err := e.submitClaimed(ctx, req.specs, plan)
	if errors.Is(err, errDeclined) {
		req.done <- directRes{declined: true}
		return nil
	}
	req.done <- directRes{ids: ids, err: err}
	return l
}

// submitClaimed writes a batch whose jobs plan names (index: slots) are
// created claimed by this executor (see SubmitHere), and returns the
// first lease (the others are buffered for the next Claims) and the ids.
// A lost race for the id counter is tried again; an unknown outcome is
// resolved by the submission token in the first record. The write is not
// cancelled with ctx (claims made and forgotten would hold their jobs
// until this node's session ends): it is bounded by resolveTimeout.
func (e *Executor) submitClaimed(ctx context.Context, specs []*sge.JobSpec, plan map[int]int) (*Lease, []int64, error) {
	q := e.q
	q.subMu.Lock()
	defer q.subMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	b := &batch{q: q, specs: specs, now: q.now(), pr: &predResolver{q: q, active: map[int64]bool{}}}
	n := int64(len(specs))
	type started struct {
		i    int
		rec  *record
		info claimInfo
	}
	for attempt := 0; ; attempt++ {
		next, ver, err := q.counter(ctx)
		if err != nil {
			return nil, nil, err
		}
		if err := b.build(ctx, next); err != nil {
			return nil, nil, err
		}
		if len(b.groups) != 1 {
			return nil, nil, errDeclined // too big for one transaction
		}
		b.recs[0].Sub = token()
		ops := []coord.Op{&coord.SetOp{Path: q.idNode, Data: []byte(strconv.FormatInt(next+n, 10)), Version: ver}}
		size := 0
		var starts []started
		for i, r := range b.recs {
			slots, here := plan[i]
			if !here {
				jops, sz, err := q.submitOps(r)
				if err != nil {
					return nil, nil, err
				}
				ops, size = append(ops, jops...), size+sz
				continue
			}
			rec := r.clone()
			info := e.newClaim(1, slots, nil)
			if err := rec.setState(StateRunning); err != nil {
				return nil, nil, err
			}
			rec.Claims, rec.Claim, rec.Queued = 1, &info, false
			recData, err := encode(rec)
			if err != nil {
				return nil, nil, err
			}
			infoData, err := encode(info)
			if err != nil {
				return nil, nil, err
			}
			cn := claimName{ID: rec.ID, N: 1}
			ops = append(ops,
				&coord.CreateOp{Path: q.l.job(rec.ID), Data: recData},
				&coord.CreateOp{Path: q.l.name(rec.Spec.Name, rec.ID)},
				&coord.CreateOp{Path: q.l.run(cn), Data: infoData},
				&coord.CreateOp{Path: q.l.claim(cn), Data: infoData, Mode: coord.Ephemeral})
			size += len(recData) + 2*len(infoData) + 256
			starts = append(starts, started{i, rec, info})
		}
		if len(ops) > q.maxOps || size > q.maxBytes {
			return nil, nil, errDeclined
		}
		res, err := q.st.Multi(ctx, ops...)
		applied := err == nil
		if applied {
			q.setCounter(next+n, res[0].Stat.Version)
		} else {
			q.dropCounter()
		}
		switch idx, cause := multiErr(err); {
		case applied:
		case errors.Is(err, coord.ErrConnectionLost):
			first, tok := b.recs[0].ID, b.recs[0].Sub
			ok, rerr := q.resolve(ctx, q.l.job(first), func(ctx context.Context) (bool, error) {
				return q.submittedBy(ctx, first, tok)
			})
			if rerr != nil {
				return nil, nil, rerr
			}
			q.stats.unknown(ok)
			applied = ok
		case errors.Is(err, coord.ErrUnavailable), errors.Is(err, coord.ErrSessionExpired):
			if perr := pause(ctx, attempt); perr != nil {
				return nil, nil, perr
			}
		case idx == 0 && errors.Is(cause, coord.ErrBadVersion):
			if attempt >= 2 {
				if perr := pause(ctx, attempt/4); perr != nil {
					return nil, nil, perr
				}
			}
		case idx == 0:
			return nil, nil, fmt.Errorf("jobqueue: allocate ids: %w", err)
		default:
			return nil, nil, fmt.Errorf("jobqueue: submit: %w", err)
		}
		if !applied {
			continue
		}
		// The records are version 0 unless changed since (qdel, qalter):
		// settling reads them again then.
		var first *Lease
		for _, st := range starts {
			cn := claimName{ID: st.rec.ID, N: 1}
			l := e.newLeases(cn, &st.info, st.rec, 0, []int{0})
			if first == nil {
				first = l
				continue
			}
			e.mu.Lock()
			e.buffer = append(e.buffer, l)
			e.mu.Unlock()
		}
		return first, b.ids(), nil
	}
}
