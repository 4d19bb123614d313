package overlay

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// SortFlows sorts flows in dump order: table ascending, priority
// descending, match text, then cookie and actions text, so equal sets of
// flows always print the same.
func SortFlows(flows []Flow) {
	slices.SortStableFunc(flows, func(a, b Flow) int {
		return cmp.Or(
			cmp.Compare(a.Table, b.Table),
			cmp.Compare(b.Priority, a.Priority),
			strings.Compare(a.Match.String(), b.Match.String()),
			cmp.Compare(a.Cookie, b.Cookie),
			strings.Compare(a.ActionsString(), b.ActionsString()),
		)
	})
}

// DumpFlows renders flows like `ovs-ofctl dump-flows --names` without
// counters, one per line, in SortFlows order. The input is not modified.
func DumpFlows(flows []Flow) string {
	fl := slices.Clone(flows)
	SortFlows(fl)
	var b strings.Builder
	for _, f := range fl {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Dump renders the declarative part of an observed switch: tunnels and
// ports (sorted by name; no OpenFlow port numbers or BFD state, which
// differ between implementations and runs), then DumpFlows, then opaque
// flows (sorted). Golden tests compare it across implementations.
func Dump(o Observed) string {
	var b strings.Builder
	tun := slices.Clone(o.Tunnels)
	slices.SortFunc(tun, func(x, y TunnelStatus) int { return strings.Compare(x.PortName, y.PortName) })
	ports := slices.Clone(o.Ports)
	slices.SortFunc(ports, func(x, y PortStatus) int { return strings.Compare(x.Name, y.Name) })
	for _, t := range tun {
		fmt.Fprintf(&b, "tunnel %q: remote_site=%s remote_ip=%s\n", t.PortName, t.RemoteSite, t.RemoteIP)
	}
	for _, p := range ports {
		kind := ""
		if p.Internal {
			kind = " type=internal"
		}
		ip := "-"
		if p.IP.IsValid() {
			ip = p.IP.String()
		}
		fmt.Fprintf(&b, "port %q: vc=%s tag=%d mac=%s ip=%s%s\n", p.Name, p.VC, p.VLAN, p.MAC, ip, kind)
	}
	b.WriteString(DumpFlows(o.Flows))
	op := slices.Clone(o.Opaque)
	slices.Sort(op)
	for _, s := range op {
		fmt.Fprintf(&b, "opaque: %s\n", s)
	}
	return b.String()
}

// DumpDesired renders d as Dump would render a switch that matches it.
func DumpDesired(d Desired) string {
	o := Observed{Flows: d.Flows}
	for _, t := range d.Tunnels {
		o.Tunnels = append(o.Tunnels, TunnelStatus{Tunnel: t})
	}
	for _, p := range d.Ports {
		o.Ports = append(o.Ports, PortStatus{Port: p})
	}
	return Dump(o)
}
