//go:build integration

package zkstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/musubi-fabric/musubi/coord"
)

// Benchmarks of the wrapper against the raw go-zookeeper client on the
// same server (server 1 of the shared ensemble), one session each:
//
//	go test -tags integration -run '^$' -bench . -benchtime 3000x ./coord/zkstore
//
// The goal is wrapper >= 0.9x raw in ops/s.

func benchStores(b *testing.B) (*Store, *zk.Conn, string) {
	e := sharedEnsemble(b)
	root := uniqueRoot(b)
	s, _ := openTest(b, e, Config{Root: root, Servers: []string{e.Addr(1)}})
	conn, _, err := zk.Connect([]string{e.Addr(1)}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkLogger{testLogger(b)}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	ctx := context.Background()
	for _, p := range []string{"/raw", "/wrap"} {
		if _, err := s.Create(ctx, p, nil, coord.Persistent, nil); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "/data", []byte("some bytes of data"), coord.Persistent, nil); err != nil {
		b.Fatal(err)
	}
	waitHasSession(b, conn)
	return s, conn, root
}

func waitHasSession(b *testing.B, conn *zk.Conn) {
	deadline := time.Now().Add(20 * time.Second)
	for conn.State() != zk.StateHasSession {
		if time.Now().After(deadline) {
			b.Fatal("raw client: no session")
		}
		time.Sleep(5 * time.Millisecond) // polling the library's state; no event to wait on
	}
}

var benchSeq atomic.Int64

func BenchmarkCreate(b *testing.B) {
	s, conn, root := benchStores(b)
	ctx := context.Background()
	acl := zk.WorldACL(zk.PermAll)
	for _, par := range []int{1, 16} {
		b.Run("raw/p"+strconv.Itoa(par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := root + "/raw/n" + strconv.FormatInt(benchSeq.Add(1), 10)
					if _, err := conn.Create(p, nil, 0, acl); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("zkstore/p"+strconv.Itoa(par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := "/wrap/n" + strconv.FormatInt(benchSeq.Add(1), 10)
					if _, err := s.Create(ctx, p, nil, coord.Persistent, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	s, conn, root := benchStores(b)
	ctx := context.Background()
	for _, par := range []int{1, 16} {
		b.Run("raw/p"+strconv.Itoa(par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := conn.Get(root + "/data"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("zkstore/p"+strconv.Itoa(par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := s.Get(ctx, "/data"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkInterleaved alternates raw and wrapped calls in one loop, so
// load from elsewhere on the host hits both alike, and reports each one's
// mean latency and the wrapper's throughput relative to raw
// (raw-ns / zkstore-ns; goal >= 0.9).
func BenchmarkInterleaved(b *testing.B) {
	s, conn, root := benchStores(b)
	ctx := context.Background()
	acl := zk.WorldACL(zk.PermAll)
	run := func(b *testing.B, raw, wrapped func(i int) error) {
		var rawT, wrapT time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if err := raw(i); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := wrapped(i); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			rawT += t1.Sub(t0)
			wrapT += t2.Sub(t1)
		}
		b.ReportMetric(float64(rawT.Nanoseconds())/float64(b.N), "raw-ns/op")
		b.ReportMetric(float64(wrapT.Nanoseconds())/float64(b.N), "zkstore-ns/op")
		b.ReportMetric(float64(rawT)/float64(wrapT), "ratio")
	}
	b.Run("create", func(b *testing.B) {
		run(b, func(int) error {
			_, err := conn.Create(root+"/raw/i"+strconv.FormatInt(benchSeq.Add(1), 10), nil, 0, acl)
			return err
		}, func(int) error {
			_, err := s.Create(ctx, "/wrap/i"+strconv.FormatInt(benchSeq.Add(1), 10), nil, coord.Persistent, nil)
			return err
		})
	})
	b.Run("get", func(b *testing.B) {
		run(b, func(int) error {
			_, _, err := conn.Get(root + "/data")
			return err
		}, func(int) error {
			_, _, err := s.Get(ctx, "/data")
			return err
		})
	})
}
