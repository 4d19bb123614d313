package reserve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/admission"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func hr(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

func win(a, b int) admission.Window { return admission.Window{Start: hr(a), End: hr(b)} }

const gb = int64(1) << 30

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newReserver(t testing.TB, s coord.Store, mod ...func(*Config)) *Reserver {
	t.Helper()
	cfg := Config{Store: s, Owner: "test"}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// federation is the test federation: two sites of two hosts each
// (8 GiB, 8 vCPUs), one storage host per site (100 GiB).
type federation struct {
	hosts   []admission.Host
	storage []admission.StorageHost
}

func smallFederation() federation {
	return federation{
		hosts: []admission.Host{
			{Name: "h1", Site: "s1", MemoryMiB: 8192, VCPUs: 8}, {Name: "h2", Site: "s1", MemoryMiB: 8192, VCPUs: 8},
			{Name: "h3", Site: "s2", MemoryMiB: 8192, VCPUs: 8}, {Name: "h4", Site: "s2", MemoryMiB: 8192, VCPUs: 8},
		},
		storage: []admission.StorageHost{{Name: "st1", Site: "s1", Bytes: 100 * gb}, {Name: "st2", Site: "s2", Bytes: 100 * gb}},
	}
}

func (f federation) register(t testing.TB, r *Reserver) {
	t.Helper()
	ctx := ctxT(t)
	for _, h := range f.hosts {
		if err := r.RegisterHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range f.storage {
		if err := r.RegisterStorage(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

func request(vc string, nodes int, memMiB int64, w admission.Window) admission.Request {
	return admission.Request{VC: vc, Nodes: nodes, MemoryMiB: memMiB, VCPUs: 1, DiskBytes: 10 * gb, Window: w, Image: "vina", SSHKeys: []string{"ssh-ed25519 AAAA test"}}
}

// checkConsistent reads the whole state and checks: no resource is
// overcommitted at any instant; every booking in the timetable belongs to
// a live record with the same request id and matches its entries exactly;
// every live record's entries are all there; each VC subtree exists.
func checkConsistent(t testing.TB, r *Reserver) (admission.Timetable, []Record) {
	t.Helper()
	ctx := ctxT(t)
	tt, err := r.Timetable(ctx)
	// The checking session may itself have been on a killed server: a
	// read whose connection broke is simply read again.
	for deadline := time.Now().Add(15 * time.Second); err != nil && transient(err) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		tt, err = r.Timetable(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := tt.Verify(); err != nil {
		t.Fatalf("overcommitted: %v", err)
	}
	if err := r.Audit(ctx); err != nil {
		t.Fatalf("audit: %v", err)
	}
	recs, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]admission.Entry{}
	for _, rec := range recs {
		for _, e := range rec.Entries() {
			want[entryPath(e)] = e
		}
		if ok, _, err := r.store.Exists(ctx, coord.VCSpecPath(rec.VC)); err != nil || !ok {
			t.Errorf("VC %s has no spec (%v)", rec.VC, err)
		}
		for _, d := range coord.VCSubdirs(rec.VC) {
			if ok, _, err := r.store.Exists(ctx, d); err != nil || !ok {
				t.Errorf("VC %s lacks %s (%v)", rec.VC, d, err)
			}
		}
	}
	got := map[string]admission.Entry{}
	for _, e := range tt.Entries {
		got[entryPath(e)] = e
	}
	for p, e := range got {
		w, ok := want[p]
		if !ok {
			t.Errorf("orphan booking %s: %+v", p, e)
			continue
		}
		if !entryEqual(w, e) {
			t.Errorf("booking %s = %+v, record says %+v", p, e, w)
		}
	}
	for p := range want {
		if _, ok := got[p]; !ok {
			t.Errorf("booking %s missing", p)
		}
	}
	return tt, recs
}

func entryEqual(a, b admission.Entry) bool {
	a.Window.Start, a.Window.End = a.Window.Start.UTC(), a.Window.End.UTC()
	b.Window.Start, b.Window.End = b.Window.Start.UTC(), b.Window.End.UTC()
	return reflect.DeepEqual(a, b)
}

// concurrencyResult summarises runConcurrent.
type concurrencyResult struct {
	admitted, refused int
	elapsed           time.Duration
	stats             Stats
}

// runConcurrent has workers goroutines, each with its own session (open)
// and Reserver, submit perWorker requests for overlapping windows at once,
// then checks that nothing is overcommitted, that every admitted record is
// in the store exactly as returned (never displaced), and that every
// refusal is a real refusal with a reason.
// When midway is not nil, it runs (on the test goroutine) once half of the
// requests have been answered, while the rest are in flight.
func runConcurrent(t *testing.T, open func(t *testing.T) coord.Store, workers, perWorker int, midway func(t *testing.T)) concurrencyResult {
	t.Helper()
	ctx := ctxT(t)
	setup := newReserver(t, open(t))
	smallFederation().register(t, setup)
	opts := admission.Options{VLANMin: 100, VLANMax: 105}

	type outcome struct {
		rec Record
		err error
	}
	results := make([][]outcome, workers)
	stats := make([]Stats, workers)
	reservers := make([]*Reserver, workers)
	for w := range workers {
		reservers[w] = newReserver(t, open(t), func(c *Config) { c.Admission = opts; c.Owner = fmt.Sprintf("w%d", w) })
	}
	start := make(chan struct{})
	half := make(chan struct{})
	var answered atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			<-start
			for i := range perWorker {
				s := rng.IntN(8)
				req := request(fmt.Sprintf("vc-%d-%d", w, i), 1+rng.IntN(3), 1024*int64(1+rng.IntN(4)), win(s, s+2+rng.IntN(6)))
				req.Policy = admission.Policies[rng.IntN(3)]
				req.Frontend = rng.IntN(2) == 0
				rec, err := reservers[w].Reserve(ctx, req)
				results[w] = append(results[w], outcome{rec, err})
				if answered.Add(1) == int64(workers*perWorker/2) {
					close(half)
				}
			}
			stats[w] = reservers[w].Stats()
		}()
	}
	began := time.Now()
	close(start)
	if midway != nil {
		<-half
		midway(t)
	}
	wg.Wait()
	res := concurrencyResult{elapsed: time.Since(began)}
	for _, s := range stats {
		res.stats.Attempts += s.Attempts
		res.stats.Conflicts += s.Conflicts
		res.stats.Resolved += s.Resolved
	}

	_, recs := checkConsistent(t, setup)
	byVC := map[string]Record{}
	for _, rec := range recs {
		byVC[rec.VC] = rec
	}
	for w := range workers {
		for _, o := range results[w] {
			switch ref, ok := admission.IsRefusal(o.err); {
			case o.err == nil:
				res.admitted++
				got, ok := byVC[o.rec.VC]
				if !ok {
					t.Errorf("admitted %s is not in the store", o.rec.VC)
				} else if got.RequestID != o.rec.RequestID || !reflect.DeepEqual(got.Placement.Nodes, o.rec.Placement.Nodes) || got.Placement.VLAN != o.rec.Placement.VLAN {
					t.Errorf("admitted %s changed: returned %+v, stored %+v", o.rec.VC, o.rec.Placement, got.Placement)
				}
				delete(byVC, o.rec.VC)
			case ok:
				res.refused++
				if ref.Reason == "" || ref.Constraint == "" {
					t.Errorf("refusal without a reason: %+v", ref)
				}
			default:
				t.Errorf("worker %d: unexpected error: %v", w, o.err)
			}
		}
	}
	for vc := range byVC {
		t.Errorf("store holds %s, which no worker was told was admitted", vc)
	}
	if res.admitted == 0 || res.refused == 0 {
		t.Errorf("admitted %d, refused %d: the test wants contention", res.admitted, res.refused)
	}
	return res
}

// hookStore runs before ahead of the n-th Multi (1-based) of the wrapped
// Store, to interleave a concurrent commit deterministically.
type hookStore struct {
	coord.Store
	mu     sync.Mutex
	multis int
	at     int
	before func()
}

func (h *hookStore) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	h.mu.Lock()
	h.multis++
	fire := h.multis == h.at
	h.mu.Unlock()
	if fire && h.before != nil {
		h.before()
	}
	return h.Store.Multi(ctx, ops...)
}

// countStore counts Children and Get calls.
type countStore struct {
	coord.Store
	mu             sync.Mutex
	children, gets int
}

func (c *countStore) reset() {
	c.mu.Lock()
	c.children, c.gets = 0, 0
	c.mu.Unlock()
}

func (c *countStore) Get(ctx context.Context, p string) ([]byte, coord.Stat, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Store.Get(ctx, p)
}

func (c *countStore) Children(ctx context.Context, p string) ([]string, coord.Stat, error) {
	c.mu.Lock()
	c.children++
	c.mu.Unlock()
	return c.Store.Children(ctx, p)
}

func mustRefuse(t testing.TB, err error) *admission.Refusal {
	t.Helper()
	ref, ok := admission.IsRefusal(err)
	if !ok || !errors.Is(err, admission.ErrRefused) {
		t.Fatalf("err = %v, want a refusal", err)
	}
	return ref
}

// throughput is the outcome of runThroughput.
type throughput struct {
	admitted  int
	elapsed   time.Duration
	conflicts int64
}

func (th throughput) rate() float64 { return float64(th.admitted) / th.elapsed.Seconds() }

// runThroughput has workers goroutines (own session and Reserver each)
// admit perWorker one-node VCs with disjoint windows, so every request
// fits. Contended: every admission books the same host, storage host and
// VLAN tag (pack policy, one VLAN tag), so the commits serialise on their
// version checks. Uncontended: each worker has its own site and VLAN tag.
func runThroughput(t *testing.T, open func(t *testing.T) coord.Store, workers, perWorker int, contended bool) throughput {
	t.Helper()
	ctx := ctxT(t)
	setup := newReserver(t, open(t))
	var fed federation
	for w := range workers {
		site := fmt.Sprintf("s%d", w)
		fed.hosts = append(fed.hosts, admission.Host{Name: fmt.Sprintf("h%d", w), Site: site, MemoryMiB: 8192, VCPUs: 8})
		fed.storage = append(fed.storage, admission.StorageHost{Name: fmt.Sprintf("st%d", w), Site: site, Bytes: 100 * gb})
	}
	fed.register(t, setup)
	reservers := make([]*Reserver, workers)
	for w := range workers {
		reservers[w] = newReserver(t, open(t), func(c *Config) {
			c.Admission = admission.Options{VLANMin: 1, VLANMax: 1}
			if !contended {
				c.Admission = admission.Options{VLANMin: w + 1, VLANMax: w + 1}
			}
		})
	}
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perWorker {
				k := w*perWorker + i
				req := request(fmt.Sprintf("tp-%d-%d", w, i), 1, 1024, win(k, k+1))
				req.Policy = admission.Pack
				if !contended {
					req.Sites = []string{fmt.Sprintf("s%d", w)}
				}
				if _, err := reservers[w].Reserve(ctx, req); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	th := throughput{admitted: workers * perWorker, elapsed: time.Since(began)}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range reservers {
		th.conflicts += r.Stats().Conflicts
	}
	tt, _ := checkConsistent(t, setup)
	if n := len(tt.Entries); n != 3*th.admitted {
		t.Errorf("%d bookings for %d admissions", n, th.admitted)
	}
	return th
}

func logThroughput(t *testing.T, store string, workers int, contended, uncontended throughput) {
	t.Logf("%s, %d workers: contended %.0f admissions/s (%d in %v, %.2f conflicts per admission); uncontended %.0f admissions/s (%d conflicts)",
		store, workers, contended.rate(), contended.admitted, contended.elapsed.Round(time.Millisecond),
		float64(contended.conflicts)/float64(contended.admitted), uncontended.rate(), uncontended.conflicts)
}
