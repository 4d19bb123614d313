package topology

import (
	"net/netip"
	"time"
)

// Site is the JSON record at sites/<site>. Other packages may store more
// fields in the same record; this package reads only these.
type Site struct {
	Name string `json:"name"`
	// Gateway is the site's underlay address: where the other sites' GRE
	// tunnels terminate (the address on its br-phy).
	Gateway netip.Addr `json:"gateway"`
}

// Live is the JSON record of the ephemeral node live/<site>, created by the
// site's peer for its ZooKeeper session.
type Live struct {
	Site  string    `json:"site"`
	Since time.Time `json:"since"`
}

// Link is the JSON record at links/<a>~<b> (coord.LinkPath): the measured
// state of the tunnel between two sites, written by the lower-named site.
type Link struct {
	A string `json:"a"`
	B string `json:"b"`
	// Cost is the link's routing cost, the measured round-trip time in
	// microseconds. Costs below MinCost count as MinCost.
	Cost uint32 `json:"cost_us"`
	// Up is false when BFD or the probes find the tunnel down.
	Up      bool      `json:"up"`
	Updated time.Time `json:"updated"`
}

// MinCost is the smallest cost a link counts with. Positive costs make every
// hop strictly shorten the remaining distance, which is what keeps
// hop-by-hop forwarding loop-free.
const MinCost = 1

// DefaultCost is the cost of a link between two live sites that has no
// links/ record yet (100 ms): usable, but measured links are preferred.
const DefaultCost = 100_000
