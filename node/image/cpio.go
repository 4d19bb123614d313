package image

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Kinds of archive entries.
const (
	KindFile    = "file"
	KindDir     = "dir"
	KindSymlink = "symlink"
	KindCharDev = "chardev"
)

// Entry is one file of an initramfs archive.
type Entry struct {
	// Name is the path inside the archive, relative ("bin/busybox").
	Name string
	Kind string
	// Perm holds the permission bits (0755...).
	Perm uint32
	// Data is a file's content; Target a symlink's target.
	Data   []byte
	Target string
	// Major and Minor number a device node.
	Major, Minor uint32
}

func (e Entry) mode() (uint32, error) {
	var t uint32
	switch e.Kind {
	case KindFile:
		t = 0o100000
	case KindDir:
		t = 0o040000
	case KindSymlink:
		t = 0o120000
	case KindCharDev:
		t = 0o020000
	default:
		return 0, fmt.Errorf("%w: cpio entry %s: kind %q", ErrInvalid, e.Name, e.Kind)
	}
	return t | e.Perm&0o7777, nil
}

// WriteCpio writes entries as a newc ("070701") archive: sorted by name,
// inode numbers in that order, owner root, every mtime epoch. The same
// entries always give the same bytes. Names must be clean relative paths;
// parent directories must be entries too.
func WriteCpio(w io.Writer, entries []Entry, epoch int64) error {
	es := append([]Entry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	names := map[string]bool{}
	for _, e := range es {
		if e.Name == "" || strings.HasPrefix(e.Name, "/") || path.Clean(e.Name) != e.Name || e.Name == "." || strings.HasPrefix(e.Name, "../") {
			return fmt.Errorf("%w: cpio entry name %q", ErrInvalid, e.Name)
		}
		if names[e.Name] {
			return fmt.Errorf("%w: cpio entry %q twice", ErrInvalid, e.Name)
		}
		names[e.Name] = true
	}
	for _, e := range es {
		if d := path.Dir(e.Name); d != "." && !names[d] {
			return fmt.Errorf("%w: cpio entry %q without its directory %q", ErrInvalid, e.Name, d)
		}
	}
	bw := bufio.NewWriter(w)
	for i, e := range es {
		mode, err := e.mode()
		if err != nil {
			return err
		}
		data := e.Data
		if e.Kind == KindSymlink {
			data = []byte(e.Target)
		} else if e.Kind != KindFile {
			data = nil
		}
		nlink := 1
		if e.Kind == KindDir {
			nlink = 2
		}
		var rmaj, rmin uint32
		if e.Kind == KindCharDev {
			rmaj, rmin = e.Major, e.Minor
		}
		if err := writeCpioHeader(bw, uint32(i+1), mode, uint32(nlink), uint32(epoch), uint32(len(data)), rmaj, rmin, e.Name); err != nil {
			return err
		}
		if _, err := bw.Write(data); err != nil {
			return err
		}
		if err := pad4(bw, len(data)); err != nil {
			return err
		}
	}
	if err := writeCpioHeader(bw, 0, 0, 1, 0, 0, 0, 0, "TRAILER!!!"); err != nil {
		return err
	}
	return bw.Flush()
}

func writeCpioHeader(w *bufio.Writer, ino, mode, nlink, mtime, size, rmaj, rmin uint32, name string) error {
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize (with the NUL), check.
	if _, err := fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, mtime, size, 0, 0, rmaj, rmin, len(name)+1, 0); err != nil {
		return err
	}
	if _, err := w.WriteString(name); err != nil {
		return err
	}
	if err := w.WriteByte(0); err != nil {
		return err
	}
	return pad4(w, 110+len(name)+1)
}

func pad4(w *bufio.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// ReadCpio parses a newc archive (what WriteCpio writes) back into
// entries, for tests and for inspecting images.
func ReadCpio(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	var out []Entry
	for {
		hdr := make([]byte, 110)
		if _, err := io.ReadFull(br, hdr); err != nil {
			return nil, fmt.Errorf("%w: cpio header: %v", ErrCorrupt, err)
		}
		if string(hdr[:6]) != "070701" {
			return nil, fmt.Errorf("%w: cpio magic %q", ErrCorrupt, hdr[:6])
		}
		field := func(i int) (uint32, error) {
			var v uint32
			_, err := fmt.Sscanf(string(hdr[6+8*i:14+8*i]), "%08X", &v)
			return v, err
		}
		var f [13]uint32
		for i := range f {
			v, err := field(i)
			if err != nil {
				return nil, fmt.Errorf("%w: cpio field %d: %v", ErrCorrupt, i, err)
			}
			f[i] = v
		}
		mode, size, rmaj, rmin, nameSize := f[1], f[6], f[9], f[10], f[11]
		if nameSize == 0 || nameSize > 4096 {
			return nil, fmt.Errorf("%w: cpio name size %d", ErrCorrupt, nameSize)
		}
		name := make([]byte, nameSize)
		if _, err := io.ReadFull(br, name); err != nil {
			return nil, fmt.Errorf("%w: cpio name: %v", ErrCorrupt, err)
		}
		if _, err := br.Discard(padLen(110 + int(nameSize))); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		n := strings.TrimRight(string(name), "\x00")
		if n == "TRAILER!!!" {
			return out, nil
		}
		if size > 1<<30 {
			return nil, fmt.Errorf("%w: cpio entry %s of %d bytes", ErrCorrupt, n, size)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(br, data); err != nil {
			return nil, fmt.Errorf("%w: cpio data of %s: %v", ErrCorrupt, n, err)
		}
		if _, err := br.Discard(padLen(int(size))); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		e := Entry{Name: n, Perm: mode & 0o7777}
		switch mode & 0o170000 {
		case 0o100000:
			e.Kind, e.Data = KindFile, data
		case 0o040000:
			e.Kind = KindDir
		case 0o120000:
			e.Kind, e.Target = KindSymlink, string(data)
		case 0o020000:
			e.Kind, e.Major, e.Minor = KindCharDev, rmaj, rmin
		default:
			return nil, fmt.Errorf("%w: cpio entry %s: mode %o", ErrCorrupt, n, mode)
		}
		out = append(out, e)
	}
}

func padLen(n int) int {
	if r := n % 4; r != 0 {
		return 4 - r
	}
	return 0
}
