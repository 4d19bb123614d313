package sge

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const (
	qstatHeader = "job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID "
	queueHeader = "queuename                      qtype resv/used/tot. load_avg arch          states"
	pendingBar  = "############################################################################"
	pendingHead = " - PENDING JOBS - PENDING JOBS - PENDING JOBS - PENDING JOBS - PENDING JOBS"
	xmlHeader   = "<?xml version='1.0'?>"
	qstatXMLNS  = `xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd"`
)

// QstatView is what qstat lists: job rows (in display order, see SortJobs
// and FilterJobs) and, for qstat -f, the queue instances with their running
// jobs.
type QstatView struct {
	Jobs []JobView
	// Queues are the queue instances of qstat -f; their Jobs are the
	// running rows (Jobs' pending rows form the pending section).
	Queues []QueueView
	// Location is the time zone of the times printed (nil: time.Local).
	Location *time.Location
}

// WriteQstat writes qstat's job listing in the form the options select:
// the default table, -f (queues and pending section), -r (requested
// resources), -g d (one row per pending array task) and -xml. A default
// listing without jobs prints nothing, like Grid Engine.
func WriteQstat(w io.Writer, v QstatView, o QstatOptions) error {
	out := newWriter(w)
	jobs := v.Jobs
	if strings.Contains(o.GroupBy, "d") {
		jobs = expandPendingTasks(jobs)
	}
	switch {
	case o.XML:
		writeQstatXML(out, v, jobs, o)
	case o.Full:
		writeQstatFull(out, v, jobs, o)
	default:
		header, row := qstatHeader, jobRow
		if o.Ext {
			header, row = qstatExtHeader, extJobRow
		}
		if len(jobs) > 0 {
			out.line(header)
			out.line(strings.Repeat("-", len(header)-1))
			for _, j := range jobs {
				out.line(row(j, v.Location, true))
				if o.ShowRequests {
					writeRequests(out, j)
				}
			}
		}
	}
	return out.flush()
}

// expandPendingTasks turns every pending array row into one row per task
// (qstat -g d).
func expandPendingTasks(jobs []JobView) []JobView {
	var out []JobView
	for _, j := range jobs {
		if !j.Pending() || j.Tasks == "" {
			out = append(out, j)
			continue
		}
		for _, id := range ExpandTasks(j.Tasks) {
			t := j
			t.Tasks = strconv.Itoa(id)
			out = append(out, t)
		}
	}
	return out
}

// jobRow formats one job row: with the queue column for the job table,
// without it under a queue of qstat -f.
func jobRow(j JobView, loc *time.Location, withQueue bool) string {
	var b strings.Builder
	b.WriteString(right(strconv.FormatInt(j.ID, 10), 7))
	b.WriteString(" ")
	b.WriteString(fmt.Sprintf("%7.5f", j.Priority))
	b.WriteString(" ")
	b.WriteString(fixed(j.Name, 10))
	b.WriteString(" ")
	b.WriteString(fixed(j.Owner, 12))
	b.WriteString(" ")
	b.WriteString(left(j.State, 5))
	b.WriteString(" ")
	b.WriteString(in(j.Time, loc).Format(tableTime))
	b.WriteString(" ")
	if withQueue {
		b.WriteString(left(j.Queue, 30))
		b.WriteString(" ")
	}
	b.WriteString(right(strconv.Itoa(j.Slots), 5))
	b.WriteString(" ")
	if j.Tasks == "" {
		b.WriteString("       ")
	} else {
		b.WriteString(j.Tasks)
	}
	return b.String()
}

const qstatExtHeader = "job-ID  prior   ntckts  name       user         project          department state cpu        mem     io      tckts ovrts otckt ftckt stckt share queue                          slots ja-task-ID "

// extJobRow formats one row of qstat -ext.
func extJobRow(j JobView, _ *time.Location, _ bool) string {
	project, dept := j.Project, j.Department
	if project == "" {
		project = "NA"
	}
	if dept == "" {
		dept = "defaultdepartment"
	}
	usage := strings.Repeat(" ", 26)
	if !j.Pending() {
		usage = left("NA", 10) + " " + left("NA", 7) + " " + left("NA", 7)
		if u := j.Usage; u != nil {
			secs := int64(u.CPU / time.Second)
			cpu := fmt.Sprintf("%d:%02d:%02d:%02d", secs/86400, secs/3600%24, secs/60%60, secs%60)
			usage = left(cpu, 10) + " " + fmt.Sprintf("%7.5f %7.5f", u.Mem, u.IO)
		}
	}
	tasks := "       "
	if j.Tasks != "" {
		tasks = j.Tasks
	}
	return right(strconv.FormatInt(j.ID, 10), 7) + " " + fmt.Sprintf("%7.5f %7.5f", j.Priority, j.NTickets) + " " +
		fixed(j.Name, 10) + " " + fixed(j.Owner, 12) + " " + fixed(project, 16) + " " + fixed(dept, 10) + " " +
		left(j.State, 5) + " " + usage + " " +
		fmt.Sprintf("%5d %5d %5d %5d %5d %-5.2f", j.Tickets, j.OverrideTickets, j.OTickets, j.FTickets, j.STickets, j.Share) +
		" " + left(j.Queue, 30) + " " + right(strconv.Itoa(j.Slots), 5) + " " + tasks
}

// writeRequests writes the lines qstat -r adds under a job row.
func writeRequests(out *writer, j JobView) {
	const indent = "                         "
	out.line("       Full jobname:     " + j.Name)
	if !j.Pending() && j.Queue != "" {
		out.line("       Master Queue:     " + j.Queue)
	}
	if j.RequestedPE != "" {
		out.line("       Requested PE:     " + j.RequestedPE)
	}
	if j.GrantedPE != "" && !j.Pending() {
		out.line("       Granted PE:       " + j.GrantedPE)
	}
	requests := func(label string, reqs []Request) {
		parts := make([]string, len(reqs))
		for i, r := range reqs {
			parts[i] = r.String() + " (0.000000)"
		}
		out.line(label + strings.Join(parts, "\n"+indent))
	}
	requests("       Hard Resources:   ", j.HardRequests)
	requests("       Soft Resources:   ", j.SoftRequests)
	if len(j.HardQueues) > 0 {
		out.line("       Hard requested queues: " + strings.Join(j.HardQueues, ", "))
	}
	if len(j.SoftQueues) > 0 {
		out.line("       Soft requested queues: " + strings.Join(j.SoftQueues, ", "))
	}
	if len(j.PredecessorsRequested) > 0 {
		out.line("       Predecessor Jobs (request): " + strings.Join(j.PredecessorsRequested, ", "))
	}
	if len(j.Predecessors) > 0 {
		out.line("       Predecessor Jobs: " + joinIDs(j.Predecessors, ", "))
	}
	out.line("       Binding:          " + bindingOrNone(j.Binding))
}

func bindingOrNone(b string) string {
	if b == "" {
		return "NONE"
	}
	return b
}

func joinIDs(ids []int64, sep string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, sep)
}

func queueLine(q QueueView) string {
	load := "-NA-"
	if q.HasLoad {
		load = fmt.Sprintf("%.2f", q.Load)
	}
	return left(q.Name, 30) + " " + left(q.Type, 5) + " " +
		left(fmt.Sprintf("%d/%d/%d", q.Reserved, q.Used, q.Total), 14) + " " +
		left(load, 8) + " " + left(q.Arch, 13) + " " + q.States
}

// writeQstatFull writes qstat -f: every queue instance with its running
// jobs, then the pending jobs.
func writeQstatFull(out *writer, v QstatView, jobs []JobView, o QstatOptions) {
	out.line(queueHeader)
	for _, q := range v.Queues {
		out.line(strings.Repeat("-", len(queueHeader)))
		out.line(queueLine(q))
		for _, j := range q.Jobs {
			out.line(jobRow(j, v.Location, false))
			if o.ShowRequests {
				writeRequests(out, j)
			}
		}
	}
	var pending []JobView
	for _, j := range jobs {
		if j.Pending() {
			pending = append(pending, j)
		}
	}
	if len(pending) == 0 {
		return
	}
	out.line("")
	out.line(pendingBar)
	out.line(pendingHead)
	out.line(pendingBar)
	for _, j := range pending {
		out.line(jobRow(j, v.Location, false))
		if o.ShowRequests {
			writeRequests(out, j)
		}
	}
}

// writeQstatXML writes qstat -xml (and -f -xml, -r -xml).
func writeQstatXML(out *writer, v QstatView, jobs []JobView, o QstatOptions) {
	out.line(xmlHeader)
	out.line("<job_info  " + qstatXMLNS + ">")
	out.line("  <queue_info>")
	if o.Full {
		for _, q := range v.Queues {
			out.line("    <Queue-List>")
			out.line("      <name>" + xmlEscape(q.Name) + "</name>")
			out.line("      <qtype>" + xmlEscape(q.Type) + "</qtype>")
			out.printf("      <slots_used>%d</slots_used>\n", q.Used)
			out.printf("      <slots_resv>%d</slots_resv>\n", q.Reserved)
			out.printf("      <slots_total>%d</slots_total>\n", q.Total)
			if q.HasLoad {
				out.printf("      <load_avg>%.5f</load_avg>\n", q.Load)
			}
			out.line("      <arch>" + xmlEscape(q.Arch) + "</arch>")
			if q.States != "" {
				out.line("      <state>" + xmlEscape(q.States) + "</state>")
			}
			for _, j := range q.Jobs {
				writeJobXML(out, "      ", j, v.Location, false, o.ShowRequests)
			}
			out.line("    </Queue-List>")
		}
	} else {
		for _, j := range jobs {
			if !j.Pending() {
				writeJobXML(out, "    ", j, v.Location, true, o.ShowRequests)
			}
		}
	}
	out.line("  </queue_info>")
	out.line("  <job_info>")
	for _, j := range jobs {
		if j.Pending() {
			writeJobXML(out, "    ", j, v.Location, !o.Full, o.ShowRequests)
		}
	}
	out.line("  </job_info>")
	out.line("</job_info>")
}

func writeJobXML(out *writer, ind string, j JobView, loc *time.Location, queueName, requests bool) {
	state := "running"
	if j.Pending() {
		state = "pending"
	}
	in2 := ind + "  "
	out.line(ind + `<job_list state="` + state + `">`)
	out.printf("%s<JB_job_number>%d</JB_job_number>\n", in2, j.ID)
	out.printf("%s<JAT_prio>%.5f</JAT_prio>\n", in2, j.Priority)
	out.line(in2 + "<JB_name>" + xmlEscape(j.Name) + "</JB_name>")
	out.line(in2 + "<JB_owner>" + xmlEscape(j.Owner) + "</JB_owner>")
	out.line(in2 + "<state>" + xmlEscape(j.State) + "</state>")
	if j.Pending() {
		out.line(in2 + "<JB_submission_time>" + in(j.Time, loc).Format(xmlTime) + "</JB_submission_time>")
	} else {
		out.line(in2 + "<JAT_start_time>" + in(j.Time, loc).Format(xmlTime) + "</JAT_start_time>")
	}
	if queueName {
		out.line(in2 + "<queue_name>" + xmlEscape(j.Queue) + "</queue_name>")
	}
	out.printf("%s<slots>%d</slots>\n", in2, j.Slots)
	if j.Tasks != "" {
		out.line(in2 + "<tasks>" + xmlEscape(j.Tasks) + "</tasks>")
	}
	if requests {
		out.line(in2 + "<full_job_name>" + xmlEscape(j.Name) + "</full_job_name>")
		if pe, rng, ok := strings.Cut(j.RequestedPE, " "); ok {
			out.line(in2 + `<requested_pe name="` + xmlEscape(pe) + `">` + xmlEscape(rng) + "</requested_pe>")
		}
		if pe, rng, ok := strings.Cut(j.GrantedPE, " "); ok && !j.Pending() {
			out.line(in2 + `<granted_pe name="` + xmlEscape(pe) + `">` + xmlEscape(rng) + "</granted_pe>")
		}
		for _, r := range j.HardRequests {
			out.line(in2 + `<hard_request name="` + xmlEscape(r.Name) + `" resource_contribution="0.000000">` + xmlEscape(r.Value) + "</hard_request>")
		}
		for _, r := range j.SoftRequests {
			out.line(in2 + `<soft_request name="` + xmlEscape(r.Name) + `">` + xmlEscape(r.Value) + "</soft_request>")
		}
		for _, q := range j.HardQueues {
			out.line(in2 + "<hard_req_queue>" + xmlEscape(q) + "</hard_req_queue>")
		}
		for _, q := range j.SoftQueues {
			out.line(in2 + "<soft_req_queue>" + xmlEscape(q) + "</soft_req_queue>")
		}
		for _, p := range j.PredecessorsRequested {
			out.line(in2 + "<predecessor_jobs_req>" + xmlEscape(p) + "</predecessor_jobs_req>")
		}
		for _, p := range j.Predecessors {
			out.printf("%s<predecessor_jobs>%d</predecessor_jobs>\n", in2, p)
		}
		out.line(in2 + "<binding>" + xmlEscape(bindingOrNone(j.Binding)) + "</binding>")
	}
	out.line(ind + "</job_list>")
}

const clusterQueueHeader = "CLUSTER QUEUE                   CQLOAD   USED    RES  AVAIL  TOTAL aoACDS  cdsuE  "

// ClusterQueueView is one line of qstat -g c.
type ClusterQueueView struct {
	Name string
	// Load is the queue's normalised load (np_load_avg); HasLoad false
	// prints "-NA-".
	Load                             float64
	HasLoad                          bool
	Used, Reserved, Available, Total int
	// Unavailable is the slots of queue instances in alarm, orphaned,
	// admin-disabled, calendar-disabled or suspended states (aoACDS);
	// Disabled those calendar-suspended, disabled, unknown or in error
	// (cdsuE).
	Unavailable, Disabled int
}

// WriteClusterQueues writes qstat -g c, the cluster queue summary.
func WriteClusterQueues(w io.Writer, queues []ClusterQueueView) error {
	out := newWriter(w)
	out.line(clusterQueueHeader)
	out.line(strings.Repeat("-", 80))
	for _, q := range queues {
		load := "   -NA-"
		if q.HasLoad {
			load = fmt.Sprintf("%7.2f", q.Load)
		}
		out.printf("%s %s %6d %6d %6d %6d %6d %6d \n", fixed(q.Name, 30), load,
			q.Used, q.Reserved, q.Available, q.Total, q.Unavailable, q.Disabled)
	}
	return out.flush()
}
