package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/reserve"
	"github.com/musubi-fabric/musubi/node/vcacl"
)

// runCoordination opens the session, creates the schema, registers the
// site, and registers it again after every expiry, until ctx ends. The
// session itself is closed by Run once every subsystem has returned.
func (p *Peer) runCoordination(ctx context.Context) error {
	log := p.log.With("subsystem", "coordination")
	zc := zkstore.Config{
		Servers: p.cfg.ZooKeeper.Servers, LocalServer: p.cfg.ZooKeeper.Local, Root: p.cfg.Chroot(),
		SessionTimeout: p.cfg.ZooKeeper.SessionTimeout.D(), Credentials: p.creds, Logger: log,
	}
	var raw coord.Store
	if err := retry(ctx, log, "connecting to ZooKeeper", func() error {
		octx, cancel := context.WithTimeout(ctx, max(2*p.cfg.ZooKeeper.SessionTimeout.D(), 5*time.Second))
		defer cancel()
		var err error
		raw, err = p.opts.OpenStore(octx, zc)
		return err
	}); err != nil {
		return nil // ctx ended
	}
	if len(p.creds) > 0 {
		// Nodes created without an explicit ACL get the ACL of their path
		// (node/vcacl): federation records for peers only, hosts/ and
		// accounts/ readable by agents, each VC's subtree for its agents.
		keys, err := vcacl.NewKeys(p.creds[0])
		if err != nil {
			return fmt.Errorf("peer: federation credential: %w", err)
		}
		raw = vcacl.Wrap(raw, keys.Policy())
	}
	st := p.metrics.InstrumentStore(raw)
	// Session events, in order, to this loop; the callback never blocks.
	events := make(chan coord.SessionEvent, 64)
	overflow := make(chan struct{}, 1)
	cancelSess := st.OnSession(func(ev coord.SessionEvent) {
		p.metrics.SessionEvent(ev)
		p.connected.Store(ev.State == coord.StateConnected)
		select {
		case events <- ev:
		default:
			select {
			case overflow <- struct{}{}:
			default:
			}
		}
	})
	defer cancelSess()
	p.connected.Store(st.SessionID() != 0)
	if st.SessionID() != 0 {
		p.metrics.CoordConnected.Set(1)
	}
	p.store.Store(st)
	close(p.storeReady)
	log.Info("ZooKeeper session established", "session", fmt.Sprintf("%#x", st.SessionID()), "chroot", p.cfg.Chroot())

	setup := func() error {
		if err := node.InitSchema(ctx, st); err != nil {
			return err
		}
		return p.register(ctx, st)
	}
	if err := retry(ctx, log, "registering the site", setup); err != nil {
		return nil
	}
	p.setReady("coordination", true)
	expired := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-overflow:
			expired = true // events were lost: register again to be safe
			if p.connected.Load() {
				if err := retry(ctx, log, "registering the site again", func() error { return p.register(ctx, st) }); err != nil {
					return nil
				}
				expired = false
			}
		case ev := <-events:
			switch ev.State {
			case coord.StateExpired:
				expired = true
				log.Warn("ZooKeeper session expired; the site will register again on the new session")
			case coord.StateConnected:
				if expired {
					if err := retry(ctx, log, "registering the site again", func() error { return p.register(ctx, st) }); err != nil {
						return nil
					}
					expired = false
					log.Info("site registered again after session expiry", "session", fmt.Sprintf("%#x", ev.SessionID))
				}
			case coord.StateAuthFailed:
				log.Error("ZooKeeper refused the peer's credential: check zookeeper.credential_file")
			case coord.StateClosed:
				return nil
			}
		}
	}
}

// register merges this site's record into sites/<site> (keeping fields
// other tools wrote there) and creates the ephemeral live/<site> for the
// store's current session, replacing one left by a dead session.
func (p *Peer) register(ctx context.Context, st coord.Store) error {
	site := p.cfg.Site
	if err := coord.EnsurePath(ctx, st, coord.SitesDir); err != nil {
		return err
	}
	if err := coord.EnsurePath(ctx, st, coord.LiveDir); err != nil {
		return err
	}
	sp := coord.SitePath(site)
	for attempt := 0; ; attempt++ {
		data, stat, err := st.Get(ctx, sp)
		exists := true
		rec := map[string]json.RawMessage{}
		switch {
		case errors.Is(err, coord.ErrNotFound):
			exists = false
		case err != nil:
			return fmt.Errorf("peer: read %s: %w", sp, err)
		default:
			_ = json.Unmarshal(data, &rec) // a foreign record is replaced
		}
		set := func(k string, v any) {
			b, _ := json.Marshal(v)
			rec[k] = b
		}
		set("name", site)
		if p.cfg.ZooKeeper.Local != "" {
			set("zk_server", p.cfg.ZooKeeper.Local)
		}
		if p.cfg.Gateway != "" {
			set("gateway", p.cfg.Gateway)
		}
		if len(p.cfg.Hosts) > 0 {
			set("hosts", p.cfg.Hosts)
		}
		if len(p.cfg.Storage) > 0 {
			set("storage", p.cfg.Storage)
		}
		var joined time.Time
		if raw, ok := rec["joined"]; !ok || json.Unmarshal(raw, &joined) != nil || joined.IsZero() {
			set("joined", p.opts.Now().UTC())
		}
		body, err := json.Marshal(rec) // map keys sorted: a repeated registration writes nothing
		if err != nil {
			return err
		}
		switch {
		case exists && bytes.Equal(body, data):
		case exists:
			_, err = st.Set(ctx, sp, body, stat.Version)
		default:
			_, err = st.Create(ctx, sp, body, coord.Persistent, nil)
		}
		if err == nil {
			break
		}
		if (errors.Is(err, coord.ErrExists) || errors.Is(err, coord.ErrBadVersion) || errors.Is(err, coord.ErrNotFound)) && attempt < 5 {
			continue
		}
		return fmt.Errorf("peer: write %s: %w", sp, err)
	}
	live, _ := json.Marshal(node.LiveRecord{Peer: identity(), Since: p.opts.Now().UTC(), Version: p.opts.Version})
	lp := coord.LivePath(site)
	for attempt := 0; ; attempt++ {
		_, err := st.Create(ctx, lp, live, coord.Ephemeral, nil)
		if err == nil {
			p.metrics.PeerRegistrations.Inc()
			return nil
		}
		if !errors.Is(err, coord.ErrExists) || attempt >= 5 {
			return fmt.Errorf("peer: mark %s live: %w", site, err)
		}
		ok, stat, err := st.Exists(ctx, lp)
		if err != nil {
			return fmt.Errorf("peer: live %s: %w", site, err)
		}
		if ok && stat.EphemeralOwner == st.SessionID() {
			return nil // ours already (an overlay registration, or a retry)
		}
		if ok {
			// A dead session's record the ensemble has not expired yet.
			if err := st.Delete(ctx, lp, stat.Version); err != nil && !errors.Is(err, coord.ErrNotFound) && !errors.Is(err, coord.ErrBadVersion) {
				return fmt.Errorf("peer: replace stale live record of %s: %w", site, err)
			}
		}
	}
}

// runReservations registers this site's hosts in the timetable; the API
// serves reservations through node/reserve from then on.
func (p *Peer) runReservations(ctx context.Context) error {
	st, err := p.waitStore(ctx)
	if err != nil {
		return nil
	}
	log := p.log.With("subsystem", "reservations")
	rs, err := reserve.New(reserve.Config{Store: st, Logger: log, Owner: p.cfg.Site})
	if err != nil {
		return err
	}
	if err := retry(ctx, log, "registering the site's hosts in the timetable", func() error {
		for _, h := range p.cfg.Hosts {
			if err := rs.RegisterHost(ctx, admission.Host{Name: h.Name, Site: p.cfg.Site, MemoryMiB: h.MemoryMiB, VCPUs: h.VCPUs}); err != nil {
				return err
			}
		}
		for _, s := range p.cfg.Storage {
			if err := rs.RegisterStorage(ctx, admission.StorageHost{Name: s.Name, Site: p.cfg.Site, Bytes: s.Bytes}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil
	}
	log.Info("hosts registered in the timetable", "hosts", len(p.cfg.Hosts), "storage", len(p.cfg.Storage))
	p.setReady("reservations", true)
	<-ctx.Done()
	return nil
}

// runMetrics refreshes the federation gauges every metrics.interval.
func (p *Peer) runMetrics(ctx context.Context) error {
	st, err := p.waitStore(ctx)
	if err != nil {
		return nil
	}
	log := p.log.With("subsystem", "metrics")
	rs, err := reserve.New(reserve.Config{Store: st, Logger: log})
	if err != nil {
		return err
	}
	t := time.NewTicker(p.cfg.Metrics.Interval.D())
	defer t.Stop()
	for {
		if err := p.refreshGauges(ctx, st, rs); err != nil && ctx.Err() == nil {
			log.Debug("refreshing the federation gauges", "err", err)
		} else if err == nil {
			p.setReady("metrics", true)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Peer) refreshGauges(ctx context.Context, st coord.Store, rs *reserve.Reserver) error {
	fs, err := node.ReadStatus(ctx, st)
	if err != nil {
		return err
	}
	live := 0
	for _, s := range fs.Sites {
		if s.Live {
			live++
		}
	}
	p.metrics.FederationSites.WithLabelValues("live").Set(float64(live))
	p.metrics.FederationSites.WithLabelValues("down").Set(float64(len(fs.Sites) - live))
	recs, err := rs.List(ctx)
	if err != nil {
		return err
	}
	counts := map[string]int{"admitted": 0, "released": 0, "cancelled": 0, "ended": 0}
	now := p.opts.Now()
	for _, r := range recs {
		switch {
		case r.State == reserve.Cancelled:
			counts["cancelled"]++
		case r.Ended(now):
			counts["ended"]++
		default:
			counts[string(r.State)]++
		}
	}
	for k, v := range counts {
		p.metrics.Reservations.WithLabelValues(k).Set(float64(v))
	}
	return nil
}
