package sge

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// JobIDString is the job id as qsub prints it: "17" for a job, and with
// the task range for an array job ("17.1-10:2").
func JobIDString(id int64, spec *JobSpec) string {
	s := strconv.FormatInt(id, 10)
	if spec != nil && spec.Array != nil {
		s += "." + spec.Array.String()
	}
	return s
}

// SubmittedMessage is qsub's line (without newline) for a submitted job:
// `Your job 7 ("name") has been submitted`, `Your job-array 8.1-10:1
// ("name") has been submitted`, or with -terse the bare id ("8.1-10:1").
func SubmittedMessage(id int64, spec *JobSpec) string {
	ids := JobIDString(id, spec)
	if spec.Terse {
		return ids
	}
	if spec.Array != nil {
		return fmt.Sprintf("Your job-array %s (\"%s\") has been submitted", ids, spec.Name)
	}
	return fmt.Sprintf("Your job %s (\"%s\") has been submitted", ids, spec.Name)
}

// WriteSubmitted writes qsub's stdout line for a submitted job.
func WriteSubmitted(w io.Writer, id int64, spec *JobSpec) error {
	_, err := io.WriteString(w, SubmittedMessage(id, spec)+"\n")
	return err
}

// VerifyMessage is what qsub -w v prints instead of submitting.
const VerifyMessage = "verification: found suitable queue(s)"

// NoSuitableQueues is qmaster's rejection of a -w e job no queue can run.
func NoSuitableQueues() error { return rejectErr("error: no suitable queues") }

// SyncResult is how one job or array task of a qsub -sync y job ended.
type SyncResult struct {
	// Task is the array task (0 for a job that is not an array job).
	Task int
	// NeverRan is a job deleted before it ran (e.g. deleted in Eqw).
	NeverRan bool
	// Signal is the name of the signal that killed the job ("SIGKILL"),
	// "" when it exited.
	Signal string
	// ExitCode is the exit status of a job that exited.
	ExitCode int
}

// SyncMessage is the stderr line (without newline) qsub -sync y prints
// when a job or task ends.
func SyncMessage(id int64, r SyncResult) string {
	ids := strconv.FormatInt(id, 10)
	if r.Task > 0 {
		ids += "." + strconv.Itoa(r.Task)
	}
	switch {
	case r.NeverRan:
		return "Unable to run job " + ids
	case r.Signal != "":
		return fmt.Sprintf("Job %s exited because of signal %s", ids, r.Signal)
	default:
		return fmt.Sprintf("Job %s exited with exit code %d.", ids, r.ExitCode)
	}
}

// SyncExitCode is qsub -sync y's exit status for the results in the order
// they were reported: the first non-zero status (1 for a killed task, 0
// for a job that never ran).
func SyncExitCode(results []SyncResult) int {
	for _, r := range results {
		code := 0
		switch {
		case r.NeverRan:
		case r.Signal != "":
			code = 1
		default:
			code = r.ExitCode
		}
		if code != 0 {
			return code
		}
	}
	return 0
}

// SignalName is Grid Engine's name of a signal number ("SIGKILL").
func SignalName(sig int) string {
	names := map[int]string{1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP",
		6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
		12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD",
		18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
		24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 30: "SIGPWR", 31: "SIGSYS"}
	if n, ok := names[sig]; ok {
		return n
	}
	return "unknown signal"
}

// DeleteOutcome is what qdel did to one job or set of tasks.
type DeleteOutcome int

// Outcomes of qdel.
const (
	// Deleted: a pending job (or tasks) removed at once.
	Deleted DeleteOutcome = iota + 1
	// Registered: a running job, killed asynchronously.
	Registered
	// AlreadyDeleting: the job is already being deleted.
	AlreadyDeleting
	// NotFound: no such job.
	NotFound
	// NotPermitted: the job belongs to another user.
	NotPermitted
)

// DeleteResult is one line of qdel's output.
type DeleteResult struct {
	Outcome DeleteOutcome
	// User is who deletes (the "root" of "root has deleted job 5").
	User string
	// Job is the job id; JobRef the identifier as given (for NotFound).
	Job    int64
	JobRef string
	// Tasks are the array tasks concerned (nil: the whole job).
	Tasks []int
}

// DeleteMessage is qdel's line (without newline) for a result.
func DeleteMessage(r DeleteResult) string {
	switch r.Outcome {
	case Deleted:
		switch len(r.Tasks) {
		case 0:
			return fmt.Sprintf("%s has deleted job %d", r.User, r.Job)
		case 1:
			return fmt.Sprintf("%s has deleted job-array task %d.%d", r.User, r.Job, r.Tasks[0])
		default:
			return fmt.Sprintf("%s has deleted job-array tasks %s of job %d", r.User, FormatTaskIDs(r.Tasks), r.Job)
		}
	case Registered:
		switch len(r.Tasks) {
		case 0:
			return fmt.Sprintf("%s has registered the job %d for deletion", r.User, r.Job)
		case 1:
			return fmt.Sprintf("%s has registered the job-array task %d.%d for deletion", r.User, r.Job, r.Tasks[0])
		default:
			return fmt.Sprintf("%s has registered the job-array tasks %s of job %d for deletion", r.User, FormatTaskIDs(r.Tasks), r.Job)
		}
	case AlreadyDeleting:
		return fmt.Sprintf("job %d is already in deletion", r.Job)
	case NotPermitted:
		return fmt.Sprintf("%s - you do not have the necessary privileges to delete the job \"%d\"", r.User, r.Job)
	default:
		ref := r.JobRef
		if ref == "" {
			ref = strconv.FormatInt(r.Job, 10)
		}
		return fmt.Sprintf("denied: job \"%s\" does not exist", ref)
	}
}

// WriteDeleteResults writes qdel's output and returns its exit status: 1
// when a job did not exist or could not be deleted, else 0.
func WriteDeleteResults(w io.Writer, results []DeleteResult) (int, error) {
	out := newWriter(w)
	code := 0
	for _, r := range results {
		out.line(DeleteMessage(r))
		if r.Outcome == NotFound || r.Outcome == NotPermitted {
			code = 1
		}
	}
	return code, out.flush()
}

// UnknownJobMessage is the answer of qhold, qrls and qalter for a job id
// that does not exist (exit status 1).
func UnknownJobMessage(ref string) string {
	return fmt.Sprintf("denied: job \"%s\" does not exist", ref)
}

// ModifiedMessage is the line qhold, qrls and qalter print for a changed
// attribute of a job: "modified hold of job 17120", "modified job name of
// job 17120". Tasks (if any) are the array tasks concerned.
func ModifiedMessage(what string, job int64, tasks []int) string {
	switch len(tasks) {
	case 0:
		return fmt.Sprintf("modified %s of job %d", what, job)
	case 1:
		return fmt.Sprintf("modified %s of job-array task %d.%d", what, job, tasks[0])
	default:
		return fmt.Sprintf("modified %s of job-array tasks %s of job %d", what, FormatTaskIDs(tasks), job)
	}
}

// HoldListMessage is qalter -hold_jid's answer: the job ids still blocking
// the job and those already finished ("NONE" when empty).
func HoldListMessage(job int64, blocking, exited []int64) string {
	list := func(ids []int64) string {
		if len(ids) == 0 {
			return "NONE"
		}
		return joinIDs(ids, ",")
	}
	return fmt.Sprintf("modified job id hold list of job %d\n   blocking jobs: %s\n   exited jobs:   %s",
		job, list(blocking), list(exited))
}

// QstatJobsNotFound is qstat -j's answer (exit status 1) for job
// identifiers that match no job.
func QstatJobsNotFound(refs []string) error {
	return plainErr(1, "Following jobs do not exist: \n"+strings.Join(refs, ", "))
}

// QacctNotFound is qacct -j's answer (exit status 1) for a job without
// accounting records.
func QacctNotFound(ref string) error {
	if isDigits(ref) {
		return plainErr(1, "error: job id "+ref+" not found")
	}
	return plainErr(1, "error: job name "+ref+" not found")
}
