package nodedir

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestRecordsAndNodes(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type rec struct{ A int }
	var r rec
	if found, err := d.Load("vc", "n", &r); found || err != nil {
		t.Fatalf("Load of nothing: %v %v", found, err)
	}
	for _, n := range [][2]string{{"vc2", "a"}, {"vc1", "b"}, {"vc1", "a"}} {
		if err := d.Save(n[0], n[1], rec{A: len(n[1])}); err != nil {
			t.Fatal(err)
		}
	}
	if found, err := d.Load("vc1", "b", &r); !found || err != nil || r.A != 1 {
		t.Fatalf("Load: %v %v %+v", found, err, r)
	}
	st, err := os.Stat(d.Path("vc1", "b", RecordFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("record mode %v %v", st, err)
	}
	nodes, err := d.Nodes()
	if err != nil || !reflect.DeepEqual(nodes, [][2]string{{"vc1", "a"}, {"vc1", "b"}, {"vc2", "a"}}) {
		t.Fatalf("Nodes %v %v", nodes, err)
	}
	for _, n := range nodes {
		if err := d.Remove(n[0], n[1]); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(d.Root); len(ents) != 0 {
		t.Fatalf("root not empty after removing every node: %v", ents)
	}
	if _, err := New("relative"); err == nil {
		t.Fatal("relative root accepted")
	}
}

func TestSocketPath(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	short := d.SocketPath("v", "n", "qmp.sock")
	if short != d.Path("v", "n", "qmp.sock") && len(d.Path("v", "n", "qmp.sock")) <= 100 {
		t.Fatalf("short path moved: %s", short)
	}
	long := d.SocketPath(strings.Repeat("v", 60), strings.Repeat("n", 60), "qmp.sock")
	if len(long) > 107 || filepath.Dir(long) != d.Root {
		t.Fatalf("long socket path %s", long)
	}
	if long == d.SocketPath(strings.Repeat("v", 60), strings.Repeat("n", 59), "qmp.sock") {
		t.Fatal("two nodes share a socket path")
	}
}

func TestLockSerialises(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inside := 0
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := d.Lock("vc", "n")
			mu.Lock()
			inside++
			if inside != 1 {
				t.Error("two holders of one node's lock")
			}
			mu.Unlock()
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if len(d.locks) != 0 {
		t.Fatalf("%d locks kept", len(d.locks))
	}
}

// The public directory (agents' sockets and spools) is not a VC: Nodes
// never reports what is in it, even directories.
func TestNodesSkipsPublic(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.EnsurePublic(); err != nil {
		t.Fatal(err)
	}
	if err := d.Create("vc1", "n0"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.PublicPath("vc1", "n0", "spool"), 0o755); err != nil {
		t.Fatal(err)
	}
	nodes, err := d.Nodes()
	if err != nil || len(nodes) != 1 || nodes[0] != [2]string{"vc1", "n0"} {
		t.Fatalf("Nodes() = %v, %v; want only vc1/n0", nodes, err)
	}
}
