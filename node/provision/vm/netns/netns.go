// Package netns is the lightweight node backend: every virtual node is a
// network namespace named "<prefix><vc>+<node>" whose eth0 is one end of a
// veth pair; the other end sits in the switch's namespace as an access port
// of br-int with the VC's VLAN tag. The node's agent runs inside the
// namespace as a process of its own session (started with "ip netns exec",
// so its PID is the agent's), tracked by PID and start time in the node's
// state directory. Remove stops the agent (SIGTERM, then SIGKILL), kills
// whatever else still runs in the namespace, and deletes the port, the
// veth, the namespace and the state.
//
// The agent's interface has transmit checksum offload off: the OVS
// userspace datapath forwards partially checksummed frames as they are,
// which breaks TCP between nodes.
package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/internal/nodedir"
)

// Kind is the backend's name.
const Kind = "netns"

// DefaultPrefix starts the name of every namespace the backend creates.
const DefaultPrefix = "musubi-"

// PortPrefix starts the name of the veth ends on the switch side.
const PortPrefix = "mv"

// IfName is the node's interface inside its namespace.
const IfName = "eth0"

// agentSocket is the agent's unix socket in the node's state directory.
const agentSocket = "agent.sock"

// Config configures the backend.
type Config struct {
	// StateDir holds one directory per node (absolute).
	StateDir string
	// Runner reaches the host (default vm.ExecRunner{}).
	Runner vm.Runner
	// Ports attaches the switch-side veth ends to br-int (required).
	Ports provision.PortDriver
	// SwitchNetns is the namespace where br-int's ovs-vswitchd runs and the
	// switch-side veth ends go ("" for the peer's own namespace).
	SwitchNetns string
	// Prefix starts every namespace name (default DefaultPrefix); List
	// only looks at namespaces with it.
	Prefix string
	// Ready tells when a node is ready (nil: as soon as its agent runs).
	Ready vm.ReadyFunc
	// ReadyTimeout bounds the wait for Ready (default 60 s).
	ReadyTimeout time.Duration
	// StopGrace is how long Remove waits after SIGTERM (default 5 s).
	StopGrace time.Duration
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// Backend is the netns node backend.
type Backend struct {
	cfg Config
	dir *nodedir.Dir
	log *slog.Logger
}

var _ vm.Backend = (*Backend)(nil)

// record is a node's state file.
type record struct {
	VC, Node  string
	SpecHash  string
	Netns     string
	Port      string
	VLAN      uint16
	Agent     vm.Proc
	StartedAt time.Time
}

// New returns a backend; it creates the state directory.
func New(cfg Config) (*Backend, error) {
	if cfg.Runner == nil {
		cfg.Runner = vm.ExecRunner{}
	}
	if cfg.Ports == nil {
		return nil, fmt.Errorf("%w: netns backend without a port driver", vm.ErrInvalid)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := nodedir.New(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", vm.ErrInvalid, err)
	}
	// The agents' sockets are the nodes' users' way to qsub: reachable by
	// everyone (the agent tells users apart by their credentials).
	if err := d.EnsurePublic(); err != nil {
		return nil, fmt.Errorf("%w: %v", vm.ErrInvalid, err)
	}
	return &Backend{cfg: cfg, dir: d, log: cfg.Logger.With("backend", Kind)}, nil
}

// Kind implements vm.Backend.
func (b *Backend) Kind() string { return Kind }

// NetnsName is the namespace of a node.
func (b *Backend) NetnsName(vc, node string) string { return b.cfg.Prefix + vc + "+" + node }

// AgentSocket is the unix socket of a node's agent: the
// MUSUBI_AGENT_SOCKET of the Grid Engine commands run in the node.
func (b *Backend) AgentSocket(vc, node string) string {
	return b.dir.PublicSocketPath(vc, node, agentSocket)
}

// AgentSocketIn is AgentSocket for the backend whose Config.StateDir is
// stateDir, without making one (for tools beside the peer).
func AgentSocketIn(stateDir, vc, node string) string {
	return (&nodedir.Dir{Root: stateDir}).PublicSocketPath(vc, node, agentSocket)
}

// NodeDirIn is a node's state directory under stateDir.
func NodeDirIn(stateDir, vc, node string) string {
	return (&nodedir.Dir{Root: stateDir}).NodeDir(vc, node)
}

func (b *Backend) run(ctx context.Context, netns, name string, args ...string) ([]byte, error) {
	return b.cfg.Runner.Run(ctx, vm.Cmd{Netns: netns, Name: name, Args: args})
}

// ipIn runs "ip -n ns ..." (or plain "ip ..." for the peer's namespace).
func (b *Backend) ipIn(ctx context.Context, ns string, args ...string) ([]byte, error) {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return b.run(ctx, "", "ip", args...)
}

func (b *Backend) state(rec record, running bool) vm.NodeState {
	return vm.NodeState{
		Name: vm.NodeName(rec.VC, rec.Node), VC: rec.VC, Node: rec.Node, Backend: Kind,
		Running: running, PID: rec.Agent.PID, Port: rec.Port, VLAN: rec.VLAN, Netns: rec.Netns,
		Log: b.dir.Path(rec.VC, rec.Node, "agent.log"), StartedAt: rec.StartedAt, SpecHash: rec.SpecHash,
	}
}

// Ensure implements vm.Backend.
func (b *Backend) Ensure(ctx context.Context, spec vm.NodeSpec) (vm.NodeState, error) {
	if err := spec.Validate(); err != nil {
		return vm.NodeState{}, err
	}
	if len(spec.Agent.Args) == 0 || spec.Agent.Args[0] == "" {
		return vm.NodeState{}, fmt.Errorf("%w: %s: no agent command", vm.ErrInvalid, spec.Name())
	}
	unlock := b.dir.Lock(spec.VC, spec.Node)
	defer unlock()
	hash := spec.Hash()
	var rec record
	found, err := b.dir.Load(spec.VC, spec.Node, &rec)
	if err != nil {
		return vm.NodeState{}, err
	}
	if found && rec.SpecHash != hash {
		return b.state(rec, b.cfg.Runner.Alive(rec.Agent)), fmt.Errorf("%w: %s", vm.ErrConflict, spec.Name())
	}
	alive := found && b.cfg.Runner.Alive(rec.Agent)
	if alive {
		if alive, err = b.netnsExists(ctx, rec.Netns); err != nil {
			return vm.NodeState{}, err
		}
	}
	if alive {
		// Running: make sure its port is still on the bridge, then wait
		// for readiness again (cheap when it is ready).
		if err := b.ensurePort(ctx, spec, rec.Port); err != nil {
			return b.state(rec, true), err
		}
		st := b.state(rec, true)
		return st, vm.WaitReady(ctx, b.cfg.Runner, rec.Agent, b.cfg.Ready, st, b.cfg.ReadyTimeout)
	}
	if found {
		b.log.Info("node process or namespace gone; rebuilding", "node", spec.Name(), "pid", rec.Agent.PID)
	}
	// Fresh start, or a rebuild after a crash or an interrupted Ensure:
	// clear whatever is left, then build it all.
	if err := b.teardown(ctx, spec.VC, spec.Node, rec); err != nil {
		return vm.NodeState{}, err
	}
	rec = record{VC: spec.VC, Node: spec.Node, SpecHash: hash, Netns: b.NetnsName(spec.VC, spec.Node),
		Port: vm.PortName(PortPrefix, spec.Name()), VLAN: spec.VLAN}
	// The record goes first, so a crash from here on leaves a trace that
	// List reports and Remove clears.
	if err := b.dir.Save(spec.VC, spec.Node, rec); err != nil {
		return vm.NodeState{}, err
	}
	t0 := time.Now()
	if err := b.buildNet(ctx, spec, rec); err != nil {
		return b.state(rec, false), err
	}
	env := b.agentEnv(spec)
	p, err := b.cfg.Runner.Start(ctx, vm.Cmd{Netns: rec.Netns, Name: spec.Agent.Args[0], Args: spec.Agent.Args[1:],
		Env: env, Dir: b.dir.NodeDir(spec.VC, spec.Node), Log: b.dir.Path(spec.VC, spec.Node, "agent.log")})
	if p.PID > 0 {
		rec.Agent = p
		rec.StartedAt = time.Now().UTC()
		if serr := b.dir.Save(spec.VC, spec.Node, rec); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return b.state(rec, false), err
	}
	b.log.Info("node started", "node", spec.Name(), "netns", rec.Netns, "port", rec.Port, "vlan", spec.VLAN,
		"pid", p.PID, "took", time.Since(t0).Round(time.Millisecond))
	st := b.state(rec, true)
	return st, vm.WaitReady(ctx, b.cfg.Runner, p, b.cfg.Ready, st, b.cfg.ReadyTimeout)
}

// agentEnv is the agent's environment: PATH, the node's identity, a unix
// socket and a spool directory of its own in its state directory (agents
// of netns nodes share the host's file system), then the spec's variables,
// which win.
func (b *Backend) agentEnv(spec vm.NodeSpec) []string {
	vars := map[string]string{
		"PATH":                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"MUSUBI_VC":           spec.VC,
		"MUSUBI_NODE":         spec.Node,
		"MUSUBI_AGENT_SOCKET": b.AgentSocket(spec.VC, spec.Node),
		"MUSUBI_SPOOL":        b.dir.PublicPath(spec.VC, spec.Node, "spool"), // job users read their scripts there
	}
	for k, v := range spec.Agent.Env {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// buildNet creates the namespace, the veth pair and the port.
func (b *Backend) buildNet(ctx context.Context, spec vm.NodeSpec, rec record) error {
	if _, err := b.run(ctx, "", "ip", "netns", "add", rec.Netns); err != nil {
		return err
	}
	sw := b.cfg.SwitchNetns
	add := []string{"link", "add", rec.Port}
	if sw != "" {
		add = append(add, "netns", sw)
	}
	add = append(add, "type", "veth", "peer", "name", IfName, "netns", rec.Netns)
	if _, err := b.run(ctx, "", "ip", add...); err != nil {
		return err
	}
	ns := rec.Netns
	steps := [][]string{
		{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf." + IfName + ".disable_ipv6=1"},
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", IfName, "address", spec.MAC.String(), "mtu", strconv.Itoa(spec.MTUOrDefault())},
		{"ip", "addr", "add", spec.Addr.String(), "dev", IfName},
		{"ethtool", "-K", IfName, "tx", "off"},
		{"ip", "link", "set", IfName, "up"},
	}
	if spec.Gateway.IsValid() {
		steps = append(steps, []string{"ip", "route", "add", "default", "via", spec.Gateway.String()})
	}
	for _, s := range steps {
		if _, err := b.run(ctx, ns, s[0], s[1:]...); err != nil {
			return err
		}
	}
	if _, err := b.run(ctx, sw, "sysctl", "-qw", "net.ipv6.conf."+rec.Port+".disable_ipv6=1"); err != nil {
		return err
	}
	if _, err := b.ipIn(ctx, sw, "link", "set", rec.Port, "mtu", strconv.Itoa(spec.MTUOrDefault()), "up"); err != nil {
		return err
	}
	return b.ensurePort(ctx, spec, rec.Port)
}

func (b *Backend) ensurePort(ctx context.Context, spec vm.NodeSpec, port string) error {
	_, err := b.cfg.Ports.Ensure(ctx, provision.PortSpec{Name: port, VC: spec.VC, VLAN: spec.VLAN, MAC: spec.MAC, IP: spec.Addr.Addr()})
	if err != nil {
		return fmt.Errorf("vm: %s: port %s: %w", spec.Name(), port, err)
	}
	return nil
}

// Remove implements vm.Backend.
func (b *Backend) Remove(ctx context.Context, name string) error {
	vc, node, err := vm.ParseName(name)
	if err != nil {
		return err
	}
	unlock := b.dir.Lock(vc, node)
	defer unlock()
	var rec record
	if _, err := b.dir.Load(vc, node, &rec); err != nil {
		return err
	}
	if err := b.teardown(ctx, vc, node, rec); err != nil {
		return err
	}
	if err := b.dir.Remove(vc, node, agentSocket); err != nil {
		return err
	}
	if err := os.Remove(b.AgentSocket(vc, node)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("vm: %s: %w", name, err)
	}
	if err := os.RemoveAll(b.dir.PublicPath(vc, node, "spool")); err != nil {
		return fmt.Errorf("vm: %s: %w", name, err)
	}
	b.log.Info("node removed", "node", name)
	return nil
}

// teardown stops the agent and deletes the namespace, veth and port of a
// node, whether or not it has a record (names are derived from the node's
// name); missing pieces are fine.
func (b *Backend) teardown(ctx context.Context, vc, node string, rec record) error {
	var errs []error
	if rec.Agent.PID > 0 {
		errs = append(errs, vm.StopProc(ctx, b.cfg.Runner, rec.Agent, b.cfg.StopGrace))
	}
	ns := b.NetnsName(vc, node)
	exists, err := b.netnsExists(ctx, ns)
	if err != nil {
		return err
	}
	if exists {
		errs = append(errs, b.killAllIn(ctx, ns))
	}
	port := vm.PortName(PortPrefix, vm.NodeName(vc, node))
	if err := b.cfg.Ports.Remove(ctx, port); err != nil {
		errs = append(errs, fmt.Errorf("vm: %s/%s: port %s: %w", vc, node, port, err))
	}
	if _, err := b.ipIn(ctx, b.cfg.SwitchNetns, "link", "del", port); err != nil && !missing(err) {
		errs = append(errs, err)
	}
	if exists {
		if _, err := b.run(ctx, "", "ip", "netns", "del", ns); err != nil && !missing(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killAllIn stops every process left in the namespace (the agent's jobs):
// SIGTERM, a short wait, then SIGKILL.
func (b *Backend) killAllIn(ctx context.Context, ns string) error {
	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		out, err := b.run(ctx, "", "ip", "netns", "pids", ns)
		if err != nil {
			if missing(err) {
				return nil
			}
			return err
		}
		var procs []vm.Proc
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				procs = append(procs, vm.Proc{PID: pid})
			}
		}
		if len(procs) == 0 {
			return nil
		}
		for _, p := range procs {
			if err := b.cfg.Runner.Signal(p, sig); err != nil {
				return err
			}
		}
		wait := b.cfg.StopGrace
		if round == 1 {
			wait = 5 * time.Second
		}
		allGone := true
		for _, p := range procs {
			if !vm.WaitGone(ctx, b.cfg.Runner, p, wait) {
				allGone = false
			}
		}
		if allGone {
			return nil
		}
	}
	return fmt.Errorf("vm: processes left in namespace %s after SIGKILL", ns)
}

func missing(err error) bool {
	s := vm.StderrOf(err)
	return strings.Contains(s, "Cannot find device") || strings.Contains(s, "No such file") ||
		strings.Contains(s, "does not exist")
}

// namespaces lists the backend's namespaces by name.
func (b *Backend) namespaces(ctx context.Context) (map[string]bool, error) {
	out, err := b.run(ctx, "", "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	res := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], b.cfg.Prefix) {
			res[f[0]] = true
		}
	}
	return res, nil
}

func (b *Backend) netnsExists(ctx context.Context, ns string) (bool, error) {
	all, err := b.namespaces(ctx)
	if err != nil {
		return false, err
	}
	return all[ns], nil
}

// List implements vm.Backend: the nodes with a state directory, plus
// namespaces with the prefix that have none (leftovers of an interrupted
// build), each with its problems.
func (b *Backend) List(ctx context.Context) ([]vm.NodeState, error) {
	nss, err := b.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := b.cfg.Ports.List(ctx)
	if err != nil {
		return nil, err
	}
	onBridge := map[string]bool{}
	for _, p := range ports {
		onBridge[p.Name] = true
	}
	nodes, err := b.dir.Nodes()
	if err != nil {
		return nil, err
	}
	var out []vm.NodeState
	for _, n := range nodes {
		var rec record
		found, err := b.dir.Load(n[0], n[1], &rec)
		if err != nil {
			return nil, err
		}
		if !found {
			rec = record{VC: n[0], Node: n[1], Netns: b.NetnsName(n[0], n[1]), Port: vm.PortName(PortPrefix, vm.NodeName(n[0], n[1]))}
		}
		st := b.state(rec, b.cfg.Runner.Alive(rec.Agent))
		if !found {
			st.Problems = append(st.Problems, "no state record")
		}
		if !st.Running {
			st.Problems = append(st.Problems, "agent not running")
		}
		if !nss[rec.Netns] {
			st.Problems = append(st.Problems, "namespace missing")
		}
		if !onBridge[rec.Port] {
			st.Problems = append(st.Problems, "port missing")
		}
		delete(nss, rec.Netns)
		out = append(out, st)
	}
	for ns := range nss {
		rest := strings.TrimPrefix(ns, b.cfg.Prefix)
		vc, node, ok := strings.Cut(rest, "+")
		if !ok {
			continue
		}
		if _, _, err := vm.ParseName(vm.NodeName(vc, node)); err != nil {
			continue
		}
		out = append(out, vm.NodeState{Name: vm.NodeName(vc, node), VC: vc, Node: node, Backend: Kind, Netns: ns,
			Port: vm.PortName(PortPrefix, vm.NodeName(vc, node)), Problems: []string{"namespace without state"}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
