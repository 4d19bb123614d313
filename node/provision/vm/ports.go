package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/overlay"
)

// external_ids keys of a VC port, as the overlay writes them.
const (
	extOwner = "musubi-owner"
	extKind  = "musubi-kind"
	extVC    = "musubi-vc"
	extMAC   = "musubi-mac"
	extIP    = "musubi-ip"
	kindPort = "port"
)

// VsctlPorts is a provision.PortDriver that runs ovs-vsctl through a
// Runner. The backends take any PortDriver (the site wires node/provision/
// vlan's); this one needs nothing but the OVS tools and serves tests and
// hosts without the overlay.
type VsctlPorts struct {
	Runner Runner
	// DB is the OVSDB address ("unix:/path/db.sock"); "" is ovs-vsctl's
	// default.
	DB string
	// Bridge is the integration bridge (default "br-int").
	Bridge string
	// Owner is the value of musubi-owner on the ports (the site name;
	// default "musubi").
	Owner string
}

var _ provision.PortDriver = (*VsctlPorts)(nil)

func (v *VsctlPorts) bridge() string {
	if v.Bridge == "" {
		return "br-int"
	}
	return v.Bridge
}

func (v *VsctlPorts) vsctl(ctx context.Context, args ...string) ([]byte, error) {
	a := []string{"--timeout=10"}
	if v.DB != "" {
		a = append(a, "--db="+v.DB)
	}
	out, err := v.Runner.Run(ctx, Cmd{Name: "ovs-vsctl", Args: append(a, args...)})
	if err != nil {
		if s := StderrOf(err); strings.Contains(s, "database connection failed") || strings.Contains(s, "No such file") {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil, err
	}
	return out, nil
}

// Ensure implements provision.PortDriver.
func (v *VsctlPorts) Ensure(ctx context.Context, spec provision.PortSpec) (provision.Port, error) {
	if err := spec.Validate(); err != nil {
		return provision.Port{}, err
	}
	owner := v.Owner
	if owner == "" {
		owner = "musubi"
	}
	ports, err := v.list(ctx, true)
	if err != nil {
		return provision.Port{}, err
	}
	if p, ok := ports[spec.Name]; ok && !p.owned {
		return provision.Port{}, fmt.Errorf("%w: port %s", provision.ErrForeign, spec.Name)
	}
	ext := []string{
		"external_ids:" + extOwner + "=" + owner,
		"external_ids:" + extKind + "=" + kindPort,
		"external_ids:" + extVC + "=" + strconv.Quote(spec.VC),
		"external_ids:" + extMAC + "=" + strconv.Quote(spec.MAC.String()),
	}
	if spec.IP.IsValid() {
		ext = append(ext, "external_ids:"+extIP+"="+spec.IP.String())
	}
	args := []string{"--", "--may-exist", "add-port", v.bridge(), spec.Name,
		"--", "set", "port", spec.Name, "tag=" + strconv.Itoa(int(spec.VLAN))}
	args = append(args, ext...)
	args = append(args, "--", "set", "interface", spec.Name)
	args = append(args, ext...)
	if spec.Internal {
		args = append(args, "type=internal", "mac="+strconv.Quote(spec.MAC.String()))
	}
	if _, err := v.vsctl(ctx, args...); err != nil {
		return provision.Port{}, err
	}
	after, err := v.list(ctx, true)
	if err != nil {
		return provision.Port{}, err
	}
	p, ok := after[spec.Name]
	if !ok {
		return provision.Port{}, fmt.Errorf("%w: port %s not on %s after add-port", ErrCommand, spec.Name, v.bridge())
	}
	return p.Port, nil
}

// Remove implements provision.PortDriver.
func (v *VsctlPorts) Remove(ctx context.Context, name string) error {
	if !overlay.ValidPortName(name) {
		return fmt.Errorf("%w: port name %q", ErrInvalid, name)
	}
	ports, err := v.list(ctx, true)
	if err != nil {
		return err
	}
	p, ok := ports[name]
	if !ok {
		return nil
	}
	if !p.owned {
		return fmt.Errorf("%w: port %s", provision.ErrForeign, name)
	}
	_, err = v.vsctl(ctx, "--if-exists", "del-port", v.bridge(), name)
	return err
}

// List implements provision.PortDriver.
func (v *VsctlPorts) List(ctx context.Context) ([]provision.Port, error) {
	ports, err := v.list(ctx, false)
	if err != nil {
		return nil, err
	}
	out := make([]provision.Port, 0, len(ports))
	for _, p := range ports {
		out = append(out, p.Port)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type listedPort struct {
	provision.Port
	owned bool
}

// list reads the bridge's ports: the musubi VC ports, and with all the
// foreign ones too (owned false).
func (v *VsctlPorts) list(ctx context.Context, all bool) (map[string]listedPort, error) {
	out, err := v.vsctl(ctx, "--format=json", "--columns=name,tag,external_ids", "list", "port")
	if err != nil {
		return nil, err
	}
	onBridge, err := v.vsctl(ctx, "list-ports", v.bridge())
	if err != nil {
		if strings.Contains(StderrOf(err), "no bridge named") {
			return nil, fmt.Errorf("%w: no bridge %s", ErrUnavailable, v.bridge())
		}
		return nil, err
	}
	names := map[string]bool{}
	for _, n := range strings.Fields(string(onBridge)) {
		names[n] = true
	}
	rows, err := parseVsctlJSON(out)
	if err != nil {
		return nil, err
	}
	ifOut, err := v.vsctl(ctx, "--format=json", "--columns=name,ofport,link_state,error", "list", "interface")
	if err != nil {
		return nil, err
	}
	ifRows, err := parseVsctlJSON(ifOut)
	if err != nil {
		return nil, err
	}
	ifaces := map[string]map[string]any{}
	for _, r := range ifRows {
		if n, ok := r["name"].(string); ok {
			ifaces[n] = r
		}
	}
	res := map[string]listedPort{}
	for _, r := range rows {
		name, _ := r["name"].(string)
		if !names[name] {
			continue
		}
		ext := ovsMap(r["external_ids"])
		owned := ext[extOwner] != "" && ext[extKind] == kindPort
		if !owned && !all {
			continue
		}
		p := listedPort{owned: owned}
		p.Name = name
		p.VC = ext[extVC]
		if tag, ok := r["tag"].(float64); ok {
			p.VLAN = uint16(tag)
		}
		if m, err := overlay.ParseMAC(ext[extMAC]); err == nil {
			p.MAC = m
		}
		if ip, err := netip.ParseAddr(ext[extIP]); err == nil {
			p.IP = ip
		}
		if ifc := ifaces[name]; ifc != nil {
			if n, ok := ifc["ofport"].(float64); ok {
				p.OFPort = int32(n)
			}
			p.LinkUp = ifc["link_state"] == "up"
			p.Error, _ = ifc["error"].(string)
		}
		res[name] = p
	}
	return res, nil
}

// parseVsctlJSON turns `ovs-vsctl --format=json list` output into rows of
// column name -> value (OVSDB's ["set", []] empty sets become nil).
func parseVsctlJSON(b []byte) ([]map[string]any, error) {
	var t struct {
		Headings []string `json:"headings"`
		Data     [][]any  `json:"data"`
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: ovs-vsctl json: %v", ErrCommand, err)
	}
	rows := make([]map[string]any, 0, len(t.Data))
	for _, d := range t.Data {
		if len(d) != len(t.Headings) {
			return nil, errors.New("vm: ovs-vsctl json: row and headings differ in length")
		}
		r := map[string]any{}
		for i, h := range t.Headings {
			r[h] = ovsAtom(d[i])
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// ovsAtom unwraps one-element and empty OVSDB sets.
func ovsAtom(v any) any {
	a, ok := v.([]any)
	if !ok || len(a) != 2 {
		return v
	}
	if a[0] == "set" {
		elems, _ := a[1].([]any)
		switch len(elems) {
		case 0:
			return nil
		case 1:
			return ovsAtom(elems[0])
		}
	}
	return v
}

// ovsMap decodes an OVSDB ["map", [[k, v], ...]] value.
func ovsMap(v any) map[string]string {
	m := map[string]string{}
	a, ok := v.([]any)
	if !ok || len(a) != 2 || a[0] != "map" {
		return m
	}
	pairs, _ := a[1].([]any)
	for _, p := range pairs {
		kv, ok := p.([]any)
		if !ok || len(kv) != 2 {
			continue
		}
		k, _ := kv[0].(string)
		val, _ := kv[1].(string)
		m[k] = val
	}
	return m
}
