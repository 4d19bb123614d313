package admission

import (
	"math/rand/v2"
	"testing"
)

// TestRandomStreams runs the fuzz scenario over fixed pseudo-random inputs
// in the unit tier: random streams of requests, cancellations and releases
// against random federations never overcommit any host, storage host or
// VLAN at any instant, the policies agree on feasibility, and offered
// earliest windows fit and are earliest.
func TestRandomStreams(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 50
	}
	rng := rand.New(rand.NewPCG(5, 7))
	for i := 0; i < n; i++ {
		data := make([]byte, 60+rng.IntN(240))
		for j := range data {
			data[j] = byte(rng.UintN(256))
		}
		fuzzScenario(t, &bytes{b: data})
		if t.Failed() {
			t.Fatalf("input %d: %x", i, data)
		}
	}
}
