//go:build integration

package ovs_test

import (
	"testing"

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
