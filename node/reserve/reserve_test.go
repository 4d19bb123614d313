package reserve

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node/admission"
)

func memOpen(t *testing.T) func(t *testing.T) coord.Store {
	srv := memstore.New()
	return func(t *testing.T) coord.Store {
		s := srv.Connect()
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestReserveLayout(t *testing.T) {
	ctx := ctxT(t)
	s := memOpen(t)(t)
	r := newReserver(t, s, func(c *Config) { c.NewID = func() string { return "req-1" } })
	smallFederation().register(t, r)
	req := request("alpha", 3, 2048, win(1, 5))
	req.Frontend = true
	req.EachSite = []string{"s2"}
	rec, err := r.Reserve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rec.RequestID != "req-1" || rec.State != Admitted || rec.Owner != "test" || rec.Placement.VLAN != 1 {
		t.Errorf("record %+v", rec)
	}
	var hosts []string
	for _, n := range rec.Placement.Nodes {
		hosts = append(hosts, n.Name+"@"+n.Host+"/"+n.Storage)
	}
	if got := strings.Join(hosts, " "); got != "node0@h1/st1 node1@h3/st2 node2@h4/st2" {
		t.Errorf("placement %s", got)
	}
	// The znodes of DESIGN §4.
	for _, p := range []string{
		"/reservations/alpha", "/vc/alpha", "/vc/alpha/spec", "/vc/alpha/status", "/vc/alpha/nodes", "/vc/alpha/hosts",
		"/vc/alpha/accounts", "/vc/alpha/jobs", "/timetable/host.h1/alpha", "/timetable/host.h3/alpha", "/timetable/host.h4/alpha",
		"/timetable/storage.st1/alpha", "/timetable/storage.st2/alpha", "/vlans/0001", "/vlans/0001/alpha",
	} {
		if ok, _, err := s.Exists(ctx, p); err != nil || !ok {
			t.Errorf("%s missing (%v)", p, err)
		}
	}
	if ok, _, _ := s.Exists(ctx, "/timetable/host.h2/alpha"); ok {
		t.Error("h2 booked")
	}
	// Records are JSON as documented.
	data, st, err := s.Get(ctx, "/timetable/storage.st2/alpha")
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	if e["kind"] != "storage" || e["resource"] != "st2" || e["vc"] != "alpha" || e["request_id"] != "req-1" || e["bytes"] != float64(20*gb) || e["nodes"] != float64(2) {
		t.Errorf("storage booking %s", data)
	}
	_ = st
	spec, _, err := s.Get(ctx, "/vc/alpha/spec")
	if err != nil {
		t.Fatal(err)
	}
	resv, _, _ := s.Get(ctx, "/reservations/alpha")
	if string(spec) != string(resv) || !strings.Contains(string(spec), `"ssh_keys":["ssh-ed25519 AAAA test"]`) {
		t.Errorf("spec %s\nrecord %s", spec, resv)
	}
	// Every booked group's version moved; the others did not.
	for p, want := range map[string]int32{"/timetable/host.h1": 1, "/timetable/host.h2": 0, "/timetable/storage.st2": 1} {
		_, st, err := s.Get(ctx, p)
		if err != nil || st.Version != want {
			t.Errorf("%s version %d (%v), want %d", p, st.Version, err, want)
		}
	}
	got, err := r.Get(ctx, "alpha")
	if err != nil || got.RequestID != "req-1" || !got.Window.Start.Equal(hr(1)) {
		t.Errorf("Get = %+v, %v", got, err)
	}
	checkConsistent(t, r)
}

func TestRefusalAndFirstComeFirstServed(t *testing.T) {
	ctx := ctxT(t)
	r := newReserver(t, memOpen(t)(t))
	smallFederation().register(t, r)
	a, err := r.Reserve(ctx, request("a", 4, 8192, win(0, 10)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Reserve(ctx, request("b", 1, 2048, win(5, 7)))
	ref := mustRefuse(t, err)
	if ref.Constraint != admission.ConstraintMemory || ref.Earliest == nil || !ref.Earliest.Start.Equal(hr(10)) {
		t.Errorf("refusal %+v", ref)
	}
	if !strings.Contains(err.Error(), "memory: host h1 at site s1 has 0 MiB free") {
		t.Errorf("reason: %v", err)
	}
	// Storage binds: 100 GiB per site.
	big := request("c", 2, 1024, win(10, 12))
	big.DiskBytes = 60 * gb
	big.Sites = []string{"s1"}
	ref = mustRefuse(t, ignoreRec(r.Reserve(ctx, big)))
	if ref.Constraint != admission.ConstraintStorage || ref.Resource != "st1" {
		t.Errorf("refusal %+v", ref)
	}
	// VLAN pool binds.
	r2 := newReserver(t, r.store, func(c *Config) { c.Admission = admission.Options{VLANMin: 7, VLANMax: 7} })
	if _, err := r2.Reserve(ctx, request("d", 1, 1024, win(10, 12))); err != nil {
		t.Fatal(err)
	}
	ref = mustRefuse(t, ignoreRec(r2.Reserve(ctx, request("e", 1, 1024, win(11, 13)))))
	if ref.Constraint != admission.ConstraintVLAN || ref.Earliest == nil || !ref.Earliest.Start.Equal(hr(12)) {
		t.Errorf("refusal %+v", ref)
	}
	// a is untouched by everything after it.
	got, err := r.Get(ctx, "a")
	if err != nil || got.RequestID != a.RequestID || got.State != Admitted || len(got.Placement.Nodes) != 4 {
		t.Errorf("a = %+v, %v", got, err)
	}
	checkConsistent(t, r)
}

func ignoreRec(_ Record, err error) error { return err }

func TestVCNameInUse(t *testing.T) {
	ctx := ctxT(t)
	now := hr(0)
	r := newReserver(t, memOpen(t)(t), func(c *Config) { c.Now = func() time.Time { return now } })
	smallFederation().register(t, r)
	if _, err := r.Reserve(ctx, request("a", 1, 1024, win(1, 2))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reserve(ctx, request("a", 1, 1024, win(5, 6))); !errors.Is(err, ErrVCExists) {
		t.Fatalf("second a: %v", err)
	}
	if _, err := r.Cancel(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// The cancelled record stays until purged.
	if _, err := r.Reserve(ctx, request("a", 1, 1024, win(5, 6))); !errors.Is(err, ErrVCExists) {
		t.Fatalf("a after cancel: %v", err)
	}
	if err := r.Purge(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reserve(ctx, request("a", 1, 1024, win(5, 6))); err != nil {
		t.Fatalf("a after purge: %v", err)
	}
	if _, err := r.Reserve(ctx, request("bad/name", 1, 1024, win(5, 6))); !errors.Is(err, admission.ErrInvalidRequest) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := r.Reserve(ctx, request("late", 1, 1024, admission.Window{Start: hr(-5), End: hr(-1)})); !errors.Is(err, ErrInvalid) {
		t.Errorf("ended window: %v", err)
	}
	checkConsistent(t, r)
}

func TestCancelFrees(t *testing.T) {
	ctx := ctxT(t)
	r := newReserver(t, memOpen(t)(t))
	smallFederation().register(t, r)
	if _, err := r.Reserve(ctx, request("a", 8, 4096, win(0, 10))); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, ignoreRec(r.Reserve(ctx, request("b", 8, 4096, win(2, 4)))))
	rec, err := r.Cancel(ctx, "a")
	if err != nil || rec.State != Cancelled {
		t.Fatalf("Cancel = %+v, %v", rec, err)
	}
	tt, _ := checkConsistent(t, r)
	if tt.Has("a") {
		t.Error("a still booked")
	}
	if _, err := r.Reserve(ctx, request("b", 8, 4096, win(2, 4))); err != nil {
		t.Errorf("b after cancel: %v", err)
	}
	if rec, err := r.Cancel(ctx, "a"); err != nil || rec.State != Cancelled {
		t.Errorf("second Cancel = %+v, %v", rec, err)
	}
	if _, err := r.Cancel(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel(nope) = %v", err)
	}
	spec, _, _ := r.store.Get(ctx, coord.VCSpecPath("a"))
	if !strings.Contains(string(spec), `"state":"cancelled"`) {
		t.Errorf("spec not updated: %s", spec)
	}
	checkConsistent(t, r)
}

func TestReleaseEarly(t *testing.T) {
	ctx := ctxT(t)
	r := newReserver(t, memOpen(t)(t))
	smallFederation().register(t, r)
	if _, err := r.Reserve(ctx, request("a", 8, 4096, win(0, 10))); err != nil {
		t.Fatal(err)
	}
	rec, err := r.Release(ctx, "a", hr(6))
	if err != nil || rec.State != Released || !rec.Window.End.Equal(hr(6)) {
		t.Fatalf("Release = %+v, %v", rec, err)
	}
	tt, _ := checkConsistent(t, r)
	for _, e := range tt.EntriesOf("a") {
		if !e.Window.End.Equal(hr(6)) {
			t.Errorf("booking %+v not shortened", e)
		}
	}
	if _, err := r.Reserve(ctx, request("b", 8, 4096, win(6, 9))); err != nil {
		t.Errorf("after the release: %v", err)
	}
	mustRefuse(t, ignoreRec(r.Reserve(ctx, request("c", 1, 4096, win(5, 9)))))
	// Releasing later than the current end does nothing; before the start
	// cancels.
	if rec, err := r.Release(ctx, "a", hr(8)); err != nil || !rec.Window.End.Equal(hr(6)) {
		t.Errorf("late release = %+v, %v", rec, err)
	}
	if rec, err := r.Release(ctx, "b", hr(1)); err != nil || rec.State != Cancelled {
		t.Errorf("release before start = %+v, %v", rec, err)
	}
	if _, err := r.Release(ctx, "b", hr(7)); !errors.Is(err, ErrCancelled) {
		t.Errorf("release of cancelled: %v", err)
	}
	checkConsistent(t, r)
}

func TestPurge(t *testing.T) {
	ctx := ctxT(t)
	now := hr(0)
	r := newReserver(t, memOpen(t)(t), func(c *Config) { c.Now = func() time.Time { return now } })
	smallFederation().register(t, r)
	if _, err := r.Reserve(ctx, request("a", 2, 1024, win(1, 3))); err != nil {
		t.Fatal(err)
	}
	// An agent wrote into the VC's subtree.
	if _, err := r.store.Create(ctx, coord.VCNodePath("a", "node0"), []byte("x"), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Purge(ctx, "a"); !errors.Is(err, ErrActive) {
		t.Fatalf("purge of active: %v", err)
	}
	now = hr(3)
	if err := r.Purge(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/vc/a", "/reservations/a", "/timetable/host.h1/a", "/vlans/0001/a"} {
		if ok, _, _ := r.store.Exists(ctx, p); ok {
			t.Errorf("%s left after purge", p)
		}
	}
	if ok, _, _ := r.store.Exists(ctx, "/vlans/0001"); !ok {
		t.Error("VLAN tag nodes must never be deleted")
	}
	if err := r.Purge(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second purge: %v", err)
	}
	checkConsistent(t, r)
}

// TestConnectionLossResolved: a commit whose reply is lost is resolved by
// reading the record: applied means done (no second booking), not applied
// means retried.
func TestConnectionLossResolved(t *testing.T) {
	for _, applied := range []bool{true, false} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			ctx := ctxT(t)
			s := memstore.New().Connect()
			t.Cleanup(func() { s.Close() })
			r := newReserver(t, s)
			smallFederation().register(t, r)
			s.InjectConnectionLoss(1, applied)
			rec, err := r.Reserve(ctx, request("a", 2, 1024, win(1, 3)))
			if err != nil {
				t.Fatal(err)
			}
			st := r.Stats()
			if st.Resolved != 1 || st.Attempts != map[bool]int64{true: 1, false: 2}[applied] {
				t.Errorf("stats %+v", st)
			}
			got, err := r.Get(ctx, "a")
			if err != nil || got.RequestID != rec.RequestID {
				t.Errorf("record %+v, %v", got, err)
			}
			tt, _ := checkConsistent(t, r)
			if n := len(tt.EntriesOf("a")); n != 4 { // 2 hosts, 1 storage host, 1 VLAN
				t.Errorf("%d bookings of a", n)
			}
			s.InjectConnectionLoss(1, applied)
			if rec, err := r.Cancel(ctx, "a"); err != nil || rec.State != Cancelled {
				t.Fatalf("Cancel = %+v, %v", rec, err)
			}
			if tt, _ := checkConsistent(t, r); tt.Has("a") {
				t.Error("a still booked after cancel")
			}
		})
	}
}

// TestConflictRetried: a commit that loses to a concurrent one (same host)
// is retried with fresh state and does not overcommit.
func TestConflictRetried(t *testing.T) {
	ctx := ctxT(t)
	open := memOpen(t)
	h := &hookStore{Store: open(t), at: 1}
	r := newReserver(t, h)
	one := federation{hosts: []admission.Host{{Name: "h1", Site: "s1", MemoryMiB: 4096, VCPUs: 4}, {Name: "h2", Site: "s1", MemoryMiB: 4096, VCPUs: 4}}}
	one.register(t, r)
	other := newReserver(t, open(t))
	h.before = func() {
		if _, err := other.Reserve(ctx, admission.Request{VC: "first", Nodes: 1, MemoryMiB: 4096, VCPUs: 1, Window: win(0, 5), Policy: admission.Pack}); err != nil {
			t.Error(err)
		}
	}
	rec, err := r.Reserve(ctx, admission.Request{VC: "second", Nodes: 1, MemoryMiB: 4096, VCPUs: 1, Window: win(0, 5), Policy: admission.Pack})
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Conflicts != 1 || st.Attempts != 2 {
		t.Errorf("stats %+v", st)
	}
	if rec.Placement.Nodes[0].Host != "h2" {
		t.Errorf("second placed on %s, want h2 (h1 went to first)", rec.Placement.Nodes[0].Host)
	}
	// Both took VLAN 1 in their first reading; the loser moved to 2.
	if rec.Placement.VLAN != 2 {
		t.Errorf("second VLAN %d", rec.Placement.VLAN)
	}
	checkConsistent(t, r)
}

// TestCapacityChangeConflicts: an admission that read a host's old
// capacity does not commit against the new one.
func TestCapacityChangeConflicts(t *testing.T) {
	ctx := ctxT(t)
	open := memOpen(t)
	h := &hookStore{Store: open(t), at: 1}
	r := newReserver(t, h)
	(federation{hosts: []admission.Host{{Name: "h1", Site: "s1", MemoryMiB: 8192, VCPUs: 8}}}).register(t, r)
	admin := newReserver(t, open(t))
	h.before = func() {
		if err := admin.RegisterHost(ctx, admission.Host{Name: "h1", Site: "s1", MemoryMiB: 2048, VCPUs: 8}); err != nil {
			t.Error(err)
		}
	}
	_, err := r.Reserve(ctx, admission.Request{VC: "a", Nodes: 2, MemoryMiB: 2048, VCPUs: 1, Window: win(0, 5)})
	if ref := mustRefuse(t, err); ref.Free != 0 {
		t.Errorf("refusal %+v", ref)
	}
	if st := r.Stats(); st.Conflicts != 1 {
		t.Errorf("stats %+v", st)
	}
	checkConsistent(t, r)
}

// TestReadCost: reading the timetable costs two listings and one Get per
// resource node, however many bookings there are.
func TestReadCost(t *testing.T) {
	ctx := ctxT(t)
	open := memOpen(t)
	c := &countStore{Store: open(t)}
	r := newReserver(t, c)
	smallFederation().register(t, r)
	for i := range 20 {
		if _, err := r.Reserve(ctx, request(fmt.Sprintf("v%d", i), 2, 1024, win(i, i+1))); err != nil {
			t.Fatal(err)
		}
	}
	c.reset()
	tt, err := r.Timetable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tt.Entries) != 20*4 {
		t.Errorf("%d bookings read", len(tt.Entries))
	}
	// 4 hosts, 2 storage hosts, 1 VLAN tag (reused: disjoint windows).
	if c.children != 2 || c.gets != 7 {
		t.Errorf("%d Children and %d Get calls, want 2 and 7", c.children, c.gets)
	}
}

func TestRegisterValidates(t *testing.T) {
	ctx := ctxT(t)
	r := newReserver(t, memOpen(t)(t))
	for _, h := range []admission.Host{{Name: "", Site: "s"}, {Name: "h", Site: "s", MemoryMiB: -1}, {Name: strings.Repeat("x", 60), Site: "s"}} {
		if err := r.RegisterHost(ctx, h); !errors.Is(err, ErrInvalid) {
			t.Errorf("RegisterHost(%+v) = %v", h, err)
		}
	}
	if err := r.RegisterHost(ctx, admission.Host{Name: "h", Site: "s", MemoryMiB: 1, VCPUs: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterHost(ctx, admission.Host{Name: "h", Site: "s", MemoryMiB: 1, VCPUs: 1}); err != nil {
		t.Fatal(err)
	}
	_, st, _ := r.store.Get(ctx, "/timetable/host.h")
	if st.Version != 0 {
		t.Errorf("re-registering the same capacity bumped the version to %d", st.Version)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New without store: %v", err)
	}
}

func TestConcurrentAdmissionsMemstore(t *testing.T) {
	res := runConcurrent(t, memOpen(t), 8, 12, nil)
	t.Logf("memstore: %d admitted, %d refused in %v: %.0f decisions/s, %.0f admissions/s; %d commits, %d conflicts",
		res.admitted, res.refused, res.elapsed.Round(time.Millisecond),
		float64(res.admitted+res.refused)/res.elapsed.Seconds(), float64(res.admitted)/res.elapsed.Seconds(),
		res.stats.Attempts, res.stats.Conflicts)
}

func TestThroughputMemstore(t *testing.T) {
	// Small: make bench (TestBenchReserve) measures the figures.
	c := runThroughput(t, memOpen(t), 8, 10, true)
	u := runThroughput(t, memOpen(t), 8, 10, false)
	logThroughput(t, "memstore", 8, c, u)
	if u.conflicts != 0 {
		t.Errorf("uncontended run had %d conflicts", u.conflicts)
	}
}
