package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"golang.org/x/sys/unix"
)

// Store keeps a site's images, once each, in content-addressed
// directories <Dir>/<id>/ (id: 64 hex digits, the manifest's ID).
type Store struct {
	Dir string
}

// Image is a stored image.
type Image struct {
	ID       string
	Dir      string
	Kernel   string // absolute paths of the image's files
	Initrd   string
	RootDisk string
	Manifest *Manifest
}

var idPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidID reports whether id can name an image.
func ValidID(id string) bool { return idPattern.MatchString(id) }

func (s Store) image(id string, m *Manifest) Image {
	d := filepath.Join(s.Dir, id)
	return Image{ID: id, Dir: d, Kernel: filepath.Join(d, KernelFile), Initrd: filepath.Join(d, InitrdFile),
		RootDisk: filepath.Join(d, RootFile), Manifest: m}
}

// Build builds an image (see Build) in a staging directory of the store and
// adds it; building an image the store already has keeps the stored one.
func (s Store) Build(ctx context.Context, cfg Config) (Image, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	tmp, err := os.MkdirTemp(s.Dir, ".build-")
	if err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmp)
	if cfg.TempDir == "" {
		cfg.TempDir = tmp
	}
	out := filepath.Join(tmp, "out")
	if _, err := Build(ctx, cfg, out); err != nil {
		return Image{}, err
	}
	return s.Add(out)
}

// Add verifies a built image directory against its manifest and moves it
// into the store under its id. When the store already has that id, the
// directory is left alone and the stored image is returned.
func (s Store) Add(dir string) (Image, error) {
	m, err := Verify(dir)
	if err != nil {
		return Image{}, err
	}
	img := s.image(m.ID, m)
	if _, err := os.Stat(img.Dir); err == nil {
		return s.Get(m.ID)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return Image{}, fmt.Errorf("image: %w", err)
	}
	if err := os.Rename(dir, img.Dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return s.Get(m.ID) // a concurrent Add won
		}
		return Image{}, fmt.Errorf("image: %w (the build directory must be on the store's file system)", err)
	}
	// Stored images are read-only.
	for _, f := range []string{img.Kernel, img.Initrd, img.RootDisk, filepath.Join(img.Dir, ManifestFile)} {
		if err := os.Chmod(f, 0o444); err != nil {
			return Image{}, fmt.Errorf("image: %w", err)
		}
	}
	return img, nil
}

// Verify checks an image directory's files against its manifest.
func Verify(dir string) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if IDOf(m.Outputs) != m.ID {
		return nil, fmt.Errorf("%w: %s: manifest id does not match its outputs", ErrCorrupt, dir)
	}
	want := map[string]bool{KernelFile: true, InitrdFile: true, RootFile: true}
	for _, o := range m.Outputs {
		if !want[o.Name] {
			return nil, fmt.Errorf("%w: %s: unexpected output %q", ErrCorrupt, dir, o.Name)
		}
		delete(want, o.Name)
		sum, n, err := hashFile(filepath.Join(dir, o.Name))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if sum != o.SHA256 || n != o.Size {
			return nil, fmt.Errorf("%w: %s/%s: sha256 %s, manifest says %s", ErrCorrupt, dir, o.Name, sum, o.SHA256)
		}
	}
	if len(want) > 0 {
		return nil, fmt.Errorf("%w: %s: outputs missing from the manifest", ErrCorrupt, dir)
	}
	return m, nil
}

// Get returns a stored image (its manifest read, its files not hashed; use
// Verify for that).
func (s Store) Get(id string) (Image, error) {
	if !ValidID(id) {
		return Image{}, fmt.Errorf("%w: image id %q", ErrInvalid, id)
	}
	m, err := ReadManifest(filepath.Join(s.Dir, id))
	if err != nil {
		return Image{}, err
	}
	if m.ID != id {
		return Image{}, fmt.Errorf("%w: %s holds image %s", ErrCorrupt, id, m.ID)
	}
	return s.image(id, m), nil
}

// List returns the stored images sorted by id.
func (s Store) List() ([]Image, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	var out []Image
	for _, e := range ents {
		if !e.IsDir() || !ValidID(e.Name()) {
			continue
		}
		img, err := s.Get(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove deletes a stored image; a missing one is not an error.
func (s Store) Remove(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: image id %q", ErrInvalid, id)
	}
	if err := os.RemoveAll(filepath.Join(s.Dir, id)); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// Clone makes dst a private, writable copy of the image's root disk of at
// least size bytes (0: the image's size): a reflink where the file system
// supports it, else a sparse copy (runs of zeros become holes). dst must
// not exist.
func (s Store) Clone(ctx context.Context, id, dst string, size int64) error {
	img, err := s.Get(id)
	if err != nil {
		return err
	}
	return CloneFile(ctx, img.RootDisk, dst, size)
}

// CloneFile copies src to a new file dst as Clone does.
func CloneFile(ctx context.Context, src, dst string, size int64) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if size != 0 && size < st.Size() {
		return fmt.Errorf("%w: clone of %d bytes is smaller than the image (%d)", ErrInvalid, size, st.Size())
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("image: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		if err := sparseCopy(ctx, in, out); err != nil {
			return err
		}
	}
	if size > st.Size() {
		if err := out.Truncate(size); err != nil {
			return fmt.Errorf("image: %w", err)
		}
	} else if err := out.Truncate(st.Size()); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

func sparseCopy(ctx context.Context, in io.Reader, out *os.File) error {
	buf := make([]byte, 1<<20)
	zero := make([]byte, 64<<10)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(in, buf)
		for i := 0; i < n; i += len(zero) {
			chunk := buf[i:min(i+len(zero), n)]
			if !bytes.Equal(chunk, zero[:len(chunk)]) {
				if _, werr := out.WriteAt(chunk, off+int64(i)); werr != nil {
					return fmt.Errorf("image: %w", werr)
				}
			}
		}
		off += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
	}
}
