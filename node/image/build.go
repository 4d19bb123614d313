package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Defaults of a build.
const (
	DefaultKernelPackage = "linux-image-cloud-amd64"
	DefaultBusybox       = "/bin/busybox"
	// DefaultEpoch is the timestamp of every file when SOURCE_DATE_EPOCH
	// is not given (2024-01-01T00:00:00Z).
	DefaultEpoch = 1704067200
	// MinRootSize is the smallest root file system (and the default when
	// the content is small).
	MinRootSize = 256 << 20
	// Format names the manifest's format.
	Format = "musubi-image/1"
)

// Output file names in an image directory.
const (
	KernelFile   = "vmlinuz"
	InitrdFile   = "initrd.img"
	RootFile     = "root.img"
	ManifestFile = "manifest.json"
)

// DefaultModules are the kernel modules a QEMU guest of the Debian cloud
// kernel needs before its root disk appears: virtio PCI transport, block
// and net drivers, and the ACPI power button (with evdev, so acpid sees
// QMP's system_powerdown). Dependencies are added from modules.dep.
var DefaultModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "button", "evdev", "qemu_fw_cfg"}

// Config describes a build.
type Config struct {
	// KernelPackage is the installed Debian kernel package (default
	// linux-image-cloud-amd64); a metapackage is resolved to the package
	// it depends on that ships /boot/vmlinuz-*.
	KernelPackage string
	// Modules to load in the initramfs (default DefaultModules).
	Modules []string
	// Busybox is a statically linked busybox (default /bin/busybox from
	// busybox-static).
	Busybox string
	// Agent is the statically linked musubi binary (CGO_ENABLED=0);
	// required.
	Agent string
	// SGE is the lean Grid Engine command binary (a CGO_ENABLED=0 build of
	// ./cmd/musubi-sge), installed as SGEPath; qsub, qstat, ... in
	// /usr/bin are symlinks to it, or to the agent binary when SGE is
	// empty.
	SGE string
	// Payload lists application programs (absolute paths) copied into the
	// root file system with the shared libraries they load.
	Payload []string
	// Epoch is every timestamp (SOURCE_DATE_EPOCH; 0: DefaultEpoch).
	Epoch int64
	// RootSize is the root file system's size in bytes (0: the content
	// plus room, at least MinRootSize).
	RootSize int64
	// Runner runs the host tools (default ExecRunner).
	Runner Runner
	// TempDir holds the staging directory (default os.TempDir()).
	TempDir string
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// Kernel identifies the image's kernel.
type Kernel struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Release string `json:"release"`
}

// Input is one host file that went into the image.
type Input struct {
	// Path is the file on the building host; Dest where it went
	// ("initrd.img:bin/busybox", "root.img:/usr/bin/vina", "vmlinuz").
	Path    string `json:"path"`
	Dest    string `json:"dest"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
	Package string `json:"package,omitempty"`
}

// Output is one file of the image.
type Output struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Manifest records what an image was built from and what it is.
type Manifest struct {
	Format          string    `json:"format"`
	ID              string    `json:"id"`
	SourceDateEpoch int64     `json:"source_date_epoch"`
	Kernel          Kernel    `json:"kernel"`
	Modules         []string  `json:"modules"`
	Payload         []string  `json:"payload"`
	Packages        []Package `json:"packages"`
	Inputs          []Input   `json:"inputs"`
	Outputs         []Output  `json:"outputs"`
	RootSize        int64     `json:"root_size"`
}

// IDOf is the image id of a set of outputs: the sha256 of their
// "name sha256" lines in name order.
func IDOf(outs []Output) string {
	o := slices.Clone(outs)
	sort.Slice(o, func(i, j int) bool { return o[i].Name < o[j].Name })
	h := sha256.New()
	for _, x := range o {
		fmt.Fprintf(h, "%s %s\n", x.Name, x.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

var safePath = regexp.MustCompile(`^(/[A-Za-z0-9._+@-]+)+$`)

func (c *Config) setDefaults() {
	if c.KernelPackage == "" {
		c.KernelPackage = DefaultKernelPackage
	}
	if c.Modules == nil {
		c.Modules = DefaultModules
	}
	if c.Busybox == "" {
		c.Busybox = DefaultBusybox
	}
	if c.Epoch == 0 {
		c.Epoch = DefaultEpoch
	}
	if c.Runner == nil {
		c.Runner = ExecRunner{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if c.Agent == "" {
		return fmt.Errorf("%w: no agent binary (a CGO_ENABLED=0 build of ./cmd/musubi)", ErrInvalid)
	}
	for _, p := range append([]string{c.Agent, c.Busybox}, c.Payload...) {
		if !safePath.MatchString(p) || path.Clean(p) != p {
			return fmt.Errorf("%w: path %q (absolute, clean, letters, digits and ._+@- only)", ErrInvalid, p)
		}
	}
	if c.SGE != "" && (!safePath.MatchString(c.SGE) || path.Clean(c.SGE) != c.SGE) {
		return fmt.Errorf("%w: path %q (absolute, clean, letters, digits and ._+@- only)", ErrInvalid, c.SGE)
	}
	if c.Epoch < 0 || c.Epoch > 1<<32-1 {
		return fmt.Errorf("%w: epoch %d", ErrInvalid, c.Epoch)
	}
	if c.RootSize != 0 && c.RootSize < 16<<20 {
		return fmt.Errorf("%w: root size %d below 16 MiB", ErrInvalid, c.RootSize)
	}
	return nil
}

// StaticELF checks that file is a statically linked ELF executable (no
// interpreter, no needed libraries).
func StaticELF(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("%w: %s is not an ELF executable: %v", ErrInvalid, file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is dynamically linked (build it with CGO_ENABLED=0)", ErrInvalid, file)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return fmt.Errorf("%w: %s needs shared libraries %v", ErrInvalid, file, libs)
	}
	return nil
}

// builder holds one build's state.
type builder struct {
	cfg    Config
	log    *slog.Logger
	inputs []Input
	stage  string // root file system staging directory
	files  []string
}

// Build makes an image in outDir (created; it must not exist or be
// empty) and returns its manifest, also written there.
func Build(ctx context.Context, cfg Config, outDir string) (*Manifest, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	b := &builder{cfg: cfg, log: cfg.Logger}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if ents, err := os.ReadDir(outDir); err != nil || len(ents) > 0 {
		return nil, fmt.Errorf("%w: output directory %s is not empty", ErrInvalid, outDir)
	}
	static := []string{cfg.Agent, cfg.Busybox}
	if cfg.SGE != "" {
		static = append(static, cfg.SGE)
	}
	for _, f := range static {
		if err := StaticELF(f); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s", ErrMissing, f)
			}
			return nil, err
		}
	}
	kpkg, release, err := kernelOf(ctx, cfg.Runner, cfg.KernelPackage)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Format: Format, SourceDateEpoch: cfg.Epoch, Kernel: Kernel{Package: kpkg.Name, Version: kpkg.Version, Release: release},
		Payload: slices.Clone(cfg.Payload)}
	if m.Payload == nil {
		m.Payload = []string{}
	}
	// Kernel.
	if err := b.copyOut("/boot/vmlinuz-"+release, filepath.Join(outDir, KernelFile), KernelFile); err != nil {
		return nil, err
	}
	// Initramfs.
	mods, err := b.initramfs(ctx, release, filepath.Join(outDir, InitrdFile))
	if err != nil {
		return nil, err
	}
	m.Modules = mods
	// Root file system.
	stage, err := os.MkdirTemp(cfg.TempDir, "musubi-image-*")
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(stage)
	b.stage = filepath.Join(stage, "root")
	if err := os.Mkdir(b.stage, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	size, err := b.rootfs(ctx)
	if err != nil {
		return nil, err
	}
	rootSize := cfg.RootSize
	if rootSize == 0 {
		rootSize = max(MinRootSize, (2*size+(64<<20)+(4<<20)-1)/(4<<20)*(4<<20))
	}
	m.RootSize = rootSize
	digest, err := treeDigest(b.stage)
	if err != nil {
		return nil, err
	}
	if err := makeExt4(ctx, cfg.Runner, b.stage, filepath.Join(outDir, RootFile), rootSize, cfg.Epoch, digest); err != nil {
		return nil, err
	}
	// Manifest.
	paths := make([]string, 0, len(b.inputs))
	for _, in := range b.inputs {
		paths = append(paths, in.Path)
	}
	own, err := owners(ctx, cfg.Runner, paths)
	if err != nil {
		return nil, err
	}
	pkgSet := map[string]bool{}
	for i := range b.inputs {
		b.inputs[i].Package = own[b.inputs[i].Path]
		if p := b.inputs[i].Package; p != "" {
			pkgSet[p] = true
		}
	}
	pkgNames := make([]string, 0, len(pkgSet))
	for p := range pkgSet {
		pkgNames = append(pkgNames, p)
	}
	sort.Strings(pkgNames)
	if m.Packages, err = versions(ctx, cfg.Runner, pkgNames); err != nil {
		return nil, err
	}
	sort.Slice(b.inputs, func(i, j int) bool { return b.inputs[i].Dest < b.inputs[j].Dest })
	m.Inputs = b.inputs
	for _, name := range []string{InitrdFile, RootFile, KernelFile} {
		sum, n, err := hashFile(filepath.Join(outDir, name))
		if err != nil {
			return nil, err
		}
		m.Outputs = append(m.Outputs, Output{Name: name, SHA256: sum, Size: n})
	}
	m.ID = IDOf(m.Outputs)
	if err := writeManifest(filepath.Join(outDir, ManifestFile), m); err != nil {
		return nil, err
	}
	b.log.Info("image built", "id", m.ID, "kernel", release, "modules", len(mods), "payload", len(cfg.Payload),
		"root_size", rootSize, "took", time.Since(t0).Round(time.Millisecond))
	return m, nil
}

func writeManifest(file string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := os.WriteFile(file, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// ReadManifest reads an image directory's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, dir)
		}
		return nil, fmt.Errorf("image: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest of %s: %v", ErrCorrupt, dir, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: manifest of %s: format %q", ErrCorrupt, dir, m.Format)
	}
	return &m, nil
}

func hashFile(file string) (string, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("image: %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// readInput reads a host file and records it as an input.
func (b *builder) readInput(src, dest string) ([]byte, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrMissing, src)
		}
		return nil, fmt.Errorf("image: %w", err)
	}
	sum := sha256.Sum256(data)
	b.inputs = append(b.inputs, Input{Path: src, Dest: dest, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))})
	return data, nil
}

func (b *builder) copyOut(src, dst, dest string) error {
	data, err := b.readInput(src, dest)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// initramfs writes the gzip'd cpio and returns the module load order.
func (b *builder) initramfs(ctx context.Context, release, dst string) ([]string, error) {
	modDir := filepath.Join("/lib/modules", release)
	mods, err := modulesInOrder(modDir, b.cfg.Modules)
	if err != nil {
		return nil, err
	}
	entries := []Entry{
		{Name: "bin", Kind: KindDir, Perm: 0o755},
		{Name: "dev", Kind: KindDir, Perm: 0o755},
		{Name: "dev/console", Kind: KindCharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Name: "dev/null", Kind: KindCharDev, Perm: 0o666, Major: 1, Minor: 3},
		{Name: "lib", Kind: KindDir, Perm: 0o755},
		{Name: "lib/modules", Kind: KindDir, Perm: 0o755},
		{Name: "newroot", Kind: KindDir, Perm: 0o755},
		{Name: "proc", Kind: KindDir, Perm: 0o755},
		{Name: "sys", Kind: KindDir, Perm: 0o755},
		{Name: "init", Kind: KindFile, Perm: 0o755, Data: []byte(stage1)},
	}
	bb, err := b.readInput(b.cfg.Busybox, "initrd.img:bin/busybox")
	if err != nil {
		return nil, err
	}
	entries = append(entries, Entry{Name: "bin/busybox", Kind: KindFile, Perm: 0o755, Data: bb})
	var order []string
	for _, m := range mods {
		name := moduleName(m)
		data, err := b.readInput(filepath.Join(modDir, m), "initrd.img:lib/modules/"+name+".ko")
		if err != nil {
			return nil, err
		}
		entries = append(entries, Entry{Name: "lib/modules/" + name + ".ko", Kind: KindFile, Perm: 0o644, Data: data})
		order = append(order, name)
	}
	entries = append(entries, Entry{Name: "lib/modules/load.order", Kind: KindFile, Perm: 0o644, Data: []byte(strings.Join(order, "\n") + "\n")})
	var raw bytes.Buffer
	if err := WriteCpio(&raw, entries, b.cfg.Epoch); err != nil {
		return nil, err
	}
	f, err := os.Create(dst)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	// No name and no time in the gzip header: the bytes depend only on
	// the archive.
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return order, nil
}

// stageFile writes a file into the root file system staging directory
// (rel is absolute inside the image), creating its directories.
func (b *builder) stageFile(rel string, data []byte, perm os.FileMode) error {
	p := filepath.Join(b.stage, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	_ = os.Remove(p) // a busybox applet link the payload replaces
	if err := os.WriteFile(p, data, perm); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := os.Chmod(p, perm); err != nil { // umask
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

func (b *builder) stageInput(src, rel string, perm os.FileMode) error {
	data, err := b.readInput(src, "root.img:"+rel)
	if err != nil {
		return err
	}
	return b.stageFile(rel, data, perm)
}

// rootfs fills the staging directory and returns the content's size.
func (b *builder) rootfs(ctx context.Context) (int64, error) {
	dirs := map[string]os.FileMode{
		"/bin": 0o755, "/sbin": 0o755, "/usr/bin": 0o755, "/usr/sbin": 0o755, "/lib": 0o755, "/etc": 0o755,
		"/dev": 0o755, "/proc": 0o555, "/sys": 0o555, "/run": 0o755, "/tmp": 0o1777, "/root": 0o700, "/home": 0o755,
		"/var/lib/musubi": 0o755, "/var/log": 0o755, "/var/spool/musubi": 0o755, "/var/tmp": 0o1777,
	}
	for d, perm := range dirs {
		p := filepath.Join(b.stage, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return 0, fmt.Errorf("image: %w", err)
		}
		if err := os.Chmod(p, perm); err != nil {
			return 0, fmt.Errorf("image: %w", err)
		}
	}
	if err := b.stageInput(b.cfg.Busybox, "/bin/busybox", 0o755); err != nil {
		return 0, err
	}
	// Every applet at its usual place, as a relative link to busybox.
	list, err := b.cfg.Runner.Run(ctx, nil, b.cfg.Busybox, "--list-full")
	if err != nil {
		return 0, err
	}
	for _, a := range strings.Fields(string(list)) {
		if a == "bin/busybox" || strings.Contains(a, "..") || !safePath.MatchString("/"+a) && !strings.ContainsAny(a, "[") {
			continue
		}
		p := filepath.Join(b.stage, a)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, fmt.Errorf("image: %w", err)
		}
		target, err := filepath.Rel(filepath.Dir("/"+a), "/bin/busybox")
		if err != nil {
			return 0, fmt.Errorf("image: %w", err)
		}
		if err := os.Symlink(target, p); err != nil && !errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("image: %w", err)
		}
	}
	if err := b.stageInput(b.cfg.Agent, AgentPath, 0o755); err != nil {
		return 0, err
	}
	sgeTarget := path.Base(AgentPath)
	if b.cfg.SGE != "" {
		if err := b.stageInput(b.cfg.SGE, SGEPath, 0o755); err != nil {
			return 0, err
		}
		sgeTarget = path.Base(SGEPath)
	}
	for _, name := range sge.Commands {
		if err := os.Symlink(sgeTarget, filepath.Join(b.stage, path.Dir(SGEPath), name)); err != nil {
			return 0, fmt.Errorf("image: %w", err)
		}
	}
	for name, text := range map[string]string{"/sbin/musubi-setup": setup, "/sbin/musubi-agent": agentRun} {
		if err := b.stageFile(name, []byte(text), 0o755); err != nil {
			return 0, err
		}
	}
	for name, text := range etcFiles {
		perm := os.FileMode(0o644)
		switch {
		case strings.HasPrefix(name, "etc/acpi/"):
			perm = 0o755
		case name == "etc/shadow":
			perm = 0o600
		}
		if err := b.stageFile("/"+name, []byte(text), perm); err != nil {
			return 0, err
		}
	}
	// Payload programs and their libraries, at the paths they have here.
	seen := map[string]bool{}
	for _, prog := range b.cfg.Payload {
		libs, err := sharedLibs(ctx, b.cfg.Runner, prog)
		if err != nil {
			return 0, err
		}
		for _, f := range append([]string{prog}, libs...) {
			if seen[f] {
				continue
			}
			seen[f] = true
			if !safePath.MatchString(f) {
				return 0, fmt.Errorf("%w: payload file %q has an unusual name", ErrInvalid, f)
			}
			st, err := os.Stat(f)
			if err != nil {
				return 0, fmt.Errorf("%w: payload %s: %v", ErrMissing, f, err)
			}
			perm := os.FileMode(0o644)
			if st.Mode()&0o111 != 0 {
				perm = 0o755
			}
			if err := b.stageInput(f, f, perm); err != nil {
				return 0, err
			}
		}
	}
	return b.settle()
}

// settle gives every staged entry the build's timestamps and returns the
// total size of the regular files.
func (b *builder) settle() (int64, error) {
	var total int64
	var paths []string
	err := filepath.WalkDir(b.stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("image: %w", err)
	}
	ts := []unix.Timespec{{Sec: b.cfg.Epoch}, {Sec: b.cfg.Epoch}}
	// Children first, so setting a file's time does not touch its
	// directory's afterwards.
	for i := len(paths) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return 0, fmt.Errorf("image: times of %s: %w", paths[i], err)
		}
	}
	b.files = paths
	return total, nil
}

// treeDigest hashes the staged tree (names, kinds, permissions, contents,
// link targets): the seed of the file system's UUID.
func treeDigest(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", rel, info.Mode())
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\n", t)
		case d.Type().IsRegular():
			sum, _, err := hashFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\n", sum)
		default:
			fmt.Fprintln(h)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// uuidFrom makes an RFC 4122 version-4-shaped UUID from a hex digest.
func uuidFrom(digest string) string {
	b, _ := hex.DecodeString(digest[:32])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// makeExt4 creates the root file system image from the staging directory
// with mke2fs -d, then rewrites the inode change times (which mke2fs copies
// from the staging files) and owners with debugfs, and checks the result
// with e2fsck.
func makeExt4(ctx context.Context, r Runner, stage, out string, size, epoch int64, digest string) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("image: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	uuid := uuidFrom(digest)
	e := strconv.FormatInt(epoch, 10)
	env := []string{"E2FSPROGS_FAKE_TIME=" + e, "SOURCE_DATE_EPOCH=" + e}
	if _, err := r.Run(ctx, env, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-m", "0",
		"-O", "has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize",
		"-L", "musubi-root", "-U", uuid, "-E", "root_owner=0:0,hash_seed="+uuid+",nodiscard,lazy_itable_init=0,lazy_journal_init=0",
		"-d", stage, out); err != nil {
		return fmt.Errorf("%w: mke2fs (apt-get install e2fsprogs): %v", ErrCommand, err)
	}
	// Reading the staging files (to hash them, and mke2fs itself) moves
	// their access times, and their change times cannot be set at all:
	// every inode gets the epoch here.
	times := []string{"atime @" + e, "mtime @" + e, "ctime @" + e}
	var script strings.Builder
	err = filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		img := "/" + rel
		if rel == "." {
			img = "/"
		}
		for _, field := range times {
			fmt.Fprintf(&script, "sif \"%s\" %s\n", img, field)
		}
		for _, field := range []string{"uid 0", "gid 0"} {
			fmt.Fprintf(&script, "sif \"%s\" %s\n", img, field)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	for _, field := range times {
		fmt.Fprintf(&script, "sif /lost+found %s\n", field)
	}
	sf := filepath.Join(filepath.Dir(stage), "debugfs.script")
	if err := os.WriteFile(sf, []byte(script.String()), 0o600); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	// debugfs reports a failed request on standard error and goes on, so
	// its standard error is read too: any line but its banner and the
	// echoed requests is a failure.
	out2, err := r.Run(ctx, env, "sh", "-c", `exec debugfs -w -f "$1" "$2" 2>&1`, "sh", sf, out)
	if err != nil {
		return fmt.Errorf("%w: debugfs: %v", ErrCommand, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out2)), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs") {
			return fmt.Errorf("%w: debugfs: %s", ErrCommand, line)
		}
	}
	if _, err := r.Run(ctx, env, "e2fsck", "-f", "-n", out); err != nil {
		return fmt.Errorf("%w: the new file system does not check clean: %v", ErrCommand, err)
	}
	return nil
}
