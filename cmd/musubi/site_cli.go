package main

import (
	"context"

	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/api"
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
	return callAPI(env, "site list", o, func(c *api.Client) (api.Sites, error) { return c.Sites(ctx) }, func(sites api.Sites) int {
		if err := (node.FederationStatus{Sites: sites.Sites}).WriteTable(env.stdout, "GATEWAY", func(s node.SiteStatus) string { return orDash(s.Gateway) }); err != nil {
			return exitFailure
		}
		return exitOK
	})
}
