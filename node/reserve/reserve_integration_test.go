//go:build integration

package reserve

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/zktest"
)

var rootSeq atomic.Int64

// zkOpen returns an opener of sessions on the ensemble, all under one
// fresh chroot.
func zkOpen(t *testing.T, ens *zktest.Ensemble) func(t *testing.T) coord.Store {
	root := fmt.Sprintf("/reserve-%d-%d", time.Now().UnixNano(), rootSeq.Add(1))
	return func(t *testing.T) coord.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := zkstore.Open(ctx, zkstore.Config{Servers: ens.Servers(), Root: root})
		if err != nil {
			t.Fatalf("open zkstore: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close zkstore: %v", err)
			}
		})
		return s
	}
}

// TestZooKeeper runs the concurrency and throughput tests against a real
// 3-server ensemble, each worker on its own session.
func TestZooKeeper(t *testing.T) {
	ens := zktest.StartT(t, 3)
	t.Run("ConcurrentAdmissions", func(t *testing.T) {
		res := runConcurrent(t, zkOpen(t, ens), 8, 12, nil)
		t.Logf("zookeeper: %d admitted, %d refused in %v: %.0f decisions/s, %.0f admissions/s; %d commits, %d conflicts",
			res.admitted, res.refused, res.elapsed.Round(time.Millisecond),
			float64(res.admitted+res.refused)/res.elapsed.Seconds(), float64(res.admitted)/res.elapsed.Seconds(),
			res.stats.Attempts, res.stats.Conflicts)
	})
	t.Run("Throughput", func(t *testing.T) {
		c := runThroughput(t, zkOpen(t, ens), 8, 25, true)
		u := runThroughput(t, zkOpen(t, ens), 8, 25, false)
		logThroughput(t, "zookeeper", 8, c, u)
		if u.conflicts != 0 {
			t.Errorf("uncontended run had %d conflicts", u.conflicts)
		}
	})
	t.Run("Lifecycle", func(t *testing.T) {
		// The unit tests' lifecycle against the real store: admit,
		// refuse, release, cancel, purge.
		ctx := ctxT(t)
		now := hr(0)
		r := newReserver(t, zkOpen(t, ens)(t), func(c *Config) { c.Now = func() time.Time { return now } })
		smallFederation().register(t, r)
		if _, err := r.Reserve(ctx, request("a", 8, 4096, win(0, 10))); err != nil {
			t.Fatal(err)
		}
		mustRefuse(t, ignoreRec(r.Reserve(ctx, request("b", 1, 1024, win(5, 6)))))
		if _, err := r.Reserve(ctx, request("a", 1, 1024, win(20, 21))); !errors.Is(err, ErrVCExists) {
			t.Errorf("second a: %v", err)
		}
		if _, err := r.Release(ctx, "a", hr(5)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reserve(ctx, request("b", 1, 1024, win(5, 6))); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Cancel(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		now = hr(6)
		for _, vc := range []string{"a", "b"} {
			if err := r.Purge(ctx, vc); err != nil {
				t.Fatal(err)
			}
		}
		tt, recs := checkConsistent(t, r)
		if len(tt.Entries) != 0 || len(recs) != 0 {
			t.Errorf("left after purge: %d bookings, %d records", len(tt.Entries), len(recs))
		}
	})
}

// TestZooKeeperLeaderKilled: concurrent admissions while the leader is
// killed (SIGKILL) and restarted. Commits in flight get
// coord.ErrConnectionLost and are resolved by reading the request's own
// record: nothing is booked twice or lost, nothing is overcommitted, and
// every request gets an answer.
func TestZooKeeperLeaderKilled(t *testing.T) {
	ens := zktest.StartT(t, 3)
	res := runConcurrent(t, zkOpen(t, ens), 8, 12, func(t *testing.T) {
		ctx := ctxT(t)
		id, err := ens.KillLeader(ctx)
		if err != nil {
			t.Fatalf("kill leader: %v", err)
		}
		t.Logf("killed leader %d", id)
		if err := ens.Start(id); err != nil {
			t.Fatalf("restart %d: %v", id, err)
		}
	})
	t.Logf("zookeeper with leader killed: %d admitted, %d refused in %v; %d commits, %d conflicts, %d unknown outcomes resolved",
		res.admitted, res.refused, res.elapsed.Round(time.Millisecond), res.stats.Attempts, res.stats.Conflicts, res.stats.Resolved)
}
