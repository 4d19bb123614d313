// Package nodesync keeps a node's view of its federation and virtual
// cluster in sync from ZooKeeper, driven by watches (it never polls):
//
//   - /etc/hosts: a managed block ("# BEGIN musubi" ... "# END musubi")
//     rendered from the VC's node records (vc/<vc>/nodes, the overlay's
//     overlayctl.NodeRecord), the VC's host records (vc/<vc>/hosts) and the
//     federation's (hosts/), in that order of precedence for a name. Every
//     line outside the block is left as it is. The file is replaced
//     atomically (a temporary file in the same directory, renamed over it);
//     where that is impossible because the file is a bind mount (EBUSY,
//     EXDEV: containers) it is rewritten in place under a lock.
//   - accounts: users, groups and SSH authorized_keys from accounts/ (the
//     records node/api writes) and vc/<vc>/accounts, applied through a
//     UserDB. FileDB, the real one, edits passwd, group, shadow and gshadow
//     under a root directory ("/" on a node, a temporary directory in
//     tests) the way the shadow tools do (lock file, atomic replacement,
//     modes and owners kept) and needs no tools in the node image. It only
//     ever changes or removes users it manages, marked by their GECOS
//     field (ManagedGECOS), and groups it created (a state file); a name
//     or uid taken by a user it does not manage is reported as a conflict
//     and left alone. Password hashes are copied into shadow, never
//     logged; authorized_keys is a managed block, mode 0600, owned by the
//     user.
//
// A Syncer holds one ChildrenW watch per directory and one GetW watch per
// record; an event re-reads only what it concerns, and everything queued
// is applied together. After a session expiry (EventNotWatching) it reads
// everything again. Config.OnApplied reports every applied change with its
// time, which is how the propagation delay from a ZooKeeper write to the
// rendered file is measured (test/bench/propagation).
package nodesync
