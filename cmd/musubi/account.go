package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
)

func init() {
	register(&command{name: "account", short: "federation accounts: add, del, list (every VC node gets them)", run: runAccount})
}

func runAccount(ctx context.Context, env *cliEnv, args []string) int {
	subs := []struct {
		name, short string
		run         func(context.Context, *cliEnv, []string) int
	}{
		{"add", "add an account (uid allocated unless --uid)", runAccountAdd},
		{"del", "delete an account", runAccountDel},
		{"list", "list the accounts", runAccountList},
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := env.stdout
		if len(args) == 0 {
			w = env.stderr
		}
		fmt.Fprint(w, "Usage: musubi account <subcommand> [flags]\n\nSubcommands:\n")
		for _, s := range subs {
			fmt.Fprintf(w, "  %-5s %s\n", s.name, s.short)
		}
		fmt.Fprint(w, "\nRun 'musubi account <subcommand> --help' for its flags.\n")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "musubi account: unknown subcommand %q (try 'musubi account --help')\n", args[0])
	return exitUsage
}

const accountAddSynopsis = `account add USER [flags]

Adds a federation account. Every node of every VC creates it, with its SSH
keys; a password is only ever given as a crypt(3) hash (e.g. from
'mkpasswd -m yescrypt'), read from a file. Admins only.` + apiFlagsHelp + `

Flags:`

func runAccountAdd(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "account add"
	fs := newFlags(env, cmd, accountAddSynopsis)
	o := addAPIFlags(fs, env)
	uid := fs.Int("uid", 0, "user id (default: the next free one from 10000)")
	gid := fs.Int("gid", 0, "primary group id (default: the uid)")
	shell := fs.String("shell", api.DefaultShell, "login shell")
	home := fs.String("home", "", "home directory (default /home/USER)")
	var groups, keyFiles listFlag
	fs.Var(&groups, "group", "supplementary groups (comma-separated or repeated)")
	fs.Var(&keyFiles, "ssh-key", "public key file to authorize (repeatable)")
	hashFile := fs.String("password-hash-file", "", "file holding the password's crypt(3) hash")
	pos, stop, code := parseInterspersed(fs, args)
	if stop {
		return code
	}
	if len(pos) != 1 {
		return usageFail(env, cmd, "give exactly one user name")
	}
	a := api.Account{User: pos[0], UID: *uid, GID: *gid, Shell: *shell, Home: *home, Groups: groups}
	keys, err := readKeys(keyFiles, "")
	if err != nil {
		return fail(env, cmd, err, "Give public key files (e.g. id_ed25519.pub) with --ssh-key.")
	}
	a.SSHKeys = keys
	if *hashFile != "" {
		data, err := config.ReadSecretFile(*hashFile)
		if err != nil {
			return fail(env, cmd, err, "")
		}
		a.PasswordHash = strings.TrimSpace(string(data))
	}
	if err := a.Normalize(); err != nil {
		return fail(env, cmd, err, "")
	}
	return callAPI(env, cmd, o, func(c *api.Client) (api.AccountView, error) { return c.AddAccount(ctx, a) }, func(v api.AccountView) int {
		fmt.Fprintf(env.stdout, "Added %s (uid %d, gid %d, %d SSH keys).\n", v.User, v.UID, v.GID, len(v.SSHKeys))
		return exitOK
	})
}

const accountDelSynopsis = `account del USER [flags]

Deletes a federation account; the nodes remove it. Admins only.` + apiFlagsHelp + `

Flags:`

func runAccountDel(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "account del"
	fs := newFlags(env, cmd, accountDelSynopsis)
	o := addAPIFlags(fs, env)
	pos, stop, code := parseInterspersed(fs, args)
	if stop {
		return code
	}
	if len(pos) != 1 {
		return usageFail(env, cmd, "give exactly one user name")
	}
	c, err := o.client()
	if err != nil {
		return fail(env, cmd, err, "")
	}
	defer c.Close()
	if err := c.DeleteAccount(ctx, pos[0]); err != nil {
		return apiFail(env, cmd, o, err)
	}
	if o.json() {
		return writeJSON(env.stdout, map[string]string{"deleted": pos[0]})
	}
	fmt.Fprintf(env.stdout, "Deleted %s.\n", pos[0])
	return exitOK
}

const accountListSynopsis = `account list [flags]

Lists the federation's accounts (never their password hashes).` + apiFlagsHelp + `

Flags:`

func runAccountList(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "account list"
	fs := newFlags(env, cmd, accountListSynopsis)
	o := addAPIFlags(fs, env)
	pos, stop, code := parseInterspersed(fs, args)
	if stop {
		return code
	}
	if len(pos) > 0 {
		return usageFail(env, cmd, "unexpected argument %q", pos[0])
	}
	c, err := o.client()
	if err != nil {
		return fail(env, cmd, err, "")
	}
	defer c.Close()
	as, err := c.Accounts(ctx)
	if err != nil {
		return apiFail(env, cmd, o, err)
	}
	if o.json() {
		return writeJSON(env.stdout, api.Accounts{Accounts: as})
	}
	if len(as) == 0 {
		fmt.Fprintln(env.stdout, "No accounts. Add one with 'musubi account add USER --ssh-key FILE'.")
		return exitOK
	}
	w := table(env.stdout)
	fmt.Fprintln(w, "USER\tUID\tGID\tSHELL\tHOME\tGROUPS\tKEYS\tPASSWORD")
	for _, a := range as {
		pw := "no"
		if a.HasPassword {
			pw = "yes"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%s\n", a.User, a.UID, a.GID, a.Shell, a.Home, orDash(strings.Join(a.Groups, ",")), len(a.SSHKeys), pw)
	}
	if err := w.Flush(); err != nil {
		return exitFailure
	}
	return exitOK
}
