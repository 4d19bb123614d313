//go:build integration

package zktest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLeaderFailover starts 3 servers, kills the leader, waits for a new
// leader among the other two, restarts the killed server and waits until it
// serves again (as a follower).
func TestLeaderFailover(t *testing.T) {
	e := StartT(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	if got := len(strings.Split(e.ConnectString(), ",")); got != 3 {
		t.Fatalf("ConnectString %q: want 3 addresses", e.ConnectString())
	}
	for id := 1; id <= 3; id++ {
		out, err := FourLetter(ctx, e.Addr(id), "ruok")
		if err != nil || out != "imok" {
			t.Fatalf("ruok on server %d: %q, %v", id, out, err)
		}
	}
	old, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pid := e.PID(old)
	t0 := time.Now()
	if err := e.Kill(old); err != nil {
		t.Fatal(err)
	}
	if e.Running(old) || e.PID(old) != 0 {
		t.Fatalf("server %d (pid %d) still running after Kill", old, pid)
	}
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %d killed; new leader %d after %v", old, leader, time.Since(t0).Round(time.Millisecond))
	if leader == old {
		t.Fatalf("new leader is the killed server %d", old)
	}
	t1 := time.Now()
	if err := e.Restart(old); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitServing(ctx, old); err != nil {
		t.Fatal(err)
	}
	t.Logf("server %d serving again %v after restart", old, time.Since(t1).Round(time.Millisecond))
	if m, err := e.Mode(ctx, old); err != nil || m != "follower" {
		t.Fatalf("restarted server %d: mode %q, %v; want follower", old, m, err)
	}
	if err := e.Start(old); err == nil {
		t.Fatalf("Start of a running server succeeded")
	}
	if l, err := e.Leader(ctx); err != nil || l != leader {
		t.Fatalf("leader after restart: %d, %v; want %d", l, err, leader)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for id := 1; id <= 3; id++ {
		if e.Running(id) {
			t.Fatalf("server %d running after Stop", id)
		}
	}
}

// TestParseMode checks the srvr parser on this build's output, which
// zk.FLWSrvr cannot parse (its version string has an unexpanded variable).
func TestParseMode(t *testing.T) {
	out := "Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2023-04-19 00:00 UTC\nLatency min/avg/max: 0/0.0/0\nReceived: 2\nSent: 1\nConnections: 1\nOutstanding: 0\nZxid: 0x100000000\nMode: follower\nNode count: 5\n"
	if m := ParseMode(out); m != "follower" {
		t.Fatalf("ParseMode = %q", m)
	}
	if m := ParseMode("This ZooKeeper instance is not currently serving requests\n"); m != "" {
		t.Fatalf("ParseMode(not serving) = %q", m)
	}
}
