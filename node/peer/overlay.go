package peer

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
	"golang.org/x/sync/errgroup"
)

// runOverlay is the overlay subsystem: this site's Open vSwitch bridge
// (overlay/ovs) driven by the overlay controller (node/overlayctl) from
// the federation's records. It is ready once the controller has read the
// records completely and applied them.
func runOverlay(ctx context.Context, env Env) error {
	cfg := env.Config
	gw, err := netip.ParseAddr(cfg.Gateway)
	if err != nil {
		return fmt.Errorf("overlay: gateway %q: %w", cfg.Gateway, err)
	}
	ln, err := net.Listen("tcp", cfg.Overlay.ControllerListen)
	if err != nil {
		return fmt.Errorf("overlay: OpenFlow controller on %s: %w", cfg.Overlay.ControllerListen, err)
	}
	var ctlp atomic.Pointer[overlayctl.Controller]
	dp, err := ovs.New(ovs.Config{
		Site: cfg.Site, OVSDB: cfg.Overlay.OVSDB, Listener: ln,
		Bridge: cfg.Overlay.Bridge, DatapathType: cfg.Overlay.DatapathType,
		Logger: env.Logger.With("component", "ovs"),
		OnLink: func(ev ovs.LinkEvent) {
			if c := ctlp.Load(); c != nil {
				c.ObserveLink(overlayctl.LinkObservation{Remote: ev.RemoteSite, Up: ev.Up, RemoteUp: ev.BFD.RemoteState == overlay.BFDUp, At: ev.At})
			}
		},
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("overlay: %w", err)
	}
	var prober overlayctl.Prober
	if cfg.Overlay.Probe {
		conn, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			env.Logger.Warn("RTT probes disabled: cannot open an ICMP socket (needs CAP_NET_RAW); every link gets the same cost", "err", err)
		} else {
			pr := ovs.NewRTTProber(conn)
			defer pr.Close()
			prober = pr
		}
	}
	ctl, err := overlayctl.New(overlayctl.Config{
		Site: cfg.Site, Gateway: gw, Store: env.Store, Dataplane: dp,
		Register: env.Register, Prober: prober, Logger: env.Logger,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("overlay: %w", err)
	}
	ctlp.Store(ctl)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return dp.Run(gctx) })
	g.Go(func() error { return ctl.Run(gctx) })
	g.Go(func() error {
		// Readiness follows the controller's state.
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			st := ctl.Stats()
			env.Ready(st.Loaded && st.Applies > 0)
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return g.Wait()
}
