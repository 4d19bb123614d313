//go:build integration

package ovs_test

import (
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/dataplanetest"
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
