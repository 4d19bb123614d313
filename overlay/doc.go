// Package overlay is the inter-site network: the declarative desired state
// of one site's integration bridge (Desired: GRE tunnels, VC node ports,
// OpenFlow flows in a small semantic language), the Dataplane interface that
// applies and observes it, and the text dump both implementations print.
//
// Subpackages: overlay/topology (pure: site graph, shortest paths, the
// Desired state of each site), overlay/ovs (Open vSwitch through OVSDB and
// the embedded OpenFlow 1.3 controller), overlay/fakedp (a stateful fake)
// and overlay/dataplanetest (the contract suite both pass).
//
// This package does no I/O and imports neither "net" nor "os", so the pure
// topology package may build on its types.
package overlay
