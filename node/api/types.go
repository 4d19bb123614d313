package api

import (
	"encoding/json"
	"time"

	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// Prefix is the path prefix of every API route.
const Prefix = "/api/v1"

// Status is GET /api/v1/status: this peer and the federation.
type Status struct {
	Peer       PeerInfo              `json:"peer"`
	Federation node.FederationStatus `json:"federation"`
	// VCs counts the reservations by phase.
	VCs  map[string]int `json:"vcs"`
	Time time.Time      `json:"time"`
}

// PeerInfo describes the peer that answered.
type PeerInfo struct {
	Site    string `json:"site"`
	Version string `json:"version"`
	Ready   bool   `json:"ready"`
	// Problems say why the peer is not ready.
	Problems []string `json:"problems,omitempty"`
}

// Sites is GET /api/v1/sites.
type Sites struct {
	Sites []node.SiteStatus `json:"sites"`
}

// Link is one inter-site link of the topology: its links/ record if the
// lower-named site measured it, else assumed from the sites' liveness.
type Link struct {
	A       string    `json:"a"`
	B       string    `json:"b"`
	Up      bool      `json:"up"`
	CostUS  uint32    `json:"cost_us"`
	Updated time.Time `json:"updated,omitzero"`
	// Measured: the state comes from a links/ record.
	Measured bool `json:"measured"`
}

// Topology is GET /api/v1/topology: the sites and the full mesh of links
// between them.
type Topology struct {
	Sites []node.SiteStatus `json:"sites"`
	Links []Link            `json:"links"`
}

// VC phases, derived from the reservation and the sites' status records.
const (
	PhaseScheduled    = "scheduled"    // the window has not started
	PhaseProvisioning = "provisioning" // in the window, not every site ready
	PhaseReady        = "ready"        // every site reports its share ready
	PhaseFailed       = "failed"       // a site reports a failure
	PhaseEnded        = "ended"        // the window is over
	PhaseCancelled    = "cancelled"    // cancelled
)

// SiteProgress is a site's record at vc/<vc>/status/<site>, written by
// that site's lifecycle reconciler. The API reads these fields (others
// are kept in Raw): State is "ready" when the site's share is up,
// "failed" when it cannot be, anything else while it is being built or
// torn down.
type SiteProgress struct {
	Site       string          `json:"site"`
	State      string          `json:"state"`
	Message    string          `json:"message,omitempty"`
	NodesReady int             `json:"nodes_ready"`
	Nodes      int             `json:"nodes"`
	Updated    time.Time       `json:"updated,omitzero"`
	Raw        json.RawMessage `json:"raw,omitempty"`
}

// VC is a reservation with its progress, as GET /api/v1/vcs/{vc} and the
// list return it.
type VC struct {
	reserve.Record
	Phase      string         `json:"phase"`
	NodesReady int            `json:"nodes_ready"`
	NodesTotal int            `json:"nodes_total"`
	Progress   []SiteProgress `json:"progress,omitempty"`
}

// VCList is GET /api/v1/vcs.
type VCList struct {
	VCs []VC `json:"vcs"`
}

// ReserveRequest is the body of POST /api/v1/vcs.
type ReserveRequest struct {
	VC        string    `json:"vc"`
	Nodes     int       `json:"nodes"`
	MemoryMiB int64     `json:"memory_mib"`
	VCPUs     int64     `json:"vcpus"`
	DiskBytes int64     `json:"disk_bytes,omitempty"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Image     string    `json:"image,omitempty"`
	SSHKeys   []string  `json:"ssh_keys,omitempty"`
	Sites     []string  `json:"sites,omitempty"`
	EachSite  []string  `json:"each_site,omitempty"`
	Frontend  bool      `json:"frontend,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	// Owner reserves on behalf of another principal (admins only; default:
	// the caller).
	Owner string `json:"owner,omitempty"`
}

// Request converts the body to an admission request.
func (r ReserveRequest) Request() admission.Request {
	return admission.Request{
		VC: r.VC, Nodes: r.Nodes, MemoryMiB: r.MemoryMiB, VCPUs: r.VCPUs, DiskBytes: r.DiskBytes,
		Window: admission.Window{Start: r.Start, End: r.End}, Image: r.Image, SSHKeys: r.SSHKeys,
		Sites: r.Sites, EachSite: r.EachSite, Frontend: r.Frontend, Policy: admission.Policy(r.Policy),
	}
}

// ReleaseRequest is the body of POST /api/v1/vcs/{vc}/release.
type ReleaseRequest struct {
	// At is when the reservation ends (zero: now).
	At time.Time `json:"at,omitzero"`
}

// Node is a virtual node of a VC: where the reservation placed it, and
// what its record at vc/<vc>/nodes/<node> says once it exists.
type Node struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	Site     string `json:"site"`
	Storage  string `json:"storage,omitempty"`
	Frontend bool   `json:"frontend,omitempty"`
	// State is the record's "state" field, "attached" for a record
	// without one, or "planned" when there is no record yet.
	State string `json:"state"`
	IP    string `json:"ip,omitempty"`
	MAC   string `json:"mac,omitempty"`
	Port  string `json:"port,omitempty"`
	VLAN  int    `json:"vlan,omitempty"`
}

// Nodes is GET /api/v1/vcs/{vc}/nodes.
type Nodes struct {
	VC    string `json:"vc"`
	Nodes []Node `json:"nodes"`
}

// Job is one job of a VC's queue.
type Job struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Owner     string    `json:"owner"`
	State     string    `json:"state"`
	Slots     int       `json:"slots"`
	Hosts     []string  `json:"hosts,omitempty"`
	Tasks     string    `json:"tasks,omitempty"`
	Submitted time.Time `json:"submitted"`
}

// Jobs is GET /api/v1/vcs/{vc}/jobs.
type Jobs struct {
	VC   string `json:"vc"`
	Jobs []Job  `json:"jobs"`
}

// Accounts is GET /api/v1/accounts.
type Accounts struct {
	Accounts []AccountView `json:"accounts"`
}
