package nodesync

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The managed block's delimiters, in /etc/hosts and authorized_keys.
const (
	BlockBegin = "# BEGIN musubi"
	BlockEnd   = "# END musubi"
)

// blockNote is the block's first line after BlockBegin.
const blockNote = "# Managed by the musubi agent from ZooKeeper: changes inside this block are overwritten."

// RenderHosts renders the managed block of /etc/hosts (delimiters
// included) for entries, in their order.
func RenderHosts(entries []HostEntry) []byte {
	var b bytes.Buffer
	b.WriteString(BlockBegin + "\n" + blockNote + "\n")
	for _, e := range entries {
		b.WriteString(e.IP.String())
		for _, n := range e.Names {
			b.WriteString("\t" + n)
		}
		b.WriteByte('\n')
	}
	b.WriteString(BlockEnd + "\n")
	return b.Bytes()
}

// renderKeys renders the managed block of an authorized_keys file.
func renderKeys(keys []string) []byte {
	if len(keys) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(BlockBegin + "\n" + blockNote + "\n")
	for _, k := range keys {
		b.WriteString(k + "\n")
	}
	b.WriteString(BlockEnd + "\n")
	return b.Bytes()
}

// ReplaceBlock returns content with its managed block replaced by block
// (which must include the delimiters; nil removes the block). The block
// is kept where it was; a file without one gets it appended. Every other
// line is kept byte for byte. Extra blocks (which musubi never writes) are
// removed; a BlockBegin without BlockEnd (a file cut short while being
// rewritten in place) extends to the end of the file.
func ReplaceBlock(content, block []byte) []byte {
	var out bytes.Buffer
	rest := content
	placed := false
	for len(rest) > 0 {
		line, tail, found := bytes.Cut(rest, []byte("\n"))
		if strings.TrimRight(string(line), " \t\r") != BlockBegin {
			out.Write(line)
			if found {
				out.WriteByte('\n')
			}
			rest = tail
			continue
		}
		// Skip the old block, through its end line.
		rest = tail
		for len(rest) > 0 {
			line, tail, _ = bytes.Cut(rest, []byte("\n"))
			rest = tail
			if strings.TrimRight(string(line), " \t\r") == BlockEnd {
				break
			}
		}
		if !placed {
			out.Write(block)
			placed = true
		}
	}
	if !placed && len(block) > 0 {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
		out.Write(block)
	}
	return out.Bytes()
}

// fileWriter replaces files atomically, falling back to an in-place
// rewrite where rename is refused. Its rename is a seam for tests.
type fileWriter struct {
	rename func(oldpath, newpath string) error
}

var defaultWriter = fileWriter{rename: os.Rename}

// errFallback reports whether a rename failure means "the target cannot be
// replaced, write it in place": a bind-mounted file (EBUSY) or a temporary
// file on another file system (EXDEV).
func errFallback(err error) bool {
	return errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV)
}

// WriteManaged replaces the managed block of the file at path with block
// (see ReplaceBlock) and reports whether the file changed. A missing file
// is created (mode 0644). Nothing is written when the content is already
// right.
func WriteManaged(path string, block []byte) (bool, error) {
	return defaultWriter.writeManaged(path, block)
}

func (w fileWriter) writeManaged(path string, block []byte) (bool, error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("nodesync: read %s: %w", path, err)
	}
	content := ReplaceBlock(old, block)
	if err == nil && bytes.Equal(content, old) {
		return false, nil
	}
	return true, w.replace(path, content, 0o644)
}

// replace writes content to path atomically: a temporary file in the same
// directory with the mode and owner of the file it replaces (newMode and
// the caller's identity for a new file), synced, then renamed over it.
// When the rename is refused (bind mount), the file is rewritten in place
// under an exclusive lock instead: written from the start, then cut to
// length, so that it never shrinks before the new content is there.
func (w fileWriter) replace(path string, content []byte, newMode fs.FileMode) error {
	mode, uid, gid := newMode, -1, -1
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, "."+base+".musubi-*")
	if err != nil {
		return fmt.Errorf("nodesync: write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a successful rename there is nothing left to remove
	err = errors.Join(writeAll(tmp, content), tmp.Chmod(mode))
	if uid >= 0 && err == nil {
		err = ignorePerm(tmp.Chown(uid, gid))
	}
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err != nil {
		return fmt.Errorf("nodesync: write %s: %w", path, err)
	}
	// The directory is not synced: after a crash the old file may be
	// back, complete, and the agent renders everything again at start.
	err = w.rename(tmpName, path)
	if err == nil {
		return nil
	}
	if !errFallback(err) {
		return fmt.Errorf("nodesync: replace %s: %w", path, err)
	}
	return writeInPlace(path, content)
}

func writeAll(f *os.File, b []byte) error {
	_, err := f.Write(b)
	return err
}

// writeInPlace rewrites path's content under an exclusive flock.
func writeInPlace(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("nodesync: rewrite %s in place: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("nodesync: lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // released by Close anyway
	if _, err := f.WriteAt(content, 0); err != nil {
		return fmt.Errorf("nodesync: rewrite %s in place: %w", path, err)
	}
	if err := f.Truncate(int64(len(content))); err != nil {
		return fmt.Errorf("nodesync: rewrite %s in place: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("nodesync: rewrite %s in place: %w", path, err)
	}
	return nil
}

// ignorePerm drops EPERM from chown when not running as root (tests): the
// file then stays owned by the caller.
func ignorePerm(err error) error {
	if err != nil && errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		return nil
	}
	return err
}
