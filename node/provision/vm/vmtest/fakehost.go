package vmtest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
)

// FakeHost is a simulated host behind the vm.Runner seam: it understands
// the iproute2, ethtool, sysctl and QEMU command lines the backends run
// (network namespaces, veth pairs, taps, processes), records every command,
// and can fail chosen commands. Unknown commands succeed with no output.
type FakeHost struct {
	mu       sync.Mutex
	log      []string
	netns    map[string]bool
	links    map[string]string // "<netns>|<name>" -> kind ("veth", "tap")
	peers    map[string]string // veth end key -> other end key
	procs    map[int]*FakeProc
	nextPID  int
	failures []failure
	// OnRun, when set, is called for every command before the simulation
	// and may answer it (handled true) with output or an error.
	OnRun func(c vm.Cmd) (out []byte, handled bool, err error)
	// OnStart, when set, is called for every started process.
	OnStart func(c vm.Cmd, p *FakeProc)
}

// FakeProc is a simulated process.
type FakeProc struct {
	Proc  vm.Proc
	Cmd   vm.Cmd
	Alive bool
	// IgnoreTERM makes the process survive SIGTERM (SIGKILL still works).
	IgnoreTERM bool
}

type failure struct {
	substr string
	times  int
	err    error
}

// NewFakeHost returns an empty host.
func NewFakeHost() *FakeHost {
	return &FakeHost{netns: map[string]bool{}, links: map[string]string{}, peers: map[string]string{},
		procs: map[int]*FakeProc{}, nextPID: 1000}
}

var _ vm.Runner = (*FakeHost)(nil)

// FailOn makes the next times commands whose rendering contains substr
// fail with a *vm.CmdError carrying stderr.
func (h *FakeHost) FailOn(substr string, times int, stderr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures = append(h.failures, failure{substr: substr, times: times, err: fmt.Errorf("%s", stderr)})
}

// Commands returns the commands run so far (Run and Start), rendered.
func (h *FakeHost) Commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

// ResetCommands forgets the recorded commands.
func (h *FakeHost) ResetCommands() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = nil
}

// Procs returns the processes ever started.
func (h *FakeHost) Procs() []FakeProc {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []FakeProc
	for _, p := range h.procs {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Proc.PID < out[j].Proc.PID })
	return out
}

// Kill ends a process behind the backend's back (a crash).
func (h *FakeHost) Kill(pid int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.procs[pid]; p != nil {
		p.Alive = false
	}
}

// Leftovers lists what exists on the host: namespaces, links and live
// processes, rendered.
func (h *FakeHost) Leftovers() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for ns := range h.netns {
		out = append(out, "netns "+ns)
	}
	for k, kind := range h.links {
		out = append(out, kind+" "+k)
	}
	for _, p := range h.procs {
		if p.Alive {
			out = append(out, fmt.Sprintf("process %d %s", p.Proc.PID, p.Cmd.String()))
		}
	}
	sort.Strings(out)
	return out
}

// Run implements vm.Runner.
func (h *FakeHost) Run(ctx context.Context, c vm.Cmd) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if h.OnRun != nil {
		if out, ok, err := h.OnRun(c); ok {
			h.mu.Lock()
			h.log = append(h.log, c.String())
			h.mu.Unlock()
			return out, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := c.String()
	h.log = append(h.log, s)
	for i := range h.failures {
		f := &h.failures[i]
		if f.times > 0 && strings.Contains(s, f.substr) {
			f.times--
			return nil, &vm.CmdError{Cmd: s, ExitCode: 1, Stderr: f.err.Error(), Err: fmt.Errorf("exit status 1")}
		}
	}
	fail := func(msg string) ([]byte, error) {
		return nil, &vm.CmdError{Cmd: s, ExitCode: 1, Stderr: msg, Err: fmt.Errorf("exit status 1")}
	}
	if c.Netns != "" && !h.netns[c.Netns] {
		return fail(fmt.Sprintf("Cannot open network namespace %q: No such file or directory", c.Netns))
	}
	if c.Name != "ip" {
		return nil, nil
	}
	a := c.Args
	ns := c.Netns
	if len(a) >= 2 && a[0] == "-n" {
		ns, a = a[1], a[2:]
		if !h.netns[ns] {
			return fail(fmt.Sprintf("Cannot open network namespace %q: No such file or directory", ns))
		}
	}
	key := func(netns, name string) string { return netns + "|" + name }
	switch {
	case len(a) == 3 && a[0] == "netns" && a[1] == "add":
		if h.netns[a[2]] {
			return fail(fmt.Sprintf("Cannot create namespace file \"/run/netns/%s\": File exists", a[2]))
		}
		h.netns[a[2]] = true
	case len(a) == 3 && a[0] == "netns" && a[1] == "del":
		if !h.netns[a[2]] {
			return fail(fmt.Sprintf("Cannot remove namespace file \"/run/netns/%s\": No such file or directory", a[2]))
		}
		delete(h.netns, a[2])
		for k := range h.links {
			if strings.HasPrefix(k, a[2]+"|") {
				h.delLinkLocked(k)
			}
		}
	case len(a) == 2 && a[0] == "netns" && a[1] == "list":
		var b strings.Builder
		names := make([]string, 0, len(h.netns))
		for n := range h.netns {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			fmt.Fprintf(&b, "%s (id: %d)\n", n, i)
		}
		return []byte(b.String()), nil
	case len(a) == 3 && a[0] == "netns" && a[1] == "pids":
		if !h.netns[a[2]] {
			return fail(fmt.Sprintf("Cannot open network namespace %q: No such file or directory", a[2]))
		}
		var b strings.Builder
		for _, p := range h.procs {
			if p.Alive && p.Cmd.Netns == a[2] {
				fmt.Fprintf(&b, "%d\n", p.Proc.PID)
			}
		}
		return []byte(b.String()), nil
	case len(a) >= 3 && a[0] == "link" && a[1] == "add":
		// link add NAME [netns A] type veth peer name P [netns B]
		name, rest := a[2], a[3:]
		nsA := ns
		if len(rest) >= 2 && rest[0] == "netns" {
			nsA, rest = rest[1], rest[2:]
		}
		if len(rest) < 5 || rest[0] != "type" || rest[1] != "veth" || rest[2] != "peer" || rest[3] != "name" {
			return fail("fakehost: unsupported link add")
		}
		peer := rest[4]
		nsB := ns
		if len(rest) >= 7 && rest[5] == "netns" {
			nsB = rest[6]
		}
		if (nsA != "" && !h.netns[nsA]) || (nsB != "" && !h.netns[nsB]) {
			return fail("Invalid \"netns\" value")
		}
		ka, kb := key(nsA, name), key(nsB, peer)
		if _, ok := h.links[ka]; ok {
			return fail("RTNETLINK answers: File exists")
		}
		if _, ok := h.links[kb]; ok {
			return fail("RTNETLINK answers: File exists")
		}
		h.links[ka], h.links[kb] = "veth", "veth"
		h.peers[ka], h.peers[kb] = kb, ka
	case len(a) == 3 && a[0] == "link" && a[1] == "del":
		k := key(ns, a[2])
		if _, ok := h.links[k]; !ok {
			return fail(fmt.Sprintf("Cannot find device %q", a[2]))
		}
		h.delLinkLocked(k)
	case len(a) >= 3 && a[0] == "link" && a[1] == "set":
		if a[2] == "lo" || a[2] == "dev" {
			return nil, nil
		}
		if _, ok := h.links[key(ns, a[2])]; !ok {
			return fail(fmt.Sprintf("Cannot find device %q", a[2]))
		}
	case len(a) >= 3 && a[0] == "link" && a[1] == "show":
		if _, ok := h.links[key(ns, a[len(a)-1])]; !ok {
			return fail(fmt.Sprintf("Device %q does not exist.", a[len(a)-1]))
		}
		return []byte(fmt.Sprintf("7: %s: <BROADCAST,MULTICAST> mtu 1500\n", a[len(a)-1])), nil
	case len(a) >= 6 && a[0] == "tuntap" && a[1] == "add":
		// tuntap add dev T mode tap
		k := key(ns, a[3])
		if _, ok := h.links[k]; ok {
			return fail("ioctl(TUNSETIFF): Device or resource busy")
		}
		h.links[k] = "tap"
	case len(a) >= 4 && a[0] == "tuntap" && a[1] == "del":
		k := key(ns, a[3])
		if _, ok := h.links[k]; !ok {
			return fail("ioctl(TUNSETIFF): No such device")
		}
		h.delLinkLocked(k)
	}
	return nil, nil
}

func (h *FakeHost) delLinkLocked(k string) {
	delete(h.links, k)
	if p, ok := h.peers[k]; ok {
		delete(h.links, p)
		delete(h.peers, p)
		delete(h.peers, k)
	}
}

// HasLink reports whether a link exists in a namespace ("" is the host's).
func (h *FakeHost) HasLink(netns, name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.links[netns+"|"+name]
	return ok
}

// AddNetns creates a namespace (the switch's, for example).
func (h *FakeHost) AddNetns(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.netns[name] = true
}

// RemoveNetns deletes a namespace behind the backend's back.
func (h *FakeHost) RemoveNetns(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.netns, name)
}

// Start implements vm.Runner.
func (h *FakeHost) Start(ctx context.Context, c vm.Cmd) (vm.Proc, error) {
	if err := ctx.Err(); err != nil {
		return vm.Proc{}, err
	}
	h.mu.Lock()
	s := c.String()
	h.log = append(h.log, "start "+s)
	for i := range h.failures {
		f := &h.failures[i]
		if f.times > 0 && strings.Contains("start "+s, f.substr) {
			f.times--
			h.mu.Unlock()
			return vm.Proc{}, &vm.CmdError{Cmd: s, ExitCode: -1, Stderr: f.err.Error(), Err: fmt.Errorf("start failed")}
		}
	}
	if c.Netns != "" && !h.netns[c.Netns] {
		h.mu.Unlock()
		return vm.Proc{}, &vm.CmdError{Cmd: s, ExitCode: -1, Err: fmt.Errorf("netns %s missing", c.Netns)}
	}
	h.nextPID++
	p := &FakeProc{Proc: vm.Proc{PID: h.nextPID, Start: uint64(h.nextPID) * 7}, Cmd: c, Alive: true}
	h.procs[p.Proc.PID] = p
	h.mu.Unlock()
	if h.OnStart != nil {
		h.OnStart(c, p)
	}
	return p.Proc, nil
}

// Alive implements vm.Runner.
func (h *FakeHost) Alive(p vm.Proc) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	fp := h.procs[p.PID]
	return fp != nil && fp.Alive && (p.Start == 0 || p.Start == fp.Proc.Start)
}

// Signal implements vm.Runner.
func (h *FakeHost) Signal(p vm.Proc, sig syscall.Signal) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, "kill -"+strconv.Itoa(int(sig))+" "+strconv.Itoa(p.PID))
	fp := h.procs[p.PID]
	if fp == nil || !fp.Alive || (p.Start != 0 && p.Start != fp.Proc.Start) {
		return nil
	}
	if sig == syscall.SIGKILL || (sig == syscall.SIGTERM && !fp.IgnoreTERM) {
		fp.Alive = false
	}
	return nil
}

// MemPorts is an in-memory provision.PortDriver.
type MemPorts struct {
	mu    sync.Mutex
	ports map[string]provision.Port
	// Foreign names ports that exist and are not musubi's.
	Foreign map[string]bool
}

var _ provision.PortDriver = (*MemPorts)(nil)

// NewMemPorts returns an empty bridge.
func NewMemPorts() *MemPorts {
	return &MemPorts{ports: map[string]provision.Port{}, Foreign: map[string]bool{}}
}

// Ensure implements provision.PortDriver.
func (m *MemPorts) Ensure(ctx context.Context, spec provision.PortSpec) (provision.Port, error) {
	if err := spec.Validate(); err != nil {
		return provision.Port{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Foreign[spec.Name] {
		return provision.Port{}, fmt.Errorf("%w: %s", provision.ErrForeign, spec.Name)
	}
	p := provision.Port{PortSpec: spec, OFPort: int32(len(m.ports) + 1), LinkUp: true}
	m.ports[spec.Name] = p
	return p, nil
}

// Remove implements provision.PortDriver.
func (m *MemPorts) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Foreign[name] {
		return fmt.Errorf("%w: %s", provision.ErrForeign, name)
	}
	delete(m.ports, name)
	return nil
}

// List implements provision.PortDriver.
func (m *MemPorts) List(ctx context.Context) ([]provision.Port, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]provision.Port, 0, len(m.ports))
	for _, p := range m.ports {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Names lists the ports on the bridge.
func (m *MemPorts) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.ports {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
