//go:build integration

package nodesync

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/node/vcacl"
	"github.com/musubi-fabric/musubi/overlay"
)

// TestThreeAgentsZooKeeper: on a real 3-server ensemble, three agents
// (Syncers on sessions of their own, each attached to another server,
// holding only their VC's and the agents credentials) with hosts files and
// user databases of their own; a peer creates an account through node/api
// and a node record through node/overlayctl, with the federation's ACL
// policy: both appear on every agent, and go again.
func TestThreeAgentsZooKeeper(t *testing.T) {
	ens := zktest.StartT(t, 3)
	servers := ens.Servers()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func(first int, creds []coord.Credential, acl []coord.ACL) coord.Store {
		t.Helper()
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: append(servers[first:], servers[:first]...),
			Root: coord.FederationRoot("sync"), Credentials: creds, DefaultACL: acl, SessionTimeout: 4 * time.Second})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fed := coord.Credential{User: "musubi-federation", Password: "federation-secret-for-the-test"}
	keys, err := vcacl.NewKeys(fed)
	must(err)
	pol := keys.Policy()
	peer := vcacl.Wrap(open(0, []coord.Credential{fed}, nil), pol)
	must(pol.InitFederation(ctx, peer))
	must(pol.CreateVC(ctx, peer, "v"))
	must(PutHost(ctx, peer, coord.HostsDir, HostRecord{Name: "site1-gw", IP: netip.MustParseAddr("192.0.2.1")}))
	sec, err := keys.AgentSecret("v")
	must(err)

	type agent struct {
		hosts, root string
		seen        *watcher
		st          *zkstore.Store
	}
	var agents []agent
	for i := range 3 {
		a := agent{hosts: filepath.Join(t.TempDir(), "hosts"), root: newRoot(t), seen: newWatcher()}
		must(os.WriteFile(a.hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644))
		a.st = open(i, sec.Credentials(), sec.DefaultACL()).(*zkstore.Store)
		s, err := New(Config{Store: a.st, VC: "v", HostsFile: a.hosts,
			Users: &FileDB{Root: a.root}, OnApplied: a.seen.onApplied})
		must(err)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("agent %d: Run: %v", i, err)
			}
		})
		agents = append(agents, a)
	}
	for i, a := range agents {
		a.seen.waitFor(t, KindHosts, fmt.Sprintf("agent %d: first rendering", i), hasHost("site1-gw", "192.0.2.1"))
		a.seen.waitFor(t, KindAccounts, fmt.Sprintf("agent %d: first accounts", i), func(Applied) bool { return true })
	}

	key := testKey(7, "alice@laptop")
	start := time.Now()
	acct, err := api.CreateAccount(ctx, peer, api.Account{User: "alice", SSHKeys: []string{key}, PasswordHash: hashA}, start)
	must(err)
	must(overlayctl.PutNode(ctx, peer, overlayctl.NodeRecord{Node: "v-node9", VC: "v", Site: "s2", Port: "tap9", VLAN: 42,
		MAC: overlay.MAC{2, 0, 0, 0, 0, 9}, IP: netip.MustParseAddr("10.42.0.9")}))
	for i, a := range agents {
		h := a.seen.waitFor(t, KindHosts, fmt.Sprintf("agent %d: the new node", i), hasHost("v-node9", "10.42.0.9"))
		u := a.seen.waitFor(t, KindAccounts, fmt.Sprintf("agent %d: the new account", i), hasUser("alice", true))
		t.Logf("agent %d: node rendered %v, account applied %v after the writes began", i, h.At.Sub(start).Round(time.Millisecond), u.At.Sub(start).Round(time.Millisecond))
		hostsData := readFile(t, a.hosts)
		if !strings.HasPrefix(hostsData, "127.0.0.1\tlocalhost\n"+BlockBegin) || !strings.Contains(hostsData, "10.42.0.9\tv-node9\n") {
			t.Errorf("agent %d: hosts file:\n%s", i, hostsData)
		}
		wantLine(t, "passwd", readFile(t, filepath.Join(a.root, "etc", "passwd")),
			fmt.Sprintf("alice:x:%d:%d:%s:/home/alice:/bin/bash", acct.UID, acct.GID, ManagedGECOS))
		wantLine(t, "shadow", readFile(t, filepath.Join(a.root, "etc", "shadow")), "alice:"+hashA+":"+
			fmt.Sprint(time.Now().Unix()/86400)+":0:99999:7:::")
		if got := readFile(t, filepath.Join(a.root, "home", "alice", ".ssh", "authorized_keys")); !strings.Contains(got, key+"\n") {
			t.Errorf("agent %d: authorized_keys:\n%s", i, got)
		}
		checkOwner(t, filepath.Join(a.root, "home", "alice", ".ssh", "authorized_keys"), acct.UID, acct.GID, 0o600)
	}

	must(api.DeleteAccount(ctx, peer, "alice"))
	must(overlayctl.DeleteNode(ctx, peer, "v", "v-node9"))
	for i, a := range agents {
		a.seen.waitFor(t, KindHosts, fmt.Sprintf("agent %d: the node gone", i), hasHost("v-node9", "-"))
		a.seen.waitFor(t, KindAccounts, fmt.Sprintf("agent %d: the account gone", i), hasUser("alice", false))
		noLineFor(t, "passwd", readFile(t, filepath.Join(a.root, "etc", "passwd")), "alice")
		wantLine(t, "passwd", readFile(t, filepath.Join(a.root, "etc", "passwd")), "carol:x:1000:1000:Carol,,,:/home/carol:/bin/bash")
	}

	// The server agent 1 is attached to dies: its session moves to
	// another server with its watches, and a change still reaches every
	// agent (the peer retries its write if its own server was the one).
	victim := 0
	for _, m := range ens.Members() {
		if m.ClientAddr() == agents[1].st.Server() {
			victim = m.ID
		}
	}
	if victim == 0 {
		t.Fatalf("agent 1 attached to %q, not a member", agents[1].st.Server())
	}
	must(ens.Kill(victim))
	t.Logf("killed server %d, agent 1's", victim)
	for {
		err := PutHost(ctx, peer, coord.HostsDir, HostRecord{Name: "after-loss", IP: netip.MustParseAddr("192.0.2.77")})
		if err == nil {
			break
		}
		if !coord.Retryable(err) || ctx.Err() != nil {
			t.Fatalf("write after the server loss: %v", err)
		}
		select { // back off while the ensemble elects a leader
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	for i, a := range agents {
		a.seen.waitFor(t, KindHosts, fmt.Sprintf("agent %d: a host written after the server loss", i), hasHost("after-loss", "192.0.2.77"))
	}
	must(ens.Start(victim))
}
