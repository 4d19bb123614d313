package nodesync

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestReplaceBlock(t *testing.T) {
	block := []byte(BlockBegin + "\n10.0.0.1\tn1\n" + BlockEnd + "\n")
	for _, tc := range []struct{ name, in, want string }{
		{"empty file", "", string(block)},
		{"appended after foreign lines", "127.0.0.1\tlocalhost\n", "127.0.0.1\tlocalhost\n" + string(block)},
		{"no final newline", "127.0.0.1\tlocalhost", "127.0.0.1\tlocalhost\n" + string(block)},
		{"replaced in place, foreign lines around kept byte for byte",
			"127.0.0.1 localhost\n# mine\n" + BlockBegin + "\nold\nlines\n" + BlockEnd + "\n::1  ip6-localhost  \n",
			"127.0.0.1 localhost\n# mine\n" + string(block) + "::1  ip6-localhost  \n"},
		{"extra blocks removed", BlockBegin + "\na\n" + BlockEnd + "\nx\n" + BlockBegin + "\nb\n" + BlockEnd + "\n",
			string(block) + "x\n"},
		{"begin without end runs to the end", "x\n" + BlockBegin + "\nhalf\n", "x\n" + string(block)},
		{"delimiters with trailing blanks", "x\n" + BlockBegin + " \nold\n" + BlockEnd + "\r\ny\n", "x\n" + string(block) + "y\n"},
	} {
		got := ReplaceBlock([]byte(tc.in), block)
		if string(got) != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
		if again := ReplaceBlock(got, block); !bytes.Equal(again, got) {
			t.Errorf("%s: not idempotent:\n%q\n%q", tc.name, got, again)
		}
	}
	if got := ReplaceBlock([]byte("a\n"+string(block)+"b\n"), nil); string(got) != "a\nb\n" {
		t.Errorf("removing the block: %q", got)
	}
	if got := ReplaceBlock([]byte("a\n"), nil); string(got) != "a\n" {
		t.Errorf("removing an absent block: %q", got)
	}
}

func TestRenderHosts(t *testing.T) {
	got := string(RenderHosts([]HostEntry{
		{IP: netip.MustParseAddr("10.0.0.1"), Names: []string{"n1"}},
		{IP: netip.MustParseAddr("fd00::2"), Names: []string{"h2", "h2.site"}},
	}))
	want := BlockBegin + "\n" + blockNote + "\n10.0.0.1\tn1\nfd00::2\th2\th2.site\n" + BlockEnd + "\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestWriteManagedAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hosts")
	foreign := "127.0.0.1\tlocalhost\n# the administrator's\n"
	if err := os.WriteFile(p, []byte(foreign), 0o640); err != nil {
		t.Fatal(err)
	}
	b1 := RenderHosts([]HostEntry{{IP: netip.MustParseAddr("10.0.0.1"), Names: []string{"n1"}}})
	b2 := RenderHosts([]HostEntry{{IP: netip.MustParseAddr("10.0.0.2"), Names: []string{"n2"}}})
	ino := inode(t, p)
	changed, err := WriteManaged(p, b1)
	if err != nil || !changed {
		t.Fatalf("WriteManaged = %v, %v", changed, err)
	}
	if inode(t, p) == ino {
		t.Error("the file was not replaced by a rename")
	}
	data, _ := os.ReadFile(p)
	if string(data) != foreign+string(b1) {
		t.Errorf("content %q", data)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the original 0640 kept", fi.Mode().Perm())
	}
	ino = inode(t, p)
	if changed, err := WriteManaged(p, b1); err != nil || changed || inode(t, p) != ino {
		t.Errorf("rewriting the same block: changed %v, %v, replaced %v", changed, err, inode(t, p) != ino)
	}

	// A reader never sees a partial file while blocks alternate.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	bad := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(p)
			if err != nil || (string(data) != foreign+string(b1) && string(data) != foreign+string(b2)) {
				select {
				case bad <- string(data):
				default:
				}
				return
			}
		}
	}()
	for i := range 200 {
		b := b1
		if i%2 == 0 {
			b = b2
		}
		if _, err := WriteManaged(p, b); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case s := <-bad:
		t.Errorf("a reader saw %q", s)
	default:
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in the directory: %v", entries)
	}
}

func TestWriteManagedBindMountFallback(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EBUSY, syscall.EXDEV} {
		dir := t.TempDir()
		p := filepath.Join(dir, "hosts")
		long := "127.0.0.1\tlocalhost\n" + BlockBegin + "\n" + strings.Repeat("10.9.9.9\tlong-old-entry\n", 20) + BlockEnd + "\n::1\tip6-localhost\n"
		if err := os.WriteFile(p, []byte(long), 0o644); err != nil {
			t.Fatal(err)
		}
		ino := inode(t, p)
		w := fileWriter{rename: func(string, string) error { return &os.LinkError{Op: "rename", Err: errno} }}
		block := RenderHosts([]HostEntry{{IP: netip.MustParseAddr("10.0.0.1"), Names: []string{"n1"}}})
		changed, err := w.writeManaged(p, block)
		if err != nil || !changed {
			t.Fatalf("%v: writeManaged = %v, %v", errno, changed, err)
		}
		data, _ := os.ReadFile(p)
		if want := "127.0.0.1\tlocalhost\n" + string(block) + "::1\tip6-localhost\n"; string(data) != want {
			t.Errorf("%v: in-place content %q\nwant %q", errno, data, want)
		}
		if inode(t, p) != ino {
			t.Errorf("%v: the file was replaced, want rewritten in place (a bind mount cannot be replaced)", errno)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%v: temporary file left: %v", errno, entries)
		}
	}
	// Any other rename failure is an error, not a silent in-place write.
	p := filepath.Join(t.TempDir(), "hosts")
	w := fileWriter{rename: func(string, string) error { return &os.LinkError{Op: "rename", Err: syscall.EACCES} }}
	if _, err := w.writeManaged(p, []byte(BlockBegin+"\n"+BlockEnd+"\n")); err == nil {
		t.Error("EACCES on rename: want an error")
	}
}
