// Package coordtest is the contract suite of coord.Store. Every
// implementation runs Run unchanged: coord/memstore in the unit tier,
// coord/zkstore against a real ZooKeeper ensemble in the integration tier.
// The suite pins ZooKeeper's semantics (versions, sequence numbers, one-shot
// watches, atomic Multi, ephemerals, sessions, digest ACLs) so that code
// tested on the fake behaves the same on the real thing.
//
// Every check is a named subtest (Create/Sequential, Watch/OneShot, ...),
// so a failure says which part of the contract broke. Each subtest gets a
// fresh, empty namespace from Harness.NewCluster.
package coordtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Harness gives the suite fresh sessions on an isolated, empty namespace.
type Harness struct {
	// NewCluster returns a fresh isolated namespace (for ZooKeeper: a
	// unique chroot on a shared ensemble).
	NewCluster func(t *testing.T) Cluster
}

// Cluster is one isolated namespace of an implementation. The namespace
// starts empty (its root "/" has no children) and its root grants every
// permission to everyone, whatever credentials the first session to
// connect holds.
type Cluster struct {
	// Connect opens a new session on the namespace, authenticated with
	// creds (possibly none). The suite closes the Store when it is done
	// with it; the implementation should also close it in t.Cleanup, so
	// Close must be safe to call twice.
	Connect func(t *testing.T, creds ...coord.Credential) coord.Store
	// Expire ends s's session as the ensemble would: its ephemerals are
	// deleted, its watches get EventNotWatching with ErrSessionExpired, and
	// OnSession sees StateExpired then StateConnected with a new SessionID.
	// It may return before the Store has noticed. Nil if the implementation
	// cannot do it quickly; the Expire subtests are then skipped.
	Expire func(t *testing.T, s coord.Store)
}

// Timing of the suite. Expected events may take a while on a loaded
// machine against a real ensemble; "nothing happens" checks use a short
// window, so the suite stays fast.
const (
	// eventWait bounds the wait for an event that must arrive.
	eventWait = 10 * time.Second
	// quietWait is how long an event that must not arrive is waited for.
	quietWait = 200 * time.Millisecond
	// testTimeout bounds each subtest's calls.
	testTimeout = 60 * time.Second
)

type test struct {
	name string
	fn   func(t *testing.T, e *env)
}

type group struct {
	name  string
	tests []test
}

// Run runs the whole contract suite against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewCluster == nil {
		t.Fatal("coordtest: Harness.NewCluster is nil")
	}
	groups := []group{
		{"Namespace", namespaceTests},
		{"Create", createTests},
		{"InvalidPath", invalidPathTests},
		{"GetSet", getSetTests},
		{"Stat", statTests},
		{"Delete", deleteTests},
		{"Children", childrenTests},
		{"Exists", existsTests},
		{"Watch", watchTests},
		{"Multi", multiTests},
		{"Sync", syncTests},
		{"Ephemeral", ephemeralTests},
		{"Close", closeTests},
		{"OnSession", onSessionTests},
		{"Expire", expireTests},
		{"ACL", aclTests},
		{"Helpers", helperTests},
		{"Concurrency", concurrencyTests},
		{"Context", contextTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.fn(t, newEnv(t, h))
				})
			}
		})
	}
}

// env is one subtest's namespace and deadline.
type env struct {
	ctx context.Context
	cl  Cluster
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	cl := h.NewCluster(t)
	if cl.Connect == nil {
		t.Fatal("coordtest: Cluster.Connect is nil")
	}
	return &env{ctx: ctx, cl: cl}
}

// connect opens a session that is closed when the test ends.
func (e *env) connect(t *testing.T, creds ...coord.Credential) coord.Store {
	t.Helper()
	s := e.cl.Connect(t, creds...)
	if s == nil {
		t.Fatal("coordtest: Cluster.Connect returned nil")
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustCreate(t *testing.T, ctx context.Context, s coord.Store, p string, data []byte, mode coord.CreateMode, acl []coord.ACL) string {
	t.Helper()
	got, err := s.Create(ctx, p, data, mode, acl)
	if err != nil {
		t.Fatalf("Create(%s, %v): %v", p, mode, err)
	}
	return got
}

// mkdirs creates empty persistent nodes with the default ACL, in order.
func mkdirs(t *testing.T, ctx context.Context, s coord.Store, paths ...string) {
	t.Helper()
	for _, p := range paths {
		mustCreate(t, ctx, s, p, nil, coord.Persistent, nil)
	}
}

func mustGet(t *testing.T, ctx context.Context, s coord.Store, p string) ([]byte, coord.Stat) {
	t.Helper()
	data, st, err := s.Get(ctx, p)
	if err != nil {
		t.Fatalf("Get(%s): %v", p, err)
	}
	return data, st
}

func mustSet(t *testing.T, ctx context.Context, s coord.Store, p string, data []byte, version int32) coord.Stat {
	t.Helper()
	st, err := s.Set(ctx, p, data, version)
	if err != nil {
		t.Fatalf("Set(%s, version %d): %v", p, version, err)
	}
	return st
}

func mustDelete(t *testing.T, ctx context.Context, s coord.Store, p string, version int32) {
	t.Helper()
	if err := s.Delete(ctx, p, version); err != nil {
		t.Fatalf("Delete(%s, version %d): %v", p, version, err)
	}
}

func mustExist(t *testing.T, ctx context.Context, s coord.Store, p string, want bool) coord.Stat {
	t.Helper()
	ok, st, err := s.Exists(ctx, p)
	if err != nil {
		t.Fatalf("Exists(%s): %v", p, err)
	}
	if ok != want {
		t.Fatalf("Exists(%s) = %v, want %v", p, ok, want)
	}
	return st
}

func mustChildren(t *testing.T, ctx context.Context, s coord.Store, p string) []string {
	t.Helper()
	kids, _, err := s.Children(ctx, p)
	if err != nil {
		t.Fatalf("Children(%s): %v", p, err)
	}
	return kids
}

// wantErr fails the test unless errors.Is(err, want).
func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// nextEvent receives a watch's event, failing if none comes in time or the
// channel closes without one.
func nextEvent(t *testing.T, ch <-chan coord.Event, what string) coord.Event {
	t.Helper()
	if ch == nil {
		t.Fatalf("%s: nil watch channel", what)
	}
	timer := time.NewTimer(eventWait)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("%s: watch channel closed without an event", what)
		}
		return ev
	case <-timer.C:
		t.Fatalf("%s: no event within %v", what, eventWait)
	}
	return coord.Event{}
}

// wantEvent checks that ch delivers exactly one event, of type typ on path
// p, and is then closed.
func wantEvent(t *testing.T, ch <-chan coord.Event, typ coord.EventType, p, what string) coord.Event {
	t.Helper()
	ev := nextEvent(t, ch, what)
	if ev.Type != typ || ev.Path != p {
		t.Errorf("%s: event {%v %s %v}, want {%v %s}", what, ev.Type, ev.Path, ev.Err, typ, p)
	}
	if typ != coord.EventNotWatching && ev.Err != nil {
		t.Errorf("%s: event %v carries error %v", what, ev.Type, ev.Err)
	}
	wantClosed(t, ch, what)
	return ev
}

// wantClosed checks that a watch channel whose event was received is
// closed without a second event.
func wantClosed(t *testing.T, ch <-chan coord.Event, what string) {
	t.Helper()
	timer := time.NewTimer(eventWait)
	defer timer.Stop()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Errorf("%s: second event {%v %s %v} on a one-shot watch", what, ev.Type, ev.Path, ev.Err)
		}
	case <-timer.C:
		t.Errorf("%s: watch channel not closed %v after its event", what, eventWait)
	}
}

// wantNotWatching checks that ch ends with EventNotWatching caused by
// cause.
func wantNotWatching(t *testing.T, ch <-chan coord.Event, p string, cause error, what string) {
	t.Helper()
	ev := wantEvent(t, ch, coord.EventNotWatching, p, what)
	if !errors.Is(ev.Err, cause) {
		t.Errorf("%s: EventNotWatching error %v, want %v", what, ev.Err, cause)
	}
}

// wantQuiet waits quietWait once and fails for every named watch that
// received anything.
func wantQuiet(t *testing.T, watches map[string]<-chan coord.Event) {
	t.Helper()
	timer := time.NewTimer(quietWait)
	defer timer.Stop()
	<-timer.C
	for name, ch := range watches {
		select {
		case ev, ok := <-ch:
			if ok {
				t.Errorf("%s: unexpected event {%v %s %v}", name, ev.Type, ev.Path, ev.Err)
			} else {
				t.Errorf("%s: watch channel closed without an event", name)
			}
		default:
		}
	}
}

// waitFor polls cond until it holds or eventWait passes.
func waitFor(t *testing.T, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("%s: not reached within %v", what, eventWait)
			return false
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
	return true
}

// seqOf splits a sequential node name into its prefix and counter,
// checking the 10-digit zero-padded suffix.
func seqOf(t *testing.T, name string) (string, int64) {
	t.Helper()
	base := name[strings.LastIndexByte(name, '/')+1:]
	if len(base) < 10 {
		t.Fatalf("sequential name %q: shorter than a 10-digit suffix", name)
	}
	digits := base[len(base)-10:]
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || strings.ContainsAny(digits, "+-") {
		t.Fatalf("sequential name %q: suffix %q is not 10 decimal digits", name, digits)
	}
	return base[:len(base)-10], n
}

// sessionRecorder collects session events from OnSession.
type sessionRecorder struct {
	ch chan coord.SessionEvent
}

func newSessionRecorder() *sessionRecorder {
	return &sessionRecorder{ch: make(chan coord.SessionEvent, 1024)}
}

func (r *sessionRecorder) fn(ev coord.SessionEvent) {
	select {
	case r.ch <- ev:
	default: // a test records far fewer events; never block the store
	}
}

// waitState receives events until one matches, failing after eventWait.
// It returns the events seen, the match last.
func (r *sessionRecorder) waitState(t *testing.T, what string, match func(coord.SessionEvent) bool) []coord.SessionEvent {
	t.Helper()
	var seen []coord.SessionEvent
	timer := time.NewTimer(eventWait)
	defer timer.Stop()
	for {
		select {
		case ev := <-r.ch:
			seen = append(seen, ev)
			if match(ev) {
				return seen
			}
		case <-timer.C:
			t.Fatalf("%s: not seen within %v (events: %s)", what, eventWait, fmtEvents(seen))
			return nil
		}
	}
}

func fmtEvents(evs []coord.SessionEvent) string {
	parts := make([]string, len(evs))
	for i, ev := range evs {
		parts[i] = fmt.Sprintf("%v(%#x)", ev.State, ev.SessionID)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
