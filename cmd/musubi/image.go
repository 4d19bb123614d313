package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/image"
)

func init() {
	register(&command{name: "image", short: "build, list and check the node images of QEMU virtual nodes", run: runImage})
}

// defaultImageStore is where a site keeps its images.
const defaultImageStore = "/var/lib/musubi/images"

const imageSynopsis = `image build|list|show|verify [flags]

  build   build a bootable node image from Debian packages installed here:
          the kernel of --kernel-package, an initramfs with busybox-static
          and the virtio modules, and an ext4 root file system with the
          statically built musubi agent and the --payload programs (with
          their shared libraries). The build is reproducible: every time
          stamp is SOURCE_DATE_EPOCH (default 2024-01-01), so building twice
          gives the same image id. The image goes to the store (one
          directory per image id) or, with --out, to a directory.
  list    list the store's images
  show ID print an image's manifest (inputs, packages, outputs)
  verify ID  check an image's files against its manifest

The environment may set MUSUBI_IMAGE_STORE (--store) and SOURCE_DATE_EPOCH.

Flags:`

func runImage(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fs := newFlags(env, "image", imageSynopsis)
			fs.Usage()
			return exitOK
		}
		fmt.Fprintln(env.stderr, "musubi image: want a subcommand: build, list, show or verify (musubi image --help)")
		return exitUsage
	}
	sub, args := args[0], args[1:]
	fs := newFlags(env, "image "+sub, imageSynopsis)
	storeDir := env.getenv("MUSUBI_IMAGE_STORE")
	if storeDir == "" {
		storeDir = defaultImageStore
	}
	store := fs.String("store", storeDir, "image store directory")
	switch sub {
	case "build":
		return runImageBuild(ctx, env, fs, store, args)
	case "list", "show", "verify":
	default:
		fmt.Fprintf(env.stderr, "musubi image: unknown subcommand %q (build, list, show, verify)\n", sub)
		return exitUsage
	}
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	s := image.Store{Dir: *store}
	if sub == "list" {
		if fs.NArg() > 0 {
			fmt.Fprintf(env.stderr, "musubi image list: unexpected argument %q\n", fs.Arg(0))
			return exitUsage
		}
		imgs, err := s.List()
		if err != nil {
			return fail(env, "image list", err, "")
		}
		for _, img := range imgs {
			m := img.Manifest
			fmt.Fprintf(env.stdout, "%s  kernel %s  payload %s\n", img.ID, m.Kernel.Release, strings.Join(m.Payload, ","))
		}
		return exitOK
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(env.stderr, "musubi image %s: want one image id\n", sub)
		return exitUsage
	}
	img, err := s.Get(fs.Arg(0))
	if err != nil {
		return fail(env, "image "+sub, err, "List the store's images with 'musubi image list --store "+*store+"'.")
	}
	if sub == "verify" {
		if _, err := image.Verify(img.Dir); err != nil {
			return fail(env, "image verify", err, "Rebuild the image with 'musubi image build'.")
		}
		fmt.Fprintf(env.stdout, "%s: ok\n", img.ID)
		return exitOK
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(img.Manifest); err != nil {
		return fail(env, "image show", err, "")
	}
	return exitOK
}

func runImageBuild(ctx context.Context, env *cliEnv, fs *flag.FlagSet, store *string, args []string) int {
	kernel := fs.String("kernel-package", image.DefaultKernelPackage, "installed Debian kernel package (a metapackage is resolved)")
	modules := fs.String("modules", strings.Join(image.DefaultModules, ","), "kernel modules for the initramfs, comma-separated (dependencies added)")
	busybox := fs.String("busybox", image.DefaultBusybox, "statically linked busybox (busybox-static)")
	agent := fs.String("agent", "", "statically linked musubi binary (default: this one, if static)")
	sgeBin := fs.String("sge", "", "statically linked musubi-sge binary for qsub, qstat, ... (default: the one beside the agent binary, if any; else the commands are symlinks to the agent)")
	payload := fs.String("payload", "", "application programs to copy with their libraries, comma-separated (e.g. /usr/bin/vina)")
	rootSize := fs.String("root-size", "", "root file system size, e.g. 512M (default: the content plus room, at least 256M)")
	out := fs.String("out", "", "build into this new directory instead of the store")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "musubi image build: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg := image.Config{KernelPackage: *kernel, Busybox: *busybox, Agent: *agent, SGE: *sgeBin}
	for _, m := range strings.Split(*modules, ",") {
		if m = strings.TrimSpace(m); m != "" {
			cfg.Modules = append(cfg.Modules, m)
		}
	}
	if cfg.Modules == nil {
		cfg.Modules = []string{}
	}
	for _, p := range strings.Split(*payload, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Payload = append(cfg.Payload, p)
		}
	}
	if *rootSize != "" {
		n, inf, err := sge.ParseMemory(*rootSize)
		if err != nil || inf {
			fmt.Fprintf(env.stderr, "musubi image build: --root-size %q: want a size like 512M\n", *rootSize)
			return exitUsage
		}
		cfg.RootSize = n
	}
	if e := env.getenv("SOURCE_DATE_EPOCH"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(env.stderr, "musubi image build: SOURCE_DATE_EPOCH=%q: want seconds since 1970\n", e)
			return exitUsage
		}
		cfg.Epoch = n
	}
	if cfg.Agent == "" {
		self, err := os.Executable()
		if err == nil {
			self, err = filepath.EvalSymlinks(self)
		}
		if err != nil {
			return fail(env, "image build", err, "Pass --agent with a statically linked musubi binary.")
		}
		if err := image.StaticELF(self); err != nil {
			return fail(env, "image build", fmt.Errorf("this musubi binary cannot be the node's agent: %w", err),
				"Build a static one (CGO_ENABLED=0 go build -o musubi-static ./cmd/musubi) and pass --agent musubi-static.")
		}
		cfg.Agent = self
	}
	if cfg.SGE == "" {
		// The lean Grid Engine commands beside the agent, as make build
		// leaves them.
		if lean := filepath.Join(filepath.Dir(cfg.Agent), leanSGE); image.StaticELF(lean) == nil {
			cfg.SGE = lean
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(env.stderr, "musubi image build: --log-level %q: use debug, info, warn or error\n", *level)
		return exitUsage
	}
	cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: lvl}))
	hint := "The kernel, busybox-static and e2fsprogs packages must be installed (scripts/deps.sh installs them)."
	if *out != "" {
		m, err := image.Build(ctx, cfg, *out)
		if err != nil {
			return fail(env, "image build", err, hint)
		}
		fmt.Fprintf(env.stdout, "%s %s\n", m.ID, *out)
		return exitOK
	}
	img, err := image.Store{Dir: *store}.Build(ctx, cfg)
	if err != nil {
		return fail(env, "image build", err, hint)
	}
	fmt.Fprintf(env.stdout, "%s %s\n", img.ID, img.Dir)
	return exitOK
}
