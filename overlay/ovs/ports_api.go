package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs/internal/vswitchd"
)

// Single-port operations for the provisioner (node/provision/vlan): they
// create, remove and list one VC node port at a time through the
// Dataplane's own OVSDB connection and the same row layout Apply writes
// (Port and Interface rows with the VC's tag and the musubi external_ids),
// and touch neither flows nor any other port.
//
// Apply owns the set of musubi ports as a whole: it removes owned ports
// its desired state lacks. So that the two agree, EnsurePort and RemovePort
// also edit the remembered desired state that background reconciles
// re-apply (after a switch reconnect, or when a port's device appears), and
// the provisioner publishes a node's record (which puts its port in the
// overlay controller's next desired state) before it ensures the port, and
// deletes the record before it removes the port. A port EnsurePort wrote is
// then exactly the one Apply wants, and Apply changes nothing.

// EnsurePort makes the port p exist on the integration bridge, owned by
// this site, with p's tag and marks, creating the bridge first if needed.
// A port of that name that is not musubi's, or is not a VC port (a
// tunnel), is left alone (ErrForeign). It returns the port as OVSDB reports
// it after ovs-vswitchd applied the change: OFPort -1 (with Error) when
// the device does not exist yet, which is not an error. It waits for the
// OVSDB connection until ctx ends.
func (d *Dataplane) EnsurePort(ctx context.Context, p overlay.Port) (st overlay.PortStatus, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	one := overlay.Desired{Site: d.cfg.Site, Ports: []overlay.Port{p}}
	if err := one.Validate(); err != nil {
		return st, err
	}
	if ok, err := d.reservedNames(one); !ok {
		return st, err
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.mu.Lock()
	var merged *overlay.Desired
	if d.desired != nil {
		m := d.desired.Clone()
		m.Ports = slices.DeleteFunc(m.Ports, func(q overlay.Port) bool { return q.Name == p.Name })
		m.Ports = append(m.Ports, p)
		merged = &m
	}
	d.mu.Unlock()
	if merged != nil {
		if err := merged.Validate(); err != nil {
			return st, fmt.Errorf("port %s conflicts with the applied state: %w", p.Name, err)
		}
	}
	c, err := d.waitDB(ctx)
	if err != nil {
		return st, err
	}
	s, err := d.readState(ctx, c)
	if err != nil {
		return st, err
	}
	if s.bridge == nil {
		if err := d.ensureBridge(ctx, c, s); err != nil {
			return st, err
		}
		if s, err = d.readState(ctx, c); err != nil {
			return st, err
		}
		if s.bridge == nil {
			return st, fmt.Errorf("%w: bridge %s missing", overlay.ErrUnavailable, d.cfg.Bridge)
		}
	}
	for attempt := 0; ; attempt++ {
		if cur, ok := s.ports[p.Name]; ok && (!owned(cur.ExternalIDs) || cur.ExternalIDs[KeyKind] != kindPort) {
			return st, fmt.Errorf("%w: port %s", ErrForeign, p.Name)
		}
		err := d.writePort(ctx, c, s, d.wantPorts(one)[p.Name])
		if err == nil {
			break
		}
		var cv *ovsdb.ConstraintViolation
		if attempt > 0 || !errors.As(err, &cv) {
			return st, err
		}
		// Someone else (ovs-vsctl, another tool) added a row with this
		// name after our cache was read: the server refused our insert.
		// Wait until the cache shows it, then judge it like any
		// existing port.
		seen, werr := d.waitPortSeen(ctx, c, p.Name)
		if werr != nil {
			return st, err
		}
		s = seen
	}
	if merged != nil {
		d.mu.Lock()
		if d.desired != nil { // Teardown may not have run meanwhile: it takes applyMu
			d.desired = merged
		}
		d.mu.Unlock()
	}
	if s, err = d.readState(ctx, c); err != nil {
		return st, err
	}
	_, ports := observePorts(s)
	for _, q := range ports {
		if q.Name == p.Name {
			return q, nil
		}
	}
	return st, fmt.Errorf("%w: %s: no port row after the transaction", ErrPort, p.Name)
}

// portSeenWait bounds how long EnsurePort waits for its OVSDB cache to
// show a port the server says exists.
const portSeenWait = 2 * time.Second

// waitPortSeen waits (on cache change notifications) until the cache
// holds a port called name anywhere, and returns the state read then.
func (d *Dataplane) waitPortSeen(ctx context.Context, c client.Client, name string) (*dbState, error) {
	timer := time.NewTimer(portSeenWait)
	defer timer.Stop()
	for {
		ch := d.dbChanged.wait()
		s, err := d.readState(ctx, c)
		if err != nil {
			return nil, err
		}
		if _, ok := s.allPorts[name]; ok {
			return s, nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return nil, fmt.Errorf("ovs: port %s not in the OVSDB cache after %s", name, portSeenWait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// writePort creates or updates one port's rows, like syncPorts does for
// each wanted port.
func (d *Dataplane) writePort(ctx context.Context, c client.Client, s *dbState, w portWant) error {
	t := &txn{c: c}
	name := w.port.Name
	cur, onBridge := s.ports[name]
	if !onBridge {
		if _, elsewhere := s.allPorts[name]; elsewhere {
			return fmt.Errorf("%w: port %s exists on another bridge", ErrForeign, name)
		}
		ifc := w.iface
		ifc.UUID = t.name("if")
		port := w.port
		port.UUID = t.name("port")
		port.Interfaces = []string{ifc.UUID}
		if err := t.add(c.Create(&ifc)); err != nil {
			return err
		}
		if err := t.add(c.Create(&port)); err != nil {
			return err
		}
		b := &vswitchd.Bridge{UUID: s.bridge.UUID}
		if err := t.add(c.Where(b).Mutate(b, model.Mutation{Field: &b.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{port.UUID}})); err != nil {
			return err
		}
		d.log.Info("adding port", "port", name, "vlan", *w.port.Tag)
	} else {
		if !eqPtr(cur.Tag, w.port.Tag) || !maps.Equal(cur.ExternalIDs, w.port.ExternalIDs) {
			pw := w.port
			pw.UUID = cur.UUID
			if err := t.add(c.Where(&pw).Update(&pw, &pw.Tag, &pw.ExternalIDs)); err != nil {
				return err
			}
		}
		if ci := s.ifaces[name]; ci != nil && (ci.Type != w.iface.Type || !maps.Equal(ci.Options, w.iface.Options) || !maps.Equal(ci.BFD, w.iface.BFD) || !maps.Equal(ci.ExternalIDs, w.iface.ExternalIDs) || !eqPtr(ci.MAC, w.iface.MAC)) {
			i := w.iface
			i.UUID = ci.UUID
			if err := t.add(c.Where(&i).Update(&i, &i.Type, &i.Options, &i.BFD, &i.ExternalIDs, &i.MAC)); err != nil {
				return err
			}
		}
	}
	if len(t.ops) == 0 {
		return nil
	}
	if err := d.commit(ctx, t, s); err != nil {
		return err
	}
	d.changes.Add(1)
	return nil
}

// RemovePort deletes the VC port called name from the integration bridge
// (and from the remembered desired state). A missing port is not an error;
// one that is not a musubi VC port is left alone (ErrForeign).
func (d *Dataplane) RemovePort(ctx context.Context, name string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	if !overlay.ValidPortName(name) {
		return fmt.Errorf("%w: port name %q", overlay.ErrInvalid, name)
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	c, err := d.waitDB(ctx)
	if err != nil {
		return err
	}
	s, err := d.readState(ctx, c)
	if err != nil {
		return err
	}
	cur, ok := s.ports[name]
	if !ok {
		if _, elsewhere := s.allPorts[name]; elsewhere {
			return fmt.Errorf("%w: port %s is on another bridge", ErrForeign, name)
		}
	} else {
		if !owned(cur.ExternalIDs) || cur.ExternalIDs[KeyKind] != kindPort {
			return fmt.Errorf("%w: port %s", ErrForeign, name)
		}
		t := &txn{c: c}
		b := &vswitchd.Bridge{UUID: s.bridge.UUID}
		if err := t.add(c.Where(b).Mutate(b, model.Mutation{Field: &b.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{cur.UUID}})); err != nil {
			return err
		}
		if err := d.commit(ctx, t, s); err != nil {
			return err
		}
		d.changes.Add(1)
		d.log.Info("removed port", "port", name)
	}
	d.mu.Lock()
	if d.desired != nil {
		m := d.desired.Clone()
		m.Ports = slices.DeleteFunc(m.Ports, func(q overlay.Port) bool { return q.Name == name })
		d.desired = &m
	}
	d.mu.Unlock()
	return nil
}

// Ports lists the musubi VC ports of the integration bridge as OVSDB
// reports them, sorted by name. It needs only the OVSDB connection.
func (d *Dataplane) Ports(ctx context.Context) (ports []overlay.PortStatus, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	c, err := d.waitDB(ctx)
	if err != nil {
		return nil, err
	}
	s, err := d.readState(ctx, c)
	if err != nil {
		return nil, err
	}
	_, ports = observePorts(s)
	return ports, nil
}
