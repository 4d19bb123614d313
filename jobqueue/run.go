package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Run registers the executor in the host registry and serves it until ctx
// ends: it delivers qdel signals to leases (Lease.Deleted), marks leases
// lost when the node's session dies (Lease.Lost) and registers again under
// the new session, and gives the jobs of dead executors back to the queue
// whenever the registry changes. It returns nil when ctx ends, or an error
// if the first registration fails. Buffered array tasks not handed out are
// released when it returns.
func (e *Executor) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("jobqueue: executor already running")
	}
	e.running, e.stopped = true, false
	e.mu.Unlock()
	sess := make(chan struct{}, 1)
	cancel := e.q.st.OnSession(func(coord.SessionEvent) {
		select {
		case sess <- struct{}{}:
		default:
		}
	})
	defer cancel()
	defer e.shutdown(ctx)
	if err := e.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	select {
	case <-e.ready:
	default:
		close(e.ready)
	}
	var execW, sigW <-chan coord.Event
	slaveW := map[claimName]<-chan coord.Event{}
	needScan, needSig := true, true
	for attempt := 0; ; {
		if id := e.q.st.SessionID(); id != 0 && id != e.session {
			if err := e.sessionChanged(ctx); err != nil {
				e.log.Warn("re-registering after session change", "err", err)
			} else {
				needScan, needSig = true, true
			}
		}
		var err error
		if needScan {
			if execW, err = e.armExec(ctx); err == nil {
				needScan = false
				if rerr := e.q.Recover(ctx); rerr != nil {
					e.log.Warn("recovery scan", "err", rerr)
				}
			}
		}
		if needSig && err == nil {
			if sigW, err = e.armSignals(ctx); err == nil {
				needSig = false
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.log.Warn("executor watch", "err", err)
			if perr := pause(ctx, attempt); perr != nil {
				return nil
			}
			attempt++
			continue
		}
		attempt = 0
		timer, slaveChans, slaveNames := e.watchSlaves(ctx, slaveW)
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(sess)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(execW)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(sigW)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(e.slaveKick)},
		}
		if timer != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
		}
		base := len(cases)
		for _, ch := range slaveChans {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		chosen, _, _ := reflect.Select(cases)
		if timer != nil {
			timer.Stop()
		}
		switch {
		case chosen == 0:
			return nil
		case chosen == 2:
			needScan = true
		case chosen == 3:
			needSig = true
		case chosen >= base:
			delete(slaveW, slaveNames[chosen-base]) // checked and re-armed next round
		}
	}
}

// watchSlaves checks the executor's slave leases: a slave whose job
// started is told so, one whose job ended (or dissolved its gang) drops
// its claim and is finished, one that waited past its deadline gives its
// share back. It arms a watch on the record of each slave still waiting
// or running (kept in w) and returns a timer for the next deadline.
func (e *Executor) watchSlaves(ctx context.Context, w map[claimName]<-chan coord.Event) (*time.Timer, []<-chan coord.Event, []claimName) {
	e.mu.Lock()
	var slaves []*chunk
	for _, c := range e.chunks {
		if c.slave {
			slaves = append(slaves, c)
		}
	}
	e.mu.Unlock()
	var next time.Time
	live := map[claimName]bool{}
	for _, c := range slaves {
		live[c.name] = true
		select {
		case <-c.started:
		default:
			if time.Now().After(c.deadline) {
				e.log.Info("parallel job did not gather its slots in time: giving the share back", "claim", c.name.String())
				if err := c.leases[0].Release(ctx); err != nil && !errors.Is(err, ErrLeaseSettled) {
					e.log.Warn("giving back a share", "claim", c.name.String(), "err", err)
				}
				c.markFinished()
				delete(w, c.name)
				continue
			}
			if next.IsZero() || c.deadline.Before(next) {
				next = c.deadline
			}
		}
		if _, ok := w[c.name]; ok {
			continue
		}
		data, _, ch, err := e.q.st.GetW(ctx, e.q.l.job(c.name.ID))
		var rec *record
		if err == nil {
			rec, err = decodeRecord(e.q.l.job(c.name.ID), data)
		}
		if err != nil && !errors.Is(err, coord.ErrNotFound) {
			e.log.Warn("watching a parallel job", "claim", c.name.String(), "err", err)
			continue // tried again on the next event
		}
		if errors.Is(err, coord.ErrNotFound) || rec.share(c.name.N) < 0 {
			// The job ended, or its gang was given up: drop the claim.
			if err := ignoreNotFound(e.q.st.Delete(ctx, e.q.l.claim(c.name), coord.AnyVersion)); err != nil {
				e.log.Warn("dropping a share's claim", "claim", c.name.String(), "err", err)
			}
			c.markStarted()
			c.markFinished()
			e.forget(c)
			continue
		}
		if rec.State.Active() {
			c.markStarted()
		}
		w[c.name] = ch
	}
	for n := range w {
		if !live[n] {
			delete(w, n)
		}
	}
	var timer *time.Timer
	if !next.IsZero() {
		timer = time.NewTimer(time.Until(next))
	}
	var chans []<-chan coord.Event
	var names []claimName
	for n, ch := range w {
		chans = append(chans, ch)
		names = append(names, n)
	}
	return timer, chans, names
}

// register creates the executor's ephemeral registry entry for the
// current session, and its signal directory.
func (e *Executor) register(ctx context.Context) error {
	if err := retry(ctx, func() error { return coord.EnsurePath(ctx, e.q.st, e.q.l.signals(e.cfg.ID)) }); err != nil {
		return fmt.Errorf("jobqueue: register executor %s: %w", e.cfg.ID, err)
	}
	for attempt := 0; ; attempt++ {
		sid := e.q.st.SessionID()
		info := e.cfg.Info
		info.Session, info.Updated = sid, e.q.now()
		data, err := encode(info)
		if err != nil {
			return err
		}
		p := e.q.l.exec(e.cfg.ID, sid)
		_, err = e.q.st.Create(ctx, p, data, coord.Ephemeral, nil)
		if err == nil || errors.Is(err, coord.ErrExists) {
			e.mu.Lock()
			e.session = sid
			e.mu.Unlock()
			return nil
		}
		if !coord.Retryable(err) && !errors.Is(err, coord.ErrSessionExpired) {
			return fmt.Errorf("jobqueue: register executor %s: %w", e.cfg.ID, err)
		}
		// Unknown outcome: creating again tells (ErrExists means it was).
		if perr := pause(ctx, attempt); perr != nil {
			return perr
		}
	}
}

// UpdateHost replaces the executor's registry entry (load, memory use).
func (e *Executor) UpdateHost(ctx context.Context, info HostInfo) error {
	e.mu.Lock()
	sid := e.session
	info.Executor, info.Session = e.cfg.ID, sid
	if info.Host == "" {
		info.Host = e.cfg.Info.Host
	}
	e.cfg.Info = info
	e.mu.Unlock()
	info.Updated = e.q.now()
	data, err := encode(info)
	if err != nil {
		return err
	}
	return retry(ctx, func() error {
		_, err := e.q.st.Set(ctx, e.q.l.exec(e.cfg.ID, sid), data, coord.AnyVersion)
		return err
	})
}

// sessionChanged handles a new session: the claims of the old one are gone
// with it (unless the store resumed them), so their leases are lost.
func (e *Executor) sessionChanged(ctx context.Context) error {
	if err := e.register(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	sid := e.session
	var suspects []*chunk
	for _, c := range e.chunks {
		if c.info.Session != sid {
			suspects = append(suspects, c)
		}
	}
	e.mu.Unlock()
	for _, c := range suspects {
		ok, st, err := e.q.exists(ctx, e.q.l.claim(c.name))
		if err != nil {
			return err
		}
		if ok && st.EphemeralOwner == sid {
			continue
		}
		e.log.Warn("claim lost with the session", "claim", c.name.String())
		c.markLost()
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return nil
}

// armExec watches the host registry and takes the executor's rank among
// the live executors from it.
func (e *Executor) armExec(ctx context.Context) (<-chan coord.Event, error) {
	var ch <-chan coord.Event
	var kids []string
	err := retry(ctx, func() (err error) {
		kids, _, ch, err = e.q.st.ChildrenW(ctx, e.q.l.dir(execDir))
		return err
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, k := range kids {
		if id, _, err := parseExec(k); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if r := slices.Index(ids, e.cfg.ID); r >= 0 {
		e.peers.Store(int32(len(ids)))
		e.rank.Store(int32(r))
	}
	return ch, nil
}

// armSignals watches the executor's signal directory and delivers the
// signals found there.
func (e *Executor) armSignals(ctx context.Context) (<-chan coord.Event, error) {
	var kids []string
	var ch <-chan coord.Event
	err := retry(ctx, func() (err error) {
		kids, _, ch, err = e.q.st.ChildrenW(ctx, e.q.l.signals(e.cfg.ID))
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		if err := e.signal(ctx, k); err != nil {
			return nil, err
		}
	}
	return ch, nil
}

// signal delivers one qdel signal: the node's data lists the array tasks
// to kill (all of the claim's when empty).
func (e *Executor) signal(ctx context.Context, name string) error {
	p := e.q.l.signals(e.cfg.ID) + "/" + name
	cn, err := parseClaim(name)
	if err != nil {
		return retry(ctx, func() error { return ignoreNotFound(e.q.st.Delete(ctx, p, coord.AnyVersion)) })
	}
	var data []byte
	err = retry(ctx, func() (err error) {
		data, _, err = e.q.st.Get(ctx, p)
		return err
	})
	if errors.Is(err, coord.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var tasks []int
	if len(data) > 0 {
		if err := json.Unmarshal(data, &tasks); err != nil {
			e.log.Warn("malformed signal", "signal", name, "err", err)
		}
	}
	e.mu.Lock()
	c := e.chunks[cn]
	e.mu.Unlock()
	if c == nil {
		// Not ours (any more), or a claim just made whose lease is not
		// registered yet: keep the signal while the claim is ours.
		ok, st, err := e.q.exists(ctx, e.q.l.claim(cn))
		if err != nil {
			return err
		}
		if ok && st.EphemeralOwner == e.q.st.SessionID() {
			e.mu.Lock()
			if e.pending == nil {
				e.pending = map[claimName][]int{}
			}
			e.pending[cn] = tasks
			c = e.chunks[cn]
			e.mu.Unlock()
			if c == nil {
				return nil
			}
		}
	}
	if c != nil {
		for _, l := range c.leases {
			if len(tasks) == 0 || slices.Contains(tasks, l.task) {
				l.markDeleted()
			}
		}
	}
	return retry(ctx, func() error { return ignoreNotFound(e.q.st.Delete(ctx, p, coord.AnyVersion)) })
}

func ignoreNotFound(err error) error {
	if errors.Is(err, coord.ErrNotFound) {
		return nil
	}
	return err
}

// forget drops a settled or lost claim.
func (e *Executor) forget(c *chunk) {
	e.mu.Lock()
	delete(e.chunks, c.name)
	e.buffer = slices.DeleteFunc(e.buffer, func(l *Lease) bool { return l.ch == c })
	e.mu.Unlock()
}

func (e *Executor) unbuffer(l *Lease) {
	e.mu.Lock()
	e.buffer = slices.DeleteFunc(e.buffer, func(b *Lease) bool { return b == l })
	e.mu.Unlock()
}

// shutdown releases the buffered array tasks and removes the registry
// entry.
func (e *Executor) shutdown(ctx context.Context) {
	e.mu.Lock()
	e.running, e.stopped = false, true
	buf := slices.Clone(e.buffer)
	sid := e.session
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}: // a blocked Claim returns ErrNotRunning
	default:
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, l := range buf {
		if err := l.Release(bg); err != nil && !errors.Is(err, ErrLeaseSettled) {
			e.log.Warn("releasing buffered task", "job", l.JobID(), "task", l.task, "err", err)
		}
	}
	if err := ignoreNotFound(e.q.st.Delete(bg, e.q.l.exec(e.cfg.ID, sid), coord.AnyVersion)); err != nil {
		e.log.Debug("removing registry entry", "err", err)
	}
}

// Recover gives back the jobs and array tasks of every claim whose
// executor's session died (a run entry without its ephemeral claim):
// reruns, as Grid Engine's -r y. Executors call it whenever the host
// registry changes; it is safe to call concurrently from anywhere.
func (q *Queue) Recover(ctx context.Context) error {
	runs, err := q.children(ctx, q.l.dir(runDir))
	if err != nil {
		return err
	}
	var errs []error
	defer func() {
		// Array jobs a dying settler did not get to finish.
		entries, err := q.children(ctx, q.l.dir(queueDir))
		if err != nil {
			return
		}
		for _, k := range entries {
			if en, err := parseEntry(k); err == nil && en.Array {
				if _, err := q.finishArray(ctx, en.ID); err != nil {
					q.log.Warn("finishing array job", "job", en.ID, "err", err)
				}
			}
		}
	}()
	if len(runs) == 0 {
		return nil
	}
	claims, err := q.children(ctx, q.l.dir(claimsDir))
	if err != nil {
		return err
	}
	live := make(map[string]bool, len(claims))
	for _, c := range claims {
		live[c] = true
	}
	for _, r := range runs {
		if live[r] {
			continue
		}
		cn, err := parseClaim(r)
		if err != nil {
			continue
		}
		if _, err := q.recoverClaim(ctx, cn); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recoverClaim gives back claim cn if its ephemeral claim is gone. Claim
// and run entry are created together, and the claim of a settled run goes
// with its run entry, so a run entry without claim belongs to a dead
// session. The give-back is one transaction that deletes the run entry, so
// only one recoverer succeeds.
func (q *Queue) recoverClaim(ctx context.Context, cn claimName) (bool, error) {
	for attempt := 0; attempt < 20; attempt++ {
		var data []byte
		err := retry(ctx, func() (err error) {
			data, _, err = q.st.Get(ctx, q.l.run(cn))
			return err
		})
		if errors.Is(err, coord.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		info, err := decodeClaim(q.l.run(cn), data)
		if err != nil {
			return false, err
		}
		if alive, _, err := q.exists(ctx, q.l.claim(cn)); err != nil || alive {
			return false, err
		}
		rec, ver, err := q.getRecord(ctx, cn.ID)
		if errors.Is(err, coord.ErrNotFound) {
			err = retry(ctx, func() error { return ignoreNotFound(q.st.Delete(ctx, q.l.run(cn), coord.AnyVersion)) })
			return false, err
		}
		if err != nil {
			return false, err
		}
		now := q.now()
		acct := Accounting{
			JobID: rec.ID, Name: rec.Spec.Name, Owner: rec.Spec.Submitter.User, Group: rec.Spec.Submitter.Group,
			Executor: info.Executor, Host: info.Host, Slots: info.Slots, Claim: cn.N,
			Submitted: rec.Submitted, Start: info.Start, End: now,
			Failed: 25, FailedReason: "rescheduling: executor lost", ExitStatus: 137, Signal: "SIGKILL",
		}
		nr := rec.clone()
		nr.Settled = cn.N
		if rec.isArray() {
			var undone []int
			for _, t := range info.Tasks {
				ok, _, err := q.exists(ctx, q.l.task(cn.ID, t))
				if err != nil {
					return false, err
				}
				if !ok {
					undone = append(undone, t)
				}
			}
			a := nr.Array
			a.Claimed -= len(undone)
			if nr.State != StateDeleting && len(undone) > 0 {
				a.Reruns = append(a.Reruns, undone...)
				slices.Sort(a.Reruns)
				nr.Restarts++
				for _, t := range undone {
					ta := acct
					ta.Task, ta.State = t, StateQueued
					nr.History = append(nr.History, ta)
				}
			}
		} else if i := rec.share(cn.N); i >= 0 {
			// A slave of a parallel job died: its share goes. A gathering
			// gang waits for another; a running job goes on (its master
			// owns the processes).
			nr.Gang = slices.Delete(nr.Gang, i, i+1)
		} else {
			if rec.Claim == nil || rec.Claim.N != cn.N {
				err := retry(ctx, func() error { return ignoreNotFound(q.st.Delete(ctx, q.l.run(cn), coord.AnyVersion)) })
				return false, err
			}
			nr.Claim = nil
			var to State
			switch {
			case rec.State == StateDeleting:
				to = StateDeleted
				acct.Failed, acct.FailedReason = 100, "assumedly after job"
			case rec.Spec.Rerun != nil && !*rec.Spec.Rerun:
				to = StateFailed
				acct.FailedReason = "executor lost; job is not rerunnable (-r n)"
			default:
				to = nr.pendingState()
				nr.Restarts++
			}
			if err := nr.setState(to); err != nil {
				return false, err
			}
			acct.State = to
			if to.Final() {
				nr.Final, nr.Finished = &acct, now
			} else {
				nr.History = append(nr.History, acct)
			}
		}
		if rec.isArray() {
			n, err := q.doneTasks(ctx, cn.ID)
			if err != nil {
				return false, err
			}
			arrayDone(nr, n)
		}
		// Arrays and gathering gangs get a new entry name, so that
		// consumers see the room the dead claim leaves.
		ops, err := q.recordOps(rec, ver, nr, rec.isArray() || rec.share(cn.N) >= 0)
		if err != nil {
			return false, err
		}
		ops = append(ops, &coord.DeleteOp{Path: q.l.run(cn), Version: coord.AnyVersion})
		_, err = q.st.Multi(ctx, ops...)
		switch {
		case err == nil:
			q.stats.recovered.Add(1)
			q.log.Info("recovered claim of a dead executor", "claim", cn.String(), "executor", info.Executor, "state", nr.State)
			return true, nil
		case errors.Is(err, coord.ErrConnectionLost):
			gone, rerr := q.resolve(ctx, q.l.run(cn), func(ctx context.Context) (bool, error) {
				ok, _, err := q.st.Exists(ctx, q.l.run(cn))
				return !ok, err
			})
			if rerr != nil {
				return false, rerr
			}
			q.stats.unknown(gone)
			if gone {
				return true, nil
			}
		case coord.Retryable(err), errors.Is(err, coord.ErrSessionExpired):
		default:
			if idx, _ := multiErr(err); idx < 0 {
				return false, fmt.Errorf("jobqueue: recover %s: %w", cn, err)
			}
			// A concurrent change (another recoverer, qdel...): look again.
		}
		if perr := pause(ctx, attempt); perr != nil {
			return false, perr
		}
	}
	return false, fmt.Errorf("jobqueue: recover %s: too many conflicts", cn)
}

// finalOps finish a job: its record moves to done/ and its name index and
// queue entry go, in one transaction with whatever the caller adds.
func (q *Queue) finalOps(rec *record, ver int32, nr *record) ([]coord.Op, error) {
	nr.Queued = false
	if nr.Finished.IsZero() {
		nr.Finished = q.now()
	}
	data, err := encode(nr)
	if err != nil {
		return nil, err
	}
	ops := []coord.Op{
		&coord.DeleteOp{Path: q.l.job(rec.ID), Version: ver},
		&coord.DeleteOp{Path: q.l.name(rec.Spec.Name, rec.ID), Version: coord.AnyVersion},
	}
	if rec.Queued {
		ops = append(ops, &coord.DeleteOp{Path: q.l.entry(rec.entry()), Version: coord.AnyVersion})
	}
	return append(ops, &coord.CreateOp{Path: q.l.done(rec.ID), Data: data}), nil
}

// recordOps write the new record nr of a job read as rec at version ver:
// a versioned Set, with the queue entry created, renamed or deleted to
// match (rename forces a new entry name, for changes consumers must see),
// and the name index following a new name; or the finishing transaction
// when nr is final. An array job keeps its queue entry while it is queued,
// until it finishes.
func (q *Queue) recordOps(rec *record, ver int32, nr *record, rename bool) ([]coord.Op, error) {
	// A gang lives while its job gathers slots (queued) or runs; any other
	// change dissolves it: its shares' run entries go, and the slaves,
	// watching the record, drop their claims.
	var dissolve []coord.Op
	if len(nr.Gang) > 0 && !(nr.State == StateQueued && rec.State == StateQueued) && !nr.State.Active() {
		for _, g := range nr.Gang {
			dissolve = append(dissolve, &coord.DeleteOp{Path: q.l.run(claimName{ID: rec.ID, N: g.N}), Version: coord.AnyVersion})
		}
		nr.Gang = nil
	}
	if nr.State.Final() {
		ops, err := q.finalOps(rec, ver, nr)
		return append(ops, dissolve...), err
	}
	want := nr.State == StateQueued
	fresh := want && (!rec.Queued || rename || rec.entry() != nr.entry())
	nr.Queued = want
	if fresh {
		nr.Rev = rec.Rev + 1
	}
	data, err := encode(nr)
	if err != nil {
		return nil, err
	}
	ops := []coord.Op{&coord.SetOp{Path: q.l.job(rec.ID), Data: data, Version: ver}}
	if rec.Queued && (!want || fresh) {
		ops = append(ops, &coord.DeleteOp{Path: q.l.entry(rec.entry()), Version: coord.AnyVersion})
	}
	if fresh {
		ops = append(ops, &coord.CreateOp{Path: q.l.entry(nr.entry())})
	}
	if rec.Spec.Name != nr.Spec.Name {
		ops = append(ops,
			&coord.DeleteOp{Path: q.l.name(rec.Spec.Name, rec.ID), Version: coord.AnyVersion},
			&coord.CreateOp{Path: q.l.name(nr.Spec.Name, rec.ID)})
	}
	return append(ops, dissolve...), nil
}

// arrayDone reports whether an array job with done finished tasks is
// finished (nothing to claim, nothing running, no task in error), and sets
// its final state if so: deleted when qdel stopped it, done otherwise.
func arrayDone(nr *record, done int) bool {
	a := nr.Array
	if a == nil || nr.State.Final() || nr.hasUnclaimed() || a.Claimed > done || len(a.ErrorTasks) > 0 {
		return false
	}
	// Array jobs' records carry the state of their pending part; this is
	// not a transition of the state machine of single jobs.
	if nr.State == StateDeleting {
		nr.State = StateDeleted
	} else {
		nr.State = StateDone
	}
	return true
}

// doneTasks counts an array job's finished tasks (completion records).
func (q *Queue) doneTasks(ctx context.Context, id int64) (int, error) {
	ok, st, err := q.exists(ctx, q.l.taskDir(id))
	if err != nil || !ok {
		return 0, err
	}
	return int(st.NumChildren), nil
}

// finishArray finishes an array job whose tasks are all claimed and
// finished. Whoever settles an array job's claims calls it after; a
// consumer that finds an array job with nothing to claim calls it too, in
// case the last settler died before.
func (q *Queue) finishArray(ctx context.Context, id int64) (bool, error) {
	for attempt := 0; attempt < 20; attempt++ {
		rec, ver, err := q.getRecord(ctx, id)
		if errors.Is(err, coord.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !rec.isArray() || rec.hasUnclaimed() {
			return false, nil
		}
		done, err := q.doneTasks(ctx, id)
		if err != nil {
			return false, err
		}
		nr := rec.clone()
		if !arrayDone(nr, done) {
			return false, nil
		}
		ops, err := q.finalOps(rec, ver, nr)
		if err != nil {
			return false, err
		}
		_, err = q.st.Multi(ctx, ops...)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, coord.ErrConnectionLost):
			ok, rerr := q.resolve(ctx, q.l.done(id), func(ctx context.Context) (bool, error) {
				ok, _, err := q.st.Exists(ctx, q.l.done(id))
				return ok, err
			})
			if rerr != nil {
				return false, rerr
			}
			q.stats.unknown(ok)
			if ok {
				return true, nil
			}
		case coord.Retryable(err), errors.Is(err, coord.ErrSessionExpired):
		default:
			if idx, _ := multiErr(err); idx < 0 {
				return false, fmt.Errorf("jobqueue: finish job %d: %w", id, err)
			}
			// Changed meanwhile, or finished by someone else: look again.
		}
		if perr := pause(ctx, attempt); perr != nil {
			return false, perr
		}
	}
	return false, fmt.Errorf("jobqueue: finish job %d: too many conflicts", id)
}
