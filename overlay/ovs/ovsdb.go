package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs/internal/vswitchd"
)

// external_ids keys musubi writes on the rows it owns.
const (
	// KeyOwner marks a row as musubi's; its value is the site name.
	KeyOwner = "musubi-owner"
	// KeyKind is "bridge", "controller", "tunnel" or "port".
	KeyKind       = "musubi-kind"
	keyRemoteSite = "musubi-remote-site"
	keyVC         = "musubi-vc"
	keyMAC        = "musubi-mac"
	keyIP         = "musubi-ip"

	kindBridge     = "bridge"
	kindController = "controller"
	kindTunnel     = "tunnel"
	kindPort       = "port"
)

func owned(ext map[string]string) bool { _, ok := ext[KeyOwner]; return ok }

// dbState is a consistent read of the rows the Dataplane cares about.
type dbState struct {
	root   *vswitchd.OpenvSwitch
	bridge *vswitchd.Bridge // nil when missing
	ctrl   []*vswitchd.Controller
	// ports and ifaces of the bridge, by port name; iface is the port's
	// (first) interface.
	ports  map[string]*vswitchd.Port
	ifaces map[string]*vswitchd.Interface
	// allPorts are the Port rows of every bridge, by name (port names are
	// unique in the database).
	allPorts map[string]*vswitchd.Port
}

// readState reads the cache.
func (d *Dataplane) readState(ctx context.Context, c client.Client) (*dbState, error) {
	var roots []vswitchd.OpenvSwitch
	if err := c.List(ctx, &roots); err != nil {
		return nil, fmt.Errorf("ovs: list Open_vSwitch: %w", err)
	}
	if len(roots) != 1 {
		return nil, fmt.Errorf("%w: %d Open_vSwitch rows (not initialised?)", overlay.ErrUnavailable, len(roots))
	}
	st := &dbState{root: &roots[0], ports: map[string]*vswitchd.Port{}, ifaces: map[string]*vswitchd.Interface{}, allPorts: map[string]*vswitchd.Port{}}
	var brs []vswitchd.Bridge
	if err := c.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == d.cfg.Bridge }).List(ctx, &brs); err != nil {
		return nil, fmt.Errorf("ovs: list Bridge: %w", err)
	}
	var ports []vswitchd.Port
	if err := c.List(ctx, &ports); err != nil {
		return nil, fmt.Errorf("ovs: list Port: %w", err)
	}
	var ifaces []vswitchd.Interface
	if err := c.List(ctx, &ifaces); err != nil {
		return nil, fmt.Errorf("ovs: list Interface: %w", err)
	}
	ifByUUID := make(map[string]*vswitchd.Interface, len(ifaces))
	for i := range ifaces {
		ifByUUID[ifaces[i].UUID] = &ifaces[i]
	}
	portByUUID := make(map[string]*vswitchd.Port, len(ports))
	for i := range ports {
		portByUUID[ports[i].UUID] = &ports[i]
		st.allPorts[ports[i].Name] = &ports[i]
	}
	if len(brs) == 0 {
		return st, nil
	}
	st.bridge = &brs[0]
	for _, pu := range st.bridge.Ports {
		p, ok := portByUUID[pu]
		if !ok {
			continue
		}
		st.ports[p.Name] = p
		if len(p.Interfaces) > 0 {
			if ifc, ok := ifByUUID[p.Interfaces[0]]; ok {
				st.ifaces[p.Name] = ifc
			}
		}
	}
	for _, cu := range st.bridge.Controller {
		cr := &vswitchd.Controller{UUID: cu}
		if err := c.Get(ctx, cr); err == nil {
			st.ctrl = append(st.ctrl, cr)
		}
	}
	return st, nil
}

// resolver maps port names and OpenFlow port numbers of the bridge, from
// OVSDB's Interface.ofport (valid once cur_cfg caught up with next_cfg).
type resolver struct {
	byName map[string]uint32
	byNum  map[uint32]string
}

func (st *dbState) resolver(bridge string) resolver {
	r := resolver{byName: map[string]uint32{}, byNum: map[uint32]string{}}
	for name, ifc := range st.ifaces {
		if ifc.Ofport != nil && *ifc.Ofport > 0 {
			r.byName[name] = uint32(*ifc.Ofport)
			r.byNum[uint32(*ifc.Ofport)] = name
		}
	}
	// The bridge's own interface is OFPP_LOCAL.
	r.byName[bridge] = 0xfffffffe
	r.byNum[0xfffffffe] = bridge
	return r
}

func (r resolver) portNumber(name string) (uint32, bool) { n, ok := r.byName[name]; return n, ok }
func (r resolver) portName(num uint32) (string, bool)    { n, ok := r.byNum[num]; return n, ok }

// txn collects operations of one OVSDB transaction.
type txn struct {
	c   client.Client
	ops []ovsdb.Operation
	n   int // named-uuid counter
}

func (t *txn) name(prefix string) string {
	t.n++
	return fmt.Sprintf("%s%d", prefix, t.n)
}

func (t *txn) add(ops []ovsdb.Operation, err error) error {
	if err != nil {
		return fmt.Errorf("ovs: build OVSDB operation: %w", err)
	}
	t.ops = append(t.ops, ops...)
	return nil
}

// commit runs the transaction, bumping next_cfg, and waits until
// ovs-vswitchd has applied it (cur_cfg >= next_cfg), as ovs-vsctl does.
func (d *Dataplane) commit(ctx context.Context, t *txn, st *dbState) error {
	if len(t.ops) == 0 {
		return nil
	}
	root := st.root
	if err := t.add(t.c.Where(root).Mutate(root, model.Mutation{Field: &root.NextCfg, Mutator: ovsdb.MutateOperationAdd, Value: 1})); err != nil {
		return err
	}
	sel := len(t.ops)
	t.ops = append(t.ops, ovsdb.Operation{Op: ovsdb.OperationSelect, Table: vswitchd.OpenvSwitchTable,
		Where:   []ovsdb.Condition{{Column: "_uuid", Function: ovsdb.ConditionEqual, Value: ovsdb.UUID{GoUUID: root.UUID}}},
		Columns: []string{"next_cfg"}})
	res, err := t.c.Transact(ctx, t.ops...)
	if err != nil {
		return fmt.Errorf("%w: OVSDB transaction: %w", overlay.ErrUnavailable, err)
	}
	if opErrs, err := ovsdb.CheckOperationResults(res, t.ops); err != nil {
		// Keep the per-operation errors (typed: constraint violation, …)
		// reachable with errors.As.
		all := []error{err}
		for _, e := range opErrs {
			all = append(all, e)
		}
		return fmt.Errorf("ovs: OVSDB transaction failed: %w", errors.Join(all...))
	}
	if len(res) <= sel || len(res[sel].Rows) != 1 {
		return fmt.Errorf("ovs: OVSDB transaction: no next_cfg in the result")
	}
	next, ok := toInt(res[sel].Rows[0]["next_cfg"])
	if !ok {
		return fmt.Errorf("ovs: OVSDB transaction: next_cfg is %T", res[sel].Rows[0]["next_cfg"])
	}
	return d.waitCurCfg(ctx, t.c, next)
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		return int(x), true
	}
	return 0, false
}

// waitCurCfg waits until ovs-vswitchd reports cur_cfg >= next.
func (d *Dataplane) waitCurCfg(ctx context.Context, c client.Client, next int) error {
	for {
		ch := d.dbChanged.wait()
		var roots []vswitchd.OpenvSwitch
		if err := c.List(ctx, &roots); err == nil && len(roots) == 1 && roots[0].CurCfg >= next {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: ovs-vswitchd did not apply configuration %d: %w", overlay.ErrUnavailable, next, ctx.Err())
		}
	}
}

// ensureBridge creates the integration bridge, or brings the settings
// musubi needs back to what they should be.
func (d *Dataplane) ensureBridge(ctx context.Context, c client.Client, st *dbState) error {
	t := &txn{c: c}
	ctrlWant := vswitchd.Controller{
		Target:         d.target,
		ConnectionMode: ptr(vswitchd.ControllerConnectionModeOutOfBand),
		MaxBackoff:     ptr(1000),
		ExternalIDs:    map[string]string{KeyOwner: d.cfg.Site, KeyKind: kindController},
	}
	if st.bridge == nil {
		ifc := vswitchd.Interface{UUID: t.name("bri"), Name: d.cfg.Bridge, Type: "internal"}
		port := vswitchd.Port{UUID: t.name("brp"), Name: d.cfg.Bridge, Interfaces: []string{ifc.UUID}}
		ctrl := ctrlWant
		ctrl.UUID = t.name("ctl")
		br := d.bridgeWant()
		br.UUID = t.name("br")
		br.Ports = []string{port.UUID}
		br.Controller = []string{ctrl.UUID}
		for _, m := range []model.Model{&ifc, &port, &ctrl, &br} {
			if err := t.add(c.Create(m)); err != nil {
				return err
			}
		}
		root := st.root
		if err := t.add(c.Where(root).Mutate(root, model.Mutation{Field: &root.Bridges, Mutator: ovsdb.MutateOperationInsert, Value: []string{br.UUID}})); err != nil {
			return err
		}
		d.log.Info("creating bridge", "bridge", d.cfg.Bridge, "controller", d.target)
		return d.commit(ctx, t, st)
	}
	br := st.bridge
	if !owned(br.ExternalIDs) {
		return fmt.Errorf("%w: bridge %s", ErrForeign, br.Name)
	}
	want := d.bridgeWant()
	want.UUID = br.UUID
	otherCfg := maps.Clone(br.OtherConfig)
	if otherCfg == nil {
		otherCfg = map[string]string{}
	}
	maps.Copy(otherCfg, want.OtherConfig)
	want.OtherConfig = otherCfg
	if br.DatapathType != want.DatapathType || br.FailMode == nil || *br.FailMode != *want.FailMode ||
		!slices.Equal(br.Protocols, want.Protocols) || !maps.Equal(br.OtherConfig, want.OtherConfig) {
		if err := t.add(c.Where(&want).Update(&want, &want.DatapathType, &want.FailMode, &want.Protocols, &want.OtherConfig)); err != nil {
			return err
		}
	}
	switch {
	case len(st.ctrl) == 1:
		cur := st.ctrl[0]
		if cur.Target != ctrlWant.Target || cur.ConnectionMode == nil || *cur.ConnectionMode != *ctrlWant.ConnectionMode ||
			cur.MaxBackoff == nil || *cur.MaxBackoff != *ctrlWant.MaxBackoff || !maps.Equal(cur.ExternalIDs, ctrlWant.ExternalIDs) {
			w := ctrlWant
			w.UUID = cur.UUID
			if err := t.add(c.Where(&w).Update(&w, &w.Target, &w.ConnectionMode, &w.MaxBackoff, &w.ExternalIDs)); err != nil {
				return err
			}
		}
	default:
		ctrl := ctrlWant
		ctrl.UUID = t.name("ctl")
		if err := t.add(c.Create(&ctrl)); err != nil {
			return err
		}
		b := &vswitchd.Bridge{UUID: br.UUID, Controller: []string{ctrl.UUID}}
		if err := t.add(c.Where(b).Update(b, &b.Controller)); err != nil {
			return err
		}
	}
	if len(t.ops) > 0 {
		d.log.Info("updating bridge settings", "bridge", d.cfg.Bridge, "controller", d.target)
	}
	return d.commit(ctx, t, st)
}

func (d *Dataplane) bridgeWant() vswitchd.Bridge {
	return vswitchd.Bridge{
		Name:         d.cfg.Bridge,
		DatapathType: d.cfg.DatapathType,
		FailMode:     ptr(vswitchd.BridgeFailModeSecure),
		Protocols:    []vswitchd.BridgeProtocols{vswitchd.BridgeProtocolsOpenflow13},
		OtherConfig:  map[string]string{"hwaddr": d.cfg.BridgeMAC.String(), "disable-in-band": "true"},
		ExternalIDs:  map[string]string{KeyOwner: d.cfg.Site, KeyKind: kindBridge},
	}
}

// portWant is the Port and Interface rows Apply wants for one port name.
type portWant struct {
	port  vswitchd.Port
	iface vswitchd.Interface
}

func (d *Dataplane) wantPorts(want overlay.Desired) map[string]portWant {
	m := map[string]portWant{}
	bfd := map[string]string{
		"enable": "true",
		"mult":   strconv.Itoa(d.cfg.BFDMultiplier),
		"min_tx": strconv.FormatInt(d.cfg.BFDInterval.Milliseconds(), 10),
		"min_rx": strconv.FormatInt(d.cfg.BFDInterval.Milliseconds(), 10),
	}
	for _, t := range want.Tunnels {
		ext := map[string]string{KeyOwner: d.cfg.Site, KeyKind: kindTunnel, keyRemoteSite: t.RemoteSite}
		m[t.PortName] = portWant{
			port: vswitchd.Port{Name: t.PortName, ExternalIDs: ext},
			iface: vswitchd.Interface{Name: t.PortName, Type: "gre", ExternalIDs: ext,
				Options: map[string]string{"remote_ip": t.RemoteIP.String()}, BFD: maps.Clone(bfd)},
		}
	}
	for _, p := range want.Ports {
		ext := map[string]string{KeyOwner: d.cfg.Site, KeyKind: kindPort, keyVC: p.VC, keyMAC: p.MAC.String()}
		if p.IP.IsValid() {
			ext[keyIP] = p.IP.String()
		}
		w := portWant{
			port:  vswitchd.Port{Name: p.Name, Tag: ptr(int(p.VLAN)), ExternalIDs: ext},
			iface: vswitchd.Interface{Name: p.Name, ExternalIDs: ext},
		}
		if p.Internal {
			w.iface.Type = "internal"
			w.iface.MAC = ptr(p.MAC.String())
		}
		m[p.Name] = w
	}
	return m
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// syncPorts makes the bridge's musubi-owned ports exactly want's.
func (d *Dataplane) syncPorts(ctx context.Context, c client.Client, st *dbState, want overlay.Desired) error {
	if st.bridge == nil {
		return fmt.Errorf("%w: bridge %s missing", overlay.ErrUnavailable, d.cfg.Bridge)
	}
	t := &txn{c: c}
	br := st.bridge
	wants := d.wantPorts(want)
	changes := uint64(0) // ports created, updated or deleted
	names := slices.Sorted(maps.Keys(wants))
	for _, name := range names {
		w := wants[name]
		cur, onBridge := st.ports[name]
		if !onBridge {
			if _, elsewhere := st.allPorts[name]; elsewhere {
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
			b := &vswitchd.Bridge{UUID: br.UUID}
			if err := t.add(c.Where(b).Mutate(b, model.Mutation{Field: &b.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{port.UUID}})); err != nil {
				return err
			}
			changes++
			continue
		}
		if !owned(cur.ExternalIDs) {
			return fmt.Errorf("%w: port %s", ErrForeign, name)
		}
		updated := false
		if !eqPtr(cur.Tag, w.port.Tag) || !maps.Equal(cur.ExternalIDs, w.port.ExternalIDs) {
			updated = true
			p := w.port
			p.UUID = cur.UUID
			if err := t.add(c.Where(&p).Update(&p, &p.Tag, &p.ExternalIDs)); err != nil {
				return err
			}
		}
		ci := st.ifaces[name]
		if ci != nil && (ci.Type != w.iface.Type || !maps.Equal(ci.Options, w.iface.Options) || !maps.Equal(ci.BFD, w.iface.BFD) ||
			!maps.Equal(ci.ExternalIDs, w.iface.ExternalIDs) || !eqPtr(ci.MAC, w.iface.MAC)) {
			updated = true
			i := w.iface
			i.UUID = ci.UUID
			if err := t.add(c.Where(&i).Update(&i, &i.Type, &i.Options, &i.BFD, &i.ExternalIDs, &i.MAC)); err != nil {
				return err
			}
		}
		if updated {
			changes++
		}
	}
	var stale []string
	for name, p := range st.ports {
		if _, ok := wants[name]; !ok && owned(p.ExternalIDs) && name != d.cfg.Bridge {
			stale = append(stale, p.UUID)
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		b := &vswitchd.Bridge{UUID: br.UUID}
		if err := t.add(c.Where(b).Mutate(b, model.Mutation{Field: &b.Ports, Mutator: ovsdb.MutateOperationDelete, Value: stale})); err != nil {
			return err
		}
		changes += uint64(len(stale))
	}
	if err := d.commit(ctx, t, st); err != nil {
		return err
	}
	d.changes.Add(changes)
	return nil
}

// observePorts reads the owned tunnels and ports back from the database.
func observePorts(st *dbState) (tunnels []overlay.TunnelStatus, ports []overlay.PortStatus) {
	for name, p := range st.ports {
		if !owned(p.ExternalIDs) {
			continue
		}
		ifc := st.ifaces[name]
		if ifc == nil {
			continue
		}
		ofport := int32(0)
		if ifc.Ofport != nil {
			ofport = int32(*ifc.Ofport)
		}
		up := ifc.LinkState != nil && *ifc.LinkState == vswitchd.InterfaceLinkStateUp
		errText := ""
		if ifc.Error != nil {
			errText = *ifc.Error
		}
		switch p.ExternalIDs[KeyKind] {
		case kindTunnel:
			ip, _ := netip.ParseAddr(ifc.Options["remote_ip"])
			tunnels = append(tunnels, overlay.TunnelStatus{
				Tunnel: overlay.Tunnel{RemoteSite: p.ExternalIDs[keyRemoteSite], RemoteIP: ip, PortName: name},
				OFPort: ofport, LinkUp: up, BFD: bfdStatus(ifc), Error: errText,
			})
		case kindPort:
			mac, _ := overlay.ParseMAC(p.ExternalIDs[keyMAC])
			ip, _ := netip.ParseAddr(p.ExternalIDs[keyIP])
			vlan := 0
			if p.Tag != nil {
				vlan = *p.Tag
			}
			ports = append(ports, overlay.PortStatus{
				Port:   overlay.Port{Name: name, VC: p.ExternalIDs[keyVC], VLAN: uint16(vlan), MAC: mac, IP: ip, Internal: ifc.Type == "internal"},
				OFPort: ofport, LinkUp: up, Error: errText,
			})
		}
	}
	slices.SortFunc(tunnels, func(a, b overlay.TunnelStatus) int { return cmpString(a.PortName, b.PortName) })
	slices.SortFunc(ports, func(a, b overlay.PortStatus) int { return cmpString(a.Name, b.Name) })
	return tunnels, ports
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func bfdStatus(ifc *vswitchd.Interface) overlay.BFDStatus {
	s := ifc.BFDStatus
	return overlay.BFDStatus{
		Enabled:     ifc.BFD["enable"] == "true",
		State:       overlay.BFDState(s["state"]),
		RemoteState: overlay.BFDState(s["remote_state"]),
		Forwarding:  s["forwarding"] == "true",
		Diagnostic:  s["diagnostic"],
	}
}

func ptr[T any](v T) *T { return &v }
