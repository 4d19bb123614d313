// Package lifecycle is the peer's provisioner: the reconciler that builds
// this site's share of every virtual cluster when its window starts and
// destroys it when the window ends (or the reservation is cancelled or
// released early), DESIGN.md §6.
//
// # What it watches
//
// Run watches reservations/ (children) and every reservations/<vc> record
// (data), never polls them, and keeps a timer for the next window start
// or end among them (through an injectable Clock). From each record it
// takes the nodes its placement puts on this site (Share); every other
// site's peer does the same for its own nodes, so a VC is built in
// parallel by all the sites it spans and no peer ever touches another
// site's hosts.
//
// # What it builds, per node, in this order
//
//  1. the node's volume (provision.VolumeDriver of its storage host): a
//     copy-on-write clone of the VC's application image behind its own
//     iSCSI target, with an initiator ACL and a per-volume CHAP secret;
//  2. the secret, kept in a file of mode 0600 under the peer's state
//     directory (Secrets): never in ZooKeeper, never logged, never on a
//     command line. Storage hosts are placed at the node's own site, so no
//     other peer ever needs it;
//  3. the node record vc/<vc>/nodes/<node> (the overlay's NodeRecord plus
//     "state", "host" and readiness times), written before the node's port
//     exists: the overlay controller removes musubi ports its records do
//     not account for;
//  4. for a node backend without disks of its own (netns), the volume's
//     attachment (Attacher: a qemu-storage-daemon logged in to the target
//     with the secret, serving the disk to the node over NBD on a unix
//     socket, which reaches into the node's namespace through the file
//     system), passed to the agent as MUSUBI_DISK;
//  5. the virtual node itself (vm.Backend of its compute host): a QEMU
//     guest whose root disk is the volume, or a network namespace running
//     the agent; its port on br-int with the VC's VLAN tag is the
//     backend's. Ensure returns once the node is ready (the backend's
//     ReadyFunc: the agent has registered, see RegisteredReady and
//     LogReady).
//
// Nodes are built in parallel (Config.Parallel at a time). Progress goes
// to vc/<vc>/status/<site> (Status, the record node/api reads): state
// "provisioning", "ready" once every node of the share is, "failed" after
// repeated failures (retried all the same, with a capped backoff),
// "tearing-down", then "ended".
//
// # Teardown
//
// At the window's end, on cancel, on an early release, and for anything
// found on the host that no active reservation wants, the reconciler
// deletes the node record (before the port goes), removes the node, its
// attachment, its volume (target, CHAP account, clone) and its secret
// file, and sweeps leftover VC ports. Once every site of the placement
// reports "ended", the site that sees it last purges the reservation
// (reserve.Purge: record, VC subtree, bookings), so ended reservations do
// not accumulate.
//
// # Restart safety
//
// Every step is idempotent and the reconciler keeps no state of its own
// that matters across a restart: what it must destroy it learns from the
// drivers' List (what really exists on the host: targets, clones, ports,
// namespaces, processes, attachments, secret files), what it must build
// from the reservations. A peer killed at any step and started again
// converges: half-built nodes are finished (or removed, if their window
// has ended meanwhile) and nothing leaks.
package lifecycle
