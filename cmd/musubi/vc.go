package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
)

func init() {
	register(&command{name: "vc", short: "virtual clusters: reserve, list, show, cancel, release, nodes, jobs, ssh", run: runVC})
}

// vcSubs are the subcommands of `musubi vc`, in help order.
var vcSubs = []struct {
	name, short string
	run         func(ctx context.Context, env *cliEnv, args []string) int
}{
	{"reserve", "reserve a virtual cluster (admitted at once, or refused with the reason)", runVCReserve},
	{"list", "list the reservations and their phase", runVCList},
	{"show", "show one reservation: window, placement, progress per site", runVCShow},
	{"cancel", "cancel a reservation (its nodes are torn down)", runVCCancel},
	{"release", "end a reservation early", runVCRelease},
	{"nodes", "list a VC's nodes: host, site, address, state", runVCNodes},
	{"jobs", "list a VC's active jobs", runVCJobs},
	{"ssh", "log in to a VC's frontend node (or another node) with ssh", runVCSSH},
}

func runVC(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := env.stdout
		if len(args) == 0 {
			w = env.stderr
		}
		fmt.Fprint(w, "Usage: musubi vc <subcommand> [flags]\n\nSubcommands:\n")
		for _, s := range vcSubs {
			fmt.Fprintf(w, "  %-8s %s\n", s.name, s.short)
		}
		fmt.Fprint(w, "\nRun 'musubi vc <subcommand> --help' for its flags.\n")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, s := range vcSubs {
		if s.name == args[0] {
			return s.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "musubi vc: unknown subcommand %q (try 'musubi vc --help')\n", args[0])
	return exitUsage
}

// parseInterspersed parses flags that may follow positional arguments
// (musubi vc show NAME --output json), returning the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, stop bool, code int) {
	for {
		if stop, code := parseFlags(fs, args); stop {
			return nil, true, code
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, false, 0
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), false, 0
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// oneName parses flags and exactly one positional name.
func oneName(env *cliEnv, fs *flag.FlagSet, cmd string, args []string) (string, bool, int) {
	pos, stop, code := parseInterspersed(fs, args)
	if stop {
		return "", true, code
	}
	if len(pos) != 1 {
		return "", true, usageFail(env, cmd, "give exactly one VC name")
	}
	return pos[0], false, 0
}

// listFlag collects a repeatable or comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseWhen parses "now", "+2h" (from now), RFC 3339, or local
// "2006-01-02 15:04" / "2006-01-02T15:04".
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s == "now":
		return now, nil
	case strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: want +DURATION such as +2h", s)
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want now, +DURATION, RFC 3339 or \"YYYY-MM-DD HH:MM\" (local time)", s)
}

const vcReserveSynopsis = `vc reserve NAME --nodes N --memory SIZE [flags]

Reserves virtual cluster NAME: N nodes with the given memory, vCPUs and
disk each, for a window (from --start, for --duration or until --end). The
answer is immediate: admitted, with the placement, or refused with the
constraint that did not fit and the earliest window that would. With
--wait the command then follows provisioning until every node is ready.` + apiFlagsHelp + `

Flags:`

func runVCReserve(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc reserve"
	fs := newFlags(env, cmd, vcReserveSynopsis)
	o := addAPIFlags(fs, env)
	nodes := fs.Int("nodes", 1, "number of virtual nodes")
	memory := fs.String("memory", "1G", "memory per node (e.g. 4G, 512M)")
	vcpus := fs.Int64("vcpus", 1, "vCPUs per node")
	disk := fs.String("disk", "0", "disk per node (e.g. 20G; 0: no volume)")
	start := fs.String("start", "now", "window start: now, +DURATION, RFC 3339 or \"YYYY-MM-DD HH:MM\"")
	duration := fs.Duration("duration", 2*time.Hour, "window length (ignored with --end)")
	end := fs.String("end", "", "window end (instead of --duration)")
	image := fs.String("image", "", "application image of the nodes")
	var keyFiles, sites, eachSite listFlag
	fs.Var(&keyFiles, "ssh-key", "public key file for the VC's owner (repeatable; default ~/.ssh/id_*.pub if present)")
	fs.Var(&sites, "site", "restrict nodes to these sites (comma-separated or repeated)")
	fs.Var(&eachSite, "each-site", "sites that must get at least one node each")
	frontend := fs.Bool("frontend", true, "mark the first node as the VC's frontend (login node)")
	policy := fs.String("policy", "", "placement policy: round-robin (default), spread or pack")
	owner := fs.String("owner", "", "reserve on behalf of this principal (admins only)")
	wait := fs.Bool("wait", false, "wait until every node is ready, showing progress")
	waitTimeout := fs.Duration("wait-timeout", 15*time.Minute, "give up waiting after this long")
	poll := fs.Duration("poll", 500*time.Millisecond, "how often --wait asks for progress")
	name, stop, code := oneName(env, fs, cmd, args)
	if stop {
		return code
	}
	mem, err := config.ParseSize(*memory)
	if err != nil || mem < 1<<20 {
		return usageFail(env, cmd, "--memory %q: want a size of at least 1M, e.g. 4G", *memory)
	}
	dsk, err := config.ParseSize(*disk)
	if err != nil {
		return usageFail(env, cmd, "--disk: %v", err)
	}
	now := time.Now()
	st, err := parseWhen(*start, now)
	if err != nil {
		return usageFail(env, cmd, "--start %v", err)
	}
	en := st.Add(*duration)
	if *end != "" {
		if en, err = parseWhen(*end, now); err != nil {
			return usageFail(env, cmd, "--end %v", err)
		}
	}
	if !en.After(st) {
		return usageFail(env, cmd, "the window ends (%s) before it starts (%s)", fmtTime(en), fmtTime(st))
	}
	keys, err := readKeys(keyFiles, env.getenv("HOME"))
	if err != nil {
		return fail(env, cmd, err, "Give public key files with --ssh-key FILE (e.g. ~/.ssh/id_ed25519.pub).")
	}
	req := api.ReserveRequest{
		VC: name, Nodes: *nodes, MemoryMiB: mem >> 20, VCPUs: *vcpus, DiskBytes: dsk, Start: st.UTC(), End: en.UTC(),
		Image: *image, SSHKeys: keys, Sites: sites, EachSite: eachSite, Frontend: *frontend, Policy: *policy, Owner: *owner,
	}
	c, err := o.client()
	if err != nil {
		return fail(env, cmd, err, "")
	}
	defer c.Close()
	v, err := c.Reserve(ctx, req)
	if err != nil {
		return apiFail(env, cmd, o, err)
	}
	if !*wait {
		if o.json() {
			return writeJSON(env.stdout, v)
		}
		fmt.Fprintf(env.stdout, "Reserved %s: %d nodes at %s, VLAN %d, %s to %s.\n", v.VC, len(v.Placement.Nodes),
			strings.Join(v.Placement.Sites(), ", "), v.Placement.VLAN, fmtTime(v.Window.Start), fmtTime(v.Window.End))
		fmt.Fprintf(env.stdout, "Follow it with 'musubi vc show %s'.\n", v.VC)
		return exitOK
	}
	if !o.json() {
		fmt.Fprintf(env.stderr, "Reserved %s (%d nodes at %s); waiting for its nodes...\n", v.VC, len(v.Placement.Nodes), strings.Join(v.Placement.Sites(), ", "))
	}
	wctx, cancel := context.WithTimeout(ctx, *waitTimeout)
	defer cancel()
	final, err := waitReady(wctx, c, v.VC, *poll, newProgress(env.stderr, !o.json()))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fail(env, cmd, fmt.Errorf("%s is not ready after %v (phase %s, %d/%d nodes)", v.VC, *waitTimeout, final.Phase, final.NodesReady, final.NodesTotal),
				fmt.Sprintf("The reservation stands. Follow it with 'musubi vc show %s', or cancel it with 'musubi vc cancel %s'.", v.VC, v.VC))
		}
		var ae *api.Error
		if errors.As(err, &ae) {
			return apiFail(env, cmd, o, err)
		}
		return fail(env, cmd, err, "")
	}
	if o.json() {
		writeJSON(env.stdout, final)
	}
	switch final.Phase {
	case api.PhaseReady:
		if !o.json() {
			fmt.Fprintf(env.stdout, "%s is ready: log in with 'musubi vc ssh %s'.\n", v.VC, v.VC)
		}
		return exitOK
	case api.PhaseFailed:
		var msgs []string
		for _, p := range final.Progress {
			if p.Message != "" {
				msgs = append(msgs, p.Site+": "+p.Message)
			}
		}
		return fail(env, cmd, fmt.Errorf("provisioning %s failed: %s", v.VC, orDash(strings.Join(msgs, "; "))),
			fmt.Sprintf("See 'musubi vc show %s' and the peers' logs; cancel it with 'musubi vc cancel %s'.", v.VC, v.VC))
	}
	return fail(env, cmd, fmt.Errorf("%s is %s", v.VC, final.Phase), "")
}

// readKeys reads public key files (default: the caller's ~/.ssh/id_*.pub).
func readKeys(files []string, home string) ([]string, error) {
	if len(files) == 0 && home != "" {
		for _, n := range []string{"id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"} {
			p := home + "/.ssh/" + n
			if _, err := os.Stat(p); err == nil {
				files = append(files, p)
			}
		}
	}
	var keys []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				if err := api.ValidSSHKey(line); err != nil {
					return nil, fmt.Errorf("%s: %w", f, err)
				}
				keys = append(keys, line)
			}
		}
	}
	return keys, nil
}

// progress draws the --wait indicator: a bar redrawn in place on a
// terminal, one line per change otherwise.
type progress struct {
	w     io.Writer
	on    bool
	tty   bool
	start time.Time
	last  string
}

func newProgress(w io.Writer, on bool) *progress {
	return &progress{w: w, on: on, tty: isTerminal(w), start: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(v api.VC) {
	if !p.on {
		return
	}
	const width = 30
	filled := 0
	if v.NodesTotal > 0 {
		filled = width * v.NodesReady / v.NodesTotal
	}
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
	line := fmt.Sprintf("%s %d/%d nodes ready  %s", bar, v.NodesReady, v.NodesTotal, v.Phase)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s  %4ds", line, int(time.Since(p.start).Seconds()))
		return
	}
	if line != p.last {
		fmt.Fprintf(p.w, "%s (after %ds)\n", line, int(time.Since(p.start).Seconds()))
		p.last = line
	}
}

func (p *progress) done() {
	if p.on && p.tty {
		fmt.Fprintln(p.w)
	}
}

// waitReady polls the VC until it is ready, failed, cancelled or ended,
// or ctx ends; it returns the last view.
func waitReady(ctx context.Context, c *api.Client, vc string, every time.Duration, p *progress) (api.VC, error) {
	defer p.done()
	t := time.NewTicker(every)
	defer t.Stop()
	var last api.VC
	for {
		v, err := c.VC(ctx, vc)
		switch {
		case err == nil:
			last = v
			p.update(v)
			switch v.Phase {
			case api.PhaseReady, api.PhaseFailed, api.PhaseCancelled, api.PhaseEnded:
				return v, nil
			}
		case api.IsStatus(err, 503):
			// The peer lost its session for a moment: keep waiting.
		default:
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

const vcListSynopsis = `vc list [flags]

Lists the reservations you may see, with their phase: scheduled,
provisioning, ready, failed, ended or cancelled.` + apiFlagsHelp + `

Flags:`

func runVCList(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc list"
	fs := newFlags(env, cmd, vcListSynopsis)
	o := addAPIFlags(fs, env)
	all := fs.Bool("all", false, "include ended and cancelled reservations")
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
	vcs, err := c.VCs(ctx)
	if err != nil {
		return apiFail(env, cmd, o, err)
	}
	shown := vcs[:0:0]
	for _, v := range vcs {
		if *all || (v.Phase != api.PhaseEnded && v.Phase != api.PhaseCancelled) {
			shown = append(shown, v)
		}
	}
	if o.json() {
		return writeJSON(env.stdout, api.VCList{VCs: shown})
	}
	if len(shown) == 0 {
		fmt.Fprintln(env.stdout, "No reservations. Make one with 'musubi vc reserve NAME --nodes N --memory SIZE'.")
		return exitOK
	}
	w := table(env.stdout)
	fmt.Fprintln(w, "VC\tOWNER\tPHASE\tNODES\tMEMORY\tSITES\tSTART\tEND")
	for _, v := range shown {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", v.VC, orDash(v.Owner), v.Phase, v.NodesReady, v.NodesTotal,
			fmtMiB(v.Request.MemoryMiB), orDash(strings.Join(v.Placement.Sites(), ",")), fmtTime(v.Window.Start), fmtTime(v.Window.End))
	}
	if err := w.Flush(); err != nil {
		return exitFailure
	}
	return exitOK
}

func fmtMiB(m int64) string {
	if m%1024 == 0 && m > 0 {
		return strconv.FormatInt(m/1024, 10) + "G"
	}
	return strconv.FormatInt(m, 10) + "M"
}

const vcShowSynopsis = `vc show NAME [flags]

Shows one reservation: owner, window, request, placement, VLAN, and the
provisioning progress each site reports.` + apiFlagsHelp + `

Flags:`

func runVCShow(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc show"
	fs := newFlags(env, cmd, vcShowSynopsis)
	o := addAPIFlags(fs, env)
	name, stop, code := oneName(env, fs, cmd, args)
	if stop {
		return code
	}
	return callAPI(env, cmd, o, func(c *api.Client) (api.VC, error) { return c.VC(ctx, name) }, func(v api.VC) int {
		writeVC(env.stdout, v)
		return exitOK
	})
}

func writeVC(out io.Writer, v api.VC) {
	w := table(out)
	fmt.Fprintf(w, "VC:\t%s\n", v.VC)
	fmt.Fprintf(w, "Owner:\t%s\n", orDash(v.Owner))
	fmt.Fprintf(w, "State:\t%s (phase %s, %d/%d nodes ready)\n", v.State, v.Phase, v.NodesReady, v.NodesTotal)
	fmt.Fprintf(w, "Window:\t%s to %s\n", fmtTime(v.Window.Start), fmtTime(v.Window.End))
	fmt.Fprintf(w, "Nodes:\t%d x (%s memory, %d vCPUs, %s disk)\n", v.Request.Nodes, fmtMiB(v.Request.MemoryMiB), v.Request.VCPUs, fmtBytes(v.Request.DiskBytes))
	fmt.Fprintf(w, "Image:\t%s\n", orDash(v.Request.Image))
	fmt.Fprintf(w, "Policy:\t%s\n", orDash(string(v.Placement.Policy)))
	fmt.Fprintf(w, "VLAN:\t%d\n", v.Placement.VLAN)
	fmt.Fprintf(w, "Created:\t%s\n", fmtTime(v.Created))
	_ = w.Flush()
	fmt.Fprintln(out)
	w = table(out)
	fmt.Fprintln(w, "NODE\tHOST\tSITE\tSTORAGE\tROLE")
	for _, n := range v.Placement.Nodes {
		role := "compute"
		if n.Frontend {
			role = "frontend"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Host, n.Site, orDash(n.Storage), role)
	}
	_ = w.Flush()
	if len(v.Progress) > 0 {
		fmt.Fprintln(out)
		w = table(out)
		fmt.Fprintln(w, "SITE\tSTATE\tNODES READY\tMESSAGE")
		for _, p := range v.Progress {
			fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\n", p.Site, p.State, p.NodesReady, p.Nodes, orDash(p.Message))
		}
		_ = w.Flush()
	}
}

func fmtBytes(b int64) string {
	switch {
	case b == 0:
		return "no"
	case b%(1<<40) == 0:
		return strconv.FormatInt(b>>40, 10) + "T"
	case b%(1<<30) == 0:
		return strconv.FormatInt(b>>30, 10) + "G"
	case b%(1<<20) == 0:
		return strconv.FormatInt(b>>20, 10) + "M"
	}
	return strconv.FormatInt(b, 10) + "B"
}

const vcCancelSynopsis = `vc cancel NAME [flags]

Cancels a reservation: its resources are freed for its whole window at
once and every site tears its nodes down.` + apiFlagsHelp + `

Flags:`

func runVCCancel(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc cancel"
	fs := newFlags(env, cmd, vcCancelSynopsis)
	o := addAPIFlags(fs, env)
	name, stop, code := oneName(env, fs, cmd, args)
	if stop {
		return code
	}
	return callAPI(env, cmd, o, func(c *api.Client) (api.VC, error) { return c.Cancel(ctx, name) }, func(v api.VC) int {
		fmt.Fprintf(env.stdout, "Cancelled %s.\n", v.VC)
		return exitOK
	})
}

const vcReleaseSynopsis = `vc release NAME [--at TIME] [flags]

Ends a reservation early (now, or at --at): the rest of its window is
freed for others.` + apiFlagsHelp + `

Flags:`

func runVCRelease(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc release"
	fs := newFlags(env, cmd, vcReleaseSynopsis)
	o := addAPIFlags(fs, env)
	at := fs.String("at", "now", "when the reservation ends: now, +DURATION, RFC 3339 or \"YYYY-MM-DD HH:MM\"")
	name, stop, code := oneName(env, fs, cmd, args)
	if stop {
		return code
	}
	when, err := parseWhen(*at, time.Now())
	if err != nil {
		return usageFail(env, cmd, "--at %v", err)
	}
	return callAPI(env, cmd, o, func(c *api.Client) (api.VC, error) { return c.Release(ctx, name, when) }, func(v api.VC) int {
		fmt.Fprintf(env.stdout, "%s now ends %s (state %s).\n", v.VC, fmtTime(v.Window.End), v.State)
		return exitOK
	})
}

const vcNodesSynopsis = `vc nodes NAME [flags]

Lists a VC's nodes: where they are placed and, once provisioned, their
address and state.` + apiFlagsHelp + `

Flags:`

func runVCNodes(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc nodes"
	fs := newFlags(env, cmd, vcNodesSynopsis)
	o := addAPIFlags(fs, env)
	name, stop, code := oneName(env, fs, cmd, args)
	if stop {
		return code
	}
	return callAPI(env, cmd, o, func(c *api.Client) (api.Nodes, error) { return c.Nodes(ctx, name) }, func(ns api.Nodes) int {
		w := table(env.stdout)
		fmt.Fprintln(w, "NODE\tROLE\tHOST\tSITE\tADDRESS\tSTATE")
		for _, n := range ns.Nodes {
			role := "compute"
			if n.Frontend {
				role = "frontend"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, role, orDash(n.Host), orDash(n.Site), orDash(n.IP), n.State)
		}
		if err := w.Flush(); err != nil {
			return exitFailure
		}
		return exitOK
	})
}

const vcJobsSynopsis = `vc jobs NAME [flags]

Lists a VC's active jobs (queued, held, running), as qstat does inside
the VC.` + apiFlagsHelp + `

Flags:`

func runVCJobs(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc jobs"
	fs := newFlags(env, cmd, vcJobsSynopsis)
	o := addAPIFlags(fs, env)
	name, stop, code := oneName(env, fs, cmd, args)
	if stop {
		return code
	}
	return callAPI(env, cmd, o, func(c *api.Client) (api.Jobs, error) { return c.Jobs(ctx, name) }, func(js api.Jobs) int {
		if len(js.Jobs) == 0 {
			fmt.Fprintf(env.stdout, "No active jobs in %s.\n", js.VC)
			return exitOK
		}
		w := table(env.stdout)
		fmt.Fprintln(w, "JOB\tNAME\tOWNER\tSTATE\tSLOTS\tTASKS\tHOSTS\tSUBMITTED")
		for _, j := range js.Jobs {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.Name, j.Owner, j.State, j.Slots, orDash(j.Tasks), orDash(strings.Join(j.Hosts, ",")), fmtTime(j.Submitted))
		}
		if err := w.Flush(); err != nil {
			return exitFailure
		}
		return exitOK
	})
}

const vcSSHSynopsis = `vc ssh NAME [--node NODE] [--user USER] [-- COMMAND...]

Runs ssh to the VC's frontend node (or --node) at the address its record
gives, running COMMAND there if given. Set MUSUBI_SSH to use another ssh
program.` + apiFlagsHelp + `

Flags:`

func runVCSSH(ctx context.Context, env *cliEnv, args []string) int {
	const cmd = "vc ssh"
	fs := newFlags(env, cmd, vcSSHSynopsis)
	o := addAPIFlags(fs, env)
	nodeName := fs.String("node", "", "node to log in to (default: the frontend, else the first node)")
	user := fs.String("user", "", "remote user (default: ssh's)")
	printOnly := fs.Bool("print", false, "print the ssh command instead of running it")
	pos, stop, code := parseInterspersed(fs, args)
	if stop {
		return code
	}
	if len(pos) < 1 {
		return usageFail(env, cmd, "give the VC's name")
	}
	name, extra := pos[0], pos[1:]
	c, err := o.client()
	if err != nil {
		return fail(env, cmd, err, "")
	}
	defer c.Close()
	ns, err := c.Nodes(ctx, name)
	if err != nil {
		return apiFail(env, cmd, o, err)
	}
	var target *api.Node
	for i := range ns.Nodes {
		n := &ns.Nodes[i]
		if *nodeName != "" && n.Name == *nodeName || *nodeName == "" && n.Frontend {
			target = n
			break
		}
	}
	if target == nil && *nodeName == "" && len(ns.Nodes) > 0 {
		target = &ns.Nodes[0]
	}
	if target == nil {
		return fail(env, cmd, fmt.Errorf("%s has no node %q", name, *nodeName), fmt.Sprintf("List its nodes with 'musubi vc nodes %s'.", name))
	}
	if target.IP == "" {
		return fail(env, cmd, fmt.Errorf("node %s of %s has no address yet (state %s)", target.Name, name, target.State),
			fmt.Sprintf("Wait until it is provisioned: 'musubi vc show %s' shows the progress.", name))
	}
	dest := target.IP
	if *user != "" {
		dest = *user + "@" + dest
	}
	prog := env.getenv("MUSUBI_SSH")
	if prog == "" {
		prog = "ssh"
	}
	argv := append([]string{dest}, extra...)
	if *printOnly {
		fmt.Fprintln(env.stdout, prog+" "+strings.Join(argv, " "))
		return exitOK
	}
	sh := exec.CommandContext(ctx, prog, argv...)
	sh.Stdin, sh.Stdout, sh.Stderr = env.stdin, env.stdout, env.stderr
	if err := sh.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return fail(env, cmd, err, "Install an OpenSSH client (Debian package openssh-client) or set MUSUBI_SSH.")
	}
	return exitOK
}
