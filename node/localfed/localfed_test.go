package localfed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	st, sites, err := Plan(Options{Dir: "/var/lib/ml", Sites: 3, WANDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if st.Federation != DefaultFederation || st.Backend != "netns" || st.APIPort != DefaultAPIPort || st.WANDelay != "20ms" ||
		st.TokenFile != "/var/lib/ml/admin.token" || st.NodeNetnsPrefix != "musubi-" || len(st.Sites) != 0 {
		t.Errorf("state %+v", st)
	}
	if len(sites) != 3 {
		t.Fatalf("%d sites", len(sites))
	}
	s2 := sites[1]
	want := Site{Name: "s2", Index: 2, Netns: "mlocal-s2", Dir: "/var/lib/ml/s2", Addr: "10.200.2.2/24", Gateway: "10.200.2.1",
		TransitIface: "s2", API: "http://10.200.2.2:7080", Socket: "/var/lib/ml/s2/peer.sock", PeerConfig: "/var/lib/ml/s2/musubi.json",
		PeerLog: "/var/lib/ml/s2/peer.log", BootLog: "/var/lib/ml/s2/bootstrap.log"}
	if fmt.Sprint(s2) != fmt.Sprint(want) {
		t.Errorf("site 2:\n got %+v\nwant %+v", s2, want)
	}
	if s2.IP() != "10.200.2.2" || s2.ZKAddr() != "10.200.2.2:2181" {
		t.Errorf("IP %s, ZK %s", s2.IP(), s2.ZKAddr())
	}
	for _, s := range sites {
		if strings.HasPrefix(s.Netns, st.NodeNetnsPrefix) {
			t.Errorf("site namespace %s has the provisioner's prefix", s.Netns)
		}
		if l := s.link(); l.TransitNS != TransitNetns || l.Addr.String() != s.Addr || l.Gateway.String() != s.Gateway {
			t.Errorf("link %+v", l)
		}
	}
	init := strings.Join(BootArgs(st, sites[0]), " ")
	if init != "site init --federation local --site s1 --addr 10.200.1.2 --state-dir /var/lib/ml/s1 --ovs-datapath netdev --wait-timeout 60s" {
		t.Errorf("init: %s", init)
	}
	join := strings.Join(BootArgs(st, sites[2]), " ")
	if join != "site join --seed 10.200.1.2:2181 --token-file /var/lib/ml/s1/federation.token --site s3 --addr 10.200.3.2 --state-dir /var/lib/ml/s3 --ovs-datapath netdev --wait-timeout 60s" {
		t.Errorf("join: %s", join)
	}
}

func TestPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Sites: -1}, "--sites"},
		{Options{Sites: MaxSites + 1}, "--sites"},
		{Options{WANDelay: -time.Millisecond}, "--wan-delay"},
		{Options{Dir: "relative"}, "--dir"},
		{Options{Dir: "/"}, "--dir"},
		{Options{Dir: "/" + strings.Repeat("x", 90)}, "too long"},
		{Options{Backend: "kvm"}, "--backend"},
		{Options{Federation: "no/slash"}, "--federation"},
		{Options{APIPort: 2181}, "API port"},
		{Options{APIPort: 3260}, "API port"},
	} {
		_, _, err := Plan(tc.o)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalid naming %s", tc.o, err, tc.want)
		}
	}
}

func TestStateSaveLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNoFederation) {
		t.Fatalf("empty directory: %v", err)
	}
	st, sites, err := Plan(Options{Dir: dir, Sites: 2})
	if err != nil {
		t.Fatal(err)
	}
	st.Sites = sites
	st.Sites[0].Peer = &Proc{Argv: []string{"musubi", "peer"}, PID: 42, Start: "1234"}
	st.Transit, st.Phase = TransitNetns, PhaseUp
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, st)
	}
	s, err := back.Site("s2")
	if err != nil || s.Index != 2 {
		t.Errorf("Site(s2): %+v, %v", s, err)
	}
	if _, err := back.Site("s9"); !errors.Is(err, ErrNoSite) || !strings.Contains(err.Error(), "[s1 s2]") {
		t.Errorf("Site(s9): %v", err)
	}
	if ns := back.Namespaces(); !slices.Equal(ns, []string{"mlocal-s1", "mlocal-s2", "mlocal-wan"}) {
		t.Errorf("namespaces %v", ns)
	}
	if err := os.WriteFile(StatePath(dir), []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("other version: %v", err)
	}
}

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); !errors.Is(err, ErrBusy) {
		t.Errorf("second lock: %v, want ErrBusy", err)
	}
	l.release()
	l2, err := lockDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.release()
}

// fullState is a federation whose Up finished.
func fullState(t *testing.T) State {
	t.Helper()
	st, sites, err := Plan(Options{Dir: "/var/lib/ml", Sites: 3})
	if err != nil {
		t.Fatal(err)
	}
	st.CreatedDir, st.Transit, st.HostLink, st.HostRoute = true, TransitNetns, HostIface, "10.200.0.0/16"
	for _, s := range sites {
		s.Link, s.Bootstrap, s.Phy = true, "done", true
		s.Peer = &Proc{PID: 100 + s.Index, Start: "7"}
		st.Sites = append(st.Sites, s)
	}
	return st
}

func actionsString(acts []Action) string {
	var b strings.Builder
	for _, a := range acts {
		fmt.Fprintf(&b, "%s %s%s%s%s\n", a.Kind, a.Site, a.Netns, a.Link, a.Path)
	}
	return b.String()
}

func TestPlanDown(t *testing.T) {
	all := []string{"mlocal-s1", "mlocal-s2", "mlocal-s3", "mlocal-wan", "other"}
	for _, tc := range []struct {
		name  string
		state func(State) State
		obs   Observed
		want  string
	}{
		{"complete", func(s State) State { return s }, Observed{Netns: all, NodeNetns: []string{"musubi-vc1+n1"}, HostLink: true}, `
stop-peer s3
stop-peer s2
stop-peer s1
stop-site s3
stop-site s2
stop-site s1
delete-host-link mlocal-h
stop-netns-procs musubi-vc1+n1
delete-netns musubi-vc1+n1
stop-netns-procs mlocal-s3
delete-netns mlocal-s3
stop-netns-procs mlocal-s2
delete-netns mlocal-s2
stop-netns-procs mlocal-s1
delete-netns mlocal-s1
stop-netns-procs mlocal-wan
delete-netns mlocal-wan
remove /var/lib/ml
`},
		{"crashed while site 2 joined", func(s State) State {
			s.Sites = s.Sites[:2]
			s.Sites[1].Bootstrap, s.Sites[1].Phy = "started", false
			for i := range s.Sites {
				s.Sites[i].Peer = nil
			}
			return s
		}, Observed{Netns: all, HostLink: true}, `
stop-site s2
stop-site s1
delete-host-link mlocal-h
stop-netns-procs mlocal-s2
delete-netns mlocal-s2
stop-netns-procs mlocal-s1
delete-netns mlocal-s1
stop-netns-procs mlocal-wan
delete-netns mlocal-wan
remove /var/lib/ml
`},
		{"crashed before the first site", func(s State) State {
			s.Sites, s.HostLink = nil, ""
			return s
		}, Observed{Netns: []string{"mlocal-wan"}}, `
stop-netns-procs mlocal-wan
delete-netns mlocal-wan
remove /var/lib/ml
`},
		{"peer recorded, not started; namespaces gone already", func(s State) State {
			s.Sites[2].Peer = &Proc{Argv: []string{"x"}}
			return s
		}, Observed{}, `
stop-peer s3
stop-peer s2
stop-peer s1
stop-site s3
stop-site s2
stop-site s1
remove /var/lib/ml
`},
		{"directory not made by up", func(s State) State {
			s.CreatedDir = false
			s.Sites = s.Sites[:1]
			s.Sites[0].Bootstrap, s.Sites[0].Peer = "", nil
			return s
		}, Observed{Netns: all, HostLink: false}, `
stop-netns-procs mlocal-s1
delete-netns mlocal-s1
stop-netns-procs mlocal-wan
delete-netns mlocal-wan
remove /var/lib/ml/s1
remove /var/lib/ml/admin.token
remove /var/lib/ml/api-tokens.json
remove /var/lib/ml/local.json
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := actionsString(PlanDown(tc.state(fullState(t)), tc.obs))
			if want := strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestPlanDownNeverTouchesOthers(t *testing.T) {
	st := fullState(t)
	obs := Observed{Netns: []string{"mlocal-s1", "mlocal-s4", "musubi-vc9+n1", "movs-abc-s1"}, HostLink: true}
	for _, a := range PlanDown(st, obs) {
		if a.Netns != "" && !st.ownsNetns(a.Netns) {
			t.Errorf("%s: not the federation's namespace", a)
		}
	}
}

func TestExecSpec(t *testing.T) {
	for _, tc := range []struct {
		args             string
		site, node, argv string
		err              string
	}{
		{args: "s1 -- musubi status", site: "s1", argv: "musubi status"},
		{args: "s2 n1 -- hostname -f", site: "s2", node: "n1", argv: "hostname -f"},
		{args: "s1 -- sh -c -- x", site: "s1", argv: "sh -c -- x"},
		{args: "s1 musubi status", err: "the command after --"},
		{args: "-- true", err: "name the site"},
		{args: "s1 n1 x -- true", err: "want <site> [<node>]"},
		{args: "s1 --", err: "no command"},
		{args: "s1 -v -- true", err: "flags go before"},
	} {
		site, node, argv, err := ExecSpec(strings.Fields(tc.args))
		if tc.err != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || site != tc.site || node != tc.node || strings.Join(argv, " ") != tc.argv {
			t.Errorf("%q: %q %q %q %v", tc.args, site, node, argv, err)
		}
	}
}

func TestExecEnv(t *testing.T) {
	st := fullState(t)
	s := st.Sites[1]
	env := ExecEnv(st, s, []string{"HOME=/root", "PATH=/usr/bin:/bin", "MUSUBI_API=https://elsewhere:7443", "MUSUBI_STATE_DIR=/x"}, "/opt/musubi/bin")
	want := []string{
		"HOME=/root", "PATH=/opt/musubi/bin:/usr/bin:/bin",
		"MUSUBI_API=/var/lib/ml/s2/peer.sock", "MUSUBI_TOKEN_FILE=/var/lib/ml/admin.token",
		"MUSUBI_CONFIG=/var/lib/ml/s2/musubi.json", "MUSUBI_STATE_DIR=/var/lib/ml/s2",
		"MUSUBI_LOCAL_DIR=/var/lib/ml", "MUSUBI_LOCAL_SITE=s2",
		"OVS_RUNDIR=/var/lib/ml/s2/ovs", "OVS_DBDIR=/var/lib/ml/s2/ovs", "OVS_LOGDIR=/var/lib/ml/s2/ovs",
		"TGT_IPC_SOCKET=/var/lib/ml/s2/tgt/tgtd.sock",
	}
	if !slices.Equal(env, want) {
		t.Errorf("env:\n got %q\nwant %q", env, want)
	}
	if argv := ExecArgv(s, []string{"musubi", "status"}); strings.Join(argv, " ") != "ip netns exec mlocal-s2 musubi status" {
		t.Errorf("argv %q", argv)
	}
}

func TestRunSteps(t *testing.T) {
	var out bytes.Buffer
	boom := errors.New("boom\nsecond line")
	ran := 0
	err := runSteps(context.Background(), &out, []upStep{
		{"first", func(context.Context) (string, error) { ran++; return "detail", nil }},
		{"a longer one", func(context.Context) (string, error) { ran++; return "", boom }},
		{"never", func(context.Context) (string, error) { ran++; return "", nil }},
	})
	if !errors.Is(err, boom) || ran != 2 {
		t.Fatalf("err %v, ran %d", err, ran)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "[1/3] first         done in ") || !strings.HasSuffix(lines[0], " (detail)") ||
		!strings.HasPrefix(lines[1], "[2/3] a longer one  FAILED after ") || !strings.HasSuffix(lines[1], ": boom") {
		t.Errorf("progress:\n%s", out.String())
	}
}

// Down on a directory that records nothing does nothing, needs no root,
// and can run any number of times.
func TestDownNothing(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		found, err := Down(context.Background(), DownOptions{Dir: dir})
		if found || err != nil {
			t.Fatalf("found %v, err %v", found, err)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the directory went: %v", err)
	}
}

// Down removes the files of a federation whose namespaces are gone and
// keeps what Up did not make.
func TestDownFilesOnly(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "not-ours")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, sites, err := Plan(Options{Dir: dir, Sites: 1})
	if err != nil {
		t.Fatal(err)
	}
	st.Sites = sites
	// A namespace name no other test or federation on this machine uses:
	// this Down must find it missing and touch nothing outside dir.
	st.Sites[0].Netns = fmt.Sprintf("mlocal-unit-%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := os.MkdirAll(sites[0].Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	found, err := Down(context.Background(), DownOptions{Dir: dir, Exe: "/bin/false"})
	if !found || err != nil {
		t.Fatalf("found %v, err %v", found, err)
	}
	for _, p := range []string{sites[0].Dir, StatePath(dir)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file Up did not make went: %v", err)
	}
}
