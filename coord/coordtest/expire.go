package coordtest

import (
	"slices"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
)

var expireTests = []test{
	{"Session", func(t *testing.T, e *env) {
		if e.cl.Expire == nil {
			t.Skip("coordtest: Cluster.Expire is nil: this implementation cannot expire a session quickly")
		}
		credA := coord.Credential{User: "alice", Password: "alice-secret"}
		s, x := e.connect(t, credA), e.connect(t)
		mkdirs(t, e.ctx, x, "/data", "/kids", "/q")
		mustCreate(t, e.ctx, s, "/secret", []byte("s"), coord.Persistent, []coord.ACL{coord.DigestACL(coord.PermAll, credA)})
		// Explicit open ACLs: x must be allowed to read them to be told of
		// their deletion (see ACL/WatchEventsNeedRead).
		open := coord.WorldACL(coord.PermAll)
		mustCreate(t, e.ctx, s, "/e1", nil, coord.Ephemeral, open)
		seq := mustCreate(t, e.ctx, s, "/q/e-", nil, coord.EphemeralSequential, open)
		_, _, dataW, err := s.GetW(e.ctx, "/data")
		if err != nil {
			t.Fatalf("GetW: %v", err)
		}
		_, _, kidsW, err := s.ChildrenW(e.ctx, "/kids")
		if err != nil {
			t.Fatalf("ChildrenW: %v", err)
		}
		_, _, existsW, err := s.ExistsW(e.ctx, "/missing")
		if err != nil {
			t.Fatalf("ExistsW: %v", err)
		}
		_, _, e1Gone, err := x.ExistsW(e.ctx, "/e1")
		if err != nil {
			t.Fatalf("ExistsW (other session): %v", err)
		}
		_, _, qKids, err := x.ChildrenW(e.ctx, "/q")
		if err != nil {
			t.Fatalf("ChildrenW (other session): %v", err)
		}
		rec := newSessionRecorder()
		defer s.OnSession(rec.fn)()
		old := s.SessionID()
		if old == 0 {
			t.Fatal("SessionID() is 0 before Expire")
		}

		e.cl.Expire(t, s)

		t.Run("WatchesEndWithErrSessionExpired", func(t *testing.T) {
			wantNotWatching(t, dataW, "/data", coord.ErrSessionExpired, "GetW across expiry")
			wantNotWatching(t, kidsW, "/kids", coord.ErrSessionExpired, "ChildrenW across expiry")
			wantNotWatching(t, existsW, "/missing", coord.ErrSessionExpired, "ExistsW across expiry")
		})
		t.Run("EphemeralsDeleted", func(t *testing.T) {
			wantEvent(t, e1Gone, coord.EventDeleted, "/e1", "other session's ExistsW on the expired session's ephemeral")
			wantEvent(t, qKids, coord.EventChildrenChanged, "/q", "other session's ChildrenW on the expired ephemeral's parent")
			mustExist(t, e.ctx, x, "/e1", false)
			mustExist(t, e.ctx, x, seq, false)
		})
		var newID int64
		t.Run("SessionEvents", func(t *testing.T) {
			seen := rec.waitState(t, "StateConnected with a new SessionID", func(ev coord.SessionEvent) bool {
				return ev.State == coord.StateConnected && ev.SessionID != old && ev.SessionID != 0
			})
			newID = seen[len(seen)-1].SessionID
			expired := slices.IndexFunc(seen, func(ev coord.SessionEvent) bool { return ev.State == coord.StateExpired })
			if expired < 0 {
				t.Errorf("session events %s: no StateExpired before the new session", fmtEvents(seen))
			}
			for _, ev := range seen {
				if ev.State == coord.StateClosed || ev.State == coord.StateAuthFailed {
					t.Errorf("session events %s: unexpected %v", fmtEvents(seen), ev.State)
				}
			}
			waitFor(t, "SessionID() reports the new session", func() bool { return s.SessionID() == newID })
		})
		t.Run("UsableAfterExpiry", func(t *testing.T) {
			if !waitFor(t, "a new session", func() bool { id := s.SessionID(); return id != 0 && id != old }) {
				return
			}
			mustCreate(t, e.ctx, s, "/e2", nil, coord.Ephemeral, coord.WorldACL(coord.PermAll))
			st := mustExist(t, e.ctx, x, "/e2", true)
			if st.EphemeralOwner != s.SessionID() || st.EphemeralOwner == old {
				t.Errorf("ephemeral after expiry: owner %#x, want the new session %#x (old %#x)", st.EphemeralOwner, s.SessionID(), old)
			}
			if data, _ := mustGet(t, e.ctx, s, "/secret"); string(data) != "s" {
				t.Errorf("digest-protected read after expiry: %q", data)
			}
			mustSet(t, e.ctx, s, "/data", []byte("after"), coord.AnyVersion)
			_, _, ch, err := s.GetW(e.ctx, "/data")
			if err != nil {
				t.Fatalf("GetW after expiry: %v", err)
			}
			mustSet(t, e.ctx, x, "/data", []byte("again"), coord.AnyVersion)
			wantEvent(t, ch, coord.EventDataChanged, "/data", "watch set after expiry")
		})
		t.Run("PersistentNodesKept", func(t *testing.T) {
			for _, p := range []string{"/data", "/kids", "/q", "/secret"} {
				mustExist(t, e.ctx, x, p, true)
			}
		})
	}},
}
