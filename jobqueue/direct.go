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

// directReq is a job SubmitHere offers to the executor's waiting Claim.
type directReq struct {
	spec *sge.JobSpec
	done chan directRes // buffered: the Claim never blocks answering
}

type directRes struct {
	id       int64
	err      error
	declined bool // not taken: submit it to the queue
}

// SubmitHere submits jobs like Queue.SubmitBatch, except that a batch of
// one job this executor can start at once is created already claimed by
// it: in the submission's transaction, Multi(Set(id counter, version),
// Create(record, running), Create(name index), Create(run),
// Create(claim, ephemeral)), one write instead of a submission, a claim
// and the reads between them; the executor's waiting Claim returns its
// lease.
//
// It can start the job at once when a Claim is waiting for work with room
// for the job (slots, memory, host requests), and the queue has not
// changed since that Claim listed it: nothing queued that it may run
// comes before the job then, so it is what the Claim would take anyway,
// minus the round trips. Held jobs, jobs with -hold_jid, array jobs, jobs
// with a start time and parallel jobs whose PE may span hosts always go
// through the queue.
func (e *Executor) SubmitHere(ctx context.Context, specs []*sge.JobSpec) ([]int64, error) {
	if len(specs) == 1 && e.q.directable(specs[0]) {
		if err := validateSpec(specs[0]); err != nil {
			return nil, fmt.Errorf("job 1 of batch: %w", err)
		}
		req := &directReq{spec: specs[0], done: make(chan directRes, 1)}
		select {
		case e.direct <- req:
			// The Claim answers once its write is settled (it does not
			// give up on ctx: see takeDirect).
			res := <-req.done
			if !res.declined {
				if res.err != nil {
					return nil, res.err
				}
				return []int64{res.id}, nil
			}
		default: // no Claim waiting
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
// it declines unless the queue is unchanged since the listing and the job
// fits c; otherwise it creates the job claimed and returns its lease.
func (e *Executor) takeDirect(ctx context.Context, req *directReq, c Capacity) *Lease {
	e.pollQueueWatch()
	e.mu.Lock()
	stopped := e.stopped
	e.mu.Unlock()
	slots, possible := fits(req.spec, &e.cfg.Info, c)
	if stopped || !e.listed || e.qFired || e.qWatch == nil || e.lost > 0 || !possible || slots == 0 {
		req.done <- directRes{declined: true}
		return nil
	}
	l, id, err := e.submitClaimed(ctx, req.spec, slots)
	req.done <- directRes{id: id, err: err}
	return l
}

// submitClaimed writes a job created claimed by this executor (see
// SubmitHere) and returns its lease and id. A lost race for the id
// counter is tried again; an unknown outcome is resolved by the
// submission token in the record. The write is not cancelled with ctx (a
// claim made and forgotten would hold the job until this node's session
// ends): it is bounded by resolveTimeout.
func (e *Executor) submitClaimed(ctx context.Context, spec *sge.JobSpec, slots int) (*Lease, int64, error) {
	q := e.q
	q.subMu.Lock()
	defer q.subMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	now := q.now()
	for attempt := 0; ; attempt++ {
		next, ver, err := q.counter(ctx)
		if err != nil {
			return nil, 0, err
		}
		rec := &record{ID: next, Spec: spec, State: StateQueued, Submitted: now, Sub: token()}
		info := e.newClaim(1, slots, nil)
		if err := rec.setState(StateRunning); err != nil {
			return nil, 0, err
		}
		rec.Claims, rec.Claim = 1, &info
		recData, err := encode(rec)
		if err != nil {
			return nil, 0, err
		}
		infoData, err := encode(info)
		if err != nil {
			return nil, 0, err
		}
		cn := claimName{ID: next, N: 1}
		res, err := q.st.Multi(ctx,
			&coord.SetOp{Path: q.idNode, Data: []byte(strconv.FormatInt(next+1, 10)), Version: ver},
			&coord.CreateOp{Path: q.l.job(next), Data: recData},
			&coord.CreateOp{Path: q.l.name(spec.Name, next)},
			&coord.CreateOp{Path: q.l.run(cn), Data: infoData},
			&coord.CreateOp{Path: q.l.claim(cn), Data: infoData, Mode: coord.Ephemeral})
		if err == nil {
			q.setCounter(next+1, res[0].Stat.Version)
			return e.newLeases(cn, &info, rec, 0, []int{0}), next, nil
		}
		q.dropCounter()
		switch idx, cause := multiErr(err); {
		case errors.Is(err, coord.ErrConnectionLost):
			tok := rec.Sub
			applied, rerr := q.resolve(ctx, q.l.job(next), func(ctx context.Context) (bool, error) {
				return q.submittedBy(ctx, next, tok)
			})
			if rerr != nil {
				return nil, 0, rerr
			}
			q.stats.unknown(applied)
			if applied {
				// The record is version 0 unless changed since (qdel,
				// qalter): settling reads it again then.
				return e.newLeases(cn, &info, rec, 0, []int{0}), next, nil
			}
		case errors.Is(err, coord.ErrUnavailable), errors.Is(err, coord.ErrSessionExpired):
			if perr := pause(ctx, attempt); perr != nil {
				return nil, 0, perr
			}
		case idx == 0 && errors.Is(cause, coord.ErrBadVersion):
			if attempt >= 2 {
				if perr := pause(ctx, attempt/4); perr != nil {
					return nil, 0, perr
				}
			}
		case idx == 0:
			return nil, 0, fmt.Errorf("jobqueue: allocate ids: %w", err)
		default:
			return nil, 0, fmt.Errorf("jobqueue: submit: %w", err)
		}
	}
}
