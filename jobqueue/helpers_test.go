package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

const testRoot = "/vc/test/jobs"

// env is a memstore "ensemble" with a queue on it.
type env struct {
	t   *testing.T
	srv *memstore.Server
	st  *memstore.Store
	q   *Queue
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, srv: memstore.New(), ctx: ctx}
	e.st = e.session()
	e.q = e.queue(e.st)
	if err := e.q.Init(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) session() *memstore.Store {
	st := e.srv.Connect()
	e.t.Cleanup(func() { _ = st.Close() })
	return st
}

func (e *env) queue(st coord.Store) *Queue {
	q, err := New(Config{Store: st, Root: testRoot, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// node is an executor on its own session, with its Run loop going.
type node struct {
	st   *memstore.Store
	q    *Queue
	ex   *Executor
	stop func() // stops Run (idempotent)
}

func (e *env) node(id string, slots int) *node {
	e.t.Helper()
	return e.nodeCfg(ExecutorConfig{ID: id, Info: HostInfo{Slots: slots, MemTotal: 8 << 30}})
}

func (e *env) nodeCfg(cfg ExecutorConfig) *node {
	e.t.Helper()
	id := cfg.ID
	st := e.session()
	q := e.queue(st)
	ex, err := q.NewExecutor(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("executor %s Run: %v", id, err)
			}
		})
	}
	e.t.Cleanup(stop)
	return &node{st: st, q: q, ex: ex, stop: stop}
}

func spec(name string) *sge.JobSpec {
	return &sge.JobSpec{Name: name, ScriptFile: "/bin/true", Binary: true, Submitter: sge.Submitter{User: "alice", Group: "users"}}
}

func (e *env) submit(s *sge.JobSpec) int64 {
	e.t.Helper()
	id, err := e.q.Submit(e.ctx, s)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// claim claims with a timeout; it fails the test when nothing comes.
func (n *node) claim(t *testing.T, slots int) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := n.ex.Claim(ctx, Capacity{Slots: slots})
	if err != nil {
		t.Fatalf("%s: claim: %v", n.ex.ID(), err)
	}
	return l
}

// noClaim asserts that nothing is claimable within d.
func (n *node) noClaim(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	l, err := n.ex.Claim(ctx, Capacity{Slots: 64})
	if err == nil {
		t.Fatalf("%s: claimed job %d task %d, want nothing", n.ex.ID(), l.JobID(), l.Task())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: claim: %v", n.ex.ID(), err)
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ledger counts successful completions per job/task across workers.
type ledger struct {
	tick      chan struct{} // a job started (non-blocking)
	mu        sync.Mutex
	order     []string // completions in order
	completed map[string]int
	runs      map[string]int
	running   int
	maxRun    int
}

func newLedger() *ledger {
	return &ledger{completed: map[string]int{}, runs: map[string]int{}, tick: make(chan struct{}, 1)}
}

func key(id int64, task int) string { return fmt.Sprintf("%d.%d", id, task) }

func (l *ledger) start(k string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[k]++
	l.running++
	select {
	case l.tick <- struct{}{}:
	default:
	}
	l.maxRun = max(l.maxRun, l.running)
}

// stop: the job's work ended (before it is completed in the store, so
// running never overstates what the store counts as running).
func (l *ledger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running--
}

// end records the outcome of Complete.
func (l *ledger) end(k string, completed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if completed {
		l.completed[k]++
		l.order = append(l.order, k)
	}
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.completed)
}

// work claims and completes jobs on n until ctx ends, slots at a time,
// each "running" for d.
func (n *node) work(ctx context.Context, t *testing.T, lg *ledger, slots int, d time.Duration, wg *sync.WaitGroup) {
	work(ctx, t, n.ex, lg, slots, d, wg)
}

// work runs an executor's claim loop: slots leases at a time, each held
// for d (or until lost), then completed.
func work(ctx context.Context, t *testing.T, ex *Executor, lg *ledger, slots int, d time.Duration, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		free := make(chan struct{}, slots)
		for range slots {
			free <- struct{}{}
		}
		var inner sync.WaitGroup
		defer inner.Wait()
		for {
			select {
			case <-free:
			case <-ctx.Done():
				return
			}
			// Claim with every free slot, so array tasks come in chunks.
			n := 1
		more:
			for {
				select {
				case <-free:
					n++
				default:
					break more
				}
			}
			l, err := ex.Claim(ctx, Capacity{Slots: n})
			for range n - 1 {
				free <- struct{}{}
			}
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, ErrNotRunning) {
					t.Errorf("%s claim: %v", ex.ID(), err)
				}
				return
			}
			k := key(l.JobID(), l.Task())
			lg.start(k)
			inner.Add(1)
			go func() {
				defer inner.Done()
				defer func() { free <- struct{}{} }()
				if d > 0 {
					select {
					case <-time.After(d): // the job's run time
					case <-l.Lost():
					}
				}
				lg.stop()
				err := l.Complete(context.WithoutCancel(ctx), Result{ExitStatus: 0})
				switch {
				case err == nil:
					lg.end(k, true)
				case errors.Is(err, ErrLeaseLost):
					lg.end(k, false)
				default:
					lg.end(k, false)
					t.Errorf("%s complete %s: %v", ex.ID(), k, err)
				}
			}()
		}
	}()
}
