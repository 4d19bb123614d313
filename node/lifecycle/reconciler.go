package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// Reconciler builds and destroys this site's share of the federation's
// virtual clusters. Create it with New and call Run once.
type Reconciler struct {
	cfg     Config
	log     *slog.Logger
	secrets Secrets

	builds, teardowns, purges, failures atomic.Int64
}

// New checks cfg and returns a Reconciler. It does no I/O.
func New(cfg Config) (*Reconciler, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Reconciler{
		cfg: cfg, log: cfg.Logger.With("site", cfg.Site),
		secrets: Secrets{Dir: cfg.StateDir + "/secrets"},
	}, nil
}

// Stats counts the reconciler's finished work.
type Stats struct {
	// Builds and Teardowns count the shares built (or checked) and torn
	// down successfully; Purges the reservations purged; Failures the
	// builds and teardowns that failed (and were retried).
	Builds, Teardowns, Purges, Failures int64
}

// Stats returns the counters so far.
func (r *Reconciler) Stats() Stats {
	return Stats{Builds: r.builds.Load(), Teardowns: r.teardowns.Load(), Purges: r.purges.Load(), Failures: r.failures.Load()}
}

// target is what the reconciler wants done for one VC now.
type target struct {
	vc   string
	goal Goal
	rec  *reserve.Record // nil: no reservation (leftovers only)
	plan VCPlan
	// held is what the host has of the VC.
	held map[string]*held
	// key identifies the work: a worker doing the same key is left alone,
	// a worker doing another one is cancelled.
	key string
	// failures is the number of failed attempts in a row so far.
	failures int
}

// vcState is the supervisor's memory of one VC.
type vcState struct {
	converged   string // key of the last successful worker
	convergedAt time.Time
	failedKey   string
	failures    int
	retryAt     time.Time
}

type running struct {
	key       string
	started   time.Time
	cancel    context.CancelFunc
	cancelled bool
}

type result struct {
	vc, key string
	err     error
}

// Run reconciles until ctx ends, then stops its workers (a build in
// progress is abandoned where it is: the next Run finishes or undoes it)
// and returns nil once they have returned. It fails only if the
// reconciler cannot work at all.
func (r *Reconciler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if err := r.ensureDirs(ctx); err != nil {
		return nil // ctx ended
	}
	results := make(chan result)
	workers := map[string]*running{}
	states := map[string]*vcState{}
	watches := map[string]<-chan coord.Event{}
	readFailures := 0
	r.log.Info("lifecycle reconciler started", "backends", len(r.cfg.Backends), "storage", len(r.cfg.Volumes))
	for {
		now := r.cfg.Clock.Now()
		var wake time.Time
		recs, err := r.readReservations(ctx, watches)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			readFailures++
			r.log.Warn("reading reservations failed; retrying", "err", err)
			wake = now.Add(backoff(r.cfg.RetryMin, r.cfg.RetryMax, readFailures))
		} else {
			readFailures = 0
			inv := r.inventory(ctx)
			targets := r.targets(recs, inv, now)
			for vc, w := range workers {
				if t, ok := targets[vc]; (!ok || t.key != w.key) && !w.cancelled {
					r.log.Info("goal changed; stopping the VC's worker", "vc", vc, "was", w.key)
					w.cancel()
					w.cancelled = true
				}
			}
			for _, vc := range sortedKeys(targets) {
				t := targets[vc]
				st := states[vc]
				if st == nil {
					st = &vcState{}
					states[vc] = st
				}
				if _, busy := workers[vc]; busy {
					continue
				}
				due := now
				switch {
				case st.converged == t.key && t.goal == GoalUp:
					due = st.convergedAt.Add(r.cfg.Resync)
				case st.converged == t.key:
					continue
				case st.failedKey == t.key:
					due = st.retryAt
					t.failures = st.failures
				}
				if now.Before(due) {
					wake = earliest(wake, due)
					continue
				}
				wctx, wcancel := context.WithCancel(ctx)
				workers[vc] = &running{key: t.key, started: now, cancel: wcancel}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer wcancel()
					err := r.work(wctx, t)
					select {
					case results <- result{vc: t.vc, key: t.key, err: err}:
					case <-ctx.Done():
					}
				}()
			}
			for vc := range states {
				if _, ok := targets[vc]; !ok && workers[vc] == nil {
					delete(states, vc)
				}
			}
			for _, rec := range recs {
				if ev := nextEvent(rec, now); !ev.IsZero() {
					wake = earliest(wake, ev)
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		if !r.wait(ctx, wake, watches, results, func(res result) {
			w := workers[res.vc]
			if w == nil || w.key != res.key {
				return
			}
			delete(workers, res.vc)
			st := states[res.vc]
			if st == nil {
				st = &vcState{}
				states[res.vc] = st
			}
			switch {
			case res.err == nil:
				// A resync is due Resync after this check began.
				st.converged, st.convergedAt = res.key, w.started
				st.failedKey, st.failures = "", 0
			case w.cancelled || errors.Is(res.err, context.Canceled):
			default:
				if st.failedKey != res.key {
					st.failedKey, st.failures = res.key, 0
				}
				st.failures++
				st.converged = ""
				// Measured from the failed attempt's start, like a resync
				// (an attempt slower than the backoff is retried at once).
				st.retryAt = w.started.Add(backoff(r.cfg.RetryMin, r.cfg.RetryMax, st.failures))
				r.log.Warn("VC work failed; will retry", "vc", res.vc, "work", res.key, "failures", st.failures, "err", res.err)
			}
		}) {
			break
		}
	}
	cancel()
	r.log.Info("lifecycle reconciler stopping", "workers", len(workers))
	return nil
}

// wait blocks until a watch fires, a worker reports (handled by onResult),
// the wake time comes, or ctx ends (false).
func (r *Reconciler) wait(ctx context.Context, wake time.Time, watches map[string]<-chan coord.Event,
	results <-chan result, onResult func(result)) bool {
	var timer <-chan time.Time
	if !wake.IsZero() {
		d := wake.Sub(r.cfg.Clock.Now())
		if d < 0 {
			d = 0
		}
		c, stop := r.cfg.Clock.After(d)
		defer stop()
		timer = c
	}
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(results)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer)},
	}
	paths := make([]string, 0, len(watches))
	for p, ch := range watches {
		paths = append(paths, p)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	i, v, _ := reflect.Select(cases)
	switch i {
	case 0:
		return false
	case 1:
		onResult(v.Interface().(result))
	case 2:
	default:
		delete(watches, paths[i-3])
	}
	return true
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// backoff is the pause after n failures: doubling from lo, capped at hi.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ensureDirs makes sure reservations/ exists (so it can be watched),
// retrying until ctx ends.
func (r *Reconciler) ensureDirs(ctx context.Context) error {
	for n := 1; ; n++ {
		err := coord.EnsurePath(ctx, r.cfg.Store, coord.ReservationsDir)
		if err == nil {
			return nil
		}
		r.log.Warn("cannot create the reservations directory; retrying", "err", err)
		c, stop := r.cfg.Clock.After(backoff(r.cfg.RetryMin, r.cfg.RetryMax, n))
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-c:
		}
	}
}

// readReservations reads every reservation record, arming a watch on the
// directory and on each record that has none armed.
func (r *Reconciler) readReservations(ctx context.Context, watches map[string]<-chan coord.Event) ([]reserve.Record, error) {
	st := r.cfg.Store
	var kids []string
	var err error
	if _, armed := watches[coord.ReservationsDir]; armed {
		kids, _, err = st.Children(ctx, coord.ReservationsDir)
	} else {
		var ch <-chan coord.Event
		kids, _, ch, err = st.ChildrenW(ctx, coord.ReservationsDir)
		if err == nil {
			watches[coord.ReservationsDir] = ch
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lifecycle: list reservations: %w", err)
	}
	recs := make([]reserve.Record, 0, len(kids))
	for _, vc := range kids {
		p := coord.ReservationPath(vc)
		var data []byte
		if _, armed := watches[p]; armed {
			data, _, err = st.Get(ctx, p)
		} else {
			var ch <-chan coord.Event
			data, _, ch, err = st.GetW(ctx, p)
			if err == nil {
				watches[p] = ch
			}
		}
		if errors.Is(err, coord.ErrNotFound) {
			continue // purged meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("lifecycle: read %s: %w", p, err)
		}
		var rec reserve.Record
		if err := json.Unmarshal(data, &rec); err != nil || rec.VC != vc || rec.RequestID == "" {
			r.log.Warn("ignoring a malformed reservation record", "vc", vc)
			continue
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// targets decides the goal of every VC that has a reservation with a
// share here or anything on the host.
func (r *Reconciler) targets(recs []reserve.Record, inv inventory, now time.Time) map[string]target {
	out := map[string]target{}
	for i := range recs {
		rec := recs[i]
		plan, err := Share(rec, r.cfg.Site, r.cfg.Network)
		if err != nil {
			r.log.Warn("cannot plan the VC's share", "vc", rec.VC, "err", err)
			continue
		}
		held := inv[rec.VC]
		goal := GoalAt(rec, now)
		switch {
		case goal == GoalUp && len(plan.Nodes) > 0:
			out[rec.VC] = target{vc: rec.VC, goal: GoalUp, rec: &rec, plan: plan, held: held, key: "up/" + rec.RequestID}
		case goal == GoalDown && len(plan.Nodes) > 0:
			out[rec.VC] = target{vc: rec.VC, goal: GoalDown, rec: &rec, plan: plan, held: held, key: "down/" + rec.RequestID}
		case len(held) > 0:
			// Not wanted here now (before its window, or no share here):
			// whatever the host has of it goes.
			out[rec.VC] = target{vc: rec.VC, goal: GoalDown, plan: VCPlan{VC: rec.VC}, held: held, key: "clear/" + rec.RequestID}
		}
	}
	for vc, held := range inv {
		if _, ok := out[vc]; !ok && !hasRecord(recs, vc) {
			out[vc] = target{vc: vc, goal: GoalDown, plan: VCPlan{VC: vc}, held: held, key: "clear/"}
		}
	}
	return out
}

func hasRecord(recs []reserve.Record, vc string) bool {
	for _, r := range recs {
		if r.VC == vc {
			return true
		}
	}
	return false
}

// work runs one VC's worker.
func (r *Reconciler) work(ctx context.Context, t target) error {
	var err error
	if t.goal == GoalUp {
		err = r.up(ctx, t)
		if err == nil {
			r.builds.Add(1)
		}
	} else {
		err = r.down(ctx, t)
		if err == nil {
			r.teardowns.Add(1)
		}
	}
	if err != nil && ctx.Err() == nil {
		r.failures.Add(1)
	}
	return err
}
