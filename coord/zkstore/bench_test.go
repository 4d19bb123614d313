//go:build bench

package zkstore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/benchrec"
	"github.com/musubi-fabric/musubi/internal/zktest"
)

// benchOps is the minimal surface both clients share in the benchmark.
type benchOps struct {
	create func(path string, data []byte) error
	get    func(path string) error
	close  func()
}

func openRaw(t *testing.T, server string) benchOps {
	c, ev, err := zk.Connect([]string{server}, 10*time.Second, zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for c.State() != zk.StateHasSession {
		select {
		case <-ev:
		case <-deadline:
			t.Fatalf("raw client: no session with %s", server)
		}
	}
	acl := zk.WorldACL(zk.PermAll)
	return benchOps{
		create: func(p string, d []byte) error { _, err := c.Create(p, d, 0, acl); return err },
		get:    func(p string) error { _, _, err := c.Get(p); return err },
		close:  c.Close,
	}
}

func openWrapped(t *testing.T, server string) benchOps {
	ctx := context.Background()
	s, err := zkstore.Open(ctx, zkstore.Config{Servers: []string{server}, SessionTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return benchOps{
		create: func(p string, d []byte) error { _, err := s.Create(ctx, p, d, coord.Persistent, nil); return err },
		get:    func(p string) error { _, _, err := s.Get(ctx, p); return err },
		close:  func() { s.Close() },
	}
}

// measure runs op on n clients (client i pinned to server i mod 3) for d and
// returns operations per second.
func measure(t *testing.T, ens *zktest.Ensemble, open func(*testing.T, string) benchOps, n int, d time.Duration, op func(c benchOps, client, i int) error) float64 {
	servers := ens.Servers()
	clients := make([]benchOps, n)
	for i := range clients {
		clients[i] = open(t, servers[i%len(servers)])
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	var wg sync.WaitGroup
	counts := make([]int, n)
	errs := make([]error, n)
	start := time.Now()
	end := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; time.Now().Before(end); k++ {
				if err := op(clients[i], i, k); err != nil {
					errs[i] = err
					return
				}
				counts[i]++
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for i, c := range counts {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		total += c
	}
	return float64(total) / elapsed.Seconds()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestBenchCoord compares coord/zkstore with the raw go-zookeeper client on
// one 3-server ensemble: create/s and get/s for 1 and 16 concurrent clients
// (one session each, spread over the servers). Rounds alternate between the
// two clients and the median of each is reported, to even out noise.
func TestBenchCoord(t *testing.T) {
	ens := zktest.StartT(t, 3)
	rec := benchrec.New(os.Stdout)
	rounds, dur := 5, 1500*time.Millisecond
	if v, err := strconv.Atoi(os.Getenv("MUSUBI_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	setup := openRaw(t, ens.Servers()[0])
	for _, p := range []string{"/b", "/b/data"} {
		if err := setup.create(p, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	setup.close()
	impls := []struct {
		name string
		open func(*testing.T, string) benchOps
	}{{"raw", openRaw}, {"zkstore", openWrapped}}
	data := make([]byte, 16)
	ops := []struct {
		name string
		fn   func(tag string) func(c benchOps, client, i int) error
	}{
		{"create", func(tag string) func(benchOps, int, int) error {
			return func(c benchOps, client, i int) error {
				return c.create(fmt.Sprintf("/b/%s-c%d-%d", tag, client, i), data)
			}
		}},
		{"get", func(string) func(benchOps, int, int) error {
			return func(c benchOps, _, _ int) error { return c.get("/b/data") }
		}},
	}
	for _, clients := range []int{1, 16} {
		for _, op := range ops {
			rates := map[string][]float64{}
			for r := 0; r < rounds; r++ {
				for _, im := range impls {
					tag := fmt.Sprintf("%s-n%d-r%d", im.name, clients, r)
					rates[im.name] = append(rates[im.name], measure(t, ens, im.open, clients, dur, op.fn(tag)))
				}
			}
			raw, wrapped := median(rates["raw"]), median(rates["zkstore"])
			t.Logf("%s clients=%d raw=%v zkstore=%v", op.name, clients, rates["raw"], rates["zkstore"])
			f := benchrec.Figure{Bench: "coord", Figure: fmt.Sprintf("%s_per_s_clients_%d", op.name, clients), Value: wrapped, Unit: "ops/s", Goal: ">= 0.9"}
			if err := rec.Record(f.WithBaseline("go-zookeeper raw", raw)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
