package admission

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// bigTimetable is a federation of 1,000 hosts at 4 sites, 8 storage hosts,
// and n reservations of 1-4 nodes with windows of 1-48 hours spread over
// 30 days, each with its VLAN tag: the scale of the benchmark.
func bigTimetable(n int) Timetable {
	rng := rand.New(rand.NewPCG(11, 13))
	var tt Timetable
	for i := range 1000 {
		tt.Hosts = append(tt.Hosts, Host{Name: fmt.Sprintf("h%d", i+1), Site: fmt.Sprintf("s%d", i%4), MemoryMiB: 262144, VCPUs: 64})
	}
	for i := range 8 {
		tt.Storage = append(tt.Storage, StorageHost{Name: fmt.Sprintf("st%d", i+1), Site: fmt.Sprintf("s%d", i%4), Bytes: 1 << 50})
	}
	lastEnd := make([]int, MaxVLAN+1) // per tag, in hours
	for i := range n {
		start := rng.IntN(30 * 24)
		end := start + 1 + rng.IntN(48)
		w := win(start, end)
		vc := fmt.Sprintf("r%d", i)
		nodes := 1 + rng.IntN(4)
		for k := range nodes {
			h := tt.Hosts[rng.IntN(len(tt.Hosts))]
			tt.Entries = append(tt.Entries, Entry{Kind: KindHost, Resource: h.Name, VC: vc, Window: w, MemoryMiB: 4096, VCPUs: 2, Nodes: 1, Frontends: b2i(k == 0)})
		}
		tt.Entries = append(tt.Entries, Entry{Kind: KindStorage, Resource: fmt.Sprintf("st%d", 1+rng.IntN(8)), VC: vc, Window: w, Bytes: int64(nodes) * 20 * gb, Nodes: nodes})
		for tag := MinVLAN; tag <= MaxVLAN; tag++ {
			if lastEnd[tag] <= start {
				lastEnd[tag] = end
				tt.Entries = append(tt.Entries, Entry{Kind: KindVLAN, VLAN: tag, VC: vc, Window: w})
				break
			}
		}
	}
	return tt
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkAdmit: one admission decision of an 8-node VC against 10,000
// existing reservations over 1,000 hosts.
func BenchmarkAdmit(b *testing.B) {
	tt := bigTimetable(10000)
	rng := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := rng.IntN(30 * 24)
		r := Request{VC: "new", Nodes: 8, MemoryMiB: 8192, VCPUs: 4, DiskBytes: 20 * gb, Window: win(start, start+24), Policy: Policies[i%3], Frontend: true}
		if _, err := Admit(tt, r, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefuseWithEarliest: a refusal, including the earliest-fit
// search, at the same scale.
func BenchmarkRefuseWithEarliest(b *testing.B) {
	tt := bigTimetable(10000)
	// Site s0's storage hosts (st1, st5) are full for the first 15 days.
	for _, st := range []string{"st1", "st5"} {
		tt.Entries = append(tt.Entries, Entry{Kind: KindStorage, Resource: st, VC: "block-" + st, Window: Window{t0, hr(15 * 24)}, Bytes: 1 << 50})
	}
	r := Request{VC: "new", Nodes: 8, MemoryMiB: 8192, VCPUs: 4, DiskBytes: 20 * gb, Window: win(24, 48), Sites: []string{"s0"}}
	b.ResetTimer()
	for b.Loop() {
		_, err := Admit(tt, r, Options{})
		ref, ok := IsRefusal(err)
		if !ok || ref.Earliest == nil || !ref.Earliest.Start.Equal(hr(15*24)) {
			b.Fatalf("want a refusal with an earliest window: %v", err)
		}
	}
}

// admitLatencies measures n admission decisions.
func admitLatencies(tt Timetable, n int) []time.Duration {
	rng := rand.New(rand.NewPCG(8, 9))
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := rng.IntN(30 * 24)
		r := Request{VC: "new", Nodes: 1 + rng.IntN(16), MemoryMiB: 8192, VCPUs: 4, DiskBytes: 20 * gb, Window: win(start, start+1+rng.IntN(48)), Policy: Policies[i%3], Frontend: true}
		t := time.Now()
		_, _ = Admit(tt, r, Options{})
		out = append(out, time.Since(t))
	}
	return out
}
