// Package coord is musubi's coordination layer: the Store interface over a
// hierarchical, versioned, watchable key space (ZooKeeper's data model), its
// sentinel errors, digest ACLs, and the znode schema of the federation
// (paths.go).
//
// coord imports no ZooKeeper code. coord/zkstore implements Store over a real
// ZooKeeper ensemble, coord/memstore in memory for unit tests, and
// coord/coordtest is the contract suite both pass unchanged.
package coord
