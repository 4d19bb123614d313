package vm_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
	"github.com/musubi-fabric/musubi/overlay"
)

// ovsdb answers ovs-vsctl's list and list-ports from a tiny table.
type ovsdb struct {
	ports  string // JSON of "list port"
	ifaces string // JSON of "list interface"
	onBr   string
	ran    []string
}

func (o *ovsdb) answer(c vm.Cmd) ([]byte, bool, error) {
	if c.Name != "ovs-vsctl" {
		return nil, false, nil
	}
	s := strings.Join(c.Args, " ")
	o.ran = append(o.ran, s)
	switch {
	case strings.Contains(s, "list port"):
		return []byte(o.ports), true, nil
	case strings.Contains(s, "list interface"):
		return []byte(o.ifaces), true, nil
	case strings.Contains(s, "list-ports"):
		return []byte(o.onBr), true, nil
	}
	return nil, true, nil
}

const (
	portsJSON = `{"data":[["mvaaaa",100,["map",[["musubi-kind","port"],["musubi-mac","02:00:00:00:00:01"],["musubi-owner","site1"],["musubi-vc","vc1"],["musubi-ip","10.0.0.1"]]]],` +
		`["wan0",["set",[]],["map",[]]],` +
		`["other-br-port",200,["map",[["musubi-kind","port"],["musubi-owner","site1"]]]]],"headings":["name","tag","external_ids"]}`
	ifacesJSON = `{"data":[["mvaaaa",3,"up",["set",[]]],["wan0",1,"up",["set",[]]]],"headings":["name","ofport","link_state","error"]}`
)

func TestVsctlPorts(t *testing.T) {
	host := vmtest.NewFakeHost()
	db := &ovsdb{ports: portsJSON, ifaces: ifacesJSON, onBr: "mvaaaa\nwan0\n"}
	host.OnRun = db.answer
	p := &vm.VsctlPorts{Runner: host, DB: "unix:/run/db.sock", Owner: "site1"}
	ctx := context.Background()
	l, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mac := overlay.MustParseMAC("02:00:00:00:00:01")
	if len(l) != 1 || l[0].Name != "mvaaaa" || l[0].VLAN != 100 || l[0].VC != "vc1" || l[0].MAC != mac ||
		l[0].IP != netip.MustParseAddr("10.0.0.1") || l[0].OFPort != 3 || !l[0].LinkUp {
		t.Fatalf("List = %+v (want only the musubi port on br-int)", l)
	}
	db.ran = nil
	_, err = p.Ensure(ctx, provision.PortSpec{Name: "mvaaaa", VC: "vc1", VLAN: 100, MAC: mac, IP: netip.MustParseAddr("10.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	var add string
	for _, r := range db.ran {
		if strings.Contains(r, "add-port") {
			add = r
		}
	}
	want := `--timeout=10 --db=unix:/run/db.sock -- --may-exist add-port br-int mvaaaa -- set port mvaaaa tag=100 ` +
		`external_ids:musubi-owner=site1 external_ids:musubi-kind=port external_ids:musubi-vc="vc1" external_ids:musubi-mac="02:00:00:00:00:01" external_ids:musubi-ip=10.0.0.1 ` +
		`-- set interface mvaaaa external_ids:musubi-owner=site1 external_ids:musubi-kind=port external_ids:musubi-vc="vc1" external_ids:musubi-mac="02:00:00:00:00:01" external_ids:musubi-ip=10.0.0.1`
	if add != want {
		t.Fatalf("add-port:\n%s\nwant:\n%s", add, want)
	}
	// A port that is not musubi's is left alone.
	if _, err := p.Ensure(ctx, provision.PortSpec{Name: "wan0", VC: "vc1", VLAN: 100, MAC: mac}); !errors.Is(err, provision.ErrForeign) {
		t.Fatalf("Ensure over wan0: %v", err)
	}
	if err := p.Remove(ctx, "wan0"); !errors.Is(err, provision.ErrForeign) {
		t.Fatalf("Remove wan0: %v", err)
	}
	db.ran = nil
	if err := p.Remove(ctx, "mvaaaa"); err != nil {
		t.Fatal(err)
	}
	if last := db.ran[len(db.ran)-1]; last != "--timeout=10 --db=unix:/run/db.sock --if-exists del-port br-int mvaaaa" {
		t.Fatalf("remove ran %q", last)
	}
	db.ran = nil
	if err := p.Remove(ctx, "absent"); err != nil || len(db.ran) != 3 {
		t.Fatalf("Remove of an absent port: %v, ran %q (want only the reads)", err, db.ran)
	}
	if err := p.Remove(ctx, "bad/name"); !errors.Is(err, vm.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestVsctlPortsUnavailable(t *testing.T) {
	host := vmtest.NewFakeHost()
	host.FailOn("ovs-vsctl", 1, "ovs-vsctl: unix:/run/db.sock: database connection failed (No such file or directory)")
	p := &vm.VsctlPorts{Runner: host, DB: "unix:/run/db.sock"}
	if _, err := p.List(context.Background()); !errors.Is(err, vm.ErrUnavailable) || !errors.Is(err, provision.ErrUnavailable) {
		t.Fatalf("List: %v", err)
	}
}

func TestSpecHashAndNames(t *testing.T) {
	a := vmtest.NewSpec("vc1", 0)
	a.Agent.Env = map[string]string{"MUSUBI_ZK": "x", "MUSUBI_A": "y"}
	b := a
	b.Agent.Env = map[string]string{"MUSUBI_A": "y", "MUSUBI_ZK": "x"}
	if a.Hash() != b.Hash() {
		t.Fatal("hash depends on map order")
	}
	b.VLAN = 101
	if a.Hash() == b.Hash() {
		t.Fatal("hash ignores the VLAN")
	}
	c, d := a, a
	c.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: "1.2.3.4:3260", Target: "iqn.2025-01.a:b", Initiator: "iqn.2025-01.c:d", User: "u", Secret: "abcdefghijkl1"}}
	d.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: "1.2.3.4:3260", Target: "iqn.2025-01.a:b", Initiator: "iqn.2025-01.c:d", User: "u", Secret: "abcdefghijkl2"}}
	if c.Hash() == d.Hash() {
		t.Fatal("hash ignores the secret")
	}
	if strings.Contains(c.Hash(), "abcdefghijkl1") {
		t.Fatal("secret in the hash")
	}
	n := vm.PortName("mq", "vc1/n0")
	if len(n) != 15 || !strings.HasPrefix(n, "mq") || n == vm.PortName("mq", "vc1/n1") || n != vm.PortName("mq", "vc1/n0") {
		t.Fatalf("port name %q", n)
	}
	if _, _, err := vm.ParseName("vc1/n0"); err != nil {
		t.Fatal(err)
	}
}
