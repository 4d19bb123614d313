package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/executor"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Runner runs one job or array task; *executor.Runner implements it.
// Cancelling ctx kills the job (qdel).
type Runner interface {
	Run(ctx context.Context, req executor.Request) (executor.Result, error)
}

var _ Runner = (*executor.Runner)(nil)

// worker is the node's executor loop: it claims what fits the free slots
// and memory, runs each lease, and settles it.
type worker struct {
	ex     *jobqueue.Executor
	runner Runner
	slots  int
	memory int64 // bytes the node offers to mem_free requests; 0: not checked
	host   string
	spool  string
	accts  Accounts
	log    *slog.Logger
	// settleTimeout bounds Complete/Release after the job ended.
	settleTimeout time.Duration

	mu      sync.Mutex
	used    int
	memUsed int64
	wake    chan struct{} // a job ended: capacity grew
}

func (w *worker) free() jobqueue.Capacity {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := jobqueue.Capacity{Slots: w.slots - w.used}
	if w.memory > 0 {
		c.Memory = max(w.memory-w.memUsed, 1)
	}
	return c
}

func (w *worker) take(slots int, mem int64) {
	w.mu.Lock()
	w.used += slots
	w.memUsed += mem
	w.mu.Unlock()
}

func (w *worker) give(slots int, mem int64) {
	w.mu.Lock()
	w.used -= slots
	w.memUsed -= mem
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

type claimed struct {
	l   *jobqueue.Lease
	err error
}

// loop claims and runs jobs until ctx ends, then waits for the jobs it
// started to be killed and settled.
func (w *worker) loop(ctx context.Context) {
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	var jobs sync.WaitGroup
	defer jobs.Wait()
	for attempt := 0; ctx.Err() == nil; {
		c := w.free()
		if c.Slots <= 0 {
			select {
			case <-w.wake:
			case <-ctx.Done():
			}
			continue
		}
		// Claim blocks on watches until something fits; a job ending
		// grows the capacity, so the claim is started again with it.
		cctx, cancel := context.WithCancel(ctx)
		res := make(chan claimed, 1)
		go func() {
			l, err := w.ex.Claim(cctx, c)
			res <- claimed{l, err}
		}()
		var got claimed
		select {
		case got = <-res:
		case <-w.wake:
			cancel()
			got = <-res
		case <-ctx.Done():
			cancel()
			got = <-res
		}
		cancel()
		if got.err != nil {
			if ctx.Err() != nil || errors.Is(got.err, context.Canceled) {
				continue
			}
			w.log.Warn("claiming jobs", "err", got.err)
			if !sleepCtx(ctx, backoff(attempt)) {
				return
			}
			attempt++
			continue
		}
		attempt = 0
		l := got.l
		if ctx.Err() != nil {
			w.settle(ctx, l, "release", func(sctx context.Context) error { return l.Release(sctx) })
			continue
		}
		slots, mem := l.Slots(), memRequest(l)
		w.take(slots, mem)
		jobs.Add(1)
		go func() {
			defer jobs.Done()
			var once sync.Once
			free := func() { once.Do(func() { w.give(slots, mem) }) }
			defer free()
			if l.Slave() {
				w.holdShare(ctx, l)
				return
			}
			w.runLease(ctx, l, free)
		}()
	}
}

// memRequest is the memory a job holds on the node while it runs: its
// mem_free request times its slots.
func memRequest(l *jobqueue.Lease) int64 {
	return l.Spec().Resources.MemFree * int64(max(l.Slots(), 1))
}

// holdShare keeps this node's slot share of a parallel job that spans
// nodes while the job runs on its master's node (loose integration:
// nothing runs here unless the job starts it), then gives it back.
func (w *worker) holdShare(ctx context.Context, l *jobqueue.Lease) {
	select {
	case <-l.Finished():
	case <-l.Lost():
		return
	case <-ctx.Done():
	}
	w.settle(ctx, l, "release slot share", func(sctx context.Context) error { return l.Release(sctx) })
}

// Why a running job was killed.
const (
	killNone = iota
	killDeleted
	killLost
	killShutdown
)

// runLease runs one claimed job and settles it: completes it with its
// accounting, puts it in error (it cannot start here or anywhere), gives
// it back (agent shutdown), or, when the claim was lost, only kills it.
// It calls free once the job's processes are gone, before settling: the
// node's next claim need not wait for the settlement's round trip.
func (w *worker) runLease(ctx context.Context, l *jobqueue.Lease, free func()) {
	log := w.log.With("job", l.JobID(), "task", l.Task())
	jctx, kill := context.WithCancel(context.WithoutCancel(ctx))
	defer kill()
	why := make(chan int, 1)
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		r := killNone
		select {
		case <-l.Deleted():
			r = killDeleted
		case <-l.Lost():
			r = killLost
		case <-ctx.Done():
			r = killShutdown
		case <-stop:
		}
		why <- r
		if r != killNone {
			kill()
		}
	}()
	req := BuildRequest(l, w.host, w.spool, w.accts)
	res, err := w.runner.Run(jctx, req)
	close(stop)
	watch.Wait()
	free()
	reason := <-why
	// A deletion or loss noticed just after the end counts too.
	if closed(l.Lost()) {
		reason = killLost
	} else if closed(l.Deleted()) {
		reason = killDeleted
	}
	switch {
	case reason == killLost:
		log.Warn("claim lost: job killed; it runs again elsewhere")
	case reason == killDeleted:
		r := resultOf(res, true)
		if err != nil && r.Failed == 0 {
			r.Failed, r.FailedReason = executor.FailedAfterJob, "deleted before it started"
		}
		w.settle(ctx, l, "complete deleted job", func(sctx context.Context) error { return l.Complete(sctx, r) })
	case reason == killShutdown && (err != nil || res.Failed == executor.FailedAfterJob):
		if rr := l.Spec().Rerun; rr != nil && !*rr {
			r := resultOf(res, false)
			r.FailedReason = "killed: the agent shut down"
			w.settle(ctx, l, "complete job killed by shutdown", func(sctx context.Context) error { return l.Complete(sctx, r) })
			return
		}
		if err != nil {
			// Not started: give it back untouched.
			w.settle(ctx, l, "release", func(sctx context.Context) error { return l.Release(sctx) })
			return
		}
		// It ran: record the run and reschedule it (Rq, RESTARTED=1 on
		// its next run), as Grid Engine does for a job whose execd went.
		r := resultOf(res, false)
		r.Reschedule, r.Failed, r.FailedReason = true, sge.FailedRescheduled, "killed: the agent shut down; rescheduled"
		log.Info("agent shutting down: job killed and rescheduled")
		w.settle(ctx, l, "reschedule", func(sctx context.Context) error { return l.Complete(sctx, r) })
	case err != nil:
		// The job cannot start: its own settings (Grid Engine's Eqw) or
		// this host (unknown user, spool...). Both go to Eqw with the
		// reason, rather than being claimed again and again.
		r := jobqueue.Result{Error: true, Failed: res.Failed, FailedReason: res.Err, Start: res.Start, End: res.End}
		if !errors.Is(err, executor.ErrJobError) || r.FailedReason == "" {
			r.FailedReason = "error: " + err.Error()
		}
		if r.Failed == 0 {
			r.Failed = 1 // "assumedly before job"
		}
		log.Info("job cannot start", "err", err)
		w.settle(ctx, l, "put job in error", func(sctx context.Context) error { return l.Complete(sctx, r) })
	default:
		r := resultOf(res, false)
		w.settle(ctx, l, "complete", func(sctx context.Context) error { return l.Complete(sctx, r) })
	}
}

// settle runs Complete or Release with a context that outlives ctx (the
// agent's shutdown settles the jobs it killed).
func (w *worker) settle(ctx context.Context, l *jobqueue.Lease, what string, f func(context.Context) error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.settleTimeout)
	defer cancel()
	err := f(sctx)
	switch {
	case err == nil:
	case errors.Is(err, jobqueue.ErrLeaseLost):
		w.log.Warn(what+": claim lost; the job runs again elsewhere", "job", l.JobID(), "task", l.Task())
	default:
		w.log.Error(what, "job", l.JobID(), "task", l.Task(), "err", err)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func backoff(attempt int) time.Duration {
	return min(50*time.Millisecond<<min(attempt, 6), 2*time.Second)
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
