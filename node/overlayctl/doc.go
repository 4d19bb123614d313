// Package overlayctl is the peer's overlay subsystem: it keeps its site's
// switch in line with the federation's state in ZooKeeper.
//
// Run watches (never polls) sites/, live/, links/ and the VC node records
// under vc/<vc>/nodes/, builds the site graph and this site's desired
// switch state with overlay/topology, and applies it through an
// overlay.Dataplane, debouncing bursts of changes. It takes a new flow
// generation when it starts (one above the newest found on the switch), so
// the first Apply replaces every flow of the previous incarnation and
// deletes the stale ones. It writes links/<a>~<b> for the links where its
// site is the lower-named end, from the tunnels' BFD state (ObserveLink)
// and RTT probes, and registers the site (sites/, live/) again after a
// session expiry.
//
// Link state, in order of authority:
//   - links/ records are the shared truth every peer routes by, so all
//     compute the same loop-free shortest paths.
//   - A link this site's own BFD sees down is taken down in this site's
//     graph at once (local repair), before the record round trip through
//     ZooKeeper, provided the detour cannot loop: the new next hop's own
//     path toward the destination, in the shared graph, must not come back
//     through this site. A link is only ever taken back into use through
//     links/: its lower-named end writes it up once BFD has been up at both
//     ends for HoldDown (1 s), so a flapping link does not pull traffic
//     back and forth.
//
// While the ZooKeeper session is disconnected nothing is torn down: the
// last desired state stays applied (local repair still works), and the
// records are re-read when the session is back. Before the first complete
// read of the records nothing is applied, so a restart never clears the
// flows a previous incarnation left.
package overlayctl
