// Command musubi is the one binary of musubi: the site peer, the in-node
// agent, the admin CLI, and (by argv[0]) the Grid Engine commands.
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	fmt.Fprintln(os.Stderr, "musubi: no subcommand yet; see README.md")
	return 2
}
