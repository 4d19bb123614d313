package jobqueue

import (
	"slices"
	"testing"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

func TestStateTransitions(t *testing.T) {
	legal := map[State][]State{
		StateQueued:       {StateHeld, StateTransferring, StateRunning, StateDeleted},
		StateHeld:         {StateQueued, StateDeleted},
		StateTransferring: {StateRunning, StateQueued, StateHeld, StateError, StateDeleting, StateDone, StateFailed},
		StateRunning:      {StateQueued, StateHeld, StateError, StateDeleting, StateDone, StateFailed},
		StateDeleting:     {StateDeleted, StateDone, StateFailed},
		StateError:        {StateQueued, StateHeld, StateDeleted},
		StateDone:         nil,
		StateFailed:       nil,
		StateDeleted:      nil,
	}
	for _, from := range States {
		for _, to := range States {
			want := slices.Contains(legal[from], to)
			if got := from.CanTransition(to); got != want {
				t.Errorf("%s -> %s: CanTransition = %v, want %v", from, to, got, want)
			}
			err := checkTransition(from, to)
			wantErr := !want && !(from == to && !from.Final())
			if (err != nil) != wantErr {
				t.Errorf("%s -> %s: checkTransition = %v, want error %v", from, to, err, wantErr)
			}
		}
	}
	// Spot checks of rules that matter.
	for _, c := range []struct {
		from, to State
		ok       bool
	}{
		{StateQueued, StateDone, false},     // a job must run to finish
		{StateRunning, StateDeleted, false}, // qdel of a running job goes through dr
		{StateDone, StateQueued, false},     // final is final
		{StateDeleted, StateDeleted, false}, // even to itself
		{StateRunning, StateQueued, true},   // rerun
		{StateDeleting, StateDeleted, true}, // killed
		{StateError, StateQueued, true},     // qmod -cj
	} {
		if got := checkTransition(c.from, c.to) == nil; got != c.ok {
			t.Errorf("checkTransition(%s, %s) ok = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	if State("x").Valid() || !StateError.Valid() {
		t.Error("Valid")
	}
}

func TestEntryNames(t *testing.T) {
	es := []entryName{
		{Priority: 0, ID: 10, Rev: 0},
		{Priority: 1024, ID: 99, Rev: 3, Array: true},
		{Priority: -1023, ID: 1, Rev: 12},
		{Priority: 0, ID: 9, Rev: 1},
		{Priority: 5, ID: 12345678901, Rev: 0},
	}
	for _, e := range es {
		got, err := parseEntry(e.String())
		if err != nil || got != e {
			t.Errorf("parseEntry(%q) = %+v, %v; want %+v", e.String(), got, err, e)
		}
	}
	// Names sort like the consumers' order within 10-digit ids.
	names := []string{}
	for _, e := range es[:4] {
		names = append(names, e.String())
	}
	slices.Sort(names)
	want := []string{"0000-0000000099-3-a", "1024-0000000009-1", "1024-0000000010-0", "2047-0000000001-12"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted names %v, want %v", names, want)
	}
	sorted := slices.Clone(es)
	slices.SortFunc(sorted, cmpEntry)
	var ids []int64
	for _, e := range sorted {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []int64{99, 12345678901, 9, 10, 1}) {
		t.Errorf("order %v", ids)
	}
	for _, bad := range []string{"", "x", "1-2", "0001-0000000000-0", "a-1-0", "1-1-1-b", "1-1--1"} {
		if _, err := parseEntry(bad); err == nil {
			t.Errorf("parseEntry(%q) accepted", bad)
		}
	}
	for _, c := range []string{"1.1", "42.7"} {
		cn, err := parseClaim(c)
		if err != nil || cn.String() != c {
			t.Errorf("parseClaim(%q) = %v, %v", c, cn, err)
		}
	}
	for _, bad := range []string{"1", "1.0", "x.1", "0.1", "1.x"} {
		if _, err := parseClaim(bad); err == nil {
			t.Errorf("parseClaim(%q) accepted", bad)
		}
	}
	if n, id, err := parseNameIndex("my:job:42"); err != nil || n != "my:job" || id != 42 {
		t.Errorf("parseNameIndex = %q %d %v", n, id, err)
	}
}

func TestNextTasks(t *testing.T) {
	r := &record{State: StateQueued, Spec: &sge.JobSpec{Array: &sge.TaskRange{First: 2, Last: 10, Step: 2}}, Array: &arrayState{Cursor: 2, Reruns: []int{4}, Deleted: []int{6}}}
	tasks, cursor, reruns := r.nextTasks(2)
	if !slices.Equal(tasks, []int{4, 8}) || cursor != 4 || len(reruns) != 0 {
		t.Errorf("nextTasks = %v %d %v", tasks, cursor, reruns)
	}
	if got := r.unclaimed(); !slices.Equal(got, []int{4, 8, 10}) {
		t.Errorf("unclaimed = %v", got)
	}
	r.State = StateDeleting
	if r.hasUnclaimed() {
		t.Error("a deleting array job has nothing to claim")
	}
}

func TestFits(t *testing.T) {
	host := &HostInfo{Executor: "n1", Host: "node1", Arch: "lx-amd64", Slots: 4, MemTotal: 4 << 30, Attributes: map[string]string{"gpu": "2", "site": "kyoto"}}
	pe := func(min, max int) *sge.PERequest { return &sge.PERequest{Name: "smp", Min: min, Max: max} }
	req := func(kv ...string) sge.Resources {
		var r sge.Resources
		for i := 0; i < len(kv); i += 2 {
			r.Hard = append(r.Hard, sge.Request{Name: kv[i], Value: kv[i+1]})
		}
		return r
	}
	for _, c := range []struct {
		name     string
		spec     sge.JobSpec
		capacity Capacity
		slots    int
		possible bool
	}{
		{"plain", sge.JobSpec{}, Capacity{Slots: 1}, 1, true},
		{"no free slot", sge.JobSpec{}, Capacity{Slots: 0}, 0, true},
		{"pe exact", sge.JobSpec{PE: pe(2, 2)}, Capacity{Slots: 4}, 2, true},
		{"pe range takes most", sge.JobSpec{PE: pe(1, 3)}, Capacity{Slots: 4}, 3, true},
		{"pe open range", sge.JobSpec{PE: pe(2, sge.SlotRangeInfinity)}, Capacity{Slots: 3}, 3, true},
		{"pe not now", sge.JobSpec{PE: pe(3, 3)}, Capacity{Slots: 2}, 0, true},
		{"pe never here", sge.JobSpec{PE: pe(8, 8)}, Capacity{Slots: 4}, 0, false},
		{"pe list", sge.JobSpec{PE: &sge.PERequest{Name: "smp", Min: 2, Max: 8, Ranges: []sge.SlotRange{{Min: 2, Max: 2}, {Min: 8, Max: 8}}}}, Capacity{Slots: 4}, 2, true},
		{"hostname", sge.JobSpec{Resources: req("hostname", "node1")}, Capacity{Slots: 1}, 1, true},
		{"hostname wildcard", sge.JobSpec{Resources: req("hostname", "node*")}, Capacity{Slots: 1}, 1, true},
		{"other host", sge.JobSpec{Resources: req("hostname", "node2")}, Capacity{Slots: 1}, 0, false},
		{"arch", sge.JobSpec{Resources: req("arch", "lx-amd64|lx-arm64")}, Capacity{Slots: 1}, 1, true},
		{"numeric attribute", sge.JobSpec{Resources: req("gpu", "1")}, Capacity{Slots: 1}, 1, true},
		{"numeric attribute too big", sge.JobSpec{Resources: req("gpu", "3")}, Capacity{Slots: 1}, 0, false},
		{"string attribute", sge.JobSpec{Resources: req("site", "osaka")}, Capacity{Slots: 1}, 0, false},
		{"limits do not select", sge.JobSpec{Resources: req("h_rt", "60", "h_vmem", "1G")}, Capacity{Slots: 1}, 1, true},
		{"mem_free fits", sge.JobSpec{Resources: sge.Resources{MemFree: 1 << 30}}, Capacity{Slots: 1, Memory: 2 << 30}, 1, true},
		{"mem_free not now", sge.JobSpec{Resources: sge.Resources{MemFree: 3 << 30}}, Capacity{Slots: 1, Memory: 2 << 30}, 0, true},
		{"mem_free never", sge.JobSpec{Resources: sge.Resources{MemFree: 8 << 30}}, Capacity{Slots: 1}, 0, false},
		{"queue", sge.JobSpec{Queues: []string{"all.q"}}, Capacity{Slots: 1}, 1, true},
		{"queue@host", sge.JobSpec{Queues: []string{"all.q@node1"}}, Capacity{Slots: 1}, 1, true},
		{"queue@other", sge.JobSpec{Queues: []string{"all.q@node2", "*@node3"}}, Capacity{Slots: 1}, 0, false},
	} {
		slots, possible := fits(&c.spec, host, c.capacity)
		if slots != c.slots || possible != c.possible {
			t.Errorf("%s: fits = %d, %v; want %d, %v", c.name, slots, possible, c.slots, c.possible)
		}
	}
}

func TestValidateSpec(t *testing.T) {
	good := spec("ok")
	if err := validateSpec(good); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(s *sge.JobSpec){
		"empty name":   func(s *sge.JobSpec) { s.Name = "" },
		"slash":        func(s *sge.JobSpec) { s.Name = "a/b" },
		"colon":        func(s *sge.JobSpec) { s.Name = "a:b" },
		"dotdot":       func(s *sge.JobSpec) { s.Name = ".." },
		"priority":     func(s *sge.JobSpec) { s.Priority = 2000 },
		"range":        func(s *sge.JobSpec) { s.Array = &sge.TaskRange{First: 0, Last: 3, Step: 1} },
		"tc":           func(s *sge.JobSpec) { s.TaskConcurrency = -1 },
		"pe":           func(s *sge.JobSpec) { s.PE = &sge.PERequest{Name: "smp", Min: 0, Max: 0} },
		"reverse step": func(s *sge.JobSpec) { s.Array = &sge.TaskRange{First: 3, Last: 1, Step: 1} },
	} {
		s := spec("x")
		mut(s)
		if err := validateSpec(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := validateSpec(nil); err == nil {
		t.Error("nil accepted")
	}
}
