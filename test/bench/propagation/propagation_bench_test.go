//go:build bench

// Package propagation is the `propagation` benchmark of make bench
// (scripts/bench.sh propagation): how long a change written to ZooKeeper
// takes to reach the files of every agent of a VC. Three agents
// (node/nodesync Syncers, each on its own session attached to another
// server of a real 3-server ensemble, confined by node/vcacl's ACLs) render
// a hosts file and keep a user database (nodesync.FileDB) in temporary
// directories. A peer session makes one change at a time: a new host in
// hosts/, a changed host address, a new node in vc/<vc>/nodes, a new
// account in accounts/ (in turn); the time from the start of the write to
// the moment each agent has written the result to its files is one sample
// (so 3 per change). The baseline, measured in the same run interleaved
// with the changes, is ZooKeeper's own notification delay: from the start
// of a write to the watch event at a session on each server.
//
// Knobs (environment):
//
//	MUSUBI_BENCH_PROPAGATION_CHANGES=200  changes (samples: 3 per change)
package propagation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/benchrec"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/nodesync"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/node/vcacl"
	"github.com/musubi-fabric/musubi/overlay"
)

const agents = 3

func knob(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// target is the change the agents are waiting for.
type target struct {
	host, ip string // a host or node name and its address
	user     string // or an account
	start    time.Time
	done     [agents]chan time.Time
}

func (tg *target) reachedBy(a nodesync.Applied) bool {
	switch {
	case tg.user != "" && a.Kind == nodesync.KindAccounts:
		return slices.Contains(a.Users, tg.user)
	case tg.host != "" && a.Kind == nodesync.KindHosts:
		for _, e := range a.Hosts {
			if e.IP.String() == tg.ip && slices.Contains(e.Names, tg.host) {
				return true
			}
		}
	}
	return false
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBenchPropagation(t *testing.T) {
	changes := knob("MUSUBI_BENCH_PROPAGATION_CHANGES", 200)
	if err := zktest.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ens, err := zktest.Start(ctx, zktest.Options{Servers: 3, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ens.Stop(); err != nil {
			t.Error(err)
		}
	}()
	servers := ens.Servers()
	open := func(first int, creds []coord.Credential, acl []coord.ACL) coord.Store {
		t.Helper()
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: append(servers[first:], servers[:first]...),
			Root: coord.FederationRoot("bench"), Credentials: creds, DefaultACL: acl})
		if err != nil {
			t.Fatal(err)
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
	fed := coord.Credential{User: "musubi-federation", Password: "bench-federation-secret"}
	keys, err := vcacl.NewKeys(fed)
	must(err)
	pol := keys.Policy()
	peer := vcacl.Wrap(open(0, []coord.Credential{fed}, nil), pol)
	must(pol.InitFederation(ctx, peer))
	must(pol.CreateVC(ctx, peer, "v"))
	sec, err := keys.AgentSecret("v")
	must(err)

	// The agents.
	var mu sync.Mutex
	var cur *target
	var wg sync.WaitGroup
	runCtx, stopAgents := context.WithCancel(ctx)
	defer func() {
		stopAgents()
		wg.Wait()
	}()
	for i := range agents {
		dir := t.TempDir()
		hosts := filepath.Join(dir, "hosts")
		must(os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644))
		must(os.MkdirAll(filepath.Join(dir, "root", "etc"), 0o755))
		must(os.WriteFile(filepath.Join(dir, "root", "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644))
		s, err := nodesync.New(nodesync.Config{
			Store: open(i, sec.Credentials(), sec.DefaultACL()), VC: "v", HostsFile: hosts,
			Users: &nodesync.FileDB{Root: filepath.Join(dir, "root")},
			OnApplied: func(a nodesync.Applied) {
				mu.Lock()
				tg := cur
				mu.Unlock()
				if tg != nil && tg.reachedBy(a) {
					select {
					case tg.done[i] <- a.At:
					default: // already reached
					}
				}
			},
		})
		must(err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(runCtx); err != nil {
				t.Errorf("agent %d: %v", i, err)
			}
		}()
	}

	// The baseline's watchers: one session on each server.
	var watchers []coord.Store
	for i := range agents {
		watchers = append(watchers, open(i, []coord.Credential{fed}, nil))
	}
	must(coord.EnsurePath(ctx, peer, "/bench-baseline"))

	var base, all, hostsLat, acctLat []time.Duration
	deadline := 10 * time.Second
	for i := range changes {
		// Baseline sample: a child created under a watched directory.
		var chans []<-chan coord.Event
		for _, w := range watchers {
			_, _, ch, err := w.ChildrenW(ctx, "/bench-baseline")
			must(err)
			chans = append(chans, ch)
		}
		start := time.Now()
		_, err := peer.Create(ctx, fmt.Sprintf("/bench-baseline/c%05d", i), []byte("x"), coord.Persistent, nil)
		must(err)
		for j, ch := range chans {
			select {
			case <-ch:
				base = append(base, time.Since(start))
			case <-time.After(deadline):
				t.Fatalf("baseline %d: no event at watcher %d", i, j)
			}
		}

		// The change.
		tg := &target{}
		for j := range tg.done {
			tg.done[j] = make(chan time.Time, 1)
		}
		// Each change is one write (its record made beforehand), so that
		// the sample starts with the write, as the baseline's does.
		var p string
		var data []byte
		create := true
		switch i % 4 {
		case 0: // a new federation host
			tg.host, tg.ip = fmt.Sprintf("host%04d", i), fmt.Sprintf("192.168.%d.%d", i/250, i%250+1)
			p, data = coord.HostPath(tg.host), jsonOf(t, nodesync.HostRecord{Name: tg.host, IP: netip.MustParseAddr(tg.ip)})
		case 1: // a host moves
			tg.host, tg.ip = fmt.Sprintf("host%04d", i-1), fmt.Sprintf("172.16.%d.%d", i/250, i%250+1)
			p, data = coord.HostPath(tg.host), jsonOf(t, nodesync.HostRecord{Name: tg.host, IP: netip.MustParseAddr(tg.ip)})
			create = false
		case 2: // a new node of the VC
			tg.host, tg.ip = fmt.Sprintf("v-node%04d", i), fmt.Sprintf("10.%d.%d.%d", 1+i/62500, i/250%250, i%250+1)
			p, data = coord.VCNodePath("v", tg.host), jsonOf(t, overlayctl.NodeRecord{Node: tg.host, VC: "v", Site: "s1",
				Port: "tap" + strconv.Itoa(i), VLAN: 42, MAC: overlay.MAC{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, IP: netip.MustParseAddr(tg.ip)})
		default: // a new account, as node/api records it
			tg.user = fmt.Sprintf("user%04d", i)
			p, data = coord.AccountPath(tg.user), jsonOf(t, api.Account{User: tg.user, UID: 20000 + i, GID: 20000 + i, Shell: "/bin/sh",
				Home: "/home/" + tg.user, SSHKeys: []string{}, Created: time.Now().UTC()})
		}
		write := func() error {
			if create {
				_, err := peer.Create(ctx, p, data, coord.Persistent, nil)
				return err
			}
			_, err := peer.Set(ctx, p, data, coord.AnyVersion)
			return err
		}
		mu.Lock()
		cur = tg
		mu.Unlock()
		tg.start = time.Now()
		must(write())
		for j := range agents {
			select {
			case at := <-tg.done[j]:
				d := at.Sub(tg.start)
				all = append(all, d)
				if tg.user != "" {
					acctLat = append(acctLat, d)
				} else {
					hostsLat = append(hostsLat, d)
				}
			case <-time.After(deadline):
				t.Fatalf("change %d (%+v): agent %d did not apply it within %v", i, tg, j, deadline)
			}
		}
	}

	rec := benchrec.New(os.Stdout)
	record := func(f benchrec.Figure) {
		f.Bench = "propagation"
		if err := rec.Record(f); err != nil {
			t.Error(err)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	bp50, bp99 := benchrec.Percentile(base, 50), benchrec.Percentile(base, 99)
	p50, p99 := benchrec.Percentile(all, 50), benchrec.Percentile(all, 99)
	record(benchrec.Figure{Figure: "zk_watch_p50_ms", Value: ms(bp50), Unit: "ms"})
	record(benchrec.Figure{Figure: "zk_watch_p99_ms", Value: ms(bp99), Unit: "ms"})
	record(benchrec.Figure{Figure: "propagation_p50_ms", Value: ms(p50), Unit: "ms"}.WithBaseline("zk_watch_p50_ms", ms(bp50)))
	record(benchrec.Figure{Figure: "propagation_p99_ms", Value: ms(p99), Unit: "ms", Goal: "< 100 ms"}.WithBaseline("zk_watch_p99_ms", ms(bp99)))
	record(benchrec.Figure{Figure: "propagation_max_ms", Value: ms(slices.Max(all)), Unit: "ms"})
	record(benchrec.Figure{Figure: "propagation_hosts_p99_ms", Value: ms(benchrec.Percentile(hostsLat, 99)), Unit: "ms"})
	record(benchrec.Figure{Figure: "propagation_accounts_p99_ms", Value: ms(benchrec.Percentile(acctLat, 99)), Unit: "ms"})
	record(benchrec.Figure{Figure: "propagation_samples", Value: float64(len(all)), Unit: "samples"})
	if p99 >= 100*time.Millisecond {
		// Recorded against its goal, as every figure; a loaded machine
		// (see the baseline) does not fail the run.
		t.Logf("propagation p99 %v misses the goal (< 100 ms); ZooKeeper's own watch p99 was %v", p99, bp99)
	}
}
