//go:build bench

package reserve

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/benchrec"
	"github.com/musubi-fabric/musubi/internal/zktest"
)

// TestBenchReserve records admissions per second with 8 concurrent
// admitters on memstore and on a real 3-server ensemble: contended (every
// admission books the same host, storage host and VLAN tag) against the
// uncontended baseline (each admitter its own site and tag), for `make
// bench`.
func TestBenchReserve(t *testing.T) {
	rec := benchrec.New(os.Stdout)
	record := func(store string, c, u throughput) {
		f := benchrec.Figure{Bench: "reserve", Figure: store + "_admissions_per_s_8_contended", Value: c.rate(), Unit: "admissions/s"}
		if err := rec.Record(f.WithBaseline(store+"_admissions_per_s_8_uncontended", u.rate())); err != nil {
			t.Fatal(err)
		}
		f = benchrec.Figure{Bench: "reserve", Figure: store + "_conflicts_per_admission_8_contended", Value: float64(c.conflicts) / float64(c.admitted), Unit: "conflicts"}
		if err := rec.Record(f); err != nil {
			t.Fatal(err)
		}
	}
	c := runThroughput(t, memOpen(t), 8, 50, true)
	u := runThroughput(t, memOpen(t), 8, 50, false)
	record("memstore", c, u)
	if zktest.Available() != nil {
		t.Logf("skipping ZooKeeper figures: %v", zktest.Available())
		return
	}
	ens := zktest.StartT(t, 3)
	zk := func(t *testing.T) func(t *testing.T) coord.Store {
		root := fmt.Sprintf("/bench-%d", time.Now().UnixNano())
		return func(t *testing.T) coord.Store {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := zkstore.Open(ctx, zkstore.Config{Servers: ens.Servers(), Root: root})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	c = runThroughput(t, zk(t), 8, 25, true)
	u = runThroughput(t, zk(t), 8, 25, false)
	record("zookeeper", c, u)
}
