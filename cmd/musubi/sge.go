package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/agentapi"
)

// The Grid Engine commands: each parses its command line with jobqueue/sge,
// asks the node's agent over its socket, and prints what Grid Engine
// prints, with Grid Engine's exit codes.

func init() {
	shorts := map[string]string{
		"qsub": "submit a batch job (Grid Engine)", "qstat": "show jobs (Grid Engine)",
		"qdel": "delete jobs (Grid Engine)", "qhold": "hold jobs (Grid Engine)",
		"qrls": "release held jobs (Grid Engine)", "qalter": "change pending jobs (Grid Engine)",
		"qhost": "show execution hosts (Grid Engine)", "qacct": "show accounting of finished jobs (Grid Engine)",
	}
	runs := map[string]func(context.Context, *cliEnv, []string) int{
		"qsub": runQsub, "qstat": runQstat, "qdel": runQdel, "qhold": runQhold, "qrls": runQrls,
		"qalter": runQalter, "qhost": runQhost, "qacct": runQacct,
	}
	for _, name := range sge.Commands {
		register(&command{name: name, short: shorts[name], run: runs[name]})
	}
	register(&command{name: "install-cli", short: "install qsub, qstat, ... as symlinks to musubi", run: runInstallCLI})
}

// agentClient returns a client of this node's agent.
func agentClient(env *cliEnv) *agentapi.Client {
	return agentapi.NewClient(env.getenv(agentapi.EnvSocket))
}

// agentError prints an error of the agent call the way the commands
// report failures, with a hint when the agent is not running, and
// returns exit status 1.
func agentError(env *cliEnv, cmd string, err error) int {
	var se *sge.Error
	if errors.As(err, &se) {
		return sge.WriteError(env.stderr, se)
	}
	fmt.Fprintf(env.stderr, "error: %s\n", describe(err))
	return 1
}

// describe words an agent error for the user.
func describe(err error) string {
	if errors.Is(err, agentapi.ErrUnreachable) {
		return err.Error() + "\nThe musubi agent of this node is not running (or " + agentapi.EnvSocket +
			" points elsewhere).\nStart it with: musubi agent --zk HOST:PORT[,HOST:PORT...] (see 'musubi agent --help')"
	}
	return err.Error()
}

// submitterContext is the submit context of this process: user, groups,
// host, working directory and environment.
func submitterContext(env *cliEnv) (sge.Submitter, error) {
	u, err := user.Current()
	if err != nil {
		return sge.Submitter{}, fmt.Errorf("who am I: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	group := u.Gid
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		group = g.Name
	}
	host, err := os.Hostname()
	if err != nil {
		return sge.Submitter{}, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return sge.Submitter{}, fmt.Errorf("current directory: %w", err)
	}
	home := env.getenv("HOME")
	if home == "" {
		home = u.HomeDir
	}
	return sge.Submitter{
		User: u.Username, UID: uid, Group: group, GID: gid, Home: home, Host: host, Cwd: cwd,
		LogName: env.getenv("LOGNAME"), Mail: env.getenv("MAIL"), Env: os.Environ(),
	}, nil
}

// sgeRequestDefaults reads the sge_request files Grid Engine reads, lowest
// precedence first: $SGE_ROOT/$SGE_CELL/common/sge_request, ~/.sge_request
// and ./.sge_request. Lines starting with '#' are comments.
func sgeRequestDefaults(env *cliEnv, home, cwd string) []string {
	var files []string
	if root := env.getenv("SGE_ROOT"); root != "" {
		cell := env.getenv("SGE_CELL")
		if cell == "" {
			cell = "default"
		}
		files = append(files, filepath.Join(root, cell, "common", "sge_request"))
	}
	if home != "" {
		files = append(files, filepath.Join(home, ".sge_request"))
	}
	files = append(files, filepath.Join(cwd, ".sge_request"))
	var args []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			args = append(args, sge.SplitDirective(line)...)
		}
		fh.Close()
	}
	return args
}

func runQsub(ctx context.Context, env *cliEnv, args []string) int {
	sub, err := submitterContext(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "Unable to run job: %v\nExiting.\n", err)
		return 1
	}
	c := agentClient(env)
	defer c.Close()
	return sge.RunQsub(sge.QsubRun{
		Request: sge.QsubRequest{
			Args: args, DefaultArgs: sgeRequestDefaults(env, sub.Home, sub.Cwd), Submitter: sub,
			ReadFile:  os.ReadFile,
			ReadStdin: func() ([]byte, error) { return io.ReadAll(env.stdin) },
			Now:       time.Now(), Location: time.Local,
		},
		Submit: func(spec *sge.JobSpec) (int64, error) {
			ids, err := c.Submit(ctx, spec)
			if err != nil {
				var se *sge.Error
				if errors.As(err, &se) {
					return 0, se
				}
				return 0, errors.New(describe(err))
			}
			return ids[0], nil
		},
		Wait: func(id int64, _ *sge.JobSpec) ([]sge.SyncResult, error) {
			res, err := c.Wait(ctx, id)
			if err != nil {
				return res, errors.New(describe(err))
			}
			return res, nil
		},
		Stdout: env.stdout, Stderr: env.stderr,
	})
}

// currentUser is the caller's user name, as qstat's default -u.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

func runQstat(ctx context.Context, env *cliEnv, args []string) int {
	o, err := sge.ParseQstat(args, currentUser())
	if err != nil {
		return sge.WriteError(env.stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.stdout, "qstat")
		return 0
	}
	c := agentClient(env)
	defer c.Close()
	if o.JobInfo {
		return qstatJobs(ctx, env, c, o)
	}
	users := o.Users
	if len(users) == 0 {
		users = []string{"*"}
	}
	resp, err := c.Jobs(ctx, users)
	if err != nil {
		return agentError(env, "qstat", err)
	}
	now := time.Now()
	rows := sge.SortJobs(sge.FilterJobs(agentapi.Rows(resp.Jobs, now), o))
	v := sge.QstatView{Jobs: rows, Location: time.Local}
	if o.Full || strings.Contains(o.GroupBy, "c") {
		hr, err := c.Hosts(ctx, false)
		if err != nil {
			return agentError(env, "qstat", err)
		}
		if strings.Contains(o.GroupBy, "c") {
			return writeOut(env, sge.WriteClusterQueues(env.stdout, clusterQueues(hr.Hosts)))
		}
		v.Queues = agentapi.Queues(hr.Hosts, rows)
	}
	return writeOut(env, sge.WriteQstat(env.stdout, v, o))
}

// clusterQueues is qstat -g c's one line for all.q.
func clusterQueues(hosts []agentapi.Host) []sge.ClusterQueueView {
	q := sge.ClusterQueueView{Name: agentapi.ClusterQueue}
	cpus, load := 0, 0.0
	for _, h := range hosts {
		q.Used += h.SlotsUsed
		q.Total += h.Slots
		n := max(h.NCPU, 1)
		cpus += n
		load += float64(h.Load100) / 100
	}
	q.Available = q.Total - q.Used
	if cpus > 0 {
		q.Load, q.HasLoad = load/float64(cpus), true
	}
	return []sge.ClusterQueueView{q}
}

func qstatJobs(ctx context.Context, env *cliEnv, c *agentapi.Client, o sge.QstatOptions) int {
	resp, err := c.Details(ctx, o.Jobs)
	if err != nil {
		return agentError(env, "qstat", err)
	}
	if len(o.Jobs) == 0 {
		return writeOut(env, sge.WriteSchedulingInfo(env.stdout, []string{"There are no messages available"}))
	}
	details := make([]sge.JobDetail, 0, len(resp.Jobs))
	for _, j := range resp.Jobs {
		details = append(details, agentapi.Detail(j, resp.Successors[j.ID]))
	}
	code := 0
	if o.XML {
		code = writeOut(env, sge.WriteJobDetailsXML(env.stdout, details, nil))
	} else if len(details) > 0 {
		code = writeOut(env, sge.WriteJobDetails(env.stdout, details, time.Local))
	}
	if len(resp.Unknown) > 0 {
		return sge.WriteError(env.stderr, sge.QstatJobsNotFound(resp.Unknown))
	}
	return code
}

// writeOut turns a write error into exit status 1.
func writeOut(env *cliEnv, err error) int {
	if err != nil {
		fmt.Fprintf(env.stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

func runQdel(ctx context.Context, env *cliEnv, args []string) int {
	o, err := sge.ParseQdel(args)
	if err != nil {
		return sge.WriteError(env.stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.stdout, "qdel")
		return 0
	}
	c := agentClient(env)
	defer c.Close()
	res, err := c.Delete(ctx, agentapi.DeleteRequest{Jobs: o.Jobs, Users: o.Users, Force: o.Force})
	if err != nil {
		return agentError(env, "qdel", err)
	}
	code, err := sge.WriteDeleteResults(env.stdout, res)
	if err != nil {
		return 1
	}
	return code
}

func runQhold(ctx context.Context, env *cliEnv, args []string) int {
	return holdCommand(ctx, env, "qhold", args)
}

func runQrls(ctx context.Context, env *cliEnv, args []string) int {
	return holdCommand(ctx, env, "qrls", args)
}

func holdCommand(ctx context.Context, env *cliEnv, cmd string, args []string) int {
	o, err := sge.ParseQhold(cmd, args)
	if err != nil {
		return sge.WriteError(env.stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.stdout, cmd)
		return 0
	}
	c := agentClient(env)
	defer c.Close()
	out, err := c.Hold(ctx, agentapi.HoldRequest{Release: cmd == "qrls", Holds: o.Holds, Jobs: o.Jobs, Users: o.Users})
	if err != nil {
		return agentError(env, cmd, err)
	}
	return printOutput(env, out)
}

// printOutput prints the lines the agent computed.
func printOutput(env *cliEnv, out agentapi.Output) int {
	for _, l := range out.Stdout {
		fmt.Fprintln(env.stdout, l)
	}
	for _, l := range out.Stderr {
		fmt.Fprintln(env.stderr, l)
	}
	return out.Exit
}

func runQalter(ctx context.Context, env *cliEnv, args []string) int {
	sub, err := submitterContext(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "error: %v\n", err)
		return 1
	}
	req, err := sge.ParseQalter(args, sub)
	if err != nil {
		return sge.WriteError(env.stderr, err)
	}
	if req.Help {
		_ = sge.WriteHelp(env.stdout, "qalter")
		return 0
	}
	c := agentClient(env)
	defer c.Close()
	out, err := c.Alter(ctx, req)
	if err != nil {
		return agentError(env, "qalter", err)
	}
	return printOutput(env, out)
}

func runQhost(ctx context.Context, env *cliEnv, args []string) int {
	o, err := sge.ParseQhost(args)
	if err != nil {
		return sge.WriteError(env.stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.stdout, "qhost")
		return 0
	}
	c := agentClient(env)
	defer c.Close()
	resp, err := c.Hosts(ctx, o.Jobs)
	if err != nil {
		return agentError(env, "qhost", err)
	}
	hosts := resp.Hosts
	if len(o.Hosts) > 0 {
		var keep []agentapi.Host
		for _, h := range hosts {
			for _, want := range o.Hosts {
				if ok, _ := filepath.Match(want, h.Host); ok {
					keep = append(keep, h)
					break
				}
			}
		}
		hosts = keep
	}
	var rows []sge.JobView
	if o.Jobs {
		rows = agentapi.Rows(resp.Jobs, resp.Now)
		if len(o.Users) > 0 {
			rows = sge.FilterJobs(rows, sge.QstatOptions{Users: o.Users})
		}
		rows = sge.SortJobs(rows)
	}
	return writeOut(env, sge.WriteQhost(env.stdout, agentapi.HostViews(hosts, rows), o, time.Local))
}

func runQacct(ctx context.Context, env *cliEnv, args []string) int {
	o, err := sge.ParseQacct(args)
	if err != nil {
		return sge.WriteError(env.stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.stdout, "qacct")
		return 0
	}
	if o.Job == "" {
		fmt.Fprintln(env.stderr, "error: musubi's qacct answers 'qacct -j <job_id|job_name>' (job totals and summaries are not supported)")
		return 1
	}
	c := agentClient(env)
	defer c.Close()
	jobs, err := c.Accounting(ctx, o.Job)
	if err != nil && !errors.Is(err, agentapi.ErrNotFound) {
		return agentError(env, "qacct", err)
	}
	var recs []sge.AccountingRecord
	for _, j := range jobs {
		for _, r := range agentapi.AccountingRecords(j) {
			if o.Tasks != nil && !inRange(r.TaskID, *o.Tasks) {
				continue
			}
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return sge.WriteError(env.stderr, sge.QacctNotFound(o.Job))
	}
	return writeOut(env, sge.WriteAccounting(env.stdout, recs, time.Local))
}

func inRange(task int, r sge.TaskRange) bool {
	return task >= r.First && task <= r.Last && (task-r.First)%max(r.Step, 1) == 0
}

// runInstallCLI creates the Grid Engine commands as symlinks to this
// binary.
func runInstallCLI(_ context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "install-cli", "install-cli [--dir DIR] [--force]\n\nCreates qsub, qstat, qdel, qhold, qrls, qalter, qhost and qacct in DIR as\nsymlinks to this musubi binary.\n\nFlags:")
	dir := fs.String("dir", "/usr/local/bin", "directory for the symlinks")
	force := fs.Bool("force", false, "replace existing files of the same names")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return fail(env, "install-cli", err, "")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fail(env, "install-cli", err, "")
	}
	for _, name := range sge.Commands {
		p := filepath.Join(*dir, name)
		if target, err := os.Readlink(p); err == nil && target == self {
			fmt.Fprintf(env.stdout, "%s -> %s (already installed)\n", p, self)
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			if !*force {
				return fail(env, "install-cli", fmt.Errorf("%s exists", p), "Remove it, or run again with --force to replace it.")
			}
			if err := os.Remove(p); err != nil {
				return fail(env, "install-cli", err, "")
			}
		}
		if err := os.Symlink(self, p); err != nil {
			return fail(env, "install-cli", err, "")
		}
		fmt.Fprintf(env.stdout, "%s -> %s\n", p, self)
	}
	return exitOK
}
