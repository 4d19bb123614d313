package main

import (
	"context"
	"fmt"

	"github.com/musubi-fabric/musubi/node/api"
)

func init() {
	register(&command{name: "topology", short: "the overlay: sites and the state and cost of every link", run: runTopology})
}

const topologySynopsis = `topology [flags]

Shows the overlay's sites and the full mesh of links between them: up or
down and the measured cost (round-trip time) each link's lower-named site
writes; "assumed" marks a pair with no measurement yet.` + apiFlagsHelp + `

Flags:`

func runTopology(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "topology", topologySynopsis)
	o := addAPIFlags(fs, env)
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		return usageFail(env, "topology", "unexpected argument %q", fs.Arg(0))
	}
	return callAPI(env, "topology", o, func(c *api.Client) (api.Topology, error) { return c.Topology(ctx) }, func(topo api.Topology) int {
		w := table(env.stdout)
		fmt.Fprintln(w, "SITE\tSTATE\tGATEWAY")
		for _, s := range topo.Sites {
			state := "down"
			if s.Live {
				state = "live"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", s.Name, state, orDash(s.Gateway))
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "LINK\tSTATE\tCOST\tSOURCE\tUPDATED")
		for _, l := range topo.Links {
			fmt.Fprintf(w, "%s~%s\t%s\t%s\t%s\t%s\n", l.A, l.B, linkState(l), fmtCost(l.CostUS), linkSource(l), fmtTime(l.Updated))
		}
		if err := w.Flush(); err != nil {
			return exitFailure
		}
		return exitOK
	})
}

func linkState(l api.Link) string {
	if l.Up {
		return "up"
	}
	return "down"
}

func linkSource(l api.Link) string {
	if l.Measured {
		return "measured"
	}
	return "assumed"
}

// fmtCost prints a cost in microseconds as milliseconds.
func fmtCost(us uint32) string {
	return fmt.Sprintf("%.1f ms", float64(us)/1000)
}
