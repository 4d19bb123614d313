// Package image builds and stores the bootable images of QEMU virtual
// nodes, from Debian packages installed on the building host:
//
//   - vmlinuz: the kernel of an installed Debian kernel package (by
//     default linux-image-cloud-amd64, resolved to the versioned package
//     that ships /boot/vmlinuz-<release>);
//   - initrd.img: a small gzip'd cpio (newc) with busybox-static, the
//     kernel modules a QEMU guest needs before its root disk is there
//     (virtio PCI, block and net, the ACPI power button; with their
//     dependencies from modules.dep, in load order) and the stage-1 init,
//     which mounts the root disk (/dev/vda, or musubi.rootdev=) and switches
//     to it;
//   - root.img: a raw ext4 file system with busybox (init, applets), the
//     statically linked musubi binary as the node's agent, the stage-2
//     init (network from the kernel command line, a boot record on the
//     disk, a console marker, the agent under busybox init's respawn) and
//     an optional application payload: programs copied with the shared
//     libraries ldd finds for them (AutoDock Vina, for example);
//   - manifest.json: the inputs (packages and versions, sha256 of every
//     file) and the outputs' sha256; the image's id is the sha256 of the
//     outputs' hashes.
//
// Builds are reproducible: every timestamp is SOURCE_DATE_EPOCH (the
// ext4 inode change times are rewritten with debugfs, since mke2fs takes
// them from the staging files), archive entries are sorted, owners are
// root, and the file system's UUID and hash seed derive from its content.
// Building twice from the same inputs gives the same bytes.
//
// A Store keeps images once per site in content-addressed directories
// (<store>/<id>/) and clones a root disk per node (a reflink when the file
// system can, else a sparse copy).
//
// Kernel command line contract with the node backends (package
// node/provision/vm/qemu): every musubi.<key>=<value> argument becomes
// MUSUBI_<KEY>=<value> in the guest's environment ('.' and '-' become
// '_'); musubi.ip (address/prefix), musubi.gw, musubi.mtu configure eth0,
// musubi.node names the host, musubi.rootdev the root device, and the agent
// starts when musubi.zk is set. The guest prints ReadyMarker on its console
// once its network and disk are up.
package image
