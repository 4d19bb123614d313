package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/lifecycle"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi/iscsitest"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/fakevm"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// fakeClock is a Clock moved by the test.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[*waiter]struct{}
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, waiters: map[*waiter]struct{}{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &waiter{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- c.now
		return w.ch, func() {}
	}
	c.waiters[w] = struct{}{}
	return w.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.waiters, w)
	}
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			delete(c.waiters, w)
		}
	}
}

// Set moves the clock to t (forward).
func (c *fakeClock) Set(t time.Time) { c.Advance(t.Sub(c.Now())) }

// t0 is the test's epoch.
var t0 = time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)

// site is one site's drivers: they outlive reconcilers, like a host
// outlives a restarted peer.
type site struct {
	name     string
	host     string
	storage  string
	vms      *fakevm.Host
	vols     *iscsitest.Fake
	att      *lifecycle.MemAttacher
	ports    provision.PortDriver
	stateDir string
	ready    vm.ReadyFunc
	// wrap, when set, wraps the drivers of the next reconciler started.
	wrap func(lifecycle.Config) lifecycle.Config
	// backend, when set, replaces the fake backend.
	backend vm.Backend
	// onStart, when set, gets the cancel func of the next reconciler.
	onStart func(cancel context.CancelFunc)
}

// env is a federation on a memstore with a fake clock.
type env struct {
	t     *testing.T
	srv   *memstore.Server
	admin coord.Store
	clock *fakeClock
	res   *reserve.Reserver
	image string
	sites map[string]*site
}

func newEnv(t *testing.T, sites ...string) *env {
	t.Helper()
	srv := memstore.New()
	admin := srv.Connect()
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	if err := node.InitSchema(ctx, admin); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(t0)
	res, err := reserve.New(reserve.Config{Store: admin, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "app.img")
	if err := os.WriteFile(img, []byte("application image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<20); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, admin: admin, clock: clock, res: res, image: img, sites: map[string]*site{}}
	for _, name := range sites {
		s := &site{name: name, host: name + "-h1", storage: name + "-st1", vms: fakevm.NewHost(),
			vols: iscsitest.NewFake("127.0.0.1:3260"), att: lifecycle.NewMemAttacher(), stateDir: t.TempDir()}
		if err := res.RegisterHost(ctx, admission.Host{Name: s.host, Site: name, MemoryMiB: 4096, VCPUs: 8}); err != nil {
			t.Fatal(err)
		}
		if err := res.RegisterStorage(ctx, admission.StorageHost{Name: s.storage, Site: name, Bytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		e.sites[name] = s
	}
	return e
}

// reserve admits a VC of n nodes on every site, with window [start, end)
// relative to t0.
func (e *env) reserve(vc string, n int, start, end time.Duration) reserve.Record {
	e.t.Helper()
	var each []string
	for name := range e.sites {
		each = append(each, name)
	}
	sort.Strings(each)
	if len(each) > n {
		each = each[:n]
	}
	rec, err := e.res.Reserve(context.Background(), admission.Request{
		VC: vc, Nodes: n, MemoryMiB: 128, VCPUs: 1, DiskBytes: 4 << 20, Image: e.image,
		Window: admission.Window{Start: t0.Add(start), End: t0.Add(end)}, EachSite: each,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// peer is one running reconciler.
type peer struct {
	r      *lifecycle.Reconciler
	cancel context.CancelFunc
	done   chan error
	store  coord.Store
}

// config is site s's reconciler configuration.
func (e *env) config(s *site, st coord.Store) lifecycle.Config {
	var backend vm.Backend = fakevm.New(s.vms, fakevm.Config{Ready: s.ready})
	if s.backend != nil {
		backend = s.backend
	}
	cfg := lifecycle.Config{
		Site: s.name, Store: st, Clock: e.clock,
		Backends: map[string]vm.Backend{s.host: backend},
		Volumes:  map[string]provision.VolumeDriver{s.storage: s.vols},
		Attacher: s.att, Ports: s.ports,
		Images:   lifecycle.ImagesFromStore(image.Store{Dir: filepath.Join(s.stateDir, "no-images")}),
		Agent:    func(n lifecycle.NodePlan) vm.Agent { return vm.Agent{Args: []string{"/bin/true"}} },
		StateDir: s.stateDir, Parallel: 2,
		RetryMin: time.Second, RetryMax: 8 * time.Second, Resync: time.Minute,
		Logger: slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if s.wrap != nil {
		cfg = s.wrap(cfg)
	}
	return cfg
}

// start runs a reconciler for site name until the test ends or stop.
func (e *env) start(name string) *peer {
	e.t.Helper()
	s := e.sites[name]
	st := e.srv.Connect()
	r, err := lifecycle.New(e.config(s, st))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if s.onStart != nil {
		s.onStart(cancel)
	}
	p := &peer{r: r, cancel: cancel, done: make(chan error, 1), store: st}
	go func() { p.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { p.stop(e.t) })
	return p
}

// stop cancels the reconciler and waits for Run to return.
func (p *peer) stop(t *testing.T) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20 s of its context's end")
	}
	p.store.Close()
}

// waitExit waits for Run to return by itself (its context cancelled by a
// crash injector).
func (p *peer) waitExit(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		p.cancel = nil
		p.store.Close()
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20 s of a crash")
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, timeout, why)
		}
		<-tick.C
	}
}

// status reads a site's status of vc.
func (e *env) status(vc, site string) (lifecycle.Status, bool) {
	s, found, err := lifecycle.ReadStatus(context.Background(), e.admin, vc, site)
	if err != nil {
		e.t.Fatal(err)
	}
	return s, found
}

// waitState waits until site's status of vc has state.
func (e *env) waitState(vc, site, state string) lifecycle.Status {
	e.t.Helper()
	var got lifecycle.Status
	eventually(e.t, 10*time.Second, vc+" at "+site+" "+state, func() (bool, string) {
		s, found := e.status(vc, site)
		got = s
		return found && s.State == state, fmt.Sprintf("%+v", s)
	})
	return got
}

// waitPurged waits until the reservation of vc is gone.
func (e *env) waitPurged(vc string) {
	e.t.Helper()
	eventually(e.t, 10*time.Second, vc+" purged", func() (bool, string) {
		ok, _, err := e.admin.Exists(context.Background(), coord.ReservationPath(vc))
		if err != nil {
			return false, err.Error()
		}
		okv, _, _ := e.admin.Exists(context.Background(), coord.VCPath(vc))
		return !ok && !okv, fmt.Sprintf("reservation exists %v, subtree exists %v", ok, okv)
	})
}

// leftovers lists what site s's hosts still hold.
func (s *site) leftovers(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, n := range s.vms.Running() {
		out = append(out, "node "+n)
	}
	nodes, err := fakevm.New(s.vms, fakevm.Config{}).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !n.Running {
			out = append(out, "stopped node "+n.Name)
		}
	}
	vols, err := s.vols.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		out = append(out, "volume "+v.Name)
	}
	ats, err := s.att.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ats {
		out = append(out, "attachment "+a.Name)
	}
	if s.ports != nil {
		ps, err := s.ports.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			out = append(out, "port "+p.Name)
		}
	}
	_ = filepath.WalkDir(s.stateDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != s.stateDir && p != filepath.Join(s.stateDir, "secrets") {
			out = append(out, "file "+strings.TrimPrefix(p, s.stateDir))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func (e *env) noLeftovers() {
	e.t.Helper()
	for _, name := range sortedSites(e) {
		if left := e.sites[name].leftovers(e.t); len(left) > 0 {
			e.t.Errorf("site %s leaks: %v", name, left)
		}
	}
	if err := e.res.Audit(context.Background()); err != nil {
		e.t.Errorf("timetable: %v", err)
	}
	tt, err := e.res.Timetable(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if len(tt.Entries) > 0 {
		e.t.Errorf("bookings left: %+v", tt.Entries)
	}
}

func sortedSites(e *env) []string {
	var out []string
	for n := range e.sites {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// nodesAt returns the placement's nodes on site.
func nodesAt(rec reserve.Record, site string) []string {
	var out []string
	for _, n := range rec.Placement.Nodes {
		if n.Site == site {
			out = append(out, rec.VC+"/"+n.Name)
		}
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// crasher counts driver calls and, at call number at, cancels the
// reconciler's context and fails the call (the peer dies before that
// step).
type crasher struct {
	at     atomic.Int64
	n      atomic.Int64
	cancel atomic.Pointer[context.CancelFunc]
	fired  atomic.Bool
}

func (c *crasher) step(ctx context.Context) error {
	if c.n.Add(1) == c.at.Load() {
		if f := c.cancel.Load(); f != nil {
			(*f)()
		}
		c.fired.Store(true)
		return errors.Join(context.Canceled, errors.New("crash injected"))
	}
	return ctx.Err()
}

type crashBackend struct {
	vm.Backend
	c *crasher
}

func (b crashBackend) Ensure(ctx context.Context, spec vm.NodeSpec) (vm.NodeState, error) {
	if err := b.c.step(ctx); err != nil {
		return vm.NodeState{}, err
	}
	return b.Backend.Ensure(ctx, spec)
}

func (b crashBackend) Remove(ctx context.Context, name string) error {
	if err := b.c.step(ctx); err != nil {
		return err
	}
	return b.Backend.Remove(ctx, name)
}

type crashVolumes struct {
	provision.VolumeDriver
	c *crasher
}

func (v crashVolumes) Ensure(ctx context.Context, spec provision.VolumeSpec) (provision.Volume, error) {
	if err := v.c.step(ctx); err != nil {
		return provision.Volume{}, err
	}
	return v.VolumeDriver.Ensure(ctx, spec)
}

func (v crashVolumes) Remove(ctx context.Context, name string) error {
	if err := v.c.step(ctx); err != nil {
		return err
	}
	return v.VolumeDriver.Remove(ctx, name)
}

type crashAttacher struct {
	lifecycle.Attacher
	c *crasher
}

func (a crashAttacher) Ensure(ctx context.Context, spec lifecycle.AttachSpec) (lifecycle.Attachment, error) {
	if err := a.c.step(ctx); err != nil {
		return lifecycle.Attachment{}, err
	}
	return a.Attacher.Ensure(ctx, spec)
}

func (a crashAttacher) Remove(ctx context.Context, name string) error {
	if err := a.c.step(ctx); err != nil {
		return err
	}
	return a.Attacher.Remove(ctx, name)
}

// crashStore fails writes at the crasher's step too.
type crashStore struct {
	coord.Store
	c *crasher
}

func (s crashStore) Create(ctx context.Context, p string, data []byte, mode coord.CreateMode, acl []coord.ACL) (string, error) {
	if err := s.c.step(ctx); err != nil {
		return "", err
	}
	return s.Store.Create(ctx, p, data, mode, acl)
}

func (s crashStore) Set(ctx context.Context, p string, data []byte, version int32) (coord.Stat, error) {
	if err := s.c.step(ctx); err != nil {
		return coord.Stat{}, err
	}
	return s.Store.Set(ctx, p, data, version)
}

func (s crashStore) Delete(ctx context.Context, p string, version int32) error {
	if err := s.c.step(ctx); err != nil {
		return err
	}
	return s.Store.Delete(ctx, p, version)
}

func (s crashStore) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	if err := s.c.step(ctx); err != nil {
		return nil, err
	}
	return s.Store.Multi(ctx, ops...)
}

// wrapCrash wraps every driver and the store of cfg with c.
func wrapCrash(c *crasher) func(lifecycle.Config) lifecycle.Config {
	return func(cfg lifecycle.Config) lifecycle.Config {
		for h, b := range cfg.Backends {
			cfg.Backends[h] = crashBackend{b, c}
		}
		for h, v := range cfg.Volumes {
			cfg.Volumes[h] = crashVolumes{v, c}
		}
		cfg.Attacher = crashAttacher{cfg.Attacher, c}
		cfg.Store = crashStore{cfg.Store, c}
		return cfg
	}
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
