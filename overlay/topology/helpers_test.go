package topology

import (
	"strconv"

	"github.com/musubi-fabric/musubi/overlay"
)

func itoa(i int) string { return strconv.Itoa(i) }

func tunnelName(site string) string { return overlay.TunnelPortName(site) }

// network simulates the overlay: every site's switch runs its desired
// flows (overlay.Trace), and a frame sent into a tunnel port comes out of
// the peer site's tunnel port back to the sender, when the graph says the
// link is usable.
type network struct {
	g       *Graph
	desired map[string]overlay.Desired
}

// delivery is a frame leaving some site's switch on a VC port.
type delivery struct {
	site, port string
	frame      overlay.Frame
}

// hop is one tunnel crossing.
type hop struct{ from, to string }

// send injects frame on (site, port) and follows it through the network.
// It returns the deliveries on VC ports and the tunnel crossings, and
// loop=true when a frame was still travelling after more crossings than a
// loop-free path can have.
func (n network) send(site, port string, f overlay.Frame) (out []delivery, hops []hop, loop bool) {
	type inflight struct {
		site, port string
		frame      overlay.Frame
		ttl        int
	}
	queue := []inflight{{site, port, f, len(n.desired) + 1}}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		d := n.desired[cur.site]
		remote := map[string]string{}
		for _, t := range d.Tunnels {
			remote[t.PortName] = t.RemoteSite
		}
		for _, e := range overlay.Trace(d.Flows, cur.port, cur.frame) {
			to, isTunnel := remote[e.Port]
			if !isTunnel {
				out = append(out, delivery{cur.site, e.Port, e.Frame})
				continue
			}
			if _, ok := n.g.Cost(cur.site, to); !ok {
				continue // link cut: the frame is lost
			}
			hops = append(hops, hop{cur.site, to})
			if cur.ttl == 0 {
				return out, hops, true
			}
			queue = append(queue, inflight{to, overlay.TunnelPortName(cur.site), e.Frame, cur.ttl - 1})
		}
	}
	return out, hops, false
}

// build computes every site's desired state: the graph's sites and every
// site an endpoint names.
func build(g *Graph, gen uint32, eps []Endpoint) network {
	n := network{g: g, desired: map[string]overlay.Desired{}}
	sites := g.Sites()
	for _, e := range eps {
		sites = append(sites, e.Site)
	}
	for _, s := range sites {
		if _, done := n.desired[s]; !done {
			n.desired[s], _ = BuildDesired(g, s, gen, eps)
		}
	}
	return n
}
