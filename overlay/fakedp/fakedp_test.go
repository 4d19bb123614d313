package fakedp_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/dataplanetest"
	"github.com/musubi-fabric/musubi/overlay/fakedp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestContract(t *testing.T) {
	dataplanetest.Run(t, func(t *testing.T) overlay.Dataplane { return fakedp.New() })
}

// The fake's dump of each fixture site, and of s1 after the s1~s3 cut.
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		file  string
		site  string
		cut13 bool
	}{
		{"s1.golden", "s1", false},
		{"s2.golden", "s2", false},
		{"s3.golden", "s3", false},
		{"s1-cut13.golden", "s1", true},
	} {
		t.Run(c.file, func(t *testing.T) {
			f := fakedp.New()
			if err := f.Apply(t.Context(), dataplanetest.Fixture(c.site, 1, c.cut13)); err != nil {
				t.Fatal(err)
			}
			got := f.Dump()
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("dump differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

func TestFailNextApplyLeavesFlowsThenConverges(t *testing.T) {
	f := fakedp.New()
	d1 := dataplanetest.Fixture("s1", 1, false)
	if err := f.Apply(t.Context(), d1); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection lost")
	f.FailNextApply(boom)
	d2 := dataplanetest.Fixture("s1", 2, true)
	if err := f.Apply(t.Context(), d2); !errors.Is(err, boom) {
		t.Fatalf("Apply = %v, want the injected error", err)
	}
	o, _ := f.Observe(t.Context())
	if got, want := overlay.DumpFlows(o.Flows), overlay.DumpFlows(d1.Flows); got != want {
		t.Error("a failed Apply changed the flows")
	}
	if err := f.Apply(t.Context(), d2); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Dump(), overlay.DumpDesired(d2); got != want {
		t.Errorf("did not converge:\n%s\nwant\n%s", got, want)
	}
}

func TestSetBFD(t *testing.T) {
	f := fakedp.New()
	if err := f.Apply(t.Context(), dataplanetest.Fixture("s1", 1, false)); err != nil {
		t.Fatal(err)
	}
	o, _ := f.Observe(t.Context())
	for _, tu := range o.Tunnels {
		if tu.BFD.State != overlay.BFDUp || !tu.LinkUp {
			t.Errorf("%s starts %+v", tu.PortName, tu)
		}
	}
	if err := f.SetBFD("gre-s3", overlay.BFDStatus{Enabled: true, State: overlay.BFDDown, Diagnostic: "Control Detection Time Expired"}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetBFD("gre-nope", overlay.BFDStatus{}); err == nil {
		t.Error("SetBFD on a missing tunnel succeeded")
	}
	o, _ = f.Observe(t.Context())
	for _, tu := range o.Tunnels {
		if down := tu.PortName == "gre-s3"; down != (tu.BFD.State == overlay.BFDDown) || down == tu.LinkUp {
			t.Errorf("%s: %+v", tu.PortName, tu)
		}
	}
}

func TestTraceThroughFake(t *testing.T) {
	f := fakedp.New()
	if err := f.Apply(t.Context(), dataplanetest.Fixture("s1", 1, false)); err != nil {
		t.Fatal(err)
	}
	eps := dataplanetest.FixtureEndpoints()
	a1s1, a1s3, b1s3 := eps[0], eps[8], eps[10]
	if a1s1.PortName != "a1" || a1s3.Site != "s3" || b1s3.VC != "b" {
		t.Fatalf("fixture order changed: %+v %+v %+v", a1s1, a1s3, b1s3)
	}
	out := f.Trace("a1", overlay.Frame{EthSrc: a1s1.MAC, EthDst: a1s3.MAC, EthType: overlay.EthTypeIPv4})
	if len(out) != 1 || out[0].Port != "gre-s3" || len(out[0].Frame.VLANs) != 1 || out[0].Frame.VLANs[0] != 10 {
		t.Errorf("a1 -> s3/a1: %+v", out)
	}
	if out := f.Trace("a1", overlay.Frame{EthSrc: a1s1.MAC, EthDst: b1s3.MAC, EthType: overlay.EthTypeIPv4}); len(out) != 0 {
		t.Errorf("VC a reached VC b: %+v", out)
	}
}

func TestOpaqueAndForeignSurviveApply(t *testing.T) {
	f := fakedp.New()
	f.AddOpaqueFlow("table=0, priority=1 actions=LOCAL")
	if err := f.AddForeignFlow(t.Context(), overlay.Flow{Cookie: overlay.NewCookie(1, 1)}); !errors.Is(err, overlay.ErrInvalid) {
		t.Errorf("foreign flow with a musubi cookie: %v", err)
	}
	if err := f.Apply(t.Context(), overlay.Desired{Site: "s1", Generation: 1}); err != nil {
		t.Fatal(err)
	}
	o, _ := f.Observe(t.Context())
	if len(o.Opaque) != 1 {
		t.Errorf("opaque flows: %v", o.Opaque)
	}
}
