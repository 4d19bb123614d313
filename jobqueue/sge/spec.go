package sge

import (
	"strconv"
	"strings"
	"time"
)

// JobSpec is a submitted job as Grid Engine's qsub describes it: everything
// the command line, the script's "#$" directives and the -@ option files
// asked for, with the script spooled in. It is what musubi stores for a job;
// it is JSON-serialisable and holds no host-local state beyond the
// submitter's context.
type JobSpec struct {
	// Name is the job name (-N, else the script's basename, "STDIN" for a
	// script read from standard input, the command's basename for -b y).
	Name string `json:"name"`
	// ScriptFile is the script path as given on the command line, "STDIN",
	// or the command of a binary job.
	ScriptFile string `json:"script_file"`
	// Script is the spooled job script (nil for binary jobs).
	Script []byte `json:"script,omitempty"`
	// Binary is -b y: ScriptFile is a command run with Args, not a script.
	Binary bool `json:"binary,omitempty"`
	// NoShell is -shell n: a binary job is exec'd without a wrapping shell.
	NoShell bool `json:"no_shell,omitempty"`
	// Args are the job's arguments, verbatim.
	Args []string `json:"args,omitempty"`
	// Shell is -S: the interpreter list ([host:]path).
	Shell []PathSpec `json:"shell,omitempty"`
	// Stdout, Stderr and Stdin are -o, -e and -i ([host:]path lists; the host
	// qualifier is kept but musubi ignores it).
	Stdout []PathSpec `json:"stdout,omitempty"`
	Stderr []PathSpec `json:"stderr,omitempty"`
	Stdin  []PathSpec `json:"stdin,omitempty"`
	// Join is -j y: stderr is merged into stdout.
	Join bool `json:"join,omitempty"`
	// Cwd is the job's working directory: the submit directory for -cwd,
	// the directory of -wd, "" for the submitter's home directory.
	Cwd string `json:"cwd,omitempty"`
	// Env holds the variables of -v and -V (and TERM, which Grid Engine
	// always passes), in order.
	Env []EnvVar `json:"env,omitempty"`
	// Array is -t; nil for a job that is not an array job.
	Array *TaskRange `json:"array,omitempty"`
	// TaskConcurrency is -tc (0: unlimited).
	TaskConcurrency int `json:"task_concurrency,omitempty"`
	// HoldJobs is -hold_jid: job ids, names or patterns the job waits for.
	HoldJobs []string `json:"hold_jobs,omitempty"`
	// HoldArrayJobs is -hold_jid_ad (task-wise array dependencies).
	HoldArrayJobs []string `json:"hold_array_jobs,omitempty"`
	// UserHold is -h: the job is submitted in user hold.
	UserHold bool `json:"user_hold,omitempty"`
	// Priority is -p, from -1023 to 1024.
	Priority int `json:"priority,omitempty"`
	// PE is -pe; nil without a parallel environment request.
	PE *PERequest `json:"pe,omitempty"`
	// Resources are the -l requests.
	Resources Resources `json:"resources,omitzero"`
	// Queues, SoftQueues and MasterQueues are -q (hard, soft) and -masterq.
	Queues       []string `json:"queues,omitempty"`
	SoftQueues   []string `json:"soft_queues,omitempty"`
	MasterQueues []string `json:"master_queues,omitempty"`
	// Sync is -sync y, Terse is -terse: how qsub reports; kept with the job
	// so a later client can honour them.
	Sync  bool `json:"sync,omitempty"`
	Terse bool `json:"terse,omitempty"`
	// Immediate is -now y.
	Immediate bool `json:"immediate,omitempty"`
	// Account is -A (Grid Engine's default is "sge").
	Account string `json:"account,omitempty"`
	// Project is -P.
	Project string `json:"project,omitempty"`
	// MailOptions is -m as Grid Engine's letters ("abe", "n"...), MailList
	// is -M ("user@host" entries; default: the submitter at the submit
	// host). musubi accepts both but sends no mail.
	MailOptions string   `json:"mail_options,omitempty"`
	MailList    []string `json:"mail_list,omitempty"`
	// Notify is -notify.
	Notify bool `json:"notify,omitempty"`
	// Rerun is -r: nil when not given (musubi then reruns, as the queue's
	// default), else the requested value.
	Rerun *bool `json:"rerun,omitempty"`
	// Reserve is -R y.
	Reserve bool `json:"reserve,omitempty"`
	// StartTime is -a: the job is not started before it.
	StartTime time.Time `json:"start_time,omitzero"`
	// Deadline is -dl.
	Deadline time.Time `json:"deadline,omitzero"`
	// Context is the job context of -ac, -sc and -dc, in order.
	Context []EnvVar `json:"context,omitempty"`
	// Checkpoint is -ckpt, CheckpointWhen is -c.
	Checkpoint     string `json:"checkpoint,omitempty"`
	CheckpointWhen string `json:"checkpoint_when,omitempty"`
	// JobShare is -js, OverrideTickets is -ot.
	JobShare        int `json:"job_share,omitempty"`
	OverrideTickets int `json:"override_tickets,omitempty"`
	// Binding is -binding, as given.
	Binding string `json:"binding,omitempty"`
	// Verify is -w (e, w, n, p or v; "" when not given).
	Verify string `json:"verify,omitempty"`
	// VerifyOnly is -verify: print the job, submit nothing.
	VerifyOnly bool `json:"verify_only,omitempty"`
	// Submitter is who submitted the job, from where.
	Submitter Submitter `json:"submitter"`
}

// Submitter is the context of a submission: who runs qsub, where, with
// which environment. The caller fills it in; ParseQsub completes Path,
// Shell, TZ and Home from Env when they are empty.
type Submitter struct {
	User  string `json:"user"`
	UID   int    `json:"uid"`
	Group string `json:"group"`
	GID   int    `json:"gid"`
	Home  string `json:"home"`
	// Host is the submit host (SGE_O_HOST).
	Host string `json:"host"`
	// Cwd is the directory qsub runs in (SGE_O_WORKDIR).
	Cwd string `json:"cwd"`
	// Path, Shell, LogName, Mail and TZ become SGE_O_PATH, SGE_O_SHELL,
	// SGE_O_LOGNAME, SGE_O_MAIL and SGE_O_TZ.
	Path    string `json:"path,omitempty"`
	Shell   string `json:"shell,omitempty"`
	LogName string `json:"logname,omitempty"`
	Mail    string `json:"mail,omitempty"`
	TZ      string `json:"tz,omitempty"`
	// Env is the submit environment as "NAME=value" strings (os.Environ()
	// order). It is read by -V and -v NAME; it is not stored with the job.
	Env []string `json:"-"`
}

// Getenv returns the value of name in the submit environment.
func (s Submitter) Getenv(name string) (string, bool) {
	for i := len(s.Env) - 1; i >= 0; i-- {
		k, v, ok := strings.Cut(s.Env[i], "=")
		if ok && k == name {
			return v, true
		}
	}
	return "", false
}

// EnvVar is one variable of a job's environment or context. Unset marks a
// variable named without a value that was not set at submission (-v NAME);
// the job sees it empty, qstat shows it as NONE.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	Unset bool   `json:"unset,omitempty"`
}

// PathSpec is one entry of a [host:]path list.
type PathSpec struct {
	Host string `json:"host,omitempty"`
	Path string `json:"path"`
}

// String returns the entry as given: "host:path" or "path".
func (p PathSpec) String() string {
	if p.Host != "" {
		return p.Host + ":" + p.Path
	}
	return p.Path
}

// TaskRange is an array job's task range (-t first-last:step).
type TaskRange struct {
	First int `json:"first"`
	Last  int `json:"last"`
	Step  int `json:"step"`
}

// String formats the range the way qsub and qstat print it: "1-10:2".
func (r TaskRange) String() string {
	return strconv.Itoa(r.First) + "-" + strconv.Itoa(r.Last) + ":" + strconv.Itoa(r.Step)
}

// Count is the number of tasks in the range.
func (r TaskRange) Count() int {
	if r.Step <= 0 || r.Last < r.First {
		return 0
	}
	return (r.Last-r.First)/r.Step + 1
}

// Tasks returns the task ids of the range, in order. Call it only for
// ranges Cluster.Validate accepted (at most MaxArrayTasks tasks).
func (r TaskRange) Tasks() []int {
	n := r.Count()
	out := make([]int, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, r.First+i*r.Step)
	}
	return out
}

// SlotRangeInfinity is the upper end of an open slot range ("-pe smp 2-"),
// Grid Engine's RANGE_INFINITY.
const SlotRangeInfinity = 9999999

// SlotRange is one range of a -pe slot request.
type SlotRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// PERequest is -pe name slot_range.
type PERequest struct {
	Name string `json:"name"`
	// Min and Max are the overall slot bounds (Max is SlotRangeInfinity for
	// an open range).
	Min int `json:"min"`
	Max int `json:"max"`
	// Ranges are all ranges of the request when it lists several ("2,4").
	Ranges []SlotRange `json:"ranges,omitempty"`
}

// RangeString prints the slot range the way qstat does ("2", "1-2", "2-").
func (p PERequest) RangeString() string {
	ranges := p.Ranges
	if len(ranges) == 0 {
		ranges = []SlotRange{{Min: p.Min, Max: p.Max}}
	}
	parts := make([]string, 0, len(ranges))
	for _, r := range ranges {
		switch {
		case r.Min == r.Max:
			parts = append(parts, strconv.Itoa(r.Min))
		case r.Max >= SlotRangeInfinity:
			parts = append(parts, strconv.Itoa(r.Min)+"-")
		default:
			parts = append(parts, strconv.Itoa(r.Min)+"-"+strconv.Itoa(r.Max))
		}
	}
	return strings.Join(parts, ",")
}

// Request is one "-l name=value" resource request, with the resource's full
// name (shortcuts resolved) and the value as Grid Engine shows it (time
// values in seconds, everything else as given; "" for a bare name).
type Request struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// String is "name=value", or "name" without a value.
func (r Request) String() string {
	if r.Value == "" {
		return r.Name
	}
	return r.Name + "=" + r.Value
}

// Resources are a job's -l requests. Hard and Soft hold every request in
// order (Grid Engine's hard and soft resource lists); the typed fields are
// the limits musubi enforces, filled in when the requests are valid.
type Resources struct {
	Hard []Request `json:"hard,omitempty"`
	Soft []Request `json:"soft,omitempty"`
	// HardRuntime (h_rt) and SoftRuntime (s_rt) are wall-clock limits;
	// HardCPU (h_cpu) a CPU time limit.
	HardRuntime time.Duration `json:"h_rt,omitempty"`
	SoftRuntime time.Duration `json:"s_rt,omitempty"`
	HardCPU     time.Duration `json:"h_cpu,omitempty"`
	// HardVmem (h_vmem) and SoftVmem (s_vmem) are address-space limits in
	// bytes; MemFree (mem_free) the free memory the job needs on its node.
	HardVmem int64 `json:"h_vmem,omitempty"`
	SoftVmem int64 `json:"s_vmem,omitempty"`
	MemFree  int64 `json:"mem_free,omitempty"`
}

// Get returns the value of the hard request for name (full name).
func (r Resources) Get(name string) (string, bool) {
	for i := len(r.Hard) - 1; i >= 0; i-- {
		if r.Hard[i].Name == name {
			return r.Hard[i].Value, true
		}
	}
	return "", false
}

// Others returns the hard requests musubi does not turn into typed limits,
// as a map from full name to value.
func (r Resources) Others() map[string]string {
	out := map[string]string{}
	for _, q := range r.Hard {
		switch q.Name {
		case "h_rt", "s_rt", "h_cpu", "h_vmem", "s_vmem", "mem_free":
			continue
		}
		out[q.Name] = q.Value
	}
	return out
}

// IsArray reports whether the job is an array job.
func (j *JobSpec) IsArray() bool { return j.Array != nil }

// Tasks returns the job's task range; a job that is not an array job has
// the single task 1-1:1, as in Grid Engine.
func (j *JobSpec) Tasks() TaskRange {
	if j.Array != nil {
		return *j.Array
	}
	return TaskRange{First: 1, Last: 1, Step: 1}
}

// Slots is the number of slots the job needs at least (the PE minimum, else 1).
func (j *JobSpec) Slots() int {
	if j.PE != nil && j.PE.Min > 0 {
		return j.PE.Min
	}
	return 1
}

// EnvValue returns the value the job sees for an environment variable of
// its -v/-V list.
func (j *JobSpec) EnvValue(name string) (string, bool) {
	for _, v := range j.Env {
		if v.Name == name {
			return v.Value, true
		}
	}
	return "", false
}
