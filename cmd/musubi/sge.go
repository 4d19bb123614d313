package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/sgecli"
)

// The Grid Engine commands, as `musubi qsub ...` and by argv[0]; the code
// is node/sgecli's, shared with the lean musubi-sge binary.

func init() {
	for _, c := range sgecli.Commands() {
		register(&command{name: c.Name, short: c.Short, run: func(ctx context.Context, env *cliEnv, args []string) int {
			return c.Run(ctx, &sgecli.Env{Stdout: env.stdout, Stderr: env.stderr, Stdin: env.stdin, Getenv: env.getenv}, args)
		}})
	}
	register(&command{name: "install-cli", short: "install qsub, qstat, ... as symlinks to musubi-sge (or musubi)", run: runInstallCLI})
}

// leanSGE is the file name of the lean Grid Engine command binary that
// `make build` puts beside musubi.
const leanSGE = "musubi-sge"

// runInstallCLI creates the Grid Engine commands as symlinks to the lean
// musubi-sge binary beside this one, or to this binary when there is none.
func runInstallCLI(_ context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "install-cli", "install-cli [--dir DIR] [--force]\n\nCreates qsub, qstat, qdel, qhold, qrls, qalter, qhost and qacct in DIR as\nsymlinks to the musubi-sge binary beside this musubi (it starts faster:\nit links only the Grid Engine commands), or to musubi itself when there\nis none. Symlinks to either are replaced.\n\nFlags:")
	dir := fs.String("dir", "/usr/local/bin", "directory for the symlinks")
	force := fs.Bool("force", false, "replace existing files of the same names")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return fail(env, "install-cli", err, "")
	}
	target := self
	lean := filepath.Join(filepath.Dir(self), leanSGE)
	if fi, err := os.Stat(lean); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		target = lean
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fail(env, "install-cli", err, "")
	}
	for _, name := range sge.Commands {
		p := filepath.Join(*dir, name)
		cur, lerr := os.Readlink(p)
		if lerr == nil && cur == target {
			fmt.Fprintf(env.stdout, "%s -> %s (already installed)\n", p, target)
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			ours := lerr == nil && (cur == self || cur == lean)
			if !ours && !*force {
				return fail(env, "install-cli", fmt.Errorf("%s exists", p), "Remove it, or run again with --force to replace it.")
			}
			if err := os.Remove(p); err != nil {
				return fail(env, "install-cli", err, "")
			}
		}
		if err := os.Symlink(target, p); err != nil {
			return fail(env, "install-cli", err, "")
		}
		fmt.Fprintf(env.stdout, "%s -> %s\n", p, target)
	}
	return exitOK
}
