package agentapi

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// This file turns the job queue's types into the view types of the Grid
// Engine formatters (jobqueue/sge). It is pure.

// ClusterQueue is the one cluster queue musubi shows: every executor is a
// queue instance all.q@<host>, as in the reference cell.
const ClusterQueue = "all.q"

// Arch is the architecture string of the hosts (Grid Engine's lx-amd64).
const Arch = "lx-amd64"

// QueueInstance is the queue instance name of a host ("all.q@node1").
func QueueInstance(host string) string { return ClusterQueue + "@" + host }

// Priority is the normalised priority of qstat's prior column. musubi has
// no urgency or ticket policy: a schedulable job gets 0.25 scaled by its
// -p (0.25 for the default 0, 0.5 for -p 1024, 0 for -p -1023), a held
// job 0, which is what the reference cell shows for such jobs.
func Priority(j *jobqueue.Job, now time.Time) float64 {
	if holdLetters(j, now) != "" || j.State == jobqueue.StateHeld {
		return 0
	}
	p := 0.25 * (1 + float64(j.Spec.Priority)/1024)
	return min(max(p, 0), 1)
}

// holdLetters are qstat -s's hold types of a job: u, o, s (holds), j
// (waiting for -hold_jid predecessors) and d (-a start time not reached).
func holdLetters(j *jobqueue.Job, now time.Time) string {
	h := j.Holds
	if len(j.Waiting) > 0 {
		h += "j"
	}
	if st := j.Spec.StartTime; !st.IsZero() && now.Before(st) {
		h += "d"
	}
	return h
}

// JobRows returns the qstat rows of a job: one for a job that is not an
// array job; for an array job one per running task, one for its pending
// tasks and one for its tasks in error.
func JobRows(j *jobqueue.Job, now time.Time) []sge.JobView {
	if j == nil || j.Spec == nil {
		return nil
	}
	base := sge.JobViewFromSpec(j.ID, j.Spec)
	base.Priority = Priority(j, now)
	base.Holds = holdLetters(j, now)
	base.Predecessors = slices.Clone(j.Waiting)
	base.Time = j.Submitted
	if !j.IsArray() {
		v := base
		v.State = displayState(j)
		if len(j.Running) > 0 && j.State.Active() {
			runRow(&v, j, j.Running[0])
		}
		return []sge.JobView{v}
	}
	var out []sge.JobView
	for _, r := range j.Running {
		for _, t := range r.Tasks {
			v := base
			v.State = "r"
			if j.State == jobqueue.StateDeleting {
				v.State = "dr"
			}
			runRow(&v, j, r)
			v.Tasks = strconv.Itoa(t)
			out = append(out, v)
		}
	}
	if len(j.Pending) > 0 && j.State != jobqueue.StateDeleting {
		v := base
		v.State = "qw"
		if s := j.DisplayState(); s == "hqw" || s == "Rq" {
			v.State = s
		}
		if j.Holds != "" {
			v.State = "hqw"
		}
		v.Tasks = sge.FormatTaskIDs(j.Pending)
		out = append(out, v)
	}
	if len(j.ErrorTasks) > 0 {
		v := base
		v.State = "Eqw"
		v.Tasks = sge.FormatTaskIDs(j.ErrorTasks)
		out = append(out, v)
	}
	return out
}

func displayState(j *jobqueue.Job) string {
	switch j.State {
	case jobqueue.StateHeld:
		return "hqw"
	case jobqueue.StateQueued:
		if j.Holds != "" {
			return "hqw"
		}
	}
	return j.DisplayState()
}

// runRow fills the columns of a running row.
func runRow(v *sge.JobView, j *jobqueue.Job, r jobqueue.Run) {
	v.Queue = QueueInstance(r.Host)
	if !r.Start.IsZero() {
		v.Time = r.Start
	}
	if r.Slots > 0 {
		v.Slots = r.Slots
	}
	if j.Spec.PE != nil {
		v.GrantedPE = j.Spec.PE.Name + " " + strconv.Itoa(v.Slots)
	}
	v.Master = "MASTER"
	v.Priority = max(v.Priority, 0.25)
}

// Rows returns the qstat rows of jobs, unsorted.
func Rows(jobs []*jobqueue.Job, now time.Time) []sge.JobView {
	var out []sge.JobView
	for _, j := range jobs {
		out = append(out, JobRows(j, now)...)
	}
	return out
}

// Queues returns the queue instances of qstat -f: one per host, with the
// running rows among rows that run there.
func Queues(hosts []Host, rows []sge.JobView) []sge.QueueView {
	out := make([]sge.QueueView, 0, len(hosts))
	for _, h := range hosts {
		q := sge.QueueView{
			Name: QueueInstance(h.Host), Type: "BIP", Used: h.SlotsUsed, Total: h.Slots,
			Load: float64(h.Load100) / 100, HasLoad: !h.Updated.IsZero(), Arch: archOf(h.HostInfo),
		}
		for _, r := range rows {
			if !r.Pending() && r.Queue == q.Name {
				q.Jobs = append(q.Jobs, r)
			}
		}
		out = append(out, q)
	}
	return out
}

func archOf(h jobqueue.HostInfo) string {
	if h.Arch != "" {
		return h.Arch
	}
	return Arch
}

// HostViews returns qhost's hosts; with rows, the running rows of each
// host go under it (qhost -j).
func HostViews(hosts []Host, rows []sge.JobView) []sge.HostView {
	out := make([]sge.HostView, 0, len(hosts))
	for _, h := range hosts {
		ncpu := h.NCPU
		if ncpu <= 0 {
			ncpu = h.Slots
		}
		hv := sge.HostView{
			Name: h.Host, Arch: archOf(h.HostInfo), NCPU: ncpu, Sockets: 1, Cores: ncpu, Threads: ncpu,
			Load: float64(h.Load100) / 100, MemTotal: h.MemTotal, MemUsed: h.MemUsed,
			SwapTotal: h.SwapTotal, SwapUsed: h.SwapUsed, HasLoad: !h.Updated.IsZero(),
			Queues: []sge.QueueView{{Name: ClusterQueue, Type: "BIP", Used: h.SlotsUsed, Total: h.Slots}},
		}
		for _, r := range rows {
			if !r.Pending() && r.Queue == QueueInstance(h.Host) {
				r.Queue = ClusterQueue
				hv.Jobs = append(hv.Jobs, r)
			}
		}
		out = append(out, hv)
	}
	return out
}

// Detail is qstat -j's view of a job.
func Detail(j *jobqueue.Job, successors []int64) sge.JobDetail {
	d := sge.JobDetail{ID: j.ID, SubmitTime: j.Submitted, Predecessors: slices.Clone(j.Waiting), Successors: slices.Clone(successors)}
	if j.Spec != nil {
		d.Spec = *j.Spec
	}
	for _, r := range j.Running {
		tasks := r.Tasks
		if len(tasks) == 0 {
			tasks = []int{1}
		}
		for _, t := range tasks {
			d.Usage = append(d.Usage, sge.TaskUsage{Task: t, Status: 128, StartTime: r.Start})
		}
	}
	reason := func(task int) sge.TaskError {
		stamp := j.ErrorTime.Local().Format("01/02/2006 15:04:05")
		return sge.TaskError{Task: task, Message: stamp + " [" + strconv.Itoa(j.Spec.Submitter.UID) + ":0]: " + j.ErrorReason}
	}
	if j.State == jobqueue.StateError {
		d.Errors = append(d.Errors, reason(1))
	}
	for _, t := range j.ErrorTasks {
		d.Errors = append(d.Errors, reason(t))
	}
	switch {
	case j.State == jobqueue.StateError || len(j.ErrorTasks) > 0:
		d.SchedulingInfo = []string{"Job is in error state"}
	case j.Holds != "" || j.State == jobqueue.StateHeld:
		d.SchedulingInfo = []string{"Job is in hold state"}
	case len(j.Waiting) > 0:
		d.SchedulingInfo = []string{"job dropped because of job dependencies"}
	}
	return d
}

// Successors maps every job id to the active jobs that wait for it.
func Successors(jobs []*jobqueue.Job) map[int64][]int64 {
	out := map[int64][]int64{}
	for _, j := range jobs {
		for _, p := range j.Waiting {
			out[p] = append(out[p], j.ID)
		}
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// AccountingRecords are qacct -j's records of a job.
func AccountingRecords(a AccountedJob) []sge.AccountingRecord {
	out := make([]sge.AccountingRecord, 0, len(a.Records))
	for _, r := range a.Records {
		rec := sge.AccountingRecord{
			QName: ClusterQueue, Hostname: r.Host, Group: r.Group, Owner: r.Owner, Project: r.Project,
			JobName: r.Name, JobNumber: r.JobID, TaskID: r.Task, Account: r.Account,
			SubmitTime: r.Submitted, StartTime: r.Start, EndTime: r.End, Slots: max(r.Slots, 1),
			Failed: r.Failed, ExitStatus: r.ExitStatus,
			Wallclock: r.WallClock.Seconds(), UTime: r.UserCPU.Seconds(), STime: r.SystemCPU.Seconds(),
			MaxRSS: float64(r.MaxRSS), CPU: (r.UserCPU + r.SystemCPU).Seconds(),
		}
		if r.Host == "" {
			rec.QName = ""
		}
		if r.PE != "" {
			rec.GrantedPE = r.PE
		}
		if a.Spec != nil {
			rec.Priority = a.Spec.Priority
			rec.Category = category(a.Spec)
		}
		out = append(out, rec)
	}
	return out
}

// category is the request category of qacct: the job's -l, -pe and -q
// requests as Grid Engine writes them ("-l h_rt=3 -pe smp 2").
func category(s *sge.JobSpec) string {
	var parts []string
	if len(s.Resources.Hard) > 0 {
		reqs := make([]string, len(s.Resources.Hard))
		for i, r := range s.Resources.Hard {
			reqs[i] = r.String()
		}
		parts = append(parts, "-l "+strings.Join(reqs, ","))
	}
	if len(s.Queues) > 0 {
		parts = append(parts, "-q "+strings.Join(s.Queues, ","))
	}
	if s.PE != nil {
		parts = append(parts, "-pe "+s.PE.Name+" "+s.PE.RangeString())
	}
	return strings.Join(parts, " ")
}
