package overlayctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// NodeRecord is the overlay's part of the JSON record at
// vc/<vc>/nodes/<node> (coord.VCNodePath): where a virtual node attaches
// to the overlay. The site that provisions the node writes it once the
// node's port exists (or is about to: Apply attaches a device that
// appears later). Other packages may keep more fields in the same record;
// this package reads only these.
type NodeRecord struct {
	// Node and VC repeat the path's names (filled in from the path when
	// empty; a record whose names contradict its path is ignored).
	Node string `json:"node"`
	VC   string `json:"vc"`
	// Site is where the node runs; Port its port on that site's br-int.
	Site string `json:"site"`
	Port string `json:"port"`
	// VLAN is the VC's overlay-wide tag (from its reservation's placement).
	VLAN uint16      `json:"vlan"`
	MAC  overlay.MAC `json:"mac"`
	// IP is the node's IPv4 address; the switches answer ARP for it. Zero:
	// no ARP entry.
	IP netip.Addr `json:"ip,omitzero"`
	// Internal asks for an OVS internal port instead of an existing device.
	Internal bool `json:"internal,omitempty"`
}

// Endpoint converts the record to topology's form.
func (r NodeRecord) Endpoint() topology.Endpoint {
	return topology.Endpoint{VC: r.VC, VLAN: r.VLAN, Site: r.Site, PortName: r.Port, MAC: r.MAC, IP: r.IP, Internal: r.Internal}
}

// DecodeNodeRecord decodes the record stored at vc/<vc>/nodes/<node>.
// The topology checks (names, VLAN, MAC, duplicates) come later, in
// topology.CleanEndpoints.
func DecodeNodeRecord(vc, node string, data []byte) (NodeRecord, error) {
	var r NodeRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: %s: %v", ErrBadRecord, coord.VCNodePath(vc, node), err)
	}
	if r.VC == "" {
		r.VC = vc
	}
	if r.Node == "" {
		r.Node = node
	}
	if r.VC != vc || r.Node != node {
		return r, fmt.Errorf("%w: %s names VC %q, node %q", ErrBadRecord, coord.VCNodePath(vc, node), r.VC, r.Node)
	}
	return r, nil
}

// PutNode writes a node record (creating vc/<vc>/nodes and the record as
// needed, or replacing the record).
func PutNode(ctx context.Context, st coord.Store, r NodeRecord) error {
	if err := coord.ValidName(r.VC); err != nil {
		return fmt.Errorf("overlayctl: put node: %w", err)
	}
	if err := coord.ValidName(r.Node); err != nil {
		return fmt.Errorf("overlayctl: put node: %w", err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("overlayctl: put node: %w", err)
	}
	if err := coord.EnsurePath(ctx, st, coord.VCNodesDir(r.VC)); err != nil {
		return err
	}
	return putData(ctx, st, coord.VCNodePath(r.VC, r.Node), data)
}

// DeleteNode removes a node record; a missing record is not an error.
func DeleteNode(ctx context.Context, st coord.Store, vc, node string) error {
	err := st.Delete(ctx, coord.VCNodePath(vc, node), coord.AnyVersion)
	if err != nil && !errors.Is(err, coord.ErrNotFound) {
		return fmt.Errorf("overlayctl: delete node %s/%s: %w", vc, node, err)
	}
	return nil
}

// putData sets p to data, creating it (persistent) when missing.
func putData(ctx context.Context, st coord.Store, p string, data []byte) error {
	for range 3 {
		_, err := st.Set(ctx, p, data, coord.AnyVersion)
		if !errors.Is(err, coord.ErrNotFound) {
			return err
		}
		_, err = st.Create(ctx, p, data, coord.Persistent, nil)
		if !errors.Is(err, coord.ErrExists) {
			return err
		}
	}
	return fmt.Errorf("overlayctl: %s: created and deleted concurrently", p)
}
