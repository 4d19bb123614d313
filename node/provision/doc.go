// Package provision holds the small interfaces of the peer's provisioning
// drivers: the storage volumes and the VLAN ports a site builds for its
// share of a virtual cluster at the start of the cluster's window and
// destroys at its end.
//
// Every driver is declarative and idempotent, in the manner of the overlay's
// Dataplane.Apply:
//   - Ensure makes one object exist as its spec says. Calling it again with
//     the same spec (and, for volumes, the CHAP secret it returned) changes
//     nothing.
//   - Remove deletes one object by name and everything it holds on the host;
//     removing what does not exist is not an error.
//   - List reads what really exists on the host (not a memory of past calls),
//     restricted to the objects musubi owns, so a peer restarted in the
//     middle of a build can compare it with what it wants and converge.
//
// The implementations live in subpackages: iscsi (tgt targets over
// copy-on-write clones of the application image) and vlan (node ports on
// the integration bridge with the VC's tag). Each has a fake with the same
// behaviour, and provisiontest holds the contract suites both the real
// drivers and the fakes pass.
package provision
