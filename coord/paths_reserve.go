package coord

import (
	"fmt"
	"strings"
)

// Timetable resources (DESIGN.md §4, §6). Each compute host and each
// storage host is one resource, timetable/<kind>.<host>, whose data is its
// capacity; each booking of it is a child named after the VC. VLAN tags
// are booked under vlans/<tag>/<vc> the same way.
const (
	// ResourceHost prefixes a compute host's resource name: host.<host>.
	ResourceHost = "host"
	// ResourceStorage prefixes a storage host's resource name:
	// storage.<host>.
	ResourceStorage = "storage"
)

// TimetableResourceName is the resource name of a host of the given kind
// (ResourceHost or ResourceStorage): <kind>.<host>.
func TimetableResourceName(kind, host string) string { return kind + "." + host }

// ParseTimetableResource splits a timetable/ child name into its kind
// (ResourceHost or ResourceStorage) and host name.
func ParseTimetableResource(name string) (kind, host string, err error) {
	kind, host, ok := strings.Cut(name, ".")
	if !ok || (kind != ResourceHost && kind != ResourceStorage) || ValidName(host) != nil || ValidName(name) != nil {
		return "", "", fmt.Errorf("%w: timetable resource %q is not host.<host> or storage.<host>", ErrInvalidPath, name)
	}
	return kind, host, nil
}

// TimetableHostPath is timetable/host.<host>.
func TimetableHostPath(host string) string {
	return TimetableResourcePath(TimetableResourceName(ResourceHost, host))
}

// TimetableStoragePath is timetable/storage.<host>.
func TimetableStoragePath(host string) string {
	return TimetableResourcePath(TimetableResourceName(ResourceStorage, host))
}

// VLANSlotPath is vlans/<tag>/<vc>: the VC's hold on the tag.
func VLANSlotPath(tag int, vc string) string { return VLANPath(tag) + "/" + vc }
