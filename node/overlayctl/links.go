package overlayctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// LinkObservation is a change of a tunnel's BFD state as this site's
// switch reports it (from ovs.Config.OnLink, say).
type LinkObservation struct {
	// Remote is the site at the other end.
	Remote string
	// Up: this end's BFD session is up and forwarding.
	Up bool
	// RemoteUp: the state the other end reports in its BFD packets is up.
	RemoteUp bool
	// At is when the switch reported it (default: when ObserveLink is
	// called).
	At time.Time
}

// rttSamples is how many RTT samples a link's cost is the median of.
const rttSamples = 5

// linkView is this site's own knowledge of one link.
type linkView struct {
	known   bool      // a BFD observation arrived
	up      bool      // BFD up at both ends
	upSince time.Time // when up became true
	rtts    []time.Duration
}

// ObserveLink records a BFD change of the tunnel to another site. It never
// blocks: the link writer and the state loop pick it up.
func (c *Controller) ObserveLink(o LinkObservation) {
	if o.Remote == "" || o.Remote == c.cfg.Site {
		return
	}
	if o.At.IsZero() {
		o.At = time.Now()
	}
	up := o.Up && o.RemoteUp
	c.lmu.Lock()
	v := c.links[o.Remote]
	if v == nil {
		v = &linkView{}
		c.links[o.Remote] = v
	}
	changed := !v.known || v.up != up
	if changed && up {
		v.upSince = o.At
	}
	if changed && !up {
		v.rtts = nil
	}
	v.known, v.up = true, up
	c.lmu.Unlock()
	if changed {
		c.log.Info("link state", "remote", o.Remote, "up", up, "bfd_up", o.Up, "remote_up", o.RemoteUp)
		kick(c.linkKick)
		kick(c.stateKick)
	}
}

// localDown returns the remote sites whose link this site's BFD sees down.
func (c *Controller) localDown() []string {
	c.lmu.Lock()
	defer c.lmu.Unlock()
	var out []string
	for r, v := range c.links {
		if v.known && !v.up {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// setGateways records the remote sites' underlay addresses for the prober.
func (c *Controller) setGateways(gw map[string]netip.Addr) {
	c.lmu.Lock()
	c.gateways = gw
	c.lmu.Unlock()
}

// linkRecord is what links/<a>~<b> says.
type linkRecord struct {
	exists bool
	up     bool
	cost   uint32
}

// cost is the link's cost from its RTT samples.
func (c *Controller) cost(v *linkView) uint32 {
	if len(v.rtts) == 0 {
		return c.cfg.CostFloor
	}
	s := slices.Clone(v.rtts)
	slices.Sort(s)
	us := uint64(s[len(s)/2] / time.Microsecond)
	q := uint64(c.cfg.CostQuantum)
	us = (us + q - 1) / q * q
	return uint32(max(min(us, uint64(^uint32(0))), uint64(c.cfg.CostFloor)))
}

// linkWriter writes links/<site>~<remote> for every remote site whose
// name sorts after this site's: down as soon as BFD says so, up once BFD
// has been up at both ends for HoldDown, and the cost whenever its rounded
// value changes.
func (c *Controller) linkWriter(ctx context.Context) error {
	written := map[string]linkRecord{} // what the record says, once read
	var timer *time.Timer
	var timerC <-chan time.Time
	wait := time.Duration(0)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.linkKick:
		case <-timerC:
		}
		now := time.Now()
		type job struct {
			remote string
			up     bool // BFD up at both ends
			held   bool // up, but for less than HoldDown
			cost   uint32
		}
		var jobs []job
		var next time.Time
		c.lmu.Lock()
		for r, v := range c.links {
			if !v.known || r < c.cfg.Site {
				continue
			}
			j := job{remote: r, up: v.up, cost: c.cost(v)}
			if v.up && now.Sub(v.upSince) < c.cfg.HoldDown {
				j.held = true
				if at := v.upSince.Add(c.cfg.HoldDown); next.IsZero() || at.Before(next) {
					next = at
				}
			}
			jobs = append(jobs, j)
		}
		c.lmu.Unlock()
		slices.SortFunc(jobs, func(a, b job) int { return cmpString(a.remote, b.remote) })
		failed := false
		for _, j := range jobs {
			cur, ok := written[j.remote]
			if !ok {
				rec, exists, err := c.readLink(ctx, j.remote)
				if err != nil {
					c.count(func(s *Stats) { s.ReadErrors++ })
					failed = true
					continue
				}
				cur = linkRecord{exists: exists, up: rec.Up, cost: rec.Cost}
				written[j.remote] = cur
			}
			var want linkRecord
			switch {
			case !j.up:
				// Down at once; a down record keeps the last cost.
				if cur.exists && !cur.up {
					continue
				}
				want = linkRecord{exists: true, up: false, cost: cur.cost}
				if !cur.exists || want.cost == 0 {
					want.cost = c.cfg.CostFloor
				}
			case j.held:
				// Up again, but not for long enough. An up record stays as
				// it is (a restarted peer sees its links come up again).
				continue
			default:
				want = linkRecord{exists: true, up: true, cost: j.cost}
				if cur == want {
					continue
				}
			}
			if err := c.writeLink(ctx, j.remote, want.up, want.cost); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				c.count(func(s *Stats) { s.LinkErrors++ })
				c.log.Warn("cannot write link record", "remote", j.remote, "err", err)
				delete(written, j.remote) // the outcome may be unknown: read it back
				failed = true
				continue
			}
			written[j.remote] = want
		}
		if failed {
			wait = backoff(wait, c.cfg.RetryMin, c.cfg.RetryMax)
			if at := now.Add(wait); next.IsZero() || at.Before(next) {
				next = at
			}
		} else {
			wait = 0
		}
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		if !next.IsZero() {
			timer = time.NewTimer(max(time.Until(next), 0) + time.Millisecond)
			timerC = timer.C
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *Controller) readLink(ctx context.Context, remote string) (topology.Link, bool, error) {
	data, _, err := c.cfg.Store.Get(ctx, coord.LinkPath(c.cfg.Site, remote))
	if errors.Is(err, coord.ErrNotFound) {
		return topology.Link{}, false, nil
	}
	if err != nil {
		return topology.Link{}, false, err
	}
	var l topology.Link
	if json.Unmarshal(data, &l) != nil {
		return topology.Link{}, false, nil // rewrite a corrupt record
	}
	return l, true, nil
}

func (c *Controller) writeLink(ctx context.Context, remote string, up bool, cost uint32) error {
	a, b := c.cfg.Site, remote
	if b < a {
		a, b = b, a
	}
	data, err := json.Marshal(topology.Link{A: a, B: b, Cost: cost, Up: up, Updated: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := putData(ctx, c.cfg.Store, coord.LinkPath(a, b), data); err != nil {
		if errors.Is(err, coord.ErrNotFound) {
			if err := coord.EnsurePath(ctx, c.cfg.Store, coord.LinksDir); err != nil {
				return err
			}
			return putData(ctx, c.cfg.Store, coord.LinkPath(a, b), data)
		}
		return fmt.Errorf("overlayctl: write %s: %w", coord.LinkPath(a, b), err)
	}
	c.count(func(s *Stats) { s.LinkWrites++ })
	c.log.Info("link record written", "link", coord.LinkName(a, b), "up", up, "cost_us", cost)
	return nil
}

// probeLoop measures the RTT of every link BFD sees up, every
// ProbeInterval, and wakes the link writer when a link's cost changes.
func (c *Controller) probeLoop(ctx context.Context) error {
	t := time.NewTicker(c.cfg.ProbeInterval)
	defer t.Stop()
	for {
		c.lmu.Lock()
		type target struct {
			remote string
			addr   netip.Addr
		}
		var ts []target
		for r, v := range c.links {
			if gw, ok := c.gateways[r]; ok && v.known && v.up {
				ts = append(ts, target{r, gw})
			}
		}
		c.lmu.Unlock()
		for _, tg := range ts {
			pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
			rtt, err := c.cfg.Prober.Probe(pctx, tg.addr)
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				c.count(func(s *Stats) { s.ProbeErrors++ })
				continue
			}
			c.count(func(s *Stats) { s.Probes++ })
			c.lmu.Lock()
			v := c.links[tg.remote]
			changed := false
			if v != nil && v.up {
				before := c.cost(v)
				v.rtts = append(v.rtts, rtt)
				if len(v.rtts) > rttSamples {
					v.rtts = v.rtts[len(v.rtts)-rttSamples:]
				}
				changed = c.cost(v) != before
			}
			c.lmu.Unlock()
			if changed {
				kick(c.linkKick)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
