package reserve

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/admission"
)

// State is a reservation's state.
type State string

// Reservation states.
const (
	// Admitted: the reservation holds its resources for its window.
	Admitted State = "admitted"
	// Released: released early; Window ends at the release instant.
	Released State = "released"
	// Cancelled: its bookings are gone; the record remains until Purge so
	// that peers tear the VC down.
	Cancelled State = "cancelled"
)

// Record is the content of reservations/<vc> and of vc/<vc>/spec.
type Record struct {
	VC        string `json:"vc"`
	RequestID string `json:"request_id"` // unique per Reserve call
	State     State  `json:"state"`
	// Window is the reservation's current window: the requested one, or
	// shorter after an early release.
	Window    admission.Window    `json:"window"`
	Request   admission.Request   `json:"request"`
	Placement admission.Placement `json:"placement"`
	Owner     string              `json:"owner,omitempty"` // who admitted it (Config.Owner)
	Created   time.Time           `json:"created"`
	Updated   time.Time           `json:"updated"`
}

// Entries are the bookings the record holds in the store: the placement's
// entries with the record's current window (none once cancelled).
func (rec Record) Entries() []admission.Entry {
	if rec.State == Cancelled {
		return nil
	}
	es := rec.Placement.Entries()
	for i := range es {
		es[i].Window = rec.Window
	}
	return es
}

// Active reports whether the reservation holds resources at instant t.
func (rec Record) Active(t time.Time) bool {
	return rec.State != Cancelled && rec.Window.Contains(t)
}

// Ended reports whether the reservation is over at instant t: cancelled,
// or its window has ended.
func (rec Record) Ended(t time.Time) bool {
	return rec.State == Cancelled || !t.Before(rec.Window.End)
}

func decodeRecord(vc string, data []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("%w: reservation %s: %v", ErrCorrupt, vc, err)
	}
	if rec.VC != vc || rec.RequestID == "" {
		return rec, fmt.Errorf("%w: reservation %s: record names VC %q, request %q", ErrCorrupt, vc, rec.VC, rec.RequestID)
	}
	return rec, nil
}

// ResourceRecord is the content of a resource node: timetable/<resource>
// (a compute host or a storage host, with its capacity) or vlans/<tag> (a
// VLAN tag). Bookings repeats every booking stored as a child <vc> of the
// node; both are written in the same Multi, so they always agree, and an
// admission reads a resource with one Get.
type ResourceRecord struct {
	Kind      admission.Kind    `json:"kind"`                 // host, storage or vlan
	Name      string            `json:"name,omitempty"`       // host or storage host name
	Site      string            `json:"site,omitempty"`       // its site
	MemoryMiB int64             `json:"memory_mib,omitempty"` // KindHost
	VCPUs     int64             `json:"vcpus,omitempty"`      // KindHost
	Bytes     int64             `json:"bytes,omitempty"`      // KindStorage
	Tag       int               `json:"tag,omitempty"`        // KindVLAN
	Bookings  []admission.Entry `json:"bookings"`             // sorted by VC
}

// sameCapacity reports whether two records describe the same resource
// with the same capacity (bookings aside).
func (rr ResourceRecord) sameCapacity(o ResourceRecord) bool {
	return rr.Kind == o.Kind && rr.Name == o.Name && rr.Site == o.Site && rr.MemoryMiB == o.MemoryMiB &&
		rr.VCPUs == o.VCPUs && rr.Bytes == o.Bytes && rr.Tag == o.Tag
}

// withBookings returns a copy of rr whose bookings of vc are replaced by
// add (nil: removed), kept sorted by VC.
func (rr ResourceRecord) withBookings(vc string, add []admission.Entry) ResourceRecord {
	out := rr
	out.Bookings = make([]admission.Entry, 0, len(rr.Bookings)+len(add))
	for _, e := range rr.Bookings {
		if e.VC != vc {
			out.Bookings = append(out.Bookings, e)
		}
	}
	out.Bookings = append(out.Bookings, add...)
	slices.SortStableFunc(out.Bookings, func(a, b admission.Entry) int { return strings.Compare(a.VC, b.VC) })
	return out
}

// resourcePath is the node of a resource: timetable/host.<h> or
// timetable/storage.<h>.
func resourcePath(kind admission.Kind, name string) string {
	if kind == admission.KindStorage {
		return coord.TimetableStoragePath(name)
	}
	return coord.TimetableHostPath(name)
}

// entryPath is where an entry is stored.
func entryPath(e admission.Entry) string {
	if e.Kind == admission.KindVLAN {
		return coord.VLANSlotPath(e.VLAN, e.VC)
	}
	return resourcePath(e.Kind, e.Resource) + "/" + e.VC
}

// groupPath is the node whose version guards an entry: its resource node
// or its VLAN tag node.
func groupPath(e admission.Entry) string {
	if e.Kind == admission.KindVLAN {
		return coord.VLANPath(e.VLAN)
	}
	return resourcePath(e.Kind, e.Resource)
}

// decodeResource decodes the resource node at path and checks it against
// its path: kind and name, and every booking belonging to it, once per VC.
func decodeResource(path string, data []byte) (ResourceRecord, error) {
	var rr ResourceRecord
	if err := json.Unmarshal(data, &rr); err != nil {
		return rr, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	var want string
	switch rr.Kind {
	case admission.KindHost, admission.KindStorage:
		want = resourcePath(rr.Kind, rr.Name)
	case admission.KindVLAN:
		want = coord.VLANPath(rr.Tag)
	}
	if want != path {
		return rr, fmt.Errorf("%w: %s: record describes %s %q%d", ErrCorrupt, path, rr.Kind, rr.Name, rr.Tag)
	}
	for i, e := range rr.Bookings {
		if groupPath(e) != path || (i > 0 && rr.Bookings[i-1].VC >= e.VC) {
			return rr, fmt.Errorf("%w: %s: booking %d (%s %s%d of VC %q) is misplaced or out of order", ErrCorrupt, path, i, e.Kind, e.Resource, e.VLAN, e.VC)
		}
	}
	return rr, nil
}

// decodeEntry decodes the booking stored at <group>/<vc> and checks that it
// matches its path.
func decodeEntry(group, vc string, data []byte) (admission.Entry, error) {
	var e admission.Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("%w: booking %s/%s: %v", ErrCorrupt, group, vc, err)
	}
	if e.VC != vc || groupPath(e) != group {
		return e, fmt.Errorf("%w: booking %s/%s names %s %s%d of VC %q", ErrCorrupt, group, vc, e.Kind, e.Resource, e.VLAN, e.VC)
	}
	return e, nil
}
