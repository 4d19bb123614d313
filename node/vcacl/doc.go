// Package vcacl is the federation's ZooKeeper access-control layout
// (DESIGN.md §4, §8): which digest identity may do what where.
//
// Three kinds of identity exist:
//
//   - the federation credential, held by every peer: all permissions on
//     every node;
//   - one credential per virtual cluster, held by that VC's agents;
//   - the agents credential, shared by every agent of every VC: read-only
//     access to the two federation-wide directories agents render from.
//
// The layout (F = federation, A = agents, V = the VC's own credential;
// r = read, w = write, c = create, d = delete, a = admin):
//
//	/sites /live /links /timetable /reservations /vlans /vc  F:rwcda
//	  and everything under them not listed below              F:rwcda
//	/hosts, /hosts/*, /accounts, /accounts/*                  F:rwcda A:r
//	/vc/<vc>, spec, status/..., nodes/..., accounts/...       F:rwcda V:r
//	/vc/<vc>/jobs/... and /vc/<vc>/hosts/...                  F:rwcda V:rwcd
//
// So an agent of VC A, whose session holds A's credential and the agents
// credential, may read the federation's host and account records, read
// its VC's specification, status, node records (the overlay's address
// records: a node must not rewrite where the switches send its peers'
// traffic) and VC accounts, and work freely in its job queue and its VC's
// host records; ZooKeeper refuses it everything else (coord.ErrNoAuth):
// other VCs' subtrees, the sites, links, timetable, reservations and VLAN
// records, and creating or deleting anything outside vc/A/jobs and
// vc/A/hosts. No identity but the federation's has the admin permission,
// so nobody else can change an ACL. One thing ZooKeeper grants everyone:
// Exists (and ExistsW) needs no permission, so an agent can learn whether
// a path it can name exists, and its stat (versions, times, sizes, number
// of children), but never its data or its children's names.
//
// ZooKeeper ACLs are not inherited: each node carries its own. Peers
// therefore wrap their store with Wrap, which gives every node created with
// a nil ACL the ACL of its path (Policy.ACL); agents open their store with
// AgentDefaultACL, since they only ever create nodes in their VC's job
// queue and host records. Directories created before the policy was in
// force keep the ACL they were created with (coord.Store has no SetACL):
// create a federation's schema through a wrapped store.
//
// VC and agents credentials are derived from the federation credential by
// HMAC-SHA-256 (Keys), so every peer can compute any VC's credential and
// ACL without storing secrets in ZooKeeper; the provisioner hands a node
// its AgentSecret. Rotating them means rotating the federation credential.
package vcacl
