// Package fakevm is an in-memory vm.Backend for the tests of the backends'
// callers (the lifecycle reconciler): it keeps its nodes in a Host shared
// by every Backend made over it, so a new Backend sees what an earlier one
// started (a restarted peer), and it can crash nodes and fail calls on
// demand. It passes the vmtest contract suite.
package fakevm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/musubi-fabric/musubi/node/provision/vm"
)

// Kind is the backend's name.
const Kind = "fake"

// Host is the simulated machine the nodes run on.
type Host struct {
	mu      sync.Mutex
	nodes   map[string]*node
	nextPID int
	fail    map[string]error // by operation "ensure"/"remove"/"list", once
	calls   []string
}

type node struct {
	st      vm.NodeState
	running bool
}

// NewHost returns an empty host.
func NewHost() *Host { return &Host{nodes: map[string]*node{}, nextPID: 100, fail: map[string]error{}} }

// Config configures a Backend.
type Config struct {
	// Ready tells when a node is ready (nil: at once).
	Ready vm.ReadyFunc
	// ReadyTimeout bounds the wait for Ready (default 10 s).
	ReadyTimeout time.Duration
}

// Backend is a fake node backend over a Host.
type Backend struct {
	h   *Host
	cfg Config
}

var _ vm.Backend = (*Backend)(nil)

// New returns a backend over h.
func New(h *Host, cfg Config) *Backend {
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	return &Backend{h: h, cfg: cfg}
}

// Crash stops a node's process behind the backend's back.
func (h *Host) Crash(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.nodes[name]; n != nil {
		n.running = false
	}
}

// FailNext makes the next call of op ("ensure", "remove" or "list") fail
// with err.
func (h *Host) FailNext(op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail[op] = err
}

// Calls returns the calls made so far ("ensure vc/n", "remove vc/n", "list").
func (h *Host) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// Running returns the names of the running nodes, sorted.
func (h *Host) Running() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name, n := range h.nodes {
		if n.running {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (h *Host) call(op, arg string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, op+" "+arg)
	if err := h.fail[op]; err != nil {
		delete(h.fail, op)
		return err
	}
	return nil
}

// Kind implements vm.Backend.
func (b *Backend) Kind() string { return Kind }

// procs lets vm.WaitReady see the fake's nodes as processes: a node's PID
// is alive while it runs. It runs no commands.
type procs struct{ h *Host }

var _ vm.Runner = procs{}

// Alive implements vm.Runner.
func (p procs) Alive(pr vm.Proc) bool {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	for _, n := range p.h.nodes {
		if n.st.PID == pr.PID {
			return n.running
		}
	}
	return false
}

// Run implements vm.Runner (unsupported).
func (procs) Run(context.Context, vm.Cmd) ([]byte, error) { return nil, errors.ErrUnsupported }

// Start implements vm.Runner (unsupported).
func (procs) Start(context.Context, vm.Cmd) (vm.Proc, error) { return vm.Proc{}, errors.ErrUnsupported }

// Signal implements vm.Runner (no effect).
func (procs) Signal(vm.Proc, syscall.Signal) error { return nil }

// Ensure implements vm.Backend.
func (b *Backend) Ensure(ctx context.Context, spec vm.NodeSpec) (vm.NodeState, error) {
	if err := spec.Validate(); err != nil {
		return vm.NodeState{}, err
	}
	name := spec.Name()
	if err := b.h.call("ensure", name); err != nil {
		return vm.NodeState{}, err
	}
	hash := spec.Hash()
	b.h.mu.Lock()
	n := b.h.nodes[name]
	switch {
	case n != nil && n.st.SpecHash != hash:
		st := n.st
		b.h.mu.Unlock()
		return st, fmt.Errorf("%w: %s", vm.ErrConflict, name)
	case n == nil || !n.running:
		b.h.nextPID++
		n = &node{running: true, st: vm.NodeState{Name: name, VC: spec.VC, Node: spec.Node, Backend: Kind,
			PID: b.h.nextPID, Port: vm.PortName("mf", name), VLAN: spec.VLAN, SpecHash: hash, StartedAt: time.Now().UTC()}}
		b.h.nodes[name] = n
	}
	st := n.st
	st.Running = true
	b.h.mu.Unlock()
	return st, vm.WaitReady(ctx, procs{b.h}, vm.Proc{PID: st.PID}, b.cfg.Ready, st, b.cfg.ReadyTimeout)
}

// Remove implements vm.Backend.
func (b *Backend) Remove(ctx context.Context, name string) error {
	if _, _, err := vm.ParseName(name); err != nil {
		return err
	}
	if err := b.h.call("remove", name); err != nil {
		return err
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	delete(b.h.nodes, name)
	return nil
}

// List implements vm.Backend.
func (b *Backend) List(ctx context.Context) ([]vm.NodeState, error) {
	if err := b.h.call("list", ""); err != nil {
		return nil, err
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	out := make([]vm.NodeState, 0, len(b.h.nodes))
	for _, n := range b.h.nodes {
		st := n.st
		st.Running = n.running
		if !n.running {
			st.Problems = []string{"process not running"}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
