package provision

import "errors"

// Sentinel errors shared by the drivers; they wrap them with %w and add
// their own detail.
var (
	// ErrInvalid: the spec or the name is malformed (bad VC or node name,
	// relative image path, VLAN out of range...).
	ErrInvalid = errors.New("provision: invalid spec")
	// ErrNotFound: something the spec refers to does not exist (the
	// application image, for example).
	ErrNotFound = errors.New("provision: not found")
	// ErrForeign: an object with the name the driver would use exists and is
	// not musubi's; the driver leaves it alone.
	ErrForeign = errors.New("provision: object exists and is not musubi's")
	// ErrUnavailable: the host service the driver drives (tgtd, OVSDB) cannot
	// be reached; the call may be retried.
	ErrUnavailable = errors.New("provision: service unavailable")
)
