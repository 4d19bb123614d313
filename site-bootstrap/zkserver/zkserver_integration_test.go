//go:build integration

package zkserver_test

import (
	"context"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/site-bootstrap/proc"
	"github.com/musubi-fabric/musubi/site-bootstrap/zkserver"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func member(id int, p []int) coord.Member {
	return coord.Member{ID: id, Host: "127.0.0.1", QuorumPort: p[0], ElectionPort: p[1], Role: coord.Participant, ClientHost: "127.0.0.1", ClientPort: p[2]}
}

func start(t *testing.T, c zkserver.Config, java, cp string) {
	t.Helper()
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	if d := c.FileState(); d != "" {
		t.Fatalf("after Write, FileState = %q", d)
	}
	if _, err := proc.Start(proc.Spec{Argv: c.Command(java, cp), Dir: c.Dir, PIDFile: c.PIDPath(), LogFile: c.OutPath(), Marker: c.Marker()}, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server %d log:\n%s", c.ID, proc.Tail(c.LogPath(), 40))
		}
		if _, err := proc.Stop(context.Background(), c.PIDPath(), c.Marker(), 5*time.Second); err != nil {
			t.Error(err)
		}
	})
}

func waitMode(t *testing.T, ctx context.Context, addr string, want ...string) string {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var mode string
	for {
		mode, _ = zkserver.Mode(ctx, addr)
		if slices.Contains(want, mode) {
			return mode
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: mode %q, want one of %v", addr, mode, want)
		case <-tick.C:
		}
	}
}

// TestGrowFromOne starts a one-server ensemble that can grow (standalone
// off, reconfiguration on, super digest from zoo.cfg) and adds a second
// server the way a joining site does: started with the membership plus
// itself, then added by reconfiguration as the super identity.
func TestGrowFromOne(t *testing.T) {
	java, cp, err := zkserver.Find()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	super := coord.Credential{User: "musubi-super", Password: "test-super-password"}
	p := freePorts(t, 6)
	m1, m2 := member(1, p[0:3]), member(2, p[3:6])
	dir := t.TempDir()
	c1 := zkserver.Config{Dir: dir + "/zk1", ID: 1, Members: []coord.Member{m1}, TickTime: time.Second, SuperDigest: super.DigestID(), NoForceSync: true}
	t0 := time.Now()
	start(t, c1, java, cp)
	waitMode(t, ctx, m1.ClientAddr(), "leader")
	t.Logf("one-server ensemble serving after %v", time.Since(t0))
	if st, _ := os.Stat(c1.Dir); st.Mode().Perm() != 0o700 {
		t.Errorf("server directory mode %v, want 0700", st.Mode().Perm())
	}
	if !c1.Started() {
		t.Error("Started() false after the server ran")
	}

	admin, err := zkstore.Open(ctx, zkstore.Config{Servers: []string{m1.ClientAddr()}, Credentials: []coord.Credential{super}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	got, err := admin.Members(ctx)
	if err != nil || len(got) != 1 || got[0].Spec() != m1.Spec() {
		t.Fatalf("members %v, %v", got, err)
	}

	c2 := zkserver.Config{Dir: dir + "/zk2", ID: 2, Members: []coord.Member{m1, m2}, TickTime: time.Second, SuperDigest: super.DigestID(), NoForceSync: true}
	t0 = time.Now()
	start(t, c2, java, cp)
	if err := admin.AddMember(ctx, m2); err != nil {
		t.Fatal(err)
	}
	t.Logf("server 2 added after %v", time.Since(t0))
	waitMode(t, ctx, m2.ClientAddr(), "follower", "leader")
	got, err = admin.Members(ctx)
	if err != nil || len(got) != 2 || coord.Voters(got) != 2 {
		t.Fatalf("members %v, %v", got, err)
	}
	// ZooKeeper now owns the membership: it moved zoo.cfg to a new dynamic
	// file, and FileState still reports the server as configured.
	if d := c2.FileState(); d != "" {
		t.Errorf("after reconfiguration FileState = %q", d)
	}
	data, _ := os.ReadFile(c2.StaticPath())
	t.Logf("zoo.cfg after reconfiguration:\n%s", data)
	if !strings.Contains(string(data), "zoo.cfg.dynamic.") {
		t.Errorf("zoo.cfg was not moved to a versioned dynamic file:\n%s", data)
	}
	if err := c2.Write(); err != nil {
		t.Fatal(err)
	}
	if data2, _ := os.ReadFile(c2.StaticPath()); string(data2) != string(data) {
		t.Errorf("Write after the start changed zoo.cfg:\n%s\nto\n%s", data, data2)
	}

	// A session without the super identity may not reconfigure.
	plain, err := zkstore.Open(ctx, zkstore.Config{Servers: []string{m2.ClientAddr()}, Credentials: []coord.Credential{{User: "x", Password: "y"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.RemoveMember(ctx, 2); err == nil {
		t.Fatal("reconfiguration without the super identity succeeded")
	}
	t0 = time.Now()
	if err := admin.RemoveMember(ctx, 2); err != nil {
		t.Fatal(err)
	}
	t.Logf("server 2 removed after %v", time.Since(t0))
	got, err = plain.Members(ctx)
	if err != nil || len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("members after removal %v, %v", got, err)
	}
}
