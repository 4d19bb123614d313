package lifecycle_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/musubi-fabric/musubi/node/lifecycle"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
)

// fakeQSD makes the simulated host's qemu-storage-daemon serve its NBD
// socket (a listener nobody accepts from: dialling it succeeds) and
// checks that the secret file it is given holds the secret.
type fakeQSD struct {
	t      *testing.T
	mu     sync.Mutex
	ls     map[int]net.Listener
	secret string
}

func (f *fakeQSD) onStart(c vm.Cmd, p *vmtest.FakeProc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range c.Args {
		if strings.HasPrefix(a, "secret,id=chap0,file=") {
			b, err := os.ReadFile(strings.TrimPrefix(a, "secret,id=chap0,file="))
			if err != nil || string(b) != f.secret {
				f.t.Errorf("secret file holds %q (%v)", b, err)
			}
		}
		if strings.Contains(a, f.secret) {
			f.t.Errorf("argument %d holds the secret", i)
		}
		if p, ok := strings.CutPrefix(a, "addr.type=unix,addr.path="); ok {
			l, err := net.Listen("unix", p)
			if err != nil {
				f.t.Errorf("listen %s: %v", p, err)
				return
			}
			f.ls[len(f.ls)] = l
		}
	}
}

func (f *fakeQSD) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, l := range f.ls {
		l.Close()
		delete(f.ls, k)
	}
}

func TestNBDAttacher(t *testing.T) {
	host := vmtest.NewFakeHost()
	host.AddNetns("site")
	q := &fakeQSD{t: t, ls: map[int]net.Listener{}, secret: "abcdefghijkl0123"}
	host.OnStart = q.onStart
	t.Cleanup(q.close)
	dir, err := os.MkdirTemp("", "nbd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	newA := func() *lifecycle.NBDAttacher {
		a, err := lifecycle.NewNBDAttacher(lifecycle.NBDConfig{Dir: dir, Netns: "site", Runner: host})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := newA()
	ctx := context.Background()
	spec := lifecycle.AttachSpec{VC: "vc", Node: "n0", Portal: "127.0.0.1:3260", Target: "iqn.2026-11.org.musubi:vc:n0", LUN: 1,
		Initiator: "iqn.2026-11.org.musubi.node:s:vc:n0", User: "musubi:vc:n0", Secret: q.secret}
	at, err := a.Ensure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !at.Running || !strings.HasPrefix(at.URL, "nbd+unix:///disk?socket="+dir) {
		t.Fatalf("attachment %+v", at)
	}
	procs := host.Procs()
	if len(procs) != 1 || procs[0].Cmd.Netns != "site" || procs[0].Cmd.Name != "qemu-storage-daemon" {
		t.Fatalf("processes %+v", procs)
	}
	// The secret file is gone once the daemon serves.
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "chap.secret" {
			t.Errorf("secret file left: %s", p)
		}
		return nil
	})
	// Again, and from a restarted peer: nothing new starts.
	if _, err := newA().Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if n := len(host.Procs()); n != 1 {
		t.Fatalf("%d processes after a second Ensure", n)
	}
	l, err := newA().List(ctx)
	if err != nil || len(l) != 1 || l[0].Name != "vc/n0" || !l[0].Running || l[0].SpecHash != spec.Hash() {
		t.Fatalf("List = %+v, %v", l, err)
	}
	// A dead daemon is reported, then started again.
	host.Kill(at.PID)
	q.close()
	if l, _ := a.List(ctx); len(l) != 1 || l[0].Running || len(l[0].Problems) == 0 {
		t.Fatalf("List after a crash = %+v", l)
	}
	at2, err := a.Ensure(ctx, spec)
	if err != nil || at2.PID == at.PID || !at2.Running {
		t.Fatalf("Ensure after a crash: %+v, %v", at2, err)
	}
	// Remove stops it and leaves nothing.
	if err := a.Remove(ctx, "vc/n0"); err != nil {
		t.Fatal(err)
	}
	if host.Alive(vm.Proc{PID: at2.PID}) {
		t.Error("daemon still runs")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in %s: %v", dir, ents)
	}
	if err := a.Remove(ctx, "vc/n0"); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	// A malformed spec is refused.
	bad := spec
	bad.Secret = "short"
	if _, err := a.Ensure(ctx, bad); err == nil {
		t.Error("a malformed secret was accepted")
	}
}
