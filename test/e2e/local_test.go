//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/sitenet"
	"github.com/musubi-fabric/musubi/node/localfed"
	"github.com/musubi-fabric/musubi/site-bootstrap/zkserver"
)

// localFed is one `musubi local` federation under test, in its own
// directory; Cleanup runs `musubi local down` whatever happened.
type localFed struct {
	t   *testing.T
	dir string
}

// newLocalFed skips when a prerequisite is missing (root, Open vSwitch,
// ZooKeeper, tgtd) and fails when a local federation is already on this
// machine (its namespace names are fixed).
func newLocalFed(t *testing.T) *localFed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: musubi local up needs root (network namespaces)")
	}
	for _, p := range []string{"ip", "ethtool", "ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "tgtd"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: %s not installed (make deps)", p)
		}
	}
	if _, _, err := zkserver.Find(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	names, err := sitenet.ListNetns()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, localfed.NetnsPrefix) {
			t.Fatalf("namespace %s exists: another local federation runs on this machine (musubi local down --dir ITS-DIR)", n)
		}
	}
	base, err := os.MkdirTemp("/tmp", "mlocal-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	f := &localFed{t: t, dir: filepath.Join(base, "fed")}
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
		out, code := f.musubi("local", "down", "--dir", f.dir)
		if code != 0 {
			t.Errorf("cleanup: local down: exit %d\n%s", code, out)
		}
		if t.Failed() && os.Getenv("MUSUBI_E2E_KEEP") != "" {
			t.Logf("kept %s", base)
			return
		}
		os.RemoveAll(base)
	})
	return f
}

func (f *localFed) musubi(args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, musubiBin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), exitCode(err)
}

func (f *localFed) mustRun(args ...string) (string, time.Duration) {
	f.t.Helper()
	t0 := time.Now()
	out, code := f.musubi(args...)
	d := time.Since(t0)
	if code != 0 {
		f.t.Fatalf("musubi %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out, d
}

// exec runs `musubi local exec` with its own streams.
func (f *localFed) exec(stdin string, args ...string) result {
	f.t.Helper()
	cmd := exec.Command(musubiBin, append([]string{"local", "exec", "--dir", f.dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(err)}
	if r.code < 0 {
		f.t.Fatalf("local exec %v: %v", args, err)
	}
	return r
}

func (f *localFed) dumpLogs() {
	st, err := localfed.Load(f.dir)
	if err != nil {
		return
	}
	for _, s := range st.Sites {
		for _, p := range []string{s.BootLog, s.PeerLog} {
			if b, err := os.ReadFile(p); err == nil {
				f.t.Logf("--- %s:\n%s", p, tail(string(b), 30))
			}
		}
	}
}

// daemonPIDs are the processes a site's bootstrap and Up started, as
// their pid files and local.json record them.
func (f *localFed) daemonPIDs() map[int]string {
	st, err := localfed.Load(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	pids := map[int]string{}
	for _, s := range st.Sites {
		if s.Peer != nil && s.Peer.PID > 0 {
			pids[s.Peer.PID] = s.Name + " peer"
		}
		for _, pf := range []string{"zk/zookeeper.pid", "ovs/ovsdb-server.pid", "ovs/ovs-vswitchd.pid", "tgt/tgtd.pid"} {
			b, err := os.ReadFile(filepath.Join(s.Dir, pf))
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				pids[pid] = s.Name + " " + pf
			}
		}
	}
	return pids
}

// assertGone checks that no namespace of the federation is left, no
// process it started runs and its directory is gone.
func (f *localFed) assertGone(pids map[int]string) {
	f.t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		f.t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, localfed.NetnsPrefix) {
			f.t.Errorf("namespace left after down: %s", l)
		}
	}
	for pid, what := range pids {
		// A PID reused by another process does not name the directory.
		st := sitenet.ProcState(pid)
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if st != "" && st != "Z" && bytes.Contains(cl, []byte(f.dir)) {
			f.t.Errorf("%s (pid %d) still runs after down: %s", what, pid, bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
		}
	}
	// Nor any other process naming the directory (a daemon started after
	// the pids above were read, by a join a killed up left running).
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if st := sitenet.ProcState(pid); st != "" && st != "Z" && bytes.Contains(cl, []byte(f.dir+"/")) {
			f.t.Errorf("pid %d still runs after down: %s", pid, bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
		}
	}
	if sitenet.LinkExists(context.Background(), "", localfed.HostIface) {
		f.t.Errorf("host link %s left after down", localfed.HostIface)
	}
	if _, err := os.Stat(f.dir); err == nil {
		f.t.Errorf("%s left after down", f.dir)
	}
}

// TestLocalUpStatusExecDown brings up three namespaced sites with `musubi
// local up`, checks them with `local status`, runs commands in a site with
// `local exec`, checks that the sites' overlay came up (a GRE tunnel to
// each other site, BFD up) and that the host reaches every peer's API,
// then takes everything down twice.
func TestLocalUpStatusExecDown(t *testing.T) {
	f := newLocalFed(t)
	out, upTook := f.mustRun("local", "up", "--sites", "3", "--dir", f.dir)
	t.Logf("local up (%v):\n%s", upTook.Round(time.Millisecond), out)
	for _, want := range []string{"[7/7] peers ready", "http://10.200.3.2:7080/", "Admin API token"} {
		if !strings.Contains(out, want) {
			t.Errorf("up's output lacks %q", want)
		}
	}

	// local status: 3 sites, peers ready, an ensemble of 3.
	out, _ = f.mustRun("local", "status", "--dir", f.dir)
	t.Logf("local status:\n%s", out)
	js, _ := f.mustRun("local", "status", "--dir", f.dir, "--output", "json")
	var st localfed.Status
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("status json: %v\n%s", err, js)
	}
	if len(st.Sites) != 3 || len(st.Members) != 3 || len(st.Problems) != 0 || st.Phase != localfed.PhaseUp {
		t.Fatalf("status: %d sites, %d members, phase %s, problems %v", len(st.Sites), len(st.Members), st.Phase, st.Problems)
	}
	for _, s := range st.Sites {
		if !s.NetnsExists || !s.PeerAlive || !s.Ready || s.ZKMode == "" || len(s.Members) != 3 {
			t.Errorf("site %s: %+v", s.Name, s)
		}
	}

	// local exec: the site's environment, streams and exit status.
	r := f.exec("", "s3", "--", "musubi", "site", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "site s3 of federation local") {
		t.Fatalf("exec s3 -- musubi site status: %s", r)
	}
	r = f.exec("", "s3", "--", "musubi", "status")
	if r.code != 0 || !strings.Contains(r.stdout, "3 of 3 live") {
		t.Fatalf("exec s3 -- musubi status: %s", r)
	}
	if r = f.exec("", "s1", "--", "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("exit status not passed through: %s", r)
	}
	if r = f.exec("ping\n", "s2", "--", "sh", "-c", "cat; echo err >&2; ip -o -4 addr show dev br-phy"); r.code != 0 ||
		!strings.HasPrefix(r.stdout, "ping\n") || r.stderr != "err\n" || !strings.Contains(r.stdout, "10.200.2.2/24") {
		t.Errorf("streams or namespace: %s", r)
	}
	// No VC yet: node exec says what to do (the demo's e2e test runs
	// commands in real nodes).
	if r = f.exec("", "s1", "n1", "--", "true"); r.code != 1 || !strings.Contains(r.stderr, "site s1 runs no virtual node yet") {
		t.Errorf("node exec: %s", r)
	}
	// Site bootstrap run again by hand changes nothing: it keeps what up
	// added to the peer's configuration.
	rec, err := localfed.Load(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []localfed.Site{rec.Sites[0], rec.Sites[2]} {
		r = f.exec("", append([]string{s.Name, "--", "musubi"}, localfed.BootArgs(rec, s)...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "nothing to change") {
			t.Errorf("site bootstrap of %s again: %s", s.Name, r)
		}
	}
	if r = f.exec("", "s2", "--", "musubi", "peer", "--check"); r.code != 0 {
		t.Errorf("musubi peer --check in s2: %s", r)
	}

	// The overlay: in each site's Open vSwitch a GRE tunnel to each other
	// site, with BFD up (so the underlay through br-phy carries it).
	for i := 1; i <= 3; i++ {
		site := "s" + strconv.Itoa(i)
		var want []string
		for j := 1; j <= 3; j++ {
			if j != i {
				want = append(want, fmt.Sprintf("10.200.%d.2", j))
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			r = f.exec("", site, "--", "ovs-vsctl", "--bare", "--columns=options,bfd_status", "find", "Interface", "type=gre")
			var remotes []string
			up := 0
			for _, l := range strings.Split(r.stdout, "\n") {
				if ip, ok := strings.CutPrefix(strings.TrimSpace(l), "remote_ip="); ok {
					remotes = append(remotes, strings.Trim(ip, `"`))
				}
				if strings.Contains(l, " state=up") {
					up++
				}
			}
			slices.Sort(remotes)
			if r.code == 0 && slices.Equal(remotes, want) && up == len(want) {
				t.Logf("%s: GRE tunnels to %v, BFD up", site, remotes)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GRE tunnels %v (want %v), %d with BFD up:\n%s", site, remotes, want, up, r)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The host reaches every peer's API on its site address.
	token, err := os.ReadFile(filepath.Join(f.dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Sites {
		req, _ := http.NewRequest("GET", s.API+"/api/v1/topology", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", s.API, err)
		}
		var topo struct {
			Sites []struct{ Name string } `json:"sites"`
		}
		err = json.NewDecoder(resp.Body).Decode(&topo)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || len(topo.Sites) != 3 {
			t.Errorf("%s/api/v1/topology: %s, %v, %+v", s.API, resp.Status, err, topo)
		}
	}

	// A node namespace of site s2 (as the provisioner makes them: a veth
	// into the site's namespace) goes with the federation; one with the
	// same prefix that is not the federation's stays.
	id := strconv.Itoa(os.Getpid())
	node, foreign := "musubi-e2e"+id+"+n1", "musubi-e2e"+id+"-foreign"
	for _, c := range [][]string{
		{"netns", "add", node}, {"netns", "add", foreign},
		{"link", "add", "mve2e" + id, "netns", "mlocal-s2", "type", "veth", "peer", "name", "eth0", "netns", node},
	} {
		if err := ipCmd(c...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, ns := range []string{node, foreign} {
			if sitenet.NetnsExists(ns) {
				_ = ipCmd("netns", "del", ns)
			}
		}
	})

	pids := f.daemonPIDs()
	if len(pids) != 3*5 {
		t.Errorf("recorded processes: %v, want 5 per site", pids)
	}
	out, downTook := f.mustRun("local", "down", "--dir", f.dir)
	t.Logf("local down (%v):\n%s", downTook.Round(time.Millisecond), out)
	out, _ = f.mustRun("local", "down", "--dir", f.dir)
	if !strings.Contains(out, "Nothing to do") {
		t.Errorf("a second down:\n%s", out)
	}
	f.assertGone(pids)
	if sitenet.NetnsExists(node) {
		t.Errorf("the federation's node namespace %s is left", node)
	}
	if !sitenet.NetnsExists(foreign) {
		t.Errorf("down deleted %s, which is not the federation's", foreign)
	}
	t.Logf("timings: local up --sites 3 %v, local down %v", upTook.Round(time.Millisecond), downTook.Round(time.Millisecond))
}

// TestLocalDownAfterCrashedUp kills `musubi local up` (SIGKILL) while the
// second site joins; `local down` then removes everything it had made.
func TestLocalDownAfterCrashedUp(t *testing.T) {
	f := newLocalFed(t)
	cmd := exec.Command(musubiBin, "local", "up", "--sites", "3", "--dir", f.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := localfed.Load(f.dir)
		if err == nil && len(st.Sites) == 3 && st.Sites[1].Bootstrap != "" {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("site 2 never started joining:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t.Logf("local up, killed:\n%s", out.String())
	// What it started may still run: the join it left behind finishes or
	// not; down copes with either.
	pids := f.daemonPIDs()
	if len(pids) == 0 {
		t.Fatal("the killed up had started no daemon: the test did not test a crash mid-way")
	}
	o, took := f.mustRun("local", "down", "--dir", f.dir)
	t.Logf("local down (%v):\n%s", took.Round(time.Millisecond), o)
	f.assertGone(pids)
}
