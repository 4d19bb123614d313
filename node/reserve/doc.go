// Package reserve keeps the federation's reservations in the coordination
// store and admits new ones with package admission: it reads the resource
// timetable, lets admission decide, and commits the whole admission in one
// Multi whose version checks make concurrent admissions from different
// peers conflict instead of overcommitting.
//
// # Layout (DESIGN.md §4)
//
//	timetable/host.<host>          ResourceRecord: a compute host's capacity and bookings
//	timetable/host.<host>/<vc>     admission.Entry: the VC's booking of it
//	timetable/storage.<host>       ResourceRecord: a storage host's capacity and bookings
//	timetable/storage.<host>/<vc>  admission.Entry
//	vlans/<tag>                    ResourceRecord: the tag's bookings; created on first use
//	vlans/<tag>/<vc>               admission.Entry: the VC's hold on the tag
//	reservations/<vc>              Record: request, placement, state, current window
//	vc/<vc>/{spec,status,nodes,hosts,accounts,jobs}
//	                               the VC's subtree; spec is a copy of the Record
//
// A resource node's record repeats the bookings stored as its children, so
// that an admission reads the timetable with one Get per resource node
// (not one per booking); the children give each VC's bookings a path of
// their own. Both are always written in the same Multi; Audit checks that
// they agree.
//
// Every transaction that adds, changes or removes a booking Sets the
// resource node with the version it read. Two admissions that book the
// same resource therefore conflict: the second Multi fails with
// coord.ErrBadVersion (or coord.ErrExists for a VLAN tag node both
// create) and is retried with fresh state, with a jittered exponential
// backoff. Resource and tag nodes are never deleted, so their versions
// never repeat.
//
// A Multi that fails with coord.ErrConnectionLost has an unknown outcome;
// the Reserver resolves it (coord.Resolve) by reading its own reservation
// record, which carries the request's unique id, so a request is never
// booked twice.
//
// # Lifecycle
//
// A Record is admitted, then possibly released early (its window's end
// moves earlier, bookings shrink with it) or cancelled (bookings deleted,
// the record stays as a tombstone so the peers tear the VC down). Purge
// removes an ended or cancelled reservation altogether, VC subtree
// included.
package reserve
