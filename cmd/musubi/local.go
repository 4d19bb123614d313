package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/version"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/node"
)

func init() {
	register(&command{name: "local", short: "one-machine federation for trying musubi (local demo)", run: runLocal})
}

func runLocal(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(env.stdout, `Usage: musubi local <subcommand> [flags]

Subcommands:
  demo    bring up a federation of N sites on this machine (one ZooKeeper
          server and one peer session per site), show its status, survive
          the loss of the ensemble's leader, and tear everything down

Run 'musubi local demo --help' for its flags.
`)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "demo":
		return runLocalDemo(ctx, env, args[1:])
	}
	fmt.Fprintf(env.stderr, "musubi local: unknown subcommand %q (try 'musubi local --help')\n", args[0])
	return exitUsage
}

func runLocalDemo(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "local demo", "local demo [--sites N] [--federation NAME]")
	sites := fs.Int("sites", 3, "number of sites (1-7; one ZooKeeper voter each)")
	fed := fs.String("federation", "local", "federation name (its data lives under /musubi/<name>)")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if *sites < 1 || *sites > 7 {
		fmt.Fprintf(env.stderr, "musubi local demo: --sites %d is out of range: use 1 to 7 (ZooKeeper voters)\n", *sites)
		return exitUsage
	}
	if err := coord.ValidName(*fed); err != nil {
		fmt.Fprintf(env.stderr, "musubi local demo: --federation: %v\n", err)
		return exitUsage
	}
	if err := zktest.Available(); err != nil {
		return fail(env, "local demo", err, "Install ZooKeeper with 'make deps' (Debian package zookeeper), then retry.")
	}
	if err := localDemo(ctx, env, *sites, *fed); err != nil {
		return fail(env, "local demo", err, "")
	}
	return exitOK
}

func localDemo(ctx context.Context, env *cliEnv, n int, fed string) (err error) {
	say := func(format string, a ...any) { fmt.Fprintf(env.stdout, "==> "+format+"\n", a...) }
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t0 := time.Now()
	say("starting a %d-server ZooKeeper ensemble on loopback (one server per site)", n)
	ens, err := zktest.Start(ctx, zktest.Options{Servers: n})
	if err != nil {
		return err
	}
	defer func() {
		say("tearing down: closing peer sessions and stopping ZooKeeper")
		if serr := ens.Stop(); serr != nil {
			err = errors.Join(err, serr)
		} else {
			say("done: nothing left running (%s)", time.Since(t0).Round(time.Millisecond))
		}
	}()
	say("ensemble serving after %s: %s", time.Since(t0).Round(time.Millisecond), ens.ConnectString())

	stores := make([]coord.Store, n)
	defer func() {
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
	}()
	host, _ := os.Hostname()
	for i := range stores {
		site := fmt.Sprintf("site%d", i+1)
		s, err := zkstore.Open(ctx, zkstore.Config{
			Servers: ens.Servers(), LocalServer: ens.Addr(i + 1),
			Root: coord.FederationRoot(fed), SessionTimeout: 10 * time.Second, Logger: logger,
		})
		if err != nil {
			return fmt.Errorf("%s: connect: %w", site, err)
		}
		stores[i] = s
		if err := node.InitSchema(ctx, s); err != nil {
			return err
		}
		rec := node.SiteRecord{Name: site, ZKServer: ens.Addr(i + 1), Joined: time.Now().UTC()}
		live := node.LiveRecord{Peer: fmt.Sprintf("%s/pid-%d/%s", host, os.Getpid(), site), Since: time.Now().UTC(), Version: version.String()}
		if err := node.RegisterSite(ctx, s, rec, live); err != nil {
			return err
		}
		say("%s joined: registered sites/%s and live/%s (session 0x%x via %s)", site, site, site, s.SessionID(), ens.Addr(i+1))
	}
	show := func(title string) error {
		st, err := node.ReadStatus(ctx, stores[len(stores)-1])
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "\n%s\n", title)
		roles := map[string]string{}
		for _, m := range ens.Members() {
			mode, _ := ens.Mode(ctx, m.ID)
			if mode == "" {
				mode = "down"
			}
			roles[m.ClientAddr()] = mode
		}
		if err := st.WriteTable(env.stdout, "ZK ROLE", func(s node.SiteStatus) string { return roles[s.ZKServer] }); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout)
		return nil
	}
	if err := show("$ musubi status   # as read from any site"); err != nil {
		return err
	}
	if n < 3 {
		return nil
	}
	leader, err := ens.Leader(ctx)
	if err != nil {
		return err
	}
	say("killing the ZooKeeper leader (server %d, SIGKILL): no site is special, the others elect a new one", leader)
	tk := time.Now()
	if err := ens.Kill(leader); err != nil {
		return err
	}
	// A write from a site whose server survived shows when the ensemble
	// accepts writes again.
	writer := stores[leader%n]
	for {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := writer.Set(wctx, coord.SitesDir, nil, coord.AnyVersion)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !coord.Retryable(err) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("write after leader loss: %w", err)
		}
	}
	say("writes accepted again after %s; every peer session survived (ephemeral live/ records intact)", time.Since(tk).Round(time.Millisecond))
	if err := show("$ musubi status   # after the leader's loss"); err != nil {
		return err
	}
	say("restarting server %d: it rejoins as a follower", leader)
	if err := ens.Start(leader); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := ens.WaitServing(wctx, leader); err != nil {
		return err
	}
	return show("$ musubi status   # all servers back")
}
