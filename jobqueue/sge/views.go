package sge

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// JobView is one row of qstat's job list (and of qhost -j): a job, or the
// group of its array tasks that share a state. It is independent of how
// jobs are stored; the job queue builds it.
type JobView struct {
	ID int64
	// Priority is the normalised priority of the prior column (0..1).
	Priority float64
	Name     string
	Owner    string
	// State is Grid Engine's state string: "qw", "hqw", "r", "t", "Eqw",
	// "s", "Rq", "dr", ...
	State string
	// Time is the submission time of a pending job, the start time of a
	// running one.
	Time time.Time
	// Queue is the queue instance of a running job ("all.q@vm").
	Queue string
	Slots int
	// Tasks is the ja-task-ID column: "" for a job that is not an array
	// job, else the task (range) of the row: "4", "2,3", "1-4:1".
	Tasks string
	// Master is "MASTER" or "SLAVE" for the rows of qhost -j.
	Master string

	// The remaining fields are shown by qstat -r.

	HardRequests []Request
	SoftRequests []Request
	// RequestedPE and GrantedPE are "name range" ("smp 2").
	RequestedPE string
	GrantedPE   string
	HardQueues  []string
	SoftQueues  []string
	// PredecessorsRequested are the -hold_jid entries as given,
	// Predecessors the job ids they resolved to.
	PredecessorsRequested []string
	Predecessors          []int64
	// Binding is the core binding ("NONE" when empty).
	Binding string

	// Holds lists the job's hold types for qstat -s: u (user), o
	// (operator), s (system), d (-a start time), j (-hold_jid), a
	// (-hold_jid_ad).
	Holds string

	// The remaining fields are shown by qstat -ext.

	// NTickets is the normalised ticket count (ntckts).
	NTickets float64
	// Project and Department ("" prints NA and defaultdepartment).
	Project, Department string
	// Usage is the usage of a running job (nil prints NA).
	Usage *JobUsage
	// Tickets, OverrideTickets, OTickets, FTickets and STickets are the
	// ticket columns tckts, ovrts, otckt, ftckt and stckt; Share is share.
	Tickets, OverrideTickets, OTickets, FTickets, STickets int
	Share                                                  float64
}

// JobUsage is the accumulated usage of a running job for qstat -ext.
type JobUsage struct {
	CPU time.Duration
	// Mem is in GB seconds, IO in GB.
	Mem, IO float64
}

// Pending reports whether the row is in qstat's pending section (its state
// is a waiting state: qw, hqw, Eqw, Rq, ...).
func (j JobView) Pending() bool { return strings.Contains(j.State, "q") }

// JobViewFromSpec fills the request fields of a JobView (those qstat -r
// shows) from a job's spec.
func JobViewFromSpec(id int64, spec *JobSpec) JobView {
	v := JobView{
		ID:                    id,
		Name:                  spec.Name,
		Owner:                 spec.Submitter.User,
		Slots:                 spec.Slots(),
		HardRequests:          spec.Resources.Hard,
		SoftRequests:          spec.Resources.Soft,
		HardQueues:            spec.Queues,
		SoftQueues:            spec.SoftQueues,
		PredecessorsRequested: spec.HoldJobs,
		Binding:               "NONE",
	}
	if spec.PE != nil {
		v.RequestedPE = spec.PE.Name + " " + spec.PE.RangeString()
	}
	if spec.Binding != "" {
		v.Binding = spec.Binding
	}
	return v
}

// SortJobs orders rows like qstat: running jobs first (by queue, then job
// id and task), then pending jobs by priority (highest first), submission
// time and job id.
func SortJobs(jobs []JobView) []JobView {
	out := append([]JobView(nil), jobs...)
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.Pending() != y.Pending() {
			return !x.Pending()
		}
		if !x.Pending() {
			if x.Queue != y.Queue {
				return x.Queue < y.Queue
			}
			if x.ID != y.ID {
				return x.ID < y.ID
			}
			return firstTask(x.Tasks) < firstTask(y.Tasks)
		}
		if x.Priority != y.Priority {
			return x.Priority > y.Priority
		}
		if !x.Time.Equal(y.Time) {
			return x.Time.Before(y.Time)
		}
		if x.ID != y.ID {
			return x.ID < y.ID
		}
		return firstTask(x.Tasks) < firstTask(y.Tasks)
	})
	return out
}

func firstTask(tasks string) int {
	ids := ExpandTasks(tasks)
	if len(ids) == 0 {
		return 0
	}
	return ids[0]
}

// maxExpandedTasks bounds ExpandTasks for absurd ranges.
const maxExpandedTasks = 1 << 17

// ExpandTasks lists the task ids of a ja-task-ID string ("4", "2,3",
// "1-7:2"), at most maxExpandedTasks of them.
func ExpandTasks(tasks string) []int {
	var out []int
	for _, part := range strings.Split(tasks, ",") {
		if part == "" {
			continue
		}
		r, undefined, msg := parseRange(part, true, false)
		if msg != "" || undefined {
			continue
		}
		for id := r[0]; id <= r[1] && len(out) < maxExpandedTasks; id += r[2] {
			out = append(out, int(id))
			if r[2] <= 0 || id > r[1]-r[2] {
				break
			}
		}
	}
	return out
}

// FormatTaskIDs prints task ids the way qstat groups them: consecutive
// runs with one step as "first-last:step", isolated ids alone, joined by
// commas ("1-4:1", "2,3", "4").
func FormatTaskIDs(ids []int) string {
	if len(ids) == 0 {
		return ""
	}
	sorted := append([]int(nil), ids...)
	sort.Ints(sorted)
	var parts []string
	for i := 0; i < len(sorted); {
		j := i + 1
		if j < len(sorted) && sorted[j] > sorted[i] {
			step := sorted[j] - sorted[i]
			for j+1 < len(sorted) && sorted[j+1]-sorted[j] == step {
				j++
			}
			if j-i+1 >= 3 {
				parts = append(parts, strconv.Itoa(sorted[i])+"-"+strconv.Itoa(sorted[j])+":"+strconv.Itoa(step))
				i = j + 1
				continue
			}
		}
		parts = append(parts, strconv.Itoa(sorted[i]))
		i++
	}
	return strings.Join(parts, ",")
}

// FilterJobs keeps the rows qstat shows for the -u and -s selections of o.
func FilterJobs(jobs []JobView, o QstatOptions) []JobView {
	var out []JobView
	for _, j := range jobs {
		if !userSelected(j.Owner, o.Users) {
			continue
		}
		if o.States != "" && !StateSelected(o.States, j) {
			continue
		}
		out = append(out, j)
	}
	return out
}

func userSelected(owner string, users []string) bool {
	if len(users) == 0 {
		return true
	}
	for _, u := range users {
		if u == "*" || u == owner {
			return true
		}
	}
	return false
}

// StateSelected reports whether a row matches a qstat -s selection: p
// (pending), r (running), s (suspended), z (zombie), hu/ho/hs/hd/hj/ha
// (holds), h (any hold) and a (prsh).
func StateSelected(filter string, j JobView) bool {
	held := strings.Contains(j.State, "h") || j.Holds != ""
	suspended := strings.ContainsAny(j.State, "sST")
	for i := 0; i < len(filter); i++ {
		c := filter[i]
		if c == 'h' && i+1 < len(filter) && strings.IndexByte("uosdja", filter[i+1]) >= 0 {
			i++
			if strings.IndexByte(j.Holds, filter[i]) >= 0 {
				return true
			}
			continue
		}
		switch c {
		case 'p':
			if j.Pending() {
				return true
			}
		case 'r':
			if !j.Pending() && !suspended && !strings.Contains(j.State, "z") {
				return true
			}
		case 's':
			if suspended {
				return true
			}
		case 'z':
			if strings.Contains(j.State, "z") {
				return true
			}
		case 'h':
			if held {
				return true
			}
		case 'a':
			if !strings.Contains(j.State, "z") {
				return true
			}
		}
	}
	return false
}

// QueueView is one queue instance of qstat -f and qhost -q.
type QueueView struct {
	// Name is the queue instance ("all.q@vm") for qstat -f, the cluster
	// queue ("all.q") for qhost -q.
	Name string
	// Type is the queue type letters ("BIP": batch, interactive, parallel).
	Type                  string
	Reserved, Used, Total int
	// Load is the host's load average; HasLoad false prints "-NA-".
	Load    float64
	HasLoad bool
	Arch    string
	// States are the queue's state letters ("d" disabled, "u" unknown...).
	States string
	// Jobs are the rows of the jobs running in the queue.
	Jobs []JobView
}

// HostView is one execution host of qhost.
type HostView struct {
	Name string
	Arch string
	// NCPU, Sockets, Cores and Threads describe the host's processors.
	NCPU, Sockets, Cores, Threads int
	// Load is the load average; MemTotal, MemUsed, SwapTotal and SwapUsed
	// are bytes. HasLoad false prints "-" for all load values (a host
	// that reports nothing).
	Load                                   float64
	MemTotal, MemUsed, SwapTotal, SwapUsed int64
	HasLoad                                bool
	Queues                                 []QueueView
	Jobs                                   []JobView
}

// TaskUsage is the usage of one running task, for qstat -j.
type TaskUsage struct {
	Task int
	CPU  time.Duration
	// Mem is in GB seconds, IO in GB; Vmem and MaxVmem in bytes (0: N/A).
	Mem, IO       float64
	Vmem, MaxVmem int64
	// Binding is the task's core binding ("NONE" when empty).
	Binding string
	// Status and NTix feed qstat -j -xml (JAT_status, JAT_ntix).
	Status    int
	NTix      float64
	StartTime time.Time
}

// TaskError is an "error reason" of qstat -j: the message of a task in
// error state, with its time stamp already in it.
type TaskError struct {
	Task    int
	Message string
}

// JobDetail is everything qstat -j shows about a job.
type JobDetail struct {
	ID         int64
	Spec       JobSpec
	SubmitTime time.Time
	// Predecessors are the job ids -hold_jid resolved to; Successors the
	// jobs that wait for this one.
	Predecessors []int64
	Successors   []int64
	// Usage holds one entry per running task.
	Usage []TaskUsage
	// Errors are the error reasons of tasks in error state.
	Errors []TaskError
	// SchedulingInfo are the scheduler's messages about the job, one per
	// line (nil: no "scheduling info" line).
	SchedulingInfo []string
	// NUrg is the normalised urgency (qstat -j -xml JB_nurg).
	NUrg float64
}

// AccountingRecord is one record of the accounting file: a finished job
// or array task, as qacct -j shows it.
type AccountingRecord struct {
	QName, Hostname, Group, Owner, Project, Department string
	JobName                                            string
	JobNumber                                          int64
	// TaskID is the array task (0: not an array job, printed "undefined").
	TaskID     int
	Account    string
	Priority   int
	SubmitTime time.Time
	// StartTime and EndTime are zero for a job that never ran ("-/-").
	StartTime, EndTime time.Time
	GrantedPE          string
	Slots              int
	// Failed is Grid Engine's failure code (0 none, 37 limit exceeded...).
	Failed int
	// ExitStatus is the job's exit status (128+signal when killed).
	ExitStatus int
	// Wallclock, UTime and STime are seconds.
	Wallclock, UTime, STime float64
	// MaxRSS and the other ru_* sizes are bytes.
	MaxRSS, IXRSS, ISMRSS, IDRSS, ISRSS float64
	MinFlt, MajFlt, NSwap, InBlock, OuBlock,
	MsgSnd, MsgRcv, NSignals, NVCSW, NIVCSW int64
	// CPU is seconds, Mem GB seconds, IO GB, IOW seconds, MaxVmem bytes.
	CPU, Mem, IO, IOW, MaxVmem float64
	// ARID is the advance reservation (0: undefined).
	ARID int
	// Category is the job's request category ("-l h_rt=3"; "" prints NONE).
	Category string
}
