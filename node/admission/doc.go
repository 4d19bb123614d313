// Package admission decides whether a virtual cluster reservation fits the
// federation's resource timetable, and where its nodes go. It is pure: it
// does no I/O, reads no clock and keeps no state; the same inputs always
// give the same outputs. Package node/reserve reads the timetable from the
// coordination store, calls Admit and commits the result in one Multi.
//
// # Resources
//
// The timetable (Timetable) lists compute hosts (memory in MiB and vCPU
// slots), storage hosts (bytes) and the entries that book them, each for a
// half-open time window [start, end). VLAN tags 1-4094 form a pool: a tag is
// held by one VC for its window and is free again when that window ends.
// A resource is overcommitted if, at some instant, the entries covering that
// instant add up to more than its capacity; Admit never creates such an
// instant (Verify checks a whole timetable).
//
// # Placement
//
// Every node of a request needs the same memory, vCPUs and disk. A node is
// placed on a compute host with enough free memory and vCPUs throughout the
// window, and its volume on a storage host of the same site with enough
// free bytes. Policies (Policy) choose among the hosts that fit:
//
//   - round-robin (default, the seed system's): the frontend goes to the
//     host with the fewest frontends in the window, lowest host number
//     first; the other nodes go to the following hosts in order, cycling.
//   - spread: each node goes to the host with the fewest nodes of this VC,
//     then the most free memory, then the lowest host number.
//   - pack: each node goes to the first host in order that still fits, so a
//     host is filled before the next is used.
//
// The host number is a host's position in the natural order of host names
// (h2 before h10). Site constraints restrict hosts to listed sites
// (Request.Sites) and require at least one node at each listed site
// (Request.EachSite).
//
// Because all nodes of a request are alike, placement is a counting
// problem, and the greedy policies find a placement whenever one exists.
// When none exists Admit returns a *Refusal naming the binding constraint
// (the host or storage host closest to fitting, its free amount and the
// amount needed) and the earliest window of the same length that fits,
// searched forward over the timetable's interval boundaries up to a
// horizon.
//
// # First come, first served
//
// Admit only adds entries; existing entries are never moved or shrunk, so an
// admitted reservation is never displaced. Cancel and Release compute the
// timetable after a reservation is cancelled or released early.
package admission
