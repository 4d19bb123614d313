package image

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sampleEntries() []Entry {
	return []Entry{
		{Name: "init", Kind: KindFile, Perm: 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Name: "bin", Kind: KindDir, Perm: 0o755},
		{Name: "bin/sh", Kind: KindSymlink, Perm: 0o777, Target: "busybox"},
		{Name: "bin/busybox", Kind: KindFile, Perm: 0o755, Data: bytes.Repeat([]byte{1, 2, 3}, 1001)},
		{Name: "dev", Kind: KindDir, Perm: 0o755},
		{Name: "dev/console", Kind: KindCharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Name: "empty", Kind: KindFile, Perm: 0o644},
	}
}

func TestCpioRoundTripAndOrder(t *testing.T) {
	var a, b bytes.Buffer
	es := sampleEntries()
	if err := WriteCpio(&a, es, 1704067200); err != nil {
		t.Fatal(err)
	}
	// Another input order gives the same bytes.
	rev := append([]Entry(nil), es...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if err := WriteCpio(&b, rev, 1704067200); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("entry order changed the archive")
	}
	if a.Len()%4 != 0 {
		t.Fatalf("archive length %d not a multiple of 4", a.Len())
	}
	got, err := ReadCpio(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, e.Name)
	}
	if want := []string{"bin", "bin/busybox", "bin/sh", "dev", "dev/console", "empty", "init"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	byName := map[string]Entry{}
	for _, e := range got {
		if e.Kind == KindFile && e.Data == nil {
			e.Data = []byte{}
		}
		byName[e.Name] = e
	}
	for _, e := range es {
		g := byName[e.Name]
		if e.Kind == KindFile && e.Data == nil {
			e.Data = []byte{}
		}
		if g.Kind != e.Kind || g.Perm != e.Perm || !bytes.Equal(g.Data, e.Data) || g.Target != e.Target || g.Major != e.Major || g.Minor != e.Minor {
			t.Errorf("%s: got %+v, want %+v", e.Name, g, e)
		}
	}
	// GNU cpio, when installed, reads it too.
	if _, err := exec.LookPath("cpio"); err == nil {
		dir := t.TempDir()
		f := filepath.Join(dir, "a.cpio")
		if err := os.WriteFile(f, a.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("cpio", "-itv", "-F", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "bin/sh -> busybox") {
			t.Fatalf("cpio -it: %v\n%s", err, out)
		}
	}
}

func TestCpioRejects(t *testing.T) {
	for name, es := range map[string][]Entry{
		"absolute":   {{Name: "/init", Kind: KindFile}},
		"dot-dot":    {{Name: "../x", Kind: KindFile}},
		"unclean":    {{Name: "a//b", Kind: KindFile}},
		"twice":      {{Name: "x", Kind: KindFile}, {Name: "x", Kind: KindFile}},
		"no parent":  {{Name: "a/b", Kind: KindFile}},
		"bad kind":   {{Name: "x", Kind: "fifo"}},
		"empty name": {{Name: "", Kind: KindFile}},
	} {
		if err := WriteCpio(&bytes.Buffer{}, es, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := ReadCpio(strings.NewReader("garbage")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadCpio of garbage: %v", err)
	}
}

func FuzzReadCpio(f *testing.F) {
	var b bytes.Buffer
	if err := WriteCpio(&b, sampleEntries(), 1); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadCpio(bytes.NewReader(data))
	})
}
