package admission

import (
	"fmt"
	"time"
)

// Window is the half-open time interval [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Duration is the window's length.
func (w Window) Duration() time.Duration { return w.End.Sub(w.Start) }

// Overlaps reports whether the two windows share an instant.
func (w Window) Overlaps(o Window) bool { return w.Start.Before(o.End) && o.Start.Before(w.End) }

// Contains reports whether t is in the window.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// String formats the window as [start, end) in UTC, RFC 3339.
func (w Window) String() string {
	return "[" + w.Start.UTC().Format(time.RFC3339Nano) + ", " + w.End.UTC().Format(time.RFC3339Nano) + ")"
}

// Policy names a placement policy.
type Policy string

// The placement policies (see the package documentation).
const (
	// RoundRobin is the seed system's policy and the default: the frontend
	// on the host with the fewest frontends in the window (lowest host
	// number first), the other nodes on the following hosts, cycling.
	RoundRobin Policy = "round-robin"
	// Spread places each node on the host with the fewest nodes of this
	// VC, then the most free memory, then the lowest host number.
	Spread Policy = "spread"
	// Pack fills a host before it uses the next one.
	Pack Policy = "pack"
)

// Policies lists the known policies.
var Policies = []Policy{RoundRobin, Spread, Pack}

// Host is a compute host and its capacity.
type Host struct {
	Name      string `json:"name"`       // unique in the federation
	Site      string `json:"site"`       // the site it belongs to
	MemoryMiB int64  `json:"memory_mib"` // memory available to virtual nodes
	VCPUs     int64  `json:"vcpus"`      // vCPU slots available to virtual nodes
}

// StorageHost is a storage host and its capacity.
type StorageHost struct {
	Name  string `json:"name"`  // unique among storage hosts
	Site  string `json:"site"`  // the site it belongs to
	Bytes int64  `json:"bytes"` // space available to node volumes
}

// Kind is the kind of resource a timetable entry books.
type Kind string

// Resource kinds.
const (
	KindHost    Kind = "host"    // a compute host: memory and vCPUs
	KindStorage Kind = "storage" // a storage host: bytes
	KindVLAN    Kind = "vlan"    // a VLAN tag
)

// Entry books one resource for one VC during a window. A VC has at most
// one entry per resource: the amounts are the sums over its nodes there.
type Entry struct {
	Kind      Kind   `json:"kind"`
	Resource  string `json:"resource,omitempty"` // host or storage host name (KindHost, KindStorage)
	VLAN      int    `json:"vlan,omitempty"`     // the tag (KindVLAN)
	VC        string `json:"vc"`
	RequestID string `json:"request_id,omitempty"`
	Window    Window `json:"window"`
	MemoryMiB int64  `json:"memory_mib,omitempty"` // KindHost
	VCPUs     int64  `json:"vcpus,omitempty"`      // KindHost
	Bytes     int64  `json:"bytes,omitempty"`      // KindStorage
	Nodes     int    `json:"nodes,omitempty"`      // nodes on the host, or volumes on the storage host
	Frontends int    `json:"frontends,omitempty"`  // frontend nodes on the host
}

// Timetable is the state admission decides against: the resources and every
// entry booking them.
type Timetable struct {
	Hosts   []Host        `json:"hosts"`
	Storage []StorageHost `json:"storage"`
	Entries []Entry       `json:"entries"`
}

// Request asks for a virtual cluster.
type Request struct {
	// ID identifies this request uniquely (node/reserve generates it); it
	// is copied into the placement and its entries.
	ID string `json:"id,omitempty"`
	// VC names the virtual cluster (a coord.ValidName).
	VC string `json:"vc"`
	// Nodes is the number of virtual nodes, 1-MaxNodes.
	Nodes int `json:"nodes"`
	// MemoryMiB, VCPUs and DiskBytes are per node. DiskBytes 0 means no
	// volume (and no storage host needed).
	MemoryMiB int64 `json:"memory_mib"`
	VCPUs     int64 `json:"vcpus"`
	DiskBytes int64 `json:"disk_bytes"`
	// Window is when the VC exists.
	Window Window `json:"window"`
	// Image names the application image; SSHKeys are the owner's public
	// keys. Admission does not look at them; they travel with the record.
	Image   string   `json:"image,omitempty"`
	SSHKeys []string `json:"ssh_keys,omitempty"`
	// Sites, when not empty, restricts the nodes to these sites.
	Sites []string `json:"sites,omitempty"`
	// EachSite lists sites that must get at least one node each; with
	// Sites set they must be among Sites.
	EachSite []string `json:"each_site,omitempty"`
	// Frontend marks the first node (node 0) as the VC's frontend.
	Frontend bool `json:"frontend,omitempty"`
	// Policy is the placement policy; empty means RoundRobin.
	Policy Policy `json:"policy,omitempty"`
}

// Node is one placed virtual node.
type Node struct {
	Name     string `json:"name"`              // node00, node01, ... in placement order
	Host     string `json:"host"`              // compute host
	Site     string `json:"site"`              // the host's site
	Storage  string `json:"storage,omitempty"` // storage host of its volume ("" without disk)
	Frontend bool   `json:"frontend,omitempty"`
}

// Placement is an admitted request: where every node goes and the VC's
// VLAN tag.
type Placement struct {
	VC        string `json:"vc"`
	RequestID string `json:"request_id,omitempty"`
	Window    Window `json:"window"`
	Policy    Policy `json:"policy"`
	VLAN      int    `json:"vlan"`
	MemoryMiB int64  `json:"memory_mib"` // per node
	VCPUs     int64  `json:"vcpus"`      // per node
	DiskBytes int64  `json:"disk_bytes"` // per node
	Nodes     []Node `json:"nodes"`
}

// Sites lists the sites that hold nodes of the placement, sorted.
func (p Placement) Sites() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range p.Nodes {
		if !seen[n.Site] {
			seen[n.Site] = true
			out = append(out, n.Site)
		}
	}
	sortStrings(out)
	return out
}

// Entries are the timetable entries the placement books: one per compute
// host, one per storage host and one for the VLAN tag, in a fixed order
// (hosts, storage hosts, VLAN; names in natural order).
func (p Placement) Entries() []Entry {
	type agg struct {
		nodes, frontends int
	}
	hosts := map[string]*agg{}
	stores := map[string]*agg{}
	var hostNames, storeNames []string
	for _, n := range p.Nodes {
		h := hosts[n.Host]
		if h == nil {
			h = &agg{}
			hosts[n.Host] = h
			hostNames = append(hostNames, n.Host)
		}
		h.nodes++
		if n.Frontend {
			h.frontends++
		}
		if n.Storage != "" && p.DiskBytes > 0 {
			s := stores[n.Storage]
			if s == nil {
				s = &agg{}
				stores[n.Storage] = s
				storeNames = append(storeNames, n.Storage)
			}
			s.nodes++
		}
	}
	sortNatural(hostNames)
	sortNatural(storeNames)
	out := make([]Entry, 0, len(hostNames)+len(storeNames)+1)
	for _, name := range hostNames {
		h := hosts[name]
		out = append(out, Entry{
			Kind: KindHost, Resource: name, VC: p.VC, RequestID: p.RequestID, Window: p.Window,
			MemoryMiB: int64(h.nodes) * p.MemoryMiB, VCPUs: int64(h.nodes) * p.VCPUs,
			Nodes: h.nodes, Frontends: h.frontends,
		})
	}
	for _, name := range storeNames {
		s := stores[name]
		out = append(out, Entry{
			Kind: KindStorage, Resource: name, VC: p.VC, RequestID: p.RequestID, Window: p.Window,
			Bytes: int64(s.nodes) * p.DiskBytes, Nodes: s.nodes,
		})
	}
	if p.VLAN != 0 {
		out = append(out, Entry{Kind: KindVLAN, VLAN: p.VLAN, VC: p.VC, RequestID: p.RequestID, Window: p.Window})
	}
	return out
}

// Options tune admission. The zero value means the defaults.
type Options struct {
	// VLANMin and VLANMax bound the VLAN tag pool (default 1 and 4094).
	VLANMin, VLANMax int
	// Horizon bounds the earliest-fit search: a refused request's
	// alternative window must start before Window.Start+Horizon (default
	// 366 days).
	Horizon time.Duration
	// MaxProbes bounds the number of candidate windows the earliest-fit
	// search tries (default 4096).
	MaxProbes int
}

// Limits on request sizes, so sums never overflow.
const (
	MaxNodes     = 4096    // nodes per request
	MaxMemoryMiB = 1 << 40 // per node
	MaxVCPUs     = 1 << 20 // per node
	MaxDiskBytes = 1 << 50 // per node (1 PiB)
	MinVLAN      = 1       // lowest valid VLAN tag
	MaxVLAN      = 4094    // highest valid VLAN tag
	maxCapacity  = 1 << 62 // capacities and entry amounts
)

// Default option values.
const (
	DefaultHorizon   = 366 * 24 * time.Hour
	DefaultMaxProbes = 4096
)

func (o Options) withDefaults() (Options, error) {
	if o.VLANMin == 0 {
		o.VLANMin = MinVLAN
	}
	if o.VLANMax == 0 {
		o.VLANMax = MaxVLAN
	}
	if o.VLANMin < MinVLAN || o.VLANMax > MaxVLAN || o.VLANMin > o.VLANMax {
		return o, fmt.Errorf("%w: VLAN pool %d-%d is not within %d-%d", ErrInvalidOptions, o.VLANMin, o.VLANMax, MinVLAN, MaxVLAN)
	}
	if o.Horizon == 0 {
		o.Horizon = DefaultHorizon
	}
	if o.Horizon < 0 {
		return o, fmt.Errorf("%w: negative horizon %v", ErrInvalidOptions, o.Horizon)
	}
	if o.MaxProbes == 0 {
		o.MaxProbes = DefaultMaxProbes
	}
	if o.MaxProbes < 0 {
		return o, fmt.Errorf("%w: negative MaxProbes %d", ErrInvalidOptions, o.MaxProbes)
	}
	return o, nil
}
