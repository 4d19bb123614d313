// Package peer is the site daemon, musubi peer: it wires the peer's
// subsystems from a validated config.Config and runs them, each as a
// Run(ctx) joined by one errgroup, until its context ends (SIGTERM), then
// shuts down cleanly: the API drains, every subsystem returns, and the
// ZooKeeper session closes (so live/<site> disappears at once).
//
// Subsystems:
//
//	coordination   the ZooKeeper session (zkstore, this site's server first),
//	               the schema, this site's sites/ record and ephemeral live/
//	               node, registered again after every session expiry
//	reservations   this site's compute and storage hosts in the timetable;
//	               the API admits, cancels and releases through node/reserve
//	overlay        node/overlayctl with an Open vSwitch dataplane, only when
//	               overlay.enabled (a peer runs without OVS otherwise)
//	metrics        federation gauges refreshed from ZooKeeper
//	api            the REST API (node/api) on TCP (HTTPS when configured)
//	               and the unix socket, with /healthz, /readyz, /metrics
//
// plus any Plugins (the provisioner, for example), started once the
// ZooKeeper session exists. /healthz answers as soon as the process
// serves; /readyz once the session is connected and every subsystem has
// said it is ready.
package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
	"github.com/musubi-fabric/musubi/node/metrics"
	"github.com/musubi-fabric/musubi/node/vcacl"
	"github.com/musubi-fabric/musubi/web"
	"golang.org/x/sync/errgroup"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrSetup: the peer could not be set up (secrets, certificates,
	// listeners); nothing was started.
	ErrSetup = errors.New("peer: setup failed")
)

// Env is what a Plugin gets once the ZooKeeper session exists.
type Env struct {
	Config  config.Config
	Store   coord.Store
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Ready marks the plugin ready (or not) for /readyz.
	Ready func(bool)
	// Register writes this site's sites/ record and live/ node for the
	// store's current session (idempotent).
	Register func(ctx context.Context, st coord.Store) error
	// AgentSecret returns the credentials file (vcacl.AgentSecret's form)
	// for the agents of a VC; nil when the peer has no federation
	// credential (no ACLs).
	AgentSecret func(vc string) ([]byte, error)
}

// Plugin is an optional subsystem started once the session exists. Run
// must return when ctx ends, having joined everything it started.
type Plugin struct {
	Name string
	Run  func(ctx context.Context, env Env) error
}

// Options are what the caller adds to the configuration.
type Options struct {
	// Logger receives the peer's logs (default: discard).
	Logger *slog.Logger
	// Version is the musubi version, recorded in live/ and metrics.
	Version string
	// Plugins are extra subsystems.
	Plugins []Plugin
	// OpenStore opens the coordination session (default: zkstore.Open).
	OpenStore func(ctx context.Context, cfg zkstore.Config) (coord.Store, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Peer is a configured, not yet running, site daemon. Create it with New,
// then call Run once (or Close to release it without running).
type Peer struct {
	cfg     config.Config
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	creds   []coord.Credential
	api     *api.Server
	ls      api.Listeners

	store      atomic.Pointer[metrics.Store]
	storeReady chan struct{}
	connected  atomic.Bool

	rmu   sync.Mutex
	ready map[string]bool // by subsystem

	once sync.Once
}

// New reads the peer's secrets (ZooKeeper credential, tokens, TLS key)
// and binds its API listeners: everything that can fail on the host's
// setup fails here, before anything runs. cfg must be valid (config.Load
// validates it).
func New(cfg config.Config, opts Options) (*Peer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenStore == nil {
		opts.OpenStore = func(ctx context.Context, c zkstore.Config) (coord.Store, error) { return zkstore.Open(ctx, c) }
	}
	p := &Peer{
		cfg: cfg, opts: opts, log: opts.Logger.With("site", cfg.Site),
		metrics:    metrics.New(opts.Version),
		storeReady: make(chan struct{}),
		ready:      map[string]bool{},
	}
	names := p.subsystems()
	for _, pl := range opts.Plugins {
		if pl.Name == "" || pl.Run == nil || p.countName(pl.Name) > 1 {
			return nil, fmt.Errorf("%w: plugin %q: needs a Run and a name no other subsystem has (%v)", ErrSetup, pl.Name, names)
		}
	}
	if f := cfg.ZooKeeper.CredentialFile; f != "" {
		cred, err := config.ReadCredential(f)
		if err != nil {
			return nil, fmt.Errorf("%w: zookeeper.credential_file: %w", ErrSetup, err)
		}
		p.creds = []coord.Credential{cred}
	}
	var auth *api.Authenticator
	if f := cfg.API.TokensFile; f != "" {
		var err error
		if auth, err = api.LoadTokens(f); err != nil {
			return nil, fmt.Errorf("%w: api.tokens_file: %w", ErrSetup, err)
		}
	}
	var tlsCfg *tls.Config
	if cfg.API.TLSCert != "" {
		var err error
		if tlsCfg, err = api.TLSConfig(cfg.API.TLSCert, cfg.API.TLSKey); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
	}
	srv, err := api.NewServer(api.Config{
		Site: cfg.Site, Version: opts.Version,
		Store: func() coord.Store {
			if s := p.store.Load(); s != nil {
				return s
			}
			return nil
		},
		Auth: auth, Metrics: p.metrics, Ready: p.Problems,
		MaxBodyBytes: cfg.API.MaxBodyBytes, Now: opts.Now, Logger: p.log.With("subsystem", "api"),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	p.api = srv
	srv.Mount("/", web.Handler()) // the web UI, served by every peer
	if cfg.API.Listen != "" {
		ln, err := net.Listen("tcp", cfg.API.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: api.listen: %w (is another peer running, or the port taken?)", ErrSetup, err)
		}
		p.ls.TCP, p.ls.TLS = ln, tlsCfg
	}
	if cfg.API.Socket != "" {
		ln, err := api.ListenUnix(cfg.API.Socket)
		if err != nil {
			p.closeListeners()
			return nil, fmt.Errorf("%w: api.socket: %w", ErrSetup, err)
		}
		p.ls.Unix = ln
	}
	for _, name := range p.subsystems() {
		p.ready[name] = false
		p.metrics.SubsystemReady.WithLabelValues(name).Set(0)
	}
	if auth.Len() == 0 {
		p.log.Warn("no API tokens configured: only root on the unix socket can use the API", "tokens_file", cfg.API.TokensFile)
	}
	return p, nil
}

func (p *Peer) countName(name string) int {
	n := 0
	for _, s := range p.subsystems() {
		if s == name {
			n++
		}
	}
	return n
}

// subsystems names every subsystem the peer runs.
func (p *Peer) subsystems() []string {
	names := []string{"coordination", "reservations", "metrics", "api"}
	if p.cfg.Overlay.Enabled {
		names = append(names, "overlay")
	}
	for _, pl := range p.opts.Plugins {
		names = append(names, pl.Name)
	}
	return names
}

// API is the peer's API server: mount more handlers (the web UI) on it
// before Run.
func (p *Peer) API() *api.Server { return p.api }

// Metrics are the peer's metrics.
func (p *Peer) Metrics() *metrics.Metrics { return p.metrics }

// APIAddr is the TCP address the API listens on (nil without one).
func (p *Peer) APIAddr() net.Addr {
	if p.ls.TCP == nil {
		return nil
	}
	return p.ls.TCP.Addr()
}

// Store is the peer's coordination session, or nil before it exists.
func (p *Peer) Store() coord.Store {
	if s := p.store.Load(); s != nil {
		return s
	}
	return nil
}

// setReady records a subsystem's readiness.
func (p *Peer) setReady(name string, ok bool) {
	p.rmu.Lock()
	was := p.ready[name]
	p.ready[name] = ok
	p.rmu.Unlock()
	v := 0.0
	if ok {
		v = 1
	}
	p.metrics.SubsystemReady.WithLabelValues(name).Set(v)
	if was != ok {
		p.log.Info("subsystem readiness", "subsystem", name, "ready", ok)
	}
}

// Problems lists why the peer is not ready (empty: ready).
func (p *Peer) Problems() []string {
	var out []string
	if p.store.Load() != nil && !p.connected.Load() {
		out = append(out, "coordination: ZooKeeper session not connected")
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	for _, name := range p.subsystems() {
		if !p.ready[name] {
			out = append(out, name+": not ready")
		}
	}
	return out
}

// Close releases what New acquired when Run is not called.
func (p *Peer) Close() error {
	p.once.Do(p.closeListeners)
	return nil
}

func (p *Peer) closeListeners() {
	for _, ln := range []net.Listener{p.ls.TCP, p.ls.Unix} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// Run runs every subsystem until ctx ends, then shuts down within the
// configured shutdown timeout and returns nil; it returns the first
// subsystem's error if one fails (the others are stopped). Run can be
// called once.
func (p *Peer) Run(ctx context.Context) error {
	started := false
	p.once.Do(func() { started = true })
	if !started {
		return fmt.Errorf("peer: Run called twice or after Close")
	}
	p.log.Info("peer starting", "version", p.opts.Version, "federation", p.cfg.Federation, "chroot", p.cfg.Chroot(),
		"api", p.cfg.API.Listen, "socket", p.cfg.API.Socket, "tls", p.ls.TLS != nil, "overlay", p.cfg.Overlay.Enabled)
	g, gctx := errgroup.WithContext(ctx)
	run := func(name string, f func(context.Context) error) {
		g.Go(func() error {
			err := f(gctx)
			if err != nil && gctx.Err() == nil {
				p.log.Error("subsystem failed", "subsystem", name, "err", err)
				return fmt.Errorf("peer: %s: %w", name, err)
			}
			p.setReady(name, false)
			return nil
		})
	}
	run("api", func(ctx context.Context) error {
		p.setReady("api", true)
		return p.api.Run(ctx, p.ls, p.cfg.ShutdownTimeout.D())
	})
	run("coordination", p.runCoordination)
	run("reservations", p.runReservations)
	run("metrics", p.runMetrics)
	if p.cfg.Overlay.Enabled {
		run("overlay", func(ctx context.Context) error { return p.runPlugin(ctx, Plugin{Name: "overlay", Run: runOverlay}) })
	}
	for _, pl := range p.opts.Plugins {
		run(pl.Name, func(ctx context.Context) error { return p.runPlugin(ctx, pl) })
	}
	err := g.Wait()
	if s := p.store.Load(); s != nil {
		if cerr := s.Close(); cerr != nil && !errors.Is(cerr, coord.ErrClosed) {
			p.log.Warn("closing the ZooKeeper session", "err", cerr)
		}
	}
	p.log.Info("peer stopped", "err", err)
	return err
}

// waitStore waits for the coordination subsystem's session.
func (p *Peer) waitStore(ctx context.Context) (coord.Store, error) {
	select {
	case <-p.storeReady:
		return p.store.Load(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Peer) runPlugin(ctx context.Context, pl Plugin) error {
	st, err := p.waitStore(ctx)
	if err != nil {
		return nil
	}
	env := Env{
		Config: p.cfg, Store: st, Logger: p.log.With("subsystem", pl.Name), Metrics: p.metrics,
		Ready: func(ok bool) { p.setReady(pl.Name, ok) }, Register: p.register,
	}
	if len(p.creds) > 0 {
		keys, err := vcacl.NewKeys(p.creds[0])
		if err != nil {
			return fmt.Errorf("peer: federation credential: %w", err)
		}
		env.AgentSecret = func(vc string) ([]byte, error) {
			s, err := keys.AgentSecret(vc)
			if err != nil {
				return nil, err
			}
			return s.Marshal(), nil
		}
	}
	return pl.Run(ctx, env)
}

// retry calls f until it succeeds or ctx ends, with a capped backoff.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn(what+" failed; retrying", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// identity names this peer process in live/<site>.
func identity() string {
	h, err := os.Hostname()
	if err != nil {
		h = "unknown"
	}
	return h + "/" + strconv.Itoa(os.Getpid())
}
