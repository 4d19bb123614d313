// Package sgecli is the Grid Engine commands as a node runs them (qsub,
// qstat, qdel, qhold, qrls, qalter, qhost, qacct): each parses its command
// line with jobqueue/sge, asks the node's agent over its socket
// (node/agentapi), and prints what Grid Engine prints, with Grid Engine's
// exit codes.
//
// It is shared by `musubi qsub ...` and by the lean musubi-sge binary the
// qsub, qstat, ... symlinks point to, and must stay light: a qsub is a
// short-lived process, and every package linked into it costs start-up
// time (internal/archtest keeps the daemons' packages out of it).
package sgecli

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

// Env is a command's process environment: its standard streams and
// environment variables, so commands are testable.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Getenv         func(string) string
}

// OSEnv is the environment of this process.
func OSEnv() *Env {
	return &Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv}
}

// Command is one Grid Engine command.
type Command struct {
	Name  string
	Short string // one line for a command list
	Run   func(ctx context.Context, env *Env, args []string) int
}

// Commands are the Grid Engine commands, in sge.Commands order.
func Commands() []Command {
	shorts := map[string]string{
		"qsub": "submit a batch job (Grid Engine)", "qstat": "show jobs (Grid Engine)",
		"qdel": "delete jobs (Grid Engine)", "qhold": "hold jobs (Grid Engine)",
		"qrls": "release held jobs (Grid Engine)", "qalter": "change pending jobs (Grid Engine)",
		"qhost": "show execution hosts (Grid Engine)", "qacct": "show accounting of finished jobs (Grid Engine)",
	}
	runs := map[string]func(context.Context, *Env, []string) int{
		"qsub": runQsub, "qstat": runQstat, "qdel": runQdel, "qhold": runQhold, "qrls": runQrls,
		"qalter": runQalter, "qhost": runQhost, "qacct": runQacct,
	}
	out := make([]Command, 0, len(sge.Commands))
	for _, name := range sge.Commands {
		out = append(out, Command{Name: name, Short: shorts[name], Run: runs[name]})
	}
	return out
}

// Lookup returns the command called name.
func Lookup(name string) (Command, bool) {
	for _, c := range Commands() {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// agentClient returns a client of this node's agent.
func agentClient(env *Env) *agentapi.Client {
	return agentapi.NewClient(env.Getenv(agentapi.EnvSocket))
}

// agentError prints an error of the agent call the way the commands
// report failures, with a hint when the agent is not running, and
// returns exit status 1.
func agentError(env *Env, cmd string, err error) int {
	var se *sge.Error
	if errors.As(err, &se) {
		return sge.WriteError(env.Stderr, se)
	}
	fmt.Fprintf(env.Stderr, "error: %s\n", describe(err))
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
func submitterContext(env *Env) (sge.Submitter, error) {
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
	home := env.Getenv("HOME")
	if home == "" {
		home = u.HomeDir
	}
	return sge.Submitter{
		User: u.Username, UID: uid, Group: group, GID: gid, Home: home, Host: host, Cwd: cwd,
		LogName: env.Getenv("LOGNAME"), Mail: env.Getenv("MAIL"), Env: os.Environ(),
	}, nil
}

// sgeRequestDefaults reads the sge_request files Grid Engine reads, lowest
// precedence first: $SGE_ROOT/$SGE_CELL/common/sge_request, ~/.sge_request
// and ./.sge_request. Lines starting with '#' are comments.
func sgeRequestDefaults(env *Env, home, cwd string) []string {
	var files []string
	if root := env.Getenv("SGE_ROOT"); root != "" {
		cell := env.Getenv("SGE_CELL")
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

func runQsub(ctx context.Context, env *Env, args []string) int {
	sub, err := submitterContext(env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "Unable to run job: %v\nExiting.\n", err)
		return 1
	}
	c := agentClient(env)
	defer c.Close()
	return sge.RunQsub(sge.QsubRun{
		Request: sge.QsubRequest{
			Args: args, DefaultArgs: sgeRequestDefaults(env, sub.Home, sub.Cwd), Submitter: sub,
			ReadFile:  os.ReadFile,
			ReadStdin: func() ([]byte, error) { return io.ReadAll(env.Stdin) },
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
		Stdout: env.Stdout, Stderr: env.Stderr,
	})
}

// currentUser is the caller's user name, as qstat's default -u.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

func runQstat(ctx context.Context, env *Env, args []string) int {
	o, err := sge.ParseQstat(args, currentUser())
	if err != nil {
		return sge.WriteError(env.Stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.Stdout, "qstat")
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
			return writeOut(env, sge.WriteClusterQueues(env.Stdout, clusterQueues(hr.Hosts)))
		}
		v.Queues = agentapi.Queues(hr.Hosts, rows)
	}
	return writeOut(env, sge.WriteQstat(env.Stdout, v, o))
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

func qstatJobs(ctx context.Context, env *Env, c *agentapi.Client, o sge.QstatOptions) int {
	resp, err := c.Details(ctx, o.Jobs)
	if err != nil {
		return agentError(env, "qstat", err)
	}
	if len(o.Jobs) == 0 {
		return writeOut(env, sge.WriteSchedulingInfo(env.Stdout, []string{"There are no messages available"}))
	}
	details := make([]sge.JobDetail, 0, len(resp.Jobs))
	for _, j := range resp.Jobs {
		details = append(details, agentapi.Detail(j, resp.Successors[j.ID]))
	}
	code := 0
	if o.XML {
		code = writeOut(env, sge.WriteJobDetailsXML(env.Stdout, details, nil))
	} else if len(details) > 0 {
		code = writeOut(env, sge.WriteJobDetails(env.Stdout, details, time.Local))
	}
	if len(resp.Unknown) > 0 {
		return sge.WriteError(env.Stderr, sge.QstatJobsNotFound(resp.Unknown))
	}
	return code
}

// writeOut turns a write error into exit status 1.
func writeOut(env *Env, err error) int {
	if err != nil {
		fmt.Fprintf(env.Stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

func runQdel(ctx context.Context, env *Env, args []string) int {
	o, err := sge.ParseQdel(args)
	if err != nil {
		return sge.WriteError(env.Stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.Stdout, "qdel")
		return 0
	}
	c := agentClient(env)
	defer c.Close()
	res, err := c.Delete(ctx, agentapi.DeleteRequest{Jobs: o.Jobs, Users: o.Users, Force: o.Force})
	if err != nil {
		return agentError(env, "qdel", err)
	}
	code, err := sge.WriteDeleteResults(env.Stdout, res)
	if err != nil {
		return 1
	}
	return code
}

func runQhold(ctx context.Context, env *Env, args []string) int {
	return holdCommand(ctx, env, "qhold", args)
}

func runQrls(ctx context.Context, env *Env, args []string) int {
	return holdCommand(ctx, env, "qrls", args)
}

func holdCommand(ctx context.Context, env *Env, cmd string, args []string) int {
	o, err := sge.ParseQhold(cmd, args)
	if err != nil {
		return sge.WriteError(env.Stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.Stdout, cmd)
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
func printOutput(env *Env, out agentapi.Output) int {
	for _, l := range out.Stdout {
		fmt.Fprintln(env.Stdout, l)
	}
	for _, l := range out.Stderr {
		fmt.Fprintln(env.Stderr, l)
	}
	return out.Exit
}

func runQalter(ctx context.Context, env *Env, args []string) int {
	sub, err := submitterContext(env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "error: %v\n", err)
		return 1
	}
	req, err := sge.ParseQalter(args, sub)
	if err != nil {
		return sge.WriteError(env.Stderr, err)
	}
	if req.Help {
		_ = sge.WriteHelp(env.Stdout, "qalter")
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

func runQhost(ctx context.Context, env *Env, args []string) int {
	o, err := sge.ParseQhost(args)
	if err != nil {
		return sge.WriteError(env.Stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.Stdout, "qhost")
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
	return writeOut(env, sge.WriteQhost(env.Stdout, agentapi.HostViews(hosts, rows), o, time.Local))
}

func runQacct(ctx context.Context, env *Env, args []string) int {
	o, err := sge.ParseQacct(args)
	if err != nil {
		return sge.WriteError(env.Stderr, err)
	}
	if o.Help {
		_ = sge.WriteHelp(env.Stdout, "qacct")
		return 0
	}
	if o.Job == "" {
		fmt.Fprintln(env.Stderr, "error: musubi's qacct answers 'qacct -j <job_id|job_name>' (job totals and summaries are not supported)")
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
		return sge.WriteError(env.Stderr, sge.QacctNotFound(o.Job))
	}
	return writeOut(env, sge.WriteAccounting(env.Stdout, recs, time.Local))
}

func inRange(task int, r sge.TaskRange) bool {
	return task >= r.First && task <= r.Last && (task-r.First)%max(r.Step, 1) == 0
}
