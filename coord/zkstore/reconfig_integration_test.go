//go:build integration

package zkstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/internal/zktest"
)

// TestEnsembleReconfig changes the membership of a real 3-server ensemble
// whose servers know a super digest: removing and re-adding a voter, the
// refusals (no super identity, an ID taken by another server, an absent
// server), and demoting a voter to an observer.
func TestEnsembleReconfig(t *testing.T) {
	if err := zktest.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	super := coord.Credential{User: "musubi-super", Password: "s3cret-for-the-test"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flags := append(slices.Clone(zktest.DefaultJVMFlags), "-Dzookeeper.DigestAuthenticationProvider.superDigest="+super.DigestID())
	e, err := zktest.Start(ctx, zktest.Options{Servers: 3, JVMFlags: flags, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s", e.LogTail(1, 30)+e.LogTail(2, 30)+e.LogTail(3, 30))
		}
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	}()
	admin, err := Open(ctx, Config{Servers: e.Servers(), Credentials: []coord.Credential{super}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	plain, err := Open(ctx, Config{Servers: e.Servers()[:1], Credentials: []coord.Credential{{User: "peer", Password: "p"}}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	members, err := plain.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	zm := e.Members()
	if len(members) != 3 {
		t.Fatalf("members %v", members)
	}
	for i, m := range members {
		if m.ID != zm[i].ID || m.Spec() != zm[i].Spec() || m.ClientAddr() != zm[i].ClientAddr() {
			t.Errorf("member %d = %s (client %s), want server.%d=%s", i, m, m.ClientAddr(), zm[i].ID, zm[i].Spec())
		}
	}

	// Without the super identity the ensemble refuses.
	if err := plain.RemoveMember(ctx, 3); !errors.Is(err, coord.ErrNoAuth) {
		t.Fatalf("remove without super identity: %v, want ErrNoAuth", err)
	}
	// An ID taken by another server.
	imposter := members[2]
	imposter.ClientPort++
	if err := admin.AddMember(ctx, imposter); !errors.Is(err, coord.ErrExists) {
		t.Fatalf("add over server 3: %v, want ErrExists", err)
	}
	// Adding what is there is a no-op.
	if err := admin.AddMember(ctx, members[2]); err != nil {
		t.Fatalf("re-add server 3 as it is: %v", err)
	}

	t0 := time.Now()
	if err := admin.RemoveMember(ctx, 3); err != nil {
		t.Fatal(err)
	}
	t.Logf("remove server 3: %v", time.Since(t0))
	if err := admin.RemoveMember(ctx, 3); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("remove server 3 twice: %v, want ErrNotFound", err)
	}
	got, err := plain.Members(ctx)
	if err != nil || len(got) != 2 || got[0].ID != 1 || got[1].ID != 2 {
		t.Fatalf("after remove: %v, %v", got, err)
	}
	// The data service goes on (after a leader election when server 3
	// led: a request in flight then has an unknown outcome).
	for {
		_, err := admin.Create(ctx, "/reconfig-test", nil, coord.Persistent, nil)
		if err == nil || errors.Is(err, coord.ErrExists) {
			break
		}
		if !coord.Retryable(err) || ctx.Err() != nil {
			t.Fatal(err)
		}
	}

	// Server 3 comes back as an observer, the way a joining site does it:
	// restarted with the current membership plus itself.
	obs := members[2]
	obs.Role = coord.Observer
	if err := e.Kill(3); err != nil {
		t.Fatal(err)
	}
	appendToDynamicConfig(t, filepath.Join(e.Dir(), "zk3", "zoo.cfg"), obs.String())
	t0 = time.Now()
	if err := e.Start(3); err != nil {
		t.Fatal(err)
	}
	if err := admin.AddMember(ctx, obs); err != nil {
		t.Fatal(err)
	}
	t.Logf("add server 3 as observer: %v", time.Since(t0))
	got, err = plain.Members(ctx)
	if err != nil || len(got) != 3 || got[2].Role != coord.Observer || coord.Voters(got) != 2 {
		t.Fatalf("after add: %v, %v", got, err)
	}
	waitMode(t, ctx, e, 3, "observer")
}

// appendToDynamicConfig adds a line to the dynamic configuration file the
// server's static configuration names (ZooKeeper rewrites both).
func appendToDynamicConfig(t *testing.T, static, line string) {
	t.Helper()
	data, err := os.ReadFile(static)
	if err != nil {
		t.Fatal(err)
	}
	var dyn string
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "dynamicConfigFile="); ok {
			dyn = v
		}
	}
	if dyn == "" {
		t.Fatalf("%s names no dynamicConfigFile:\n%s", static, data)
	}
	f, err := os.OpenFile(dyn, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + line + "\n"); err != nil {
		t.Fatal(err)
	}
}

func waitMode(t *testing.T, ctx context.Context, e *zktest.Ensemble, id int, want string) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var mode string
	for {
		mode, _ = e.Mode(ctx, id)
		if mode == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("server %d mode %q, want %q", id, mode, want)
		case <-tick.C:
		}
	}
}
