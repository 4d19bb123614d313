//go:build integration

package ovs_test

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/dataplanetest"
	"github.com/musubi-fabric/musubi/overlay/ovs"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// TestContract runs the Dataplane contract suite against real OVS: one
// site, a fresh controller (and, after the previous subtest's Teardown, a
// fresh br-int) per subtest.
func TestContract(t *testing.T) {
	f := ovstest.NewT(t, 1)
	site, err := f.Site(1)
	if err != nil {
		t.Fatal(err)
	}
	dataplanetest.Run(t, func(t *testing.T) overlay.Dataplane {
		return startDP(t, site, "s1", dpOptions{})
	})
}

// TestSwitchRestart: ovs-vswitchd restarts (its flows are gone); when it
// reconnects, the controller re-applies the last desired state by itself.
func TestSwitchRestart(t *testing.T) {
	f := ovstest.NewT(t, 1)
	site, err := f.Site(1)
	if err != nil {
		t.Fatal(err)
	}
	dp := startDP(t, site, "s1", dpOptions{})
	d := dataplanetest.Fixture("s1", 1, false)
	if err := dp.Apply(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if err := site.RestartVswitchd(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := overlay.DumpDesired(d)
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, err := dp.Observe(t.Context())
		if err == nil {
			var fl []overlay.Flow
			for _, x := range o.Flows {
				if x.Cookie.Owned() {
					fl = append(fl, x)
				}
			}
			o.Flows, o.Opaque = fl, nil
			if overlay.Dump(o) == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("flows not restored 30 s after ovs-vswitchd restarted (last error %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLatePortDevice: a VC port whose device does not exist yet (a VM's tap
// not created) makes Apply fail with ErrPort for its flows only; when the
// device appears, the controller installs them without another Apply.
func TestLatePortDevice(t *testing.T) {
	f := ovstest.NewT(t, 1)
	site, err := f.Site(1)
	if err != nil {
		t.Fatal(err)
	}
	dp := startDP(t, site, "s1", dpOptions{})
	g := topology.NewGraph(dataplanetest.FixtureSites()[:1], []string{"s1"}, nil)
	mac := overlay.MAC{0x02, 0, 0, 0x0a, 1, 9}
	d, _ := topology.BuildDesired(g, "s1", 1, []topology.Endpoint{{VC: "a", VLAN: 10, Site: "s1", PortName: "late1", MAC: mac, IP: netip.MustParseAddr("10.0.10.19")}})
	if err := dp.Apply(t.Context(), d); !errors.Is(err, ovs.ErrPort) {
		t.Fatalf("Apply with a missing device: %v, want ErrPort", err)
	}
	if _, err := f.AddEndpoint(t.Context(), site, ovstest.EndpointSpec{Name: "late1", MAC: net.HardwareAddr(mac[:]), Addr: netip.MustParsePrefix("10.0.10.19/24")}); err != nil {
		t.Fatal(err)
	}
	want := overlay.DumpFlows(d.Flows)
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, err := dp.Observe(t.Context())
		if err == nil && overlay.DumpFlows(o.Flows) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("flows of the late port not installed 20 s after its device appeared (err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
