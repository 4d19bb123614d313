package main

// This file holds `musubi status` and the helpers every API command of
// the CLI shares: the API address and token flags, the client, the
// output format, and errors that say what to do next.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
)

func init() {
	register(&command{name: "status", short: "the federation at a glance: this peer, the sites, the VCs", run: runStatus})
}

// Environment variables of the API commands (a flag given on the command
// line wins over its variable).
const (
	envAPI       = "MUSUBI_API"
	envTokenFile = "MUSUBI_TOKEN_FILE"
	envCAFile    = "MUSUBI_CA_FILE"
	envOutput    = "MUSUBI_OUTPUT"
)

// apiOpts are the flags every API command has.
type apiOpts struct {
	endpoint, tokenFile, caFile, output string
	timeout                             time.Duration
}

const apiFlagsHelp = `
The command talks to a peer's API: by default the local peer's unix
socket (as root no token is needed); --api https://HOST:PORT with
--token-file FILE reaches any peer of the federation.`

func addAPIFlags(fs *flag.FlagSet, env *cliEnv) *apiOpts {
	o := &apiOpts{}
	def := func(name, v string) string {
		if e := env.getenv(name); e != "" {
			return e
		}
		return v
	}
	fs.StringVar(&o.endpoint, "api", def(envAPI, config.DefaultSocket), "peer API: a unix socket path or https://HOST:PORT (env "+envAPI+")")
	fs.StringVar(&o.tokenFile, "token-file", def(envTokenFile, ""), "file (mode 0600) holding an API token (env "+envTokenFile+")")
	fs.StringVar(&o.caFile, "ca-file", def(envCAFile, ""), "PEM CA bundle to trust for the peer's certificate (env "+envCAFile+")")
	fs.StringVar(&o.output, "output", def(envOutput, "table"), "output format: table or json (env "+envOutput+")")
	fs.StringVar(&o.output, "o", def(envOutput, "table"), "shorthand for --output")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on each API request")
	return o
}

// callAPI runs command cmd's one API call: it opens o's client, calls
// call, reports a failure the commands' way, prints the result as JSON
// with --output json, and otherwise hands it to show.
func callAPI[T any](env *cliEnv, cmd string, o *apiOpts, call func(*api.Client) (T, error), show func(T) int) int {
	c, err := o.client()
	if err != nil {
		return fail(env, cmd, err, "")
	}
	defer c.Close()
	v, err := call(c)
	if err != nil {
		return apiFail(env, cmd, o, err)
	}
	if o.json() {
		return writeJSON(env.stdout, v)
	}
	return show(v)
}

// client checks the options and returns an API client.
func (o *apiOpts) client() (*api.Client, error) {
	if o.output != "table" && o.output != "json" {
		return nil, fmt.Errorf("--output %q: want table or json", o.output)
	}
	var token string
	if o.tokenFile != "" {
		data, err := config.ReadSecretFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(data))
		if token == "" || strings.ContainsAny(token, " \n\r\t") {
			return nil, fmt.Errorf("--token-file %s: want the token alone on one line", o.tokenFile)
		}
	}
	return api.NewClient(api.ClientConfig{Endpoint: o.endpoint, Token: token, CAFile: o.caFile, Timeout: o.timeout})
}

func (o *apiOpts) json() bool { return o.output == "json" }

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailure
	}
	return exitOK
}

// apiFail prints an API error with what to do next.
func apiFail(env *cliEnv, cmd string, o *apiOpts, err error) int {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		hint := ae.Hint
		switch ae.Status {
		case http.StatusUnauthorized:
			if o.tokenFile == "" {
				hint = "Give a token with --token-file FILE (or " + envTokenFile + "), or run the command as root on the peer's host."
			}
		}
		msg := ae.Message
		return fail(env, cmd, errors.New(msg), hint)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fail(env, cmd, err, fmt.Sprintf("Is the peer running on this host? Start it with 'musubi peer', or reach another peer with --api https://HOST:PORT --token-file FILE (now: --api %s).", o.endpoint))
	case errors.Is(err, syscall.EACCES):
		return fail(env, cmd, err, "The peer's socket is for root (and its group): run the command with sudo, or use --api https://HOST:PORT --token-file FILE.")
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fail(env, cmd, err, "The peer did not answer in time: check that it is running and reachable, or raise --timeout.")
	}
	return fail(env, cmd, err, "")
}

// usageFail reports a bad command line.
func usageFail(env *cliEnv, cmd string, format string, a ...any) int {
	fmt.Fprintf(env.stderr, "musubi %s: %s\nRun 'musubi %s --help' for usage.\n", cmd, fmt.Sprintf(format, a...), cmd)
	return exitUsage
}

// table starts a tab-aligned table.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

const statusSynopsis = `status [flags]

Shows the peer that answers, every site of the federation (live or down),
and how many virtual clusters are in each phase.` + apiFlagsHelp + `

Flags:`

func runStatus(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "status", statusSynopsis)
	o := addAPIFlags(fs, env)
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		return usageFail(env, "status", "unexpected argument %q", fs.Arg(0))
	}
	return callAPI(env, "status", o, func(c *api.Client) (api.Status, error) { return c.Status(ctx) }, func(st api.Status) int {
		ready := "ready"
		if !st.Peer.Ready {
			ready = "NOT READY: " + strings.Join(st.Peer.Problems, "; ")
		}
		fmt.Fprintf(env.stdout, "Peer:   %s (musubi %s), %s\n", st.Peer.Site, st.Peer.Version, ready)
		live := 0
		for _, s := range st.Federation.Sites {
			if s.Live {
				live++
			}
		}
		fmt.Fprintf(env.stdout, "Sites:  %d of %d live\n", live, len(st.Federation.Sites))
		phases := make([]string, 0, len(st.VCs))
		for p, n := range st.VCs {
			phases = append(phases, fmt.Sprintf("%d %s", n, p))
		}
		sort.Strings(phases)
		if len(phases) == 0 {
			phases = []string{"none"}
		}
		fmt.Fprintf(env.stdout, "VCs:    %s\n\n", strings.Join(phases, ", "))
		if err := st.Federation.WriteTable(env.stdout, "", nil); err != nil {
			return exitFailure
		}
		return exitOK
	})
}
