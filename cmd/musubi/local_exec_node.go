package main

import (
	"context"
	"fmt"

	"github.com/musubi-fabric/musubi/node/localfed"
)

// execInNode runs argv inside virtual node node of site (`musubi local
// exec <site> <node> -- cmd`), passing the standard streams and the exit
// status through, and returns that status. fed is the federation's record
// (fed.NodeNetnsPrefix starts the provisioner's node namespaces).
//
// Not implemented yet: it says so and fails.
func execInNode(ctx context.Context, env *cliEnv, fed *localfed.State, site *localfed.Site, node string, argv []string) int {
	_ = ctx
	fmt.Fprintf(env.stderr, "musubi local exec: node exec: not available yet (node %s of site %s in %s)\n", node, site.Name, fed.Dir)
	fmt.Fprintf(env.stderr, "Run the command in the site instead: musubi local exec %s -- %s\n", site.Name, argv[0])
	return exitFailure
}
