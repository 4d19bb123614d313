//go:build integration || bench

// Package provision_test runs the lifecycle reconciler of several sites
// for real: a 3-server ZooKeeper ensemble, one Open vSwitch instance per
// site in its own namespace (internal/ovstest) driven by the site's overlay
// controller, one tgtd per site, iSCSI volumes attached to netns nodes
// through qemu-storage-daemon, and virtual nodes whose agent writes and
// reads back a marker on its volume.
package provision_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/lifecycle"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
	"github.com/musubi-fabric/musubi/node/provision/vlan"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/qemu"
	"github.com/musubi-fabric/musubi/node/reserve"
	"github.com/musubi-fabric/musubi/node/zkrelay"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
)

// root is the federation's chroot.
const root = "/musubi/provisiontest"

// needTools skips unless everything the federation needs is here.
func needTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (namespaces, tgtd, Open vSwitch)")
	}
	for _, p := range []string{"tgtd", "qemu-storage-daemon", "qemu-io", "od", "sha256sum"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install tgt qemu-system-common qemu-utils coreutils)", p)
		}
	}
	if m, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so"); len(m) == 0 {
		t.Skip("skipping: QEMU's iSCSI driver missing (apt-get install qemu-block-extra)")
	}
	if err := zktest.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	if err := ovstest.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// agentScript starts the test's node agent: it writes a 32-byte marker of
// its own at 1 MiB on its volume (MUSUBI_DISK, an NBD URL), reads it back,
// says so, and then runs `musubi agent` (MUSUBI_AGENT_BIN), which
// registers the node in its VC's job queue: that registration is what
// makes the node ready (lifecycle.RegisteredReady). With MUSUBI_GATE set
// it waits for that file first.
const agentScript = `#!/bin/sh
set -u
name="$MUSUBI_VC/$MUSUBI_NODE"
fail() { echo "MUSUBI-NODE-FAILED $name $*"; exit 1; }
if [ -n "${MUSUBI_GATE:-}" ]; then
	while [ ! -e "$MUSUBI_GATE" ]; do sleep 0.05; done
fi
if [ -n "${MUSUBI_DISK:-}" ]; then
	m=$(printf '%s' "$name/$$/$(date +%s%N)" | sha256sum | cut -c1-32)
	printf '%s' "$m" > marker.in
	qemu-io -f raw -c "write -s marker.in 1M 512" "$MUSUBI_DISK" >/dev/null || fail "cannot write the marker"
	got=$(qemu-io -f raw -c "read -v 1M 32" "$MUSUBI_DISK" | awk '/^[0-9a-f]+:/{for(i=2;i<=17;i++) printf "%s",$i}')
	want=$(printf '%s' "$m" | od -An -tx1 | tr -d ' \n')
	[ "$got" = "$want" ] || fail "marker read back as $got, want $want"
	echo "disk ok: marker $m"
else
	m=none
fi
echo "MUSUBI-NODE-UP $name marker=$m ip=$MUSUBI_IP"
# The real agent: the node is ready once it has registered in ZooKeeper,
# which it reaches only through the relay's sockets (MUSUBI_ZK).
exec "$MUSUBI_AGENT_BIN" agent
`

// federation is N sites sharing one ensemble.
type federation struct {
	t     *testing.T
	f     *ovstest.Fabric
	zk    *zktest.Ensemble
	admin coord.Store
	res   *reserve.Reserver
	image string
	agent string
	// musubi is the musubi binary the nodes' agents run; sge the Grid
	// Engine commands' (musubi-sge).
	musubi, sge string
	sites       []*site
	log         *slog.Logger
	// images is the node image store (QEMU); img the built image.
	images image.Store
	img    image.Image
}

// site is one site's peer, minus its API: overlay, drivers, reconciler.
type site struct {
	fed   *federation
	name  string
	s     *ovstest.Site
	store *zkstore.Store
	dir   string
	tgt   *iscsi.Daemon
	vols  *iscsi.Driver
	ports *vlan.Driver
	guard *lifecycle.PortGuard
	nodes *netns.Backend
	qemu  *qemu.Backend // nil until the federation enables QEMU
	att   *lifecycle.NBDAttacher
	host  string
	stor  string
	// kinds is the backend of each compute host ("netns" or "qemu").
	kinds map[string]string
	// relay carries the node agents' ZooKeeper sessions (their namespaces
	// have no route to the ensemble), as the peer's provisioner does.
	relay *zkrelay.Relay

	overlayStop func()

	mu   sync.Mutex
	rec  *running
	gate string // MUSUBI_GATE of the agents of the next builds ("" none)
}

type running struct {
	r      *lifecycle.Reconciler
	cancel context.CancelFunc
	done   chan error
}

func newFederation(t *testing.T, n int) *federation {
	t.Helper()
	needTools(t)
	zk := zktest.StartT(t, 3)
	f := ovstest.NewT(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(&testLog{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fed := &federation{t: t, f: f, zk: zk, log: logger, images: image.Store{Dir: filepath.Join(f.Dir(), "images")}}
	fed.admin = fed.open(ctx, "admin")
	if err := node.InitSchema(ctx, fed.admin); err != nil {
		t.Fatal(err)
	}
	res, err := reserve.New(reserve.Config{Store: fed.admin, Logger: logger.With("who", "test")})
	if err != nil {
		t.Fatal(err)
	}
	fed.res = res
	// The application image: a raw disk with a recognisable first sector.
	fed.image = filepath.Join(f.Dir(), "app.img")
	if err := os.WriteFile(fed.image, []byte("musubi application image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(fed.image, 64<<20); err != nil {
		t.Fatal(err)
	}
	fed.agent = filepath.Join(f.Dir(), "agent.sh")
	if err := os.WriteFile(fed.agent, []byte(agentScript), 0o755); err != nil {
		t.Fatal(err)
	}
	fed.musubi, fed.sge = filepath.Join(f.Dir(), "musubi"), filepath.Join(f.Dir(), "musubi-sge")
	for out, pkg := range map[string]string{fed.musubi: "./cmd/musubi", fed.sge: "./cmd/musubi-sge"} {
		build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		build.Dir = repoRoot()
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: also the guests' agent
		if msg, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	for _, s := range f.Sites() {
		fed.sites = append(fed.sites, fed.addSite(ctx, s))
	}
	return fed
}

func (fed *federation) open(ctx context.Context, who string) *zkstore.Store {
	st, err := zkstore.Open(ctx, zkstore.Config{Servers: fed.zk.Servers(), Root: root, SessionTimeout: 6 * time.Second,
		Logger: fed.log.With("zk", who)})
	if err != nil {
		fed.t.Fatalf("open ZooKeeper session for %s: %v", who, err)
	}
	fed.t.Cleanup(func() { _ = st.Close() })
	return st
}

// addSite starts site s's overlay, tgtd and drivers, and registers its
// host and storage host in the timetable.
func (fed *federation) addSite(ctx context.Context, s *ovstest.Site) *site {
	t := fed.t
	t.Helper()
	st := &site{fed: fed, name: s.Name, s: s, store: fed.open(ctx, s.Name), dir: filepath.Join(fed.f.Dir(), "p"+strconv.Itoa(s.Index)),
		host: s.Name + "-h1", stor: s.Name + "-st1"}
	st.kinds = map[string]string{st.host: netns.Kind}
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st.startOverlay(ctx)
	st.startRelay()
	d, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: filepath.Join(st.dir, "tgt"), Portal: "127.0.0.1:3260",
		ControlPort: 40 + s.Index, Netns: s.NS, Logger: fed.log})
	if err != nil {
		t.Fatal(err)
	}
	st.tgt = d
	t.Cleanup(func() {
		if err := d.Stop(context.Background()); err != nil {
			t.Errorf("%s: stop tgtd: %v", st.name, err)
		}
	})
	st.newDrivers()
	if err := fed.res.RegisterHost(ctx, admission.Host{Name: st.host, Site: st.name, MemoryMiB: 16384, VCPUs: 64}); err != nil {
		t.Fatal(err)
	}
	if err := fed.res.RegisterStorage(ctx, admission.StorageHost{Name: st.stor, Site: st.name, Bytes: 64 << 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.stop)
	return st
}

// newDrivers makes the site's drivers afresh, as a restarted peer does:
// all they know comes from the host (state files, tgtd, OVSDB, /proc).
func (st *site) newDrivers() {
	t := st.fed.t
	log := st.fed.log.With("site", st.name)
	var err error
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.vols, err = iscsi.New(context.Background(), iscsi.Config{Dir: filepath.Join(st.dir, "vols"), Portal: "127.0.0.1:3260",
		Mgmt: st.tgt.Mgmt(), Backend: iscsi.BackendFile, Logger: log}); err != nil {
		t.Fatal(err)
	}
	st.guard = lifecycle.NewPortGuard(st.ports)
	if st.nodes, err = netns.New(netns.Config{StateDir: filepath.Join(st.dir, "nodes"), Ports: st.guard, SwitchNetns: st.s.NS,
		Prefix: st.netnsPrefix(), Ready: lifecycle.RegisteredReady(st.store), ReadyTimeout: 60 * time.Second, StopGrace: 2 * time.Second,
		Logger: log}); err != nil {
		t.Fatal(err)
	}
	if st.att, err = lifecycle.NewNBDAttacher(lifecycle.NBDConfig{Dir: filepath.Join(st.dir, "att"), Netns: st.s.NS, Logger: log}); err != nil {
		t.Fatal(err)
	}
	if st.fed.img.ID != "" {
		if st.qemu, err = qemu.New(qemu.Config{StateDir: filepath.Join(st.dir, "q"), Ports: st.guard, SwitchNetns: st.s.NS,
			Accel: qemu.AccelTCG, StopGrace: 3 * time.Second, Ready: lifecycle.RegisteredReady(st.store), Logger: log}); err != nil {
			t.Fatal(err)
		}
	}
}

// netnsPrefix starts the site's node namespaces: under the fabric's run
// id, so the fabric's sweeper clears them if the test binary dies.
func (st *site) netnsPrefix() string { return st.fed.f.ID + "-n" + strconv.Itoa(st.s.Index) + "-" }

// startOverlay runs the site's overlay part: an ovs.Dataplane whose
// OpenFlow listener is in the site namespace, and the overlay controller.
func (st *site) startOverlay(ctx context.Context) {
	t := st.fed.t
	ln, err := st.s.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := st.fed.log.With("site", st.name)
	var ctlMu sync.Mutex
	var ctl *overlayctl.Controller
	dp, err := ovs.New(ovs.Config{Site: st.name, OVSDB: st.s.OVSDBEndpoint(), Listener: ln, Logger: log.With("component", "ovs"),
		OnLink: func(ev ovs.LinkEvent) {
			ctlMu.Lock()
			c := ctl
			ctlMu.Unlock()
			if c != nil {
				c.ObserveLink(overlayctl.LinkObservation{Remote: ev.RemoteSite, Up: ev.Up, RemoteUp: ev.BFD.RemoteState == overlay.BFDUp, At: ev.At})
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	gw := st.s.Addr.Addr()
	c, err := overlayctl.New(overlayctl.Config{Site: st.name, Gateway: gw, Store: st.store, Dataplane: dp, Logger: log,
		CostQuantum: 5000, CostFloor: 5000,
		Register: func(ctx context.Context, s coord.Store) error {
			return node.RegisterSite(ctx, s, node.SiteRecord{Name: st.name, Gateway: gw.String(), Joined: time.Now().UTC()},
				node.LiveRecord{Peer: st.name + "-test", Since: time.Now().UTC(), Version: "test"})
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctlMu.Lock()
	ctl = c
	ctlMu.Unlock()
	st.ports = vlan.New(dp, log)
	octx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := dp.Run(octx); err != nil {
			t.Errorf("%s: dataplane: %v", st.name, err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := c.Run(octx); err != nil {
			t.Errorf("%s: overlay controller: %v", st.name, err)
		}
	}()
	st.overlayStop = func() { cancel(); wg.Wait() }
}

// config is the site's reconciler configuration.
func (st *site) config() lifecycle.Config {
	return lifecycle.Config{
		Site: st.name, Store: st.store,
		Backends: st.backends(),
		Volumes:  map[string]provision.VolumeDriver{st.stor: st.vols},
		Attacher: st.att, Ports: st.ports, PortGuard: st.guard,
		Images: lifecycle.ImagesFromStore(st.fed.images),
		Agent: func(n lifecycle.NodePlan) vm.Agent {
			st.mu.Lock()
			defer st.mu.Unlock()
			a := vm.Agent{Args: []string{"/bin/sh", st.fed.agent}, Env: st.agentEnv()}
			if st.gate != "" {
				a.Env["MUSUBI_GATE"] = st.gate
			}
			return a
		},
		GuestControl: &lifecycle.GuestControl{Sockets: st.relay.Sockets(), Pipe: []string{st.fed.musubi, "relay-pipe"},
			Env: map[string]string{"MUSUBI_ROOT": root, "MUSUBI_SESSION_TIMEOUT": "10s"}},
		StateDir: filepath.Join(st.dir, "lifecycle"), Parallel: 8,
		RetryMin: 500 * time.Millisecond, RetryMax: 4 * time.Second,
		Logger: st.fed.log.With("site", st.name, "subsystem", "lifecycle"),
	}
}

// backends maps the site's compute hosts to their backends.
func (st *site) backends() map[string]vm.Backend {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := map[string]vm.Backend{}
	for h, k := range st.kinds {
		if k == qemu.Kind {
			m[h] = st.qemu
		} else {
			m[h] = st.nodes
		}
	}
	return m
}

// setKind makes host a compute host of the site with backend kind,
// registering it in the timetable (for the reconcilers started next).
func (st *site) setKind(ctx context.Context, host, kind string) {
	t := st.fed.t
	if kind == qemu.Kind && st.qemu == nil {
		t.Fatal("QEMU is not enabled")
	}
	st.mu.Lock()
	st.kinds[host] = kind
	st.mu.Unlock()
	if err := st.fed.res.RegisterHost(ctx, admission.Host{Name: host, Site: st.name, MemoryMiB: 16384, VCPUs: 64}); err != nil {
		t.Fatal(err)
	}
}

// enableQEMU builds the node image and gives every site a QEMU backend.
func (fed *federation) enableQEMU(ctx context.Context) {
	t := fed.t
	t.Helper()
	needQEMU(t)
	t0 := time.Now()
	img, err := fed.images.Build(ctx, image.Config{Agent: fed.musubi})
	if err != nil {
		t.Fatalf("build the node image: %v", err)
	}
	fed.img = img
	t.Logf("node image %s built in %v", img.ID[:12], time.Since(t0).Round(time.Millisecond))
	for _, st := range fed.sites {
		st.newDrivers()
	}
}

// needQEMU skips unless QEMU and the image builder's inputs are here.
func needQEMU(t *testing.T) {
	t.Helper()
	for _, p := range []string{"qemu-system-x86_64", "mke2fs", "debugfs", "dpkg-query"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install qemu-system-x86 e2fsprogs)", p)
		}
	}
	if err := image.StaticELF(image.DefaultBusybox); err != nil {
		t.Skipf("skipping: %v (apt-get install busybox-static)", err)
	}
}

// agentEnv is the environment of the site's node agents: the real agent
// binary, the relay's sockets, the federation's root.
func (st *site) agentEnv() map[string]string {
	return map[string]string{
		"MUSUBI_AGENT_BIN": st.fed.musubi, "MUSUBI_ZK": strings.Join(st.relay.Addrs(), ","),
		"MUSUBI_ROOT": root, "MUSUBI_SLOTS": "2", "MUSUBI_SESSION_TIMEOUT": "6s",
	}
}

// startRelay serves the site's ZooKeeper relay for its nodes' agents
// until the test ends.
func (st *site) startRelay() {
	t := st.fed.t
	r, err := zkrelay.New(zkrelay.Config{Dir: filepath.Join(st.dir, "zk"), Servers: st.fed.zk.Servers(), Logger: st.fed.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	up, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- r.Run(ctx, func() { close(up) }) }()
	select {
	case <-up:
	case err := <-done:
		cancel()
		t.Fatalf("%s: relay: %v", st.name, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: relay: %v", st.name, err)
		}
	})
	st.relay = r
}

// startReconciler starts a new incarnation of the site's reconciler.
func (st *site) startReconciler() *lifecycle.Reconciler {
	t := st.fed.t
	st.newDrivers()
	r, err := lifecycle.New(st.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	st.mu.Lock()
	st.rec = run
	st.mu.Unlock()
	return r
}

// killReconciler stops the reconciler where it is (a peer killed).
func (st *site) killReconciler() {
	st.mu.Lock()
	run := st.rec
	st.rec = nil
	st.mu.Unlock()
	if run == nil {
		return
	}
	run.cancel()
	select {
	case err := <-run.done:
		if err != nil {
			st.fed.t.Errorf("%s: reconciler: %v", st.name, err)
		}
	case <-time.After(90 * time.Second):
		st.fed.t.Errorf("%s: reconciler did not stop within 90 s", st.name)
	}
}

func (st *site) stop() {
	st.killReconciler()
	st.removeAll()
	if st.overlayStop != nil {
		st.overlayStop()
	}
}

// removeAll removes whatever nodes and attachments the site still has (a
// test that failed before its VCs ended): no guest, agent or
// qemu-storage-daemon may outlive the test.
func (st *site) removeAll() {
	t := st.fed.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st.mu.Lock()
	backends := []vm.Backend{st.nodes}
	if st.qemu != nil {
		backends = append(backends, st.qemu)
	}
	att := st.att
	st.mu.Unlock()
	for _, b := range backends {
		nodes, err := b.List(ctx)
		if err != nil {
			t.Errorf("%s: list %s nodes: %v", st.name, b.Kind(), err)
			continue
		}
		for _, n := range nodes {
			if err := b.Remove(ctx, n.Name); err != nil {
				t.Errorf("%s: remove %s: %v", st.name, n.Name, err)
			}
		}
	}
	if att == nil {
		return
	}
	ats, err := att.List(ctx)
	if err != nil {
		t.Errorf("%s: list attachments: %v", st.name, err)
		return
	}
	for _, a := range ats {
		if err := att.Remove(ctx, a.Name); err != nil {
			t.Errorf("%s: remove attachment %s: %v", st.name, a.Name, err)
		}
	}
}

// reserve admits a VC of n netns nodes spread over every site, its
// window starting after lead and lasting d.
func (fed *federation) reserve(vc string, n int, lead, d time.Duration) reserve.Record {
	fed.t.Helper()
	return fed.reserveReq(admission.Request{VC: vc, Nodes: n, MemoryMiB: 64, VCPUs: 1, DiskBytes: 64 << 20, Image: fed.image}, lead, d)
}

// reserveQEMU admits a VC of n nodes booting the node image, 128 MiB
// each, their root disk as large as the image's.
func (fed *federation) reserveQEMU(vc string, n int, lead, d time.Duration) reserve.Record {
	fed.t.Helper()
	fi, err := os.Stat(fed.img.RootDisk)
	if err != nil {
		fed.t.Fatal(err)
	}
	return fed.reserveReq(admission.Request{VC: vc, Nodes: n, MemoryMiB: 128, VCPUs: 1, DiskBytes: fi.Size(), Image: fed.img.ID}, lead, d)
}

func (fed *federation) reserveReq(req admission.Request, lead, d time.Duration) reserve.Record {
	fed.t.Helper()
	for _, s := range fed.sites {
		req.EachSite = append(req.EachSite, s.name)
	}
	start := time.Now().Add(lead)
	req.Window = admission.Window{Start: start, End: start.Add(d)}
	req.Policy = admission.Spread
	rec, err := fed.res.Reserve(context.Background(), req)
	if err != nil {
		fed.t.Fatal(err)
	}
	return rec
}

// statuses reads every site's status of vc.
func (fed *federation) statuses(vc string) map[string]lifecycle.Status {
	out := map[string]lifecycle.Status{}
	for _, s := range fed.sites {
		if st, found, err := lifecycle.ReadStatus(context.Background(), fed.admin, vc, s.name); err == nil && found {
			out[s.name] = st
		}
	}
	return out
}

// waitReady waits until every site with a share of rec reports it ready,
// and returns the time from the window's start to the last site's ready.
func (fed *federation) waitReady(rec reserve.Record, timeout time.Duration) time.Duration {
	fed.t.Helper()
	sites := rec.Placement.Sites()
	deadline := time.Now().Add(timeout)
	for {
		sts := fed.statuses(rec.VC)
		var last time.Time
		ok := true
		for _, s := range sites {
			st, found := sts[s]
			if !found || st.State != lifecycle.StateReady || st.RequestID != rec.RequestID {
				ok = false
				break
			}
			if st.ReadyAt.After(last) {
				last = st.ReadyAt
			}
		}
		if ok {
			return last.Sub(rec.Window.Start)
		}
		if time.Now().After(deadline) {
			fed.t.Fatalf("%s not ready after %v: %+v", rec.VC, timeout, sts)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// waitPurged waits until the reservation of vc and its subtree are gone.
func (fed *federation) waitPurged(vc string, timeout time.Duration) {
	fed.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, _, err1 := fed.admin.Exists(context.Background(), coord.ReservationPath(vc))
		v, _, err2 := fed.admin.Exists(context.Background(), coord.VCPath(vc))
		if err1 == nil && err2 == nil && !r && !v {
			return
		}
		if time.Now().After(deadline) {
			fed.t.Fatalf("%s not purged after %v (reservation %v, subtree %v, %v %v): %+v", vc, timeout, r, v, err1, err2, fed.statuses(vc))
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// nodeNS is the namespace of a node of the VC on site st.
func (st *site) nodeNS(vc, node string) string { return st.nodes.NetnsName(vc, node) }

// siteOf returns the site object of a placement node.
func (fed *federation) siteOf(name string) *site {
	for _, s := range fed.sites {
		if s.name == name {
			return s
		}
	}
	fed.t.Fatalf("no site %s", name)
	return nil
}

// snapshot lists what the federation's hosts hold that a VC may leave
// behind: tgt targets and accounts, OVS ports on br-int, node namespaces,
// processes (attachment daemons, agents), and files under the sites'
// state directories.
func (fed *federation) snapshot() []string {
	fed.t.Helper()
	ctx := context.Background()
	var out []string
	for _, st := range fed.sites {
		m := st.tgt.Mgmt()
		if o, err := m.Do(ctx, iscsi.Request{Mode: iscsi.ModeTarget, Op: iscsi.OpShow}); err == nil {
			ts, _ := iscsi.ParseTargets(o)
			for _, tg := range ts {
				out = append(out, st.name+" target "+tg.Name)
			}
		} else {
			out = append(out, st.name+" tgt: "+err.Error())
		}
		if o, err := m.Do(ctx, iscsi.Request{Mode: iscsi.ModeAccount, Op: iscsi.OpShow}); err == nil {
			as, _ := iscsi.ParseAccounts(o)
			for _, a := range as {
				out = append(out, st.name+" account "+a)
			}
		}
		// Node ports on br-int (the tunnels come and go with the overlay):
		// by name, and every port marked as a VC's.
		if o, err := st.s.Vsctl(ctx, "list-ports", "br-int"); err == nil {
			for _, p := range strings.Fields(o) {
				if strings.HasPrefix(p, netns.PortPrefix) || strings.HasPrefix(p, qemu.TapPrefix) {
					out = append(out, st.name+" port "+p)
				}
			}
		} else {
			out = append(out, st.name+" ovs-vsctl: "+err.Error())
		}
		if ps, err := st.ports.List(ctx); err == nil {
			for _, p := range ps {
				out = append(out, st.name+" vc port "+p.Name+" of "+p.VC)
			}
		} else {
			out = append(out, st.name+" ports: "+err.Error())
		}
		if o, err := exec.Command("ip", "-n", st.s.NS, "-o", "link", "show").Output(); err == nil {
			for _, line := range strings.Split(string(o), "\n") {
				if f := strings.Fields(line); len(f) > 1 && (strings.HasPrefix(f[1], netns.PortPrefix) || strings.HasPrefix(f[1], qemu.TapPrefix)) {
					out = append(out, st.name+" link "+strings.TrimSuffix(f[1], ":"))
				}
			}
		}
		_ = filepath.WalkDir(st.dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(p, filepath.Join(st.dir, "tgt")) {
				return nil
			}
			out = append(out, st.name+" file "+strings.TrimPrefix(p, st.dir))
			return nil
		})
	}
	if o, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(o), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], fed.f.ID+"-n") {
				out = append(out, "netns "+f[0])
			}
		}
	}
	out = append(out, fed.procs()...)
	sort.Strings(out)
	return out
}

// procs lists the processes of the test's VCs: attachment daemons (by
// their directory) and agents (by their environment).
func (fed *federation) procs() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmd) == 0 {
			continue
		}
		show := strings.ReplaceAll(string(cmd[:min(len(cmd), 60)]), "\x00", " ")
		if bytes.Contains(cmd, []byte(fed.f.Dir())) && (bytes.Contains(cmd, []byte("qemu-storage-daemon")) || bytes.Contains(cmd, []byte("qemu-system"))) {
			out = append(out, "process "+e.Name()+" "+show)
			continue
		}
		if env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil &&
			bytes.Contains(env, []byte("MUSUBI_DISK=nbd+unix:///disk?socket="+fed.f.Dir())) {
			out = append(out, "process "+e.Name()+" "+show)
		}
	}
	return out
}

// agentLog returns the agent output of a node.
func (st *site) agentLog(vc, node string) string {
	ns, err := st.nodes.List(context.Background())
	if err != nil {
		return err.Error()
	}
	for _, n := range ns {
		if n.VC == vc && n.Node == node {
			b, _ := os.ReadFile(n.Log)
			return string(b)
		}
	}
	return "(no such node)"
}

// pingAll checks that every node of rec reaches every other one over the
// VC's network.
func (fed *federation) pingAll(rec reserve.Record) {
	t := fed.t
	t.Helper()
	type nd struct {
		site *site
		name string
		ip   netip.Addr
		kind string
	}
	var nodes []nd
	for _, n := range rec.Placement.Nodes {
		nr, found, err := lifecycle.ReadNode(context.Background(), fed.admin, rec.VC, n.Name)
		if err != nil || !found {
			t.Fatalf("node record %s: %v %v", n.Name, found, err)
		}
		nodes = append(nodes, nd{fed.siteOf(n.Site), n.Name, nr.IP, nr.Backend})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pings := 0
	for _, a := range nodes {
		if a.kind != netns.Kind {
			continue // only netns nodes run commands for the test
		}
		for _, b := range nodes {
			if a.name == b.name {
				continue
			}
			pings++
			ns := a.site.nodeNS(rec.VC, a.name)
			for {
				out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "1", b.ip.String()).CombinedOutput()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%s (%s) cannot reach %s (%s at %s): %v\n%s", a.name, a.site.name, b.name, b.ip, b.site.name, err, out)
				}
			}
		}
	}
	if pings == 0 {
		t.Fatal("no node to ping from")
	}
	t.Logf("%d pings between the nodes of %s answered", pings, rec.VC)
}

// checkNodes verifies every node of rec: its agent wrote and read back a
// marker on its volume, its record says ready; and, for one node per
// site, the test reads that marker itself through iSCSI with the CHAP
// secret from the reconciler's 0600 file, and a login with a wrong secret
// is refused.
func (fed *federation) checkNodes(rec reserve.Record) {
	t := fed.t
	t.Helper()
	checked := map[string]bool{}
	for _, n := range rec.Placement.Nodes {
		st := fed.siteOf(n.Site)
		if st.kindOf(n.Host) == qemu.Kind {
			fed.checkGuest(rec, n.Name, st)
			continue
		}
		log := st.agentLog(rec.VC, n.Name)
		i := strings.Index(log, "disk ok: marker ")
		if i < 0 || !strings.Contains(log, "MUSUBI-NODE-UP "+rec.VC+"/"+n.Name) {
			t.Errorf("%s: agent did not verify its volume:\n%s", n.Name, log)
			continue
		}
		marker := strings.Fields(log[i+len("disk ok: marker "):])[0]
		nr, _, _ := lifecycle.ReadNode(context.Background(), fed.admin, rec.VC, n.Name)
		if nr.State != lifecycle.NodeReady || nr.Site != n.Site || nr.VLAN != uint16(rec.Placement.VLAN) {
			t.Errorf("%s: record %+v", n.Name, nr)
		}
		if checked[n.Site] {
			continue
		}
		checked[n.Site] = true
		secretFile := filepath.Join(st.dir, "lifecycle", "secrets", rec.VC, n.Name+".chap")
		fi, err := os.Stat(secretFile)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: secret file %s: %v %v", n.Name, secretFile, fi, err)
			continue
		}
		got, err := st.readISCSI(rec.VC, n.Name, secretFile)
		if err != nil {
			t.Errorf("%s: read the volume over iSCSI: %v", n.Name, err)
		} else if !strings.HasPrefix(got, marker) {
			t.Errorf("%s: the volume holds %q at 1 MiB, the agent wrote %q", n.Name, got, marker)
		}
		bad := filepath.Join(t.TempDir(), "bad.secret")
		if err := os.WriteFile(bad, []byte("wrongwrongwrong1"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := st.readISCSI(rec.VC, n.Name, bad); err == nil {
			t.Errorf("%s: a login with a wrong CHAP secret was admitted", n.Name)
		}
	}
}

// readISCSI reads 32 bytes at 1 MiB of a node's volume through QEMU's
// libiscsi from the site namespace, logging in as the node's initiator
// with the CHAP secret in secretFile.
func (st *site) readISCSI(vc, node, secretFile string) (string, error) {
	opts := "driver=iscsi,transport=tcp,portal=127.0.0.1:3260,target=" + iscsi.TargetIQN(vc, node) + ",lun=1" +
		",initiator-name=" + lifecycle.InitiatorIQN(st.name, vc, node) + ",user=" + iscsi.CHAPUser(vc, node) + ",password-secret=s0"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", st.s.NS, "qemu-io", "--object", "secret,id=s0,file="+secretFile,
		"--image-opts", opts, "-c", "read -v 1M 32").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "read 32/32") {
		return "", fmt.Errorf("qemu-io: %v: %s", err, bytes.TrimSpace(out))
	}
	var b strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 17 && strings.HasSuffix(f[0], ":") {
			for _, h := range f[1:17] {
				v, err := strconv.ParseUint(h, 16, 8)
				if err != nil {
					return "", fmt.Errorf("qemu-io output %q", line)
				}
				b.WriteByte(byte(v))
			}
		}
	}
	return b.String(), nil
}

// diff returns what after has that before lacks.
func diff(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

type testLog struct {
	mu sync.Mutex
	t  *testing.T
}

func (l *testLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// nodesAt returns the names of the placement's nodes on site.
func nodesAt(nodes []admission.Node, site string) []string {
	var out []string
	for _, n := range nodes {
		if n.Site == site {
			out = append(out, n.Name)
		}
	}
	return out
}

// allRunning reports whether every node's process runs.
func allRunning(nodes []vm.NodeState) bool {
	for _, n := range nodes {
		if !n.Running {
			return false
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }

// kindOf is the backend kind of a compute host.
func (st *site) kindOf(host string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.kinds[host]
}

// checkGuest verifies a QEMU node: it booted to the image's ready marker
// with its root disk on its iSCSI volume (QEMU's own libiscsi, the secret
// on no command line), and wrote its boot record on that volume.
func (fed *federation) checkGuest(rec reserve.Record, node string, st *site) {
	t := fed.t
	t.Helper()
	ctx := context.Background()
	nodes, err := st.qemu.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ns *vm.NodeState
	for i := range nodes {
		if nodes[i].VC == rec.VC && nodes[i].Node == node {
			ns = &nodes[i]
		}
	}
	if ns == nil || !ns.Healthy() {
		t.Errorf("%s: guest %+v", node, ns)
		return
	}
	serial, _ := os.ReadFile(ns.Log)
	if !bytes.Contains(serial, []byte(image.ReadyMarker+" "+rec.VC+"/"+node+" ")) {
		t.Errorf("%s: no ready marker on the console:\n%s", node, serial)
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ns.PID))
	if err != nil || !bytes.Contains(cmd, []byte("driver=iscsi")) || !bytes.Contains(cmd, []byte(iscsi.TargetIQN(rec.VC, node))) {
		t.Errorf("%s: QEMU's root disk is not its iSCSI volume (%v): %s", node, err, bytes.ReplaceAll(cmd, []byte{0}, []byte(" ")))
	}
	secret, _ := os.ReadFile(filepath.Join(st.dir, "lifecycle", "secrets", rec.VC, node+".chap"))
	if len(secret) == 0 || bytes.Contains(cmd, secret) {
		t.Errorf("%s: secret file empty (%d bytes) or the secret is on QEMU's command line", node, len(secret))
	}
	vols, err := st.vols.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if v.VC == rec.VC && v.Node == node {
			out, err := exec.Command("debugfs", "-R", "cat "+image.BootLog, v.Path).Output()
			if err != nil || !bytes.Contains(out, []byte("boot "+rec.VC+"/"+node+" ")) {
				t.Errorf("%s: no boot record on its volume %s: %v\n%s", node, v.Path, err, out)
			}
			return
		}
	}
	t.Errorf("%s: no volume", node)
}

// loadavg is the host's load average, for the figures' context.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// repoRoot is the module's root directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// qsubInNode submits an array job with qsub -sync y from inside node (its
// namespace, its agent's socket), each task recording the address of the
// node that runs it, and checks that every task ran once, on a node of the
// VC, and that the tasks spread over more than one node.
func (fed *federation) qsubInNode(rec reserve.Record, node string) {
	t := fed.t
	t.Helper()
	var st *site
	addrs := map[string]string{} // VC address -> node
	for _, n := range rec.Placement.Nodes {
		nr, _, err := lifecycle.ReadNode(context.Background(), fed.admin, rec.VC, n.Name)
		if err != nil {
			t.Fatalf("node record of %s: %v", n.Name, err)
		}
		addrs[nr.IP.String()] = n.Name + "@" + n.Site
		if n.Name == node {
			st = fed.siteOf(n.Site)
		}
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fed.sge, filepath.Join(dir, "qsub")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "ran")
	const tasks = 8
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ipCmd, err := exec.LookPath("ip") // the job's PATH is Grid Engine's default, without sbin
	if err != nil {
		t.Fatal(err)
	}
	// A job script (a binary job's arguments are joined with spaces, as
	// in Grid Engine, so a quoted "sh -c" command would not survive).
	script := filepath.Join(dir, "where.sh")
	task := "#!/bin/sh\n#$ -S /bin/sh\n" + ipCmd + ` -4 -o addr show dev eth0 | awk '{sub("/.*","",$4); print $4}' >> ` + out + "\nsleep 1\n"
	if err := os.WriteFile(script, []byte(task), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", st.nodeNS(rec.VC, node), "env",
		"MUSUBI_AGENT_SOCKET="+st.nodes.AgentSocket(rec.VC, node), filepath.Join(dir, "qsub"),
		"-sync", "y", "-j", "y", "-o", filepath.Join(dir, "job.out"), "-t", "1-"+itoa(tasks), script)
	cmd.Dir = dir
	t0 := time.Now()
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("qsub in %s: %v\n%s", node, err, msg)
	}
	t.Logf("qsub -sync y of %d tasks from %s: %v\n%s", tasks, node, time.Since(t0).Round(time.Millisecond), msg)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if jobOut, _ := os.ReadFile(filepath.Join(dir, "job.out")); len(jobOut) > 0 {
		t.Logf("job output:\n%s", jobOut)
	}
	ran := map[string]int{}
	lines := strings.Fields(string(data))
	for _, ip := range lines {
		name, ok := addrs[ip]
		if !ok {
			t.Errorf("a task ran at %s, not a node of %s (%v)", ip, rec.VC, addrs)
		}
		ran[name]++
	}
	if len(lines) != tasks {
		t.Errorf("%d task runs, want %d (each exactly once): %v", len(lines), tasks, lines)
	}
	if len(ran) < 2 {
		t.Errorf("all tasks ran on %v: the other nodes' agents took none", ran)
	}
	t.Logf("tasks per node: %v", ran)
}
