// Package sitenet builds the underlay of several sites on one Linux
// machine: a network namespace per site, a transit namespace that routes
// between the sites' WAN links (the "WAN"), and the br-phy layout that
// Open vSwitch's userspace GRE needs (the site's WAN interface is a port of
// an OVS bridge, and the site's address sits on that bridge's own
// interface). It also holds the small process helpers that tell a process
// we started from a recycled PID (its start time).
//
// Two users share it: internal/ovstest (the multi-site OVS test harness,
// which starts OVS itself) and node/localfed (`musubi local up`, where
// site bootstrap starts OVS and the address moves onto br-phy afterwards).
//
// Addressing, for site index i (1-based):
//
//	10.200.i.0/24   the link between site i and the transit namespace
//	10.200.i.1      the transit router's end (gateway of the site)
//	10.200.i.2      the site's address: first on its WAN veth, then on br-phy
//	02:6d:75:00:01:i   br-phy's pinned MAC (peers' tunnel ARP caches stay valid)
//
// Every transit-side interface has transmit checksum offload off: the
// userspace datapath delivers partially checksummed frames as they are,
// which breaks TCP into a site; with offload off the kernel fills the
// checksum in when it forwards a frame towards a site.
//
// Everything here needs root and the iproute2 and ethtool programs (and
// ovs-vsctl for AttachPhy); commands that fail return errors wrapping
// ErrCommand with the command's standard error.
package sitenet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// ErrCommand: an external command failed.
var ErrCommand = errors.New("sitenet: command failed")

// Names inside each site namespace.
const (
	PhyBridge = "br-phy" // underlay bridge; its interface holds the site address
	WANIface  = "wan0"   // the site's WAN veth, a port of br-phy
)

// SubnetOf is the underlay subnet of site index i: 10.200.i.0/24, the
// transit router at .1 and the site (its br-phy) at .2.
func SubnetOf(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i), 0}), 24)
}

// SiteAddr is site i's address with its prefix length: 10.200.i.2/24.
func SiteAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i), 2}), 24)
}

// GatewayOf is the transit router's address on site i's link: 10.200.i.1.
func GatewayOf(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 200, byte(i), 1}) }

// PhyMAC is the pinned MAC of site i's br-phy.
func PhyMAC(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0x6d, 0x75, 0x00, 0x01, byte(i)} }

// MaxSites is the highest site index the addressing allows.
const MaxSites = 250

// Output runs a program (with extra environment variables) and returns its
// standard output; a failure wraps ErrCommand and carries stderr.
func Output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s %s: %v: %s", ErrCommand, name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Run runs a program and discards its output.
func Run(ctx context.Context, name string, args ...string) error {
	_, err := Output(ctx, nil, name, args...)
	return err
}

// RunIn runs a program in network namespace ns.
func RunIn(ctx context.Context, ns, name string, args ...string) error {
	return Run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// IPBatch runs several ip(8) commands in one process (ip -batch), in
// namespace ns ("" for the caller's): the commands take effect in quick
// succession, which matters when an address moves between interfaces of a
// site whose daemons are serving.
func IPBatch(ctx context.Context, ns string, cmds [][]string) error {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(strings.Join(c, " "))
		b.WriteByte('\n')
	}
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(b.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: ip -batch in %q (%s): %v: %s", ErrCommand, ns, strings.TrimSpace(strings.ReplaceAll(b.String(), "\n", "; ")), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
