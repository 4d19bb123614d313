// Package topology is the pure core of the overlay: it turns the
// federation's records (sites/, live/, links/) into a site graph, computes
// deterministic shortest paths over it, and derives the overlay.Desired
// state of one site's switch: a full GRE mesh to every other live site, one
// port per local VC node, and flows that forward each VC's frames along the
// shortest paths while keeping VCs apart.
//
// Every peer runs the same computation on the same records and gets the
// same answer: Dijkstra with all link costs at least 1 and ties broken by
// site name, so hop-by-hop forwarding is loop-free (each hop strictly
// shortens the remaining distance).
//
// The package does no I/O: callers read the records and apply the result.
package topology
