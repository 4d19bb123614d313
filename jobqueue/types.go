package jobqueue

import (
	"slices"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Job is a snapshot of one job, active or finished, as qstat and qacct see
// it.
type Job struct {
	ID    int64
	Spec  *sge.JobSpec
	State State
	// Holds are the hold letters in effect (u, o, s).
	Holds string
	// Predecessors are the resolved -hold_jid job ids; Waiting the ones not
	// finished yet (a queued job with Waiting is shown as hqw).
	Predecessors []int64
	Waiting      []int64
	Submitted    time.Time
	// Restarts counts reruns; Rescheduled is set when the last run asked to
	// be rerun (exit 99: Grid Engine shows Rq).
	Restarts    int
	Rescheduled bool
	// Running are the job's current claims: at most one for a job that is
	// not an array job, one per claimed chunk of tasks for an array job.
	Running []Run
	// Pending are the array tasks not claimed yet (qw or hqw with the job);
	// ErrorTasks the array tasks in Eqw; DoneTasks counts finished tasks.
	Pending    []int
	ErrorTasks []int
	DoneTasks  int
	// ErrorReason says why the job is in Eqw, since ErrorTime.
	ErrorReason string
	ErrorTime   time.Time
	// DeletedBy is who requested the deletion (dr, deleted).
	DeletedBy string
	// Final is the accounting of the last run of a finished job (nil for an
	// array job: see Queue.Accounting), Finished when it finished.
	Final    *Accounting
	Finished time.Time
}

// Run is one claim of a job: where it runs and since when.
type Run struct {
	Claim    int
	Executor string
	Host     string
	Start    time.Time
	Slots    int
	// Tasks are the array tasks of the claim (nil for a job that is not an
	// array job).
	Tasks []int
	// Hosts is the PE allocation when the job spans several executors.
	Hosts []PEHost
	// Lost is set when the claim's executor session died and the claim
	// waits for recovery.
	Lost bool
}

// PEHost is one line of a PE_HOSTFILE: an executor's host and the slots
// the job got there.
type PEHost struct {
	Executor string `json:"exec"`
	Host     string `json:"host"`
	Slots    int    `json:"slots"`
}

// DisplayState is the state letters qstat prints for the job as a whole:
// "hqw" for a queued job waiting on predecessors, "Rq" for a rescheduled
// one, the state otherwise.
func (j *Job) DisplayState() string {
	switch {
	case j.State == StateQueued && len(j.Waiting) > 0:
		return "hqw"
	case j.State == StateQueued && j.Rescheduled:
		return "Rq"
	}
	return string(j.State)
}

// IsArray reports whether the job is an array job.
func (j *Job) IsArray() bool { return j.Spec != nil && j.Spec.Array != nil }

// Accounting is the record of one run of a job or array task (qacct).
type Accounting struct {
	JobID    int64  `json:"job"`
	Task     int    `json:"task,omitempty"` // 0 for a job that is not an array job
	Name     string `json:"name"`
	Owner    string `json:"owner"`
	Group    string `json:"group,omitempty"`
	UID      int    `json:"uid,omitempty"`
	GID      int    `json:"gid,omitempty"`
	Account  string `json:"account,omitempty"`
	Project  string `json:"project,omitempty"`
	Executor string `json:"exec,omitempty"`
	Host     string `json:"host,omitempty"`
	Slots    int    `json:"slots,omitempty"`
	PE       string `json:"pe,omitempty"`
	// Claim is the claim number of the run (1 for the first).
	Claim     int       `json:"claim,omitempty"`
	Submitted time.Time `json:"submitted"`
	Start     time.Time `json:"start,omitzero"`
	End       time.Time `json:"end,omitzero"`
	// ExitStatus is the job's exit status (128+signal when killed);
	// Signal the killing signal's name, if any.
	ExitStatus int    `json:"exit"`
	Signal     string `json:"signal,omitempty"`
	// Failed is Grid Engine's failed code (0: none), FailedReason its text.
	Failed       int           `json:"failed,omitempty"`
	FailedReason string        `json:"failed_reason,omitempty"`
	WallClock    time.Duration `json:"wallclock,omitempty"`
	UserCPU      time.Duration `json:"utime,omitempty"`
	SystemCPU    time.Duration `json:"stime,omitempty"`
	MaxRSS       int64         `json:"maxrss,omitempty"`
	// State is the final state this run gave the job or task (done,
	// failed, deleted), or qw/Eqw for a run that was rescheduled or put in
	// error.
	State State `json:"state"`
}

// Result is what an executor reports when a job or task it ran ends.
type Result struct {
	ExitStatus int
	Signal     string
	// Failed is Grid Engine's failed code (0: none; 37: limit enforced;
	// 100: killed by qdel...), FailedReason its text.
	Failed       int
	FailedReason string
	// Error puts the job (or task) in Eqw with FailedReason instead of
	// finishing it: it could not start because of its own settings, or it
	// exited 100.
	Error bool
	// Reschedule requeues the job to run again (exit 99, Grid Engine's Rq).
	Reschedule bool
	Start      time.Time
	End        time.Time
	WallClock  time.Duration
	UserCPU    time.Duration
	SystemCPU  time.Duration
	MaxRSS     int64
}

// HostInfo is an executor's entry in the host registry (qhost).
type HostInfo struct {
	Executor string `json:"exec"`
	Host     string `json:"host"`
	Arch     string `json:"arch,omitempty"`
	// Slots is the number of job slots; NCPU the processors.
	Slots int `json:"slots"`
	NCPU  int `json:"ncpu,omitempty"`
	// MemTotal, MemUsed, SwapTotal, SwapUsed are bytes.
	MemTotal  int64 `json:"mem_total,omitempty"`
	MemUsed   int64 `json:"mem_used,omitempty"`
	SwapTotal int64 `json:"swap_total,omitempty"`
	SwapUsed  int64 `json:"swap_used,omitempty"`
	// Load is the 1-minute load average, in hundredths.
	Load100 int `json:"load100,omitempty"`
	// Attributes are host complex values jobs may request with -l
	// (hostname and arch are implied).
	Attributes map[string]string `json:"attrs,omitempty"`
	// Session is the executor's coordination session (set by the queue).
	Session int64 `json:"session,omitempty"`
	// SlotsUsed is filled in by Queue.Hosts from the running claims.
	SlotsUsed int       `json:"-"`
	Updated   time.Time `json:"updated"`
}

func sortedIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
