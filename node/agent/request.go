package agent

import (
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/executor"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Account is a job user as the executing host knows it.
type Account struct {
	Home   string
	Groups []uint32
}

// Accounts looks up the job users on this host (home directory and
// supplementary groups). The job's uid and gid always come from the job
// record (the submitter, verified by the agent that took the submission).
type Accounts interface {
	Lookup(name string, uid uint32) (Account, bool)
}

// hostAccounts reads the host's user database (os/user), caching answers
// for a minute: a busy node starts many jobs of the same users.
type hostAccounts struct {
	mu    sync.Mutex
	cache map[string]cachedAccount
}

type cachedAccount struct {
	acct Account
	ok   bool
	at   time.Time
}

func newHostAccounts() *hostAccounts { return &hostAccounts{cache: map[string]cachedAccount{}} }

// Lookup returns the user's home and groups when the user exists here with
// the same uid.
func (h *hostAccounts) Lookup(name string, uid uint32) (Account, bool) {
	key := name + ":" + strconv.FormatUint(uint64(uid), 10)
	h.mu.Lock()
	c, hit := h.cache[key]
	h.mu.Unlock()
	if hit && time.Since(c.at) < time.Minute {
		return c.acct, c.ok
	}
	var a Account
	u, err := user.Lookup(name)
	ok := err == nil && u.Uid == strconv.FormatUint(uint64(uid), 10)
	if ok {
		a.Home = u.HomeDir
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					a.Groups = append(a.Groups, uint32(n))
				}
			}
		}
	}
	h.mu.Lock()
	h.cache[key] = cachedAccount{acct: a, ok: ok, at: time.Now()}
	h.mu.Unlock()
	return a, ok
}

// Grant is what a claim gave one job or task: the job's id, task, slots
// and PE hosts, and whether it ran before. Lease satisfies it.
type Grant interface {
	JobID() int64
	Task() int
	Spec() *sge.JobSpec
	Slots() int
	Hosts() []jobqueue.PEHost
	Restarted() bool
}

var _ Grant = (*jobqueue.Lease)(nil)

// BuildRequest maps a claimed job (or array task) to the runner's request:
// the submitter's identity from the job record (groups and home from this
// host's user database when the user exists here with the same uid), the
// submit context (SGE_O_*), output paths, -v/-V variables, -S shell, PE
// hosts and -l limits. host is this node's host name; spool the runner's
// spool directory.
func BuildRequest(g Grant, host, spool string, accts Accounts) executor.Request {
	s := g.Spec()
	sub := s.Submitter
	req := executor.Request{
		JobID:   g.JobID(),
		TaskID:  g.Task(),
		JobName: s.Name,
		Args:    s.Args,
		NoShell: s.NoShell,
		User:    sub.User,
		UID:     uint32(sub.UID),
		GID:     uint32(sub.GID),
		// Home stays "" when the user is unknown here: the runner then
		// fails the job with a host error.
		SubmitHost:    sub.Host,
		SubmitCwd:     sub.Cwd,
		SubmitHome:    sub.Home,
		SubmitPath:    sub.Path,
		SubmitShell:   sub.Shell,
		SubmitLogname: sub.LogName,
		SubmitMail:    sub.Mail,
		SubmitTZ:      sub.TZ,
		Workdir:       workdir(s),
		Stdout:        pathList(s.Stdout),
		Stderr:        pathList(s.Stderr),
		Join:          s.Join,
		Shell:         selectShell(s.Shell, host),
		Slots:         g.Slots(),
		Account:       s.Account,
		Restarted:     g.Restarted(),
		SpoolDir:      spool,
		Limits: executor.Limits{
			HRT:   s.Resources.HardRuntime,
			SRT:   s.Resources.SoftRuntime,
			HVmem: s.Resources.HardVmem,
			HCPU:  s.Resources.HardCPU,
		},
	}
	if a, ok := accts.Lookup(sub.User, uint32(sub.UID)); ok {
		req.Home = a.Home
		req.Groups = a.Groups
	}
	if len(req.Groups) == 0 {
		req.Groups = []uint32{uint32(sub.GID)}
	}
	if s.Binary {
		req.Binary = true
		req.Command = s.ScriptFile
	} else {
		req.Script = s.Script
	}
	if s.Array != nil {
		req.TaskFirst, req.TaskLast, req.TaskStep = s.Array.First, s.Array.Last, s.Array.Step
	}
	if len(s.Env) > 0 {
		req.Env = make(map[string]string, len(s.Env))
		for _, v := range s.Env {
			req.Env[v.Name] = v.Value // an unset -v NAME is seen empty
		}
	}
	if s.PE != nil {
		// A PE job's NSLOTS is its whole allocation, which spans several
		// nodes when it gathered slot shares (master first, as
		// PE_HOSTFILE lists them).
		req.PEName = s.PE.Name
		total := 0
		for _, h := range g.Hosts() {
			req.PEHosts = append(req.PEHosts, executor.PEHost{Host: h.Host, Slots: h.Slots})
			total += h.Slots
		}
		if total > 0 {
			req.Slots = total
		}
	}
	return req
}

// workdir is the job's working directory: -cwd/-wd (a relative -wd is
// taken from the submit directory), or "" for the home directory.
func workdir(s *sge.JobSpec) string {
	if s.Cwd == "" || filepath.IsAbs(s.Cwd) {
		return s.Cwd
	}
	return filepath.Join(s.Submitter.Cwd, s.Cwd)
}

// pathList renders a [host:]path list the way the runner takes it.
func pathList(ps []sge.PathSpec) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// selectShell picks the -S entry for this host: the one qualified with
// the host's name, else the first unqualified one ("" for the default).
func selectShell(ps []sge.PathSpec, host string) string {
	def := ""
	for _, p := range ps {
		switch {
		case p.Host != "" && strings.EqualFold(p.Host, host):
			return p.Path
		case p.Host == "" && def == "":
			def = p.Path
		}
	}
	return def
}

// resultOf maps the runner's accounting to the queue's: exit 99 asks for
// a rerun and exit 100 puts the job in error, as in Grid Engine.
func resultOf(r executor.Result, deleted bool) jobqueue.Result {
	out := jobqueue.Result{
		ExitStatus: r.ExitStatus, Signal: r.Signal, Failed: r.Failed, FailedReason: r.Err,
		Start: r.Start, End: r.End, WallClock: r.Wall, UserCPU: r.UserCPU, SystemCPU: r.SysCPU, MaxRSS: r.MaxRSS,
	}
	if deleted || r.Failed != 0 || r.Signal != "" {
		return out
	}
	switch r.ExitStatus {
	case 99:
		out.Reschedule = true
		out.Failed = sge.FailedRescheduled
		out.FailedReason = "job exited with exit code 99: rescheduled"
	case 100:
		out.Error = true
		out.Failed = sge.FailedAfterJob
		out.FailedReason = "exit_status of job start = 100"
	}
	return out
}
