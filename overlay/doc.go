// Package overlay is the inter-site network: the site graph and shortest
// paths (overlay/topology), the Dataplane interface, and its Open vSwitch
// implementation with the embedded OpenFlow 1.3 controller (overlay/ovs).
package overlay
