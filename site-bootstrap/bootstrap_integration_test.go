//go:build integration

package sitebootstrap_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	sitebootstrap "github.com/musubi-fabric/musubi/site-bootstrap"
	"github.com/musubi-fabric/musubi/site-bootstrap/zkserver"
)

func dial(ctx context.Context, servers []string, root string, creds []coord.Credential) (sitebootstrap.Session, error) {
	return zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, Credentials: creds})
}

type tWriter struct {
	t      *testing.T
	prefix string
}

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// siteConfig is site i on loopback with free ports, without OVS and tgtd
// (the e2e test runs them, in namespaces).
func siteConfig(t *testing.T, base string, i int) sitebootstrap.Config {
	var ports []int
	var ls []net.Listener
	for range 3 {
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
	return sitebootstrap.Config{
		Site: fmt.Sprintf("s%d", i), Federation: "itest", Addr: "127.0.0.1",
		StateDir:   filepath.Join(base, fmt.Sprintf("s%d", i)),
		ClientPort: ports[0], QuorumPort: ports[1], ElectionPort: ports[2],
		TickTime: time.Second, NoForceSync: true, SkipDaemons: []string{"ovs", "tgt"},
		WaitTimeout: 60 * time.Second, Dial: dial, Out: tWriter{t, fmt.Sprintf("s%d: ", i)},
	}
}

func stopAll(t *testing.T, cfgs ...sitebootstrap.Config) {
	for _, c := range cfgs {
		if _, err := sitebootstrap.Stop(context.Background(), c); err != nil && !errors.Is(err, sitebootstrap.ErrNotBootstrapped) {
			t.Errorf("stop %s: %v", c.Site, err)
		}
	}
}

// TestConcurrentJoins: two sites join at once and both pick server id 2;
// the conditional reconfiguration lets one win and the other start over
// with id 3. Then the first site leaves and the two others keep the
// federation.
func TestConcurrentJoins(t *testing.T) {
	if _, _, err := zkserver.Find(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := t.TempDir()
	c1, c2, c3 := siteConfig(t, base, 1), siteConfig(t, base, 2), siteConfig(t, base, 3)
	t.Cleanup(func() { stopAll(t, c1, c2, c3) })
	if _, err := sitebootstrap.Init(ctx, c1, ""); err != nil {
		t.Fatal(err)
	}
	if res, err := sitebootstrap.Init(ctx, c1, ""); err != nil || len(res.Applied) != 0 {
		t.Fatalf("second init: %+v, %v", res, err)
	}
	seed := fmt.Sprintf("127.0.0.1:%d", c1.ClientPort)
	token := c1.TokenPath()

	var wg sync.WaitGroup
	errs := make([]error, 2)
	t0 := time.Now()
	for i, c := range []sitebootstrap.Config{c2, c3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = sitebootstrap.Join(ctx, c, []string{seed}, token)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("two concurrent joins took %v", time.Since(t0))
	st, err := sitebootstrap.ReadStatus(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 || coord.Voters(st.Members) != 3 || len(st.Sites) != 3 {
		t.Fatalf("members %v, sites %v", st.Members, st.Sites)
	}
	ids := map[int]bool{}
	for _, c := range []sitebootstrap.Config{c1, c2, c3} {
		s, err := sitebootstrap.ReadState(c.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		ids[s.ServerID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("server ids %v", ids)
	}

	// The first site leaves: the ensemble goes on with the others.
	t0 = time.Now()
	if _, err := sitebootstrap.Leave(ctx, c1); err != nil {
		t.Fatal(err)
	}
	t.Logf("leave of the first site took %v", time.Since(t0))
	for _, c := range []sitebootstrap.Config{c2, c3} {
		st, err := sitebootstrap.ReadStatus(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Steps {
			if !s.Done {
				t.Errorf("%s: step %s not done: %s %s", c.Site, s.Name, s.Detail, s.Error)
			}
		}
		if len(st.Members) != 2 || len(st.Sites) != 2 || !zkserver.Serving(st.Mode) {
			t.Fatalf("%s after the first site left: members %v, sites %v, mode %q", c.Site, st.Members, st.Sites, st.Mode)
		}
	}
	// The last voters cannot all leave.
	if _, err := sitebootstrap.Leave(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if _, err := sitebootstrap.Leave(ctx, c3); !errors.Is(err, sitebootstrap.ErrLastSite) {
		t.Fatalf("the last site left: %v", err)
	}
	st, err = sitebootstrap.ReadStatus(ctx, c3)
	if err != nil || len(st.Sites) != 1 || len(st.Members) != 1 || !zkserver.Serving(st.Mode) {
		t.Fatalf("the refused leave changed the last site: %+v, %v", st, err)
	}
}
