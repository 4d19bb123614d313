package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/overlayctl"
)

// Site states of a Status record (node/api reads "ready" and "failed").
const (
	StateProvisioning = "provisioning"
	StateReady        = "ready"
	StateFailed       = "failed"
	StateTearingDown  = "tearing-down"
	StateEnded        = "ended"
)

// Status is the record at vc/<vc>/status/<site>: this site's progress on
// its share of the VC.
type Status struct {
	Site      string `json:"site"`
	VC        string `json:"vc"`
	RequestID string `json:"request_id"`
	// State is one of the State* constants.
	State string `json:"state"`
	// Message says what is wrong (the last errors, shortened).
	Message string `json:"message,omitempty"`
	// Nodes is the size of the share, NodesReady how many are ready;
	// Ready names them.
	Nodes      int      `json:"nodes"`
	NodesReady int      `json:"nodes_ready"`
	Ready      []string `json:"ready,omitempty"`
	// Failures counts the failed builds in a row.
	Failures int `json:"failures,omitempty"`
	// WindowStart is the reservation's start; Started when this site began
	// building; ReadyAt when its whole share was first ready; Ended when
	// its teardown finished.
	WindowStart time.Time `json:"window_start"`
	Started     time.Time `json:"started,omitzero"`
	ReadyAt     time.Time `json:"ready_at,omitzero"`
	Ended       time.Time `json:"ended,omitzero"`
	Updated     time.Time `json:"updated"`
}

// ReadStatus reads vc/<vc>/status/<site> (found false when absent).
func ReadStatus(ctx context.Context, st coord.Store, vc, site string) (Status, bool, error) {
	data, _, err := st.Get(ctx, coord.VCStatusPath(vc, site))
	if errors.Is(err, coord.ErrNotFound) {
		return Status{}, false, nil
	}
	if err != nil {
		return Status{}, false, fmt.Errorf("lifecycle: status of %s at %s: %w", vc, site, err)
	}
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return Status{}, false, nil // malformed: rewritten
	}
	return s, true, nil
}

// NodeRecord is what the reconciler writes at vc/<vc>/nodes/<node>: the
// overlay's fields (where the node attaches) and the node's state.
type NodeRecord struct {
	overlayctl.NodeRecord
	// State is "building" until the node is ready, then "ready".
	State     string    `json:"state"`
	Host      string    `json:"host"`
	Storage   string    `json:"storage,omitempty"`
	Backend   string    `json:"backend,omitempty"`
	Frontend  bool      `json:"frontend,omitempty"`
	RequestID string    `json:"request_id"`
	ReadyAt   time.Time `json:"ready_at,omitzero"`
}

// Node states of a NodeRecord.
const (
	NodeBuilding = "building"
	NodeReady    = "ready"
)

// ReadNode reads a node record (found false when absent or malformed).
func ReadNode(ctx context.Context, st coord.Store, vc, node string) (NodeRecord, bool, error) {
	data, _, err := st.Get(ctx, coord.VCNodePath(vc, node))
	if errors.Is(err, coord.ErrNotFound) {
		return NodeRecord{}, false, nil
	}
	if err != nil {
		return NodeRecord{}, false, fmt.Errorf("lifecycle: node %s/%s: %w", vc, node, err)
	}
	var r NodeRecord
	if json.Unmarshal(data, &r) != nil {
		return NodeRecord{}, false, nil
	}
	return r, true, nil
}

// putRecord writes data at p unless it already holds it, creating it when
// missing. The parent is never created: a missing parent means the VC's
// subtree was purged (ErrGone), and writing would resurrect it.
func putRecord(ctx context.Context, st coord.Store, p string, data []byte) error {
	for range 3 {
		old, _, err := st.Get(ctx, p)
		switch {
		case err == nil:
			if bytes.Equal(old, data) {
				return nil
			}
			_, err = st.Set(ctx, p, data, coord.AnyVersion)
			if !errors.Is(err, coord.ErrNotFound) {
				return err
			}
		case !errors.Is(err, coord.ErrNotFound):
			return err
		}
		_, err = st.Create(ctx, p, data, coord.Persistent, nil)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, coord.ErrNotFound):
			return fmt.Errorf("%w: %s", ErrGone, coord.Parent(p))
		case !errors.Is(err, coord.ErrExists):
			return err
		}
	}
	return fmt.Errorf("lifecycle: %s changes too fast", p)
}

// writeStatus writes s at vc/<vc>/status/<site>.
func writeStatus(ctx context.Context, st coord.Store, s Status) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := putRecord(ctx, st, coord.VCStatusPath(s.VC, s.Site), data); err != nil {
		return fmt.Errorf("lifecycle: status of %s: %w", s.VC, err)
	}
	return nil
}

// writeNode writes a node record.
func writeNode(ctx context.Context, st coord.Store, r NodeRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := putRecord(ctx, st, coord.VCNodePath(r.VC, r.Node), data); err != nil {
		return fmt.Errorf("lifecycle: node record %s/%s: %w", r.VC, r.Node, err)
	}
	return nil
}

// deleteNode deletes a node record if it is this site's.
func deleteNode(ctx context.Context, st coord.Store, vc, node, site string) error {
	p := coord.VCNodePath(vc, node)
	data, stat, err := st.Get(ctx, p)
	if errors.Is(err, coord.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lifecycle: node record %s/%s: %w", vc, node, err)
	}
	var r overlayctl.NodeRecord
	if json.Unmarshal(data, &r) == nil && r.Site != "" && r.Site != site {
		return nil // another site's node of the same name: not ours
	}
	err = st.Delete(ctx, p, stat.Version)
	if err != nil && !errors.Is(err, coord.ErrNotFound) {
		return fmt.Errorf("lifecycle: delete node record %s/%s: %w", vc, node, err)
	}
	return nil
}
