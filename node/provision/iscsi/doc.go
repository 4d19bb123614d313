// Package iscsi provisions the virtual nodes' disks on a storage host: one
// tgt (Linux SCSI target framework, userspace) iSCSI target per volume,
// serving a copy-on-write clone of the VC's application image.
//
// Per volume vc/node, Driver.Ensure makes:
//   - the clone, by one of three backends: "file" (the default), a sparse
//     raw copy <dir>/<vc>/<node>.img (cp --reflink=auto --sparse=always: a
//     reflink where the filesystem shares extents, a hole-preserving copy
//     elsewhere); "qcow2", a qcow2 overlay over the image exported as a raw
//     file through qemu-storage-daemon's FUSE export (a few hundred KiB per
//     clone whatever the image, one daemon per volume); "lvm", an LVM
//     snapshot, chosen when a volume group is configured and device-mapper
//     works (DetectDeviceMapper; untested on the development host, which
//     has no device-mapper);
//   - the target iqn.2026-11.org.musubi:<vc>:<node> (TargetIQN) with the
//     clone as LUN 1;
//   - the incoming CHAP account musubi:<vc>:<node> (CHAPUser) with a random
//     secret (NewSecret, crypto/rand) returned to the caller, who stores
//     it; the driver keeps only its SHA-256, to recognise the secret when
//     the caller passes it back;
//   - an ACL admitting only the node's initiator name (or address).
//
// tgt admits no login to a target with an empty ACL, so the ACL is bound
// last and unbound first: the target is closed whenever it is incomplete
// or its secret is being replaced.
//
// tgtd is driven through the Mgmt seam. Socket speaks tgtd's management
// protocol on its unix socket directly (the request layout of tgt 1.0.x,
// verified byte for byte against tgtadm 1.0.85); Command runs tgtadm
// through a Runner. Both are tested against a real tgtd, and the
// iscsitest.FakeTgt emulation stands in for it in unit tests.
//
// CHAP secrets: tgtadm accepts a secret only as a command-line argument
// (--password), where every local user can read it in /proc/<pid>/cmdline
// for the few milliseconds tgtadm runs. Socket, the default, sends it over
// the root-only unix socket instead and no secret ever appears on a command
// line. Secrets are never logged (Request.String redacts them), never
// returned by List, and never written to disk by the driver. tgtd does not
// log them either (it logs only logical-unit parameters, unless started
// with -d, which Daemon never does). What remains: tgtd holds them in
// memory, and whoever consumes Ensure's result must keep them out of
// command lines too (QEMU takes them from a secret object file).
//
// Daemon starts one tgtd per storage host with its own management socket
// (TGT_IPC_SOCKET under its directory and -C) and its own portal, so it
// never meets the system's tgtd; a restarted peer adopts the running one,
// targets and all.
package iscsi
