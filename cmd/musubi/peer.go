package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/musubi-fabric/musubi/internal/version"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
	"github.com/musubi-fabric/musubi/node/peer"
)

func init() {
	register(&command{name: "peer", short: "the site daemon: coordination, reservations, overlay, API, metrics", run: runPeer})
}

const peerSynopsis = `peer [--config FILE] [flags]
       musubi peer token --name NAME --role admin|provider|user [--vc VC]...
       musubi peer --example-config

Runs this site's peer. Its configuration is built from the defaults, then
the config file (JSON; --config or MUSUBI_CONFIG), then the flags below,
then the MUSUBI_* environment variables (each flag names its variable),
and is checked before anything starts. Secrets are never in the
configuration: it names files of mode 0600 that hold the ZooKeeper
credential (user:password) and the API tokens' hashes.

The peer serves its API on the unix socket (root is admin without a token)
and, if api.listen is set, on TCP (HTTPS with api.tls_cert and
api.tls_key), with /healthz, /readyz and /metrics. SIGTERM stops it
cleanly: requests drain, subsystems stop, its ZooKeeper session closes.

'musubi peer token' makes a new API token: it prints the token (give it
to its holder, once) and the entry to add to the tokens file.

Flags:`

func runPeer(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) > 0 && args[0] == "token" {
		return runPeerToken(env, args[1:])
	}
	fs := newFlags(env, "peer", peerSynopsis)
	flags := config.RegisterFlags(fs)
	example := fs.Bool("example-config", false, "print a complete example config file and exit")
	check := fs.Bool("check", false, "check the configuration and the secret files, then exit")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if *example {
		fmt.Fprint(env.stdout, config.Example)
		return exitOK
	}
	if fs.NArg() > 0 {
		return usageFail(env, "peer", "unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(flags, func(k string) (string, bool) {
		v := env.getenv(k)
		return v, v != ""
	})
	if err != nil {
		fmt.Fprintf(env.stderr, "musubi peer: the configuration is not usable:\n%s\n", indentLines(err.Error()))
		fmt.Fprintln(env.stderr, "Fix the settings above in the config file, the flags or the environment; 'musubi peer --help' lists them.")
		return exitUsage
	}
	if *check {
		if err := checkSecrets(cfg); err != nil {
			return fail(env, "peer", err, "")
		}
		fmt.Fprintf(env.stdout, "Configuration of site %s is valid (federation %s, chroot %s).\n", cfg.Site, cfg.Federation, cfg.Chroot())
		return exitOK
	}
	log := newLogger(env, cfg.Log)
	opts := peer.Options{Logger: log, Version: version.String()}
	if pr := cfg.Provision; pr.Enabled {
		opts.Plugins = append(opts.Plugins, peer.LifecyclePlugin(peer.LifecycleOptionsFrom(cfg)))
	}
	p, err := peer.New(cfg, opts)
	if err != nil {
		return fail(env, "peer", err, "Nothing was started. Fix the problem above and start the peer again.")
	}
	if err := p.Run(ctx); err != nil {
		return fail(env, "peer", err, "The peer stopped. Its log above says why; it can be restarted at once.")
	}
	return exitOK
}

// checkSecrets reads the secret files the configuration names.
func checkSecrets(cfg config.Config) error {
	var errs []error
	if f := cfg.ZooKeeper.CredentialFile; f != "" {
		if _, err := config.ReadCredential(f); err != nil {
			errs = append(errs, fmt.Errorf("zookeeper.credential_file: %w", err))
		}
	}
	if f := cfg.API.TokensFile; f != "" {
		if _, err := api.LoadTokens(f); err != nil {
			errs = append(errs, fmt.Errorf("api.tokens_file: %w", err))
		}
	}
	if cfg.API.TLSCert != "" {
		if _, err := api.TLSConfig(cfg.API.TLSCert, cfg.API.TLSKey); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newLogger makes the peer's structured logger on stderr.
func newLogger(env *cliEnv, lc config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(lc.Level)) // validated by config.Load
	opts := &slog.HandlerOptions{Level: lvl}
	if lc.Format == "text" {
		return slog.New(slog.NewTextHandler(env.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(env.stderr, opts))
}

func indentLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

func runPeerToken(env *cliEnv, args []string) int {
	fs := newFlags(env, "peer token", "peer token --name NAME --role admin|provider|user [--vc VC]... [--out FILE]\n\nMakes a new API token. It prints the tokens-file entry (the token's SHA-256\nhash, never the token) on stdout, and writes the token itself to --out\n(mode 0600), or prints it on stderr.\n\nFlags:")
	name := fs.String("name", "", "the principal's name (owner of the VCs it reserves)")
	role := fs.String("role", "", "admin, provider or user")
	var vcs listFlag
	fs.Var(&vcs, "vc", "VCs the principal may read besides its own (repeatable)")
	out := fs.String("out", "", "file to write the token to (mode 0600; must not exist)")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	entry := api.TokenEntry{Name: *name, Role: api.Role(*role), VCs: vcs}
	tok := api.NewToken()
	entry.SHA256 = api.HashToken(tok)
	// Check the entry as the peer will.
	probe, _ := json.Marshal(api.TokensFile{Tokens: []api.TokenEntry{entry}})
	if _, err := api.ParseTokens(probe); err != nil {
		return usageFail(env, "peer token", "%v", err)
	}
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(env, "peer token", err, "Choose a file that does not exist yet.")
		}
		if _, err := fmt.Fprintln(f, tok); err != nil {
			f.Close()
			return fail(env, "peer token", err, "")
		}
		if err := f.Close(); err != nil {
			return fail(env, "peer token", err, "")
		}
	} else {
		fmt.Fprintf(env.stderr, "Token (give it to %s; it is not stored anywhere):\n%s\n", *name, tok)
	}
	b, _ := json.MarshalIndent(entry, "", "  ")
	fmt.Fprintf(env.stdout, "%s\n", b)
	fmt.Fprintln(env.stderr, "Add the entry above to the \"tokens\" list of the peers' tokens file, then restart them.")
	return exitOK
}
