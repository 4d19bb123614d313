package overlayctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay"
	"golang.org/x/sync/errgroup"
)

// Controller is one site's overlay subsystem. Create it with New, feed it
// the tunnels' BFD changes with ObserveLink, and run it with Run.
type Controller struct {
	cfg Config
	log *slog.Logger

	running atomic.Bool
	repair  atomic.Bool // local repair enabled

	// Local link view, fed by ObserveLink and the prober.
	lmu      sync.Mutex
	links    map[string]*linkView // by remote site
	gateways map[string]netip.Addr
	linkKick chan struct{} // wakes the link writer

	// Kicks of the state loop: local link view or session changed.
	stateKick chan struct{}
	smu       sync.Mutex
	sessQ     []coord.SessionEvent

	// The applier's mailbox: the newest desired state not yet applied.
	amu       sync.Mutex
	pending   *offered
	offers    uint64
	applyKick chan struct{}

	stmu  sync.Mutex
	stats Stats
	last  *overlay.Desired // last desired state applied successfully
}

// Stats is what the subsystem did, for metrics and tests. Counters only
// grow over the Controller's life (across Runs).
type Stats struct {
	Site       string
	Generation uint32 // the generation of the current (or last) Run
	// Session is the last session state seen (0 before any event).
	Session coord.SessionState
	// Loaded: the records were read completely at least once in this Run.
	Loaded bool

	WatchEvents   uint64 // watch events received
	Reads         uint64 // record reads (each re-arming a watch)
	ReadErrors    uint64 // failed reads (retried)
	Registrations uint64 // successful registrations (start and after expiry)
	Recomputes    uint64 // desired states computed
	LocalRepairs  uint64 // of which with a link taken down by local BFD
	RepairsVetoed uint64 // local repairs not used because they could loop
	Applies       uint64 // successful Applies
	ApplyErrors   uint64 // failed Applies (retried)
	LinkWrites    uint64 // links/ records written
	LinkErrors    uint64 // failed links/ writes (retried)
	Probes        uint64 // RTT probes answered
	ProbeErrors   uint64 // RTT probes unanswered

	// Graph is the site graph of the last computation (whether or not its
	// desired state differed from the one before).
	Graph string
	// InSync: the newest desired state computed has been applied.
	InSync bool
	// LastApply is when the last successful Apply finished, and how long
	// it took; AppliedGraph the site graph it was computed from.
	LastApply         time.Time
	LastApplyDuration time.Duration
	AppliedGraph      string
	// Problems are the records left out of the last computation.
	Problems []string
}

// New checks cfg and returns a Controller. It does no I/O.
func New(cfg Config) (*Controller, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:       cfg,
		log:       cfg.Logger.With("subsystem", "overlay", "site", cfg.Site),
		links:     map[string]*linkView{},
		gateways:  map[string]netip.Addr{},
		linkKick:  make(chan struct{}, 1),
		stateKick: make(chan struct{}, 1),
		applyKick: make(chan struct{}, 1),
	}
	c.repair.Store(true)
	c.stats.Site = cfg.Site
	return c, nil
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// SetLocalRepair turns local repair (taking a link down in this site's
// graph as soon as its own BFD sees it down, before links/ says so) on or
// off. It is on by default; off, every reroute waits for the links/
// record, as a measurement of the path through ZooKeeper.
func (c *Controller) SetLocalRepair(on bool) {
	c.repair.Store(on)
	kick(c.stateKick)
}

// Stats returns a copy of the counters.
func (c *Controller) Stats() Stats {
	c.stmu.Lock()
	defer c.stmu.Unlock()
	s := c.stats
	s.Problems = append([]string(nil), s.Problems...)
	return s
}

// Applied returns the last desired state applied successfully.
func (c *Controller) Applied() (overlay.Desired, bool) {
	c.stmu.Lock()
	defer c.stmu.Unlock()
	if c.last == nil {
		return overlay.Desired{}, false
	}
	return c.last.Clone(), true
}

func (c *Controller) count(f func(s *Stats)) {
	c.stmu.Lock()
	f(&c.stats)
	c.stmu.Unlock()
}

// Run runs the subsystem until ctx ends, then returns nil once every
// goroutine it started has returned. The switch keeps its flows: a later
// Run (of this or a new Controller) takes over from them. It returns an
// error early only when the Store is closed.
func (c *Controller) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	cancelSess := c.cfg.Store.OnSession(func(ev coord.SessionEvent) {
		c.smu.Lock()
		c.sessQ = append(c.sessQ, ev)
		c.smu.Unlock()
		kick(c.stateKick)
	})
	defer cancelSess()
	if c.cfg.Store.SessionID() != 0 {
		// Connected before Run subscribed: no event will say so.
		c.count(func(s *Stats) {
			if s.Session == 0 || s.Session == coord.StateClosed {
				s.Session = coord.StateConnected
			}
		})
	}

	gen, err := c.generation(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	c.count(func(s *Stats) { s.Generation, s.Loaded = gen, false })
	c.log.Info("overlay subsystem starting", "generation", gen)

	g, gctx := errgroup.WithContext(ctx)
	st := newStateLoop(c, gen)
	g.Go(func() error { return st.run(gctx) })
	g.Go(func() error { return c.applyLoop(gctx) })
	g.Go(func() error { return c.linkWriter(gctx) })
	if c.cfg.Prober != nil {
		g.Go(func() error { return c.probeLoop(gctx) })
	}
	err = g.Wait()
	c.log.Info("overlay subsystem stopped", "err", err)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// generation is Config.Generation, or one above the newest musubi
// generation on the switch.
func (c *Controller) generation(ctx context.Context) (uint32, error) {
	if c.cfg.Generation != 0 {
		return c.cfg.Generation, nil
	}
	wait := time.Duration(0)
	for {
		o, err := c.cfg.Dataplane.Observe(ctx)
		if err == nil {
			var top uint32
			for _, f := range o.Flows {
				if g := f.Cookie.Generation(); f.Cookie.Owned() && g > top {
					top = g
				}
			}
			if top == ^uint32(0) {
				top = 0 // wrap around; 0 is not a valid generation
			}
			return top + 1, nil
		}
		wait = backoff(wait, c.cfg.RetryMin, c.cfg.RetryMax)
		c.log.Warn("cannot read the switch's flows; retrying", "err", err, "in", wait)
		if err := sleep(ctx, wait); err != nil {
			return 0, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// offered is a desired state and the graph it was computed from.
type offered struct {
	d     overlay.Desired
	graph string
	seq   uint64
}

// offer hands a desired state to the applier (the newest wins).
func (c *Controller) offer(d overlay.Desired, graph string) {
	c.amu.Lock()
	c.offers++
	c.pending = &offered{d, graph, c.offers}
	c.count(func(s *Stats) { s.InSync = false }) // under amu: see applyLoop
	c.amu.Unlock()
	kick(c.applyKick)
}

func (c *Controller) take() *offered {
	c.amu.Lock()
	defer c.amu.Unlock()
	o := c.pending
	c.pending = nil
	return o
}

// applyLoop applies what the state loop offers, retrying failures with
// backoff until a newer state replaces the failed one.
func (c *Controller) applyLoop(ctx context.Context) error {
	var retry <-chan time.Time
	var failed *offered
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.applyKick:
		case <-retry:
		}
		retry = nil
		d := c.take()
		if d == nil {
			d, failed = failed, nil
		}
		if d == nil {
			continue
		}
		t0 := time.Now()
		err := c.cfg.Dataplane.Apply(ctx, d.d)
		dur := time.Since(t0)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			c.count(func(s *Stats) { s.ApplyErrors++ })
			if errors.Is(err, overlay.ErrInvalid) {
				// A bug, not a transient failure: retrying cannot help.
				c.log.Error("desired state rejected", "err", err)
				continue
			}
			wait = backoff(wait, c.cfg.RetryMin, c.cfg.RetryMax)
			c.log.Warn("apply failed; retrying", "err", err, "in", wait)
			failed = d
			retry = time.After(wait)
			continue
		}
		wait = 0
		c.stmu.Lock()
		c.stats.Applies++
		c.stats.LastApply, c.stats.LastApplyDuration = time.Now(), dur
		c.stats.AppliedGraph = d.graph
		c.last = &d.d
		c.stmu.Unlock()
		c.amu.Lock()
		if c.offers == d.seq {
			c.count(func(s *Stats) { s.InSync = true })
		}
		c.amu.Unlock()
		c.log.Info("applied", "generation", d.d.Generation, "tunnels", len(d.d.Tunnels), "ports", len(d.d.Ports), "flows", len(d.d.Flows), "took", dur)
	}
}

// register runs Config.Register or the built-in registration.
func (c *Controller) register(ctx context.Context) error {
	if c.cfg.Register != nil {
		return c.cfg.Register(ctx, c.cfg.Store)
	}
	return registerSite(ctx, c.cfg.Store, c.cfg.Site, c.cfg.Gateway)
}

// registerSite merges {name, gateway} into sites/<site> and creates the
// ephemeral live/<site> for the store's session, replacing one left by an
// earlier session.
func registerSite(ctx context.Context, st coord.Store, site string, gw netip.Addr) error {
	sp := coord.SitePath(site)
	for attempt := 0; ; attempt++ {
		data, stat, err := st.Get(ctx, sp)
		switch {
		case errors.Is(err, coord.ErrNotFound):
			rec := map[string]any{"name": site}
			if gw.IsValid() {
				rec["gateway"] = gw.String()
			}
			b, _ := json.Marshal(rec) // plain strings never fail
			if err := coord.EnsurePath(ctx, st, coord.SitesDir); err != nil {
				return err
			}
			_, err = st.Create(ctx, sp, b, coord.Persistent, nil)
			if errors.Is(err, coord.ErrExists) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("overlayctl: register %s: %w", site, err)
			}
		case err != nil:
			return fmt.Errorf("overlayctl: register %s: %w", site, err)
		default:
			rec := map[string]json.RawMessage{}
			if json.Unmarshal(data, &rec) != nil {
				rec = map[string]json.RawMessage{}
			}
			want, _ := json.Marshal(site)
			wantGW, _ := json.Marshal(gw.String())
			if string(rec["name"]) == string(want) && (!gw.IsValid() || string(rec["gateway"]) == string(wantGW)) {
				break
			}
			rec["name"] = want
			if gw.IsValid() {
				rec["gateway"] = wantGW
			}
			b, _ := json.Marshal(rec)
			_, err = st.Set(ctx, sp, b, stat.Version)
			if errors.Is(err, coord.ErrBadVersion) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("overlayctl: register %s: %w", site, err)
			}
		}
		break
	}
	lp := coord.LivePath(site)
	live, _ := json.Marshal(map[string]any{"site": site, "since": time.Now().UTC()})
	if err := coord.EnsurePath(ctx, st, coord.LiveDir); err != nil {
		return err
	}
	for attempt := 0; attempt < 3; attempt++ {
		_, err := st.Create(ctx, lp, live, coord.Ephemeral, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, coord.ErrExists) {
			return fmt.Errorf("overlayctl: mark %s live: %w", site, err)
		}
		ok, stat, err := st.Exists(ctx, lp)
		if err != nil {
			return fmt.Errorf("overlayctl: mark %s live: %w", site, err)
		}
		if ok && stat.EphemeralOwner == st.SessionID() {
			return nil
		}
		if ok {
			if err := st.Delete(ctx, lp, stat.Version); err != nil && !errors.Is(err, coord.ErrNotFound) && !errors.Is(err, coord.ErrBadVersion) {
				return fmt.Errorf("overlayctl: replace stale live/%s: %w", site, err)
			}
		}
	}
	return fmt.Errorf("overlayctl: mark %s live: %w", site, coord.ErrExists)
}
