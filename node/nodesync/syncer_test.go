package nodesync

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/node/vcacl"
	"github.com/musubi-fabric/musubi/overlay"
)

// watcher collects a Syncer's reports for tests to wait on.
type watcher struct {
	mu     sync.Mutex
	latest map[Kind]Applied
	count  map[Kind]int
	notify chan struct{}
}

func newWatcher() *watcher {
	return &watcher{latest: map[Kind]Applied{}, count: map[Kind]int{}, notify: make(chan struct{}, 1)}
}

func (w *watcher) onApplied(a Applied) {
	w.mu.Lock()
	w.latest[a.Kind] = a
	w.count[a.Kind]++
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// waitFor waits until the latest report of kind k satisfies ok.
func (w *watcher) waitFor(t *testing.T, k Kind, what string, ok func(Applied) bool) Applied {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		a, seen := w.latest[k]
		w.mu.Unlock()
		if seen && ok(a) {
			return a
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s (%s); last report: %+v", what, k, a)
		}
	}
}

func hasHost(name, ip string) func(Applied) bool {
	return func(a Applied) bool {
		for _, e := range a.Hosts {
			if slices.Contains(e.Names, name) {
				return ip == "" || e.IP.String() == ip
			}
		}
		return ip == "-" // "-": absent
	}
}

func hasUser(name string, present bool) func(Applied) bool {
	return func(a Applied) bool { return slices.Contains(a.Users, name) == present }
}

type harness struct {
	ctx   context.Context
	srv   *memstore.Server
	w     coord.Store // the federation's writer
	hosts string
	root  string
	seen  *watcher
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	h := &harness{ctx: ctx, srv: memstore.New(), hosts: filepath.Join(t.TempDir(), "hosts"), root: newRoot(t), seen: newWatcher()}
	h.w = h.connect(t)
	if err := os.WriteFile(h.hosts, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) connect(t *testing.T, opts ...memstore.Option) *memstore.Store {
	st := h.srv.Connect(opts...)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// start runs a Syncer of VC "v" on st until the test ends; the test fails
// if Run returns an error.
func (h *harness) start(t *testing.T, st coord.Store, mutate func(*Config)) {
	t.Helper()
	cfg := Config{Store: st, VC: "v", HostsFile: h.hosts, Users: &FileDB{Root: h.root}, OnApplied: h.seen.onApplied,
		Logger: testLogger(t)}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (h *harness) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) putHost(t *testing.T, dir, name, ip string, aliases ...string) {
	t.Helper()
	h.must(t, coord.EnsurePath(h.ctx, h.w, dir))
	h.must(t, PutHost(h.ctx, h.w, dir, HostRecord{Name: name, IP: netip.MustParseAddr(ip), Aliases: aliases}))
}

func (h *harness) putNode(t *testing.T, vc, node, ip string) {
	t.Helper()
	r := overlayctl.NodeRecord{Node: node, VC: vc, Site: "s1", Port: "p-" + node, VLAN: 100, MAC: overlay.MAC{2, 0, 0, 0, 0, 1}}
	if ip != "" {
		r.IP = netip.MustParseAddr(ip)
	}
	h.must(t, overlayctl.PutNode(h.ctx, h.w, r))
}

func (h *harness) putAccount(t *testing.T, dir string, a api.Account) {
	t.Helper()
	h.must(t, coord.EnsurePath(h.ctx, h.w, dir))
	data, err := json.Marshal(a)
	h.must(t, err)
	p := coord.Join(dir, a.User)
	if _, err := h.w.Set(h.ctx, p, data, coord.AnyVersion); errors.Is(err, coord.ErrNotFound) {
		_, err = h.w.Create(h.ctx, p, data, coord.Persistent, nil)
		h.must(t, err)
	} else {
		h.must(t, err)
	}
}

func TestHostsRenderedAndFollowed(t *testing.T) {
	h := newHarness(t)
	h.putHost(t, coord.HostsDir, "h1", "192.168.1.1", "h1.site1")
	h.putHost(t, coord.HostsDir, "n1", "192.168.9.9") // shadowed by the VC's node n1
	h.putNode(t, "v", "n1", "10.0.0.1")
	h.putNode(t, "v", "noip", "")
	h.putHost(t, coord.VCHostsDir("v"), "extra", "10.0.0.100", "h1.site1") // its alias is shadowed by nothing: VC first
	h.must(t, coord.EnsurePath(h.ctx, h.w, coord.HostsDir+"/bad"))
	h.must(t, func() error {
		_, err := h.w.Set(h.ctx, coord.HostsDir+"/bad", []byte(`{"ip":"10.0.0.1","aliases":["a b"]}`), 0)
		return err
	}())
	h.start(t, h.w, nil)

	h.seen.waitFor(t, KindHosts, "the first rendering", hasHost("h1", "192.168.1.1"))
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n" + BlockBegin + "\n" + blockNote + "\n" +
		"10.0.0.1\tn1\n10.0.0.100\textra\th1.site1\n192.168.1.1\th1\n" + BlockEnd + "\n"
	if got := readFile(t, h.hosts); got != want {
		t.Errorf("hosts file:\n%s\nwant\n%s", got, want)
	}

	// Every kind of change is followed by watches.
	h.putNode(t, "v", "n2", "10.0.0.2")
	h.seen.waitFor(t, KindHosts, "a new node", hasHost("n2", "10.0.0.2"))
	h.putHost(t, coord.HostsDir, "h1", "192.168.1.2")
	h.seen.waitFor(t, KindHosts, "a changed address", hasHost("h1", "192.168.1.2"))
	h.must(t, h.w.Delete(h.ctx, coord.VCHostsDir("v")+"/extra", coord.AnyVersion))
	a := h.seen.waitFor(t, KindHosts, "a deleted record", hasHost("extra", "-"))
	if !hasHost("h1.site1", "-")(a) {
		t.Errorf("the deleted record's alias is still rendered: %+v", a.Hosts)
	}
	h.must(t, overlayctl.DeleteNode(h.ctx, h.w, "v", "n1"))
	h.seen.waitFor(t, KindHosts, "the federation's n1 once the VC's is gone", hasHost("n1", "192.168.9.9"))
	got := readFile(t, h.hosts)
	if !strings.HasPrefix(got, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"+BlockBegin) || strings.Count(got, BlockBegin) != 1 {
		t.Errorf("foreign lines or block damaged:\n%s", got)
	}
	// A foreign line added by the administrator survives the next render.
	h.must(t, os.WriteFile(h.hosts, []byte("10.9.9.9\tadmin-box\n"+got), 0o644))
	h.putHost(t, coord.HostsDir, "h3", "192.168.1.3")
	h.seen.waitFor(t, KindHosts, "h3", hasHost("h3", "192.168.1.3"))
	if got := readFile(t, h.hosts); !strings.HasPrefix(got, "10.9.9.9\tadmin-box\n127.0.0.1") || !strings.Contains(got, "192.168.1.3\th3\n") {
		t.Errorf("after an administrator's edit:\n%s", got)
	}
}

func TestDirectoriesCreatedLater(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.w, func(c *Config) { c.Users = nil })
	h.seen.waitFor(t, KindHosts, "an empty block", func(a Applied) bool { return len(a.Hosts) == 0 })
	h.putNode(t, "v", "n1", "10.0.0.1")
	h.seen.waitFor(t, KindHosts, "a node in a directory created after the start", hasHost("n1", "10.0.0.1"))
	h.putHost(t, coord.HostsDir, "h1", "192.168.1.1")
	h.seen.waitFor(t, KindHosts, "a host in a directory created after the start", hasHost("h1", "192.168.1.1"))
	// The whole directory goes and comes back.
	h.must(t, overlayctl.DeleteNode(h.ctx, h.w, "v", "n1"))
	h.must(t, h.w.Delete(h.ctx, coord.VCNodesDir("v"), coord.AnyVersion))
	h.seen.waitFor(t, KindHosts, "the node gone with its directory", hasHost("n1", "-"))
	h.putNode(t, "v", "n1", "10.0.0.11")
	h.seen.waitFor(t, KindHosts, "the node back", hasHost("n1", "10.0.0.11"))
}

func TestAccountsFollowed(t *testing.T) {
	h := newHarness(t)
	k1, k2 := testKey(1, "a1"), testKey(2, "a2")
	h.putAccount(t, coord.AccountsDir, api.Account{User: "alice", UID: 10000, GID: 10000, Shell: "/bin/bash", Home: "/home/alice",
		SSHKeys: []string{k1}, PasswordHash: hashA})
	h.putAccount(t, coord.VCAccountsDir("v"), api.Account{User: "alice", UID: 10100, GID: 10100, Shell: "/bin/sh", Home: "/home/alice2"})
	h.start(t, h.w, nil)
	h.seen.waitFor(t, KindAccounts, "alice", hasUser("alice", true))
	passwd := readFile(t, filepath.Join(h.root, "etc", "passwd"))
	wantLine(t, "passwd", passwd, "alice:x:10000:10000:"+ManagedGECOS+":/home/alice:/bin/bash") // the federation's record wins
	keys := filepath.Join(h.root, "home", "alice", ".ssh", "authorized_keys")

	h.putAccount(t, coord.VCAccountsDir("v"), api.Account{User: "vcuser", UID: 10101, Shell: "/bin/sh", Home: "/home/vcuser", SSHKeys: []string{k2}})
	h.seen.waitFor(t, KindAccounts, "the VC's own account", hasUser("vcuser", true))
	wantLine(t, "passwd", readFile(t, filepath.Join(h.root, "etc", "passwd")), "vcuser:x:10101:10101:"+ManagedGECOS+":/home/vcuser:/bin/sh")

	h.putAccount(t, coord.AccountsDir, api.Account{User: "alice", UID: 10000, GID: 10000, Shell: "/bin/bash", Home: "/home/alice",
		SSHKeys: []string{k1, k2}, PasswordHash: hashA})
	h.seen.waitFor(t, KindAccounts, "alice's new key", func(a Applied) bool { return slices.Contains(a.Changes.Updated, "alice") })
	if got := readFile(t, keys); got != string(renderKeys([]string{k1, k2})) {
		t.Errorf("authorized_keys after the change:\n%s", got)
	}
	h.must(t, h.w.Delete(h.ctx, coord.AccountPath("alice"), coord.AnyVersion))
	vcAlice := "alice:x:10100:10100:" + ManagedGECOS + ":/home/alice2:/bin/sh"
	h.seen.waitFor(t, KindAccounts, "the federation's alice gone: the VC's alice instead", func(a Applied) bool {
		return slices.Contains(lines(readFile(t, filepath.Join(h.root, "etc", "passwd"))), vcAlice)
	})
	h.must(t, h.w.Delete(h.ctx, coord.VCAccountsDir("v")+"/alice", coord.AnyVersion))
	h.seen.waitFor(t, KindAccounts, "alice removed", hasUser("alice", false))
	passwd = readFile(t, filepath.Join(h.root, "etc", "passwd"))
	noLineFor(t, "passwd", passwd, "alice")
	wantLine(t, "passwd", passwd, "carol:x:1000:1000:Carol,,,:/home/carol:/bin/bash")
}

func TestResyncAfterSessionExpiry(t *testing.T) {
	h := newHarness(t)
	agent := h.connect(t)
	h.start(t, agent, func(c *Config) { c.Users = nil })
	h.putHost(t, coord.HostsDir, "h1", "192.168.1.1")
	h.seen.waitFor(t, KindHosts, "h1", hasHost("h1", "192.168.1.1"))
	agent.Expire()
	// Changes made while the watches were lost, and after, are seen.
	h.putHost(t, coord.HostsDir, "h1", "192.168.1.5")
	h.putHost(t, coord.HostsDir, "h2", "192.168.1.2")
	h.seen.waitFor(t, KindHosts, "h1 changed", hasHost("h1", "192.168.1.5"))
	h.seen.waitFor(t, KindHosts, "h2", hasHost("h2", "192.168.1.2"))
	h.putHost(t, coord.HostsDir, "h3", "192.168.1.3")
	h.seen.waitFor(t, KindHosts, "h3 after the expiry", hasHost("h3", "192.168.1.3"))
}

func TestUnreadableDirectoryIsFatal(t *testing.T) {
	h := newHarness(t)
	fed := coord.Credential{User: "fed", Password: "pw"}
	owner := h.connect(t, memstore.WithCredentials(fed), memstore.WithDefaultACL([]coord.ACL{coord.DigestACL(coord.PermAll, fed)}))
	h.must(t, coord.EnsurePath(h.ctx, owner, coord.HostsDir))
	s, err := New(Config{Store: h.connect(t), HostsFile: h.hosts})
	h.must(t, err)
	err = s.Run(h.ctx)
	if !errors.Is(err, coord.ErrNoAuth) || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("Run without the credentials: %v, want ErrNoAuth with a hint", err)
	}
}

func TestClosedStoreEndsRun(t *testing.T) {
	h := newHarness(t)
	st := h.connect(t)
	s, err := New(Config{Store: st, HostsFile: h.hosts, OnApplied: h.seen.onApplied})
	h.must(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Run(h.ctx) }()
	h.seen.waitFor(t, KindHosts, "the first rendering", func(Applied) bool { return true })
	h.must(t, st.Close())
	select {
	case err := <-done:
		if !errors.Is(err, coord.ErrClosed) {
			t.Fatalf("Run after Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end when its store was closed")
	}
}

// TestConfinedAgent: an agent session with only its VC's and the agents
// credentials (node/vcacl) syncs everything it needs.
func TestConfinedAgent(t *testing.T) {
	h := newHarness(t)
	fed := coord.Credential{User: "musubi-federation", Password: "federation-secret"}
	keys, err := vcacl.NewKeys(fed)
	h.must(t, err)
	pol := keys.Policy()
	h.w = vcacl.Wrap(h.connect(t, memstore.WithCredentials(fed), memstore.WithDefaultACL(coord.DefaultACL([]coord.Credential{fed}))), pol)
	h.must(t, pol.InitFederation(h.ctx, h.w))
	h.must(t, pol.CreateVC(h.ctx, h.w, "v"))
	h.must(t, pol.CreateVC(h.ctx, h.w, "other"))
	h.putHost(t, coord.HostsDir, "h1", "192.168.1.1")
	h.putNode(t, "v", "n1", "10.0.0.1")
	h.putNode(t, "other", "x1", "10.0.1.1")
	h.putAccount(t, coord.AccountsDir, api.Account{User: "alice", UID: 10000, GID: 10000, Shell: "/bin/bash", Home: "/home/alice"})
	sec, err := keys.AgentSecret("v")
	h.must(t, err)
	agent := h.connect(t, memstore.WithCredentials(sec.Credentials()...), memstore.WithDefaultACL(sec.DefaultACL()))
	h.start(t, agent, nil)
	h.seen.waitFor(t, KindHosts, "n1 and h1", func(a Applied) bool {
		return hasHost("n1", "10.0.0.1")(a) && hasHost("h1", "192.168.1.1")(a)
	})
	h.seen.waitFor(t, KindAccounts, "alice", hasUser("alice", true))
	h.putHost(t, coord.VCHostsDir("v"), "svc", "10.0.0.50")
	a := h.seen.waitFor(t, KindHosts, "svc", hasHost("svc", "10.0.0.50"))
	if hasHost("x1", "")(a) {
		t.Error("another VC's node rendered")
	}
}

// TestAccountRecordMatchesAPI: the record node/api writes decodes here.
func TestAccountRecordMatchesAPI(t *testing.T) {
	a := api.Account{User: "alice", UID: 10000, GID: 10001, Shell: "/bin/zsh", Home: "/home/al", Groups: []string{"hpc"},
		SSHKeys: []string{testKey(1, "c")}, PasswordHash: hashA, Created: time.Now()}
	if err := a.Normalize(); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	u, err := DecodeAccount("alice", data)
	if err != nil {
		t.Fatal(err)
	}
	want := User{Name: "alice", UID: 10000, GID: 10001, Home: "/home/al", Shell: "/bin/zsh", Groups: []string{"hpc"},
		PasswordHash: hashA, SSHKeys: a.SSHKeys}
	if u.Name != want.Name || u.UID != want.UID || u.GID != want.GID || u.Home != want.Home || u.Shell != want.Shell ||
		!slices.Equal(u.Groups, want.Groups) || u.PasswordHash != want.PasswordHash || !slices.Equal(u.SSHKeys, want.SSHKeys) {
		t.Errorf("decoded %+v\nwant %+v", u, want)
	}
	// Every JSON field of api.Account is known here (or deliberately
	// ignored), so a field added there is noticed.
	var fields map[string]any
	_ = json.Unmarshal(data, &fields)
	known := []string{"user", "uid", "gid", "shell", "home", "groups", "ssh_keys", "password_hash", "created"}
	for f := range fields {
		if !slices.Contains(known, f) {
			t.Errorf("api.Account has a field %q that nodesync does not apply", f)
		}
	}
	if strings.Contains(u.String(), hashA) {
		t.Error("User.String prints the hash")
	}
}

func TestDecodeAccountRefusesUnsafeRecords(t *testing.T) {
	for name, rec := range map[string]string{
		"system uid":      `{"uid":0,"gid":0}`,
		"uid 999":         `{"uid":999}`,
		"nobody's uid":    `{"uid":65534}`,
		"newline in home": `{"uid":10000,"home":"/home/x\nroot::0:0::/:/bin/sh"}`,
		"colon in shell":  `{"uid":10000,"shell":"/bin/sh:x"}`,
		"plain password":  `{"uid":10000,"password_hash":"hunter2"}`,
		"key with option": `{"uid":10000,"ssh_keys":["command=\"x\" ssh-ed25519 AAAA"]}`,
		"other user":      `{"user":"bob","uid":10000}`,
		"not json":        `{`,
	} {
		if _, err := DecodeAccount("alice", []byte(rec)); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", name, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error quotes the password", name)
		}
	}
	if _, err := DecodeAccount("root", []byte(`{"uid":10000}`)); !errors.Is(err, ErrBadRecord) {
		t.Errorf("root: %v", err)
	}
}
