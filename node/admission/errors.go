package admission

import "errors"

// Sentinel errors. Test with errors.Is.
var (
	// ErrRefused: the request is valid but does not fit; the error is a
	// *Refusal (use errors.As) naming the binding constraint.
	ErrRefused = errors.New("admission: refused")
	// ErrInvalidRequest: the request is malformed (bad name, counts,
	// window, policy or site lists).
	ErrInvalidRequest = errors.New("admission: invalid request")
	// ErrInvalidTimetable: the timetable is malformed (duplicate or
	// unnamed resources, negative capacities, bad entries).
	ErrInvalidTimetable = errors.New("admission: invalid timetable")
	// ErrInvalidOptions: the options are out of range.
	ErrInvalidOptions = errors.New("admission: invalid options")
	// ErrVCExists: the timetable already holds entries of this VC.
	ErrVCExists = errors.New("admission: VC already has a reservation")
	// ErrOvercommit: Verify found an instant at which a resource is booked
	// beyond its capacity, or a VLAN tag held twice.
	ErrOvercommit = errors.New("admission: overcommitted")
)
