// Command musubi-sge is the Grid Engine commands alone (qsub, qstat, qdel,
// qhold, qrls, qalter, qhost, qacct), chosen by argv[0]: the target of the
// symlinks `musubi install-cli` makes. It runs the same code as
// `musubi qsub ...` (node/sgecli) but links nothing else, so it starts in
// a fraction of the full binary's time; job throughput from shell loops
// of qsub depends on that.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/musubi-fabric/musubi/internal/version"
	"github.com/musubi-fabric/musubi/node/sgecli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, sgecli.OSEnv(), os.Args)
	stop()
	os.Exit(code)
}

// run dispatches by argv[0] (qsub, ...), or by the first argument when
// called as musubi-sge.
func run(ctx context.Context, env *sgecli.Env, argv []string) int {
	if c, ok := sgecli.Lookup(filepath.Base(argv[0])); ok {
		return c.Run(ctx, env, argv[1:])
	}
	if len(argv) < 2 {
		usage(env.Stderr)
		return 2
	}
	switch argv[1] {
	case "-h", "--help", "help":
		usage(env.Stdout)
		return 0
	case "--version", "version":
		fmt.Fprintln(env.Stdout, "musubi-sge", version.String())
		return 0
	}
	if c, ok := sgecli.Lookup(argv[1]); ok {
		return c.Run(ctx, env, argv[2:])
	}
	fmt.Fprintf(env.Stderr, "musubi-sge: unknown command %q\n", argv[1])
	usage(env.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "musubi-sge %s - musubi's Grid Engine commands\n\nUsage: <command> [options]   (as a symlink named after the command)\n       musubi-sge <command> [options]\n\nCommands:\n", version.String())
	for _, c := range sgecli.Commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.Short)
	}
	fmt.Fprintln(w, "\nEach command takes Grid Engine's options; -help lists them. Install the\nsymlinks with 'musubi install-cli'.")
}
