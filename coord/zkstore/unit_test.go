package zkstore

import (
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/musubi-fabric/musubi/coord"
)

func TestValidPathMatchesCoord(t *testing.T) {
	for _, p := range []string{
		"/", "/a", "/a/b", "/a.b/c-d_e", "/a/./b", "/a/../b", "/.", "/..", "/...", "/a/.b", "/a..",
		"", "a", "a/b", "//", "/a/", "/a//b", "/a\x00b", "/a/b/", "/\u00e9", "/.a/..b",
	} {
		fast := validPath(p)
		slow := coord.ValidPath(p) == nil
		if fast != slow {
			t.Errorf("validPath(%q) = %v, coord.ValidPath says %v", p, fast, slow)
		}
	}
}

func FuzzValidPath(f *testing.F) {
	for _, p := range []string{"/", "/a/b", "/a/../b", "//", "/a/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if fast, slow := validPath(p), coord.ValidPath(p) == nil; fast != slow {
			t.Fatalf("validPath(%q) = %v, coord.ValidPath says %v", p, fast, slow)
		}
	})
}

func TestConfigResolve(t *testing.T) {
	cred := coord.Credential{User: "fed", Password: "secret"}
	r, err := Config{Servers: []string{"h1:1", "h2:2", "h3:3"}, LocalServer: "h2:2", Root: "/musubi/x", Credentials: []coord.Credential{cred}}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if got := r.servers; len(got) != 3 || got[0] != "h2:2" || got[1] != "h1:1" || got[2] != "h3:3" {
		t.Errorf("servers %v: want LocalServer first, then the configured order without duplicates", got)
	}
	if r.sessionTimeout != DefaultSessionTimeout || r.backoff != DefaultReconnectBackoff {
		t.Errorf("defaults: timeout %v backoff %v", r.sessionTimeout, r.backoff)
	}
	if len(r.acl) != 1 || r.acl[0].Scheme != "digest" || r.acl[0].ID != cred.DigestID() || r.acl[0].Perms != coord.PermAll {
		t.Errorf("default ACL with credentials: %+v", r.acl)
	}
	r, err = Config{Servers: []string{"h1:1"}, Root: "/"}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.root != "" || len(r.acl) != 1 || r.acl[0].Scheme != "world" {
		t.Errorf("root %q acl %+v: want no chroot, world ACL", r.root, r.acl)
	}
	if _, err := (Config{Servers: []string{"unix:/run/musubi/zk-1.sock", "h1:1"}}).resolve(); err != nil {
		t.Errorf("a unix socket relay as a server: %v", err)
	}
	for name, c := range map[string]Config{
		"no servers":    {},
		"no port":       {Servers: []string{"h1"}},
		"bad port":      {Servers: []string{"h1:x"}},
		"bad local":     {Servers: []string{"h1:1"}, LocalServer: ":1"},
		"bad root":      {Servers: []string{"h1:1"}, Root: "musubi/"},
		"bad cred":      {Servers: []string{"h1:1"}, Credentials: []coord.Credential{{User: "a:b", Password: "p"}}},
		"empty acl":     {Servers: []string{"h1:1"}, DefaultACL: []coord.ACL{}},
		"neg backoff":   {Servers: []string{"h1:1"}, ReconnectBackoff: -1},
		"tiny timeout":  {Servers: []string{"h1:1"}, SessionTimeout: time.Microsecond},
		"relative unix": {Servers: []string{"unix:relay/zk-1.sock"}},
		"unclean unix":  {Servers: []string{"unix:/run/../zk.sock"}},
	} {
		if _, err := c.resolve(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: err %v, want ErrBadConfig", name, err)
		}
	}
}

func TestRootStrip(t *testing.T) {
	s := &Store{root: "/musubi/demo"}
	for p, want := range map[string]string{"/": "/musubi/demo", "/a": "/musubi/demo/a", "/a/b": "/musubi/demo/a/b"} {
		if got := s.full(p); got != want {
			t.Errorf("full(%q) = %q, want %q", p, got, want)
		}
		if got := s.strip(want); got != p {
			t.Errorf("strip(%q) = %q, want %q", want, got, p)
		}
	}
	s = &Store{}
	if s.full("/a") != "/a" || s.strip("/a") != "/a" {
		t.Error("no root must leave paths alone")
	}
}

func TestMultiCause(t *testing.T) {
	inconsistent := errors.New("unknown error: -2")
	res := []zk.MultiResponse{{}, {Error: zk.ErrNoNode}, {Error: inconsistent}}
	if i := multiCause(res); i != 1 {
		t.Errorf("cause %d, want 1", i)
	}
	res = []zk.MultiResponse{{Error: inconsistent}, {Error: zk.ErrNodeExists}}
	if i := multiCause(res); i != 1 {
		t.Errorf("cause %d, want 1 (skip runtime inconsistency)", i)
	}
	if i := multiCause([]zk.MultiResponse{{}, {}}); i != -1 {
		t.Errorf("cause %d, want -1", i)
	}
}

func TestMapErr(t *testing.T) {
	s := &Store{}
	for in, want := range map[error]error{
		zk.ErrNoNode:                  coord.ErrNotFound,
		zk.ErrNodeExists:              coord.ErrExists,
		zk.ErrBadVersion:              coord.ErrBadVersion,
		zk.ErrNotEmpty:                coord.ErrNotEmpty,
		zk.ErrNoChildrenForEphemerals: coord.ErrNoChildrenForEphemerals,
		zk.ErrNoAuth:                  coord.ErrNoAuth,
		zk.ErrSessionExpired:          coord.ErrSessionExpired,
		zk.ErrConnectionClosed:        coord.ErrConnectionLost,
		zk.ErrNoServer:                coord.ErrUnavailable,
		zk.ErrClosing:                 coord.ErrClosed,
		zk.ErrInvalidPath:             coord.ErrInvalidPath,
		zk.ErrInvalidACL:              ErrInvalidACL,
	} {
		if got := s.mapErr(in); !errors.Is(got, want) {
			t.Errorf("mapErr(%v) = %v, want %v", in, got, want)
		}
	}
	s.closed.Store(true)
	for _, in := range []error{zk.ErrConnectionClosed, zk.ErrNoServer} {
		if got := s.mapErr(in); !errors.Is(got, coord.ErrClosed) {
			t.Errorf("after Close: mapErr(%v) = %v, want ErrClosed", in, got)
		}
	}
}

func TestHostProviderOrderAndBackoff(t *testing.T) {
	ready, quit := make(chan struct{}), make(chan struct{})
	close(ready)
	notified := 0
	h := newHostProvider([]string{"local:1", "b:2", "c:3"}, 30*time.Millisecond, time.Hour, ready, quit, func() { notified++ })
	if err := h.Init([]string{"c:3", "local:1", "b:2"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 3; i++ {
		s, retry := h.Next()
		if retry {
			t.Fatalf("retryStart in the first pass")
		}
		got = append(got, s)
	}
	if got[0] != "local:1" || got[1] != "b:2" || got[2] != "c:3" {
		t.Fatalf("first pass %v: want the configured order", got)
	}
	if h.exhausted.Load() {
		t.Fatal("exhausted before a pass completed")
	}
	t0 := time.Now()
	s, retry := h.Next()
	if d := time.Since(t0); d < 30*time.Millisecond || d > 900*time.Millisecond {
		t.Errorf("pause after a failed pass %v: want the 30ms backoff", d)
	}
	if s != "local:1" || retry {
		t.Errorf("after a failed pass: %s retry=%v, want local:1 without retryStart", s, retry)
	}
	if !h.exhausted.Load() || notified != 1 {
		t.Errorf("exhausted=%v notified=%d after a failed pass", h.exhausted.Load(), notified)
	}
	h.Next() // b:2
	h.Connected()
	if h.exhausted.Load() {
		t.Error("still exhausted after Connected")
	}
	if s, _ := h.Next(); s != "local:1" {
		t.Errorf("reconnect starts at %s, want local:1", s)
	}
	// Closing interrupts the backoff.
	h.Next()
	h.Next()
	close(quit)
	t0 = time.Now()
	h.backoff = time.Hour
	h.Next()
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Next slept %v after quit", d)
	}
}

func TestHostProviderFlush(t *testing.T) {
	ready := make(chan struct{})
	close(ready)
	h := newHostProvider([]string{"a:1"}, time.Millisecond, 20*time.Millisecond, ready, make(chan struct{}), func() {})
	h.Next()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, retry := h.Next(); retry {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no retryStart during a continuous outage")
		}
	}
	if d := h.outage(); d < 20*time.Millisecond {
		t.Errorf("outage %v, want >= flushEvery", d)
	}
}
