package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// forEach runs f for every item, at most n at a time, and joins the
// errors. It stops starting new items once ctx ends.
func forEach[T any](ctx context.Context, n int, items []T, f func(T) error) error {
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// progress is the status of a share being worked on, written as it
// changes.
type progress struct {
	r  *Reconciler
	mu sync.Mutex
	s  Status
	// quiet: the share was ready already (a resync): the status is
	// written only if something changes.
	quiet bool
	gone  bool
}

func (p *progress) write(ctx context.Context) {
	if p.gone {
		return
	}
	p.s.Updated = p.r.cfg.Clock.Now().UTC()
	err := writeStatus(ctx, p.r.cfg.Store, p.s)
	if errors.Is(err, ErrGone) {
		p.gone = true
		return
	}
	if err != nil && ctx.Err() == nil {
		p.r.log.Warn("cannot write the VC's status", "vc", p.s.VC, "err", err)
	}
}

func (p *progress) nodeReady(ctx context.Context, node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Contains(p.s.Ready, node) {
		return
	}
	p.s.Ready = append(p.s.Ready, node)
	sort.Strings(p.s.Ready)
	p.s.NodesReady = len(p.s.Ready)
	if !p.quiet {
		p.write(ctx)
	}
}

// up builds the share of t and waits until every node is ready.
func (r *Reconciler) up(ctx context.Context, t target) error {
	plan := t.plan
	log := r.log.With("vc", plan.VC)
	now := r.cfg.Clock.Now().UTC()
	old, found, err := ReadStatus(ctx, r.cfg.Store, plan.VC, r.cfg.Site)
	if err != nil {
		return err
	}
	p := &progress{r: r, s: Status{
		Site: r.cfg.Site, VC: plan.VC, RequestID: plan.RequestID, State: StateProvisioning,
		Nodes: len(plan.Nodes), WindowStart: plan.Window.Start.UTC(), Started: now, Failures: t.failures,
	}}
	if found && old.RequestID == plan.RequestID {
		if !old.Started.IsZero() {
			p.s.Started = old.Started
		}
		p.s.ReadyAt = old.ReadyAt
		p.quiet = old.State == StateReady
	}
	if !p.quiet {
		log.Info("building the VC's share", "nodes", len(plan.Nodes), "window", plan.Window.String(), "attempt", t.failures+1)
		p.write(ctx)
	}
	if p.gone {
		return fmt.Errorf("%w: %s", ErrGone, plan.VC)
	}
	var img Image
	if r.needsImage(plan) {
		if r.cfg.Images == nil {
			err = fmt.Errorf("%w: no image resolver configured for %q", ErrImage, plan.Nodes[0].Image)
		} else {
			img, err = r.cfg.Images(ctx, plan.Nodes[0].Image)
		}
		if err != nil {
			return r.upFailed(ctx, p, t, err)
		}
	}
	t0 := time.Now()
	err = forEach(ctx, r.cfg.Parallel, plan.Nodes, func(n NodePlan) error {
		if err := r.buildNode(ctx, n, img); err != nil {
			return fmt.Errorf("%s: %w", n.Name(), err)
		}
		p.nodeReady(ctx, n.Node)
		return nil
	})
	// Nodes of this VC the host has but the plan lacks go.
	var extra []string
	for node := range t.held {
		if node != "" && !slices.ContainsFunc(plan.Nodes, func(n NodePlan) bool { return n.Node == node }) {
			extra = append(extra, node)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 && err == nil {
		err = forEach(ctx, r.cfg.Parallel, extra, func(node string) error {
			return r.removeNode(ctx, plan.VC, node, nil, t.held[node])
		})
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.upFailed(ctx, p, t, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	wasReady := p.quiet
	p.s.State, p.s.Message, p.s.Failures = StateReady, "", 0
	if p.s.ReadyAt.IsZero() {
		p.s.ReadyAt = r.cfg.Clock.Now().UTC()
	}
	if !wasReady || !sameReady(old, p.s) {
		p.write(ctx)
		log.Info("the VC's share is ready", "nodes", len(plan.Nodes), "took", time.Since(t0).Round(time.Millisecond),
			"since_window_start", p.s.ReadyAt.Sub(plan.Window.Start).Round(time.Millisecond))
	}
	return nil
}

func sameReady(a, b Status) bool {
	return a.State == b.State && a.NodesReady == b.NodesReady && a.Nodes == b.Nodes && a.Message == b.Message
}

// upFailed records a failed build in the status and returns err.
func (r *Reconciler) upFailed(ctx context.Context, p *progress, t target, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.s.Failures = t.failures + 1
	p.s.State = StateProvisioning
	if p.s.Failures >= r.cfg.FailAfter {
		p.s.State = StateFailed
	}
	p.s.Message = shorten(err.Error(), 600)
	p.quiet = false
	p.write(ctx)
	return err
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// needsImage reports whether building the plan needs the image: a volume
// to clone, or a QEMU guest to boot.
func (r *Reconciler) needsImage(plan VCPlan) bool {
	for _, n := range plan.Nodes {
		if n.HasDisk() {
			return true
		}
		if b, ok := r.cfg.Backends[n.Host]; ok && opensDisks(b) {
			return true
		}
	}
	return false
}

// buildNode makes one node exist and waits until it is ready: volume,
// secret, node record, attachment, node.
func (r *Reconciler) buildNode(ctx context.Context, n NodePlan, img Image) error {
	backend, ok := r.cfg.Backends[n.Host]
	if !ok {
		return fmt.Errorf("%w: compute host %s", ErrNoDriver, n.Host)
	}
	name := n.Name()
	var vol *provision.Volume
	if n.HasDisk() {
		drv, ok := r.cfg.Volumes[n.Storage]
		if !ok {
			return fmt.Errorf("%w: storage host %s", ErrNoDriver, n.Storage)
		}
		if img.RootDisk == "" {
			return fmt.Errorf("%w: image %q has no root disk", ErrImage, n.Image)
		}
		secret, err := r.secrets.Load(n.VC, n.Node)
		if err != nil {
			return err
		}
		v, err := drv.Ensure(ctx, provision.VolumeSpec{
			VC: n.VC, Node: n.Node, Image: img.RootDisk, Size: n.DiskBytes,
			InitiatorName: InitiatorIQN(r.cfg.Site, n.VC, n.Node), CHAPSecret: secret,
		})
		if err != nil {
			return fmt.Errorf("volume: %w", err)
		}
		if v.CHAPSecret != "" && v.CHAPSecret != secret {
			if err := r.secrets.Save(n.VC, n.Node, v.CHAPSecret); err != nil {
				return err
			}
		}
		vol = &v
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	port := portName(backend, name)
	rec := NodeRecord{
		NodeRecord: overlayctl.NodeRecord{Node: n.Node, VC: n.VC, Site: r.cfg.Site, Port: port, VLAN: n.VLAN, MAC: n.MAC, IP: n.Addr.Addr()},
		State:      NodeBuilding, Host: n.Host, Storage: n.Storage, Backend: backend.Kind(), Frontend: n.Frontend, RequestID: n.RequestID,
	}
	if old, found, err := ReadNode(ctx, r.cfg.Store, n.VC, n.Node); err != nil {
		return err
	} else if found && old.State == NodeReady && old.RequestID == n.RequestID {
		rec.State, rec.ReadyAt = NodeReady, old.ReadyAt
	}
	// The record precedes the port: the overlay removes ports its records
	// do not account for.
	if err := writeNode(ctx, r.cfg.Store, rec); err != nil {
		return err
	}
	if g := r.cfg.PortGuard; g != nil {
		g.publish(port)
	}
	spec := vm.NodeSpec{VC: n.VC, Node: n.Node, VLAN: n.VLAN, MAC: n.MAC, Addr: n.Addr, MTU: n.MTU,
		MemoryMiB: int(n.MemoryMiB), VCPUs: int(n.VCPUs)}
	if opensDisks(backend) {
		if img.Kernel == "" || img.Initrd == "" {
			return fmt.Errorf("%w: image %q has no kernel to boot", ErrImage, n.Image)
		}
		spec.Boot = vm.Boot{Kernel: img.Kernel, Initrd: img.Initrd}
		if vol != nil {
			spec.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: vol.Portal, Target: vol.Target, LUN: vol.LUN,
				Initiator: InitiatorIQN(r.cfg.Site, n.VC, n.Node), User: vol.CHAPUser, Secret: r.secretOf(n, vol)}}
		}
		if err := r.guestControl(n, &spec); err != nil {
			return err
		}
	} else {
		ag := r.cfg.Agent(n)
		spec.Agent = vm.Agent{Args: ag.Args, Env: maps.Clone(ag.Env)}
		if spec.Agent.Env == nil {
			spec.Agent.Env = map[string]string{}
		}
		spec.Agent.Env["MUSUBI_SITE"] = r.cfg.Site
		spec.Agent.Env["MUSUBI_IP"] = n.Addr.String()
		// The node's reservation is what its agent offers to jobs (a
		// guest's agent sees its own CPUs and memory).
		if n.VCPUs > 0 {
			spec.Agent.Env["MUSUBI_SLOTS"] = strconv.FormatInt(int64(n.VCPUs), 10)
		}
		if n.MemoryMiB > 0 {
			spec.Agent.Env["MUSUBI_MEMORY"] = strconv.FormatInt(int64(n.MemoryMiB), 10) + "M"
		}
		path, err := r.agentSecret(n)
		if err != nil {
			return err
		}
		if path != "" {
			spec.Agent.Env["MUSUBI_AGENT_SECRET"] = path
		}
		if vol != nil {
			if r.cfg.Attacher == nil {
				return fmt.Errorf("%w: %s backend needs an attacher for the node's volume", ErrAttach, backend.Kind())
			}
			at, err := r.cfg.Attacher.Ensure(ctx, AttachSpec{VC: n.VC, Node: n.Node, Portal: vol.Portal, Target: vol.Target,
				LUN: vol.LUN, Initiator: InitiatorIQN(r.cfg.Site, n.VC, n.Node), User: vol.CHAPUser, Secret: r.secretOf(n, vol)})
			if err != nil {
				return err
			}
			spec.Agent.Env["MUSUBI_DISK"] = at.URL
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := backend.Ensure(ctx, spec)
	if errors.Is(err, vm.ErrConflict) {
		// Another spec (a new secret after a lost one, for example):
		// start it afresh.
		r.log.Info("node runs with another spec; replacing it", "node", name)
		if err := backend.Remove(ctx, name); err != nil {
			return err
		}
		st, err = backend.Ensure(ctx, spec)
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if st.Port != "" && st.Port != rec.Port {
		rec.Port = st.Port
	}
	if rec.State != NodeReady {
		rec.State, rec.ReadyAt = NodeReady, r.cfg.Clock.Now().UTC()
	}
	return writeNode(ctx, r.cfg.Store, rec)
}

// secretOf is the node's CHAP secret: the one the driver just returned,
// else the stored one.
func (r *Reconciler) secretOf(n NodePlan, vol *provision.Volume) string {
	if vol.CHAPSecret != "" {
		return vol.CHAPSecret
	}
	s, _ := r.secrets.Load(n.VC, n.Node)
	return s
}

// down destroys everything of t's VC on this site, then records the end
// and, once every site has, purges the reservation.
func (r *Reconciler) down(ctx context.Context, t target) error {
	vc := t.vc
	plan := t.plan
	log := r.log.With("vc", vc)
	byNode := map[string]*NodePlan{}
	var nodes []string
	for i := range plan.Nodes {
		byNode[plan.Nodes[i].Node] = &plan.Nodes[i]
		nodes = append(nodes, plan.Nodes[i].Node)
	}
	for node := range t.held {
		if node != "" && byNode[node] == nil {
			nodes = append(nodes, node)
		}
	}
	sort.Strings(nodes)
	var p *progress
	if t.rec != nil {
		p = &progress{r: r, s: Status{Site: r.cfg.Site, VC: vc, RequestID: plan.RequestID, State: StateTearingDown,
			Nodes: len(plan.Nodes), WindowStart: plan.Window.Start.UTC()}}
		if old, found, err := ReadStatus(ctx, r.cfg.Store, vc, r.cfg.Site); err != nil {
			return err
		} else if found && old.RequestID == plan.RequestID {
			p.s.Started, p.s.ReadyAt = old.Started, old.ReadyAt
			if old.State == StateEnded {
				p.s = old
				p.quiet = true
			}
		}
		if !p.quiet {
			p.write(ctx)
		}
	}
	if len(nodes) > 0 || len(t.held) > 0 {
		log.Info("tearing the VC's share down", "nodes", len(nodes), "reason", t.key)
	}
	err := forEach(ctx, r.cfg.Parallel, nodes, func(node string) error {
		return r.removeNode(ctx, vc, node, byNode[node], t.held[node])
	})
	if err == nil {
		err = r.sweepPorts(ctx, vc)
	}
	r.secrets.removeVCDir(vc)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p != nil {
			p.s.Message = shorten(err.Error(), 600)
			p.write(ctx)
		}
		return err
	}
	if p == nil {
		return nil
	}
	if !p.quiet || p.s.State != StateEnded {
		p.s.State, p.s.Message, p.s.NodesReady, p.s.Ready = StateEnded, "", 0, nil
		p.s.Ended = r.cfg.Clock.Now().UTC()
		p.quiet = false
		p.write(ctx)
		log.Info("the VC's share is gone", "nodes", len(nodes))
	}
	if p.gone {
		// The subtree is gone: a purge started (by this peer before a
		// crash, or by another site's) and must be finished.
		return r.purge(ctx, *t.rec, plan)
	}
	return r.maybePurge(ctx, *t.rec, plan)
}

// removeNode removes one node and everything it holds here: its record
// (first: the overlay then lets its port go), the node, its attachment,
// its volume and its secret.
func (r *Reconciler) removeNode(ctx context.Context, vc, node string, n *NodePlan, h *held) error {
	name := vc + "/" + node
	if err := deleteNode(ctx, r.cfg.Store, vc, node, r.cfg.Site); err != nil {
		return err
	}
	hosts := map[string]bool{}
	stores := map[string]bool{}
	if n != nil {
		hosts[n.Host] = true
		if n.Storage != "" {
			stores[n.Storage] = true
		}
	}
	if h != nil {
		for _, x := range h.backends {
			hosts[x] = true
		}
		for _, x := range h.volumes {
			stores[x] = true
		}
	}
	if g := r.cfg.PortGuard; g != nil {
		// The record is gone: the node's port may go too.
		for _, b := range r.cfg.Backends {
			g.withdraw(portName(b, name))
		}
	}
	var errs []error
	for _, host := range sortedKeys(hosts) {
		if b, ok := r.cfg.Backends[host]; ok {
			if err := b.Remove(ctx, name); err != nil {
				errs = append(errs, fmt.Errorf("%s: node: %w", name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err // the node may still use its disk: keep it
	}
	if r.cfg.Attacher != nil && ((h != nil && h.attached) || (n != nil && n.HasDisk())) {
		if err := r.cfg.Attacher.Remove(ctx, name); err != nil {
			return fmt.Errorf("%s: attachment: %w", name, err)
		}
	}
	for _, sh := range sortedKeys(stores) {
		if d, ok := r.cfg.Volumes[sh]; ok {
			if err := d.Remove(ctx, name); err != nil {
				errs = append(errs, fmt.Errorf("%s: volume: %w", name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return r.secrets.Delete(vc, node)
}

// sweepPorts removes the VC's ports the backends left on the bridge.
func (r *Reconciler) sweepPorts(ctx context.Context, vc string) error {
	if r.cfg.Ports == nil {
		return nil
	}
	ports, err := r.cfg.Ports.List(ctx)
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}
	var errs []error
	for _, p := range ports {
		if p.VC == vc {
			r.log.Info("removing a leftover port", "vc", vc, "port", p.Name)
			if err := r.cfg.Ports.Remove(ctx, p.Name); err != nil && !errors.Is(err, provision.ErrForeign) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// maybePurge purges the reservation once every site of its placement has
// recorded the end of its share, or if a purge is already under way.
func (r *Reconciler) maybePurge(ctx context.Context, rec reserve.Record, plan VCPlan) error {
	// Purge deletes the VC's subtree in name order, its spec before the
	// sites' status records: a reservation without its spec is being
	// purged, and the sites' records may already be gone.
	ok, _, err := r.cfg.Store.Exists(ctx, coord.VCSpecPath(rec.VC))
	if err != nil {
		return err
	}
	if ok {
		for _, site := range plan.Sites {
			s, found, err := ReadStatus(ctx, r.cfg.Store, rec.VC, site)
			if err != nil {
				return err
			}
			if !found || s.State != StateEnded || s.RequestID != rec.RequestID {
				return nil // that site's peer purges when it is done
			}
		}
	}
	return r.purge(ctx, rec, plan)
}

// purge purges the reservation (again, if a purge was interrupted).
func (r *Reconciler) purge(ctx context.Context, rec reserve.Record, plan VCPlan) error {
	err := r.cfg.Reserver.Purge(ctx, rec.VC)
	switch {
	case err == nil:
		r.purges.Add(1)
		r.log.Info("reservation purged", "vc", rec.VC, "sites", plan.Sites)
		return nil
	case errors.Is(err, reserve.ErrNotFound):
		return nil // another site purged it
	case errors.Is(err, reserve.ErrActive):
		// Cancelled reservations are purgeable at once; an ended one may
		// look active to a reserver whose clock lags: retried later.
		return fmt.Errorf("purge %s: %w", rec.VC, err)
	}
	return fmt.Errorf("purge %s: %w", rec.VC, err)
}

// agentSecret writes the credentials file of n's agent and returns its
// path ("" without Config.AgentSecret).
func (r *Reconciler) agentSecret(n NodePlan) (string, error) {
	if r.cfg.AgentSecret == nil {
		return "", nil
	}
	data, err := r.cfg.AgentSecret(n.VC)
	if err != nil {
		return "", fmt.Errorf("lifecycle: credentials of %s's agents: %w", n.VC, err)
	}
	return r.secrets.SaveAgent(n.VC, n.Node, data)
}

// guestControlPort is the port of the ZooKeeper forwards in a guest.
const guestControlPort = 2181

// guestControl gives a QEMU guest its control channel (Config.GuestControl):
// one forward per relay socket at 10.0.2.100, .101, ... and the agent's
// settings on its kernel command line (credentials through fw_cfg).
func (r *Reconciler) guestControl(n NodePlan, spec *vm.NodeSpec) error {
	gc := r.cfg.GuestControl
	if gc == nil {
		return nil
	}
	ctl := &vm.Control{Pipe: gc.Pipe}
	base := vm.ControlNet.Masked().Addr().As4()
	var zk []string
	for i, sock := range gc.Sockets {
		a := base
		a[3] = byte(100 + i)
		g := netip.AddrPortFrom(netip.AddrFrom4(a), guestControlPort)
		ctl.Forwards = append(ctl.Forwards, vm.Forward{Guest: g, Socket: sock})
		zk = append(zk, g.String())
	}
	path, err := r.agentSecret(n)
	if err != nil {
		return err
	}
	ctl.SecretFile = path
	env := maps.Clone(gc.Env)
	if env == nil {
		env = map[string]string{}
	}
	env["MUSUBI_ZK"] = strings.Join(zk, ",")
	env["MUSUBI_SITE"] = r.cfg.Site
	spec.Agent.Env = env
	spec.Control = ctl
	return nil
}
