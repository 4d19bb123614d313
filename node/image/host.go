package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Runner runs a host tool (dpkg-query, ldd, mke2fs, debugfs) and returns
// its standard output; a failure is an error with the standard error text.
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
}

// ExecRunner runs tools with os/exec.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s %s: %v: %s", ErrCommand, name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Package is an installed Debian package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// kernelOf resolves a kernel package (possibly a metapackage such as
// linux-image-cloud-amd64) to the installed package that ships
// /boot/vmlinuz-<release>, and returns that package and the release.
func kernelOf(ctx context.Context, r Runner, pkg string) (Package, string, error) {
	candidates := []string{pkg}
	deps, err := r.Run(ctx, nil, "dpkg-query", "-W", "-f", "${Depends}", pkg)
	if err != nil {
		return Package{}, "", fmt.Errorf("%w: kernel package %s is not installed (apt-get install %s): %v", ErrMissing, pkg, pkg, err)
	}
	for _, d := range strings.Split(string(deps), ",") {
		for _, alt := range strings.Split(d, "|") {
			name := strings.Fields(strings.TrimSpace(alt))
			if len(name) > 0 && strings.HasPrefix(name[0], "linux-image-") {
				candidates = append(candidates, strings.TrimSuffix(name[0], ":amd64"))
			}
		}
	}
	for _, c := range candidates {
		files, err := r.Run(ctx, nil, "dpkg-query", "-L", c)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(files))
		for sc.Scan() {
			if rel, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "/boot/vmlinuz-"); ok && rel != "" {
				vers, err := versions(ctx, r, []string{c})
				if err != nil {
					return Package{}, "", err
				}
				return vers[0], rel, nil
			}
		}
	}
	return Package{}, "", fmt.Errorf("%w: no installed package among %v ships /boot/vmlinuz-*", ErrMissing, candidates)
}

// versions returns the installed versions of packages, in their order.
func versions(ctx context.Context, r Runner, pkgs []string) ([]Package, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	out, err := r.Run(ctx, nil, "dpkg-query", append([]string{"-W", "-f", "${Package}\t${Version}\n"}, pkgs...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: versions of %v: %v", ErrMissing, pkgs, err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if name, ver, ok := strings.Cut(line, "\t"); ok {
			got[name] = ver
		}
	}
	res := make([]Package, 0, len(pkgs))
	for _, p := range pkgs {
		v, ok := got[strings.TrimSuffix(p, ":amd64")]
		if !ok {
			v, ok = got[p]
		}
		if !ok {
			return nil, fmt.Errorf("%w: package %s has no version", ErrMissing, p)
		}
		res = append(res, Package{Name: strings.TrimSuffix(p, ":amd64"), Version: v})
	}
	return res, nil
}

// owners maps files to the Debian packages that ship them ("" when none
// does). Debian 12 merges /lib into /usr/lib, so a file is also looked up
// under its resolved path and with /usr added or removed.
func owners(ctx context.Context, r Runner, files []string) (map[string]string, error) {
	res := map[string]string{}
	alias := map[string]string{} // candidate path -> file
	var cands []string
	for _, f := range files {
		res[f] = ""
		add := func(p string) {
			if _, ok := alias[p]; !ok {
				alias[p] = f
				cands = append(cands, p)
			}
		}
		add(f)
		if real, err := filepath.EvalSymlinks(f); err == nil {
			add(real)
		}
		if rest, ok := strings.CutPrefix(f, "/usr/"); ok {
			add("/" + rest)
		} else {
			add("/usr" + f)
		}
	}
	sort.Strings(cands)
	// dpkg-query -S exits 1 when some paths are unknown; its output still
	// lists the known ones.
	out, _ := r.Run(ctx, nil, "dpkg-query", append([]string{"-S"}, cands...)...)
	for _, line := range strings.Split(string(out), "\n") {
		pkgs, p, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(line, "diversion ") {
			continue
		}
		f, known := alias[strings.TrimSpace(p)]
		if !known || res[f] != "" {
			continue
		}
		first := strings.TrimSpace(strings.Split(pkgs, ",")[0])
		res[f] = strings.TrimSuffix(first, ":amd64")
	}
	return res, nil
}

// modulesInOrder resolves module names to their .ko files under
// /lib/modules/<release> (relative paths from modules.dep), dependencies
// first, each once.
func modulesInOrder(modDir string, names []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("%w: modules.dep: %v", ErrMissing, err)
	}
	deps := map[string][]string{} // module path -> dependency paths
	byName := map[string]string{} // normalised name -> module path
	for _, line := range strings.Split(string(dep), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[moduleName(mod)] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(mod string, depth int) error
	visit = func(mod string, depth int) error {
		if seen[mod] {
			return nil
		}
		if depth > 64 {
			return fmt.Errorf("%w: module dependency loop at %s", ErrInvalid, mod)
		}
		seen[mod] = true
		ds := deps[mod]
		// modules.dep lists the deepest dependencies last.
		for i := len(ds) - 1; i >= 0; i-- {
			if err := visit(ds[i], depth+1); err != nil {
				return err
			}
		}
		order = append(order, mod)
		return nil
	}
	for _, n := range names {
		mod, ok := byName[normaliseModule(n)]
		if !ok {
			return nil, fmt.Errorf("%w: kernel module %s not in %s (built in? then leave it out)", ErrMissing, n, modDir)
		}
		if err := visit(mod, 0); err != nil {
			return nil, err
		}
	}
	for _, m := range order {
		if !strings.HasSuffix(m, ".ko") {
			return nil, fmt.Errorf("%w: module %s is compressed; busybox insmod needs plain .ko files", ErrInvalid, m)
		}
	}
	return order, nil
}

func normaliseModule(n string) string { return strings.ReplaceAll(n, "-", "_") }

// moduleName is a module's name from its path ("kernel/a/virtio-rng.ko" ->
// "virtio_rng").
func moduleName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return normaliseModule(b)
}

// sharedLibs returns the libraries a dynamically linked program loads
// (resolved by ldd), the ELF interpreter included; none for a static
// program or a script.
func sharedLibs(ctx context.Context, r Runner, prog string) ([]string, error) {
	out, err := r.Run(ctx, nil, "ldd", prog)
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) || strings.Contains(err.Error(), "not a dynamic executable") ||
			strings.Contains(err.Error(), "statically linked") {
			return nil, nil
		}
		return nil, err
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if _, after, ok := strings.Cut(line, "=> "); ok {
			if strings.HasPrefix(after, "not found") {
				return nil, fmt.Errorf("%w: %s needs a library ldd cannot find: %s", ErrMissing, prog, line)
			}
			if f := strings.Fields(after); len(f) > 0 && strings.HasPrefix(f[0], "/") {
				libs = append(libs, f[0])
			}
			continue
		}
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0]) // the interpreter
		}
	}
	sort.Strings(libs)
	return libs, nil
}
