package ovs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/cache"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"golang.org/x/sync/errgroup"

	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs/internal/vswitchd"
)

// Config configures a Dataplane.
type Config struct {
	// Site is this site's name; it is the value of the owner mark
	// (external_ids:musubi-owner) on everything the Dataplane creates.
	Site string
	// OVSDB is the database endpoint, for example
	// "unix:/var/run/openvswitch/db.sock".
	OVSDB string
	// Listener accepts the switch's OpenFlow connection. The Dataplane
	// closes it when Run returns. Open it where ovs-vswitchd can reach it
	// (in the site's network namespace).
	Listener net.Listener
	// ControllerTarget is the controller address written to OVSDB.
	// Default: "tcp:<listener address>" (or "unix:<path>").
	ControllerTarget string
	// Bridge is the integration bridge (default "br-int").
	Bridge string
	// BridgeMAC is the bridge's pinned MAC (other-config:hwaddr). Default: a
	// locally administered address derived from Site.
	BridgeMAC overlay.MAC
	// DatapathType is the bridge's datapath_type (default "netdev", the
	// userspace datapath).
	DatapathType string
	// BFDInterval is the tunnels' BFD min_tx and min_rx (default 100 ms).
	BFDInterval time.Duration
	// BFDMultiplier is BFD's detection multiplier: a link is declared dead
	// after this many intervals without a control packet (default 5, so
	// 500 ms with the default interval: 3 intervals gave false alarms on a
	// loaded 2-core host, where ovs-vswitchd can stall for 300 ms).
	BFDMultiplier int
	// OnLink, if set, receives every change of a tunnel's BFD status, in
	// order, from a goroutine of Run. It must not block for long.
	OnLink func(LinkEvent)
	// Logger receives the Dataplane's logs (default: discarded).
	Logger *slog.Logger
}

// LinkEvent is a change of a tunnel's liveness as BFD sees it.
type LinkEvent struct {
	// RemoteSite is the site at the other end; Port is the tunnel port.
	RemoteSite string
	Port       string
	// Up: BFD state up and forwarding. (BFD's forwarding_if_rx is not
	// used: in the lab it kept a cut tunnel "forwarding" for 2 s more.)
	Up  bool
	BFD overlay.BFDStatus
	// At is when the Dataplane learned of the change.
	At time.Time
}

// Dataplane is one site's Open vSwitch integration bridge. It implements
// overlay.Dataplane. Create it with New, then call Run.
type Dataplane struct {
	cfg    Config
	log    *slog.Logger
	target string

	dbChanged notifier // any cache change
	ofChanged notifier // OpenFlow connection became ready or went away

	applyMu sync.Mutex // serialises Apply and background reconciles
	kick    chan struct{}

	mu       sync.Mutex
	running  bool
	stopped  bool
	db       client.Client // nil until connected
	of       *ofConn       // nil until a switch completed the handshake
	desired  *overlay.Desired
	links    map[string]LinkEvent // last event per tunnel port
	linkQ    []LinkEvent
	linkKick chan struct{}
	lastPlan FlowPlan
	changes  atomic.Uint64
}

var _ overlay.Dataplane = (*Dataplane)(nil)

// New checks cfg and returns a Dataplane. It does no I/O.
func New(cfg Config) (*Dataplane, error) {
	if cfg.Site == "" {
		return nil, fmt.Errorf("%w: no site name", ErrConfig)
	}
	if cfg.OVSDB == "" {
		return nil, fmt.Errorf("%w: no OVSDB endpoint", ErrConfig)
	}
	if cfg.Listener == nil {
		return nil, fmt.Errorf("%w: no controller listener", ErrConfig)
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "br-int"
	}
	if !overlay.ValidPortName(cfg.Bridge) {
		return nil, fmt.Errorf("%w: bridge name %q", ErrConfig, cfg.Bridge)
	}
	if cfg.BridgeMAC.IsZero() {
		cfg.BridgeMAC = derivedMAC(cfg.Site + "/" + cfg.Bridge)
	}
	if cfg.BridgeMAC.IsMulticast() {
		return nil, fmt.Errorf("%w: bridge MAC %s is multicast", ErrConfig, cfg.BridgeMAC)
	}
	if cfg.DatapathType == "" {
		cfg.DatapathType = "netdev"
	}
	if cfg.BFDInterval <= 0 {
		cfg.BFDInterval = 100 * time.Millisecond
	}
	if cfg.BFDMultiplier <= 0 {
		cfg.BFDMultiplier = 5
	}
	if cfg.BFDMultiplier > 255 {
		return nil, fmt.Errorf("%w: BFD multiplier %d > 255", ErrConfig, cfg.BFDMultiplier)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	target := cfg.ControllerTarget
	if target == "" {
		switch a := cfg.Listener.Addr().(type) {
		case *net.TCPAddr:
			target = "tcp:" + a.String()
		case *net.UnixAddr:
			target = "unix:" + a.Name
		default:
			return nil, fmt.Errorf("%w: cannot derive a controller target from %s listener; set ControllerTarget", ErrConfig, a.Network())
		}
	}
	return &Dataplane{
		cfg:       cfg,
		log:       cfg.Logger.With("site", cfg.Site, "bridge", cfg.Bridge),
		target:    target,
		dbChanged: newNotifier(),
		ofChanged: newNotifier(),
		kick:      make(chan struct{}, 1),
		links:     map[string]LinkEvent{},
		linkKick:  make(chan struct{}, 1),
	}, nil
}

// derivedMAC is a stable locally administered unicast MAC for a name.
func derivedMAC(name string) overlay.MAC {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	s := h.Sum64()
	return overlay.MAC{0x02, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// ControllerTarget is the controller address the Dataplane writes to OVSDB.
func (d *Dataplane) ControllerTarget() string { return d.target }

// BridgeMAC is the integration bridge's pinned MAC.
func (d *Dataplane) BridgeMAC() overlay.MAC { return d.cfg.BridgeMAC }

// Run connects to OVSDB, keeps the bridge configured, serves the switch's
// OpenFlow connections and re-applies the last desired state whenever a
// switch (re)connects, until ctx ends. It returns nil after ctx ends, once
// every goroutine it started has returned; it can run only once.
func (d *Dataplane) Run(ctx context.Context) (err error) {
	d.mu.Lock()
	if d.running || d.stopped {
		d.mu.Unlock()
		return fmt.Errorf("ovs: Run called twice")
	}
	d.running = true
	d.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
		d.mu.Lock()
		d.stopped = true
		d.mu.Unlock()
		d.dbChanged.notify()
		d.ofChanged.notify()
	}()
	g, ctx := errgroup.WithContext(ctx)
	// A panic in any of them (libraries included) becomes Run's error.
	for _, fn := range []func(context.Context) error{d.runDB, d.acceptLoop, d.reconcileLoop, d.linkLoop} {
		g.Go(func() error { return recovered(func() error { return fn(ctx) }) })
	}
	g.Go(func() error {
		<-ctx.Done()
		return d.cfg.Listener.Close()
	})
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// runDB connects the OVSDB client (retrying until ctx ends), monitors the
// tables, configures the bridge, and closes the client when ctx ends.
func (d *Dataplane) runDB(ctx context.Context) error {
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return fmt.Errorf("ovs: database model: %w", err)
	}
	lg := logr.FromSlogHandler(d.log.With("component", "libovsdb").Handler())
	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(d.cfg.OVSDB),
		client.WithReconnect(5*time.Second, backoff.NewConstantBackOff(300*time.Millisecond)), client.WithLogger(&lg))
	if err != nil {
		return fmt.Errorf("%w: OVSDB client: %v", ErrConfig, err)
	}
	defer c.Close()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = c.Connect(cctx)
		cancel()
		if err == nil {
			break
		}
		d.log.Warn("OVSDB connect failed; retrying", "endpoint", d.cfg.OVSDB, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	c.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(table string, m model.Model) { d.onDBEvent(table, nil, m) },
		UpdateFunc: func(table string, old, m model.Model) { d.onDBEvent(table, old, m) },
		DeleteFunc: func(table string, m model.Model) { d.onDBEvent(table, m, nil) },
	})
	if _, err := c.Monitor(ctx, c.NewMonitor(
		client.WithTable(&vswitchd.OpenvSwitch{}), client.WithTable(&vswitchd.Bridge{}), client.WithTable(&vswitchd.Port{}),
		client.WithTable(&vswitchd.Interface{}), client.WithTable(&vswitchd.Controller{}))); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w: OVSDB monitor: %v", overlay.ErrUnavailable, err)
	}
	d.mu.Lock()
	d.db = c
	d.mu.Unlock()
	d.dbChanged.notify()
	d.log.Info("OVSDB connected", "endpoint", d.cfg.OVSDB)
	// Configure the bridge now, so that the switch connects to the
	// controller even before the first Apply. Retry until it works.
	for {
		d.applyMu.Lock()
		err := recovered(func() error {
			st, err := d.readState(ctx, c)
			if err != nil {
				return err
			}
			return d.ensureBridge(ctx, c, st)
		})
		d.applyMu.Unlock()
		if err == nil {
			break
		}
		d.log.Warn("configuring the bridge failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	<-ctx.Done()
	d.mu.Lock()
	d.db = nil
	d.mu.Unlock()
	return nil
}

// onDBEvent runs in libovsdb's cache goroutine: it must not block.
func (d *Dataplane) onDBEvent(table string, old, cur model.Model) {
	d.dbChanged.notify()
	if table != vswitchd.InterfaceTable {
		return
	}
	ifc, ok := cur.(*vswitchd.Interface)
	if !ok || !owned(ifc.ExternalIDs) {
		return
	}
	// A port whose device appeared (or vanished) after Apply: its flows
	// could not be installed (or point nowhere); reconcile again.
	if prev, ok := old.(*vswitchd.Interface); ok && !eqPtr(prev.Ofport, ifc.Ofport) {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	if ifc.ExternalIDs[KeyKind] != kindTunnel {
		return
	}
	st := bfdStatus(ifc)
	ev := LinkEvent{RemoteSite: ifc.ExternalIDs[keyRemoteSite], Port: ifc.Name, BFD: st,
		Up: st.State == overlay.BFDUp && st.Forwarding, At: time.Now()}
	d.mu.Lock()
	defer d.mu.Unlock()
	if last, ok := d.links[ifc.Name]; ok && last.BFD == ev.BFD && last.RemoteSite == ev.RemoteSite {
		return
	}
	d.links[ifc.Name] = ev
	d.linkQ = append(d.linkQ, ev)
	select {
	case d.linkKick <- struct{}{}:
	default:
	}
}

// linkLoop delivers link events to Config.OnLink in order.
func (d *Dataplane) linkLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.linkKick:
		}
		d.mu.Lock()
		q := d.linkQ
		d.linkQ = nil
		d.mu.Unlock()
		for _, ev := range q {
			d.log.Info("tunnel BFD", "remote_site", ev.RemoteSite, "port", ev.Port, "state", ev.BFD.State, "forwarding", ev.BFD.Forwarding, "diag", ev.BFD.Diagnostic)
			if d.cfg.OnLink != nil {
				if err := recovered(func() error { d.cfg.OnLink(ev); return nil }); err != nil {
					d.log.Error("OnLink panicked", "err", err)
				}
			}
		}
	}
}

// Links returns the last known BFD state of every tunnel, by port name.
func (d *Dataplane) Links() map[string]LinkEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]LinkEvent, len(d.links))
	for k, v := range d.links {
		m[k] = v
	}
	return m
}

// acceptLoop serves switch connections until ctx ends. The newest
// connection that completes the handshake is the one flows go to.
func (d *Dataplane) acceptLoop(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := d.cfg.Listener.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			d.log.Warn("accept failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.serve(ctx, nc)
		}()
	}
}

func (d *Dataplane) serve(ctx context.Context, nc net.Conn) {
	c := newOFConn(nc, d.log.With("switch", nc.RemoteAddr().String()))
	defer c.close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.handshake(hctx)
	cancel()
	if err != nil {
		d.log.Warn("OpenFlow handshake failed", "err", err)
		return
	}
	d.mu.Lock()
	old := d.of
	d.of = c
	d.mu.Unlock()
	if old != nil {
		old.close()
	}
	d.log.Info("switch connected", "dpid", fmt.Sprintf("%016x", c.dpid), "ports", len(c.portList()))
	d.ofChanged.notify()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	select {
	case <-c.done:
		d.log.Warn("switch disconnected", "err", c.deadErr())
	case <-ctx.Done():
	}
	d.mu.Lock()
	if d.of == c {
		d.of = nil
	}
	d.mu.Unlock()
	d.ofChanged.notify()
}

// reconcileLoop re-applies the last desired state when a switch connects or
// an owned port's OpenFlow number changes, and retries every second while
// the switch is unavailable.
func (d *Dataplane) reconcileLoop(ctx context.Context) error {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.kick:
		case <-retry:
		}
		retry = nil
		// Read the desired state under applyMu: an Apply that is running
		// now may replace it, and its state must win.
		d.applyMu.Lock()
		d.mu.Lock()
		want := d.desired
		d.mu.Unlock()
		var err error
		if want != nil {
			err = recovered(func() error { return d.apply(ctx, *want) })
		}
		d.applyMu.Unlock()
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, overlay.ErrUnavailable):
			d.log.Warn("background reconcile failed; retrying", "err", err)
			retry = time.After(time.Second)
		default:
			// For example a port whose device does not exist yet: its
			// ofport changing kicks the next reconcile.
			d.log.Warn("background reconcile incomplete", "err", err)
		}
	}
}

// waitDB returns the OVSDB client once connected.
func (d *Dataplane) waitDB(ctx context.Context) (client.Client, error) {
	for {
		ch := d.dbChanged.wait()
		d.mu.Lock()
		c, stopped := d.db, d.stopped
		d.mu.Unlock()
		if stopped {
			return nil, fmt.Errorf("%w: %w", overlay.ErrUnavailable, ErrStopped)
		}
		if c != nil {
			return c, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: OVSDB not connected: %w", overlay.ErrUnavailable, ctx.Err())
		}
	}
}

// waitOF returns the switch's OpenFlow connection once one is ready.
func (d *Dataplane) waitOF(ctx context.Context) (*ofConn, error) {
	for {
		ch := d.ofChanged.wait()
		d.mu.Lock()
		c, stopped := d.of, d.stopped
		d.mu.Unlock()
		if stopped {
			return nil, fmt.Errorf("%w: %w", overlay.ErrUnavailable, ErrStopped)
		}
		if c != nil && c.alive() {
			return c, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: switch not connected to the controller: %w", overlay.ErrUnavailable, ctx.Err())
		}
	}
}

// Ready waits until the Dataplane is connected to OVSDB and the switch has
// connected to the controller (so the bridge exists).
func (d *Dataplane) Ready(ctx context.Context) error {
	if _, err := d.waitDB(ctx); err != nil {
		return err
	}
	_, err := d.waitOF(ctx)
	return err
}

// Apply makes the bridge match want (see overlay.Dataplane). It waits for
// OVSDB and the switch's OpenFlow connection until ctx ends.
func (d *Dataplane) Apply(ctx context.Context, want overlay.Desired) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	if err := want.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", overlay.ErrUnavailable, err)
	}
	if want.Site != d.cfg.Site {
		return fmt.Errorf("%w: desired state of site %q applied to site %q's switch", overlay.ErrInvalid, want.Site, d.cfg.Site)
	}
	if ok, err := d.reservedNames(want); !ok {
		return err
	}
	want = want.Clone()
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.mu.Lock()
	d.desired = &want
	d.mu.Unlock()
	return d.apply(ctx, want)
}

// reservedNames rejects a port named like the bridge itself.
func (d *Dataplane) reservedNames(want overlay.Desired) (bool, error) {
	if want.PortNames()[d.cfg.Bridge] {
		return false, fmt.Errorf("%w: port name %q is the bridge's own", overlay.ErrInvalid, d.cfg.Bridge)
	}
	return true, nil
}

func (d *Dataplane) apply(ctx context.Context, want overlay.Desired) error {
	c, err := d.waitDB(ctx)
	if err != nil {
		return err
	}
	st, err := d.readState(ctx, c)
	if err != nil {
		return err
	}
	if err := d.ensureBridge(ctx, c, st); err != nil {
		return err
	}
	if st, err = d.readState(ctx, c); err != nil {
		return err
	}
	if err := d.syncPorts(ctx, c, st, want); err != nil {
		return err
	}
	if st, err = d.readState(ctx, c); err != nil {
		return err
	}
	var portErrs []error
	for name := range want.PortNames() {
		ifc := st.ifaces[name]
		switch {
		case ifc == nil:
			portErrs = append(portErrs, fmt.Errorf("%w: %s: no interface row", ErrPort, name))
		case ifc.Ofport == nil || *ifc.Ofport <= 0:
			msg := "no OpenFlow port number"
			if ifc.Error != nil {
				msg = *ifc.Error
			}
			portErrs = append(portErrs, fmt.Errorf("%w: %s: %s", ErrPort, name, msg))
		}
	}
	oc, err := d.waitOF(ctx)
	if err != nil {
		return err
	}
	if err := d.syncFlows(ctx, oc, st.resolver(d.cfg.Bridge), want); err != nil {
		return errors.Join(append(portErrs, err)...)
	}
	return errors.Join(portErrs...)
}

// Observe reads the bridge back: musubi's tunnels and ports from OVSDB,
// every flow from the switch.
func (d *Dataplane) Observe(ctx context.Context) (o overlay.Observed, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	c, err := d.waitDB(ctx)
	if err != nil {
		return o, err
	}
	st, err := d.readState(ctx, c)
	if err != nil {
		return o, err
	}
	o.Tunnels, o.Ports = observePorts(st)
	if st.bridge == nil {
		return o, nil
	}
	oc, err := d.waitOF(ctx)
	if err != nil {
		return o, err
	}
	raws, err := oc.dumpFlows(ctx)
	if err != nil {
		return o, fmt.Errorf("%w: dump flows: %w", overlay.ErrUnavailable, err)
	}
	res := st.resolver(d.cfg.Bridge)
	for _, r := range raws {
		if f, ok := r.decode(res); ok {
			o.Flows = append(o.Flows, f)
		} else {
			o.Opaque = append(o.Opaque, r.text(res))
		}
	}
	overlay.SortFlows(o.Flows)
	return o, nil
}

// Teardown removes everything musubi owns from the switch: its flows, its
// ports and tunnels, and the bridge if musubi created it. The last desired
// state is forgotten, so a reconnecting switch is not reconfigured.
func (d *Dataplane) Teardown(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.mu.Lock()
	d.desired = nil
	d.mu.Unlock()
	c, err := d.waitDB(ctx)
	if err != nil {
		return err
	}
	st, err := d.readState(ctx, c)
	if err != nil {
		return err
	}
	if st.bridge == nil {
		return nil
	}
	if !owned(st.bridge.ExternalIDs) {
		// Keep the bridge; remove only musubi's ports.
		return d.syncPorts(ctx, c, st, overlay.Desired{Site: d.cfg.Site})
	}
	t := &txn{c: c}
	root := st.root
	if err := t.add(c.Where(root).Mutate(root, model.Mutation{Field: &root.Bridges, Mutator: "delete", Value: []string{st.bridge.UUID}})); err != nil {
		return err
	}
	d.log.Info("removing bridge", "bridge", d.cfg.Bridge)
	return d.commit(ctx, t, st)
}

// notifier is a broadcast "something changed" signal.
type notifier struct {
	mu *sync.Mutex
	ch *chan struct{}
}

func newNotifier() notifier {
	ch := make(chan struct{})
	return notifier{mu: &sync.Mutex{}, ch: &ch}
}

// wait returns a channel closed by the next notify.
func (n notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return *n.ch
}

func (n notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(*n.ch)
	ch := make(chan struct{})
	*n.ch = ch
}
