package agent

import (
	"context"
	"errors"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// errStopped: the agent is shutting down and takes no more submissions.
var errStopped = errors.New("agent: shutting down")

// submitter combines concurrent submissions into one queue transaction
// (group commit): while one batch is being written, the submissions that
// arrive queue up and go together in the next. A lone qsub pays nothing
// extra; many concurrent ones share the id allocation and the write.
type submitter struct {
	q        *jobqueue.Queue
	maxSpecs int
	reqs     chan *subReq
	stopped  chan struct{}
	// batch submits a batch; default q.SubmitBatch. The agent uses its
	// executor's SubmitHere: the jobs the node can start at once are
	// created claimed by it, in the batch's write.
	batch func(context.Context, []*sge.JobSpec) ([]int64, error)
}

func (s *submitter) submitBatch(ctx context.Context, specs []*sge.JobSpec) ([]int64, error) {
	if s.batch != nil {
		return s.batch(ctx, specs)
	}
	return s.q.SubmitBatch(ctx, specs)
}

type subReq struct {
	ctx   context.Context
	specs []*sge.JobSpec
	done  chan subRes
}

type subRes struct {
	ids []int64
	err error
}

func newSubmitter(q *jobqueue.Queue) *submitter {
	return &submitter{q: q, maxSpecs: 1000, reqs: make(chan *subReq), stopped: make(chan struct{})}
}

// submit queues specs through the current batch.
func (s *submitter) submit(ctx context.Context, specs []*sge.JobSpec) ([]int64, error) {
	r := &subReq{ctx: ctx, specs: specs, done: make(chan subRes, 1)}
	select {
	case s.reqs <- r:
	case <-s.stopped:
		return nil, errStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.ids, res.err
	case <-ctx.Done():
		// The batch goes on; the job may be queued all the same, as with
		// any request whose answer is lost.
		return nil, ctx.Err()
	}
}

// run writes batches until ctx ends.
func (s *submitter) run(ctx context.Context) {
	defer close(s.stopped)
	for {
		var batch []*subReq
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-ctx.Done():
			return
		}
		n := len(batch[0].specs)
	more:
		for n < s.maxSpecs {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				n += len(r.specs)
			default:
				break more
			}
		}
		s.write(ctx, batch)
	}
}

// write submits a batch in one SubmitBatch; if it fails and holds several
// requests, each is retried alone so that one bad job fails only its own
// submission.
func (s *submitter) write(ctx context.Context, batch []*subReq) {
	if len(batch) == 1 {
		r := batch[0]
		ids, err := s.submitBatch(r.ctx, r.specs)
		r.done <- subRes{ids, err}
		return
	}
	var all []*sge.JobSpec
	for _, r := range batch {
		all = append(all, r.specs...)
	}
	ids, err := s.submitBatch(ctx, all)
	if err == nil {
		for _, r := range batch {
			r.done <- subRes{ids: ids[:len(r.specs)]}
			ids = ids[len(r.specs):]
		}
		return
	}
	if len(ids) > 0 {
		// Part of the batch is queued (a later transaction failed):
		// answer the requests it covers, retry the others.
		for len(batch) > 0 && len(ids) >= len(batch[0].specs) {
			r := batch[0]
			r.done <- subRes{ids: ids[:len(r.specs)]}
			ids, batch = ids[len(r.specs):], batch[1:]
		}
		if len(ids) > 0 {
			// A request queued in part cannot be retried without
			// queueing its first jobs twice.
			batch[0].done <- subRes{ids, err}
			batch = batch[1:]
		}
	}
	for _, r := range batch {
		ids, err := s.submitBatch(r.ctx, r.specs)
		r.done <- subRes{ids, err}
	}
}
