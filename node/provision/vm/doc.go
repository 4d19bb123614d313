// Package vm provisions a site's virtual nodes: the machines (or lighter
// network-namespace nodes) of a virtual cluster, each attached to its VC's
// VLAN on the integration bridge and running the node's agent.
//
// Backend is the one interface; its implementations live in subpackages:
//   - qemu: a QEMU guest booted directly from an image's kernel and
//     initramfs (KVM when it really works here, TCG otherwise), its root
//     disk on an iSCSI volume through QEMU's own libiscsi with the CHAP
//     secret in a secret object, its NIC a tap on br-int with the VC's tag,
//     controlled over QMP, its serial console logged in its state directory;
//   - netns: a network namespace whose eth0 is a veth with its peer on
//     br-int, running the agent command the caller gives;
//   - fakevm: an in-memory backend with the same behaviour, for tests of the
//     callers.
//
// Every backend is declarative and idempotent like the drivers of package
// provision: Ensure makes a node run as its spec says (a second call with
// the same spec changes nothing, a crashed node is started again), Remove
// deletes it and everything it holds on the host (process, port, tap or
// namespace, state files), and List reads what really runs (state files
// checked against /proc, namespaces, ports) so a restarted peer converges.
// A node counts as ready only when the caller's ReadyFunc says so: in
// production, when its agent has registered in ZooKeeper.
//
// All host effects go through the Runner seam (commands and processes), so
// the backends are unit-tested against a simulated host; vmtest holds the
// contract suite every backend passes.
package vm
