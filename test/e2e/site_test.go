//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	sitebootstrap "github.com/musubi-fabric/musubi/site-bootstrap"
	"github.com/musubi-fabric/musubi/site-bootstrap/proc"
	"github.com/musubi-fabric/musubi/site-bootstrap/zkserver"
)

// siteNet is a WAN of sites on this machine: one network namespace per
// site ("<prefix>s<i>", address 10.201.0.<i>/24 on eth0) and a transit
// namespace ("<prefix>t") whose bridge joins them.
type siteNet struct {
	t      *testing.T
	prefix string
	base   string // state directories: <base>/s<i>
	n      int
}

func (w *siteNet) ns(i int) string       { return fmt.Sprintf("%ss%d", w.prefix, i) }
func (w *siteNet) addr(i int) string     { return fmt.Sprintf("10.201.0.%d", i) }
func (w *siteNet) stateDir(i int) string { return filepath.Join(w.base, fmt.Sprintf("s%d", i)) }
func (w *siteNet) zkAddr(i int) string   { return w.addr(i) + ":2181" }

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newSiteNet creates the namespaces; everything is removed in t.Cleanup,
// after the sites' daemons were stopped.
func newSiteNet(t *testing.T, n int) *siteNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("skipping: %v", err)
	}
	if _, _, err := zkserver.Find(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	w := &siteNet{t: t, prefix: "msite-" + id + "-", base: "/tmp/msite-" + id, n: n}
	t.Cleanup(w.cleanup)
	tr := w.prefix + "t"
	steps := [][]string{
		{"netns", "add", tr},
		{"-n", tr, "link", "set", "lo", "up"},
		{"-n", tr, "link", "add", "br0", "type", "bridge"},
		{"-n", tr, "link", "set", "br0", "up"},
	}
	for i := 1; i <= n; i++ {
		ns := w.ns(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", tr, "link", "add", fmt.Sprintf("s%d", i), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", tr, "link", "set", fmt.Sprintf("s%d", i), "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", w.addr(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(w.base, 0o700); err != nil {
		t.Fatal(err)
	}
	return w
}

// cleanup stops every site's daemons (musubi site stop, then by the pid
// files the sites wrote, for processes the test's commands started),
// deletes the namespaces and the state directories.
func (w *siteNet) cleanup() {
	t := w.t
	for i := 1; i <= w.n; i++ {
		dir := w.stateDir(i)
		if _, err := os.Stat(filepath.Join(dir, "site.json")); err == nil {
			if out, err := w.musubi(i, "site", "stop", "--state-dir", dir); err != nil {
				t.Logf("site %d stop: %v\n%s", i, err, out)
			}
		}
		if t.Failed() {
			t.Logf("site %d ZooKeeper log tail:\n%s", i, proc.Tail(filepath.Join(dir, "zk", "zookeeper.log"), 25))
		}
		// Whatever is still running of this site (e.g. after a failed
		// stop): only the pids its own files name, checked by marker.
		for _, d := range []struct{ pid, marker string }{
			{filepath.Join(dir, "zk", "zookeeper.pid"), filepath.Join(dir, "zk", "zoo.cfg")},
			{filepath.Join(dir, "ovs", "ovs-vswitchd.pid"), filepath.Join(dir, "ovs", "db.sock")},
			{filepath.Join(dir, "ovs", "ovsdb-server.pid"), filepath.Join(dir, "ovs", "conf.db")},
			{filepath.Join(dir, "tgt", "tgtd.pid"), "portal=" + w.addr(i) + ":3260"},
		} {
			if stopped, err := proc.Stop(context.Background(), d.pid, d.marker, 2*time.Second); stopped || err != nil {
				t.Logf("site %d: stopped a leftover daemon (%s): %v", i, d.pid, err)
			}
		}
	}
	for i := 1; i <= w.n; i++ {
		if err := ipCmd("netns", "del", w.ns(i)); err != nil {
			t.Log(err)
		}
	}
	if err := ipCmd("netns", "del", w.prefix+"t"); err != nil {
		t.Log(err)
	}
	if !t.Failed() || os.Getenv("MUSUBI_E2E_KEEP") == "" {
		os.RemoveAll(w.base)
	} else {
		t.Logf("state directories kept in %s", w.base)
	}
}

// musubi runs the binary inside site i's namespace.
func (w *siteNet) musubi(i int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", w.ns(i), musubiBin}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// bootFlags are the flags every site is bootstrapped with: a 1 s tick and
// no fsync keep three ensembles' worth of servers light on the test host.
func (w *siteNet) bootFlags(i int) []string {
	return []string{"--site", fmt.Sprintf("s%d", i), "--addr", w.addr(i), "--state-dir", w.stateDir(i),
		"--zk-tick", "1s", "--zk-no-fsync", "--wait-timeout", "60s"}
}

func (w *siteNet) mustRun(i int, args ...string) (string, time.Duration) {
	w.t.Helper()
	t0 := time.Now()
	out, err := w.musubi(i, args...)
	d := time.Since(t0)
	if err != nil {
		w.t.Fatalf("site %d: musubi %s: %v\n%s", i, strings.Join(args, " "), err, out)
	}
	w.t.Logf("site %d: musubi %s (%v):\n%s", i, args[1], d.Round(time.Millisecond), out)
	return out, d
}

func (w *siteNet) status(i int) sitebootstrap.Status {
	w.t.Helper()
	out, err := w.musubi(i, "site", "status", "--state-dir", w.stateDir(i), "--output", "json")
	var st sitebootstrap.Status
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
		w.t.Fatalf("site %d: status: %v, %v\n%s", i, err, jerr, out)
	}
	if err != nil {
		w.t.Fatalf("site %d: status exit %v (a step is not done):\n%s", i, err, out)
	}
	return st
}

// assertFederation checks, as site i sees it, the ensemble's members (ids
// and roles) and the registered sites.
func (w *siteNet) assertFederation(i int, wantIDs []int, wantSites []string) sitebootstrap.Status {
	w.t.Helper()
	st := w.status(i)
	var ids []int
	for _, m := range st.Members {
		ids = append(ids, m.ID)
		if m.Role != coord.Participant {
			w.t.Errorf("site %d sees server %d as %s, want participant (fewer than %d voters)", i, m.ID, m.Role, coord.MaxVoters)
		}
		if want := w.zkAddr(m.ID); m.ClientAddr() != want {
			w.t.Errorf("server %d client address %s, want %s", m.ID, m.ClientAddr(), want)
		}
	}
	var sites []string
	for _, s := range st.Sites {
		sites = append(sites, s.Name)
		if s.Gateway == "" || s.ZKServer == "" {
			w.t.Errorf("site record %+v lacks gateway or ZooKeeper server", s)
		}
	}
	if !slices.Equal(ids, wantIDs) || !slices.Equal(sites, wantSites) {
		w.t.Fatalf("site %d sees members %v and sites %v, want %v and %v", i, ids, sites, wantIDs, wantSites)
	}
	if !zkserver.Serving(st.Mode) {
		w.t.Fatalf("site %d's ZooKeeper server does not serve (mode %q)", i, st.Mode)
	}
	return st
}

// TestSiteInitJoinLeave bootstraps a federation of three sites, each in its
// own network namespace with its own ZooKeeper server, Open vSwitch and
// tgtd: site 1 inits it, sites 2 and 3 join while it runs, then site 3
// leaves; the ensemble's membership (/zookeeper/config) and the sites/
// records follow, as every remaining site sees them, and every command is
// re-runnable without changes.
func TestSiteInitJoinLeave(t *testing.T) {
	w := newSiteNet(t, 3)
	t0 := time.Now()

	out, initTime := w.mustRun(1, append([]string{"site", "init", "--federation", "e2e"}, w.bootFlags(1)...)...)
	if !strings.Contains(out, "federation.token") {
		t.Errorf("init does not say where the token is:\n%s", out)
	}
	w.assertFederation(1, []int{1}, []string{"s1"})
	out, _ = w.mustRun(1, append([]string{"site", "init", "--federation", "e2e"}, w.bootFlags(1)...)...)
	if !strings.Contains(out, "nothing to change") {
		t.Errorf("a second init changed something:\n%s", out)
	}

	token := filepath.Join(w.base, "token")
	data, err := os.ReadFile(filepath.Join(w.stateDir(1), "federation.token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// A wrong token is refused before anything starts.
	bad := filepath.Join(w.base, "bad-token")
	tok, err := sitebootstrap.ParseToken(string(data))
	if err != nil {
		t.Fatal(err)
	}
	tok.Credential.Password = strings.Repeat("x", 43)
	if err := sitebootstrap.WriteTokenFile(bad, tok); err != nil {
		t.Fatal(err)
	}
	out, err = w.musubi(2, append([]string{"site", "join", "--seed", w.zkAddr(1), "--token-file", bad}, w.bootFlags(2)...)...)
	if err == nil || !strings.Contains(out, "token rejected") {
		t.Fatalf("join with a wrong token: %v\n%s", err, out)
	}
	t.Logf("site 2: join with a wrong token refused:\n%s", out)
	for _, f := range []string{"site.json", "federation.token", "zk"} {
		if _, err := os.Stat(filepath.Join(w.stateDir(2), f)); err == nil {
			t.Fatalf("a rejected join left %s", f)
		}
	}

	join := func(i int) time.Duration {
		_, d := w.mustRun(i, append([]string{"site", "join", "--seed", w.zkAddr(1), "--token-file", token}, w.bootFlags(i)...)...)
		return d
	}
	join2 := join(2)
	w.assertFederation(2, []int{1, 2}, []string{"s1", "s2"})
	join3 := join(3)
	for i := 1; i <= 3; i++ {
		w.assertFederation(i, []int{1, 2, 3}, []string{"s1", "s2", "s3"})
	}
	out, _ = w.mustRun(3, append([]string{"site", "join", "--seed", w.zkAddr(1), "--token-file", token}, w.bootFlags(3)...)...)
	if !strings.Contains(out, "nothing to change") {
		t.Errorf("a second join changed something:\n%s", out)
	}

	_, leave3 := w.mustRun(3, "site", "leave", "--state-dir", w.stateDir(3))
	for i := 1; i <= 2; i++ {
		w.assertFederation(i, []int{1, 2}, []string{"s1", "s2"})
	}
	if _, err := os.Stat(filepath.Join(w.stateDir(3), "site.json")); err == nil {
		t.Error("site 3 still has a site state after leaving")
	}
	if _, ok := proc.Running(filepath.Join(w.stateDir(3), "zk", "zookeeper.pid"), filepath.Join(w.stateDir(3), "zk", "zoo.cfg")); ok {
		t.Error("site 3's ZooKeeper server still runs after leaving")
	}
	if mode, _ := w.musubi(3, "site", "leave", "--state-dir", w.stateDir(3)); !strings.Contains(mode, "nothing to leave") {
		t.Errorf("a second leave: %s", mode)
	}
	// The remaining sites still write: a re-run init on site 1 rewrites
	// its peer configuration through the ensemble.
	w.mustRun(1, append([]string{"site", "init", "--federation", "e2e"}, w.bootFlags(1)...)...)
	t.Logf("timings: init %v, join site 2 %v, join site 3 %v, leave site 3 %v, whole test %v",
		initTime.Round(time.Millisecond), join2.Round(time.Millisecond), join3.Round(time.Millisecond),
		leave3.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
