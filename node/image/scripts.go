package image

// ReadyMarker starts the console line a node prints once its network and
// root disk are up: "MUSUBI-NODE-UP <vc>/<node> ip=<addr> uptime=<s>".
const ReadyMarker = "MUSUBI-NODE-UP"

// FailMarker starts the console line of a node that cannot boot (no root
// disk, for example); it powers off right after.
const FailMarker = "MUSUBI-NODE-FAILED"

// BootLog is the file on the root disk where every boot appends a line
// "boot <vc>/<node> <boot id>".
const BootLog = "/var/lib/musubi/boots"

// AgentPath is where the agent binary lives in the root file system.
const AgentPath = "/usr/bin/musubi"

// ControlSecretName is the fw_cfg name under which a guest finds its
// agent's credentials (vm.ControlSecretName).
const ControlSecretName = "opt/org.musubi/agent"

// SGEPath is where the lean Grid Engine command binary goes; qsub, qstat,
// ... beside it are symlinks to it.
const SGEPath = "/usr/bin/musubi-sge"

// stage1 is the initramfs's /init: drivers, root disk, switch_root.
const stage1 = `#!/bin/busybox sh
# musubi node image, stage 1 (initramfs): load the drivers the root disk and
# the NIC need, mount the root disk and switch to it.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
	insmod "/lib/modules/$m.ko" || echo "musubi-init: insmod $m failed"
done < /lib/modules/load.order
root=/dev/vda
for a in $(cat /proc/cmdline); do
	case "$a" in musubi.rootdev=*) root="${a#musubi.rootdev=}" ;; esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
if [ -b "$root" ] && mount -t ext4 -o rw,noatime "$root" /newroot && [ -x /newroot/sbin/init ]; then
	mount --move /dev /newroot/dev
	mount --move /sys /newroot/sys
	mount --move /proc /newroot/proc
	exec switch_root /newroot /sbin/init
fi
echo "` + FailMarker + ` no root file system on $root"
poweroff -f
`

// inittab drives busybox init on the root disk.
const inittab = `# musubi node: busybox init
::sysinit:/sbin/musubi-setup
::respawn:/sbin/musubi-agent
::ctrlaltdel:/sbin/poweroff
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
`

// setup is /sbin/musubi-setup, run once by init at boot.
const setup = `#!/bin/sh
# musubi node: configure the node from the kernel command line.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
# Stage 1 moved /proc, /sys and /dev here; mount them when it did not.
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/class ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -o remount,rw /
# musubi.<key>=<value> -> MUSUBI_<KEY>=<value>, kept for the agent in /run.
: > /run/musubi.env
chmod 600 /run/musubi.env
for a in $(cat /proc/cmdline); do
	case "$a" in
	musubi.*=*)
		k="${a%%=*}"; k="${k#musubi.}"; v="${a#*=}"
		k="$(echo "$k" | tr 'a-z.-' 'A-Z__')"
		export "MUSUBI_$k=$v"
		echo "export MUSUBI_$k='$v'" >> /run/musubi.env
		;;
	esac
done
node="${MUSUBI_NODE:-node}"
hostname "$node"
ip link set lo up
if [ -n "$MUSUBI_IP" ]; then
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
	ip link set eth0 mtu "${MUSUBI_MTU:-1400}" up
	ip addr add "$MUSUBI_IP" dev eth0
	[ -n "$MUSUBI_GW" ] && ip route add default via "$MUSUBI_GW"
	printf '127.0.0.1 localhost\n%s %s\n' "${MUSUBI_IP%/*}" "$node" > /etc/hosts
fi
# The control NIC (QEMU user networking that only forwards to the peer's
# ZooKeeper relay) and the agent's credentials from fw_cfg.
if [ -n "$MUSUBI_CTL_IP" ]; then
	i=0
	while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
	ip link set eth1 up
	ip addr add "$MUSUBI_CTL_IP" dev eth1
fi
cred=/sys/firmware/qemu_fw_cfg/by_name/` + ControlSecretName + `/raw
if [ -r "$cred" ]; then
	mkdir -p /run/musubi
	(umask 077; cat "$cred" > /run/musubi/agent.secret)
	echo "export MUSUBI_AGENT_SECRET='/run/musubi/agent.secret'" >> /run/musubi.env
fi
mkdir -p /var/lib/musubi /var/log /var/spool/musubi
echo "boot ${MUSUBI_VC}/$node $(cat /proc/sys/kernel/random/boot_id)" >> ` + BootLog + `
sync
acpid
echo "` + ReadyMarker + ` ${MUSUBI_VC}/$node ip=${MUSUBI_IP} uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console
`

// agentRun is /sbin/musubi-agent, respawned by init.
const agentRun = `#!/bin/sh
# musubi node: run the agent with the node's settings (respawned by init).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
. /run/musubi.env
if [ -z "$MUSUBI_ZK" ]; then
	# No ensemble given: nothing to run (init would respawn us at once).
	exec sleep 2147483647
fi
echo "musubi-agent: starting on $MUSUBI_NODE" > /dev/console
` + AgentPath + ` agent >> /var/log/musubi-agent.log 2>&1
echo "musubi-agent: exited with $?" > /dev/console
sleep 2
`

// powerButton is busybox acpid's default action for the power button.
const powerButton = `#!/bin/sh
/sbin/poweroff
`

// etcFiles are the root file system's small configuration files.
var etcFiles = map[string]string{
	"etc/inittab":            inittab,
	"etc/passwd":             "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":              "root:x:0:\nnogroup:x:65534:\n",
	"etc/shadow":             "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
	"etc/hosts":              "127.0.0.1 localhost\n",
	"etc/nsswitch.conf":      "passwd: files\ngroup: files\nhosts: files dns\n",
	"etc/acpi/PWRF/00000080": powerButton,
}
