// Package ovs is the Open vSwitch implementation of overlay.Dataplane: one
// site's integration bridge driven through OVSDB (libovsdb, with models
// generated from the installed vswitch.ovsschema) and an embedded OpenFlow
// 1.3 controller (messages from antrea.io/libOpenflow).
//
// What it manages, through OVSDB:
//   - the integration bridge (default br-int): userspace datapath
//     (datapath_type=netdev), fail_mode=secure, OpenFlow 1.3 only, a pinned
//     MAC (other-config:hwaddr) and one controller tcp:127.0.0.1:<port>
//     with connection-mode=out-of-band, pointing at the embedded controller;
//   - one GRE port per remote site (options:remote_ip, BFD enabled with a
//     short interval so a dead link is seen in about 3 intervals);
//   - the VC node ports, with their VC's VLAN tag.
//
// Everything it creates carries external_ids:musubi-owner=<site>; it only
// ever modifies or removes rows with that mark.
//
// The controller accepts the switch's connection on a listener the caller
// provides (so it can be opened in the site's network namespace), speaks only
// OpenFlow 1.3 (libOpenflow's stock HELLO advertises 1.0 and 1.5, so the
// version bitmap is set by hand), reads FEATURES and PORT_DESC (decoded here:
// libOpenflow's multipart parser crashes on PORT_DESC), answers echo
// requests, and installs flows proactively: Apply translates the flow
// language of package overlay into OpenFlow 1.3 flow-mods (port names to
// OpenFlow port numbers from OVSDB), adds what is new or changed, removes
// stale generations with one cookie-masked delete per generation, removes
// what is no longer wanted with strict deletes, and confirms with a barrier.
// Flows are read back with a flow-stats request and decoded here, not with
// libOpenflow, whose decoders panic or silently drop data on fields they do
// not know. The controller does its own framing (one reader goroutine per
// connection, messages handled in order); libOpenflow's MessageStream is not
// used because its 25 parser goroutines reorder messages and cannot be
// joined. Panics raised inside libOpenflow are recovered and returned as
// errors.
//
// Link monitoring: a libovsdb cache event handler turns changes of the
// tunnels' bfd_status into LinkEvents, delivered in order to
// Config.OnLink from a goroutine that Run owns (no polling).
//
// Run runs the OVSDB client and the controller until its context ends and
// joins every goroutine it started. Apply and Observe may be called before
// Run has connected: they wait for the switch until their context ends.
package ovs
