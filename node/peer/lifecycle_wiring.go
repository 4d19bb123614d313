package peer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/node/config"
	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/lifecycle"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/qemu"
	"github.com/musubi-fabric/musubi/node/zkrelay"
)

// LifecycleOptions configure the provisioner subsystem: the lifecycle
// reconciler (node/lifecycle) over this site's drivers. The daemons it
// drives (Open vSwitch, one tgtd per storage host) are the site's, set up
// by site bootstrap; the peer only talks to them.
type LifecycleOptions struct {
	// StateDir holds the provisioner's state: CHAP secrets, volume clones,
	// node state, attachments (default /var/lib/musubi/provision). Keep it
	// short: unix sockets live under it.
	StateDir string
	// Backend is the node backend of the site's compute hosts: "netns"
	// (default) or "qemu".
	Backend string
	// SwitchNetns is the namespace of br-int's ovs-vswitchd, where node
	// ports and QEMU processes go ("" for the peer's own).
	SwitchNetns string
	// StorageNetns is where the storage hosts' portals are reachable for
	// the volumes' attachments (default SwitchNetns).
	StorageNetns string
	// Tgt locates each storage host's tgtd by storage host name; the
	// entry "" serves every storage host without one of its own.
	Tgt map[string]TgtEndpoint
	// VolumeBackend is node/provision/iscsi's clone backend ("file",
	// "qcow2", "lvm"; "" chooses).
	VolumeBackend string
	// VolumeGroup is the LVM volume group of the "lvm" backend.
	VolumeGroup string
	// ImagesDir is the site's node image store (default
	// /var/lib/musubi/images).
	ImagesDir string
	// Subnet addresses the nodes on their VC's network (default
	// lifecycle.DefaultSubnet).
	Subnet string
	// Agent is the command a netns node runs (default: this binary's
	// "agent"). It gets the federation's chroot in MUSUBI_ROOT, its VC's
	// credentials in MUSUBI_AGENT_SECRET, and in MUSUBI_ZK the sockets of
	// the ZooKeeper relay the provisioner serves under <StateDir>/zk
	// (node/zkrelay): a node's namespace has no route to the ensemble.
	Agent []string
	// ReadyOnConsole makes a node ready once its log shows the node
	// image's ready marker (lifecycle.LogReady) instead of once its agent
	// has registered in ZooKeeper (lifecycle.RegisteredReady, the
	// default: netns agents reach the ensemble through the relay's
	// sockets, QEMU guests' agents through their control NIC's forwards
	// to the same sockets).
	ReadyOnConsole bool
	// Accel is QEMU's accelerator ("auto", "kvm", "tcg").
	Accel string
	// Parallel bounds the nodes built at once (default 4).
	Parallel int
	// NodePrefix starts netns nodes' namespace names (default
	// netns.DefaultPrefix).
	NodePrefix string
}

// TgtEndpoint is a tgtd: its management socket and its iSCSI portal.
type TgtEndpoint struct {
	// Socket is the management socket (iscsi.SocketPath of tgtd's
	// TGT_IPC_SOCKET and -C port).
	Socket string
	// Portal is "address:port", reachable from StorageNetns and, for QEMU
	// nodes, from SwitchNetns.
	Portal string
}

// LifecycleOptionsFrom are the provisioner's options of a peer
// configuration's provision section.
func LifecycleOptionsFrom(cfg config.Config) LifecycleOptions {
	pr := cfg.Provision
	o := LifecycleOptions{
		StateDir: pr.StateDir, Backend: pr.Backend, ImagesDir: pr.ImagesDir, Subnet: pr.Subnet,
		VolumeBackend: pr.VolumeBackend, VolumeGroup: pr.VolumeGroup, Agent: pr.Agent,
		ReadyOnConsole: pr.ReadyOnConsole, Accel: pr.Accel, Parallel: pr.Parallel, NodePrefix: pr.NodePrefix,
	}
	if pr.Tgt.Socket != "" {
		o.Tgt = map[string]TgtEndpoint{"": {Socket: pr.Tgt.Socket, Portal: pr.Tgt.Portal}}
	}
	return o
}

// LifecyclePlugin is the provisioner as a peer subsystem: pass it in
// Options.Plugins. It needs the site's hosts and storage hosts in the
// peer's configuration and, for node ports, the overlay's OVSDB and
// bridge settings.
func LifecyclePlugin(o LifecycleOptions) Plugin {
	return Plugin{Name: "lifecycle", Run: func(ctx context.Context, env Env) error { return runLifecycle(ctx, env, o) }}
}

// lifecycleConfig wires the reconciler's configuration from the peer's
// environment and o; it does no I/O but creating state directories.
func lifecycleConfig(ctx context.Context, env Env, o LifecycleOptions, relay *zkrelay.Relay) (lifecycle.Config, error) {
	cfg := env.Config
	o.StateDir = o.stateDir()
	// Traversable by everyone (not listable): the nodes' users open their
	// agents' sockets below it; secrets live in 0700 directories inside.
	if err := os.MkdirAll(o.StateDir, 0o711); err != nil {
		return lifecycle.Config{}, fmt.Errorf("lifecycle: %w", err)
	}
	if err := os.Chmod(o.StateDir, 0o711); err != nil {
		return lifecycle.Config{}, fmt.Errorf("lifecycle: %w", err)
	}
	if o.ImagesDir == "" {
		o.ImagesDir = "/var/lib/musubi/images"
	}
	if o.StorageNetns == "" {
		o.StorageNetns = o.SwitchNetns
	}
	if o.Backend == "" {
		o.Backend = netns.Kind
	}
	var net lifecycle.Network
	if o.Subnet != "" {
		p, err := netip.ParsePrefix(o.Subnet)
		if err != nil {
			return lifecycle.Config{}, fmt.Errorf("lifecycle: subnet %q: %w", o.Subnet, err)
		}
		net.Subnet = p
	}
	ports := &vm.VsctlPorts{Runner: vm.ExecRunner{}, DB: cfg.Overlay.OVSDB, Bridge: cfg.Overlay.Bridge, Owner: cfg.Site}
	guard := lifecycle.NewPortGuard(ports)
	ready := lifecycle.RegisteredReady(env.Store)
	if o.ReadyOnConsole {
		ready = lifecycle.LogReady
	}
	var backend vm.Backend
	var err error
	log := env.Logger
	switch o.Backend {
	case netns.Kind:
		backend, err = netns.New(netns.Config{StateDir: filepath.Join(o.StateDir, "nodes"), Ports: guard,
			SwitchNetns: o.SwitchNetns, Prefix: o.NodePrefix, Ready: ready, Logger: log})
	case qemu.Kind:
		qc := qemu.Config{StateDir: filepath.Join(o.StateDir, "q"), Ports: guard, SwitchNetns: o.SwitchNetns,
			Accel: o.Accel, LogDir: filepath.Join(o.StateDir, "logs"), Logger: log}
		if !o.ReadyOnConsole {
			qc.Ready = ready // the guest's agent registers through its control channel
		}
		backend, err = qemu.New(qc)
	default:
		err = fmt.Errorf("backend %q (netns or qemu)", o.Backend)
	}
	if err != nil {
		return lifecycle.Config{}, fmt.Errorf("lifecycle: %w", err)
	}
	backends := map[string]vm.Backend{}
	for _, h := range cfg.Hosts {
		backends[h.Name] = backend
	}
	volumes := map[string]provision.VolumeDriver{}
	for _, s := range cfg.Storage {
		ep, ok := o.Tgt[s.Name]
		if !ok {
			ep, ok = o.Tgt[""]
		}
		if !ok {
			return lifecycle.Config{}, fmt.Errorf("lifecycle: no tgtd configured for storage host %s", s.Name)
		}
		d, err := iscsi.New(ctx, iscsi.Config{Dir: filepath.Join(o.StateDir, "volumes", s.Name), Portal: ep.Portal,
			Mgmt: iscsi.Socket{Path: ep.Socket}, Backend: o.VolumeBackend, VolumeGroup: o.VolumeGroup, Logger: log})
		if err != nil {
			return lifecycle.Config{}, fmt.Errorf("lifecycle: storage host %s: %w", s.Name, err)
		}
		volumes[s.Name] = d
	}
	att, err := lifecycle.NewNBDAttacher(lifecycle.NBDConfig{Dir: filepath.Join(o.StateDir, "att"), Netns: o.StorageNetns, Logger: log})
	if err != nil {
		return lifecycle.Config{}, err
	}
	zkAddrs := agentServers(cfg.ZooKeeper.Local, cfg.ZooKeeper.Servers)
	if relay != nil {
		zkAddrs = relay.Addrs()
	}
	agentEnv := map[string]string{"MUSUBI_ZK": strings.Join(zkAddrs, ","), "MUSUBI_ROOT": cfg.Chroot()}
	agent := func(n lifecycle.NodePlan) vm.Agent {
		a := lifecycle.DefaultAgent(n)
		if len(o.Agent) > 0 {
			a.Args = o.Agent
		}
		a.Env = agentEnv
		return a
	}
	var gc *lifecycle.GuestControl
	if o.Backend == qemu.Kind && relay != nil {
		exe, err := os.Executable()
		if err != nil {
			return lifecycle.Config{}, fmt.Errorf("lifecycle: the relay pipe of guests: %w", err)
		}
		gc = &lifecycle.GuestControl{Sockets: relay.Sockets(), Pipe: []string{exe, "relay-pipe"}, Env: map[string]string{"MUSUBI_ROOT": cfg.Chroot()}}
	}
	return lifecycle.Config{
		Site: cfg.Site, Store: env.Store, Backends: backends, Volumes: volumes, Attacher: att, GuestControl: gc,
		Ports: ports, PortGuard: guard, Images: lifecycle.ImagesFromStore(image.Store{Dir: o.ImagesDir}),
		Agent: agent, AgentSecret: env.AgentSecret, StateDir: filepath.Join(o.StateDir, "lifecycle"), Network: net,
		Parallel: o.Parallel, Logger: log,
	}, nil
}

// agentServers is the ensemble as agents should try it: the site's own
// server first.
func agentServers(local string, servers []string) []string {
	out := []string{}
	if local != "" {
		out = append(out, local)
	}
	for _, s := range servers {
		if s != local {
			out = append(out, s)
		}
	}
	return out
}

// nodeRelay is the ZooKeeper relay netns nodes' agents use (node/zkrelay):
// their namespaces have no route to the ensemble.
func nodeRelay(env Env, o LifecycleOptions) (*zkrelay.Relay, error) {
	cfg := env.Config
	return zkrelay.New(zkrelay.Config{Dir: filepath.Join(o.stateDir(), "zk"),
		Servers: agentServers(cfg.ZooKeeper.Local, cfg.ZooKeeper.Servers), Logger: env.Logger})
}

func (o LifecycleOptions) stateDir() string {
	if o.StateDir == "" {
		return "/var/lib/musubi/provision"
	}
	return o.StateDir
}

// runLifecycle is the provisioner subsystem's Run.
func runLifecycle(ctx context.Context, env Env, o LifecycleOptions) error {
	relay, err := nodeRelay(env, o)
	if err != nil {
		return fmt.Errorf("lifecycle: %w", err)
	}
	lc, err := lifecycleConfig(ctx, env, o, relay)
	if err != nil {
		return err
	}
	r, err := lifecycle.New(lc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	relayDone := make(chan error, 1)
	relayUp := make(chan struct{})
	if relay != nil {
		go func() { relayDone <- relay.Run(ctx, func() { close(relayUp) }) }()
		select {
		case <-relayUp:
		case err := <-relayDone:
			return fmt.Errorf("lifecycle: node relay: %w", err)
		}
	} else {
		relayDone <- nil
	}
	env.Ready(true)
	defer env.Ready(false)
	start := time.Now()
	err = r.Run(ctx)
	env.Logger.Info("provisioner stopped", "ran", time.Since(start).Round(time.Second), "stats", fmt.Sprintf("%+v", r.Stats()))
	cancel()
	return errors.Join(err, <-relayDone)
}
