// Command musubi is the one binary of musubi: the site peer, the in-node
// agent, the admin CLI, and, by argv[0], the Grid Engine commands (qsub,
// qstat, qdel, ... are symlinks to it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/musubi-fabric/musubi/internal/version"
)

// Exit codes of the musubi subcommands (the Grid Engine commands use Grid
// Engine's own).
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed; the message says why
	exitUsage    = 2 // bad command line
	exitInterupt = 130
)

// command is one subcommand of musubi.
type command struct {
	name  string
	short string // one line for `musubi help`
	run   func(ctx context.Context, env *cliEnv, args []string) int
}

// cliEnv carries the process's standard streams, so commands are testable.
type cliEnv struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// subcommands are subcommands that one file adds to a command another file
// registers (e.g. `site list` beside `site init|join|leave|status`), so
// that neither file needs the other. They are dispatched before the
// parent command runs.
var subcommands = map[string]map[string]*command{}

func registerSub(parent string, c *command) {
	if subcommands[parent] == nil {
		subcommands[parent] = map[string]*command{}
	}
	subcommands[parent][c.name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &cliEnv{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv}, os.Args)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, env *cliEnv, argv []string) int {
	self := filepath.Base(argv[0])
	if c, ok := commands[self]; ok && self != "musubi" {
		return c.run(ctx, env, argv[1:]) // multicall: qsub, qstat, ... symlinks
	}
	if len(argv) < 2 {
		usage(env.stderr)
		return exitUsage
	}
	name, args := argv[1], argv[2:]
	switch name {
	case "-h", "--help", "help":
		usage(env.stdout)
		return exitOK
	case "--version", "version":
		fmt.Fprintln(env.stdout, "musubi", version.String())
		return exitOK
	}
	c, ok := commands[name]
	if len(args) > 0 {
		if sc, sok := subcommands[name][args[0]]; sok {
			c, ok, args = sc, true, args[1:]
		}
	}
	if !ok && subcommands[name] != nil {
		fmt.Fprintf(env.stderr, "musubi %s: give a subcommand:\n", name)
		for _, sc := range sortedSubs(name) {
			fmt.Fprintf(env.stderr, "  %-10s %s\n", sc.name, sc.short)
		}
		return exitUsage
	}
	if !ok {
		fmt.Fprintf(env.stderr, "musubi: unknown command %q\nRun 'musubi help' for the list of commands.\n", name)
		return exitUsage
	}
	code := c.run(ctx, env, args)
	if code != exitOK && ctx.Err() != nil {
		return exitInterupt
	}
	return code
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "musubi %s - a masterless multi-site virtual cluster fabric\n\nUsage: musubi <command> [flags]\n\nCommands:\n", version.String())
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	for n := range subcommands {
		if commands[n] == nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if c := commands[n]; c != nil {
			fmt.Fprintf(w, "  %-12s %s\n", n, c.short)
		} else {
			fmt.Fprintf(w, "  %-12s %s\n", n, subShort(n))
		}
	}
	fmt.Fprintf(w, "  %-12s %s\n\nRun 'musubi <command> --help' for a command's flags.\n", "version", "print the version")
}

// newFlags returns a FlagSet for a subcommand whose --help prints the
// command's synopsis and flags to stdout.
func newFlags(env *cliEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fs.SetOutput(env.stdout)
		fmt.Fprintf(env.stdout, "Usage: musubi %s\n\n", synopsis)
		fs.PrintDefaults()
		fs.SetOutput(env.stderr)
	}
	return fs
}

// parseFlags parses args and maps -h/--help to a clean exit; the second
// result is the exit code when the caller should stop.
func parseFlags(fs *flag.FlagSet, args []string) (stop bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, exitOK
		}
		return true, exitUsage
	}
	return false, 0
}

// fail prints an error with a hint about what to do next.
func fail(env *cliEnv, cmd string, err error, hint string) int {
	msg := fmt.Sprintf("musubi %s: %v", cmd, err)
	if hint != "" {
		msg += "\n" + strings.TrimSpace(hint)
	}
	fmt.Fprintln(env.stderr, msg)
	return exitFailure
}

func sortedSubs(parent string) []*command {
	var out []*command
	for _, c := range subcommands[parent] {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// subShort describes a command that only has contributed subcommands.
func subShort(parent string) string {
	var names []string
	for _, c := range sortedSubs(parent) {
		names = append(names, c.name)
	}
	return strings.Join(names, "|")
}
