package overlayctl

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay"
)

// Prober measures the round-trip time to another site's underlay address
// (ovs.RTTProber does, with ICMP echo).
type Prober interface {
	Probe(ctx context.Context, dst netip.Addr) (time.Duration, error)
}

// Defaults of Config.
const (
	DefaultDebounce      = 20 * time.Millisecond
	DefaultMaxDelay      = 250 * time.Millisecond
	DefaultHoldDown      = time.Second
	DefaultProbeInterval = 2 * time.Second
	DefaultProbeTimeout  = time.Second
	DefaultCostFloor     = 1000 // µs
	DefaultCostQuantum   = 1000 // µs
	DefaultRetryMin      = 100 * time.Millisecond
	DefaultRetryMax      = 2 * time.Second
)

// Config configures a Controller.
type Config struct {
	// Site is this site's name; Gateway its underlay address (where the
	// other sites' tunnels end), used when sites/<Site> has none yet.
	Site    string
	Gateway netip.Addr
	// Store is the peer's ZooKeeper session (shared with the peer's other
	// subsystems; the Controller never closes it).
	Store coord.Store
	// Dataplane is this site's switch.
	Dataplane overlay.Dataplane
	// Generation is the flow generation to install. Zero (the default):
	// one above the newest musubi generation found on the switch, so every
	// start of the subsystem replaces the previous incarnation's flows.
	Generation uint32
	// Register writes the site's sites/ record and its ephemeral live/
	// node for the Store's current session. It is called when Run starts
	// and again after every session expiry, until it succeeds. Nil: a
	// built-in registration that writes {name, gateway} into sites/<Site>
	// (keeping any other fields) and creates live/<Site>.
	Register func(ctx context.Context, st coord.Store) error
	// Debounce is how long the records must be quiet before the desired
	// state is recomputed; MaxDelay bounds the wait during a continuous
	// burst of changes.
	Debounce, MaxDelay time.Duration
	// HoldDown is how long BFD must have been up at both ends before the
	// link's lower-named end writes it up again in links/.
	HoldDown time.Duration
	// Prober, if set, measures each live link's RTT every ProbeInterval
	// (each probe bounded by ProbeTimeout); links/ costs are the median of
	// the last samples, rounded up to CostQuantum µs and at least CostFloor
	// µs. Without a Prober every link costs CostFloor.
	Prober        Prober
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	CostFloor     uint32
	CostQuantum   uint32
	// RetryMin and RetryMax bound the backoff of failed reads, writes and
	// Applies.
	RetryMin, RetryMax time.Duration
	// Logger receives the subsystem's logs (default: discarded).
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if err := coord.ValidName(c.Site); err != nil {
		return fmt.Errorf("%w: site: %w", ErrConfig, err)
	}
	if c.Store == nil {
		return fmt.Errorf("%w: no store", ErrConfig)
	}
	if c.Dataplane == nil {
		return fmt.Errorf("%w: no dataplane", ErrConfig)
	}
	if c.Gateway.IsValid() && (c.Gateway.IsUnspecified() || c.Gateway.Zone() != "") {
		return fmt.Errorf("%w: gateway %v", ErrConfig, c.Gateway)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Debounce, DefaultDebounce)
	def(&c.MaxDelay, DefaultMaxDelay)
	def(&c.HoldDown, DefaultHoldDown)
	def(&c.ProbeInterval, DefaultProbeInterval)
	def(&c.ProbeTimeout, DefaultProbeTimeout)
	def(&c.RetryMin, DefaultRetryMin)
	def(&c.RetryMax, DefaultRetryMax)
	if c.MaxDelay < c.Debounce {
		c.MaxDelay = c.Debounce
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.CostFloor == 0 {
		c.CostFloor = DefaultCostFloor
	}
	if c.CostQuantum == 0 {
		c.CostQuantum = DefaultCostQuantum
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// backoff doubles d within [min, max].
func backoff(d, lo, hi time.Duration) time.Duration {
	if d <= 0 {
		return lo
	}
	return min(2*d, hi)
}
