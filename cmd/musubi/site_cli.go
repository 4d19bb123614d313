package main

import (
	"context"

	"github.com/musubi-fabric/musubi/node"
)

// `musubi site list` joins the `site` command (its init|join|leave|status
// live with site bootstrap) as a contributed subcommand.
func init() {
	registerSub("site", &command{name: "list", short: "list the federation's sites and whether their peers are live", run: runSiteList})
}

const siteListSynopsis = `site list [flags]

Lists the federation's sites: their ZooKeeper server, and whether their
peer holds a session (live) and since when.` + apiFlagsHelp + `

Flags:`

func runSiteList(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "site list", siteListSynopsis)
	o := addAPIFlags(fs, env)
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		return usageFail(env, "site list", "unexpected argument %q", fs.Arg(0))
	}
	c, err := o.client()
	if err != nil {
		return fail(env, "site list", err, "")
	}
	defer c.Close()
	sites, err := c.Sites(ctx)
	if err != nil {
		return apiFail(env, "site list", o, err)
	}
	if o.json() {
		return writeJSON(env.stdout, sites)
	}
	if err := (node.FederationStatus{Sites: sites.Sites}).WriteTable(env.stdout, "GATEWAY", func(s node.SiteStatus) string { return orDash(s.Gateway) }); err != nil {
		return exitFailure
	}
	return exitOK
}
