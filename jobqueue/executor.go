package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// ID names the executor uniquely within the VC (its node name): letters,
	// digits, '.', '_', '-'.
	ID string
	// Info is the executor's host registry entry: host name (default ID),
	// slots, memory, arch and host attributes. Claims match jobs' -l and -q
	// requests against it.
	Info HostInfo
	// Window is how many entries at the head of the queue's highest
	// priority band a claim picks among at random, so that consumers spread
	// over the queue instead of racing for its head; default 32.
	Window int
	// MaxChunk bounds the tasks of an array job claimed at once; default 16.
	MaxChunk int
	// RelistInterval is how stale the local listing of the queue may get,
	// while the queue changes, before it is listed again; default 250 ms.
	RelistInterval time.Duration
	// Logger receives the executor's logs; nil uses the queue's.
	Logger *slog.Logger
	// JoinGangs lets the executor take shares of the slots of parallel
	// jobs whose PE spans hosts and that no single executor can start
	// alone: such a Claim may return a slave lease (Lease.Slave), which
	// holds slots and runs nothing. Off by default.
	JoinGangs bool
	// GangTimeout is how long a slave lease waits for its job to gather
	// all its slots before it gives its share back (so that two gathering
	// jobs cannot hold each other's slots for ever); default 1 minute.
	GangTimeout time.Duration
}

// Executor claims jobs for one node and settles them: the consumer side of
// the queue recipe. Run must be running for it to claim: it registers the
// node in the host registry, delivers qdel signals to leases, notices the
// loss of the node's session, and gives the jobs of dead executors back to
// the queue.
//
// The recipe: a claim is one transaction that checks the job is still
// claimable (its queue entry or its record version) and creates the
// claim's persistent run entry and its ephemeral twin owned by this
// node's session; settling the claim (Complete) is one transaction that
// deletes the claim and finishes or requeues the job, and creates the done
// record exactly once. A claim whose session dies vanishes; whoever
// notices a run entry without its claim gives the job back (rerun). Every
// write whose outcome is unknown (coord.ErrConnectionLost) is resolved by
// reading back a token it wrote.
type Executor struct {
	q   *Queue
	cfg ExecutorConfig
	log *slog.Logger

	sem       chan struct{}   // the claim path: one Claim at a time
	wake      chan struct{}   // Run -> Claim: relist (session change)
	direct    chan *directReq // SubmitHere -> a waiting Claim
	slaveKick chan struct{}   // Claim -> Run: a slave lease to watch
	ready     chan struct{}   // closed once Run has registered the node

	// peers and rank place the executor among the live ones (pick).
	peers, rank atomic.Int32
	// waiting is set while a Claim waits for work (tests).
	waiting atomic.Bool

	mu      sync.Mutex
	running bool
	stopped bool
	session int64
	chunks  map[claimName]*chunk
	buffer  []*Lease            // array tasks claimed, not handed out yet
	pending map[claimName][]int // signals that arrived before their lease

	// Claim path state, guarded by sem.
	cands           []entryName
	noFit           []entryName
	claimsSinceList int // since the last listing
	skipped         int // entries blocked or too big since the last listing
	listLen         int // entries in the last listing
	listed          bool
	listedAt        time.Time
	listIDs         map[int64]bool
	qWatch          <-chan coord.Event
	qFired          bool
	lost            int
	cache           map[entryName]cached
	finished        map[int64]bool
	predW           map[int64]<-chan coord.Event
	tcW             map[int64]<-chan coord.Event
	rng             *rand.Rand
}

// resolveTimeout bounds the resolution of a claim whose outcome is
// unknown, which goes on after the caller gave up.
const resolveTimeout = time.Minute

type cached struct {
	rec *record
	ver int32
}

// NewExecutor returns an executor of this queue for one node.
func (q *Queue) NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	if err := coord.ValidName(cfg.ID); err != nil {
		return nil, fmt.Errorf("jobqueue: executor id: %w", err)
	}
	if strings.ContainsRune(cfg.ID, '~') {
		return nil, fmt.Errorf("jobqueue: executor id %q contains '~'", cfg.ID)
	}
	if cfg.Info.Host == "" {
		cfg.Info.Host = cfg.ID
	}
	cfg.Info.Executor = cfg.ID
	if cfg.Info.Slots <= 0 {
		cfg.Info.Slots = 1
	}
	if cfg.Window <= 0 {
		cfg.Window = 32
	}
	if cfg.MaxChunk <= 0 {
		cfg.MaxChunk = 16
	}
	if cfg.RelistInterval <= 0 {
		cfg.RelistInterval = 250 * time.Millisecond
	}
	if cfg.GangTimeout <= 0 {
		cfg.GangTimeout = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = q.log
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.ID))
	seed := h.Sum64()
	return &Executor{
		q: q, cfg: cfg, log: log.With("executor", cfg.ID),
		sem:       make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		direct:    make(chan *directReq),
		slaveKick: make(chan struct{}, 1),
		ready:     make(chan struct{}),
		chunks:    map[claimName]*chunk{},
		cache:     map[entryName]cached{},
		finished:  map[int64]bool{},
		predW:     map[int64]<-chan coord.Event{},
		tcW:       map[int64]<-chan coord.Event{},
		rng:       rand.New(rand.NewPCG(seed, seed>>7|1)),
	}, nil
}

// ID is the executor's id.
func (e *Executor) ID() string { return e.cfg.ID }

// ---------------------------------------------------------------------------
// Claiming

// Claim blocks until it has claimed a job (or array task) this node can
// run with capacity c, or ctx ends. It never polls: when nothing is
// claimable it waits on watches of the queue, of the predecessors a job
// waits for and of array jobs held back by -tc. To claim with a different
// capacity, cancel ctx and call again. Claim may be called from several
// goroutines; claims are made one at a time.
func (e *Executor) Claim(ctx context.Context, c Capacity) (*Lease, error) {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.sem }()
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if len(e.noFit) > 0 {
		e.cands = append(e.cands, e.noFit...)
		e.noFit = nil
		slices.SortFunc(e.cands, cmpEntry)
	}
	for {
		e.mu.Lock()
		stopped := e.stopped
		e.mu.Unlock()
		if stopped {
			return nil, ErrNotRunning
		}
		if l := e.popBuffer(c); l != nil {
			return l, nil
		}
		e.pollQueueWatch()
		select {
		case <-e.wake:
			e.listed = false
		default:
		}
		if e.needRelist() {
			if err := e.relist(ctx); err != nil {
				return nil, err
			}
		}
		var w waitSet
		l, err := e.scan(ctx, c, &w)
		if l != nil {
			e.claimsSinceList++
		}
		if l != nil || err != nil {
			return l, err
		}
		if e.lost > 0 {
			// An entry this node lost may still be there (an unknown
			// outcome that was not applied): look again before waiting.
			e.listed = false
			continue
		}
		e.pollQueueWatch()
		if e.qFired {
			if e.needRelist() {
				continue
			}
			// The queue changed, but this listing gave nothing: list it
			// again no sooner than RelistInterval after the last time.
			w.at(e.listedAt.Add(e.cfg.RelistInterval))
		}
		l, err = e.wait(ctx, &w, c)
		if l != nil || err != nil {
			return l, err
		}
	}
}

// needRelist: never listed, two races lost, or the queue changed and the
// listing is old or used up. A large listing whose entries this node
// could not take (waiting for predecessors, too big) is listed again at
// most every RelistInterval: others' activity would otherwise make it
// list the whole queue on every change.
func (e *Executor) needRelist() bool {
	if !e.listed || e.lost >= 2 {
		return true
	}
	if !e.qFired {
		return false
	}
	if time.Since(e.listedAt) >= e.cfg.RelistInterval {
		return true
	}
	idle := e.claimsSinceList == 0 && e.skipped > 0 && e.listLen > 64
	return len(e.cands) == 0 && !idle
}

func cmpEntry(a, b entryName) int {
	if a.less(b) {
		return -1
	}
	if b.less(a) {
		return 1
	}
	return 0
}

// waitSet collects what a blocked Claim waits for besides the queue.
type waitSet struct {
	chans []<-chan coord.Event
	until time.Time
}

func (w *waitSet) at(t time.Time) {
	if w.until.IsZero() || t.Before(w.until) {
		w.until = t
	}
}

func (e *Executor) pollQueueWatch() {
	if e.qWatch == nil {
		return
	}
	select {
	case <-e.qWatch:
		e.qFired = true
		e.qWatch = nil
	default:
	}
}

// wait blocks until the queue changes, a watched predecessor or -tc held
// array job changes, a -a start time comes, Run asks to relist, or ctx
// ends. Meanwhile it takes the jobs SubmitHere offers that fit c: it
// returns the lease of one it created claimed.
func (e *Executor) wait(ctx context.Context, w *waitSet, c Capacity) (*Lease, error) {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(e.wake)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(e.direct)},
	}
	const directCase = 2
	if e.qWatch != nil {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(e.qWatch)})
	}
	var timer *time.Timer
	if !w.until.IsZero() {
		timer = time.NewTimer(time.Until(w.until))
		defer timer.Stop()
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
	}
	// Every pending predecessor and -tc watch, not only this scan's: the
	// entries blocked on them left the candidate list.
	base := len(cases)
	var watched []<-chan coord.Event
	seen := map[<-chan coord.Event]bool{}
	for _, set := range [][]<-chan coord.Event{w.chans, slices.Collect(maps.Values(e.predW)), slices.Collect(maps.Values(e.tcW))} {
		for _, ch := range set {
			if !seen[ch] {
				seen[ch] = true
				watched = append(watched, ch)
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
			}
		}
	}
	e.waiting.Store(true)
	chosen, recv, _ := reflect.Select(cases)
	e.waiting.Store(false)
	if chosen == directCase {
		return e.takeDirect(ctx, recv.Interface().(*directReq), c), nil
	}
	if chosen >= base {
		// The watch's one event is consumed: forget the watch.
		fired := watched[chosen-base]
		maps.DeleteFunc(e.predW, func(_ int64, ch <-chan coord.Event) bool { return ch == fired })
		n := len(e.tcW)
		maps.DeleteFunc(e.tcW, func(_ int64, ch <-chan coord.Event) bool { return ch == fired })
		if len(e.tcW) < n {
			// Every consumer -tc held back wakes on this completion.
			if err := e.jitter(ctx, 3); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case chosen == 0:
		return nil, ctx.Err()
	case chosen == 1:
		e.listed = false
	case e.qWatch != nil && chosen == directCase+1:
		e.qFired = true
		e.qWatch = nil
	default:
		// A predecessor or a -tc held array changed, or a start time came:
		// the entries blocked on them are evaluated again after a relist.
		e.listed = false
	}
	return nil, nil
}

// relist lists the queue with a watch and rebuilds the candidate list.
func (e *Executor) relist(ctx context.Context) error {
	var kids []string
	var ch <-chan coord.Event
	err := retry(ctx, func() (err error) {
		kids, _, ch, err = e.q.st.ChildrenW(ctx, e.q.l.dir(queueDir))
		return err
	})
	if err != nil {
		return fmt.Errorf("jobqueue: list queue: %w", err)
	}
	e.q.stats.relists.Add(1)
	e.qWatch, e.qFired, e.lost, e.claimsSinceList, e.skipped, e.listLen = ch, false, 0, 0, 0, len(kids)
	e.listed, e.listedAt = true, time.Now()
	e.cands = e.cands[:0]
	e.noFit = nil
	ids := make(map[int64]bool, len(kids))
	for _, k := range kids {
		en, err := parseEntry(k)
		if err != nil {
			e.log.Warn("ignoring malformed queue entry", "entry", k)
			continue
		}
		e.cands = append(e.cands, en)
		ids[en.ID] = true
	}
	slices.SortFunc(e.cands, cmpEntry)
	e.listIDs = ids
	for en := range e.cache {
		if !ids[en.ID] {
			delete(e.cache, en)
		}
	}
	for id, w := range e.predW {
		select {
		case <-w:
			delete(e.predW, id)
		default:
		}
	}
	for id, w := range e.tcW {
		select {
		case <-w:
			delete(e.tcW, id)
		default:
		}
	}
	return nil
}

// pick chooses the next candidate: at random among the first Window
// entries of the highest priority band.
//
// It prefers the entries of its own class: job ids modulo the number of
// live executors, its class being its rank among them (from the registry
// Run watches), found within Window entries per executor. Consumers then
// rarely race each other or read entries another just claimed; an
// executor whose class has nothing there takes any entry of the first
// Window, so a busy executor's class waits for no more than that.
func (e *Executor) pick() int {
	peers, rank := int64(max(e.peers.Load(), 1)), int64(e.rank.Load())
	// Own-class entries are looked for over a window per peer: the
	// other classes' entries at the head of this (possibly stale) listing
	// are likely taken already.
	deep := int(min(int64(len(e.cands)), int64(e.cfg.Window)*peers))
	band := 1
	for band < deep && e.cands[band].Priority == e.cands[0].Priority {
		band++
	}
	if peers > 1 {
		for i := range band {
			if e.cands[i].ID%peers == rank {
				return i
			}
		}
	}
	return e.rng.IntN(min(band, e.cfg.Window))
}

type outcome int

const (
	outClaimed outcome = iota
	outLost            // another consumer won the race
	outGone            // the entry is stale
	outBlocked         // waiting for predecessors, -tc or a start time
	outNoFit           // does not fit this node now
)

// scan works through the candidates until it claims one or none is left.
func (e *Executor) scan(ctx context.Context, c Capacity, w *waitSet) (*Lease, error) {
	for len(e.cands) > 0 {
		i := e.pick()
		en := e.cands[i]
		l, out, err := e.try(ctx, en, c, w)
		e.q.stats.tries.Add(1)
		if out == outGone {
			e.q.stats.gone.Add(1)
		}
		if err != nil {
			return nil, err
		}
		switch out {
		case outClaimed:
			if l.ch.array && e.cands[i] == en {
				// More tasks may remain: keep the entry where it is.
				return l, nil
			}
			e.cands = slices.Delete(e.cands, i, i+1)
			return l, nil
		case outLost:
			e.q.stats.lostRaces.Add(1)
			e.lost++
			e.cands = slices.Delete(e.cands, i, i+1)
			if e.lost >= 2 {
				return nil, nil
			}
		case outNoFit:
			e.cands = slices.Delete(e.cands, i, i+1)
			e.noFit = append(e.noFit, en)
			e.skipped++
		case outBlocked:
			e.cands = slices.Delete(e.cands, i, i+1)
			e.skipped++
		default:
			e.cands = slices.Delete(e.cands, i, i+1)
		}
	}
	return nil, nil
}

// try evaluates one queue entry and claims it if it can.
func (e *Executor) try(ctx context.Context, en entryName, c Capacity, w *waitSet) (*Lease, outcome, error) {
	var rec *record
	var ver int32
	if cr, ok := e.cache[en]; ok && !en.Array {
		rec, ver = cr.rec, cr.ver
	} else {
		var err error
		rec, ver, err = e.q.getRecord(ctx, en.ID)
		if errors.Is(err, coord.ErrNotFound) {
			return nil, outGone, nil
		}
		if errors.Is(err, ErrCorrupt) {
			e.log.Error("skipping corrupt job record", "job", en.ID, "err", err)
			return nil, outGone, nil
		}
		if err != nil {
			return nil, 0, err
		}
		if !en.Array {
			e.cache[en] = cached{rec, ver}
		}
	}
	if rec.Rev != en.Rev || !rec.Queued || rec.State != StateQueued {
		delete(e.cache, en)
		return nil, outGone, nil
	}
	blocked, err := e.depsBlocked(ctx, rec, w)
	if err != nil {
		return nil, 0, err
	}
	if blocked {
		return nil, outBlocked, nil
	}
	if st := rec.Spec.StartTime; !st.IsZero() && e.q.now().Before(st) {
		w.at(st)
		return nil, outBlocked, nil
	}
	slots, possible := fits(rec.Spec, &e.cfg.Info, c)
	if e.cfg.JoinGangs && e.q.multiHost(rec) && hostMatches(rec.Spec, &e.cfg.Info) && (len(rec.Gang) > 0 || slots == 0) {
		if c.Slots < 1 {
			return nil, outNoFit, nil
		}
		return e.claimShare(ctx, en, rec, ver, c.Slots)
	}
	if !possible {
		return nil, outGone, nil
	}
	if slots == 0 {
		return nil, outNoFit, nil
	}
	if rec.isArray() {
		return e.claimTasks(ctx, rec, ver, c, slots, w)
	}
	return e.claimJob(ctx, en, rec, ver, slots)
}

// depsBlocked reports whether a -hold_jid predecessor is unfinished, and
// adds a watch on it to w. A predecessor is finished once its record has
// left jobs/ (ids are never reused): that needs no read while it is still
// in the queue listing, and one read (with a watch) otherwise.
func (e *Executor) depsBlocked(ctx context.Context, rec *record, w *waitSet) (bool, error) {
	for _, p := range rec.Preds {
		if e.finished[p] {
			continue
		}
		if e.listIDs[p] {
			return true, nil // leaving the queue changes the listing
		}
		if ch, ok := e.predW[p]; ok {
			select {
			case <-ch:
				delete(e.predW, p)
			default:
				w.chans = append(w.chans, ch)
				return true, nil
			}
		}
		var ok bool
		var ch <-chan coord.Event
		err := retry(ctx, func() (err error) {
			ok, _, ch, err = e.q.st.ExistsW(ctx, e.q.l.job(p))
			return err
		})
		if err != nil {
			return false, fmt.Errorf("jobqueue: check predecessor %d: %w", p, err)
		}
		if !ok {
			e.finished[p] = true
			continue
		}
		e.predW[p] = ch
		w.chans = append(w.chans, ch)
		return true, nil
	}
	return false, nil
}

func (e *Executor) newClaim(n, slots int, tasks []int) claimInfo {
	return claimInfo{
		N: n, Executor: e.cfg.ID, Host: e.cfg.Info.Host, Session: e.q.st.SessionID(),
		Token: token(), Start: e.q.now(), Slots: slots, Tasks: tasks,
	}
}

// claimJob claims a job that is not an array job:
// Multi(Delete(entry), Set(record, version), Create(run), Create(claim,
// ephemeral)). The entry is the lock: whoever deletes it owns the job.
func (e *Executor) claimJob(ctx context.Context, en entryName, rec *record, ver int32, slots int) (*Lease, outcome, error) {
	n := rec.Claims + 1
	info := e.newClaim(n, slots, nil)
	nr := rec.clone()
	if err := nr.setState(StateRunning); err != nil {
		return nil, 0, err
	}
	nr.Claims, nr.Claim, nr.Queued, nr.Rescheduled = n, &info, false, false
	recData, err := encode(nr)
	if err != nil {
		return nil, 0, err
	}
	infoData, err := encode(info)
	if err != nil {
		return nil, 0, err
	}
	cn := claimName{ID: rec.ID, N: n}
	ops := []coord.Op{
		&coord.DeleteOp{Path: e.q.l.entry(en), Version: coord.AnyVersion},
		&coord.SetOp{Path: e.q.l.job(rec.ID), Data: recData, Version: ver},
		&coord.CreateOp{Path: e.q.l.run(cn), Data: infoData},
		&coord.CreateOp{Path: e.q.l.claim(cn), Data: infoData, Mode: coord.Ephemeral},
	}
	delete(e.cache, en)
	for attempt := 0; ; attempt++ {
		res, err := e.q.st.Multi(ctx, ops...)
		if err == nil {
			return e.newLeases(cn, &info, nr, res[1].Stat.Version, []int{0}), outClaimed, nil
		}
		if errors.Is(err, coord.ErrConnectionLost) {
			won, newVer, rerr := e.resolveClaim(ctx, cn, info.Token) // not cancellable
			if rerr != nil {
				return nil, 0, rerr
			}
			if won {
				return e.newLeases(cn, &info, nr, newVer, []int{0}), outClaimed, nil
			}
			return nil, outLost, nil
		}
		if errors.Is(err, coord.ErrUnavailable) || errors.Is(err, coord.ErrSessionExpired) {
			if perr := pause(ctx, attempt); perr != nil {
				return nil, 0, perr
			}
			continue
		}
		idx, cause := multiErr(err)
		if idx >= 0 {
			if idx > 0 {
				e.log.Warn("claim conflict", "job", rec.ID, "op", idx, "err", cause)
			}
			return nil, outLost, nil
		}
		return nil, 0, fmt.Errorf("jobqueue: claim job %d: %w", rec.ID, err)
	}
}

// claimShare claims a share of the slots of a parallel job that spans
// hosts: Multi(Set(record, version) adding the share, Delete+Create(entry)
// with a new revision, Create(run), Create(claim, ephemeral)). The share
// that completes the gang makes its executor the job's master: the record
// goes to r with the allocation (master first), as PE_HOSTFILE lists it;
// the earlier shares' leases are slaves.
func (e *Executor) claimShare(ctx context.Context, en entryName, rec *record, ver int32, free int) (*Lease, outcome, error) {
	need := rec.Spec.PE.Min
	have := rec.gangSlots()
	s := min(free, need-have)
	if s <= 0 {
		return nil, outGone, nil
	}
	n := rec.Claims + 1
	info := e.newClaim(n, s, nil)
	nr := rec.clone()
	nr.Claims = n
	ops := []coord.Op{&coord.DeleteOp{Path: e.q.l.entry(en), Version: coord.AnyVersion}}
	if have+s >= need {
		if err := nr.setState(StateRunning); err != nil {
			return nil, 0, err
		}
		info.Hosts = []PEHost{{Executor: info.Executor, Host: info.Host, Slots: s}}
		for _, g := range rec.Gang {
			info.Hosts = append(info.Hosts, PEHost{Executor: g.Executor, Host: g.Host, Slots: g.Slots})
		}
		nr.Claim, nr.Queued = &info, false
	} else {
		info.Share = true
		nr.Gang = append(nr.Gang, info)
		nr.Rev++
		ops = append(ops, &coord.CreateOp{Path: e.q.l.entry(nr.entry())})
	}
	recData, err := encode(nr)
	if err != nil {
		return nil, 0, err
	}
	infoData, err := encode(info)
	if err != nil {
		return nil, 0, err
	}
	cn := claimName{ID: rec.ID, N: n}
	ops = append(ops,
		&coord.SetOp{Path: e.q.l.job(rec.ID), Data: recData, Version: ver},
		&coord.CreateOp{Path: e.q.l.run(cn), Data: infoData},
		&coord.CreateOp{Path: e.q.l.claim(cn), Data: infoData, Mode: coord.Ephemeral})
	delete(e.cache, en)
	for attempt := 0; ; attempt++ {
		res, err := e.q.st.Multi(ctx, ops...)
		var newVer int32
		switch {
		case err == nil:
			newVer = res[len(ops)-3].Stat.Version
		case errors.Is(err, coord.ErrConnectionLost):
			won, v, rerr := e.resolveClaim(ctx, cn, info.Token)
			if rerr != nil {
				return nil, 0, rerr
			}
			if !won {
				return nil, outLost, nil
			}
			newVer = v
		case errors.Is(err, coord.ErrUnavailable), errors.Is(err, coord.ErrSessionExpired):
			if perr := pause(ctx, attempt); perr != nil {
				return nil, 0, perr
			}
			continue
		default:
			if idx, _ := multiErr(err); idx >= 0 {
				return nil, outLost, nil
			}
			return nil, 0, fmt.Errorf("jobqueue: claim share of job %d: %w", rec.ID, err)
		}
		l := e.newLeases(cn, &info, nr, newVer, []int{0})
		return l, outClaimed, nil
	}
}

// resolveClaim settles a claim whose outcome is unknown: it was applied
// iff the claim node exists with our token. It returns the record's
// version when it was.
//
// The claim may have been made: resolving it must not stop when the
// caller cancels ctx (a claim made and forgotten would keep its job until
// this node's session ends), so it runs under a context of its own,
// bounded by resolveTimeout. A won claim is returned even if ctx ended.
func (e *Executor) resolveClaim(ctx context.Context, cn claimName, tok string) (bool, int32, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	var ver int32
	won, err := e.q.resolve(ctx, e.q.l.claim(cn), func(ctx context.Context) (bool, error) {
		data, _, err := e.q.st.Get(ctx, e.q.l.claim(cn))
		if errors.Is(err, coord.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		info, err := decodeClaim(e.q.l.claim(cn), data)
		if err != nil || info.Token != tok {
			return false, err
		}
		_, stat, err := e.q.st.Get(ctx, e.q.l.job(cn.ID))
		if err != nil {
			return false, err
		}
		ver = stat.Version
		return true, nil
	})
	if err == nil {
		e.q.stats.unknown(won)
	}
	return won, ver, err
}

// claimTasks claims a chunk of an array job's tasks: Multi(Set(record,
// version) advancing the task cursor, Create(run), Create(claim,
// ephemeral)). The record version is the lock; a lost race re-reads the
// record and tries again after a short random pause (all consumers that
// -tc held back wake on the same completion). The queue entry stays until
// the job finishes, so that a finish missed by a dying executor is made up
// by the next consumer that looks at it.
func (e *Executor) claimTasks(ctx context.Context, rec *record, ver int32, c Capacity, slots int, w *waitSet) (*Lease, outcome, error) {
	for race := 0; ; race++ {
		if !rec.hasUnclaimed() {
			// Everything is claimed: finish the job if everything is done.
			if _, err := e.q.finishArray(ctx, rec.ID); err != nil {
				return nil, 0, err
			}
			return nil, outGone, nil
		}
		room := e.cfg.MaxChunk
		if tc := rec.Spec.TaskConcurrency; tc > 0 {
			_, st, err := e.q.exists(ctx, e.q.l.taskDir(rec.ID))
			if err != nil {
				return nil, 0, err
			}
			room = min(room, tc-(rec.Array.Claimed-int(st.NumChildren)))
		}
		if room <= 0 {
			// Held back by -tc: wait for a task to finish.
			ch, ok := e.tcW[rec.ID]
			if !ok {
				err := retry(ctx, func() (err error) {
					_, _, ch, err = e.q.st.ChildrenW(ctx, e.q.l.taskDir(rec.ID))
					return err
				})
				if errors.Is(err, coord.ErrNotFound) {
					return nil, outGone, nil
				}
				if err != nil {
					return nil, 0, err
				}
				e.tcW[rec.ID] = ch
			}
			w.chans = append(w.chans, ch)
			return nil, outBlocked, nil
		}
		fit := c.Slots / slots
		if m := rec.Spec.Resources.MemFree; m > 0 && c.Memory > 0 {
			fit = min(fit, int(c.Memory/m))
		}
		tasks, cursor, reruns := rec.nextTasks(min(room, max(fit, 1)))
		n := rec.Claims + 1
		info := e.newClaim(n, slots, tasks)
		nr := rec.clone()
		nr.Claims = n
		nr.Array.Cursor, nr.Array.Reruns = cursor, reruns
		nr.Array.Claimed += len(tasks)
		nr.Rescheduled = false
		recData, err := encode(nr)
		if err != nil {
			return nil, 0, err
		}
		infoData, err := encode(info)
		if err != nil {
			return nil, 0, err
		}
		cn := claimName{ID: rec.ID, N: n}
		res, err := e.q.st.Multi(ctx,
			&coord.SetOp{Path: e.q.l.job(rec.ID), Data: recData, Version: ver},
			&coord.CreateOp{Path: e.q.l.run(cn), Data: infoData},
			&coord.CreateOp{Path: e.q.l.claim(cn), Data: infoData, Mode: coord.Ephemeral})
		if err == nil {
			return e.newLeases(cn, &info, nr, res[0].Stat.Version, tasks), outClaimed, nil
		}
		switch {
		case errors.Is(err, coord.ErrConnectionLost):
			won, newVer, rerr := e.resolveClaim(ctx, cn, info.Token) // not cancellable
			if rerr != nil {
				return nil, 0, rerr
			}
			if won {
				return e.newLeases(cn, &info, nr, newVer, tasks), outClaimed, nil
			}
		case errors.Is(err, coord.ErrUnavailable), errors.Is(err, coord.ErrSessionExpired):
			if perr := pause(ctx, race); perr != nil {
				return nil, 0, perr
			}
		default:
			if idx, _ := multiErr(err); idx < 0 {
				return nil, 0, fmt.Errorf("jobqueue: claim tasks of job %d: %w", rec.ID, err)
			}
			if race >= 3 {
				return nil, outLost, nil
			}
			e.q.stats.lostRaces.Add(1)
			if perr := e.jitter(ctx, 2<<race); perr != nil {
				return nil, 0, perr
			}
		}
		// Lost the race (or unknown and not applied): read the record again.
		rec, ver, err = e.q.getRecord(ctx, rec.ID)
		if errors.Is(err, coord.ErrNotFound) {
			return nil, outGone, nil
		}
		if err != nil {
			return nil, 0, err
		}
		if !rec.Queued || rec.State != StateQueued {
			return nil, outGone, nil
		}
	}
}

// jitter pauses a random 0-2n ms: consumers that lost a race, or woke on
// the same event, spread out instead of colliding again.
func (e *Executor) jitter(ctx context.Context, n int) error {
	d := time.Duration(e.rng.Int64N(int64(2*n)*int64(time.Millisecond) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// popBuffer hands out an array task claimed earlier in a chunk.
func (e *Executor) popBuffer(c Capacity) *Lease {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, l := range e.buffer {
		if l.slots <= c.Slots {
			e.buffer = slices.Delete(e.buffer, i, i+1)
			return l
		}
	}
	return nil
}

// newLeases registers a successful claim and returns its first lease; the
// other tasks of an array chunk are buffered for the next Claim calls.
func (e *Executor) newLeases(cn claimName, info *claimInfo, rec *record, ver int32, tasks []int) *Lease {
	e.q.stats.claims.Add(1)
	ch := &chunk{e: e, name: cn, info: *info, rec: rec, ver: ver, array: rec.isArray(), slave: info.Share,
		lost: make(chan struct{}), started: make(chan struct{}), finished: make(chan struct{})}
	if !ch.slave {
		close(ch.started)
	} else {
		ch.deadline = time.Now().Add(e.cfg.GangTimeout)
	}
	for _, t := range tasks {
		ch.leases = append(ch.leases, &Lease{ch: ch, task: t, slots: info.Slots, deleted: make(chan struct{})})
	}
	ch.open = len(ch.leases)
	e.mu.Lock()
	e.chunks[cn] = ch
	e.buffer = append(e.buffer, ch.leases[1:]...)
	sig, signalled := e.pending[cn]
	delete(e.pending, cn)
	e.mu.Unlock()
	if ch.slave {
		select {
		case e.slaveKick <- struct{}{}:
		default:
		}
	}
	if signalled {
		for _, l := range ch.leases {
			if len(sig) == 0 || slices.Contains(sig, l.task) {
				l.markDeleted()
			}
		}
	}
	return ch.leases[0]
}
