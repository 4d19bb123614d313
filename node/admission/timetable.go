package admission

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The range of instants a window may use. Keeping it well inside the range
// of UnixNano keeps all arithmetic on nanoseconds exact.
var (
	minInstant = time.Unix(0, 0).UTC()
	maxInstant = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

func validWindow(w Window) error {
	if w.Start.Before(minInstant) || !w.End.Before(maxInstant) {
		return fmt.Errorf("window %v is outside %d-%d", w, minInstant.Year(), maxInstant.Year())
	}
	if !w.Start.Before(w.End) {
		return fmt.Errorf("window %v is empty: start must be before end", w)
	}
	return nil
}

// spanChecked is spanOf for a window that validWindow accepts; ok is false
// for any other window. It is validWindow's fast path.
func spanChecked(w Window) (sp span, ok bool) {
	if w.Start.Unix() < minInstant.Unix() || w.End.Unix() >= maxInstant.Unix() {
		return span{}, false
	}
	sp = spanOf(w)
	return sp, sp.s < sp.e
}

// span is a window in Unix nanoseconds.
type span struct{ s, e int64 }

func spanOf(w Window) span { return span{w.Start.UnixNano(), w.End.UnixNano()} }

func (a span) overlaps(b span) bool { return a.s < b.e && b.s < a.e }

func windowOf(s span) Window {
	return Window{Start: time.Unix(0, s.s).UTC(), End: time.Unix(0, s.e).UTC()}
}

// Validate reports whether the timetable is well formed: resources named
// and unique per kind, capacities in range, entries of known kinds with
// valid windows and amounts. Entries may name resources the timetable does
// not list (a host that was removed); they book nothing that admission
// can use.
func (tt Timetable) Validate() error {
	errs := []error{tt.validateResources()}
	for i := range tt.Entries {
		if err := validEntryAt(tt.Entries, i); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// validEntryAt validates entry i of es.
func validEntryAt(es []Entry, i int) error {
	e := &es[i]
	if err := validEntry(e); err != nil {
		return fmt.Errorf("%w: entry %d (%s %s%s of VC %q): %v", ErrInvalidTimetable, i, e.Kind, e.Resource, vlanSuffix(e), e.VC, err)
	}
	return nil
}

// validateResources validates the hosts and storage hosts.
func (tt Timetable) validateResources() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidTimetable}, args...)...))
	}
	names := make([]string, 0, max(len(tt.Hosts), len(tt.Storage)))
	dups := func(what string) {
		slices.Sort(names) // usually sorted already: the store lists children in order
		for i := 1; i < len(names); i++ {
			if names[i] == names[i-1] && (i == 1 || names[i-2] != names[i]) {
				bad("%s %q listed twice", what, names[i])
			}
		}
		names = names[:0]
	}
	for _, h := range tt.Hosts {
		if err := validName(h.Name); err != nil {
			bad("host %q: bad name", h.Name)
		}
		names = append(names, h.Name)
		if err := validName(h.Site); err != nil {
			bad("host %q: bad site %q", h.Name, h.Site)
		}
		if h.MemoryMiB < 0 || h.MemoryMiB > maxCapacity || h.VCPUs < 0 || h.VCPUs > maxCapacity {
			bad("host %q: capacity out of range (%d MiB, %d vCPUs)", h.Name, h.MemoryMiB, h.VCPUs)
		}
	}
	dups("host")
	for _, s := range tt.Storage {
		if err := validName(s.Name); err != nil {
			bad("storage host %q: bad name", s.Name)
		}
		names = append(names, s.Name)
		if err := validName(s.Site); err != nil {
			bad("storage host %q: bad site %q", s.Name, s.Site)
		}
		if s.Bytes < 0 || s.Bytes > maxCapacity {
			bad("storage host %q: capacity %d out of range", s.Name, s.Bytes)
		}
	}
	dups("storage host")
	return errors.Join(errs...)
}

func vlanSuffix(e *Entry) string {
	if e.Kind == KindVLAN {
		return fmt.Sprint(e.VLAN)
	}
	return ""
}

func validEntry(e *Entry) error {
	if err := validName(e.VC); err != nil {
		return fmt.Errorf("bad VC name")
	}
	if err := validWindow(e.Window); err != nil {
		return err
	}
	inRange := func(v int64) bool { return v >= 0 && v <= maxCapacity }
	if !inRange(e.MemoryMiB) || !inRange(e.VCPUs) || !inRange(e.Bytes) || e.Nodes < 0 || e.Frontends < 0 || e.Frontends > e.Nodes {
		return fmt.Errorf("amounts out of range")
	}
	switch e.Kind {
	case KindHost, KindStorage:
		if validName(e.Resource) != nil {
			return fmt.Errorf("bad resource name")
		}
	case KindVLAN:
		if e.VLAN < MinVLAN || e.VLAN > MaxVLAN {
			return fmt.Errorf("VLAN tag %d is not in %d-%d", e.VLAN, MinVLAN, MaxVLAN)
		}
	default:
		return fmt.Errorf("unknown kind %q", e.Kind)
	}
	return nil
}

// validName is coord.ValidName without the regular expression (it runs for
// every entry of every admission): 1-63 letters, digits, '.', '_' or '-',
// starting with a letter or digit. A test checks the two agree.
func validName(s string) error {
	ok := len(s) >= 1 && len(s) <= 63
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", s)
	}
	return nil
}

// clone copies the timetable's slices (entries are values).
func (tt Timetable) clone() Timetable {
	return Timetable{
		Hosts:   slices.Clone(tt.Hosts),
		Storage: slices.Clone(tt.Storage),
		Entries: slices.Clone(tt.Entries),
	}
}

// Add returns the timetable with the placement's entries added. It does
// not check them: use the placement Admit returned for this timetable.
func (tt Timetable) Add(p Placement) Timetable {
	out := tt.clone()
	out.Entries = append(out.Entries, p.Entries()...)
	return out
}

// Has reports whether the timetable holds entries of the VC.
func (tt Timetable) Has(vc string) bool {
	for i := range tt.Entries {
		if tt.Entries[i].VC == vc {
			return true
		}
	}
	return false
}

// EntriesOf returns the VC's entries, in timetable order.
func (tt Timetable) EntriesOf(vc string) []Entry {
	var out []Entry
	for _, e := range tt.Entries {
		if e.VC == vc {
			out = append(out, e)
		}
	}
	return out
}

// Cancel returns the timetable without the VC's entries: everything the VC
// booked is free again, for its whole window.
func (tt Timetable) Cancel(vc string) Timetable {
	out := tt.clone()
	out.Entries = slices.DeleteFunc(out.Entries, func(e Entry) bool { return e.VC == vc })
	return out
}

// Release returns the timetable after the VC releases its resources early,
// at instant at: its entries end at at instead (entries that have not
// started by then are removed). Entries already ending by at are kept as
// they are.
func (tt Timetable) Release(vc string, at time.Time) Timetable {
	out := tt.clone()
	out.Entries = out.Entries[:0]
	for _, e := range tt.Entries {
		if e.VC == vc {
			e.Window = ReleaseWindow(e.Window, at)
			if !e.Window.Start.Before(e.Window.End) {
				continue
			}
		}
		out.Entries = append(out.Entries, e)
	}
	return out
}

// ReleaseWindow is the window w becomes when released at instant at: it
// ends at at if at falls inside it, is empty if at is at or before its
// start, and is unchanged if at is at or after its end.
func ReleaseWindow(w Window, at time.Time) Window {
	switch {
	case !at.After(w.Start):
		return Window{Start: w.Start, End: w.Start}
	case at.Before(w.End):
		return Window{Start: w.Start, End: at}
	}
	return w
}

// interval is a booking clipped to some span, with up to two amounts.
type interval struct {
	s, e int64
	a, b int64
}

// peaks returns the largest sums of a and of b over any instant (each
// maximised independently) and an instant where each is reached. Half-open
// intervals: one ending at t and another starting at t do not overlap.
func peaks(iv []interval) (pa, pb, ta, tb int64) {
	var scratch []event
	return peaksBuf(iv, &scratch)
}

// event is one end of an interval in peaks' sweep.
type event struct {
	t      int64
	da, db int64
	start  bool
}

// peaksBuf is peaks with a reusable event buffer.
func peaksBuf(iv []interval, scratch *[]event) (pa, pb, ta, tb int64) {
	if len(iv) == 0 {
		return 0, 0, 0, 0
	}
	if len(iv) == 1 {
		return iv[0].a, iv[0].b, iv[0].s, iv[0].s
	}
	ev := (*scratch)[:0]
	defer func() { *scratch = ev }()
	for _, x := range iv {
		ev = append(ev, event{x.s, x.a, x.b, true}, event{x.e, -x.a, -x.b, false})
	}
	slices.SortFunc(ev, func(x, y event) int {
		if c := cmp.Compare(x.t, y.t); c != 0 {
			return c
		}
		// Ends before starts at the same instant.
		switch {
		case x.start == y.start:
			return 0
		case !x.start:
			return -1
		}
		return 1
	})
	var sa, sb int64
	ta, tb = ev[0].t, ev[0].t
	for _, x := range ev {
		sa = addSat(sa, x.da)
		sb = addSat(sb, x.db)
		if sa > pa {
			pa, ta = sa, x.t
		}
		if sb > pb {
			pb, tb = sb, x.t
		}
	}
	return pa, pb, ta, tb
}

// Verify checks that no resource is overcommitted at any instant: for
// every listed host and storage host, the entries covering each instant
// fit its capacity, and no VLAN tag is held by two entries at once. It
// returns nil or an error wrapping ErrOvercommit per violation.
func (tt Timetable) Verify() error {
	var errs []error
	hostIv := map[string][]interval{}
	storeIv := map[string][]interval{}
	vlans := map[int][]Entry{}
	for _, e := range tt.Entries {
		sp := spanOf(e.Window)
		switch e.Kind {
		case KindHost:
			hostIv[e.Resource] = append(hostIv[e.Resource], interval{sp.s, sp.e, e.MemoryMiB, e.VCPUs})
		case KindStorage:
			storeIv[e.Resource] = append(storeIv[e.Resource], interval{sp.s, sp.e, e.Bytes, 0})
		case KindVLAN:
			if e.VLAN < MinVLAN || e.VLAN > MaxVLAN {
				errs = append(errs, fmt.Errorf("%w: VC %s holds VLAN tag %d outside %d-%d", ErrOvercommit, e.VC, e.VLAN, MinVLAN, MaxVLAN))
			}
			vlans[e.VLAN] = append(vlans[e.VLAN], e)
		}
	}
	at := func(t int64) string { return time.Unix(0, t).UTC().Format(time.RFC3339Nano) }
	for _, h := range tt.Hosts {
		mem, cpu, tm, tc := peaks(hostIv[h.Name])
		if mem > h.MemoryMiB {
			errs = append(errs, fmt.Errorf("%w: host %s: %d MiB booked at %s, capacity %d MiB", ErrOvercommit, h.Name, mem, at(tm), h.MemoryMiB))
		}
		if cpu > h.VCPUs {
			errs = append(errs, fmt.Errorf("%w: host %s: %d vCPUs booked at %s, capacity %d", ErrOvercommit, h.Name, cpu, at(tc), h.VCPUs))
		}
	}
	for _, s := range tt.Storage {
		b, _, tb, _ := peaks(storeIv[s.Name])
		if b > s.Bytes {
			errs = append(errs, fmt.Errorf("%w: storage host %s: %d bytes booked at %s, capacity %d", ErrOvercommit, s.Name, b, at(tb), s.Bytes))
		}
	}
	tags := make([]int, 0, len(vlans))
	for t := range vlans {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	for _, tag := range tags {
		es := vlans[tag]
		slices.SortFunc(es, func(x, y Entry) int { return x.Window.Start.Compare(y.Window.Start) })
		for i := 1; i < len(es); i++ {
			for j := 0; j < i; j++ {
				if es[j].Window.Overlaps(es[i].Window) {
					errs = append(errs, fmt.Errorf("%w: VLAN %d held by %s %v and %s %v", ErrOvercommit, tag, es[j].VC, es[j].Window, es[i].VC, es[i].Window))
				}
			}
		}
	}
	return errors.Join(errs...)
}
