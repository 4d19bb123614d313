package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node/nodesync"
	"github.com/musubi-fabric/musubi/node/overlayctl"
)

func syncTestConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{
		VC: "t", QueueRoot: testQueueRoot, Node: "n1", Slots: 1, Memory: 1 << 30,
		Spool: filepath.Join(dir, "spool"), Socket: filepath.Join(dir, "agent.sock"),
		SessionTimeout: 10 * time.Second, HostUpdate: time.Hour, Runner: newFakeRunner(),
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// TestServeWithSync: the agent renders its VC's nodes into the hosts file
// and creates the federation's users under the accounts root, and stops
// cleanly.
func TestServeWithSync(t *testing.T) {
	srv := memstore.New()
	st := srv.Connect()
	t.Cleanup(func() { _ = st.Close() })
	w := srv.Connect()
	t.Cleanup(func() { _ = w.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hosts := filepath.Join(t.TempDir(), "hosts")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	applied := make(chan nodesync.Applied, 100)
	sc := SyncConfig{HostsFile: hosts, AccountsRoot: root, OnApplied: func(a nodesync.Applied) {
		select {
		case applied <- a:
		default:
		}
	}}
	done := make(chan error, 1)
	actx, stop := context.WithCancel(ctx)
	go func() { done <- ServeWithSync(actx, st, syncTestConfig(t), sc) }()

	if err := overlayctl.PutNode(ctx, w, overlayctl.NodeRecord{Node: "n2", VC: "t", Site: "s", Port: "p", VLAN: 5,
		IP: netip.MustParseAddr("10.5.0.2")}); err != nil {
		t.Fatal(err)
	}
	if err := coord.EnsurePath(ctx, w, coord.AccountsDir); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"user": "alice", "uid": 10000, "gid": 10000, "shell": "/bin/sh", "home": "/home/alice"})
	if _, err := w.Create(ctx, coord.AccountPath("alice"), data, coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	var gotHost, gotUser bool
	for !gotHost || !gotUser {
		select {
		case a := <-applied:
			if a.Kind == nodesync.KindHosts && len(a.Hosts) == 1 && a.Hosts[0].Names[0] == "n2" {
				gotHost = true
			}
			if a.Kind == nodesync.KindAccounts && len(a.Users) == 1 && a.Users[0] == "alice" {
				gotUser = true
			}
		case err := <-done:
			t.Fatalf("agent stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("node record rendered %v, account applied %v", gotHost, gotUser)
		}
	}
	if data, _ := os.ReadFile(hosts); !strings.Contains(string(data), "10.5.0.2\tn2\n") {
		t.Errorf("hosts file:\n%s", data)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc", "passwd")); !strings.Contains(string(data), "alice:x:10000:10000:") {
		t.Errorf("passwd:\n%s", data)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("ServeWithSync after cancel: %v", err)
	}
}

// TestServeWithSyncStopsOnSyncFailure: a session that may not read the
// records stops the agent with the reason.
func TestServeWithSyncStopsOnSyncFailure(t *testing.T) {
	srv := memstore.New()
	fed := coord.Credential{User: "fed", Password: "pw"}
	owner := srv.Connect(memstore.WithCredentials(fed), memstore.WithDefaultACL(coord.DefaultACL([]coord.Credential{fed})))
	t.Cleanup(func() { _ = owner.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := coord.EnsurePath(ctx, owner, coord.HostsDir); err != nil {
		t.Fatal(err)
	}
	st := srv.Connect()
	t.Cleanup(func() { _ = st.Close() })
	err := ServeWithSync(ctx, st, syncTestConfig(t), SyncConfig{HostsFile: filepath.Join(t.TempDir(), "hosts"), AccountsRoot: "-"})
	if !errors.Is(err, coord.ErrNoAuth) {
		t.Fatalf("ServeWithSync without read access: %v, want ErrNoAuth", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the agent did not stop by itself")
	}
}
